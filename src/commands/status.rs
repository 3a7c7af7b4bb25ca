//! `wxretain status`: per-app health from the ledger, as a table or JSON.

use crate::config::Config;
use crate::store::{AppStatus, Store};
use chrono::Utc;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: Config, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&config.database.url, 2).await?;
    store.ready().await.map_err(anyhow::Error::msg)?;
    let p = crate::pass::Pipeline::new(std::sync::Arc::new(config), store)?;
    let (first, last) = p.kept_weeks(Utc::now());
    let apps = p.all_apps().apps;
    let statuses = p.store.app_status(&apps, first, last).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        print!("{}", table(&statuses, first, last));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn table(
    statuses: &[AppStatus],
    first: crate::domain::NaturalWeek,
    last: crate::domain::NaturalWeek,
) -> String {
    let mut out = format!(
        "weeks {first} .. {} ({} weeks)\n",
        last.sunday(),
        first.weeks_until(last) + 1
    );
    out.push_str(&format!(
        "{:<20} {:>8} {:>8} {:>7} {:>7} {:>6} {:>7} {:<11} {:<17} {}\n",
        "APPID",
        "COMPLETE",
        "MATURING",
        "MISSING",
        "FAILING",
        "UNAVL",
        "SUSPECT",
        "OLDEST GAP",
        "LAST SUCCESS",
        "LAST ERROR"
    ));
    for s in statuses {
        let error = match (&s.last_errcode, &s.last_error) {
            (Some(code), Some(text)) => format!("[{code}] {text}"),
            (None, Some(text)) => text.clone(),
            _ => "-".to_string(),
        };
        out.push_str(&format!(
            "{:<20} {:>8} {:>8} {:>7} {:>7} {:>6} {:>7} {:<11} {:<17} {}\n",
            s.appid,
            s.complete,
            s.maturing,
            s.missing,
            s.failing,
            s.unavailable,
            s.suspect,
            s.oldest_gap
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            s.last_success
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "never".into()),
            error.chars().take(80).collect::<String>()
        ));
    }
    out
}
