//! Stampede's shared domain: the scenario model and its validation, units,
//! thresholds, the histogram codec and the report model.
//!
//! Nothing here touches the network or a clock, so the coordinator and the
//! agent agree on what a scenario means by calling the same pure code.
#![forbid(unsafe_code)]

pub mod histogram;
pub mod interval;
pub mod locate;
pub mod report;
pub mod scenario;
pub mod threshold;
pub mod units;

pub use scenario::{Scenario, ScenarioError};
