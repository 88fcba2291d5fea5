//! The `timescaledb` target against PostgreSQL with the TimescaleDB
//! STAND-IN extension installed but not preloaded
//! (`stampede_tests::timescale_standin`; TimescaleDB cannot be installed
//! on the test machines): whoever runs it, the run goes on with a plain
//! table, and the note says which obstacle it met and what to do.

use std::time::Duration;

use stampede_tests::timescale_standin::{Installation, VERSION};
use stampede_tests::{Postgres, run_local};

#[test]
fn an_installed_timescaledb_that_is_not_preloaded_is_named_and_the_table_stays_plain() {
    let installation = Installation::with_timescaledb_standin();
    let server = Postgres::start_from(&installation.bin);
    let available = server.psql("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'");
    assert_eq!(available, VERSION, "the stand-in is installed");
    // A role that may create trusted extensions (CREATE on the database)
    // and one that may not; both may create tables.
    server.psql(
        "CREATE ROLE db_owner LOGIN; GRANT CREATE ON DATABASE postgres TO db_owner; \
         GRANT CREATE ON SCHEMA public TO db_owner; \
         CREATE ROLE writer LOGIN; GRANT CREATE ON SCHEMA public TO writer",
    );
    let cases = [
        // The superuser can read shared_preload_libraries: nothing is tried.
        ("postgres", "the timescaledb extension 2.21.0-standin is installed but shared_preload_libraries is ``"),
        // Others cannot: CREATE EXTENSION is tried on a connection of its
        // own, and the session it ends is recognised.
        ("db_owner", "the server ended the session on CREATE EXTENSION timescaledb"),
        ("writer", "creating the timescaledb extension was refused for lack of privilege"),
    ];
    for (user, said) in cases {
        let table = format!("cpu_{user}");
        let text = format!(
            "name: ts\nduration: 2s\nwarmup: 0s\nagents: 1\ntarget:\n  kind: timescaledb\n  \
             endpoints: [\"postgres://{user}@127.0.0.1:{}/postgres\"]\nload:\n  connections: 2\n\
             workload:\n  kind: metrics\n  table: {table}\n  hosts: 10\n  batch_size: 50\n  keep: true\n",
            server.port
        );
        let run = run_local(&text, &[], &[], Duration::from_secs(120));
        assert_eq!(run.code, 0, "{user}: {}\n{}", run.stdout, run.stderr);
        let notes = run.report["notes"].to_string();
        assert!(notes.contains(&format!("table {table} is a plain table ({said}")), "{user}: {notes}");
        if user != "writer" {
            assert!(notes.contains("add timescaledb to shared_preload_libraries"), "{user}: the way out: {notes}");
        }
        let rows: u64 = server.psql(&format!("SELECT count(*) FROM {table}")).parse().expect("count");
        assert_eq!(Some(rows), run.report["counters"]["rows"].as_u64(), "{user}: the rows are there all the same");
        assert_eq!(server.psql("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"), "0");
    }
}
