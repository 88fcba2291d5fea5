//! The Stampede coordinator: registry, scheduler, aggregator, store, the
//! run engine and the gRPC api.
//!
//! Decisions are pure (`scheduler::plan`, `aggregate`), state lives in one
//! engine task that owns every run, and the gRPC services only convert and
//! forward to it, so no lock is shared between requests.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod api;
pub mod compare;
pub mod election;
pub mod engine;
pub mod hlog;
pub mod html;
pub mod metrics;
pub mod registry;
pub mod render;
pub mod scheduler;
pub mod server;
pub mod spectrum;
pub mod store;
pub mod window;
