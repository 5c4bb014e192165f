//! Doctor's store checks: the database reachable and its schema as this binary expects
//! (read, never migrated), and the configured secrets against its key-check records.

use crate::app::secret_path;
use crate::config::{Config, Database, SqliteLocation};
use crate::crypto::{ServerSecret, ServerSecrets};
use crate::error::Chain;
use crate::rotation::{self, RotationError};
use crate::store::{PostgresSettings, PostgresStore, SchemaStatus, SqliteStore, Store};

use super::Report;

/// The store's check; the store itself when its schema is this binary's, so the secrets can be
/// checked against its key-check records.
pub(super) async fn store(report: &mut Report, config: &Config) -> Option<Box<dyn Store>> {
    let path = match &config.store.database {
        Database::Sqlite(SqliteLocation::Memory) => {
            report.info(
                "store",
                "SQLite in memory: nothing to check, nothing survives a restart",
            );
            return None;
        }
        Database::Sqlite(SqliteLocation::File(path)) => path,
        Database::Postgres { url } => return postgres(report, config, url).await,
    };
    let opened = SqliteStore::open_existing(path, config.store.timeout).await;
    let store = match opened {
        Ok(Some(store)) => store,
        Ok(None) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if dir.is_dir() {
                report.pass(
                    "store",
                    format!(
                        "{} does not exist yet: `verifyd serve` creates and migrates it",
                        path.display()
                    ),
                );
            } else {
                report.fail(
                    "store",
                    format!("{} cannot be created: {} is not a directory", path.display(), dir.display()),
                    "create the directory (writable by the service's user) or fix VERIFYD_DATABASE_URL",
                );
            }
            return None;
        }
        Err(e) => {
            report.fail(
                "store",
                format!("{} cannot be opened: {}", path.display(), Chain(&e)),
                "check VERIFYD_DATABASE_URL and the file's permissions (run doctor as the service's user)",
            );
            return None;
        }
    };
    match (store.ping().await, store.schema_status().await) {
        (Ok(()), Ok(status)) if !status.unknown.is_empty() => report.fail(
            "store",
            format!(
                "{} was migrated by a newer verifyd (unknown migration(s) {:?})",
                path.display(),
                status.unknown
            ),
            "run the verifyd version that migrated it, or restore a backup made for this one",
        ),
        (Ok(()), Ok(status)) if !status.pending.is_empty() => report.pass(
            "store",
            format!(
                "{} reachable; {} migration(s) will be applied at the next start ({})",
                path.display(),
                status.pending.len(),
                status.pending.join(", ")
            ),
        ),
        (Ok(()), Ok(status)) => report.pass(
            "store",
            format!(
                "{} reachable, schema up to date ({} migrations)",
                path.display(),
                status.applied
            ),
        ),
        (Err(e), _) | (_, Err(e)) => report.fail(
            "store",
            format!("{} does not answer: {}", path.display(), Chain(&e)),
            "check the file, its directory and their permissions",
        ),
    }
    Some(Box::new(store))
}

/// PostgreSQL: reachable, and migrated exactly to this binary's schema. Read without
/// migrating: a database that lacks migrations is reported, not changed.
async fn postgres(report: &mut Report, config: &Config, url: &str) -> Option<Box<dyn Store>> {
    let store = match PostgresStore::without_migrating(
        url,
        PostgresSettings {
            pool_size: 1,
            acquire_timeout: config.store.timeout,
            statement_timeout: config.store.statement_timeout,
        },
    ) {
        Ok(store) => store,
        Err(e) => {
            report.fail(
                "store",
                format!("PostgreSQL cannot be used: {e}"),
                "check VERIFYD_DATABASE_URL",
            );
            return None;
        }
    };
    let status = match store.schema_status().await {
        Ok(status) => status,
        Err(e) => {
            report.fail(
                "store",
                format!("PostgreSQL does not answer: {e}"),
                "check VERIFYD_DATABASE_URL, that the database server runs and the database user's rights",
            );
            return None;
        }
    };
    postgres_schema(report, &status);
    status
        .up_to_date()
        .then(|| Box::new(store) as Box<dyn Store>)
}

