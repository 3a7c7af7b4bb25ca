//! `wxretain backfill`: fetch a date range by hand, through the same ledger
//! and pass as the daemon, so a re-run continues where the last one stopped.

use crate::commands::UsageError;
use crate::config::Config;
use crate::dataset::{DatasetId, Stream, Target};
use crate::domain::{ensure_wechat_era, parse_date, AppId, Grain, NaturalWeek, BEIJING};
use crate::pass::{run_pass, PassOptions};
use crate::runtime::Runtime;
use crate::store::{PeriodRow, Range, Requeue, Scope};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// First day of the range (yyyy-mm-dd or yyyymmdd): every day from it,
    /// and every week and month that holds one of its days.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day of the range; the week holding it must have ended.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// Only this app (repeatable; default: every configured app).
    #[arg(long = "app", value_name = "APPID")]
    pub apps: Vec<String>,
    /// Only these datasets, comma-separated (default: those each app
    /// collects): retention.
    #[arg(long, value_name = "DATASETS", value_delimiter = ',', value_parser = parse_dataset)]
    pub dataset: Vec<DatasetId>,
    /// Only these grains of retention, comma-separated: daily,weekly,monthly
    /// (default: those each app collects).
    #[arg(long, value_name = "GRAINS", value_delimiter = ',', value_parser = parse_grain)]
    pub retention: Vec<Grain>,
    /// Fetch periods again even if already stored.
    #[arg(long)]
    pub refetch: bool,
    /// Ask again for periods that ended failed: unavailable (WeChat did not
    /// serve them) or given up after repeated failures. Their tries start
    /// again. Without it a re-run leaves them alone.
    #[arg(long)]
    pub retry_failed: bool,
    /// Only mark the periods due and return: a running daemon does the work.
    #[arg(long)]
    pub enqueue: bool,
}

fn parse_grain(text: &str) -> Result<Grain, String> {
    text.parse()
}

fn parse_dataset(text: &str) -> Result<DatasetId, String> {
    text.parse()
}

/// What `--from..--to` asks of each stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    /// The ended periods of each stream that overlap the range.
    pub ranges: Vec<Range>,
    /// Periods that overlap the range but have not ended: the daemon takes
    /// them when they have.
    pub not_ended: Vec<Target>,
}

/// The streams `args` asks for: every stream, narrowed by `--dataset` and,
/// for retention, `--retention`.
pub fn wanted_streams(args: &BackfillArgs) -> Vec<Stream> {
    Stream::all()
        .filter(|s| args.dataset.is_empty() || args.dataset.contains(&s.dataset))
        .filter(|s| {
            s.dataset != DatasetId::Retention
                || args.retention.is_empty()
                || args.retention.contains(&s.grain)
        })
        .collect()
}

/// The periods `--from..--to` covers for `streams`, refusing ranges that are
/// wrong or whose last week is not over at `now`. Over means over in Beijing,
/// where WeChat's calendar is, whatever zone the cron runs in.
pub fn periods_of_range(
    args: &BackfillArgs,
    streams: &[Stream],
    now: DateTime<Utc>,
) -> Result<Ranges, UsageError> {
    let (from, to) = dates_of_range(args)?;
    let last_week = NaturalWeek::containing(to);
    let done = NaturalWeek::last_completed_at(now, BEIJING);
    if last_week > done {
        return Err(UsageError(format!(
            "--to {to}: the week {}..{} has not ended yet (the latest complete week starts {done})",
            last_week.monday(),
            last_week.sunday()
        )));
    }
    let mut out = Ranges {
        ranges: Vec::new(),
        not_ended: Vec::new(),
    };
    for &Stream { dataset, grain } in streams {
        let (first, mut last) = (grain.containing(from), grain.containing(to));
        let ended = grain.last_completed_at(now);
        if last > ended {
            out.not_ended.push(Target::new(dataset, last));
            last = last.prev();
        }
        if first <= last {
            out.ranges.push(Range::new(dataset, first, last));
        }
    }
    Ok(out)
}

