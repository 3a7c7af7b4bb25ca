//! Planning: every replica's tick plans, so it must be idempotent, fill
//! every gap, and (for speed) skip apps whose weeks are already unbroken.

use crate::common;

use chrono::{Duration, NaiveDate};
use common::*;
use wxretain::domain::PeriodState;
use wxretain::domain::{AppId, Grain, NaturalWeek, Period};
use wxretain::planner::Rule;
use wxretain::store::StatusRange;

/// Retention's `first..=last` for `apps`, as status asks for it.
fn status_range(apps: &[AppId], first: Period, last: Period) -> StatusRange {
    StatusRange {
        stream: wxretain::dataset::Stream::new(
            wxretain::dataset::DatasetId::Retention,
            first.grain(),
        ),
        apps: apps.to_vec(),
        first,
        last,
    }
}
use wxretain::store::Store;

async fn migrated() -> (TestDb, Store) {
    let db = TestDb::new().await;
    let store = Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (db, store)
}

fn p(week: NaturalWeek) -> Period {
    week.into()
}

fn rule() -> Rule {
    Rule {
        publish_hour: 10,
        final_grace: Duration::days(14),
    }
}

async fn weeks_of(store: &Store, appid: &str) -> Vec<NaiveDate> {
    sqlx::query_scalar("SELECT period_start FROM retention_ledger WHERE appid = $1 ORDER BY 1")
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
        .enqueue(
            &apps[..1],
            retention_range(p(middle), p(middle)),
            chrono::Utc::now(),
            false,
        )
        .await
        .expect("enqueue");
    store
        .plan(
            &apps[1..2],
            wxretain::dataset::DatasetId::Retention,
            p(first),
            p(first.plus_weeks(4)),
            &rule,
        )
        .await
        .expect("plan");

    let added = store
        .plan(
            &apps,
            wxretain::dataset::DatasetId::Retention,
            p(first),
            p(last),
            &rule,
        )
        .await
        .expect("plan");
    assert_eq!(added, 30 - 1 - 5);
    for app in &apps {
        assert_eq!(weeks_of(&store, app.as_str()).await, all, "{app}");
    }
    // Again: nothing to add. A week later: one week per app.
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                p(first),
                p(last),
                &rule
            )
            .await
            .expect("plan"),
        0
    );
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                p(first),
                p(last.next()),
                &rule
            )
            .await
            .expect("plan"),
        3
    );
    // An older start (start_week moved back): the older weeks too.
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                p(first.plus_weeks(-2)),
                p(last.next()),
                &rule
            )
            .await
            .expect("plan"),
        6
    );
    // A week deleted by hand in the middle comes back.
    sqlx::query("DELETE FROM retention_ledger WHERE appid = $1 AND period_start = $2")
        .bind(apps[2].as_str())
        .bind(middle.monday())
        .execute(store.pool())
        .await
        .expect("delete");
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                p(first.plus_weeks(-2)),
                p(last.next()),
                &rule
            )
            .await
            .expect("plan"),
        1
    );

    // New weeks are due when key 0 should be out: Monday after, 10:00 Beijing.
    let due: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT next_due_at FROM retention_ledger WHERE appid = $1 AND period_start = $2",
    )
    .bind(apps[0].as_str())
    .bind(last.next().monday())
    .fetch_one(store.pool())
    .await
    .expect("row");
    assert_eq!(due, rule.key_expected_at(retention(p(last.next())), 0));
}

#[tokio::test]
async fn state_counts_cover_every_app_and_state_with_zeros() {
    let (_db, store) = migrated().await;
    let rule = rule();
    let apps = apps(2);
    let last = NaturalWeek::containing(NaiveDate::from_ymd_opt(2026, 11, 16).expect("date"));
    store
        .plan(
            &apps[..1],
            wxretain::dataset::DatasetId::Retention,
            p(last.plus_weeks(-2)),
            p(last),
            &rule,
        )
        .await
        .expect("plan");
    sqlx::query("UPDATE retention_ledger SET state = 'complete' WHERE period_start = $1")
        .bind(last.monday())
        .execute(store.pool())
        .await
        .expect("update");
    let counts = store.state_counts(&apps).await.expect("counts");
    assert_eq!(counts.len(), 2, "every app, in order");
    let n = |app: usize, state: &str| {
        let grain = Grain::ALL.iter().position(|g| *g == Grain::Weekly)?;
        let state = PeriodState::ALL.iter().position(|s| s.as_str() == state)?;
        Some(counts[app][grain][state])
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

/// Days and months are planned like weeks: every gap filled, an unbroken
/// run only extended, across a month and a year boundary; key 0 is due the
/// day after a day and the first of the month after a month.
#[tokio::test]
async fn days_and_months_are_planned_across_month_and_year_boundaries() {
    let (_db, store) = migrated().await;
    let rule = rule();
    let apps = apps(1);
    let day = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date");
    let (d1, d2) = (
        Grain::Daily.containing(day("2026-12-29")),
        Grain::Daily.containing(day("2027-01-02")),
    );
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                d1,
                d2,
                &rule
            )
            .await
            .expect("plan"),
        5
    );
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                d1,
                d2,
                &rule
            )
            .await
            .expect("plan"),
        0
    );
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                d1,
                d2.next(),
                &rule
            )
            .await
            .expect("plan"),
        1
    );
    let (m1, m2) = (
        Grain::Monthly.containing(day("2026-11-15")),
        Grain::Monthly.containing(day("2027-02-01")),
    );
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                m1,
                m2,
                &rule
            )
            .await
            .expect("plan"),
        4
    );
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                m1,
                m2,
                &rule
            )
            .await
            .expect("plan"),
        0
    );
    assert_eq!(
        store
            .plan(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                m1,
                m2.next(),
                &rule
            )
            .await
            .expect("plan"),
        1
    );
    let due: Vec<(String, NaiveDate, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT grain, period_start, next_due_at FROM retention_ledger ORDER BY grain, period_start",
    )
    .fetch_all(store.pool())
    .await
    .expect("ledger");
    assert_eq!(due.len(), 6 + 5);
    for (grain, start, next_due) in due {
        let period = Period::starting(grain.parse().expect("grain"), start).expect("period");
        assert_eq!(
            next_due,
            rule.key_expected_at(retention(period), 0),
            "{period}"
        );
    }
    let months: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT period_start FROM retention_ledger WHERE grain = 'monthly' ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .expect("months");
    assert_eq!(
        months,
        [
            "2026-11-01",
            "2026-12-01",
            "2027-01-01",
            "2027-02-01",
            "2027-03-01"
        ]
        .map(day)
    );
}

