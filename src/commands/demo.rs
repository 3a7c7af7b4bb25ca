//! `wxretain demo`: the first run. Starts the simulator, migrates, backfills a
//! few apps over several months, and shows what landed (a status table, a
//! `report`, SQL on the dashboard views), with no WeChat account.

use crate::config::{Config, DEFAULT_DATABASE_URL};
use crate::dataset::Stream;
use crate::domain::{AppId, Grain, Metric};
use crate::pass::{run_pass, PassOptions};
use crate::report::{render, Format, Triangle};
use crate::simulator::{sim_appid, SimConfig, Simulator};
use crate::store::{Range, Scope, Store};
use chrono::Utc;
use secrecy::ExposeSecret;
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
    /// Simulated apps (each one is a config entry built in memory).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub apps: u32,
    /// Weeks to backfill, ending with the last complete week (the simulator
    /// serves 160).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=160))]
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
        args.weeks
    );
    for n in 1..=args.apps {
        let var = format!("DEMO_SECRET_{n}");
        env.insert(var.clone(), format!("demo-secret-{n}"));
        toml.push_str(&format!(
            "[[apps]]\nappid = \"{}\"\nname = \"demo app {n}\"\nsecret_env = \"{var}\"\n",
            sim_appid(n)
        ));
    }
    let config = Config::parse(&toml, Path::new("<demo>"), &env)?;
    Store::create_database_if_missing(&config.database.url).await?;
    let p = super::runtime(config).await?;
    println!(
        "database {} migrated",
        crate::config::redact_url_password(p.config.database.url.expose_secret())
    );

    let as_of = Utc::now();
    let apps = p.all_apps().apps;
    let ranges: Vec<Range> = p
        .config
        .streams()
        .into_iter()
        .map(|Stream { dataset, grain }| {
            let (first, last) = p.kept_periods(grain, as_of);
            Range::new(dataset, first, last)
        })
        .collect();
    for &range in &ranges {
        p.store.enqueue(&apps, range, as_of, false).await?;
        println!(
            "backfilling {} apps × {} {}s ({} .. {}) of {} {}",
            apps.len(),
            range.first.periods_until(range.last) + 1,
            range.first.grain().unit(),
            range.first.start(),
            range.last.end(),
            range.first.grain(),
            range.dataset,
        );
    }
    let scope = Scope {
        ranges,
        ..Scope::of(apps, Vec::new())
    };
    let bar = crate::progress::bar(p.store.count_due(&scope, as_of).await?);
    let opts = PassOptions {
        as_of,
        scope: scope.clone(),
        plan: false,
    };
    let report = run_pass(&p, &opts, &CancellationToken::new(), bar.as_deref()).await?;
    drop(bar);
    println!(
        "fetched {} periods (days, weeks and months) over HTTP: {} stored, {} rows written, {} not yet published, {} failed",
        report.attempted, report.stored, report.rows_written, report.not_ready, report.failed
    );
    println!();
    for s in super::status::stream_statuses(&p.store, &p.config, as_of).await? {
        print!(
            "{}",
            super::status::table(&s.apps, s.stream, s.first, s.last)
        );
    }
    let database = crate::config::redact_url_password(p.config.database.url.expose_secret());
    if let Some(appid) = scope.apps.first() {
        let name = p.config.apps.iter().find(|a| a.appid == *appid);
        let name = name.map(|a| a.name.as_str());
        print_next_steps(&p.store, &database, appid, name, args.weeks).await;
    }
    sim.shutdown().await;
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The report of one app, then what to try on one's own.
async fn print_next_steps(
    store: &Store,
    database: &str,
    appid: &AppId,
    name: Option<&str>,
    weeks: u32,
) {
    let metric = Metric::VisitUvNew;
    // What `report` prints with these arguments (12 weeks is its default).
    let weeks_flag = if weeks == 12 {
        String::new()
    } else {
        format!(" --weeks {weeks}")
    };
    println!("\n$ wxretain report --app {appid}{weeks_flag}");
    let grain = Grain::Weekly;
    match super::report::load(store, database, appid, grain, metric, weeks).await {
        Ok(rows) => {
            let triangle = Triangle {
                appid: appid.as_str(),
                name,
                metric,
                grain,
                periods: &rows,
            };
            anstream::print!("{}", render(&triangle, Format::Table));
        }
        // The fetch summary above already says why; the SQL below still helps.
        Err(e) => println!("no report: {}", crate::telemetry::describe(&e)),
    }
    // Days are collected too: the last two weeks of them, day-1 to day-30.
    println!("\n$ wxretain report --app {appid} --retention daily --periods 14");
    match super::report::load(store, database, appid, Grain::Daily, metric, 14).await {
        Ok(rows) => {
            let triangle = Triangle {
                appid: appid.as_str(),
                name,
                metric,
                grain: Grain::Daily,
                periods: &rows,
            };
            anstream::print!("{}", render(&triangle, Format::Table));
        }
        Err(e) => println!("no daily report: {}", crate::telemetry::describe(&e)),
    }
    println!("\nThe same as CSV or JSON, or for active users:");
    println!(
        "  DATABASE_URL={database} wxretain report --app {appid} --format csv --metric active"
    );
    println!("\nTry it in SQL (psql {database}):");
    for query in [
        format!("SELECT week_start, new_users, new_rate_w1, new_rate_w4 FROM retention_cohorts WHERE appid = '{appid}' ORDER BY week_start;"),
        "SELECT appid, week_start, new_users, new_rate_w4 FROM retention_latest_complete;".into(),
        "SELECT appid, cohort, weeks_after, round(rate::numeric, 3) AS rate, cohorts FROM retention_curve_12w ORDER BY 1, 2, 3;".into(),
        format!("SELECT day, new_users, new_rate_d1, new_rate_d7, new_rate_d30 FROM retention_cohorts_daily WHERE appid = '{appid}' ORDER BY day DESC LIMIT 14;"),
        format!("SELECT month_start, active_users, active_rate_m1 FROM retention_cohorts_monthly WHERE appid = '{appid}' ORDER BY month_start;"),
        "SELECT appid, weeks, complete, maturing, failing, due_now, last_success_at FROM retention_fetch_health;".into(),
    ] {
        println!("  {query}");
    }
}
