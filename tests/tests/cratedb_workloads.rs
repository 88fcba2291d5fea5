//! The CrateDB workloads run by `stampede run` with two in-process agents
//! against the CrateDB STAND-IN (`stampede_tests::cratedb_standin`; CrateDB
//! itself cannot be installed on the test machines): the rows the report
//! says were inserted are the rows the stand-in holds, refused rows are
//! counted as errors, and https works with a certificate the client trusts.

use std::time::Duration;

use serde_json::Value;
use stampede_tests::cratedb_standin::CrateStandIn;
use stampede_tests::{run_stampede_env, write_file};

/// Runs a scenario against `endpoint`; returns (exit code, report or Null, stderr).
fn run(endpoint: &str, workload: &str, env: &[(&str, &str)]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "name: crate\nduration: 3s\nwarmup: 1s\nagents: 2\ntarget:\n  kind: cratedb\n  endpoints: [\"{endpoint}\"]\n\
         load:\n  connections: 3\nworkload:\n{workload}\n"
    );
    let path = write_file(dir.path(), "scenario.yaml", &text);
    let json = dir.path().join("report.json");
    let json_arg = json.to_string_lossy().into_owned();
    let (code, stdout, stderr) = run_stampede_env(&["run", &path, "--json", &json_arg], env, Duration::from_secs(120));
    let report = std::fs::read_to_string(&json).ok().and_then(|t| serde_json::from_str(&t).ok());
    (code, report.unwrap_or(Value::Null), format!("{stdout}\n{stderr}"))
}

fn count(report: &Value, pointer: &str) -> u64 {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("{pointer} in {report}"))
}

#[test]
fn records_run_inserts_exactly_the_rows_it_reports() {
    let standin = CrateStandIn::start("crate-a", Some(("bench", "s3cret")));
    let endpoint = format!("http://bench:s3cret@{}", standin.address);
    let (code, report, output) =
        run(&endpoint, "  kind: records\n  table: events\n  batch_size: 100\n  objects: 2\n  keep: true", &[]);
    assert_eq!(code, 0, "{output}");
    let rows = count(&report, "/counters/rows");
    let batches = count(&report, "/operations/insert/count") + count(&report, "/totals/warmup_ops");
    assert!(rows > 0);
    assert_eq!(rows, batches * 100, "every batch wrote its 100 rows");
    assert_eq!(standin.row_count("events"), Some(rows as usize), "the stand-in holds exactly the rows reported");
    assert_eq!(standin.column("events", "obj_1").len(), rows as usize, "the extra object columns are filled");
    assert_eq!(standin.rejected.load(std::sync::atomic::Ordering::Relaxed), 0, "no malformed request");
    assert!(!report.to_string().contains("s3cret"), "the password is redacted: {report}");
    let node = &report["nodes"]["crate-a"];
    assert!(node["ops"].as_u64().is_some_and(|n| n > 0), "requests by node name: {}", report["nodes"]);
}

#[test]
fn refused_rows_are_counted_as_errors_and_not_as_written() {
    let standin = CrateStandIn::start("crate-b", None);
    standin.refuse_every_nth_row(10);
    let (code, report, output) = run(
        &standin.address,
        "  kind: records\n  table: refused\n  batch_size: 20\n  keep: true\n  batch_interval: 20ms",
        &[],
    );
    // The default error-rate threshold is not set, so the run passes; the
    // refused rows are in the counters and every batch is a server error.
    assert_eq!(code, 0, "{output}");
    let (rows, failed) = (count(&report, "/counters/rows"), count(&report, "/counters/rows_failed"));
    let batches = count(&report, "/operations/insert/count") + count(&report, "/totals/warmup_ops");
    assert_eq!(rows + failed, batches * 20, "every row offered is written or refused");
    assert_eq!(failed, batches * 2, "one row in ten is refused");
    assert_eq!(standin.row_count("refused"), Some(rows as usize));
    let errors = count(&report, "/operations/insert/errors_by_kind/server");
    assert_eq!(errors, count(&report, "/operations/insert/count"), "each measured batch had refused rows");
}

#[test]
fn query_run_reads_the_preloaded_table_and_drops_it() {
    let standin = CrateStandIn::start("crate-q", None);
    let (code, report, output) =
        run(&standin.address, "  kind: query\n  table: events_q\n  preload_rows: 3000\n  hosts: 100", &[]);
    assert_eq!(code, 0, "{output}");
    for query in ["bucket", "last_point", "range"] {
        assert!(count(&report, &format!("/operations/{query}/count")) > 0, "{query}: {report}");
    }
    let notes = report["notes"].to_string();
    assert!(notes.contains("3000 rows preloaded into events_q"), "{notes}");
    assert!(!standin.has_table("events_q"), "the table is dropped without keep: true");
}

#[test]
fn https_works_with_a_trusted_certificate_and_fails_clearly_without() {
    let standin = CrateStandIn::start_tls("crate-tls", Some(("bench", "s3cret")));
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = write_file(dir.path(), "ca.pem", standin.certificate_pem.as_deref().expect("pem"));
    let endpoint = format!("https://bench:s3cret@{}", standin.address);
    let workload = "  kind: records\n  table: secure\n  batch_size: 50\n  keep: true";
    let (code, report, output) = run(&endpoint, workload, &[("SSL_CERT_FILE", &pem)]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(standin.row_count("secure"), Some(count(&report, "/counters/rows") as usize));

    // Without the certificate the run stops before measuring and says why.
    let untrusted = CrateStandIn::start_tls("crate-tls", None);
    let endpoint = format!("https://{}", untrusted.address);
    let empty = write_file(dir.path(), "empty.pem", "");
    let (code, _, output) = run(&endpoint, workload, &[("SSL_CERT_FILE", &empty)]);
    assert_ne!(code, 0, "{output}");
    assert!(output.to_lowercase().contains("certificate"), "the cause is named: {output}");
    assert!(output.contains(&untrusted.address), "the endpoint is named: {output}");
    assert!(output.contains("SSL_CERT_FILE"), "the way out is named: {output}");
}
