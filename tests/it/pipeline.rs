//! The core pipeline end to end: real Postgres, the simulator over HTTP.

use crate::common;

use common::*;
use wxretain::domain::NaturalWeek;
use wxretain::simulator::Faults;

/// 2026-11-10 12:00 Beijing (the past: a pass may not act ahead of the database's clock): the week of 11-02 has key 0, older weeks more.
fn now() -> chrono::DateTime<chrono::Utc> {
    beijing(2026, 11, 10, 12)
}

fn twelve_weeks() -> (NaturalWeek, NaturalWeek) {
    let last = NaturalWeek::last_completed_at(now(), wxretain::domain::BEIJING);
    (last.plus_weeks(-11), last)
}

#[tokio::test]
async fn backfill_lands_exactly_the_simulators_values_and_a_second_run_changes_nothing() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let apps = apps(3);
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let (first, last) = twelve_weeks();

    let report = backfill(&p, first, last, now(), false).await;
    assert_eq!(report.stored, 36, "{report:?}");
    let expected = truth(&apps, first, last, now(), 10);
    assert_eq!(table(&p.store).await, expected);
    // 36 weeks with keys 0..=4 except the 4 most recent: a real mix of keys.
    assert_eq!(expected.len(), 3 * 2 * (8 * 5 + 4 + 3 + 2 + 1));

    let stamps: Vec<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as(
        "SELECT last_changed_at FROM weekly_retention ORDER BY appid, week_start, metric, key",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("stamps");
    let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_answers")
        .fetch_one(p.store.pool())
        .await
        .expect("count");
    assert_eq!(archived, 36);

    let again = backfill(&p, first, last, now(), true).await;
    assert_eq!((again.stored, again.rows_written), (36, 0), "{again:?}");
    let stamps_after: Vec<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as(
        "SELECT last_changed_at FROM weekly_retention ORDER BY appid, week_start, metric, key",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("stamps");
    assert_eq!(
        stamps, stamps_after,
        "an identical answer must not touch a row"
    );
    let archived_after: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_answers")
        .fetch_one(p.store.pool())
        .await
        .expect("count");
    assert_eq!(
        archived_after, 36,
        "an identical answer is not archived twice"
    );
    assert_eq!(table(&p.store).await, expected);
}

#[tokio::test]
async fn a_maturing_week_gains_keys_and_the_archive_keeps_both_answers() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let apps = apps(1);
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let (_, last) = twelve_weeks();
    backfill(&p, last, last, now(), false).await;
    assert_eq!(table(&p.store).await.len(), 2, "key 0 of both metrics");

    let later = now() + chrono::Duration::weeks(1);
    sim.clock().set(later);
    let report = once(&p, later).await;
    assert!(report.stored >= 1, "{report:?}");
    assert_eq!(
        table(&p.store)
            .await
            .into_iter()
            .filter(|r| r.1 == last.monday())
            .count(),
        4,
        "key 1 arrived for both metrics"
    );
    let archived: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM retention_answers WHERE grain = 'weekly' AND period_start = $1",
    )
    .bind(last.monday())
    .fetch_one(p.store.pool())
    .await
    .expect("count");
    assert_eq!(archived, 2);
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_and_the_run_completes() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            token_expire_after_calls: Some(5),
            ..Faults::default()
        };
    })
    .await;
    let apps = apps(3);
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let (first, last) = twelve_weeks();
    let report = backfill(&p, first, last, now(), false).await;
    assert_eq!((report.stored, report.failed), (36, 0), "{report:?}");
    assert_eq!(table(&p.store).await, truth(&apps, first, last, now(), 10));
    let stats = sim.stats();
    for appid in &apps {
        for week in NaturalWeek::range(first, last) {
            let calls = stats.calls_for(appid, week);
            assert!(
                (1..=2).contains(&calls),
                "{appid} {week}: {calls} calls; a refused token is retried once"
            );
        }
    }
    // 12 weeks, a token lasts 5 calls: 3 to 4 tokens per app, not one per refusal loop.
    for appid in &apps {
        let tokens = stats.token_calls_by_app.get(appid).copied().unwrap_or(0);
        assert!((3..=5).contains(&tokens), "{appid}: {tokens} token calls");
    }
}

