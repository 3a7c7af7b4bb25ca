//! `wxretain report`: one app's cohort triangle, read from the
//! `retention_cohorts` view so that it says what the dashboards say.

use crate::cli::UsageError;
use crate::config::redact_url_password;
use crate::domain::{AppId, Metric};
use crate::report::{render, Format, Triangle};
use crate::store::{CohortWeek, Store};
use secrecy::{ExposeSecret, SecretString};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The Mini Program: any appid with data in the database (it need not be
    /// in the config).
    #[arg(long, value_name = "APPID")]
    pub app: AppId,
    /// Show at most N weeks, ending with the most recent week stored for the app.
    #[arg(long, default_value_t = 12, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=520))]
    pub weeks: u32,
    /// Users new in the week (visit_uv_new) or active in it (visit_uv).
    #[arg(long, value_enum, default_value_t = Cohort::New)]
    pub metric: Cohort,
    /// table: aligned and shaded on a terminal; csv and json: for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
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

pub async fn run(url: SecretString, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&url, 2).await?;
    store.ready().await.map_err(anyhow::Error::msg)?;
    let metric = Metric::from(args.metric);
    let database = redact_url_password(url.expose_secret());
    let weeks = load(&store, &database, &args.app, metric, args.weeks).await?;
    let triangle = Triangle {
        appid: args.app.as_str(),
        metric,
        weeks: &weeks,
    };
    anstream::print!("{}", render(&triangle, args.format));
    Ok(ExitCode::SUCCESS)
}

/// The last `weeks` weeks up to the app's most recent stored week (fewer if
/// its data starts later; gaps in between show as rows). An app
/// without data is a usage error: the user most likely mistyped it, and the
/// message names the database (redacted) and the apps it has.
pub async fn load(
    store: &Store,
    database: &str,
    appid: &AppId,
    metric: Metric,
    weeks: u32,
) -> anyhow::Result<Vec<CohortWeek>> {
    let Some((oldest, last)) = store.stored_weeks(appid).await? else {
        let known = store.apps_with_data().await?;
        let hint = match known.len() {
            0 => "the database has no retention data yet: run `wxretain backfill` first".into(),
            n if n <= 10 => format!("apps with data: {}", known.join(", ")),
            n => format!(
                "apps with data: {}, and {} more",
                known[..10].join(", "),
                n - 10
            ),
        };
        return Err(UsageError(format!(
            "--app {appid}: no retention data in the database {database}; {hint}"
        ))
        .into());
    };
    let first = last.plus_weeks(1 - i64::from(weeks)).max(oldest);
    Ok(store.cohort_weeks(appid, metric, first, last).await?)
}
