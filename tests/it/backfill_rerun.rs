//! Re-running `wxretain backfill`: it goes on where the last run stopped,
//! without starting the tries of a period again, so a period WeChat no
//! longer serves ends `unavailable` and is not asked again; the exit code
//! says what this run failed or left pending. `--retry-failed` asks again.

use crate::common;

use chrono::Utc;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use wxretain::domain::{AppId, NaturalWeek, BEIJING};
use wxretain::simulator::{SimClock, SimulatorHandle};

async fn backfill(
    config: &Path,
    env: &HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
    args: &[&str],
) -> Output {
    let args: Vec<&str> = std::iter::once("backfill")
        .chain(args.iter().copied())
        .collect();
    wxretain_with_config(config, env, &db.url, sim, &args).await
}

/// `(state, attempts, calls)` of each week of `first..=last`, oldest first.
async fn ledger(
    db: &TestDb,
    appid: &AppId,
    (first, last): (NaturalWeek, NaturalWeek),
) -> Vec<(String, i32, i32)> {
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    sqlx::query_as(
        "SELECT state, attempts, calls FROM retention_ledger
          WHERE appid = $1 AND grain = 'weekly' AND period_start BETWEEN $2 AND $3
          ORDER BY period_start",
    )
    .bind(appid.as_str())
    .bind(first.monday())
    .bind(last.monday())
    .fetch_all(&pool)
    .await
    .expect("ledger")
}

#[tokio::test]
async fn a_week_wechat_no_longer_serves_is_given_up_after_its_tries_across_runs_and_then_left_alone(
) {
    let db = TestDb::new().await;
    // WeChat serves periods that ended at most 28 days ago: the last 3
    // completed weeks (and the one before, on some days); older ones answer 61501.
    let sim = simulator(Utc::now(), |c| {
        c.clock = SimClock::real();
        c.history_weeks = 4;
    })
    .await;
    let apps = apps(1);
    let (_dir, path, env) = config_file(&apps, FAST);
    let last = NaturalWeek::last_completed_at(Utc::now(), BEIJING);
    let old = (last.plus_weeks(-9), last.plus_weeks(-4));
    let range = [
        "--retention",
        "weekly",
        "--from",
        &old.0.monday().to_string(),
        "--to",
        &last.sunday().to_string(),
    ];
    let old_calls = || {
        NaturalWeek::range(old.0, old.1)
            .map(|w| sim.calls_for(&apps[0], w))
            .collect::<Vec<_>>()
    };

    // Tries 1 and 2: 61501 each time, due again later: this run failed them.
    for run in 1..=2 {
        let out = backfill(&path, &env, &db, &sim, &range).await;
        out.expect_code(1, &format!("run {run}"));
        assert!(out.stdout.contains("6 not stored"), "{}", out.stdout);
        assert_eq!(old_calls(), [run; 6], "run {run}: one request per old week");
        let rows = ledger(&db, &apps[0], old).await;
        assert!(
            rows.iter().all(|r| *r
                == (
                    "failing".to_string(),
                    i32::try_from(run).expect("a few runs"),
                    i32::try_from(run).expect("a few runs")
                )),
            "run {run}: the tries add up, they do not start again: {rows:?}"
        );
    }
    // Try 3: WeChat's word is final; nothing is left to this run.
    let out = backfill(&path, &env, &db, &sim, &range).await;
    out.expect_code(0, "run 3");
    assert!(
        out.stdout.contains(", 0 not stored, 6 given up"),
        "{}",
        out.stdout
    );
    let rows = ledger(&db, &apps[0], old).await;
    assert!(
        rows.iter().all(|r| r.0 == "unavailable" && r.2 == 3),
        "{rows:?}"
    );
    // Run 4: not asked again, still exit 0.
    let out = backfill(&path, &env, &db, &sim, &range).await;
    out.expect_code(0, "run 4");
    assert_eq!(old_calls(), [3; 6], "given-up weeks are left alone");
    assert!(out.stdout.contains("--retry-failed"), "{}", out.stdout);

    // --retry-failed: asked again, tries from the start.
    let retry: Vec<&str> = range.iter().copied().chain(["--retry-failed"]).collect();
    let out = backfill(&path, &env, &db, &sim, &retry).await;
    out.expect_code(1, "--retry-failed");
    assert_eq!(old_calls(), [4; 6]);
    let rows = ledger(&db, &apps[0], old).await;
    assert!(
        rows.iter().all(|r| *r == ("failing".to_string(), 1, 4)),
        "{rows:?}"
    );
}

#[tokio::test]
async fn the_ledgers_calls_are_the_requests_wechat_saw_retries_included() {
    let db = TestDb::new().await;
    let now = Utc::now();
    // Tokens expire every 3 calls (a refused token is replaced and the call
    // sent again) and a fifth of the calls fail with a 502 (retried in the pass).
    let sim = simulator(now, |c| {
        c.faults.token_expire_after_calls = Some(3);
        c.faults.http_5xx_rate = 0.2;
    })
    .await;
    let apps = apps(2);
    let extra = "[wechat]\nretry_min_delay_ms = 1\nretry_attempts = 8\nmax_in_flight = 4\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let last = NaturalWeek::last_completed_at(now, BEIJING);
    let first = last.plus_weeks(-11);
    backfill_weeks(&p, first, last, now).await;
    let stats = sim.stats();
    assert!(
        stats.total_data_calls > stats.ok_answers,
        "no call was retried: {stats:?}"
    );
    let rows = ledger_weeks(&p.store, &apps, first, last).await;
    assert_eq!(rows.len(), 24);
    for row in rows {
        let appid: AppId = row.appid.parse().expect("appid");
        let week = NaturalWeek::containing(row.period_start);
        assert_eq!(
            row.calls as u64,
            sim.calls_for(&appid, week),
            "{appid} {week}: {row:?}"
        );
    }
}

async fn backfill_weeks(
    p: &wxretain::runtime::Runtime,
    first: NaturalWeek,
    last: NaturalWeek,
    now: chrono::DateTime<Utc>,
) {
    let report = common::backfill(p, first, last, now, false).await;
    assert_eq!(
        report.failed + report.rejected + report.unsaved,
        0,
        "{report:?}"
    );
}
