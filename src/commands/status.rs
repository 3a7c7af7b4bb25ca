//! `wxretain status`: per-app health from the ledger, as a table or JSON.

use crate::config::Config;
use crate::domain::{AppId, Grain, Period};
use crate::store::{AppStatus, Store};
use chrono::Utc;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list apps removed from the config (retired), whose periods stay
    /// in the ledger.
    #[arg(long)]
    pub all: bool,
}

pub async fn run(config: Config, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&config.database.url, 2).await?;
    store.ready().await.map_err(anyhow::Error::msg)?;
    let p = crate::pass::Pipeline::new(std::sync::Arc::new(config), store)?;
    let mut statuses = grain_statuses(&p, Utc::now()).await?;
    if args.all {
        add_retired(&p, &mut statuses).await?;
    }
    if args.json {
        let all: Vec<&AppStatus> = statuses.iter().flat_map(|(_, _, s)| s).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for (first, last, s) in &statuses {
            print!("{}", table(s, *first, *last));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Per grain that any app collects: its kept periods and each collecting
/// app's status over them.
pub async fn grain_statuses(
    p: &crate::pass::Pipeline,
    as_of: chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<(Period, Period, Vec<AppStatus>)>> {
    let mut out = Vec::new();
    for grain in Grain::ALL {
        let apps = p.config.apps_collecting(grain);
        if apps.is_empty() {
            continue;
        }
        let (first, last) = p.kept_periods(grain, as_of);
        out.push((first, last, p.store.app_status(&apps, first, last).await?));
    }
    Ok(out)
}

/// Appends, per grain, the retired apps that have periods of it.
async fn add_retired(
    p: &crate::pass::Pipeline,
    statuses: &mut [(Period, Period, Vec<AppStatus>)],
) -> anyhow::Result<()> {
    let retired: Vec<AppId> = p
        .store
        .known_apps()
        .await?
        .into_iter()
        .filter(|a| a.retired_at.is_some())
        .filter_map(|a| a.appid.parse().ok())
        .filter(|a| !p.config.apps.iter().any(|c| &c.appid == a))
        .collect();
    if retired.is_empty() {
        return Ok(());
    }
    for (first, last, rows) in statuses.iter_mut() {
        let of_grain = p.store.app_status(&retired, *first, *last).await?;
        rows.extend(
            of_grain
                .into_iter()
                .filter(|s| s.complete + s.maturing + s.failing + s.unavailable > 0)
                .map(|s| AppStatus { retired: true, ..s }),
        );
    }
    Ok(())
}

pub fn table(statuses: &[AppStatus], first: Period, last: Period) -> String {
    let mut out = format!(
        "{} {} .. {} ({} {}s)\n",
        first.grain(),
        first.start(),
        last.end(),
        first.periods_until(last) + 1,
        first.grain().unit()
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
    for (i, s) in statuses.iter().enumerate() {
        if s.retired && (i == 0 || !statuses[i - 1].retired) {
            out.push_str("retired (no longer in the config; not fetched):\n");
        }
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
