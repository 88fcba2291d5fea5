//! Sweeps: one scenario run at successive load levels until the service
//! level objective (SLO) breaks, and the knee, the highest level that met
//! it. Pure: the `sweep:` section, the search (which level next, given the
//! verdicts so far), the Universal Scalability Law fit and Little's law;
//! running the steps is the CLI's.
//!
//! The search is NoSQLBench's findmax in spirit: grow geometrically from
//! `start` by `factor` until a step fails, then bisect between the last
//! pass and the first failure until they are within `resolution` of each
//! other (a whole step, for connections, pipeline and agents).

use serde::Deserialize;

use crate::threshold::Threshold;
use crate::units::parse_rate;

/// What a sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Connections,
    Pipeline,
    Rate,
    Agents,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connections => "load.connections",
            Self::Pipeline => "load.pipeline",
            Self::Rate => "load.rate",
            Self::Agents => "agents",
        }
    }

    /// Whether its levels are whole numbers.
    pub fn whole(self) -> bool {
        !matches!(self, Self::Rate)
    }
}

/// The levels: a list, or a search.
#[derive(Debug, Clone, PartialEq)]
pub enum Levels {
    Steps(Vec<f64>),
    Search { start: f64, factor: f64, resolution: f64, max_steps: u32, max: Option<f64> },
}

/// A validated `sweep:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub over: Dimension,
    pub levels: Levels,
    /// Every threshold must hold for a step to pass.
    pub slo: Vec<Threshold>,
    /// Open model: the achieved rate must be at least this fraction of
    /// the offered one.
    pub achieved: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    over: String,
    #[serde(default)]
    steps: Option<Vec<serde_yaml::Value>>,
    #[serde(default)]
    search: Option<RawSearch>,
    #[serde(default)]
    slo: Vec<String>,
    #[serde(default)]
    achieved: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSearch {
    start: serde_yaml::Value,
    #[serde(default)]
    factor: Option<f64>,
    #[serde(default)]
    resolution: Option<serde_yaml::Value>,
    #[serde(default)]
    max_steps: Option<u32>,
    #[serde(default)]
    max: Option<serde_yaml::Value>,
}

