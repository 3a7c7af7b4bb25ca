//! `wxretain report`: one app's cohort triangle of daily, weekly or monthly
//! retention, read from the dashboard views so that it says what the
//! dashboards say.

use crate::commands::UsageError;
use crate::config::redact_url_password;
use crate::dataset::DatasetId;
use crate::domain::{AppId, Grain, Metric};
use crate::report::{render, Format, Triangle};
use crate::store::{CohortPeriod, Gap, Store};
use secrecy::{ExposeSecret, SecretString};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The Mini Program: any appid with data in the database (it need not be
    /// in the config).
    #[arg(long, value_name = "APPID")]
    pub app: AppId,
    /// Which retention: per day (keys 1..7, 14, 30 days later), per natural
    /// week (1..4 weeks later) or per natural month (1 month later).
    #[arg(long, value_name = "GRAIN", default_value = "weekly", value_parser = grain_parser())]
    pub retention: Grain,
    /// Show at most N days, weeks or months, ending with the most recent one
    /// stored for the app [default: 30 days, 12 weeks, 12 months].
    #[arg(long, value_name = "N", conflicts_with = "weeks",
          value_parser = clap::value_parser!(u32).range(1..=MAX_PERIODS))]
    pub periods: Option<u32>,
    /// Weekly retention only (the default): the same as --periods N.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=520))]
    pub weeks: Option<u32>,
    /// Users new in the period (visit_uv_new) or active in it (visit_uv).
    #[arg(long, value_enum, default_value_t = Cohort::New)]
    pub metric: Cohort,
    /// table: aligned and shaded on a terminal; csv and json: for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// About ten years of days: a bound on the query, not on the data.
const MAX_PERIODS: i64 = 3660;

/// `--retention`: the grains' own names, listed in `--help` and in the
/// error for a value that is none of them.
fn grain_parser() -> impl clap::builder::TypedValueParser<Value = Grain> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Grain::ALL.map(Grain::as_str))
        .try_map(|name| name.parse::<Grain>())
}

/// How many periods a report shows without `--periods`: about a month of
/// days, a quarter of weeks, a year of months.
pub fn default_periods(grain: Grain) -> u32 {
    match grain {
        Grain::Daily => 30,
        Grain::Weekly => 12,
        Grain::Monthly => 12,
    }
}

impl ReportArgs {
    /// `--periods`, else `--weeks` (weekly only: a count of weeks must not
    /// silently count days or months), else the grain's default.
    pub fn periods(&self) -> Result<u32, UsageError> {
        match (self.periods, self.weeks) {
            (Some(n), _) => Ok(n),
            (None, Some(n)) if self.retention == Grain::Weekly => Ok(n),
            (None, Some(_)) => Err(UsageError(format!(
                "--weeks counts weeks: with --retention {} use --periods N",
                self.retention
            ))),
            (None, None) => Ok(default_periods(self.retention)),
        }
    }
}

/// The `--metric` names: the cohort's name rather than WeChat's field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cohort {
    New,
    Active,
}

impl From<Cohort> for Metric {
    fn from(c: Cohort) -> Self {
        match c {
            Cohort::New => Metric::VisitUvNew,
            Cohort::Active => Metric::VisitUv,
        }
    }
}

pub async fn run(
    url: SecretString,
    config: Option<&crate::config::Config>,
    args: ReportArgs,
) -> anyhow::Result<ExitCode> {
    let periods = args.periods()?;
    let store = super::open(&url, 2, super::Create::Never).await?;
    let name = config
        .and_then(|c| c.apps.iter().find(|a| a.appid == args.app))
        .map(|a| a.name.as_str());
    let metric = Metric::from(args.metric);
    let database = redact_url_password(url.expose_secret());
    let rows = load(
        &store,
        &database,
        &args.app,
        args.retention,
        metric,
        periods,
    )
    .await?;
    let triangle = Triangle {
        appid: args.app.as_str(),
        name,
        metric,
        grain: args.retention,
        periods: &rows,
    };
    anstream::print!("{}", render(&triangle, args.format));
    Ok(ExitCode::SUCCESS)
}

/// The last `periods` periods of `grain` up to the app's most recent stored
/// one (fewer if its data starts later; gaps in between show as rows). An app
/// without data of that grain is a usage error: the user most likely mistyped
/// it, and the message names the database (redacted) and the apps it has.
pub async fn load(
    store: &Store,
    database: &str,
    appid: &AppId,
    grain: Grain,
    metric: Metric,
    periods: u32,
) -> anyhow::Result<Vec<CohortPeriod>> {
    let Some((oldest, last)) = store.stored_periods(grain, appid).await? else {
        let known = store.apps_with_data(grain).await?;
        let hint = match known.len() {
            0 => format!(
                "the database has no {grain} retention data yet: run `wxretain backfill` first"
            ),
            n if n <= 10 => format!("apps with {grain} data: {}", known.join(", ")),
            n => format!(
                "apps with {grain} data: {}, and {} more",
                known[..10].join(", "),
                n - 10
            ),
        };
        return Err(UsageError(format!(
            "--app {appid}: no {grain} retention data in the database {database}; {hint}"
        ))
        .into());
    };
    let first = last.plus(1 - i64::from(periods)).max(oldest);
    let mut rows = store.cohort_periods(appid, metric, first, last).await?;
    // A period with no data at all says why, when the ledger says more than
    // "not published yet": never planned, not fetched, refused, failed.
    let ledger = store
        .periods(
            std::slice::from_ref(appid),
            DatasetId::Retention,
            first,
            last,
        )
        .await?;
    let by_start: std::collections::HashMap<_, _> =
        ledger.iter().map(|r| (r.period_start, r)).collect();
    for row in &mut rows {
        if row.users.is_none() && row.retained.iter().all(Option::is_none) {
            row.gap = Gap::of(by_start.get(&row.period.start()).copied());
        }
    }
    Ok(rows)
}
