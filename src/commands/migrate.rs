//! `wxretain migrate`: create the database if missing and apply migrations.
//! Needs only the database URL, not the apps' secrets.

use crate::store::Store;
use secrecy::SecretString;
use std::process::ExitCode;

pub async fn run(url: &SecretString) -> anyhow::Result<ExitCode> {
    Store::create_database_if_missing(url).await?;
    let store = Store::connect(url, 2).await?;
    store.migrate().await?;
    println!(
        "database is up to date ({} migrations)",
        crate::store::MIGRATOR.iter().count()
    );
    Ok(ExitCode::SUCCESS)
}
