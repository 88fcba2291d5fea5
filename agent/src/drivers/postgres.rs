//! PostgreSQL and TimescaleDB (sqlx).

use stampede_common::Scenario;

use super::{Connection, Done, Driver, DriverError, ErrorKind};
use crate::workloads::Operation;

pub struct PostgresDriver {}

impl PostgresDriver {
    pub fn new(_scenario: &Scenario, _seed: u64) -> Self {
        Self {}
    }
}

#[derive(Clone)]
pub struct PgConnection {}

impl Driver for PostgresDriver {
    type Connection = PgConnection;
    async fn connect(&self, _endpoint: &str) -> Result<PgConnection, DriverError> {
        Err(DriverError::new(ErrorKind::Connection, "not yet"))
    }
}

impl Connection for PgConnection {
    fn node(&self) -> &str {
        ""
    }
    async fn execute(&mut self, _operation: &Operation) -> Result<Done, DriverError> {
        Err(DriverError::new(ErrorKind::Protocol, "not yet"))
    }
}
