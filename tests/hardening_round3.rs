//! Hardening, round 3: one bad answer, one stopped process or one narrowed
//! config must never cost other data, nor fetch what is not wanted.

mod common;

use chrono::Duration;
use common::*;
use wxretain::domain::{Grain, Metric};
use wxretain::simulator::truth_value_of;

/// Daily keys answered on the morning after the day, all of them as zeros,
/// are neither stored nor the end of the day: key 1 is fetched when due.
#[tokio::test]
async fn keys_answered_before_they_can_exist_do_not_close_a_day() {
    let db = TestDb::new().await;
    let morning = beijing(2026, 11, 25, 10) + Duration::minutes(30);
    let sim = simulator(morning, |c| c.faults.premature_keys_rate = 1.0).await;
    let apps = apps(1);
    let extra = "[schedule]\nlookback_weeks = 1\n[collect]\nretention = [\"daily\"]\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let day = Grain::Daily.last_completed_at(morning);

    once(&p, morning).await;
    let stored: Vec<(i16,)> =
        sqlx::query_as("SELECT DISTINCT key FROM daily_retention WHERE day = $1 ORDER BY 1")
            .bind(day.start())
            .fetch_all(p.store.pool())
            .await
            .expect("rows");
    assert_eq!(stored, [(0,)], "only key 0 can exist the morning after");
    let (state, keys): (String, Vec<i16>) = sqlx::query_as(
        "SELECT state, keys FROM retention_ledger WHERE grain = 'daily' AND period_start = $1",
    )
    .bind(day.start())
    .fetch_one(p.store.pool())
    .await
    .expect("ledger");
    assert_eq!((state.as_str(), keys), ("maturing", vec![0]));

    // The next morning key 1 is published and fetched, with WeChat's value.
    let next = morning + Duration::days(1);
    sim.clock().set(next);
    let mut faults = sim.faults_now();
    faults.premature_keys_rate = 0.0;
    sim.set_faults(faults);
    once(&p, next).await;
    let value: i64 = sqlx::query_scalar(
        "SELECT value FROM daily_retention WHERE day = $1 AND metric = 'visit_uv' AND key = 1",
    )
    .bind(day.start())
    .fetch_one(p.store.pool())
    .await
    .expect("key 1 stored");
    assert_eq!(value, truth_value_of(&apps[0], day, Metric::VisitUv, 1));
}
