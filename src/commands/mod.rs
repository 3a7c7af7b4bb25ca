//! One module per subcommand; each turns arguments into calls on the library.

pub mod backfill;
pub mod demo;
pub mod migrate;
pub mod once;
pub mod report;
pub mod run;
pub mod status;

use crate::config::Config;
use crate::pass::Pipeline;
use crate::store::Store;
use std::sync::Arc;

/// Connects, applies pending migrations, and builds the pipeline.
pub async fn pipeline(config: Config) -> anyhow::Result<Pipeline> {
    let store = Store::connect(&config.database.url, config.database.max_connections).await?;
    store.migrate().await?;
    Pipeline::new(Arc::new(config), store)
}
