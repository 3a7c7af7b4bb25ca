//! Postgres: the `weekly_retention` table, the ledger, the answer archive,
//! and the dashboard views `report` reads.
//!
//! Queries are checked at run time (not with `query!`), so the crate and its
//! Docker image build without a database.

mod cohorts;
mod force_refresh;
mod ledger;
mod save;
mod status;

pub use cohorts::{column_prefix, CohortWeek};
pub use ledger::{Claim, Scope};
pub use save::{Answered, SaveStats};
pub use status::{AppStatus, WeekRow};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::time::Duration;

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
        let probe = options
            .connect()
            .await
            .with_context(|| format!("cannot connect to the database {}", describe(url)))?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
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
        let mut admin = options
            .clone()
            .database("postgres")
            .connect()
            .await
            .with_context(|| format!("cannot connect to the server of {}", describe(url)))?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            match sqlx::query(&format!("CREATE DATABASE {quoted}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => tracing::info!(database = %name, "created database"),
                // Another replica created it between our check and our CREATE.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create database {name}")),
            }
        }
        Ok(())
    }

    /// Applies pending migrations (concurrent replicas serialise on sqlx's lock).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("applying migrations")?;
        Ok(())
    }

    /// Whether the database answers and every migration is applied (`/readyz`).
    pub async fn ready(&self) -> Result<(), String> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| format!("database unreachable or not migrated: {e}"))?;
        let pending: Vec<_> = MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .collect();
        match pending.first() {
            None => Ok(()),
            Some(m) => Err(format!(
                "migration {} ({}) not applied: run `wxretain migrate`",
                m.version, m.description
            )),
        }
    }
}

fn connect_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| anyhow::anyhow!("database.url {} is not a valid Postgres URL", describe(url)))
}

/// The URL without its password, for messages.
fn describe(url: &SecretString) -> String {
    crate::config::redact_url_password(url.expose_secret())
}
