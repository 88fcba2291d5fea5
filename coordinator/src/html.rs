//! The HTML report: one self-contained page drawn in the browser from the
//! JSON report it embeds. uPlot (vendored from the npm registry with its
//! licence, `assets/uplot`) draws the charts; `assets/report/hdr.js` reads
//! the embedded HdrHistogram V2 histograms so that a time window selected
//! on the page gets its exact merged percentiles, the same figures as
//! `stampede report --window` (`window_figures` here). Everything is
//! inlined at build time, and the page's Content-Security-Policy forbids
//! every request: nothing leaves it.

use stampede_common::report::Report;

const UPLOT_JS: &str = include_str!("../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/uplot/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../assets/uplot/LICENSE");
const HDR_JS: &str = include_str!("../assets/report/hdr.js");
const REPORT_JS: &str = include_str!("../assets/report/report.js");
const COMPARE_JS: &str = include_str!("../assets/report/compare.js");
const LEVELS_JS: &str = include_str!("../assets/report/levels.js");
const REPORT_CSS: &str = include_str!("../assets/report/report.css");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard/dashboard.css");

/// The page of `report`.
pub fn page(report: &Report) -> String {
    let title = format!("Stampede {}: {} ({})", report.status.as_str(), report.scenario.name, report.run_id);
    document(&title, "report-data", &drawn(report).to_string())
}

/// What the page draws from: the report without its per-second series
/// (`intervals` and the distribution's `intervals`), which the windows
/// hold at a bounded size. A day-long run's per-second series are some
/// 25 MB; its windows a few.
fn drawn(report: &Report) -> serde_json::Value {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("intervals");
        if let Some(distribution) = object.get_mut("distribution").and_then(|d| d.as_object_mut()) {
            distribution.remove("intervals");
        }
    }
    value
}

/// The page of `stampede compare --html`: both runs' spectra and time
/// series overlaid, with the comparison's rows and verdicts.
pub fn comparison_page(base: &Report, candidate: &Report, comparison: &crate::compare::Comparison) -> String {
    let title = format!("Stampede compare: {} and {}", base.run_id, candidate.run_id);
    let data = serde_json::json!({"base": drawn(base), "candidate": drawn(candidate), "comparison": comparison});
    document(&title, "compare-data", &data.to_string())
}

/// The page of `stampede sweep --html`: latency against throughput with
/// the knee marked, throughput against the level (with the USL's curve),
/// every step. `sweep` is the sweep's JSON (`stampede.sweep.v1`).
pub fn sweep_page(sweep: &serde_json::Value) -> String {
    let name = sweep["scenario"].as_str().unwrap_or("sweep");
    let title = format!("Stampede sweep: {name} over {}", sweep["over"].as_str().unwrap_or("?"));
    document(&title, "sweep-data", &sweep.to_string())
}

/// A suite's `summary.html`: every entry side by side, each linked to its
/// own page. `summary` is the suite's JSON (`stampede.suite.v1`).
pub fn suite_page(summary: &serde_json::Value) -> String {
    let title = format!("Stampede suite: {}", summary["suite"].as_str().unwrap_or("suite"));
    document(&title, "suite-data", &summary.to_string())
}

/// One self-contained page: `data` (JSON) in a script element of `data_id`,
/// which tells the scripts what to draw.
fn document(title: &str, data_id: &str, data: &str) -> String {
    // In a <script> element only `</` could end it early; JSON allows `<`
    // written as an escape, so none is left.
    let data = data.replace('<', "\\u003c");
    let title = escape(title);
    let mut html = String::with_capacity(data.len() + UPLOT_JS.len() + 32_768);
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; \
         style-src 'unsafe-inline'; img-src data:\">\n",
    );
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str(&format!("<title>{title}</title>\n"));
    html.push_str(&format!("<style>\n{UPLOT_CSS}\n{REPORT_CSS}\n</style>\n</head>\n<body>\n"));
    html.push_str(
        "<main id=\"report\"><p>Drawing the report\u{2026}</p>\
         <noscript><p>This report is drawn by JavaScript; allow scripts for this file, or read \
         `stampede report` in a terminal.</p></noscript></main>\n",
    );
    html.push_str("<footer><main><p class=\"hint\">Made by Stampede ");
    html.push_str(env!("CARGO_PKG_VERSION"));
    html.push_str(". Charts by uPlot (MIT licence, below).</p></main></footer>\n");
    html.push_str(&format!("<script type=\"application/json\" id=\"{data_id}\">"));
    html.push_str(&data);
    html.push_str("</script>\n");
    html.push_str(&format!("<script>\n/*\nuPlot 1.6.32, https://github.com/leeoniya/uPlot\n{UPLOT_LICENSE}*/\n"));
    html.push_str(UPLOT_JS);
    for script in [HDR_JS, REPORT_JS, COMPARE_JS, LEVELS_JS] {
        html.push_str("\n</script>\n<script>\n");
        html.push_str(script);
    }
    html.push_str("\n</script>\n</body>\n</html>\n");
    html
}

