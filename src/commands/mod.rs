//! One module per subcommand; each turns arguments into calls on the library.

pub mod backfill;
pub mod demo;
pub mod migrate;
pub mod once;
pub mod report;
pub mod run;
mod signals;
pub mod status;

use crate::config::{redact_url_password, Config, Env, Secrets};
use crate::runtime::Runtime;
use crate::store::Store;
use anyhow::Context;
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;

/// A bad argument value that clap could not catch (dates, ranges, apps):
/// exit 2, as for a bad config.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Connects, creating the database if it does not exist, applies pending
/// migrations, wires the runtime, and records the configured apps (the
/// others are retired): what every command that fetches (`once`,
/// `backfill`, the demo) starts with.
pub async fn runtime(config: Config) -> anyhow::Result<Runtime> {
    let store = open(
        &config.database.url,
        config.database.max_connections,
        Create::IfMissing,
    )
    .await?;
    let rt = Runtime::new(Arc::new(config), store)?;
    rt.sync_apps().await?;
    Ok(rt)
}

/// Whether [`open`] creates a database that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// As `migrate` does: for the commands that write (`migrate`, `run`,
    /// `once`, `backfill`).
    IfMissing,
    /// The read-only commands (`status`, `report`): a database that does not
    /// exist is a mistyped URL more often than a first run; say so instead.
    Never,
}

/// Every command's way in: connect (fast, with the cause when it fails),
/// create the database if `create` says so, and apply pending migrations,
/// so no command asks for `wxretain migrate` to be run first.
pub async fn open(
    url: &SecretString,
    max_connections: u32,
    create: Create,
) -> anyhow::Result<Store> {
    let store = match Store::connect(url, max_connections).await {
        Ok(store) => store,
        Err(e) if crate::store::is_missing_database(&e) => match create {
            Create::IfMissing => {
                Store::create_database_if_missing(url).await?;
                Store::connect(url, max_connections).await?
            }
            Create::Never => {
                return Err(anyhow::anyhow!(
                    "{}; `wxretain migrate` creates it (so do `run`, `once` and `backfill`)",
                    crate::telemetry::describe(&e)
                ))
            }
        },
        Err(e) => return Err(e),
    };
    store.migrate().await?;
    Ok(store)
}

/// The config for a command that never calls WeChat (`status`, `report`,
/// `migrate`): validated like any other, but the apps' secrets are not read,
/// so it loads where they are not set.
pub fn config_without_secrets(
    config_flag: Option<&Path>,
    env: &dyn Env,
) -> Result<Config, crate::config::ConfigError> {
    let path = Config::locate(config_flag, env);
    Config::load_with(&path, env, Secrets::Skip)
}

/// For commands that need only the database (`migrate`, `report`):
/// `DATABASE_URL` when set (it wins over the file anyway), so they run
/// without a config file; else the config file's `[database] url`, read
/// without the apps' secrets.
pub fn database_url(config_flag: Option<&Path>, env: &dyn Env) -> anyhow::Result<SecretString> {
    if let Some(url) = database_url_from_env(env)? {
        return Ok(url);
    }
    Ok(config_for_its_url(config_flag, env)?.database.url)
}

/// The config read for its `[database] url` alone, as `DATABASE_URL` is unset.
fn config_for_its_url(config_flag: Option<&Path>, env: &dyn Env) -> anyhow::Result<Config> {
    config_without_secrets(config_flag, env)
        .context("reading the database URL from the config (set DATABASE_URL to skip the file)")
}

/// [`database_url`], and the config (without secrets) when there is one to
/// read: `report` shows the app's `name` from it, and runs without it.
pub fn database_url_and_config(
    config_flag: Option<&Path>,
    env: &dyn Env,
) -> anyhow::Result<(SecretString, Option<Config>)> {
    let Some(url) = database_url_from_env(env)? else {
        let config = config_for_its_url(config_flag, env)?;
        return Ok((config.database.url.clone(), Some(config)));
    };
    if !Config::locate(config_flag, env).exists() {
        return Ok((url, None));
    }
    match config_without_secrets(config_flag, env) {
        Ok(config) => Ok((url, Some(config))),
        Err(e) => {
            tracing::warn!(error = %e, "config not read (DATABASE_URL is set, so it is not needed): apps' names are not shown");
            Ok((url, None))
        }
    }
}

/// `DATABASE_URL`, checked, when set.
fn database_url_from_env(env: &dyn Env) -> anyhow::Result<Option<SecretString>> {
    let Some(url) = env.var("DATABASE_URL") else {
        return Ok(None);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(UsageError(format!(
            "DATABASE_URL {} is not a postgres:// URL",
            redact_url_password(&url)
        ))
        .into());
    }
    Ok(Some(SecretString::from(url)))
}
