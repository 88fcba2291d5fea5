//! The gRPC adapters. Each method unpacks its request, hands a domain
//! event to the engine and converts the answer; none decides anything.
//! Domain errors become `tonic::Status` in one place (`status`).

pub mod agent_service;
pub mod control_service;
mod convert;
pub mod http;

use tonic::Status;

use crate::engine::ControlError;

/// Maps engine errors to gRPC status codes.
pub fn status(error: ControlError) -> Status {
    match error {
        ControlError::InvalidScenario(message) => Status::invalid_argument(message),
        ControlError::NotFound(_) => Status::not_found(error.to_string()),
        ControlError::Store(_) => Status::internal(error.to_string()),
        ControlError::Unavailable => Status::unavailable(error.to_string()),
    }
}

/// Largest message accepted on any service (reports with many nodes and
/// operations stay far below it).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
