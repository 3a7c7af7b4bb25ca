//! Dashboard-views benchmark: `cargo bench --bench views [-- OPTIONS]`.
//!
//! Fills a database with a fleet's data, generated in SQL (default 2,000
//! apps × 104 weeks of weekly rows and 150 days of daily rows, about 7.8
//! million rows, plus 24 months and the ledger of all three grains), in the
//! order a daemon writes it (period after period), with the latest periods
//! still maturing as they would be. Then it times the dashboard views as
//! Grafana asks them (one app, and the fleet-wide panels) and `wxretain
//! report` of a year, through the real binary. `--plans FILE` writes each
//! query's EXPLAIN (ANALYZE, BUFFERS); `--keep` reuses a database a previous
//! run filled with the same sizes.

use clap::Parser;
use common::fill_ledger;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wxretain::domain::{Grain, NaturalWeek, BEIJING};
use wxretain::simulator::sim_appid;

mod common;

#[derive(Parser, Debug)]
#[command(about = "wxretain dashboard-views benchmark")]
struct Args {
    #[arg(long, default_value_t = 2000)]
    apps: u32,
    /// Weeks of weekly rows per app.
    #[arg(long, default_value_t = 104)]
    weeks: u32,
    /// Days of daily rows per app.
    #[arg(long, default_value_t = 150)]
    days: u32,
    /// Runs of each query (the median is printed).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Write every query's EXPLAIN (ANALYZE, BUFFERS) here.
    #[arg(long, value_name = "FILE")]
    plans: Option<PathBuf>,
    /// Reuse the database of a previous run with the same sizes.
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    server: common::Server,
}

const DB: &str = "wxretain_bench_views";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wxretain"));
    let runtime = tokio::runtime::Runtime::new()?;
    let url = args.server.database(DB)?;
    println!(
        "wxretain views benchmark — {} — {} apps × ({} weeks + {} days + 24 months)",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        args.apps,
        args.weeks,
        args.days
    );
    let started = Instant::now();
    let rows = runtime.block_on(fill(&args, url.as_str(), &bin))?;
    println!(
        "{rows} rows of weekly + daily + monthly retention ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let app = sim_appid(args.apps.div_ceil(2)).to_string();
    runtime.block_on(queries(&args, url.as_str(), &app))?;

    // `wxretain report` of a year, the whole process; no config needed.
    for (label, grain, periods) in [
        ("report, 52 weeks", "weekly", "52"),
        ("report, 365 days", "daily", "365"),
    ] {
        let mut times = Vec::new();
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            let out = Command::new(&bin)
                .args(["report", "--app", &app, "--retention", grain])
                .args(["--periods", periods, "--format", "csv"])
                .env("DATABASE_URL", url.as_str())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "wxretain report failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            times.push(started.elapsed());
        }
        print_median(label, &mut times, "the process's whole run; target ≤ 2 s");
    }
    Ok(())
}

fn print_median(label: &str, times: &mut [Duration], note: &str) {
    times.sort();
    println!(
        "  {label:<44} {:>9.1} ms  ({note})",
        times[times.len() / 2].as_secs_f64() * 1000.0
    );
}