fn text_of(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// A level as written: a number, or a rate (`5000/s`) for `load.rate`.
fn level(over: Dimension, value: &serde_yaml::Value, field: &str) -> Result<f64, String> {
    let text = text_of(value);
    let number = if over == Dimension::Rate {
        if text.contains('/') { parse_rate(&text).map_err(|e| e.0) } else { text.parse().map_err(|_| String::new()) }
    } else {
        text.parse::<f64>().map_err(|_| String::new())
    };
    match number {
        Ok(n) if n > 0.0 && n.is_finite() && (!over.whole() || n.fract() == 0.0) => Ok(n),
        _ => Err(format!(
            "sweep.{field}: `{text}` is not a level of {}; write {}",
            over.as_str(),
            if over.whole() { "a whole number of 1 or more" } else { "a rate like 5000/s" }
        )),
    }
}

/// `5%` or `0.05` as a fraction.
fn fraction(value: &serde_yaml::Value, field: &str) -> Result<f64, String> {
    let text = text_of(value);
    let (number, scale) = match text.trim().strip_suffix('%') {
        Some(n) => (n.trim().to_string(), 0.01),
        None => (text.trim().to_string(), 1.0),
    };
    match number.parse::<f64>() {
        Ok(n) if n * scale > 0.0 && n * scale <= 1.0 => Ok(n * scale),
        _ => Err(format!("sweep.{field}: `{text}` is not a fraction; write it like 5% or 0.05")),
    }
}

impl Sweep {
    /// Reads a `sweep:` section (a YAML value); every problem is listed.
    pub fn parse(value: &serde_yaml::Value, open_model: bool) -> Result<Self, Vec<String>> {
        let raw: RawSweep = serde_yaml::from_value(value.clone()).map_err(|e| vec![format!("sweep: {e}")])?;
        let mut problems = Vec::new();
        let over = match raw.over.as_str() {
            "load.connections" | "connections" => Dimension::Connections,
            "load.pipeline" | "pipeline" => Dimension::Pipeline,
            "load.rate" | "rate" => Dimension::Rate,
            "agents" => Dimension::Agents,
            other => {
                problems.push(format!(
                    "sweep.over: `{other}` cannot be swept; sweep load.connections, load.pipeline, load.rate or agents"
                ));
                Dimension::Connections
            }
        };
        if over == Dimension::Rate && !open_model {
            problems.push("sweep.over: load.rate is the open model's; set `load.model: open`".to_string());
        }
        let levels = match (&raw.steps, &raw.search) {
            (Some(steps), None) => {
                let mut levels = Vec::new();
                for (i, step) in steps.iter().enumerate() {
                    match level(over, step, &format!("steps[{i}]")) {
                        Ok(n) => levels.push(n),
                        Err(e) => problems.push(e),
                    }
                }
                if levels.is_empty() && problems.is_empty() {
                    problems.push("sweep.steps: give at least one level".to_string());
                }
                Levels::Steps(levels)
            }
            (None, Some(search)) => {
                let start = level(over, &search.start, "search.start").unwrap_or_else(|e| {
                    problems.push(e);
                    1.0
                });
                let factor = search.factor.unwrap_or(2.0);
                if !(factor > 1.0 && factor <= 100.0) {
                    problems.push(format!("sweep.search.factor: {factor} must be more than 1 (2 doubles each step)"));
                }
                let resolution = match &search.resolution {
                    None => 0.05,
                    Some(r) => fraction(r, "search.resolution").unwrap_or_else(|e| {
                        problems.push(e);
                        0.05
                    }),
                };
                let max = search.max.as_ref().map(|m| {
                    level(over, m, "search.max").unwrap_or_else(|e| {
                        problems.push(e);
                        f64::MAX
                    })
                });
                let max_steps = search.max_steps.unwrap_or(20);
                if max_steps == 0 || max_steps > 1000 {
                    problems.push("sweep.search.max_steps: must be between 1 and 1000".to_string());
                }
                Levels::Search { start, factor, resolution, max_steps, max }
            }
            _ => {
                problems.push("sweep: give either `steps: [...]` or `search: {start: ...}`".to_string());
                Levels::Steps(Vec::new())
            }
        };
        let mut slo = Vec::new();
        for (i, expr) in raw.slo.iter().enumerate() {
            match Threshold::parse(expr) {
                Ok(t) => slo.push(t),
                Err(e) => problems.push(format!("sweep.slo[{i}]: {}", e.0)),
            }
        }
        let achieved = match &raw.achieved {
            None => None,
            Some(_) if !open_model => {
                problems.push("sweep.achieved: compares achieved with offered rates, an open model's".to_string());
                None
            }
            Some(v) => fraction(v, "achieved").map_err(|e| problems.push(e)).ok(),
        };
        if slo.is_empty() && achieved.is_none() {
            problems.push(
                "sweep.slo: say what a step must meet, like [\"p99 < 5ms\", \"error_rate < 0.1%\"] (or `achieved: 95%`)"
                    .to_string(),
            );
        }
        if problems.is_empty() { Ok(Self { over, levels, slo, achieved }) } else { Err(problems) }
    }

    /// The next level to run after the steps so far (level, passed), or
    /// `None` when the sweep is done.
    pub fn next(&self, done: &[(f64, bool)]) -> Option<f64> {
        match &self.levels {
            Levels::Steps(levels) => levels.get(done.len()).copied(),
            Levels::Search { start, factor, resolution, max_steps, max } => {
                if done.len() >= *max_steps as usize {
                    return None;
                }
                let round = |x: f64| if self.over.whole() { x.round().max(1.0) } else { x };
                let Some(&(last, _)) = done.last() else { return Some(*start) };
                let best_pass = done
                    .iter()
                    .filter(|(_, p)| *p)
                    .map(|(l, _)| *l)
                    .fold(None, |a: Option<f64>, l| Some(a.map_or(l, |a| a.max(l))));
                let first_fail = done
                    .iter()
                    .filter(|(l, p)| !*p && best_pass.is_none_or(|b| *l > b))
                    .map(|(l, _)| *l)
                    .fold(None, |a: Option<f64>, l| Some(a.map_or(l, |a| a.min(l))));
                match (best_pass, first_fail) {
                    // Even the first step failed: nothing to bisect below it.
                    (None, _) => None,
                    (Some(_), None) => {
                        let next = round(last * factor);
                        let next = max.map_or(next, |m| next.min(m));
                        (next > last).then_some(next)
                    }
                    (Some(pass), Some(fail)) => {
                        let close =
                            if self.over.whole() { fail - pass <= 1.0 } else { (fail - pass) <= pass * resolution };
                        if close {
                            return None;
                        }
                        let middle = round((pass + fail) / 2.0);
                        (middle > pass && middle < fail).then_some(middle)
                    }
                }
            }
        }
    }
}

/// The Universal Scalability Law, X(N) = lambda N / (1 + sigma (N-1) +
/// kappa N (N-1)), fitted to (concurrency, throughput) points.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UslFit {
    pub sigma: f64,
    pub kappa: f64,
    pub lambda: f64,
    /// R squared of the fitted throughput against the measured one.
    pub r_squared: f64,
    /// The concurrency with the highest predicted throughput, and that
    /// throughput (None when nothing bends the curve: kappa = 0).
    pub peak_concurrency: Option<f64>,
    pub peak_throughput: Option<f64>,
}

