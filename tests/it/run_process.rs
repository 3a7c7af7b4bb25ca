//! `wxretain run` as a real process: it serves /livez, /readyz and /metrics,
//! and SIGTERM in the middle of a pass loses nothing.

use crate::common;

use common::*;
use std::time::{Duration, Instant};
use wxretain::domain::{NaturalWeek, BEIJING};
use wxretain::simulator::{Faults, SimClock};

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

#[tokio::test]
async fn sigterm_mid_pass_exits_cleanly_and_a_rerun_completes_the_table() {
    let db = TestDb::new().await;
    // Real clock; slow answers so the start-up pass is still running when we signal.
    let sim = simulator(chrono::Utc::now(), |c| {
        c.clock = SimClock::real();
        c.faults = Faults {
            latency_ms: 150,
            ..Faults::default()
        };
    })
    .await;
    let apps = apps(3);
    let (_dir, path, env) = config_file(
        &apps,
        "[wechat]\nmax_in_flight = 4\nretry_min_delay_ms = 5\n[schedule]\nlookback_weeks = 20\n",
    );
    let port = free_port();
    let mut child = run_command(&path, &env, &db.url, &sim.base_url(), port)
        .spawn()
        .expect("spawn wxretain run");

    // Ready once migrated; /metrics shows fetches while the pass runs.
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, body)) = get(&format!("{base}/readyz")).await {
            assert!(body.contains("ready"));
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&format!("{base}/livez")).await.map(|r| r.0), Some(200));
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (_, body) = get(&format!("{base}/metrics"))
            .await
            .expect("/metrics answers");
        if body.contains("wxretain_fetches_total") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no fetch counted in /metrics:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        metrics.contains("wxretain_api_latency_seconds_bucket"),
        "{metrics}"
    );

    // SIGTERM mid-pass (three apps' days, weeks and months at 4 in flight ×
    // 150 ms take ~20 s): the pass has not ended, which it marks in /metrics.
    // (A count of the periods stored, against the 60 weeks alone, failed
    // whenever the test was slow to get here.)
    let stored_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retention_ledger WHERE cardinality(keys) > 0")
            .fetch_one(&sqlx::PgPool::connect(&db.url).await.expect("pool"))
            .await
            .expect("count");
    let (_, metrics) = get(&format!("{base}/metrics"))
        .await
        .expect("/metrics answers");
    assert!(
        !metrics.contains("wxretain_last_successful_pass_timestamp_seconds"),
        "the pass should still be running ({stored_before} periods stored)"
    );
    let status = terminate(&mut child, Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");

    // Nothing half-written, no lease left behind; a re-run completes the table.
    let p = pipeline(config(
        &db,
        &sim,
        &apps,
        "[wechat]\nretry_min_delay_ms = 5\n[schedule]\nlookback_weeks = 20\n",
    ))
    .await;
    let leased: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retention_ledger WHERE lease_owner IS NOT NULL")
            .fetch_one(p.store.pool())
            .await
            .expect("count");
    assert_eq!(leased, 0, "leases released at shutdown");
    let now = chrono::Utc::now();
    once(&p, now).await;
    let (first, last) = kept_weeks(&p, now);
    assert_eq!(NaturalWeek::last_completed_at(now, BEIJING), last);
    assert_eq!(
        table(&p.store).await,
        truth(&apps, first, last, sim.clock().now(), 10)
    );
}

/// Polls `url` until it answers `status`, or fails after `within`.
async fn wait_for_status(url: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some((code, body)) = get(url).await {
            if code == status {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn run_waits_for_a_database_that_is_down_and_readyz_follows_it() {
    let db = TestDb::new().await;
    let proxy = Proxy::start().await;
    proxy.cut();
    let mut via_proxy = reqwest::Url::parse(&db.url).expect("url");
    via_proxy.set_port(Some(proxy.port)).expect("port");
    let sim = simulator(chrono::Utc::now(), |c| c.clock = SimClock::real()).await;
    let apps = apps(2);
    let (_dir, path, env) = config_file(
        &apps,
        "[wechat]\nretry_min_delay_ms = 5\n[schedule]\nlookback_weeks = 4\n",
    );
    let port = free_port();
    let mut child = run_command(&path, &env, via_proxy.as_str(), &sim.base_url(), port)
        .spawn()
        .expect("spawn wxretain run");
    let base = format!("http://127.0.0.1:{port}");

    // Down at start-up: alive, not ready, and it does not exit.
    wait_for_status(&format!("{base}/livez"), 200, Duration::from_secs(20)).await;
    let why = wait_for_status(&format!("{base}/readyz"), 503, Duration::from_secs(10)).await;
    assert!(why.contains("database"), "{why}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "run exited while waiting for the database"
    );

    // Back: it migrates, becomes ready and runs its start-up pass.
    proxy.restore();
    wait_for_status(&format!("{base}/readyz"), 200, Duration::from_secs(40)).await;
    // Weeks WeChat has published (on a Monday morning the last one is not yet).
    let now = chrono::Utc::now();
    let last = NaturalWeek::last_completed_at(now, BEIJING);
    let published: std::collections::BTreeSet<_> = truth(&apps, last.plus_weeks(-3), last, now, 10)
        .into_iter()
        .map(|r| (r.0, r.1))
        .collect();
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    // A bound for a stuck pass, not a speed: two suites at once took over 20 s.
    let deadline = Instant::now() + Duration::from_secs(120);
    let stored = "SELECT count(*) FROM retention_ledger WHERE cardinality(keys) > 0";
    while sqlx::query_scalar::<_, i64>(stored)
        .fetch_one(&pool)
        .await
        .unwrap_or(0)
        < published.len() as i64
    {
        assert!(
            Instant::now() < deadline,
            "the start-up pass never stored the {} published weeks",
            published.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Gone again while running: not ready, still alive; back: ready.
    proxy.cut();
    wait_for_status(&format!("{base}/readyz"), 503, Duration::from_secs(20)).await;
    assert_eq!(get(&format!("{base}/livez")).await.map(|r| r.0), Some(200));
    proxy.restore();
    wait_for_status(&format!("{base}/readyz"), 200, Duration::from_secs(20)).await;

    let status = terminate(&mut child, Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}