/// What Grafana's panels ask (deploy/grafana/dashboards/wxretain.json), for
/// one app and for the fleet; `$1` is the app.
const QUERIES: &[(&str, &str)] = &[
    ("retention_cohorts, one app", "SELECT * FROM retention_cohorts WHERE appid = $1"),
    (
        "retention_cohorts, one app, a year",
        "SELECT * FROM retention_cohorts WHERE appid = $1 AND week_start >= current_date - 365 ORDER BY week_start",
    ),
    ("retention_latest_complete, one app", "SELECT * FROM retention_latest_complete WHERE appid = $1"),
    ("retention_cohorts_daily, one app", "SELECT * FROM retention_cohorts_daily WHERE appid = $1"),
    ("retention_cohorts_monthly, one app", "SELECT * FROM retention_cohorts_monthly WHERE appid = $1"),
    ("retention_curve_12w, one app", "SELECT * FROM retention_curve_12w WHERE appid = $1"),
    ("retention_fetch_health, one app", "SELECT * FROM retention_fetch_health WHERE appid = $1"),
    ("retention_latest_complete, every app", "SELECT * FROM retention_latest_complete WHERE $1::text IS NOT NULL"),
    (
        "retention_fetch_health, every app (the panel)",
        "SELECT * FROM retention_fetch_health WHERE $1::text IS NOT NULL ORDER BY failing DESC, appid",
    ),
    (
        "app list from retention_cohorts (as shipped)",
        "SELECT DISTINCT appid FROM retention_cohorts WHERE $1::text IS NOT NULL ORDER BY 1",
    ),
    (
        "app list by a skip scan of weekly_retention",
        "WITH RECURSIVE apps AS (
             (SELECT appid FROM weekly_retention WHERE $1::text IS NOT NULL ORDER BY appid LIMIT 1)
             UNION ALL
             SELECT (SELECT w.appid FROM weekly_retention w WHERE w.appid > apps.appid ORDER BY w.appid LIMIT 1)
               FROM apps WHERE apps.appid IS NOT NULL)
         SELECT appid FROM apps WHERE appid IS NOT NULL",
    ),
];

async fn queries(args: &Args, url: &str, app: &str) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    println!(
        "one app is {app}; each figure is a median of {} runs, the query's whole round trip:",
        args.runs
    );
    let mut plans = String::new();
    for (label, sql) in QUERIES {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            rows = sqlx::query(sql).bind(app).fetch_all(&pool).await?.len();
            times.push(started.elapsed());
        }
        let target = if label.contains("one app") {
            "target ≤ 50 ms"
        } else {
            "fleet-wide"
        };
        print_median(label, &mut times, &format!("{rows} rows; {target}"));
        if args.plans.is_some() {
            let explained: Vec<String> =
                sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"))
                    .bind(app)
                    .fetch_all(&pool)
                    .await?;
            plans.push_str(&format!(
                "==== {label}\n{sql}\n{}\n\n",
                explained.join("\n")
            ));
        }
    }
    if let Some(path) = &args.plans {
        std::fs::write(path, plans)?;
        println!("plans written to {}", path.display());
    }
    pool.close().await;
    Ok(())
}

