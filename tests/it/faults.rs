//! Faults from WeChat, the network and Postgres: nothing lost, nothing wrong
//! written, no secret in the log.

use crate::common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use wxretain::domain::{NaturalWeek, BEIJING};
use wxretain::pass::{run_pass, PassOptions};
use wxretain::simulator::Faults;

fn now() -> chrono::DateTime<chrono::Utc> {
    beijing(2026, 11, 24, 12)
}

/// 20 apps × 26 weeks; 20 % transient errors, 5 % garbage, tokens expiring
/// every 7 calls, and one app whose permission was revoked.
#[tokio::test]
async fn soak_good_apps_end_equal_to_the_truth_and_the_log_holds_no_secret() {
    let (capture, _guard) = Capture::debug_log();

    let db = TestDb::new().await;
    let apps = apps(20);
    let broken = apps[7].clone();
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            error_rates: vec![(-1, 0.2)],
            garbage_rate: 0.05,
            wrong_ref_date_rate: 0.03,
            token_expire_after_calls: Some(7),
            app_errors: vec![(broken.clone(), 48001)],
            seed: 7,
            ..Faults::default()
        };
    })
    .await;
    let p = pipeline(config(
        &db,
        &sim,
        &apps,
        "[wechat]\nretry_min_delay_ms = 1\nmax_in_flight = 16\n",
    ))
    .await;
    let last = NaturalWeek::last_completed_at(now(), BEIJING);
    let first = last.plus_weeks(-25);

    backfill(&p, first, last, now(), false).await;
    // Later passes pick up what is still failing once its backoff has passed.
    let mut as_of = now();
    for _ in 0..8 {
        as_of += chrono::Duration::hours(7);
        pass_over(&p, first, last, as_of).await;
    }

    let good: Vec<_> = apps.iter().filter(|a| **a != broken).cloned().collect();
    let rows: Vec<Row> = table(&p.store).await;
    assert!(
        rows.iter().all(|r| r.0 != broken.as_str()),
        "nothing for the broken app"
    );
    assert_eq!(
        rows,
        truth(&good, first, last, now(), 10),
        "the 19 good apps equal the truth"
    );
    let statuses = p
        .store
        .app_status(
            &apps,
            wxretain::dataset::DatasetId::Retention,
            first.into(),
            last.into(),
        )
        .await
        .expect("status");
    let b = statuses
        .iter()
        .find(|s| s.appid == broken.as_str())
        .expect("broken app in status");
    let broken_weeks = ledger_weeks(&p.store, std::slice::from_ref(&broken), first, last).await;
    assert!(
        broken_weeks.iter().any(|w| w.last_errcode == Some(48001)),
        "{b:?}"
    );
    // Weeks tried before the pause are failing, the rest were put off untried.
    assert_eq!(
        (b.complete, b.maturing, b.failing + b.missing),
        (0, 0, 26),
        "{b:?}"
    );
    assert!(b.failing >= 1);
    // Wrong-week answers are refused and kept for inspection; garbage bodies
    // are transient failures, not answers.
    let reasons: Vec<String> = sqlx::query_scalar("SELECT reason FROM rejected_answers")
        .fetch_all(p.store.pool())
        .await
        .expect("reasons");
    assert!(!reasons.is_empty(), "some answers had the wrong ref_date");
    assert!(
        reasons.iter().all(|r| r.starts_with("ref_date")),
        "{reasons:?}"
    );

    let log = capture.text();
    assert!(log.contains("fetched period"), "the log was captured");
    assert!(log.contains("48001"), "the broken app is reported");
    for appid in &apps {
        assert!(
            !log.contains(&format!("secret-{appid}")),
            "an AppSecret reached the log"
        );
    }
    // Simulator tokens are 64 hex digits: none may appear anywhere (the test
    // database's name holds a 32-digit uuid, so look for longer runs).
    let token_like = log
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|run| run.len() >= 40);
    assert_eq!(token_like, None, "a token reached the log");
    let ledger_errors: Vec<String> =
        sqlx::query_scalar("SELECT last_error FROM retention_ledger WHERE last_error IS NOT NULL")
            .fetch_all(p.store.pool())
            .await
            .expect("errors");
    assert!(ledger_errors
        .iter()
        .all(|e| !e.contains("access_token=") && !e.contains("secret-")));
}