impl UslFit {
    pub fn predict(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }

    /// Least squares on N/X = a + b (N-1) + c N (N-1), which is linear in
    /// a = 1/lambda, b = sigma/lambda, c = kappa/lambda. Needs three
    /// distinct concurrencies; sigma and kappa are kept at 0 or more.
    pub fn fit(points: &[(f64, f64)]) -> Option<Self> {
        let points: Vec<(f64, f64)> = points.iter().copied().filter(|(n, x)| *n >= 1.0 && *x > 0.0).collect();
        let mut distinct: Vec<f64> = points.iter().map(|(n, _)| *n).collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        if distinct.len() < 3 {
            return None;
        }
        let rows: Vec<([f64; 3], f64)> = points.iter().map(|(n, x)| ([1.0, n - 1.0, n * (n - 1.0)], n / x)).collect();
        let (a, mut b, mut c) = solve_least_squares(&rows)?;
        // Negative contention or coherency makes no physical sense; refit
        // without the term that went below 0. (A throughput that grew
        // faster at the last step than before can take `a` below 0 with
        // it; the refit does not.)
        if b < 0.0 || c < 0.0 {
            let keep_b = b >= 0.0;
            let reduced: Vec<([f64; 3], f64)> =
                rows.iter().map(|(r, y)| ([r[0], if keep_b { r[1] } else { r[2] }, 0.0], *y)).collect();
            let (a2, d, _) = solve_least_squares2(&reduced)?;
            if a2 <= 0.0 {
                return None;
            }
            let d = d.max(0.0);
            let (nb, nc) = if keep_b { (d, 0.0) } else { (0.0, d) };
            return Some(Self::from_coefficients(a2, nb, nc, &points));
        }
        if a <= 0.0 {
            return None;
        }
        b = b.max(0.0);
        c = c.max(0.0);
        Some(Self::from_coefficients(a, b, c, &points))
    }

    fn from_coefficients(a: f64, b: f64, c: f64, points: &[(f64, f64)]) -> Self {
        let lambda = 1.0 / a;
        let (sigma, kappa) = (b / a, c / a);
        let mut fit = Self { sigma, kappa, lambda, r_squared: 0.0, peak_concurrency: None, peak_throughput: None };
        let mean = points.iter().map(|(_, x)| x).sum::<f64>() / points.len() as f64;
        let total: f64 = points.iter().map(|(_, x)| (x - mean).powi(2)).sum();
        let residual: f64 = points.iter().map(|(n, x)| (x - fit.predict(*n)).powi(2)).sum();
        fit.r_squared = if total > 0.0 { 1.0 - residual / total } else { 1.0 };
        if kappa > 0.0 && sigma < 1.0 {
            let peak = ((1.0 - sigma) / kappa).sqrt();
            fit.peak_concurrency = Some(peak);
            fit.peak_throughput = Some(fit.predict(peak));
        }
        fit
    }
}

