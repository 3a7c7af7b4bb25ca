//! Postgres: the `weekly_retention` table, the ledger, the answer archive,
//! and the dashboard views `report` reads.
//!
//! Queries are sqlx's macros (`query!`, `query_as!`, `query_scalar!`),
//! checked by the compiler against the migrated schema; the build reads that
//! schema from the committed `.sqlx/` metadata (`SQLX_OFFLINE=true` in
//! `.cargo/config.toml`), so the crate and its Docker image build without a
//! database. docs/development.md, "Changing a query or a migration", says how
//! to refresh it.

mod apps;
mod cohorts;
mod error;
mod force_refresh;
mod lease;
mod ledger;
mod save;
mod schema;
mod status;

pub use apps::KnownApp;
pub use cohorts::{CohortPeriod, Gap};
pub use error::{Result, StoreError};
pub use ledger::{Claim, Failure, Range, Requeue, Scope};
pub use save::{Answered, SaveStats};
pub use schema::SchemaError;
pub use status::{AppStatus, FailingPeriod, PeriodRow, StateCounts, StatusRange};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// How long a command waits for the database to answer a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Appids as the `text[]` the queries bind.
fn app_strings(apps: &[crate::domain::AppId]) -> Vec<String> {
    apps.iter().map(ToString::to_string).collect()
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects with a bounded pool. Fails fast if the server is unreachable.
    pub async fn connect(url: &SecretString, max_connections: u32) -> anyhow::Result<Self> {
        let options = connect_options(url)?;
        // The pool retries a refused connection until acquire_timeout and then
        // says only "pool timed out": one direct connection first fails fast,
        // with the cause (refused, auth, no such database).
        // A server that accepts and then says nothing (a proxy to nowhere)
        // would hold the command silent for minutes: bounded, and said.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the database {} did not answer within {} s",
                    describe(url),
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
            .with_context(|| format!("cannot connect to the database {}", describe(url)))?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to the database {}", describe(url)))?;
        Ok(Self { pool })
    }

    /// A pool that connects on first use: for the daemon, which must start
    /// (and report itself not ready) while the database is down.
    pub fn connect_lazy(url: &SecretString, max_connections: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(connect_options(url)?);
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the database named in `url` if it does not exist yet.
    pub async fn create_database_if_missing(url: &SecretString) -> anyhow::Result<()> {
        let options = connect_options(url)?;
        let name = options.get_database().unwrap_or("postgres").to_string();
        let admin_options = options.clone().database("postgres");
        let mut admin = tokio::time::timeout(CONNECT_TIMEOUT, admin_options.connect())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the server of {} did not answer within {} s",
                    describe(url),
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
            .with_context(|| format!("cannot connect to the server of {}", describe(url)))?;
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
            name
        )
        .fetch_one(&mut admin)
        .await?;
        if !exists {
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            // Built at run time: a database name is an identifier, which
            // cannot be a bind parameter (nor known when compiling).
            match sqlx::query(&format!("CREATE DATABASE {quoted}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => tracing::info!(database = %name, "created database"),
                // Another replica created it between our check and our CREATE:
                // 42P04 if its CREATE had committed before ours began, 23505 on
                // pg_database's unique name index if both ran at once. The
                // migrations after this serialise on sqlx's advisory lock,
                // which is taken before the migrations table is created.
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create database {name}")),
            }
        }
        Ok(())
    }

    /// Applies pending migrations (concurrent replicas serialise on sqlx's
    /// lock). A schema this release cannot use (newer, failed, modified) is
    /// left alone and returned as a [`SchemaError`], as is a database that
    /// cannot be reached, so callers can tell the two apart.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.schema_state().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_behind() => {}
            Err(e) => return Err(e.into()),
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(sqlx::Error::Io(_))
                | sqlx::migrate::MigrateError::Execute(sqlx::Error::PoolTimedOut) => {
                    anyhow::Error::new(SchemaError::Unreachable(e.to_string()))
                }
                other => anyhow::Error::new(other),
            })
            .context("applying migrations")?;
        Ok(())
    }

    /// The database's clock: the one every replica shares.
    pub async fn db_now(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        let now = sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
            .fetch_one(&self.pool)
            .await?;
        Ok(now)
    }

    /// Whether the database answers with exactly this release's schema (`/readyz`).
    pub async fn ready(&self) -> Result<(), String> {
        self.schema_state().await.map_err(|e| e.to_string())
    }
}

/// Postgres' "invalid catalog name": the database named in the URL does not exist.
const NO_SUCH_DATABASE: &str = "3D000";

/// Whether `error` (from [`Store::connect`], say) is the server saying that
/// the database named in the URL does not exist: what creating it fixes.
pub fn is_missing_database(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_missing_database_error)
    })
}

fn is_missing_database_error(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.code().as_deref() == Some(NO_SUCH_DATABASE))
}

fn connect_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    use sqlx::ConnectOptions;
    let options = PgConnectOptions::from_str(&without_unread_secrets(url.expose_secret()))
        .map_err(|_| {
            anyhow::anyhow!("database.url {} is not a valid Postgres URL", describe(url))
        })?;
    // sqlx warns of every statement over a second, its whole SQL included;
    // at 10,000 apps `status` and the per-pass gauges read the whole ledger
    // and take that long by design, so a warning on each would be noise in
    // every log. At INFO they show when asked for (RUST_LOG=sqlx=info).
    // wxretain's transactions last milliseconds. One left open (the process
    // was stopped, SIGSTOP or a frozen VM, mid-write) would hold its row
    // locks and block every replica's planning and backfills: the server
    // ends such a session after 30 s idle inside a transaction.
    Ok(options
        .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1))
        .options([("idle_in_transaction_session_timeout", "30s")]))
}

/// sqlx logs every query parameter it does not read, value and all: the
/// secret ones it does not read (`sslpassword`, a `PASSWORD` in capitals) are
/// dropped before it sees them, with a warning that names only the key.
fn without_unread_secrets(url: &str) -> String {
    let unread = |key: &str| crate::config::is_secret_url_param(key) && key != "password";
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    if !parsed.query_pairs().any(|(k, _)| unread(&k)) {
        return url.to_string();
    }
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        if unread(&key) {
            tracing::warn!(parameter = %key, "database.url: the Postgres driver does not read this parameter; ignored (its value is not shown)");
        } else {
            kept.push((key.into_owned(), value.into_owned()));
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

/// The URL without its password, for messages.
fn describe(url: &SecretString) -> String {
    crate::config::redact_url_password(url.expose_secret())
}
