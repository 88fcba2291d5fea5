//! Stampede's shared domain: the scenario model and its validation, units,
//! thresholds, the histogram codec and the report model.
//!
//! Nothing here touches the network or a clock, so the coordinator and the
//! agent agree on what a scenario means by calling the same pure code.
#![forbid(unsafe_code)]

pub mod distribution;
pub mod endpoint;
pub mod histogram;
pub mod interval;
pub mod live;
pub mod locate;
pub mod loss;
pub mod report;
pub mod saturation;
pub mod scenario;
pub mod stages;
pub mod sweep;
pub mod threshold;
pub mod units;
pub mod workload;

pub use scenario::{Scenario, ScenarioError};

/// A coordinator address as a URL: `host:port` gets `http://` in front, a
/// URL with a scheme is kept as it is.
pub fn coordinator_url(address: &str) -> String {
    let address = address.trim();
    if address.contains("://") { address.to_string() } else { format!("http://{address}") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn coordinator_addresses_become_urls() {
        assert_eq!(super::coordinator_url("10.0.0.5:7700"), "http://10.0.0.5:7700");
        assert_eq!(super::coordinator_url("https://c.example:443"), "https://c.example:443");
    }
}
