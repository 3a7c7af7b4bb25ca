//! `wxretain status`: per-app health from the ledger, as a table or JSON,
//! and an exit code that cron jobs and monitoring scripts can act on.

use crate::config::Config;
use crate::dataset::{Stream, Target};
use crate::domain::{AppId, KeySet, Period};
use crate::planner::{kept_periods, Rule};
use crate::store::{AppStatus, FailingPeriod, StatusRange, Store};
use crate::wechat::{ErrorClass, FetchError};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(after_help = "Times are UTC. Exit status:
  0  every app is healthy (periods not published by WeChat yet are no failure)
  1  an app needs attention: it is broken (its last error is a configuration
     refusal: no permission, a wrong secret, an IP not whitelisted, a failing
     token source) or has periods failing for more than a day; or the database
     cannot be reached
  2  a bad config or arguments")]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list apps removed from the config (retired), whose periods stay
    /// in the ledger.
    #[arg(long)]
    pub all: bool,
}

/// How long a period may fail before `status` says it needs attention:
/// transient failures are retried within hours.
const FAILING_TOO_LONG: Duration = Duration::days(1);

pub async fn run(config: Config, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = super::open(&config.database.url, 2, super::Create::Never).await?;
    let mut statuses = stream_statuses(&store, &config, Utc::now()).await?;
    // Retired apps are listed, not judged: nothing fetches them any more.
    let attention = needing_attention(&statuses);
    if args.all {
        add_retired(&store, &config, &mut statuses).await?;
    }
    if args.json {
        let all: Vec<&AppStatus> = statuses.iter().flat_map(|s| &s.apps).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for s in &statuses {
            print!("{}", table(&s.apps, s.stream, s.first, s.last));
        }
        for line in &attention {
            println!("needs attention: {line}");
        }
    }
    Ok(if attention.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One stream's kept periods and each collecting app's status over them.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    pub stream: Stream,
    pub first: Period,
    pub last: Period,
    pub apps: Vec<AppStatus>,
}

/// Per stream that any app collects: its kept periods and each collecting
/// app's status over them, with names, broken apps and long failures.
pub async fn stream_statuses(
    store: &Store,
    config: &Config,
    as_of: DateTime<Utc>,
) -> anyhow::Result<Vec<StreamStatus>> {
    let rule = Rule::from_config(&config.schedule);
    let wanted: Vec<StatusRange> = config
        .streams()
        .into_iter()
        .map(|stream| {
            let (first, last) = kept_periods(&config.schedule, stream.grain, as_of);
            StatusRange {
                stream,
                apps: config.apps_collecting(stream),
                first,
                last,
            }
        })
        .collect();
    // One scan of the ledger for every stream.
    let all = store.app_statuses(&wanted).await?;
    // Names by appid: a search of the config's list per status is 150
    // million comparisons with 10,000 apps × three streams.
    let names: HashMap<&str, &str> = config
        .apps
        .iter()
        .map(|a| (a.appid.as_str(), a.name.as_str()))
        .collect();
    let mut out = Vec::with_capacity(wanted.len());
    for (w, mut statuses) in wanted.into_iter().zip(all) {
        let failing = store
            .long_failing(
                &w.apps,
                w.stream.dataset,
                w.first,
                w.last,
                as_of - FAILING_TOO_LONG,
            )
            .await?;
        let mut failing_by_app: HashMap<&str, i64> = HashMap::new();
        for f in &failing {
            if failing_since(f, &rule) < as_of - FAILING_TOO_LONG {
                *failing_by_app.entry(f.appid.as_str()).or_default() += 1;
            }
        }
        for s in &mut statuses {
            if let Some(name) = names.get(s.appid.as_str()) {
                s.name = name.to_string();
            }
            s.broken = is_broken(s);
            s.failing_over_a_day = failing_by_app.get(s.appid.as_str()).copied().unwrap_or(0);
        }
        out.push(StreamStatus {
            stream: w.stream,
            first: w.first,
            last: w.last,
            apps: statuses,
        });
    }
    Ok(out)
}

/// The app's last error is a configuration refusal, and nothing of this
/// stream succeeded after it. The class is the ledger's; rows written
/// before it kept one are read from their text.
fn is_broken(s: &AppStatus) -> bool {
    let (Some(text), Some(at)) = (&s.last_error, s.last_error_at) else {
        return false;
    };
    let config = match s.last_error_class.as_deref() {
        Some(class) => class == ErrorClass::Config.as_str(),
        None => FetchError::legacy_class(s.last_errcode, text) == Some(ErrorClass::Config),
    };
    config && s.last_success.is_none_or(|ok| ok <= at)
}

/// When a failing period began to fail, as far as the ledger tells: not
/// before it was planned, nor before its last success, nor before its next
/// key was due (a maturing week last fetched a week ago, failing since its
/// next key came due this morning, has failed for hours, not a week).
fn failing_since(f: &FailingPeriod, rule: &Rule) -> DateTime<Utc> {
    let keys = KeySet::of(f.keys.iter().filter_map(|&k| u8::try_from(k).ok()));
    let target = Target::new(f.dataset, f.period);
    let next_key = target
        .spec()
        .keys(target.grain())
        .iter()
        .copied()
        .find(|&k| !keys.contains(k));
    let due = next_key.map(|k| rule.key_expected_at(target, k));
    [Some(f.created_at), f.last_success_at, due]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(f.created_at)
}

/// One line per app and stream that needs attention, for the table's foot.
fn needing_attention(statuses: &[StreamStatus]) -> Vec<String> {
    let mut lines = Vec::new();
    for s in statuses.iter().flat_map(|s| &s.apps) {
        let who = label(s);
        if s.broken {
            lines.push(format!(
                "{who}: broken ({} {}): {}; fix its setup (it is tried again every hour or so)",
                s.grain,
                s.dataset,
                last_error(s)
            ));
        }
        if s.failing_over_a_day > 0 {
            let plural = if s.failing_over_a_day == 1 { "" } else { "s" };
            lines.push(format!(
                "{who}: {} {} {}{plural} failing for more than a day (last error: {})",
                s.failing_over_a_day,
                s.dataset,
                s.grain.unit(),
                last_error(s)
            ));
        }
    }
    lines
}

/// `appid (name)`, or the appid alone when the app has no name of its own.
fn label(s: &AppStatus) -> String {
    if s.name == s.appid {
        s.appid.clone()
    } else {
        format!("{} ({})", s.appid, crate::text::printable(&s.name))
    }
}

/// The last error as one printable line (errors recorded by an older
/// release may hold anything).
fn last_error(s: &AppStatus) -> String {
    let text = match (&s.last_errcode, &s.last_error) {
        (Some(code), Some(text)) => format!("[{code}] {text}"),
        (None, Some(text)) => text.clone(),
        _ => "-".to_string(),
    };
    crate::text::printable(&text)
}

/// An instant as the table shows it: minutes, in UTC, saying so.
fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Appends, per stream, the retired apps that have periods of it.
async fn add_retired(
    store: &Store,
    config: &Config,
    statuses: &mut [StreamStatus],
) -> anyhow::Result<()> {
    let retired: Vec<AppId> = store
        .known_apps()
        .await?
        .into_iter()
        .filter(|a| a.retired_at.is_some())
        .filter_map(|a| a.appid.parse().ok())
        .filter(|a| !config.apps.iter().any(|c| &c.appid == a))
        .collect();
    if retired.is_empty() {
        return Ok(());
    }
    for s in statuses.iter_mut() {
        let of_grain = store
            .app_status(&retired, s.stream.dataset, s.first, s.last)
            .await?;
        s.apps.extend(
            of_grain
                .into_iter()
                .filter(|s| s.complete + s.maturing + s.failing + s.unavailable > 0)
                .map(|s| AppStatus { retired: true, ..s }),
        );
    }
    Ok(())
}

pub fn table(statuses: &[AppStatus], stream: Stream, first: Period, last: Period) -> String {
    let mut out = format!(
        "{} {} {} .. {} ({} {}s)\n",
        stream.dataset,
        first.grain(),
        first.start(),
        last.end(),
        first.periods_until(last) + 1,
        first.grain().unit()
    );
    // A NAME column only when some app has a name of its own.
    let names = statuses.iter().any(|s| s.name != s.appid);
    let name = |text: &str| {
        if names {
            let shown = crate::text::printable(text);
            format!("{:<20} ", shown.chars().take(20).collect::<String>())
        } else {
            String::new()
        }
    };
    out.push_str(&format!(
        "{:<20} {}{:>8} {:>8} {:>7} {:>8} {:>7} {:>6} {:>7} {:<11} {:<20} {}\n",
        "APPID",
        name("NAME"),
        "COMPLETE",
        "MATURING",
        "MISSING",
        "NOTREADY",
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
        out.push_str(&format!(
            "{:<20} {}{:>8} {:>8} {:>7} {:>8} {:>7} {:>6} {:>7} {:<11} {:<20} {}\n",
            s.appid,
            name(&s.name),
            s.complete,
            s.maturing,
            s.missing,
            s.not_ready,
            s.failing,
            s.unavailable,
            s.suspect,
            s.oldest_gap
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            s.last_success.map(utc).unwrap_or_else(|| "never".into()),
            last_error(s).chars().take(80).collect::<String>()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NaturalWeek;
    use crate::planner::Rule;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_failure_begins_no_earlier_than_planning_success_or_the_next_key() {
        let retention = crate::dataset::DatasetId::Retention;
        let rule = Rule {
            publish_hour: 10,
            final_grace: Duration::days(14),
        };
        let week: Period =
            NaturalWeek::starting(chrono::NaiveDate::from_ymd_opt(2026, 11, 2).expect("date"))
                .expect("a Monday")
                .into();
        // Keys 0 and 1 stored on 2026-11-16; key 2 is due on 2026-11-23
        // 10:00 Beijing: failing since then, not since the last success.
        let maturing = FailingPeriod {
            appid: "wx0123456789abcdef".into(),
            dataset: retention,
            period: week,
            keys: vec![0, 1],
            created_at: at("2026-11-09T02:00:00Z"),
            last_success_at: Some(at("2026-11-16T02:05:00Z")),
        };
        assert_eq!(failing_since(&maturing, &rule), at("2026-11-23T02:00:00Z"));
        // Never fetched, planned by a recent backfill: since the planning.
        let backfilled = FailingPeriod {
            keys: vec![],
            created_at: at("2026-11-29T08:00:00Z"),
            last_success_at: None,
            ..maturing
        };
        assert_eq!(
            failing_since(&backfilled, &rule),
            at("2026-11-29T08:00:00Z")
        );
    }
}
