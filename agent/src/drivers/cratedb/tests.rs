use super::*;
use crate::drivers::conformance::{self, Operations};
use stampede_tests::cratedb_standin::CrateStandIn;

fn scenario_text(endpoint: &str, workload: &str) -> String {
    format!("name: t\nduration: 1s\ntarget:\n  kind: cratedb\n  endpoints: [\"{endpoint}\"]\nworkload:\n{workload}")
}

const PART: Part = Part { agent_index: 0, key_start: 0, key_end: 10 };

/// The shared conformance checks against the stand-in, with basic
/// authentication from the connection string.
#[tokio::test]
async fn the_driver_passes_the_conformance_checks_against_the_stand_in() {
    let standin =
        std::sync::Arc::new(std::sync::Mutex::new(Some(CrateStandIn::start("crate-1", Some(("bench", "s3cret"))))));
    let address = standin.lock().expect("lock").as_ref().map(|s| s.address.clone()).expect("started");
    let endpoint = format!("http://bench:s3cret@{address}");
    let workload = "  kind: records\n  table: conf\n  batch_size: 5\n  objects: 2\n  keep: true\n";
    let driver: CrateDriver = conformance::build(&scenario_text(&endpoint, workload), &PART);
    driver.setup(std::slice::from_ref(&endpoint), &PART, &Progress::default()).await.expect("setup");
    let operations = Operations {
        write: Operation { index: 0, action: Action::Insert(0) },
        read: Operation { index: 0, action: Action::Insert(1) },
        check_read: |done| done.rows == 5 || done.rows_failed == 5,
        missing: Operation { index: 2, action: Action::Query(QueryKind::Range, 1_000_000) },
        check_missing: |done| done.rows == 0,
    };
    let restart = async || {
        // The stand-in stops (closing its connections) and a new one
        // takes its port, as a restarted node would.
        drop(standin.lock().expect("lock").take());
        let again = CrateStandIn::start_at(&address, "crate-1", Some(("bench", "s3cret")));
        *standin.lock().expect("lock") = Some(again);
        // The new stand-in starts empty: create the table again.
        driver.setup(std::slice::from_ref(&endpoint), &PART, &Progress::default()).await.expect("setup again");
    };
    let target = conformance::Target {
        endpoint: endpoint.clone(),
        url: |a| format!("http://{a}"),
        driver_for: Box::new(|endpoint| conformance::build(&scenario_text(endpoint, workload), &PART)),
    };
    conformance::check(&driver, target, operations, restart).await;
    let mut connection = driver.connect(&endpoint).await.expect("connect");
    assert_eq!(connection.node(), "crate-1");
    // The same batch again: every row is a duplicate key, counted as failed.
    let again = connection.execute(&Operation { index: 0, action: Action::Insert(0) }).await.expect("answered");
    assert_eq!((again.rows, again.rows_failed), (0, 5));
    // Wrong credentials are the server's refusal, naming the code.
    let wrong = format!("http://bench:nope@{address}");
    let error = driver.connect(&wrong).await.err().expect("401");
    assert!(error.message.contains("not authorized") && !error.message.contains("nope"), "{}", error.message);
}

#[test]
fn bulk_answers_are_checked_strictly() {
    assert_eq!(bulk_counts(&json!({"results": [{"rowcount": 1}, {"rowcount": -2}]}), 2), Ok((1, 1)));
    assert_eq!(bulk_counts(&json!({"results": [{"rowcount": 1}]}), 2).map_err(|e| e.kind), Err(ErrorKind::Protocol));
    assert_eq!(bulk_counts(&json!({"rowcount": 2}), 2).map_err(|e| e.kind), Err(ErrorKind::Protocol));
    let error = crate_error(404, &json!({"message": "Relation 'x' unknown", "code": 4041}));
    assert!(error.message.contains("unknown relation") && error.message.contains("4041"), "{}", error.message);
}

#[test]
fn credentials_in_the_endpoint_are_decoded_as_rfc_3986_says() {
    let endpoint = Endpoint::parse("http://bench:p+a%25b%40c%3Ad@127.0.0.1:4200", None).expect("endpoint");
    assert_eq!(endpoint.authorization().as_deref(), Some("bench:p+a%b@c:d"));
    assert!(!endpoint.shown.contains("p+a"), "{}", endpoint.shown);
    let error = Endpoint::parse("ftp://127.0.0.1:4200", None).expect_err("refused");
    assert!(error.message.contains("`ftp` is not http or https"), "{}", error.message);
    let error = Endpoint::parse("127.0.0.1:4200", Some("X Served")).expect_err("refused");
    assert!(error.message.contains("node_header"), "{}", error.message);
}

/// `last_point` reads the newest row of each region: as many rows as the
/// table has regions.
#[tokio::test]
async fn last_point_returns_the_newest_row_of_each_region() {
    let standin = CrateStandIn::start("crate-l", None);
    let workload = "  kind: records\n  table: newest\n  batch_size: 50\n  keep: true\n";
    let driver: CrateDriver = conformance::build(&scenario_text(&standin.address, workload), &PART);
    driver.setup(std::slice::from_ref(&standin.address), &PART, &Progress::default()).await.expect("setup");
    let mut connection = driver.connect(&standin.address).await.expect("connect");
    for batch in 0..4 {
        connection.execute(&Operation { index: 0, action: Action::Insert(batch) }).await.expect("insert");
    }
    let regions: std::collections::BTreeSet<String> =
        standin.column("newest", "region").iter().filter_map(|r| r.as_str().map(String::from)).collect();
    let done = connection.execute(&Operation { index: 1, action: Action::Query(QueryKind::LastPoint, 0) }).await;
    assert_eq!(done.expect("answered").rows as usize, regions.len(), "one row per region of {regions:?}");
    assert_eq!(standin.rejected.load(std::sync::atomic::Ordering::Relaxed), 0, "the stand-in took the statement");
}
