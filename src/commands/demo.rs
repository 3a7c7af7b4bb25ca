//! `wxretain demo`: the first run. Starts the simulator, migrates, backfills a
//! few apps over several months, and shows what landed, with no WeChat account.

use crate::config::{Config, DEFAULT_DATABASE_URL};
use crate::domain::{Metric, NaturalWeek};
use crate::pass::{run_pass, PassOptions};
use crate::simulator::{sim_appid, SimConfig, Simulator};
use crate::store::{Scope, Store};
use chrono::Utc;
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Database to fill (default: $DATABASE_URL with its database renamed to
    /// wxretain_demo, else postgres://postgres@127.0.0.1:5432/wxretain_demo).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Simulated apps.
    #[arg(long, default_value_t = 3)]
    pub apps: u32,
    /// Weeks to backfill, ending with the last complete week.
    #[arg(long, default_value_t = 12)]
    pub weeks: u32,
}

fn demo_database_url(args: &DemoArgs) -> String {
    if let Some(url) = &args.database_url {
        return url.clone();
    }
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string());
    match reqwest::Url::parse(&base) {
        Ok(mut url) => {
            url.set_path("/wxretain_demo");
            url.to_string()
        }
        Err(_) => "postgres://postgres@127.0.0.1:5432/wxretain_demo".to_string(),
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let sim = Simulator::start(SimConfig::default(), ([127, 0, 0, 1], 0).into()).await?;
    println!("WeChat simulator listening on {}", sim.base_url());
    let mut env = HashMap::new();
    env.insert("DATABASE_URL".to_string(), demo_database_url(&args));
    env.insert("WXRETAIN_WECHAT_BASE_URL".to_string(), sim.base_url());
    let mut toml = format!(
        "[schedule]\nlookback_weeks = {}\n[wechat]\nmax_in_flight = 16\n",
        args.weeks.max(1)
    );
    for n in 1..=args.apps.max(1) {
        let var = format!("DEMO_SECRET_{n}");
        env.insert(var.clone(), format!("demo-secret-{n}"));
        toml.push_str(&format!(
            "[[apps]]\nappid = \"{}\"\nname = \"demo app {n}\"\nsecret_env = \"{var}\"\n",
            sim_appid(n)
        ));
    }
    let config = Config::parse(&toml, Path::new("<demo>"), &env)?;
    Store::create_database_if_missing(&config.database.url).await?;
    let p = super::pipeline(config).await?;
    println!(
        "database {} migrated",
        crate::config::redact_url_password(secrecy::ExposeSecret::expose_secret(
            &p.config.database.url
        ))
    );

    let as_of = Utc::now();
    let (first, last) = p.kept_weeks(as_of);
    let scope = Scope {
        apps: p.all_apps().apps,
        first: Some(first),
        last: Some(last),
    };
    p.store
        .enqueue(&scope.apps, first, last, as_of, false)
        .await?;
    println!(
        "backfilling {} apps × {} weeks ({first} .. {})",
        scope.apps.len(),
        first.weeks_until(last) + 1,
        last.sunday()
    );
    let report = run_pass(
        &p,
        &PassOptions {
            as_of,
            scope: scope.clone(),
            plan: false,
        },
        &CancellationToken::new(),
        None,
    )
    .await?;
    println!(
        "fetched {} weeks over HTTP: {} stored, {} rows written, {} not yet published, {} failed",
        report.attempted, report.stored, report.rows_written, report.not_ready, report.failed
    );
    let statuses = p.store.app_status(&scope.apps, first, last).await?;
    print!("\n{}", super::status::table(&statuses, first, last));
    if let Some(appid) = scope.apps.first() {
        print_cohort(&p.store, appid.as_str(), first, last).await?;
    }
    println!(
        "\nTry it in SQL (psql {}):",
        crate::config::redact_url_password(secrecy::ExposeSecret::expose_secret(
            &p.config.database.url
        ))
    );
    println!("  SELECT week_start, metric, key, value FROM weekly_retention WHERE appid = '{}' ORDER BY week_start, metric, key;", scope.apps[0]);
    println!("  SELECT appid, state, count(*) FROM retention_ledger GROUP BY 1, 2 ORDER BY 1, 2;");
    sim.shutdown().await;
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// New users per week and how many came back 1..4 weeks later.
async fn print_cohort(
    store: &Store,
    appid: &str,
    first: NaturalWeek,
    last: NaturalWeek,
) -> anyhow::Result<()> {
    let rows: Vec<(chrono::NaiveDate, i16, i64)> = sqlx::query_as(
        "SELECT week_start, key, value FROM weekly_retention
          WHERE appid = $1 AND metric = $2 AND week_start BETWEEN $3 AND $4 ORDER BY week_start, key",
    )
    .bind(appid)
    .bind(Metric::VisitUvNew.as_str())
    .bind(first.monday())
    .bind(last.monday())
    .fetch_all(store.pool())
    .await?;
    println!(
        "\nNew users of {appid} and the share still active k weeks later (… = not published yet):"
    );
    println!(
        "{:<12} {:>8} {:>7} {:>7} {:>7} {:>7}",
        "week", "new", "+1w", "+2w", "+3w", "+4w"
    );
    for week in NaturalWeek::range(first, last) {
        let value = |k: i16| {
            rows.iter()
                .find(|(w, key, _)| *w == week.monday() && *key == k)
                .map(|r| r.2)
        };
        let Some(base) = value(0) else { continue };
        let mut line = format!("{:<12} {:>8}", week.to_string(), base);
        for k in 1..=4 {
            let cell = match value(k) {
                Some(v) if base > 0 => format!("{:.1}%", 100.0 * v as f64 / base as f64),
                Some(v) => v.to_string(),
                None => "…".to_string(),
            };
            line.push_str(&format!(" {cell:>7}"));
        }
        println!("{line}");
    }
    Ok(())
}
