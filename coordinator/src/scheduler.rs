//! `plan()`: the split of a run over agents. A pure function: no IO, no
//! async, no clock, so it is unit- and property-tested without sockets.
//!
//! Connections are split as evenly as whole numbers allow; an agent's rate
//! is proportional to its connections so every connection offers the same
//! load; the key space is cut into contiguous ranges in the same proportion.

use stampede_common::Scenario;

/// One agent's part of a run: the whole description of what it does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentPlan {
    pub agent_id: String,
    pub agent_index: u32,
    pub agent_count: u32,
    pub connections: u32,
    /// Operations per second for the open model; 0 for the closed model.
    pub rate_per_s: f64,
    /// Key range `[key_start, key_end)` of the workload's key space.
    pub key_start: u64,
    pub key_end: u64,
    pub seed: u64,
    /// This agent's operations of a count-limited run (`load.operations`),
    /// in proportion to its connections, the parts adding up exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<u64>,
    /// This agent's part of each operation's count (`load.operations` per
    /// operation, in the workload's order), each split as `operations` is;
    /// `operations` is their sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_counts: Option<Vec<u64>>,
}

/// Why a run cannot be planned over the given agents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no agents to plan over")]
    NoAgents,
    #[error(
        "{connections} connections cannot be split over {agents} agents; lower the agent count or raise load.connections"
    )]
    TooFewConnections { connections: u32, agents: usize },
}