/// A process trusts a range it planned in full (every later tick of the day
/// costs nothing), and a fresh process checks it again: an entry deleted by
/// hand comes back at the latest with the next process, or the next hour.
#[tokio::test]
async fn a_process_checks_a_range_it_planned_once_and_a_fresh_process_again() {
    let db = TestDb::new().await;
    let ids = apps(3);
    let (toml, mut env) = config_toml(
        &ids,
        "[collect]\nretention = [\"weekly\"]\n[schedule]\nlookback_weeks = 8\n",
    );
    env.insert("DATABASE_URL".into(), db.url.clone());
    let config = wxretain::config::Config::parse(&toml, std::path::Path::new("t.toml"), &env)
        .expect("config");
    let p = pipeline(config.clone()).await;
    let now = chrono::Utc::now();
    assert_eq!(p.plan(&ids, now).await.expect("plan"), 3 * 8);
    let oldest = weeks_of(&p.store, ids[1].as_str()).await[0];
    let deleted =
        sqlx::query("DELETE FROM retention_ledger WHERE appid = $1 AND period_start = $2")
            .bind(ids[1].as_str())
            .bind(oldest)
            .execute(p.store.pool())
            .await
            .expect("delete");
    assert_eq!(deleted.rows_affected(), 1);
    assert_eq!(p.plan(&ids, now).await.expect("plan"), 0, "trusted");
    let fresh = pipeline(config).await;
    assert_eq!(
        fresh.plan(&ids, now).await.expect("plan"),
        1,
        "checked again"
    );
    assert_eq!(weeks_of(&p.store, ids[1].as_str()).await[0], oldest);
    // A new week in the range (the next Monday) is planned by the process
    // that trusted the old range.
    let next_week = now + Duration::days(7);
    assert_eq!(p.plan(&ids, next_week).await.expect("plan"), 3);
}

/// `status` counts each grain's periods within that grain's own range:
/// entries outside it (kept under a longer lookback, say) are left out, and
/// a grain with nothing planned in its range counts it all as missing.
#[tokio::test]
async fn app_statuses_count_each_grain_within_its_own_range() {
    let (_db, store) = migrated().await;
    let rule = rule();
    let apps = apps(1);
    let last_week = NaturalWeek::containing(NaiveDate::from_ymd_opt(2026, 11, 16).expect("date"));
    let last_day = Grain::Daily.containing(NaiveDate::from_ymd_opt(2026, 11, 22).expect("date"));
    store
        .plan(
            &apps,
            wxretain::dataset::DatasetId::Retention,
            p(last_week.plus_weeks(-5)),
            p(last_week),
            &rule,
        )
        .await
        .expect("plan weeks");
    store
        .plan(
            &apps,
            wxretain::dataset::DatasetId::Retention,
            last_day.plus(-9),
            last_day,
            &rule,
        )
        .await
        .expect("plan days");
    // One complete period in each range and one outside it.
    for (grain, inside, outside) in [
        (
            "weekly",
            last_week.monday(),
            last_week.plus_weeks(-4).monday(),
        ),
        ("daily", last_day.start(), last_day.plus(-6).start()),
    ] {
        sqlx::query(
            "UPDATE retention_ledger SET state = 'complete'
              WHERE grain = $1 AND period_start IN ($2, $3)",
        )
        .bind(grain)
        .bind(inside)
        .bind(outside)
        .execute(store.pool())
        .await
        .expect("complete");
    }
    let last_month = Grain::Monthly.containing(NaiveDate::from_ymd_opt(2026, 10, 1).expect("date"));

    let statuses = store
        .app_statuses(&[
            status_range(&apps, p(last_week.plus_weeks(-2)), p(last_week)),
            status_range(&apps, last_day.plus(-3), last_day),
            status_range(&apps, last_month.plus(-1), last_month),
        ])
        .await
        .expect("statuses");
    let counts: Vec<(Grain, i64, i64)> = statuses
        .iter()
        .flatten()
        .map(|s| (s.grain, s.complete, s.missing))
        .collect();
    assert_eq!(
        counts,
        [
            (Grain::Weekly, 1, 2),
            (Grain::Daily, 1, 3),
            (Grain::Monthly, 0, 2)
        ],
        "(grain, complete, missing): 6 weeks and 10 days planned, 3, 4 and 2 (none planned) in range"
    );
}