#[tokio::test]
async fn the_database_going_away_mid_pass_loses_nothing() {
    let db = TestDb::new().await;
    let proxy = Proxy::start().await;
    let mut url = reqwest::Url::parse(&db.url).expect("url");
    url.set_port(Some(proxy.port)).expect("port");
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            latency_ms: 40,
            ..Faults::default()
        }
    })
    .await;
    let apps = apps(4);
    let (toml, mut env) = config_toml(
        &apps,
        "[wechat]\nretry_min_delay_ms = 5\nmax_in_flight = 4\n[schedule]\nlookback_weeks = 20\n",
    );
    env.insert("DATABASE_URL".into(), url.to_string());
    env.insert("WXRETAIN_WECHAT_BASE_URL".into(), sim.base_url());
    let config = wxretain::config::Config::parse(&toml, std::path::Path::new("t.toml"), &env)
        .expect("config");
    let p = pipeline(config).await;

    let pass = tokio::spawn({
        let p = Arc::new(p);
        let p2 = p.clone();
        async move {
            let result = run_pass(
                &p2,
                &PassOptions {
                    as_of: now(),
                    scope: p2.all_apps(),
                    plan: true,
                },
                &Default::default(),
                None,
            )
            .await;
            (p, result)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let (p, first_result) = pass.await.expect("pass task");
    // The pass either ended with the claim error or recorded unsaved weeks; it did not panic.
    if let Ok(report) = &first_result {
        assert!(report.unsaved > 0 || report.stored == 80, "{report:?}");
    }
    // The next passes finish the job.
    for _ in 0..3 {
        once(&p, now()).await;
    }
    let (first, last) = kept_weeks(&p, now());
    assert_eq!(table(&p.store).await, truth(&apps, first, last, now(), 10));
    let inconsistent: i64 = sqlx::query_scalar(&format!(
        "WITH stored AS ({STORED_ROWS})
             SELECT count(*) FROM retention_ledger l
              WHERE cardinality(keys) * 2 <> (SELECT count(*) FROM stored r
                                              WHERE r.appid = l.appid AND r.grain = l.grain
                                                AND r.period_start = l.period_start)"
    ))
    .fetch_one(p.store.pool())
    .await
    .expect("count");
    assert_eq!(inconsistent, 0, "ledger and rows agree week by week");
}

#[tokio::test]
async fn kill_9_during_a_backfill_then_a_rerun_leaves_the_truth() {
    let db = TestDb::new().await;
    let real_now = chrono::Utc::now();
    let sim = simulator(real_now, |c| {
        c.clock = wxretain::simulator::SimClock::real();
        c.faults = Faults {
            latency_ms: 60,
            ..Faults::default()
        };
    })
    .await;
    let apps = apps(3);
    let (_dir, path, env) = config_file(
        &apps,
        "[wechat]\nmax_in_flight = 4\nretry_min_delay_ms = 5\n",
    );
    let last = NaturalWeek::last_completed_at(real_now, BEIJING);
    let first = last.plus_weeks(-19);
    let backfill_cmd = || {
        // tokio's Command: a blocking wait would stall the simulator on this runtime.
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxretain"));
        c.args(["backfill", "--config"])
            .arg(&path)
            .args([
                "--from",
                &first.to_string(),
                "--to",
                &last.sunday().to_string(),
            ])
            .envs(env.clone())
            .env("DATABASE_URL", &db.url)
            .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        c
    };
    let mut child = backfill_cmd().spawn().expect("spawn backfill");
    let pool = sqlx::PgPool::connect(&db.url).await;
    // Wait until some weeks are stored, then kill -9.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stored: i64 = match &pool {
            Ok(pool) => sqlx::query_scalar(
                "SELECT count(*) FROM retention_ledger WHERE cardinality(keys) > 0",
            )
            .fetch_one(pool)
            .await
            .unwrap_or(0),
            Err(_) => 0,
        };
        if stored >= 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backfill stored nothing"
        );
    }
    child.kill().await.expect("SIGKILL");

    let rerun = backfill_cmd().output().await.expect("re-run");
    assert!(
        rerun.status.success(),
        "re-run: {}",
        String::from_utf8_lossy(&rerun.stdout)
    );
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    assert_eq!(
        table(&p.store).await,
        truth(&apps, first, last, sim.clock().now(), 10)
    );
    let claimed_without_rows: i64 = sqlx::query_scalar(&format!(
        "WITH stored AS ({STORED_ROWS})
             SELECT count(*) FROM retention_ledger l WHERE state IN ('maturing', 'complete')
                AND NOT EXISTS (SELECT 1 FROM stored r WHERE r.appid = l.appid AND r.grain = l.grain
                                                         AND r.period_start = l.period_start)"
    ))
    .fetch_one(p.store.pool())
    .await
    .expect("count");
    assert_eq!(claimed_without_rows, 0, "no week marked done that is not");
}