/// Splits `scenario` over `agents` (in the order given). `run_seed` makes
/// every agent's seed reproducible for the same run.
pub fn plan(scenario: &Scenario, agents: &[String], run_seed: u64) -> Result<Vec<AgentPlan>, PlanError> {
    let count = agents.len();
    if count == 0 {
        return Err(PlanError::NoAgents);
    }
    let total = scenario.load.connections;
    if (total as usize) < count {
        return Err(PlanError::TooFewConnections { connections: total, agents: count });
    }
    let connections = split_evenly(u64::from(total), count);
    let key_space = scenario.workload.key_space();
    let keys = split_proportionally(key_space, &connections);
    let rate = scenario.rate().unwrap_or(0.0);
    // Per operation: each count split on its own, an agent's total their sum.
    let each: Option<Vec<Vec<u64>>> = scenario
        .load
        .operation_counts
        .as_ref()
        .map(|counts| counts.iter().map(|n| split_proportionally(*n, &connections)).collect());
    let operations = match &each {
        Some(each) => Some((0..count).map(|agent| each.iter().map(|parts| parts[agent]).sum()).collect()),
        None => scenario.load.operations.map(|n| split_proportionally(n, &connections)),
    };
    let mut key_start = 0;
    let plans = agents
        .iter()
        .enumerate()
        .map(|(index, agent_id)| {
            let share = connections[index] as f64 / f64::from(total);
            let plan = AgentPlan {
                agent_id: agent_id.clone(),
                agent_index: index as u32,
                agent_count: count as u32,
                connections: connections[index] as u32,
                rate_per_s: rate * share,
                key_start,
                key_end: key_start + keys[index],
                seed: mix(run_seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                operations: operations.as_ref().map(|parts: &Vec<u64>| parts[index]),
                operation_counts: each.as_ref().map(|each| each.iter().map(|parts| parts[index]).collect()),
            };
            key_start = plan.key_end;
            plan
        })
        .collect();
    Ok(plans)
}

/// Splits `total` into `parts` whole numbers that differ by at most one.
fn split_evenly(total: u64, parts: usize) -> Vec<u64> {
    let base = total / parts as u64;
    let extra = (total % parts as u64) as usize;
    (0..parts).map(|i| base + u64::from(i < extra)).collect()
}

/// Splits `total` in proportion to `weights`, exactly (largest remainders).
fn split_proportionally(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u64 = weights.iter().sum();
    if sum == 0 {
        return split_evenly(total, weights.len());
    }
    let mut parts: Vec<u64> =
        weights.iter().map(|w| ((u128::from(total) * u128::from(*w)) / u128::from(sum)) as u64).collect();
    let mut left = total - parts.iter().sum::<u64>();
    let count = parts.len();
    let mut i = 0;
    while left > 0 {
        parts[i % count] += 1;
        left -= 1;
        i += 1;
    }
    parts
}

/// SplitMix64 finaliser: spreads seeds so neighbouring agents differ a lot.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scenario(connections: u32, keys: u64, rate: Option<u32>) -> Scenario {
        let load = match rate {
            Some(rate) => format!("  model: open\n  rate: {rate}/s\n"),
            None => String::new(),
        };
        Scenario::parse(&format!(
            "name: t\nduration: 5s\ntarget:\n  kind: kv\nload:\n  connections: {connections}\n{load}workload:\n  kind: kv\n  keys: {keys}\n"
        ))
        .expect("valid scenario")
    }

    fn agents(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("agent-{i}")).collect()
    }

    #[test]
    fn splits_the_documented_example() {
        let plans = plan(&scenario(10, 1000, Some(3000)), &agents(3), 1).expect("plan");
        let connections: Vec<u32> = plans.iter().map(|p| p.connections).collect();
        assert_eq!(connections, vec![4, 3, 3]);
        assert!((plans[0].rate_per_s - 1200.0).abs() < 1e-9);
        assert_eq!((plans[0].key_start, plans[0].key_end), (0, 400));
        assert_eq!((plans[2].key_start, plans[2].key_end), (700, 1000));
    }

    #[test]
    fn refuses_what_cannot_be_split() {
        assert_eq!(plan(&scenario(4, 10, None), &[], 1), Err(PlanError::NoAgents));
        assert!(matches!(plan(&scenario(2, 10, None), &agents(3), 1), Err(PlanError::TooFewConnections { .. })));
    }

    #[test]
    fn a_count_is_split_exactly_in_proportion_to_connections() {
        let text =
            "name: t\ntarget:\n  kind: kv\nload:\n  connections: 7\n  operations: 100_003\nworkload:\n  kind: kv\n";
        let scenario = Scenario::parse(text).expect("valid");
        let plans = plan(&scenario, &agents(3), 1).expect("plan");
        let parts: Vec<Option<u64>> = plans.iter().map(|p| p.operations).collect();
        // 3, 2 and 2 connections of 7.
        assert_eq!(parts, vec![Some(42_859), Some(28_572), Some(28_572)]);
        assert!(plan(&scenario_for_rate(None), &agents(2), 1).expect("plan").iter().all(|p| p.operations.is_none()));
    }

    #[test]
    fn a_count_per_operation_is_split_exactly_for_each_operation() {
        let text = "name: t\ntarget:\n  kind: kv\nload:\n  connections: 7\n  operations: {get: 100_003, set: 5}\n\
                    workload:\n  kind: kv\n";
        let scenario = Scenario::parse(text).expect("valid");
        assert_eq!(scenario.load.operations, Some(100_008));
        let plans = plan(&scenario, &agents(3), 1).expect("plan");
        let each: Vec<Vec<u64>> = plans.iter().map(|p| p.operation_counts.clone().expect("counts")).collect();
        assert_eq!(each, vec![vec![42_859, 3], vec![28_572, 1], vec![28_572, 1]]);
        for p in &plans {
            assert_eq!(p.operations, Some(p.operation_counts.as_ref().expect("counts").iter().sum()));
        }
    }

    fn scenario_for_rate(rate: Option<u32>) -> Scenario {
        scenario(4, 100, rate)
    }

    proptest! {
        #[test]
        fn counts_add_up_whatever_the_split(
            operations in 1u64..10_000_000_000, connections in 1u32..500, agent_count in 1usize..64,
        ) {
            prop_assume!(connections as usize >= agent_count);
            let text = format!(
                "name: t\ntarget:\n  kind: kv\nload:\n  connections: {connections}\n  operations: {operations}\n\
                 workload:\n  kind: kv\n"
            );
            let plans = plan(&Scenario::parse(&text).expect("valid"), &agents(agent_count), 7).expect("plan");
            prop_assert_eq!(plans.iter().map(|p| p.operations.unwrap_or(0)).sum::<u64>(), operations);
            for p in &plans {
                // Within one operation of the connections' share.
                let share = operations as f64 * f64::from(p.connections) / f64::from(connections);
                prop_assert!((p.operations.unwrap_or(0) as f64 - share).abs() <= 1.0 + share * 1e-12);
            }
        }

        #[test]
        fn shares_add_up_and_nobody_gets_nothing(
            connections in 1u32..5000, agent_count in 1usize..64, keys in 1u64..10_000_000,
            rate in proptest::option::of(1u32..1_000_000), seed in any::<u64>(),
        ) {
            prop_assume!(connections as usize >= agent_count);
            let s = scenario(connections, keys, rate);
            let plans = plan(&s, &agents(agent_count), seed).expect("plan");
            prop_assert_eq!(plans.len(), agent_count);
            prop_assert_eq!(plans.iter().map(|p| p.connections).sum::<u32>(), connections);
            prop_assert!(plans.iter().all(|p| p.connections >= 1));
            let max = plans.iter().map(|p| p.connections).max().unwrap_or(0);
            let min = plans.iter().map(|p| p.connections).min().unwrap_or(0);
            prop_assert!(max - min <= 1);
            let total_rate: f64 = plans.iter().map(|p| p.rate_per_s).sum();
            prop_assert!((total_rate - f64::from(rate.unwrap_or(0))).abs() < 1e-6 * f64::from(rate.unwrap_or(1)));
            // Key ranges tile [0, keys) in order.
            prop_assert_eq!(plans[0].key_start, 0);
            prop_assert_eq!(plans[agent_count - 1].key_end, keys);
            for pair in plans.windows(2) {
                prop_assert_eq!(pair[0].key_end, pair[1].key_start);
            }
            if keys >= connections as u64 {
                prop_assert!(plans.iter().all(|p| p.key_end > p.key_start));
            }
            let mut seeds: Vec<u64> = plans.iter().map(|p| p.seed).collect();
            seeds.sort_unstable();
            seeds.dedup();
            prop_assert_eq!(seeds.len(), agent_count);
            prop_assert_eq!(plan(&s, &agents(agent_count), seed).expect("plan"), plans);
        }
    }
}
