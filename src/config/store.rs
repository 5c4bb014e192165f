//! The store's settings: where it lives ([`Database`]: a SQLite file or memory, or a
//! PostgreSQL URL shared by every replica), the server secrets that key its HMACs and
//! encryption, its deadline, SQLite's `synchronous` level and PostgreSQL's pool.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::{parse_duration, positive_duration, redact_url};
use super::settings::{
    ENV_ATTEMPT_RETENTION, ENV_DATABASE_URL, ENV_DB_POOL_SIZE, ENV_DB_STATEMENT_TIMEOUT,
    ENV_SECRET, ENV_SQLITE_SYNCHRONOUS, ENV_STORE_TIMEOUT,
};
use super::source::Reader;
use crate::crypto::ServerSecrets;

component! {
    /// The store's settings.
    #[derive(Clone, Debug)]
    pub struct StoreSettings / StoreDraft {
        pub database: Database,
        /// The server secrets, newest first. `None`: generated once and kept beside the SQLite file.
        pub secret: Option<ServerSecrets>,
        /// Deadline of each store call (and of the Redis limiter's).
        pub timeout: Duration,
        pub sqlite_synchronous: SqliteSync,
        /// PostgreSQL store: connections per replica.
        pub pool_size: u32,
        /// PostgreSQL store: server-side `statement_timeout` of every connection.
        pub statement_timeout: Duration,
        /// How long attempt-log rows are kept.
        pub attempt_retention: Duration,
    }
}

/// SQLite's `synchronous` level in WAL mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteSync {
    Full,
    Normal,
}

/// Where a SQLite database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqliteLocation {
    /// A file (created if missing).
    File(PathBuf),
    /// In memory: nothing survives the process (tests and demos).
    Memory,
}

/// Where the store lives (`VERIFYD_DATABASE_URL`, parsed once here).
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(SqliteLocation),
    /// A PostgreSQL database shared by every replica (`postgres://` or `postgresql://`).
    Postgres {
        url: String,
    },
}

impl Database {
    /// Whether several replicas share this store (limits must then be shared too).
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres { .. })
    }
}

/// The URL through [`redact_url`], so `Debug` never prints a password or a secret parameter.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(SqliteLocation::File(path)) => write!(f, "SqliteFile({path:?})"),
            Database::Sqlite(SqliteLocation::Memory) => write!(f, "SqliteMemory"),
            Database::Postgres { url } => write!(f, "Postgres({})", redact_url(url)),
        }
    }
}