/// Least squares for y = p0 x0 + p1 x1 + p2 x2 (normal equations, Cramer).
fn solve_least_squares(rows: &[([f64; 3], f64)]) -> Option<(f64, f64, f64)> {
    let mut m = [[0.0f64; 3]; 3];
    let mut v = [0.0f64; 3];
    for (x, y) in rows {
        for i in 0..3 {
            v[i] += x[i] * y;
            for j in 0..3 {
                m[i][j] += x[i] * x[j];
            }
        }
    }
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    if d.abs() < 1e-300 {
        return None;
    }
    let mut out = [0.0; 3];
    for (k, slot) in out.iter_mut().enumerate() {
        let mut mk = m;
        for i in 0..3 {
            mk[i][k] = v[i];
        }
        *slot = det(&mk) / d;
    }
    Some((out[0], out[1], out[2]))
}

/// Least squares for y = p0 x0 + p1 x1 (the third column unused).
fn solve_least_squares2(rows: &[([f64; 3], f64)]) -> Option<(f64, f64, f64)> {
    let (mut s00, mut s01, mut s11, mut v0, mut v1) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y) in rows {
        s00 += x[0] * x[0];
        s01 += x[0] * x[1];
        s11 += x[1] * x[1];
        v0 += x[0] * y;
        v1 += x[1] * y;
    }
    let d = s00 * s11 - s01 * s01;
    if d.abs() < 1e-300 {
        return None;
    }
    Some(((v0 * s11 - v1 * s01) / d, (s00 * v1 - s01 * v0) / d, 0.0))
}