fn postgres_schema(report: &mut Report, status: &SchemaStatus) {
    if !status.unknown.is_empty() {
        report.fail(
            "store",
            format!(
                "PostgreSQL was migrated by a newer verifyd (unknown migration(s) {:?})",
                status.unknown
            ),
            "run the verifyd version that migrated it, or restore a backup made for this one",
        );
    } else if status.applied == 0 {
        report.fail(
            "store",
            format!(
                "PostgreSQL reachable but not migrated: none of the {} migration(s) applied (doctor changes nothing)",
                status.pending.len()
            ),
            "start `verifyd serve` once (it migrates at start), or check that VERIFYD_DATABASE_URL names verifyd's database",
        );
    } else if !status.pending.is_empty() {
        report.fail(
            "store",
            format!(
                "PostgreSQL reachable but behind: {} migration(s) missing ({}); doctor changes nothing",
                status.pending.len(),
                status.pending.join(", ")
            ),
            "start this verifyd's `verifyd serve` once (it migrates at start) before switching traffic",
        );
    } else {
        report.pass(
            "store",
            format!(
                "PostgreSQL reachable, schema up to date ({} migrations)",
                status.applied
            ),
        );
    }
}

/// The configured secrets, or the generated one if its file exists (never created here).
fn configured_secrets(config: &Config) -> Result<Option<ServerSecrets>, String> {
    if let Some(secrets) = &config.store.secret {
        return Ok(Some(secrets.clone()));
    }
    let Database::Sqlite(SqliteLocation::File(path)) = &config.store.database else {
        return Ok(None);
    };
    let file = secret_path(path);
    match std::fs::read_to_string(&file) {
        Ok(text) => ServerSecret::new(secrecy::SecretString::from(text.trim().to_owned()))
            .map(|s| Some(ServerSecrets::single(s)))
            .map_err(|e| format!("the secret in {} {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{} cannot be read: {e}", file.display())),
    }
}

pub(super) async fn secrets(report: &mut Report, config: &Config, store: Option<&dyn Store>) {
    let secrets = match configured_secrets(config) {
        Ok(Some(s)) => s,
        Ok(None) => {
            report.pass(
                "secrets",
                "VERIFYD_SECRET is unset: `verifyd serve` generates one beside the database (development only)",
            );
            return;
        }
        Err(e) => {
            report.fail(
                "secrets",
                e,
                "set VERIFYD_SECRET (that file is read when it is unset)",
            );
            return;
        }
    };
    let configured = secrets
        .iter()
        .map(|s| s.key_id().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let source = if config.store.secret.is_some() {
        "VERIFYD_SECRET"
    } else {
        "the generated secret file"
    };
    let Some(store) = store else {
        report.pass(
            "secrets",
            format!(
                "{} secret(s) from {source} (key id {configured})",
                secrets.len()
            ),
        );
        return;
    };
    match rotation::check_keys(store, &secrets).await {
        Ok(found) if found.stored.is_empty() => report.pass(
            "secrets",
            format!(
                "{} secret(s) from {source} (key id {configured}); no key-check record yet (written at the next start)",
                secrets.len()
            ),
        ),
        Ok(found) => {
            report.pass(
                "secrets",
                format!(
                    "{} secret(s) from {source} (key id {configured}) open the database's key-check record(s)",
                    secrets.len()
                ),
            );
            let newest = secrets.newest().key_id();
            let older: Vec<String> = found
                .stored
                .iter()
                .filter(|id| **id != newest)
                .map(ToString::to_string)
                .collect();
            if !older.is_empty() {
                report.info(
                    "rotation",
                    format!(
                        "data may still be sealed under key id {}: run `verifyd rekey` before dropping that secret",
                        older.join(", ")
                    ),
                );
            }
        }
        // A database migrated before key checks existed: nothing to compare yet.
        Err(RotationError::Store(e)) if Chain(&e).to_string().contains("no such table") => report.pass(
            "secrets",
            format!(
                "{} secret(s) from {source} (key id {configured}); no key-check record yet (written at the next start)",
                secrets.len()
            ),
        ),
        Err(e @ RotationError::UnknownKeys { .. }) => report.fail(
            "secrets",
            e.to_string(),
            "set VERIFYD_SECRET=<new>,<old> with the secret of that key id, then run `verifyd rekey`",
        ),
        Err(e) => report.fail(
            "secrets",
            e.to_string(),
            "set VERIFYD_SECRET to the secret(s) this database was written with",
        ),
    }
}
