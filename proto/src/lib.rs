//! Generated types and services of the `stampede.v1` gRPC contract, and
//! (`security`) the token and TLS every call of it carries.
//!
//! Only the coordinator's `api` module and the agent's `session` module see
//! these types; everything else works on the domain types of
//! `stampede-common`.
pub mod security;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("stampede.v1");
}
