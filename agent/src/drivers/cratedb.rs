//! CrateDB over HTTP.

use stampede_common::Scenario;

use super::{Connection, Done, Driver, DriverError, ErrorKind};
use crate::workloads::Operation;

pub struct CrateDriver {}

impl CrateDriver {
    pub fn new(_scenario: &Scenario, _part: &super::Part, _seed: u64) -> Self {
        Self {}
    }
}

#[derive(Clone)]
pub struct CrateConnection {}

impl Driver for CrateDriver {
    type Connection = CrateConnection;
    async fn connect(&self, _endpoint: &str) -> Result<CrateConnection, DriverError> {
        Err(DriverError::new(ErrorKind::Connection, "not yet"))
    }
}

impl Connection for CrateConnection {
    fn node(&self) -> &str {
        ""
    }
    async fn execute(&mut self, _operation: &Operation) -> Result<Done, DriverError> {
        Err(DriverError::new(ErrorKind::Protocol, "not yet"))
    }
}
