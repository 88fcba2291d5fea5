//! What a run does when one of its agents is lost (silent for longer than
//! the heartbeat timeout): the scenario's `on_agent_loss`, and how the
//! report describes each loss.

use serde::{Deserialize, Serialize};

/// `on_agent_loss:` in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum AgentLossPolicy {
    /// End the run at once as `aborted` (the default): its figures would
    /// not be the load the scenario asked for.
    #[default]
    Abort,
    /// Carry on with the agents left; the report shows the shortfall.
    Continue,
    /// Carry on while the lost agents' share of the planned load is at most
    /// this fraction (0..1); abort beyond it.
    Tolerate(f64),
}

impl AgentLossPolicy {
    /// Whether the run goes on when agents holding `lost_share` (0..1) of
    /// the planned load are lost.
    pub fn continues(self, lost_share: f64) -> bool {
        match self {
            Self::Abort => false,
            Self::Continue => true,
            Self::Tolerate(limit) => lost_share <= limit + 1e-9,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Self::Abort => "abort".to_string(),
            Self::Continue => "continue".to_string(),
            Self::Tolerate(limit) => format!("tolerate {}%", limit * 100.0),
        }
    }
}

/// The file form: `abort`, `continue`, or `{tolerate: 34%}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawAgentLoss {
    Word(String),
    Tolerate {
        #[serde(rename = "tolerate")]
        tolerate: crate::scenario::Scalar,
    },
}

/// An `on_agent_loss` value that is not a policy; the message says how to
/// write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

pub(crate) fn validate(raw: Option<RawAgentLoss>) -> Result<AgentLossPolicy, PolicyError> {
    let Some(raw) = raw else { return Ok(AgentLossPolicy::default()) };
    match raw {
        RawAgentLoss::Word(word) => match word.as_str() {
            "abort" => Ok(AgentLossPolicy::Abort),
            "continue" => Ok(AgentLossPolicy::Continue),
            other => {
                Err(PolicyError(format!("`{other}` is not a policy; write `abort`, `continue` or `{{tolerate: 34%}}`")))
            }
        },
        RawAgentLoss::Tolerate { tolerate } => {
            let text = tolerate.text();
            let number = text.trim().strip_suffix('%').unwrap_or(text.trim()).trim();
            match number.parse::<f64>() {
                Ok(percent) if (0.0..=100.0).contains(&percent) => Ok(AgentLossPolicy::Tolerate(percent / 100.0)),
                _ => Err(PolicyError(format!("tolerate `{text}` must be a share of the load between 0% and 100%"))),
            }
        }
    }
}

/// One agent's absence from a run, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentLoss {
    pub agent: String,
    /// Seconds after the start when the coordinator declared it lost.
    pub lost_at_s: f64,
    /// Seconds after the start when it came back, if it did.
    pub back_at_s: Option<f64>,
    /// Measured intervals (by index) the agent did not report.
    pub missing_intervals: Vec<u64>,
    /// Operations it would have done in those intervals, at its own mean
    /// rate over the measured intervals it did report (when it reported
    /// none, at the other agents' mean rate).
    pub shortfall_ops: u64,
    /// `shortfall_ops` against the operations done plus the shortfall.
    pub shortfall_share: f64,
}

impl AgentLoss {
    /// The missing intervals as `a-b` ranges.
    pub fn windows(&self) -> String {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &i in &self.missing_intervals {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == i => *last = i,
                _ => ranges.push((i, i)),
            }
        }
        let shown: Vec<String> =
            ranges.iter().map(|(a, b)| if a == b { format!("{a}") } else { format!("{a}-{b}") }).collect();
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scalar;

    #[test]
    fn policies_parse_and_decide() {
        assert_eq!(validate(None), Ok(AgentLossPolicy::Abort));
        assert_eq!(validate(Some(RawAgentLoss::Word("continue".into()))), Ok(AgentLossPolicy::Continue));
        let tolerate = validate(Some(RawAgentLoss::Tolerate { tolerate: Scalar::Text("34%".into()) })).expect("ok");
        assert_eq!(tolerate, AgentLossPolicy::Tolerate(0.34));
        assert!(tolerate.continues(1.0 / 3.0) && !tolerate.continues(0.5));
        assert!(!AgentLossPolicy::Abort.continues(0.0));
        let error = validate(Some(RawAgentLoss::Word("ignore".into()))).expect_err("bad word");
        assert!(error.0.contains("`ignore` is not a policy"), "{error}");
        let error = validate(Some(RawAgentLoss::Tolerate { tolerate: Scalar::Number(150.0) })).expect_err("range");
        assert!(error.0.contains("between 0% and 100%"), "{error}");
    }

    #[test]
    fn windows_are_ranges() {
        let loss = AgentLoss {
            agent: "a".into(),
            lost_at_s: 2.0,
            back_at_s: None,
            missing_intervals: vec![2, 3, 4, 7],
            shortfall_ops: 0,
            shortfall_share: 0.0,
        };
        assert_eq!(loss.windows(), "2-4, 7");
    }
}