/// A fresh database with the fleet's rows (or the kept one, when `--keep`
/// finds it filled with as many apps).
async fn fill(args: &Args, url: &str, bin: &std::path::Path) -> anyhow::Result<i64> {
    let count_rows = "SELECT (SELECT count(*) FROM weekly_retention) + (SELECT count(*) FROM daily_retention) + (SELECT count(*) FROM monthly_retention)";
    if args.keep {
        if let Ok(pool) = sqlx::PgPool::connect(url).await {
            let apps: Result<i64, _> =
                sqlx::query_scalar("SELECT count(DISTINCT appid) FROM retention_ledger")
                    .fetch_one(&pool)
                    .await;
            if apps.ok() == Some(i64::from(args.apps)) {
                common::migrate(bin, url)?;
                let rows = sqlx::query_scalar(count_rows).fetch_one(&pool).await?;
                println!("kept the database filled by a previous run");
                return Ok(rows);
            }
        }
    }
    args.server.drop_database(DB).await?;
    common::migrate(bin, url)?;
    let pool = sqlx::PgPool::connect(url).await?;
    let now = chrono::Utc::now();
    let apps: Vec<String> = (1..=args.apps).map(|n| sim_appid(n).to_string()).collect();
    let last_week = NaturalWeek::last_completed_at(now, BEIJING).monday();
    let last_day = Grain::Daily.last_completed_at(now).start();
    let last_month = Grain::Monthly.last_completed_at(now).start();
    // Key k of a period is in once k more periods have ended; values fall
    // with k and differ by app and period; active users are three times
    // the new ones. Rows go period by period, as a daemon writes them.
    sqlx::query(
        "INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value)
         SELECT a.appid, w::date, w::date + 6, m, k,
                (1000 + (a.n * 7 + (w::date - date '2017-01-02') * 13) % 5000)
                * (CASE m WHEN 'visit_uv' THEN 3 ELSE 1 END) / (k + 1)
           FROM generate_series($2::date - 7 * ($3 - 1), $2::date, interval '7 days') AS w
          CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS a(appid, n)
          CROSS JOIN unnest('{visit_uv_new,visit_uv}'::text[]) AS m
          CROSS JOIN generate_series(0, 4) AS k
          WHERE k <= ($2::date - w::date) / 7
          ORDER BY w, a.n, m, k",
    )
    .bind(&apps)
    .bind(last_week)
    .bind(args.weeks as i32)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO daily_retention (appid, day, metric, key, value)
         SELECT a.appid, d::date, m, k,
                (100 + (a.n * 7 + (d::date - date '2017-01-01') * 13) % 500)
                * (CASE m WHEN 'visit_uv' THEN 3 ELSE 1 END) / (k + 1)
           FROM generate_series($2::date - ($3 - 1), $2::date, interval '1 day') AS d
          CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS a(appid, n)
          CROSS JOIN unnest('{visit_uv_new,visit_uv}'::text[]) AS m
          CROSS JOIN unnest('{0,1,2,3,4,5,6,7,14,30}'::smallint[]) AS k
          WHERE k <= $2::date - d::date
          ORDER BY d, a.n, m, k",
    )
    .bind(&apps)
    .bind(last_day)
    .bind(args.days as i32)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO monthly_retention (appid, month_start, month_end, metric, key, value)
         SELECT a.appid, mo::date, (mo + interval '1 month' - interval '1 day')::date, m, k,
                (10000 + a.n * 7 % 50000) * (CASE m WHEN 'visit_uv' THEN 3 ELSE 1 END) / (k + 1)
           FROM generate_series($2::date - interval '23 months', $2::date, interval '1 month') AS mo
          CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS a(appid, n)
          CROSS JOIN unnest('{visit_uv_new,visit_uv}'::text[]) AS m
          CROSS JOIN generate_series(0, 1) AS k
          WHERE mo < $2::date OR k = 0
          ORDER BY mo, a.n, m, k",
    )
    .bind(&apps)
    .bind(last_month)
    .execute(&pool)
    .await?;
    // The ledger of the same periods, as the daemon leaves it now; one app
    // in a hundred with its last days failing, for the health panel.
    let grains = [
        (
            Grain::Weekly,
            Grain::Weekly
                .containing(last_week)
                .plus(1 - i64::from(args.weeks)),
        ),
        (
            Grain::Daily,
            Grain::Daily
                .containing(last_day)
                .plus(1 - i64::from(args.days)),
        ),
        (
            Grain::Monthly,
            Grain::Monthly.containing(last_month).plus(-23),
        ),
    ];
    for (grain, first) in grains {
        fill_ledger(&pool, &apps, first, grain.last_completed_at(now), now, 10).await?;
    }
    let failing: Vec<String> = apps.iter().step_by(100).cloned().collect();
    sqlx::query(
        "UPDATE retention_ledger SET state = 'failing', last_errcode = -1, last_error = 'system error',
                last_attempt_at = now(), attempts = 2, next_due_at = now() + interval '1 hour'
          WHERE appid = ANY($1) AND grain = 'daily' AND period_start > $2::date - 3",
    )
    .bind(&failing)
    .bind(last_day)
    .execute(&pool)
    .await?;
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    let rows = sqlx::query_scalar(count_rows).fetch_one(&pool).await?;
    pool.close().await;
    Ok(rows)
}