/// The live dashboard the coordinator serves at `/`: the page holds no
/// data; `dashboard.js` reads `/events` (Server-Sent Events) and draws with
/// report.js's helpers and uPlot.
pub fn dashboard_page() -> String {
    let mut html = String::with_capacity(UPLOT_JS.len() + REPORT_JS.len() + DASHBOARD_JS.len() + 8192);
    head(&mut html, "Stampede dashboard");
    html.push_str(&format!("<style>\n{UPLOT_CSS}\n{REPORT_CSS}\n{DASHBOARD_CSS}\n</style>\n</head>\n<body>\n"));
    html.push_str(
        "<main id=\"dashboard\">\n<div class=\"topbar\"><h1>Stampede</h1><span id=\"connection\" class=\"hint\">\
         connecting\u{2026}</span><form class=\"inline\" method=\"post\" action=\"logout\"><button>Log out</button>\
         </form></div>\n\
         <section id=\"run\" hidden><div id=\"run-head\"><p>Waiting for the run\u{2026}</p></div>\
         <h3>Thresholds so far</h3><div id=\"run-thresholds\"></div>\
         <h3>Operations</h3><div id=\"run-operations\"></div>\
         <figure class=\"chart\" id=\"chart-throughput\"></figure><figure class=\"chart\" id=\"chart-errors\"></figure>\
         <figure class=\"chart\" id=\"chart-latency\"></figure>\
         <h3>Backend nodes</h3><div id=\"run-nodes\"></div><figure class=\"chart\" id=\"chart-shares\"></figure>\
         <h3>Agents of the run</h3><div id=\"run-agents\"></div></section>\n\
         <section><h2>Runs</h2><div id=\"runs\"><p class=\"hint\">Loading\u{2026}</p></div></section>\n\
         <section><h2>Agents</h2><div id=\"agents\"></div></section>\n\
         <noscript><p>The dashboard is drawn by JavaScript; allow scripts for this page, or use \
         the live line of `stampede submit --wait` in a terminal.</p></noscript></main>\n",
    );
    footer(&mut html);
    html.push_str(&format!("<script>\n/*\nuPlot 1.6.32, https://github.com/leeoniya/uPlot\n{UPLOT_LICENSE}*/\n"));
    html.push_str(UPLOT_JS);
    for script in [REPORT_JS, DASHBOARD_JS] {
        html.push_str("\n</script>\n<script>\n");
        html.push_str(script);
    }
    html.push_str("\n</script>\n</body>\n</html>\n");
    html
}

/// The form a browser gives the coordinator's token in, once; `problem`
/// says why the last attempt was refused.
pub fn login_page(problem: Option<&str>) -> String {
    let mut html = String::with_capacity(4096);
    head(&mut html, "Stampede dashboard: log in");
    html.push_str(&format!("<style>\n{REPORT_CSS}\n{DASHBOARD_CSS}\n</style>\n</head>\n<body>\n<main>\n"));
    html.push_str("<h1>Stampede</h1>\n<section><h2>Log in</h2>\n");
    if let Some(problem) = problem {
        html.push_str(&format!("<p class=\"fail\" id=\"login-problem\">{}</p>\n", escape(problem)));
    }
    html.push_str(
        "<p>This coordinator has a token. Give it once here: the dashboard then keeps a session cookie \
         (HttpOnly, SameSite=Strict) for 12 hours; the token itself is not stored in the browser.</p>\n\
         <form class=\"login\" method=\"post\" action=\"login\" id=\"login\">\
         <label for=\"token\">Token (the contents of the coordinator's --token-file, or its STAMPEDE_TOKEN)</label>\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\">Log in</button></form>\n</section>\n</main>\n",
    );
    footer(&mut html);
    html.push_str("</body>\n</html>\n");
    html
}

fn head(html: &mut String, title: &str) {
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str(&format!("<title>{}</title>\n", escape(title)));
}

fn footer(html: &mut String) {
    html.push_str("<footer><main><p class=\"hint\">Stampede ");
    html.push_str(env!("CARGO_PKG_VERSION"));
    html.push_str(". Charts by uPlot (MIT licence, in the page's script).</p></main></footer>\n");
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_cannot_end_their_script_early_and_the_data_is_escaped() {
        for (name, asset) in [
            ("uPlot", UPLOT_JS),
            ("hdr.js", HDR_JS),
            ("report.js", REPORT_JS),
            ("compare.js", COMPARE_JS),
            ("levels.js", LEVELS_JS),
        ] {
            assert!(!asset.to_ascii_lowercase().contains("</script"), "{name}");
        }
        let mut report: Report = serde_json::from_str(
            r#"{"schema":"stampede.report.v1","run_id":"r-1","scenario":{"name":"s","target":{"kind":"kv",
            "endpoints":[]},"workload":"kv","load_model":"closed","connections":1,"pipeline":1,"rate":null},
            "status":"passed","error":null,"started_at_unix_ms":0,"duration_s":1,"warmup_s":0,"agents":[],
            "totals":{"ops":0,"errors":0,"throughput":0,"late_starts":0,"clamped":0,"warmup_ops":0},
            "operations":{},"nodes":{},"intervals":[],"thresholds":[]}"#,
        )
        .expect("report");
        report.scenario.name = "</script><script>alert(1)</script>".to_string();
        let html = page(&report);
        assert_eq!(html.matches("</script>").count(), 6, "the data's one and the five scripts'");
        assert!(html.contains("<title>Stampede passed: &lt;/script&gt;"), "title escaped");
    }
}
