use crate::config::Config;
use crate::store::Store;
use std::process::ExitCode;

pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    Store::create_database_if_missing(&config.database.url).await?;
    let store = Store::connect(&config.database.url, 2).await?;
    store.migrate().await?;
    println!(
        "database is up to date ({} migrations)",
        crate::store::MIGRATOR.iter().count()
    );
    Ok(ExitCode::SUCCESS)
}
