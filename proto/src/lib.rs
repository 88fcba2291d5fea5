//! Generated types and services of the `stampede.v1` gRPC contract, and
//! (`security`) the token and TLS every call of it carries.
//!
//! Only the coordinator's `api` module and the agent's `session` module see
//! these types; everything else works on the domain types of
//! `stampede-common`.
pub mod interval;
pub mod security;

/// The gRPC health service name that is SERVING while a Stampede process
/// (coordinator or agent) is up: the liveness probe's service. Readiness is
/// the overall status `""`.
pub const LIVENESS_SERVICE: &str = "stampede.live";

/// Microseconds since the Unix epoch on this machine's clock: the clock of
/// every timestamp the contract carries (`start_at_us`, clock pings).
pub fn now_unix_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("stampede.v1");
}
