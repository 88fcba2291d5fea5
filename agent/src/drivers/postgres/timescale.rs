//! Turning the `timescaledb` extension on, and saying why when it cannot
//! be: not installed on the server, installed but not preloaded (its
//! `CREATE EXTENSION` then ends the server session), or refused for lack of
//! privilege. In each of those cases the table stays a plain one and the
//! report's note says which it was and what to do.

use sqlx::{Connection as _, Row as _};

use super::{DriverError, driver_error, open_for_ddl};

/// What became of the extension.
pub(super) enum Timescale {
    /// On, at this version.
    Active(String),
    /// Off; why, for the note.
    Plain(String),
}

/// The extension's version in this database, if it is created here.
pub(super) async fn version(connection: &mut sqlx::PgConnection) -> Result<Option<String>, DriverError> {
    sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        .fetch_optional(connection)
        .await
        .map_err(|e| driver_error("looking for the timescaledb extension", &e))
}

/// Whether `libraries` (the value of `shared_preload_libraries`) names
/// timescaledb.
pub(super) fn preloads_timescaledb(libraries: &str) -> bool {
    libraries.split(',').any(|library| library.trim().trim_matches('"') == "timescaledb")
}

/// Creates the extension when it is installed and can work; otherwise says
/// why not. `CREATE EXTENSION` runs on a connection of its own, since the
/// extension ends the session that creates it when it was not preloaded.
pub(super) async fn enable(connection: &mut sqlx::PgConnection, endpoint: &str) -> Result<Timescale, DriverError> {
    if let Some(version) = version(connection).await? {
        return Ok(Timescale::Active(version));
    }
    let available: Option<String> =
        sqlx::query_scalar("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
            .fetch_optional(&mut *connection)
            .await
            .map_err(|e| driver_error("looking for the timescaledb extension", &e))?;
    let Some(available) = available else {
        return Ok(Timescale::Plain(
            "the timescaledb extension is not installed on the server: pg_available_extensions has no timescaledb; \
             install TimescaleDB's package for this PostgreSQL to get a hypertable"
                .into(),
        ));
    };
    let preload = "add timescaledb to shared_preload_libraries in postgresql.conf and restart the server";
    // Reading the setting may need privileges (pg_read_all_settings).
    let libraries = sqlx::query("SELECT current_setting('shared_preload_libraries')")
        .fetch_one(&mut *connection)
        .await
        .ok()
        .and_then(|row| row.try_get::<String, _>(0).ok());
    if let Some(libraries) = libraries.as_deref()
        && !preloads_timescaledb(libraries)
    {
        return Ok(Timescale::Plain(format!(
            "the timescaledb extension {available} is installed but shared_preload_libraries is `{libraries}`, \
             and CREATE EXTENSION would end the session; {preload}"
        )));
    }
    let mut own = open_for_ddl(endpoint).await?;
    let created = sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb").execute(&mut own).await;
    let why = match created {
        Ok(_) => {
            let _ = own.close().await;
            return Ok(match version(connection).await? {
                Some(version) => Timescale::Active(version),
                None => {
                    Timescale::Plain("CREATE EXTENSION timescaledb succeeded but the extension is not there".into())
                }
            });
        }
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42501") => format!(
            "creating the timescaledb extension was refused for lack of privilege ({}): a superuser, or with \
             TimescaleDB's trusted extension the database's owner, must run CREATE EXTENSION timescaledb in this \
             database",
            error.message()
        ),
        // The session ended: without a word (EOF), or with a FATAL of
        // class 57, "operator intervention".
        Err(error @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) => ended(&error.to_string(), preload),
        Err(sqlx::Error::Database(error)) if error.code().is_some_and(|code| code.starts_with("57")) => {
            ended(error.message(), preload)
        }
        Err(sqlx::Error::Database(error)) if error.message().contains("preload") => {
            format!("the timescaledb extension is not preloaded ({}); {preload}", error.message())
        }
        Err(error) => format!("CREATE EXTENSION timescaledb failed: {error}"),
    };
    Ok(Timescale::Plain(why))
}

fn ended(said: &str, preload: &str) -> String {
    format!(
        "the server ended the session on CREATE EXTENSION timescaledb ({said}), as the extension does when it is \
         installed but not preloaded; {preload}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_preload_libraries_are_read_as_postgresql_writes_them() {
        assert!(preloads_timescaledb("timescaledb"));
        assert!(preloads_timescaledb("pg_stat_statements, timescaledb"));
        assert!(preloads_timescaledb("\"timescaledb\""));
        assert!(!preloads_timescaledb(""));
        assert!(!preloads_timescaledb("timescaledb_toolkit,pg_stat_statements"));
    }
}
