//! The percentile spectrum of a report as text, in the layout wrk2 and
//! HdrHistogram print (Value, Percentile, TotalCount, 1/(1-Percentile)),
//! per operation: latency from the intended start and, in the open model,
//! service time from the real send. Read from the report's merged
//! histograms, so it works on a stored report as on a fresh one.

use std::fmt::Write;

use hdrhistogram::Histogram;
use stampede_common::histogram;
use stampede_common::report::Report;

/// Percentile ticks per halving of the distance to 100%, as HdrHistogram's
/// own output uses.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The spectra of every operation; an error names what is missing.
pub fn text(report: &Report) -> Result<String, String> {
    let histograms = report.histograms.as_ref().ok_or_else(|| {
        format!("the report of run {} keeps no histograms (it was written by an older Stampede)", report.run_id)
    })?;
    if histograms.operations.is_empty() {
        return Err(format!("run {} measured no operations, so it has no percentile spectrum", report.run_id));
    }
    let mut out = String::new();
    for (name, op) in &histograms.operations {
        let latency = histogram::decode(&op.latency.0).map_err(|e| format!("the {name} latency histogram: {e}"))?;
        table(&mut out, &format!("{name}: latency from the intended start"), &latency);
        if report.scenario.rate.is_some() {
            let service = histogram::decode(&op.service.0).map_err(|e| format!("the {name} service histogram: {e}"))?;
            table(&mut out, &format!("{name}: service time from the real send"), &service);
        }
    }
    Ok(out)
}

/// One spectrum, values in milliseconds.
pub fn table(out: &mut String, title: &str, h: &Histogram<u64>) {
    // Writing into a String cannot fail.
    let _ = write_table(out, title, h);
}

fn write_table(out: &mut String, title: &str, h: &Histogram<u64>) -> std::fmt::Result {
    writeln!(out, "{title}, milliseconds")?;
    writeln!(out, "{:>12} {:>14} {:>10} {:>14}", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    writeln!(out)?;
    let mut total = 0u64;
    for step in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += step.count_since_last_iteration();
        let value = h.highest_equivalent(step.value_iterated_to()) as f64 / 1000.0;
        let q = step.quantile_iterated_to();
        if q < 1.0 {
            writeln!(out, "{value:>12.3} {q:>14.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q))?;
        } else {
            writeln!(out, "{value:>12.3} {q:>14.12} {total:>10}")?;
        }
    }
    let (mean, deviation, max) = if h.is_empty() { (0.0, 0.0, 0.0) } else { (h.mean(), h.stdev(), h.max() as f64) };
    writeln!(out, "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]", mean / 1000.0, deviation / 1000.0)?;
    writeln!(out, "#[Max     = {:>12.3}, Total count    = {:>12}]", max / 1000.0, h.len())?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spectrum_climbs_to_the_maximum_and_counts_every_sample() {
        let mut h = histogram::new_histogram();
        for v in 1..=10_000u64 {
            histogram::record_clamped(&mut h, v);
        }
        let mut out = String::new();
        table(&mut out, "get: latency", &h);
        let rows: Vec<Vec<f64>> = out
            .lines()
            .filter(|l| l.split_whitespace().next().is_some_and(|f| f.parse::<f64>().is_ok()))
            .map(|l| l.split_whitespace().map(|f| f.parse().expect("number")).collect())
            .collect();
        let last = rows.last().expect("rows");
        assert_eq!((last[0], last[1], last[2]), (h.highest_equivalent(10_000) as f64 / 1000.0, 1.0, 10_000.0));
        assert!(rows.windows(2).all(|w| w[1][0] >= w[0][0] && w[1][1] >= w[0][1] && w[1][2] >= w[0][2]));
        // The 50% row is the median, as the histogram computes it.
        let median = rows.iter().find(|r| r[1] >= 0.5).expect("median row");
        assert_eq!(median[0], h.value_at_quantile(0.5) as f64 / 1000.0);
        assert!(out.contains("Total count    =        10000"), "{out}");
    }
}
