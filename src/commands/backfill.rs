//! `wxretain backfill`: fetch a date range by hand, through the same ledger
//! and pass as the daemon, so a re-run continues where the last one stopped.

use crate::cli::UsageError;
use crate::config::Config;
use crate::domain::{ensure_wechat_era, parse_date, AppId, NaturalWeek, BEIJING};
use crate::pass::{run_pass, PassOptions, Pipeline};
use crate::store::{Scope, WeekRow};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// First day of the range (yyyy-mm-dd or yyyymmdd); its whole week is fetched.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day of the range; its week must have ended.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// Only this app (repeatable; default: every configured app).
    #[arg(long = "app", value_name = "APPID")]
    pub apps: Vec<String>,
    /// Fetch weeks again even if already stored.
    #[arg(long)]
    pub refetch: bool,
    /// Only mark the weeks due and return: a running daemon does the work.
    #[arg(long)]
    pub enqueue: bool,
}

/// The weeks `--from..--to` covers, refusing ranges that are wrong or not
/// over at `now`. Over means over in Beijing, where WeChat's weeks are,
/// whatever zone the cron runs in.
pub fn weeks_of_range(
    args: &BackfillArgs,
    now: DateTime<Utc>,
) -> Result<(NaturalWeek, NaturalWeek), UsageError> {
    let from = parse_date(&args.from)
        .and_then(ensure_wechat_era)
        .map_err(|e| UsageError(format!("--from: {e}")))?;
    let to = parse_date(&args.to)
        .and_then(ensure_wechat_era)
        .map_err(|e| UsageError(format!("--to: {e}")))?;
    if from > to {
        return Err(UsageError(format!("--from {from} is after --to {to}")));
    }
    let (first, last) = (NaturalWeek::containing(from), NaturalWeek::containing(to));
    let done = NaturalWeek::last_completed_at(now, BEIJING);
    if last > done {
        return Err(UsageError(format!(
            "--to {to}: the week {}..{} has not ended yet (the latest complete week starts {done})",
            last.monday(),
            last.sunday()
        )));
    }
    Ok((first, last))
}

pub async fn run(config: Config, args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let (first, last) = weeks_of_range(&args, Utc::now())?;
    let apps = config.select_apps(&args.apps).map_err(UsageError)?;
    let scope = Scope {
        apps: apps.iter().map(|a| a.appid.clone()).collect(),
        first: Some(first),
        last: Some(last),
    };
    let p = super::pipeline(config).await?;
    let as_of = Utc::now();
    let marked = p
        .store
        .enqueue(&scope.apps, first, last, as_of, args.refetch)
        .await?;
    let weeks = first.weeks_until(last) + 1;
    if args.enqueue {
        println!(
            "marked {marked} of {} (app, week) pairs due ({} apps × {weeks} weeks, {first}..{}); a running daemon will fetch them",
            scope.apps.len() as i64 * weeks,
            scope.apps.len(),
            last.sunday()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let bar = progress_bar(p.store.count_due(&scope, as_of).await?);
    let shutdown = CancellationToken::new();
    super::signals::stop_on_signals(
        shutdown.clone(),
        "interrupted: finishing the weeks in flight; re-run to continue",
    );
    let opts = PassOptions {
        as_of,
        scope: scope.clone(),
        plan: false,
    };
    let report = run_pass(&p, &opts, &shutdown, bar.as_ref()).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let rows = p.store.weeks(&scope.apps, first, last).await?;
    let complete = print_summary(&p, &scope, &rows, weeks);
    println!(
        "this run: {} fetched, {} stored, {} rows written, {} not ready, {} failed, {} rejected",
        report.attempted,
        report.stored,
        report.rows_written,
        report.not_ready,
        report.failed,
        report.rejected
    );
    if complete {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("some weeks are not stored: re-run the same command to continue (see `wxretain status`)");
        Ok(ExitCode::FAILURE)
    }
}

/// Up to this many apps, every app gets a line; above it (a platform with
/// thousands), only the apps with something left to do, and a total.
const SUMMARY_ALL_APPS_UP_TO: usize = 50;

/// Prints one line per app; true when every week is stored or not yet published.
fn print_summary(p: &Pipeline, scope: &Scope, rows: &[WeekRow], weeks: i64) -> bool {
    let mut by_app: HashMap<&str, Vec<&WeekRow>> = HashMap::new();
    for row in rows {
        by_app.entry(row.appid.as_str()).or_default().push(row);
    }
    let names: HashMap<&AppId, &str> = p
        .config
        .apps
        .iter()
        .map(|a| (&a.appid, a.name.as_str()))
        .collect();
    let every_app = scope.apps.len() <= SUMMARY_ALL_APPS_UP_TO;
    let (mut complete, mut done_apps) = (true, 0usize);
    for appid in &scope.apps {
        let mine = by_app.remove(appid.as_str()).unwrap_or_default();
        let stored = mine
            .iter()
            .filter(|r| matches!(r.state.as_str(), "maturing" | "complete"))
            .count();
        let all_keys = mine.iter().filter(|r| r.keys.len() == 5).count();
        let pending = mine.iter().filter(|r| r.state == "not_ready").count();
        let failed: Vec<&&WeekRow> = mine
            .iter()
            .filter(|r| !matches!(r.state.as_str(), "maturing" | "complete" | "not_ready"))
            .collect();
        let app_done = failed.is_empty() && mine.len() as i64 == weeks;
        complete &= app_done;
        if app_done {
            done_apps += 1;
            if !every_app {
                continue;
            }
        }
        let name = names.get(appid).copied().unwrap_or_default();
        let label = if name == appid.as_str() {
            appid.to_string()
        } else {
            format!("{appid} ({name})")
        };
        println!(
            "{label}: {weeks} weeks: {stored} stored ({all_keys} with all 5 keys), {pending} not yet published by WeChat, {} not stored",
            failed.len() + (weeks as usize).saturating_sub(mine.len())
        );
        for r in failed.iter().take(5) {
            println!(
                "  {} {}: {}",
                r.week_start,
                r.state,
                r.last_error.as_deref().unwrap_or("not fetched yet")
            );
        }
        if failed.len() > 5 {
            println!("  ... and {} more", failed.len() - 5);
        }
    }
    if !every_app {
        println!(
            "{done_apps} of {} apps have every week stored or not yet published",
            scope.apps.len()
        );
    }
    complete
}

/// A bar on stderr while weeks are fetched; none when stderr is not a terminal.
pub(super) fn progress_bar(total: i64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total <= 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {bar:40} {pos}/{len} weeks  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn args(from: &str, to: &str) -> BackfillArgs {
        BackfillArgs {
            from: from.into(),
            to: to.into(),
            apps: vec![],
            refetch: false,
            enqueue: false,
        }
    }

    #[test]
    fn a_week_is_over_when_it_is_over_in_beijing() {
        // Monday 2026-11-23 10:30 in Beijing; still Sunday afternoon in Los Angeles.
        let now = crate::domain::BEIJING
            .with_ymd_and_hms(2026, 11, 23, 10, 30, 0)
            .single()
            .expect("valid instant")
            .with_timezone(&Utc);
        let (first, last) =
            weeks_of_range(&args("2026-11-16", "2026-11-22"), now).expect("week is over");
        assert_eq!(
            (first.to_string(), last.to_string()),
            ("2026-11-16".into(), "2026-11-16".into())
        );
        let refused = weeks_of_range(&args("2026-11-16", "2026-11-23"), now);
        assert!(refused.is_err_and(|e| e.0.contains("has not ended")));
    }
}
