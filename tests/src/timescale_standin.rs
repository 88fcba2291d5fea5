//! A STAND-IN for TimescaleDB's packaging, which cannot be installed on the
//! test machines (Debian has no package; its source is out of reach). It
//! is not TimescaleDB: it has no library and makes no hypertable. What it
//! does reproduce is how an installed extension that is not preloaded
//! behaves, which is what the driver must recognise:
//!
//! - `timescaledb` is listed in `pg_available_extensions` (a control file
//!   in the installation's `extension` directory, `trusted = true` as
//!   TimescaleDB 2's is, so that a role with CREATE on the database may
//!   create it and any other role is refused with SQLSTATE 42501);
//! - `CREATE EXTENSION timescaledb` ends the session that runs it when
//!   `shared_preload_libraries` does not name it, as TimescaleDB's loader
//!   does (here its script terminates its own backend).
//!
//! The stand-in lives in a copy of the system's PostgreSQL installation
//! (programs, libraries and share directory, laid out as Debian lays them
//! out, so the copied `postgres` finds its share directory next to it);
//! the system's own PostgreSQL is not touched.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The extension's version as the stand-in names it.
pub const VERSION: &str = "2.21.0-standin";

/// A copy of PostgreSQL's installation with the stand-in extension.
pub struct Installation {
    _root: tempfile::TempDir,
    /// Its `bin` directory, for [`crate::Postgres::start_from`].
    pub bin: PathBuf,
}

impl Installation {
    pub fn with_timescaledb_standin() -> Self {
        let initdb = crate::postgres_program("initdb");
        let bin = initdb.parent().expect("bin directory");
        // Debian: /usr/lib/postgresql/N/bin and /usr/share/postgresql/N.
        let version = bin.parent().and_then(Path::file_name).expect("version directory").to_owned();
        let system_lib = bin.parent().expect("lib/postgresql/N");
        let system_share = Path::new("/usr/share/postgresql").join(&version);
        assert!(system_share.join("extension").is_dir(), "no {}", system_share.display());
        let root = tempfile::tempdir().expect("tempdir");
        let lib = root.path().join("lib/postgresql").join(&version);
        let share = root.path().join("share/postgresql").join(&version);
        for (from, to) in [(system_lib, &lib), (system_share.as_path(), &share)] {
            std::fs::create_dir_all(to.parent().expect("parent")).expect("directories");
            let status = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
            assert!(status.success(), "copy {} to {}", from.display(), to.display());
        }
        // PostgreSQL runs as user postgres when the tests run as root.
        let status = Command::new("chmod").args(["-R", "a+rX"]).arg(root.path()).status().expect("chmod");
        assert!(status.success(), "chmod {}", root.path().display());
        let extension = share.join("extension");
        crate::write_file(
            &extension,
            "timescaledb.control",
            &format!(
                "# STAND-IN for TimescaleDB (Stampede's tests): no library, no hypertables.\n\
                 comment = 'STAND-IN for TimescaleDB: behaves as an installed extension that is not preloaded'\n\
                 default_version = '{VERSION}'\nrelocatable = false\ntrusted = true\n"
            ),
        );
        crate::write_file(
            &extension,
            &format!("timescaledb--{VERSION}.sql"),
            "-- STAND-IN for TimescaleDB. Without the library in shared_preload_libraries the real\n\
             -- extension's loader ends the session that creates it; so does this script. It cannot\n\
             -- be preloaded (it has no library), so it never gets further.\n\
             DO $$\nBEGIN\n  IF current_setting('shared_preload_libraries') !~ 'timescaledb' THEN\n\
             \x20   PERFORM pg_terminate_backend(pg_backend_pid());\n  END IF;\n\
             \x20 RAISE EXCEPTION 'the TimescaleDB stand-in has no library';\nEND\n$$;\n",
        );
        Self { bin: lib.join("bin"), _root: root }
    }
}