/// Little's law for one step: the requests in flight it implies
/// (throughput x mean latency) against those the closed model keeps in
/// flight (connections x pipeline); their ratio is 1 when every slot was
/// always waiting on the target.
pub fn littles_law(throughput: f64, mean_latency_us: f64, in_flight: f64) -> (f64, f64) {
    let implied = throughput * mean_latency_us / 1e6;
    (implied, if in_flight > 0.0 { implied / in_flight } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(text: &str, open: bool) -> Result<Sweep, Vec<String>> {
        Sweep::parse(&serde_yaml::from_str(text).expect("yaml"), open)
    }

    #[test]
    fn a_search_grows_until_a_failure_then_bisects_to_the_resolution() {
        let s =
            sweep("over: load.rate\nsearch: {start: 1000/s, factor: 2, resolution: 10%}\nslo: [\"p99 < 5ms\"]\n", true)
                .expect("valid");
        // A target that meets the SLO up to 5,500/s.
        let meets = |level: f64| level <= 5500.0;
        let mut done = Vec::new();
        while let Some(level) = s.next(&done) {
            done.push((level, meets(level)));
        }
        let levels: Vec<f64> = done.iter().map(|(l, _)| *l).collect();
        assert_eq!(&levels[..4], &[1000.0, 2000.0, 4000.0, 8000.0]);
        let knee = done.iter().filter(|(_, p)| *p).map(|(l, _)| *l).fold(0.0, f64::max);
        let fail = done.iter().filter(|(l, p)| !*p && *l > knee).map(|(l, _)| *l).fold(f64::MAX, f64::min);
        assert!(knee <= 5500.0 && fail > 5500.0, "{done:?}");
        assert!(fail - knee <= knee * 0.1, "within the resolution: {done:?}");
    }

    #[test]
    fn whole_levels_bisect_to_one_and_a_failing_first_step_ends_the_search() {
        let s = sweep("over: load.connections\nsearch: {start: 1}\nslo: [\"p99 < 5ms\"]\n", false).expect("valid");
        let mut done = Vec::new();
        while let Some(level) = s.next(&done) {
            assert_eq!(level.fract(), 0.0);
            done.push((level, level <= 11.0));
        }
        let knee = done.iter().filter(|(_, p)| *p).map(|(l, _)| *l).fold(0.0, f64::max);
        assert_eq!(knee, 11.0, "{done:?}");
        assert_eq!(s.next(&[(1.0, false)]), None);
        let steps = sweep("over: connections\nsteps: [1, 4, 16]\nslo: [\"p99 < 1ms\"]\n", false).expect("valid");
        assert_eq!(steps.next(&[(1.0, true)]), Some(4.0));
        assert_eq!(steps.next(&[(1.0, true), (4.0, false), (16.0, false)]), None);
    }

    #[test]
    fn a_sweep_that_makes_no_sense_says_why() {
        let problems = sweep("over: load.size\nsteps: [0.5]\n", false).expect_err("bad");
        let all = problems.join("\n");
        assert!(all.contains("cannot be swept") && all.contains("sweep.slo"), "{all}");
        let problems = sweep("over: load.rate\nsteps: [1000/s]\nslo: [\"p99 < 1ms\"]\n", false).expect_err("closed");
        assert!(problems.join("\n").contains("model: open"));
        let problems = sweep("over: connections\nsteps: [1.5]\nsearch: {start: 1}\nslo: [\"p99 < 1ms\"]\n", false)
            .expect_err("both");
        assert!(problems.join("\n").contains("either"), "{problems:?}");
    }

    #[test]
    fn the_usl_fit_recovers_known_parameters() {
        let truth = UslFit {
            sigma: 0.05,
            kappa: 0.002,
            lambda: 1000.0,
            r_squared: 1.0,
            peak_concurrency: None,
            peak_throughput: None,
        };
        let points: Vec<(f64, f64)> =
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0].iter().map(|n| (*n, truth.predict(*n))).collect();
        let fit = UslFit::fit(&points).expect("fit");
        assert!((fit.sigma - 0.05).abs() < 1e-9 && (fit.kappa - 0.002).abs() < 1e-9, "{fit:?}");
        assert!((fit.lambda - 1000.0).abs() < 1e-6 && fit.r_squared > 0.999_999, "{fit:?}");
        let peak = fit.peak_concurrency.expect("peak");
        assert!((peak - (0.95f64 / 0.002).sqrt()).abs() < 1e-6);
        assert!(fit.peak_throughput.expect("peak") > truth.predict(16.0));
        // With noise of 1% the parameters stay close.
        let noisy: Vec<(f64, f64)> =
            points.iter().enumerate().map(|(i, (n, x))| (*n, x * if i % 2 == 0 { 1.01 } else { 0.99 })).collect();
        let fit = UslFit::fit(&noisy).expect("fit");
        assert!(
            (fit.sigma - 0.05).abs() < 0.02 && (fit.kappa - 0.002).abs() < 0.001 && fit.r_squared > 0.99,
            "{fit:?}"
        );
        // Linear scaling: no contention, no peak.
        let linear: Vec<(f64, f64)> = [1.0, 2.0, 3.0, 4.0].iter().map(|n| (*n, 100.0 * n)).collect();
        let fit = UslFit::fit(&linear).expect("fit");
        assert!(fit.sigma.abs() < 1e-9 && fit.kappa.abs() < 1e-9 && fit.peak_concurrency.is_none(), "{fit:?}");
        assert_eq!(UslFit::fit(&[(1.0, 1.0), (2.0, 2.0)]), None, "three concurrencies at least");
        // A last step that grew faster than the one before (a sweep over
        // agents on a busy machine, from CI): the full fit's coherency and
        // intercept both go below 0; the fit without coherency holds.
        let bent_up = [(6.0, 18_374.0), (12.0, 18_715.0), (18.0, 20_870.0)];
        let fit = UslFit::fit(&bent_up).expect("a fit without the negative term");
        assert!(fit.lambda > 0.0 && fit.sigma >= 0.0 && fit.kappa == 0.0, "{fit:?}");
    }

    #[test]
    fn littles_law_compares_implied_and_kept_in_flight() {
        let (implied, ratio) = littles_law(10_000.0, 800.0, 8.0);
        assert!((implied - 8.0).abs() < 1e-9 && (ratio - 1.0).abs() < 1e-9);
    }
}
