//! `wxretain run` between cron ticks: it wakes when the earliest period falls
//! due, so an enqueued backfill and a quota pause that ends are fetched at
//! once, not at the next tick. The tick here is once a year.

use crate::common;

use chrono::Utc;
use common::*;
use std::time::{Duration, Instant};
use wxretain::domain::{AppId, NaturalWeek, BEIJING};
use wxretain::simulator::{Faults, SimClock, SimulatorHandle};

/// A cron that will not fire while a test runs: whatever is fetched after
/// the start-up pass was fetched by a wake-up.
const NO_TICK: &str = "[schedule]\ncron = \"0 0 0 1 1 *\"\n";

async fn pool(db: &TestDb) -> sqlx::PgPool {
    sqlx::PgPool::connect(&db.url).await.expect("pool")
}

/// Weeks with data in the ledger, among `weeks` of `apps`.
async fn stored_weeks(
    pool: &sqlx::PgPool,
    apps: &[AppId],
    (first, last): (NaturalWeek, NaturalWeek),
) -> i64 {
    let ids: Vec<String> = apps.iter().map(ToString::to_string).collect();
    sqlx::query_scalar(
        "SELECT count(*) FROM retention_ledger
          WHERE grain = 'weekly' AND appid = ANY($1) AND cardinality(keys) > 0
            AND period_start BETWEEN $2 AND $3",
    )
    .bind(&ids)
    .bind(first.monday())
    .bind(last.monday())
    .fetch_one(pool)
    .await
    .unwrap_or(0)
}

/// Weeks of `first..=last` WeChat (the simulator, on real time) has published.
fn published(apps: &[AppId], first: NaturalWeek, last: NaturalWeek) -> i64 {
    let weeks: std::collections::BTreeSet<_> = truth(apps, first, last, Utc::now(), 10)
        .into_iter()
        .map(|r| (r.0, r.1))
        .collect();
    weeks.len() as i64
}

/// Waits until `want` weeks are stored, failing after `within`; returns how long it took.
async fn wait_stored(
    pool: &sqlx::PgPool,
    apps: &[AppId],
    weeks: (NaturalWeek, NaturalWeek),
    want: i64,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let got = stored_weeks(pool, apps, weeks).await;
        if got >= want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{got} of {want} weeks stored after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn real_simulator(faults: Faults) -> impl FnOnce(&mut wxretain::simulator::SimConfig) {
    move |c| {
        c.clock = SimClock::real();
        c.faults = faults;
    }
}

async fn start_daemon(
    path: &std::path::Path,
    env: &std::collections::HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
) -> tokio::process::Child {
    run_command(path, env, &db.url, &sim.base_url(), free_port())
        .spawn()
        .expect("spawn wxretain run")
}

#[tokio::test]
async fn an_enqueued_backfill_is_fetched_within_seconds_not_at_the_next_tick() {
    let db = TestDb::new().await;
    let sim = simulator(Utc::now(), real_simulator(Faults::default())).await;
    let apps = apps(2);
    let extra = format!("{FAST}{NO_TICK}lookback_weeks = 2\n[collect]\nretention = [\"weekly\"]\n");
    let (_dir, path, env) = config_file(&apps, &extra);
    let mut daemon = start_daemon(&path, &env, &db, &sim).await;
    let pool = pool(&db).await;

    // The start-up pass fetches the two kept weeks.
    let last = NaturalWeek::last_completed_at(Utc::now(), BEIJING);
    let kept = (last.plus_weeks(-1), last);
    let want = published(&apps, kept.0, kept.1);
    wait_stored(&pool, &apps, kept, want, Duration::from_secs(30)).await;

    // Older weeks, marked due by another process: the daemon fetches them.
    let old = (last.plus_weeks(-9), last.plus_weeks(-3));
    let enqueued = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxretain"))
        .arg("--config")
        .arg(&path)
        .args(["backfill", "--enqueue", "--retention", "weekly"])
        .args(["--from", &old.0.monday().to_string()])
        .args(["--to", &old.1.sunday().to_string()])
        .envs(&env)
        .env("DATABASE_URL", &db.url)
        .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
        .output()
        .await
        .expect("wxretain backfill --enqueue");
    assert!(
        enqueued.status.success(),
        "{}",
        String::from_utf8_lossy(&enqueued.stderr)
    );
    // A wake-up every few seconds at most: polled, then a gap after a pass.
    let took = wait_stored(&pool, &apps, old, 14, Duration::from_secs(20)).await;
    eprintln!("enqueued weeks stored {took:?} after the enqueue");
    for appid in &apps {
        for week in NaturalWeek::range(old.0, old.1) {
            assert_eq!(sim.calls_for(appid, week), 1, "{appid} {week}");
        }
    }
    let status = terminate(&mut daemon, Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn an_app_paused_by_the_minute_quota_resumes_after_the_minute_not_at_the_next_tick() {
    let db = TestDb::new().await;
    // Three calls per minute: six weeks take two minutes of quota.
    let sim = simulator(
        Utc::now(),
        real_simulator(Faults {
            minute_quota: Some(3),
            ..Faults::default()
        }),
    )
    .await;
    let apps = apps(1);
    let extra = format!("{FAST}{NO_TICK}lookback_weeks = 6\n[collect]\nretention = [\"weekly\"]\n");
    let (_dir, path, env) = config_file(&apps, &extra);
    let started = Instant::now();
    let mut daemon = start_daemon(&path, &env, &db, &sim).await;
    let pool = pool(&db).await;

    let last = NaturalWeek::last_completed_at(Utc::now(), BEIJING);
    let kept = (last.plus_weeks(-5), last);
    let want = published(&apps, kept.0, kept.1);
    assert!(want > 3, "the test needs more weeks than a minute's quota");
    // The start-up pass stores three and is refused (45011) for the rest;
    // the app is paused until the next minute, then the daemon wakes.
    let took = wait_stored(&pool, &apps, kept, want, Duration::from_secs(90)).await;
    let stats = sim.stats();
    assert!(
        stats.total_data_calls > stats.ok_answers,
        "the quota never refused a call: {stats:?}"
    );
    // At most one minute boundary plus the wake-up's few seconds.
    assert!(
        started.elapsed() < Duration::from_secs(60 + 25),
        "stored {took:?} after the first check, {:?} after start-up",
        started.elapsed()
    );
    let status = terminate(&mut daemon, Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}
