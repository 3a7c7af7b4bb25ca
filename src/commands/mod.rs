//! One module per subcommand; each turns arguments into calls on the library.

pub mod backfill;
pub mod demo;
pub mod migrate;
pub mod once;
pub mod report;
pub mod run;
mod signals;
pub mod status;

use crate::cli::UsageError;
use crate::config::{redact_url_password, Config, Env};
use crate::pass::Pipeline;
use crate::store::Store;
use anyhow::Context;
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;

/// Connects, applies pending migrations, builds the pipeline, and records
/// the configured apps (the others are retired).
pub async fn pipeline(config: Config) -> anyhow::Result<Pipeline> {
    let store = Store::connect(&config.database.url, config.database.max_connections).await?;
    store.migrate().await?;
    let p = Pipeline::new(Arc::new(config), store)?;
    p.sync_apps().await?;
    Ok(p)
}

/// For commands that need only the database (`migrate`, `report`):
/// `DATABASE_URL` when set (it wins over the file anyway), so a laptop without
/// the apps' secrets can run them; else the config file's `[database] url`,
/// which means loading a valid config.
pub fn database_url(config_flag: Option<&Path>, env: &dyn Env) -> anyhow::Result<SecretString> {
    if let Some(url) = env.var("DATABASE_URL") {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(UsageError(format!(
                "DATABASE_URL {} is not a postgres:// URL",
                redact_url_password(&url)
            ))
            .into());
        }
        return Ok(SecretString::from(url));
    }
    let path = Config::locate(config_flag, env);
    let config = Config::load(&path, env)
        .context("reading the database URL from the config (set DATABASE_URL to skip the file)")?;
    Ok(config.database.url)
}