/// Reads the store's settings.
pub(super) fn read(r: &mut Reader<'_>) -> StoreDraft {
    let database = r.parse(ENV_DATABASE_URL, parse_database_url);
    let secret = {
        let (value, _) = r.raw(ENV_SECRET);
        match value.filter(|v| !v.trim().is_empty()) {
            None => Some(None),
            Some(v) => match ServerSecrets::parse(&v) {
                Ok(s) => Some(Some(s)),
                Err(e) => {
                    r.problem(ENV_SECRET, &v, e.to_string());
                    None
                }
            },
        }
    };
    StoreDraft {
        database,
        secret,
        timeout: r.parse(ENV_STORE_TIMEOUT, positive_duration),
        sqlite_synchronous: r.parse(ENV_SQLITE_SYNCHRONOUS, |t| match t {
            "full" => Ok(SqliteSync::Full),
            "normal" => Ok(SqliteSync::Normal),
            _ => Err("expected `full` or `normal`".to_owned()),
        }),
        pool_size: r.parse(ENV_DB_POOL_SIZE, |t| match t.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err("expected a number of connections from 1 to 1000".to_owned()),
        }),
        statement_timeout: r.parse(ENV_DB_STATEMENT_TIMEOUT, positive_duration),
        attempt_retention: r.parse(ENV_ATTEMPT_RETENTION, |t| {
            let d = parse_duration(t)?;
            if d < Duration::from_secs(3600) {
                return Err("must be at least one hour".to_owned());
            }
            Ok(d)
        }),
    }
}
fn parse_database_url(text: &str) -> Result<Database, String> {
    if let Some(rest) = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"))
    {
        if rest.is_empty() {
            return Err("expected postgres://user[:password]@host[:port]/database".to_owned());
        }
        return Ok(Database::Postgres {
            url: text.to_owned(),
        });
    }
    let rest = text
        .strip_prefix("sqlite://")
        .or_else(|| text.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            "expected sqlite://<path> (or sqlite::memory:) or postgres://user@host/database"
                .to_owned()
        })?;
    let path_part = rest.split('?').next().unwrap_or_default();
    if path_part.is_empty() {
        return Err("expected sqlite://<path> (or sqlite::memory:)".to_owned());
    }
    if path_part == ":memory:" {
        return Ok(Database::Sqlite(SqliteLocation::Memory));
    }
    Ok(Database::Sqlite(SqliteLocation::File(PathBuf::from(
        path_part,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::config::*;

    #[test]
    fn a_postgres_store_needs_an_explicit_secret_and_warns_about_a_memory_limiter() {
        let url = "postgres://verifyd:hunter2-db-pass@127.0.0.1:5432/verifyd";
        let err = config(&[(ENV_DATABASE_URL, url)]).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].name, ENV_SECRET);

        let c = config(&[
            (ENV_DATABASE_URL, url),
            (ENV_SECRET, "0123456789abcdef0123456789abcdef-secret"),
        ])
        .unwrap();
        assert!(c.store.database.is_shared());
        assert!(
            c.warnings.iter().any(|w| w.contains(ENV_REDIS_URL)),
            "{:?}",
            c.warnings
        );
        assert!(!c.describe().contains("hunter2"), "{}", c.describe());
        assert!(!format!("{c:?}").contains("hunter2"));

        let c = config(&[
            (ENV_DATABASE_URL, "postgresql://127.0.0.1/verifyd"),
            (ENV_SECRET, "0123456789abcdef0123456789abcdef-secret"),
            (ENV_REDIS_URL, "redis://:redis-pass-xyz@127.0.0.1:6379/0"),
            (ENV_API_KEYS, "an-api-key-of-some-length"),
        ])
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.limits.redis_url.is_some());
        assert_eq!(c.limits.redis_prefix, "verifyd:");
        assert_eq!(c.store.pool_size, 10);
        assert_eq!(c.store.statement_timeout, Duration::from_secs(5));
        assert!(!c.describe().contains("redis-pass-xyz"), "{}", c.describe());
    }

    #[test]
    fn bad_shared_mode_settings_are_named() {
        let err = config(&[
            (ENV_REDIS_URL, "http://127.0.0.1:6379"),
            (ENV_DB_POOL_SIZE, "0"),
            (ENV_DB_STATEMENT_TIMEOUT, "0"),
        ])
        .unwrap_err();
        let names: Vec<&str> = err.problems.iter().map(|p| p.name.as_str()).collect();
        for name in [ENV_DB_POOL_SIZE, ENV_DB_STATEMENT_TIMEOUT, ENV_REDIS_URL] {
            assert!(names.contains(&name), "{name} missing from {err}");
        }
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    #[test]
    fn the_secret_may_list_several_secrets_newest_first() {
        let c = config(&[(
            ENV_SECRET,
            "newer-secret-0123456789-0123456789-abc, older-secret-0123456789-0123456789-abc",
        )])
        .unwrap();
        let secrets = c.store.secret.unwrap();
        assert_eq!(secrets.len(), 2);
        assert!(secrets.newest().expose().starts_with("newer"));
        let err =
            config(&[(ENV_SECRET, "newer-secret-0123456789-0123456789-abc,short")]).unwrap_err();
        assert!(err.to_string().contains("secret #2"), "{err}");
        assert!(!err.to_string().contains("newer-secret"), "{err}");
    }
}
