//! Planning: every replica's tick plans, so it must be idempotent, fill
//! every gap, and (for speed) skip apps whose weeks are already unbroken.

mod common;

use chrono::{Duration, NaiveDate};
use common::*;
use wxretain::domain::NaturalWeek;
use wxretain::planner::Rule;
use wxretain::store::Store;

async fn migrated() -> (TestDb, Store) {
    let db = TestDb::new().await;
    let store = Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (db, store)
}

fn rule() -> Rule {
    Rule {
        publish_hour: 10,
        final_grace: Duration::days(14),
    }
}

async fn weeks_of(store: &Store, appid: &str) -> Vec<NaiveDate> {
    sqlx::query_scalar("SELECT week_start FROM retention_ledger WHERE appid = $1 ORDER BY 1")
        .bind(appid)
        .fetch_all(store.pool())
        .await
        .expect("ledger")
}

#[tokio::test]
async fn planning_fills_every_gap_once_and_only_adds_what_is_missing() {
    let (_db, store) = migrated().await;
    let rule = rule();
    let apps = apps(3);
    let last = NaturalWeek::containing(NaiveDate::from_ymd_opt(2026, 11, 16).expect("date"));
    let first = last.plus_weeks(-9);
    let all: Vec<NaiveDate> = NaturalWeek::range(first, last)
        .map(NaturalWeek::monday)
        .collect();

    // App 1 has one week in the middle (a hand backfill), app 2 the first
    // five, app 3 nothing.
    let middle = first.plus_weeks(4);
    store
        .enqueue(&apps[..1], middle, middle, chrono::Utc::now(), false)
        .await
        .expect("enqueue");
    store
        .plan(&apps[1..2], first, first.plus_weeks(4), &rule)
        .await
        .expect("plan");

    let added = store.plan(&apps, first, last, &rule).await.expect("plan");
    assert_eq!(added, 30 - 1 - 5);
    for app in &apps {
        assert_eq!(weeks_of(&store, app.as_str()).await, all, "{app}");
    }
    // Again: nothing to add. A week later: one week per app.
    assert_eq!(
        store.plan(&apps, first, last, &rule).await.expect("plan"),
        0
    );
    assert_eq!(
        store
            .plan(&apps, first, last.next(), &rule)
            .await
            .expect("plan"),
        3
    );
    // An older start (start_week moved back): the older weeks too.
    assert_eq!(
        store
            .plan(&apps, first.plus_weeks(-2), last.next(), &rule)
            .await
            .expect("plan"),
        6
    );
    // A week deleted by hand in the middle comes back.
    sqlx::query("DELETE FROM retention_ledger WHERE appid = $1 AND week_start = $2")
        .bind(apps[2].as_str())
        .bind(middle.monday())
        .execute(store.pool())
        .await
        .expect("delete");
    assert_eq!(
        store
            .plan(&apps, first.plus_weeks(-2), last.next(), &rule)
            .await
            .expect("plan"),
        1
    );

    // New weeks are due when key 0 should be out: Monday after, 10:00 Beijing.
    let due: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT next_due_at FROM retention_ledger WHERE appid = $1 AND week_start = $2",
    )
    .bind(apps[0].as_str())
    .bind(last.next().monday())
    .fetch_one(store.pool())
    .await
    .expect("row");
    assert_eq!(due, rule.key_expected_at(last.next(), 0));
}

#[tokio::test]
async fn state_counts_cover_every_app_and_state_with_zeros() {
    let (_db, store) = migrated().await;
    let rule = rule();
    let apps = apps(2);
    let last = NaturalWeek::containing(NaiveDate::from_ymd_opt(2026, 11, 16).expect("date"));
    store
        .plan(&apps[..1], last.plus_weeks(-2), last, &rule)
        .await
        .expect("plan");
    sqlx::query("UPDATE retention_ledger SET state = 'complete' WHERE week_start = $1")
        .bind(last.monday())
        .execute(store.pool())
        .await
        .expect("update");
    let counts = store.state_counts(&apps).await.expect("counts");
    assert_eq!(counts.len(), 2 * 6, "every app × every state");
    let n = |app: usize, state: &str| {
        counts
            .iter()
            .find(|(a, s, _)| a == apps[app].as_str() && s == state)
            .map(|c| c.2)
    };
    assert_eq!(n(0, "missing"), Some(2));
    assert_eq!(n(0, "complete"), Some(1));
    assert_eq!(n(0, "failing"), Some(0));
    assert_eq!(
        n(1, "missing"),
        Some(0),
        "an app without weeks still has zeros"
    );
}
