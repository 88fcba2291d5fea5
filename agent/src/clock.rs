//! Clock offset estimation, NTP style: from (send, coordinator, receive)
//! stamps the sample with the smallest round trip is trusted most, because
//! its one-way delays can differ the least.

/// One ping exchange: agent send time, coordinator time, agent receive time,
/// all in microseconds on their own clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingSample {
    pub sent_us: i64,
    pub coordinator_us: i64,
    pub received_us: i64,
}

/// (offset, rtt): the offset is coordinator clock minus agent clock.
pub fn estimate(samples: &[PingSample]) -> Option<(i64, i64)> {
    samples.iter().filter(|s| s.received_us >= s.sent_us).min_by_key(|s| s.received_us - s.sent_us).map(|s| {
        let rtt = s.received_us - s.sent_us;
        let midpoint = s.sent_us + rtt / 2;
        (s.coordinator_us - midpoint, rtt)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusts_the_fastest_exchange() {
        let samples = [
            PingSample { sent_us: 0, coordinator_us: 5_600, received_us: 1_000 },
            PingSample { sent_us: 2_000, coordinator_us: 7_100, received_us: 2_200 },
            PingSample { sent_us: 3_000, coordinator_us: 9_000, received_us: 2_000 },
        ];
        assert_eq!(estimate(&samples), Some((5_000, 200)));
        assert_eq!(estimate(&[]), None);
    }
}