#[tokio::test]
async fn a_week_still_being_computed_is_left_due_and_nothing_is_written() {
    let db = TestDb::new().await;
    // Monday 05:00 Beijing: the week just ended, WeChat answers 61503 until 10:00.
    let early = beijing(2026, 11, 23, 5);
    let sim = simulator(early, |_| {}).await;
    let apps = apps(1);
    let week = NaturalWeek::last_completed_at(early, wxretain::domain::BEIJING);
    let extra =
        format!("{FAST}[schedule]\nstart_week = \"{week}\"\n[collect]\nretention = [\"weekly\"]\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let report = backfill(&p, week, week, early, false).await;
    assert_eq!(
        (report.not_ready, report.stored, report.failed),
        (1, 0, 0),
        "{report:?}"
    );
    assert!(table(&p.store).await.is_empty());
    let rows = ledger_weeks(&p.store, &apps, week, week).await;
    assert_eq!(rows[0].state, "not_ready");
    assert_eq!(rows[0].last_errcode, Some(61503));
    assert!(
        rows[0].next_due_at.is_some_and(|t| t > early),
        "due again later"
    );
    // Once published, the next pass due picks it up.
    let later = beijing(2026, 11, 23, 11);
    sim.clock().set(later);
    let report = once(&p, later).await;
    assert_eq!(report.stored, 1, "{report:?}");
    assert_eq!(table(&p.store).await, truth(&apps, week, week, later, 10));
}

#[tokio::test]
async fn every_errcode_lands_in_the_ledger_with_its_class() {
    use wxretain::simulator::sim_appid;
    // (errcode, ledger state, due again?, data calls for the week)
    let cases: &[(i64, &str, bool, u64)] = &[
        (48001, "failing", true, 1),
        (61007, "failing", true, 1),
        (40164, "failing", true, 0), // refused at the token call already
        (40125, "failing", true, 0),
        (61500, "failing", false, 1),
        (47001, "failing", false, 1),
        (61503, "not_ready", true, 1),
        (45011, "missing", true, 1),
        (45009, "missing", true, 1),
        (40001, "failing", true, 2),
        (42001, "failing", true, 2),
        (-1, "failing", true, 3),
    ];
    let db = TestDb::new().await;
    let apps: Vec<_> = (1..=u32::try_from(cases.len()).expect("a few cases"))
        .map(sim_appid)
        .collect();
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            app_errors: apps
                .iter()
                .cloned()
                .zip(cases.iter().map(|c| c.0))
                .collect(),
            ..Faults::default()
        };
    })
    .await;
    let p = pipeline(config(
        &db,
        &sim,
        &apps,
        "[wechat]\nretry_min_delay_ms = 5\nretry_attempts = 3\n",
    ))
    .await;
    let (_, week) = twelve_weeks();
    backfill(&p, week, week, now(), false).await;
    let rows = ledger_weeks(&p.store, &apps, week, week).await;
    for (appid, &(code, state, due, calls)) in apps.iter().zip(cases) {
        let row = rows
            .iter()
            .find(|r| r.appid == appid.as_str())
            .expect("ledger row");
        assert_eq!(row.state, state, "errcode {code}");
        assert_eq!(row.next_due_at.is_some(), due, "errcode {code}: due again?");
        assert_eq!(
            sim.calls_for(appid, week),
            calls,
            "errcode {code}: data calls"
        );
        if !matches!(code, 45011 | 45009) {
            assert_eq!(row.last_errcode, Some(code), "errcode {code}");
        }
    }
    assert!(table(&p.store).await.is_empty());
}

#[tokio::test]
async fn weeks_wechat_no_longer_serves_become_unavailable_after_a_few_tries() {
    let db = TestDb::new().await;
    // The simulator serves only the 4 weeks before the current one: older ones answer 61501.
    let sim = simulator(now(), |c| c.history_weeks = 4).await;
    let apps = apps(1);
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let last = NaturalWeek::last_completed_at(now(), wxretain::domain::BEIJING);
    let first = last.plus_weeks(-7);
    backfill(&p, first, last, now(), false).await;
    for day in 1..=3 {
        let as_of = now() + chrono::Duration::days(day);
        sim.clock().set(as_of);
        pass_over(&p, first, last, as_of).await;
    }
    let rows = ledger_weeks(&p.store, &apps, first, last).await;
    let states: Vec<(&str, i32)> = rows
        .iter()
        .map(|r| (r.state.as_str(), r.attempts))
        .collect();
    // 4 old weeks: 3 tries each, then final; the 4 served weeks are stored.
    // A try may take two requests (a token that expired while the simulator's
    // clock jumped a day is refused and replaced): `calls` counts them all.
    assert_eq!(&states[..4], &[("unavailable", 3); 4], "{rows:?}");
    for r in &rows {
        let week = NaturalWeek::containing(r.period_start);
        assert_eq!(r.calls as u64, sim.calls_for(&apps[0], week), "{r:?}");
    }
    assert!(rows[..4]
        .iter()
        .all(|r| r.next_due_at.is_none() && r.last_errcode == Some(61501)));
    assert!(
        states[4..]
            .iter()
            .all(|(s, _)| matches!(*s, "maturing" | "complete")),
        "{states:?}"
    );
}