fn dates_of_range(args: &BackfillArgs) -> Result<(NaiveDate, NaiveDate), UsageError> {
    let from = parse_date(&args.from)
        .and_then(ensure_wechat_era)
        .map_err(|e| UsageError(format!("--from: {e}")))?;
    let to = parse_date(&args.to)
        .and_then(ensure_wechat_era)
        .map_err(|e| UsageError(format!("--to: {e}")))?;
    if from > to {
        return Err(UsageError(format!("--from {from} is after --to {to}")));
    }
    Ok((from, to))
}

pub async fn run(config: Config, args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let apps = config.select_apps(&args.apps).map_err(UsageError)?;
    let ranges = periods_of_range(&args, &wanted_streams(&args), Utc::now())?;
    // Asked for a stream an app does not collect: say so, and refuse a
    // range no selected app collects at all (it would do nothing, silently).
    let mut wanted_pairs = 0;
    for &range in &ranges.ranges {
        let stream = Stream::new(range.dataset, range.first.grain());
        let (collect, skip): (Vec<_>, Vec<_>) =
            apps.iter().partition(|a| a.streams.contains(&stream));
        wanted_pairs += collect.len();
        if !args.dataset.is_empty() || !args.retention.is_empty() {
            for app in skip {
                println!(
                    "{}: does not collect {stream} (its config's [collect] or own {} key): skipped",
                    app.appid, stream.dataset
                );
            }
        }
    }
    if wanted_pairs == 0 && !ranges.ranges.is_empty() {
        return Err(UsageError(format!(
            "nothing to backfill: no selected app collects {} (see [collect] and the apps' own keys)",
            ranges
                .ranges
                .iter()
                .map(|r| Stream::new(r.dataset, r.first.grain()).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    // The selected apps' periods of the range, of the streams each collects.
    let excluded = apps
        .iter()
        .flat_map(|a| {
            Stream::all()
                .filter(|s| !a.streams.contains(s))
                .map(|s| (a.appid.clone(), s))
        })
        .collect();
    let scope = Scope {
        ranges: ranges.ranges.clone(),
        ..Scope::of(apps.iter().map(|a| a.appid.clone()).collect(), excluded)
    };
    let p = super::runtime(config).await?;
    let as_of = p.clock.now();
    p.check_clock(as_of).await?;
    // The exit code is about this run: a period given up on by an earlier
    // one and not asked again does not fail it (the summary still shows it).
    let started = p.store.db_now().await?;
    let how = Requeue {
        refetch: args.refetch,
        retry_failed: args.retry_failed,
    };
    let mut marked = 0;
    let mut pairs = 0;
    for &range in &ranges.ranges {
        let collecting = collecting(&apps, range);
        pairs += collecting.len() as i64 * (range.first.periods_until(range.last) + 1);
        marked += p.store.requeue(&collecting, range, as_of, how).await?;
    }
    for target in &ranges.not_ended {
        println!(
            "{} {} {} has not ended: left to the daemon, which fetches it once it has",
            target.dataset,
            target.grain(),
            target.period
        );
    }
    if args.enqueue {
        println!(
            "marked {marked} of {pairs} (app, period) pairs due ({} apps, {}); a running daemon will fetch them",
            scope.apps.len(),
            describe(&ranges.ranges)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let bar = crate::progress::bar(p.store.count_due(&scope, as_of).await?);
    let shutdown = CancellationToken::new();
    super::signals::stop_on_signals(
        shutdown.clone(),
        "interrupted: finishing the periods in flight; re-run to continue",
    );
    let opts = PassOptions {
        as_of,
        scope: scope.clone(),
        plan: false,
    };
    let mut report = run_pass(&p, &opts, &shutdown, bar.as_deref()).await?;
    drop(bar);
    // Periods of the range a running daemon was fetching when this run
    // claimed: wait for it (as long as a lease), then take what it left due.
    let waited = std::time::Instant::now();
    let mut said = false;
    loop {
        let theirs = p.store.leased_by_others(&scope, &p.owner).await?;
        if theirs == 0 || shutdown.is_cancelled() {
            break;
        }
        if waited.elapsed() > p.config.schedule.lease {
            println!("{theirs} periods are still in another replica's hands: left to it (see `wxretain status`)");
            break;
        }
        if !said {
            println!("{theirs} periods are being fetched by another replica (a running daemon): waiting for it");
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        report += run_pass(&p, &opts, &shutdown, None).await?;
    }
    let mut complete = true;
    for &range in &ranges.ranges {
        let collecting = collecting(&apps, range);
        let rows = p
            .store
            .periods(&collecting, range.dataset, range.first, range.last)
            .await?;
        complete &= print_summary(&p, &collecting, &rows, range, started);
    }
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
        println!("some periods are not stored: re-run the same command to continue (see `wxretain status`)");
        Ok(ExitCode::FAILURE)
    }
}

/// The apps of `apps` that collect `range`'s stream.
fn collecting(apps: &[crate::config::AppConfig], range: Range) -> Vec<AppId> {
    let stream = Stream::new(range.dataset, range.first.grain());
    apps.iter()
        .filter(|a| a.streams.contains(&stream))
        .map(|a| a.appid.clone())
        .collect()
}

/// `3 retention daily days 2026-11-02..2026-11-04, ...` for messages.
fn describe(ranges: &[Range]) -> String {
    ranges
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}s {}..{}",
                r.first.periods_until(r.last) + 1,
                r.dataset,
                r.first.grain(),
                r.first.grain().unit(),
                r.first.start(),
                r.last.end()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Up to this many apps, every app gets a line; above it (a platform with
/// thousands), only the apps with something left to do, and a total.
const SUMMARY_ALL_APPS_UP_TO: usize = 50;

/// Where a period of the range stands after this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    /// Not published by WeChat yet: the daemon fetches it when it is.
    NotPublished,
    /// Final without data: WeChat does not serve it (`unavailable`), or an
    /// earlier run gave up on it; not asked again without `--retry-failed`.
    GivenUp,
    /// Not stored, and this run's doing: it failed here, or it is still to
    /// be tried (never fetched, or due again after a failure).
    NotStored,
}

fn outcome(row: &PeriodRow, started: DateTime<Utc>) -> Outcome {
    match row.state.as_str() {
        "maturing" | "complete" => Outcome::Stored,
        "not_ready" => Outcome::NotPublished,
        "unavailable" => Outcome::GivenUp,
        "failing"
            if row.next_due_at.is_none() && row.last_attempt_at.is_none_or(|t| t < started) =>
        {
            Outcome::GivenUp
        }
        _ => Outcome::NotStored,
    }
}

/// Prints one line per app for one grain's range; true when every period is
/// stored, not yet published, or given up on (by WeChat's word or an earlier run).
fn print_summary(
    p: &Runtime,
    apps: &[AppId],
    rows: &[PeriodRow],
    range: Range,
    started: DateTime<Utc>,
) -> bool {
    let Range {
        dataset,
        first,
        last,
    } = range;
    let grain = first.grain();
    let expected = usize::try_from(first.periods_until(last) + 1).unwrap_or(0);
    let mut by_app: HashMap<&str, Vec<&PeriodRow>> = HashMap::new();
    for row in rows {
        by_app.entry(row.appid.as_str()).or_default().push(row);
    }
    let names: HashMap<&AppId, &str> = p
        .config
        .apps
        .iter()
        .map(|a| (&a.appid, a.name.as_str()))
        .collect();
    let every_app = apps.len() <= SUMMARY_ALL_APPS_UP_TO;
    let all_keys = dataset.spec().keys(grain).len();
    let (mut complete, mut done_apps) = (true, 0usize);
    for appid in apps {
        let mine = by_app.remove(appid.as_str()).unwrap_or_default();
        let count = |o: Outcome| mine.iter().filter(|r| outcome(r, started) == o).count();
        let stored = count(Outcome::Stored);
        let with_all_keys = mine.iter().filter(|r| r.keys.len() == all_keys).count();
        let pending = count(Outcome::NotPublished);
        let given_up: Vec<&&PeriodRow> = mine
            .iter()
            .filter(|r| outcome(r, started) == Outcome::GivenUp)
            .collect();
        let failed: Vec<&&PeriodRow> = mine
            .iter()
            .filter(|r| outcome(r, started) == Outcome::NotStored)
            .collect();
        let app_done = failed.is_empty() && mine.len() == expected;
        complete &= app_done;
        if app_done && given_up.is_empty() {
            done_apps += 1;
            if !every_app {
                continue;
            }
        }
        let name = names.get(appid).copied().unwrap_or_default();
        let label = if name == appid.as_str() {
            appid.to_string()
        } else {
            format!("{appid} ({})", crate::text::printable(name))
        };
        let unit = grain.unit();
        let not_stored = failed.len() + expected.saturating_sub(mine.len());
        let mut line = format!(
            "{label}: {dataset} {grain}: {expected} {unit}s: {stored} stored ({with_all_keys} with all {all_keys} keys), {pending} not yet published by WeChat, {not_stored} not stored"
        );
        if !given_up.is_empty() {
            line.push_str(&format!(
                ", {} given up (not asked again; --retry-failed asks again)",
                given_up.len()
            ));
        }
        println!("{line}");
        for r in failed.iter().chain(&given_up).take(5) {
            println!(
                "  {} {}: {}",
                r.period_start,
                r.state,
                crate::text::printable(r.last_error.as_deref().unwrap_or("not fetched yet"))
            );
        }
        if failed.len() + given_up.len() > 5 {
            println!("  ... and {} more", failed.len() + given_up.len() - 5);
        }
    }
    if !every_app {
        println!(
            "{dataset} {grain}: {done_apps} of {} apps have every {} stored or not yet published",
            apps.len(),
            grain.unit()
        );
    }
    complete
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
            dataset: vec![],
            retention: vec![],
            refetch: false,
            retry_failed: false,
            enqueue: false,
        }
    }

    fn weekly() -> Stream {
        Stream::new(DatasetId::Retention, Grain::Weekly)
    }

    fn retention() -> Vec<Stream> {
        Grain::ALL
            .iter()
            .map(|&g| Stream::new(DatasetId::Retention, g))
            .collect()
    }

    fn beijing(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        BEIJING
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_week_is_over_when_it_is_over_in_beijing() {
        // Monday 2026-11-23 10:30 in Beijing; still Sunday afternoon in Los Angeles.
        let now = beijing(2026, 11, 23, 10, 30);
        let r = periods_of_range(&args("2026-11-16", "2026-11-22"), &[weekly()], now)
            .expect("week is over");
        assert_eq!(r.ranges.len(), 1);
        assert_eq!(
            (
                r.ranges[0].first.start().to_string(),
                r.ranges[0].last.start().to_string()
            ),
            ("2026-11-16".into(), "2026-11-16".into())
        );
        let refused = periods_of_range(&args("2026-11-16", "2026-11-23"), &[weekly()], now);
        assert!(refused.is_err_and(|e| e.0.contains("has not ended")));
    }

    #[test]
    fn days_in_the_range_weeks_and_months_that_overlap_it_unended_months_left_to_the_daemon() {
        let now = beijing(2026, 11, 23, 10, 30);
        let r = periods_of_range(&args("2026-10-28", "2026-11-08"), &retention(), now)
            .expect("weeks over");
        let shown: Vec<(String, String)> = r
            .ranges
            .iter()
            .map(|r| (r.first.to_string(), r.last.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                ("2026-10-28".to_string(), "2026-11-08".to_string()),
                (
                    "2026-10-26..2026-11-01".into(),
                    "2026-11-02..2026-11-08".into()
                ),
                ("2026-10".into(), "2026-10".into()),
            ]
        );
        assert_eq!(r.not_ended.len(), 1);
        assert_eq!(r.not_ended[0].period.to_string(), "2026-11");
    }
}
