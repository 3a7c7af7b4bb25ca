//! The daemon's behaviour over simulated time: passes hour by hour with
//! `--as-of`, the maturing rule's call budget, catch-up after an outage, and
//! the real `wxretain run` process (signals, /readyz, /metrics).

use crate::common;

use chrono::{Duration, Utc};
use common::*;
use std::collections::BTreeMap;
use wxretain::domain::{NaturalWeek, BEIJING};

/// Runs `once` every hour from `from` (inclusive) to `to` (exclusive), moving
/// the simulator's clock along, and checks after each pass that every key
/// published by then is in the table: a key lands within one tick.
async fn hourly(
    p: &wxretain::runtime::Runtime,
    sim: &wxretain::simulator::SimulatorHandle,
    first: NaturalWeek,
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
) {
    let apps = p.all_apps().apps;
    let mut t = from;
    while t < to {
        sim.clock().set(t);
        once(p, t).await;
        let last = NaturalWeek::last_completed_at(t, BEIJING);
        assert_eq!(
            table(&p.store).await,
            truth(&apps, first, last, t, 10),
            "table at {t} (Beijing {})",
            t.with_timezone(&BEIJING)
        );
        t += Duration::hours(1);
    }
}

#[tokio::test]
async fn hour_by_hour_over_eight_weeks_each_key_lands_at_once_and_costs_one_call() {
    let db = TestDb::new().await;
    let start = beijing(2026, 9, 7, 0); // a Monday
    let first = NaturalWeek::last_completed_at(start, BEIJING);
    let sim = simulator(start, |_| {}).await;
    let apps = apps(2);
    let extra = format!("{FAST}[schedule]\nstart_week = \"{first}\"\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;

    let end = start + Duration::weeks(8);
    hourly(&p, &sim, first, start, end).await;

    // Successful answers per (app, week): one per key published while we ran.
    let stats = sim.stats();
    let mut per_week: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for appid in &apps {
        for week in NaturalWeek::range(first, NaturalWeek::last_completed_at(end, BEIJING)) {
            let ok = stats
                .per_week
                .get(&(appid.clone(), week))
                .map(|c| c.ok)
                .unwrap_or(0);
            let published = match wxretain::simulator::publication(week, end, 10) {
                wxretain::simulator::Publication::Keys(k) => u64::from(k) + 1,
                _ => 0,
            };
            assert_eq!(
                ok, published,
                "{appid} {week}: one successful call per published key"
            );
            per_week
                .entry(first.weeks_until(week))
                .or_default()
                .push(ok);
        }
    }
    // Weeks 0..=3 saw all five keys: five calls over their life, not one per pass (1344 passes).
    assert!(per_week[&0].iter().all(|&n| n == 5), "{per_week:?}");
    // The only other calls: a token that expired on the simulator's clock while
    // it jumped hours ahead, each answered 42001 once and replaced.
    let refused = stats.total_data_calls - stats.ok_answers;
    assert!(
        refused <= stats.ok_answers,
        "{refused} refused calls for {} answers",
        stats.ok_answers
    );
}

#[tokio::test]
async fn after_a_three_week_outage_one_pass_fetches_every_missed_week() {
    let db = TestDb::new().await;
    let start = beijing(2026, 9, 7, 0);
    let first = NaturalWeek::last_completed_at(start, BEIJING);
    let sim = simulator(start, |_| {}).await;
    let apps = apps(3);
    let extra = format!(
        "{FAST}[schedule]\nstart_week = \"{first}\"\n[collect]\nretention = [\"weekly\"]\n"
    );
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    hourly(&p, &sim, first, start, start + Duration::days(2)).await;

    // Down for three weeks; back on a Wednesday afternoon.
    let back = start + Duration::weeks(3) + Duration::days(2) + Duration::hours(15);
    sim.clock().set(back);
    let report = once(&p, back).await;
    let last = NaturalWeek::last_completed_at(back, BEIJING);
    assert_eq!(table(&p.store).await, truth(&apps, first, last, back, 10));
    // Week 0 gains keys 1..3, weeks 1..3 are new: 4 weeks per app, each fetched once.
    assert_eq!((report.stored, report.attempted), (12, 12), "{report:?}");
}

#[tokio::test]
async fn a_late_key_is_retried_with_backoff_not_every_pass() {
    let db = TestDb::new().await;
    let start = beijing(2026, 9, 7, 0);
    let first = NaturalWeek::last_completed_at(start, BEIJING);
    // WeChat publishes at 14:00, wxretain expects 10:00.
    let sim = simulator(start, |c| c.publish_hour = 14).await;
    let apps = apps(1);
    let extra = format!("{FAST}[schedule]\nstart_week = \"{first}\"\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let mut t = start;
    while t < start + Duration::days(2) {
        sim.clock().set(t);
        once(&p, t).await;
        t += Duration::hours(1);
    }
    // 10:00 61503 (computing), retried 11:00 and 13:00, then 17:00 (a 4 h
    // pause) gets key 0: 4 attempts in 38 passes. Each attempt is one
    // request, or two when the token had expired while the simulator's
    // clock jumped hours ahead (42001, then a new token): the ledger's
    // `calls` counts every request WeChat saw.
    let rows = ledger_weeks(&p.store, &apps, first, first).await;
    let seen = sim.calls_for(&apps[0], first);
    assert_eq!(rows[0].calls as u64, seen, "{:?}", rows[0]);
    assert!((4..=8).contains(&seen), "{seen} requests: {:?}", rows[0]);
    assert_eq!(table(&p.store).await, truth(&apps, first, first, t, 14));
}
