//! The dashboard views over real data: the simulator's, fetched over HTTP into
//! a fresh database, checked against the simulator's ground truth.

use crate::common;

use chrono::{DateTime, NaiveDate, Utc};
use common::*;
use wxretain::domain::{AppId, Metric, NaturalWeek, BEIJING};
use wxretain::runtime::Runtime;
use wxretain::simulator::{publication, sim_appid, truth_value, Faults, Publication};
use wxretain::store::Store;

/// 2026-11-24 12:00 Beijing: the week of 11-16 has key 0 only, 11-09 keys
/// 0..1, 11-02 keys 0..2, 10-26 keys 0..3; older weeks are complete.
fn now() -> DateTime<Utc> {
    beijing(2026, 11, 24, 12)
}

/// What WeChat has published of `key` at `now()`, by the simulator's rule.
fn published(appid: &AppId, week: NaturalWeek, metric: Metric, key: u8) -> Option<i64> {
    match publication(week, now(), 10) {
        Publication::Keys(max) if key <= max => Some(truth_value(appid, week, metric, key)),
        _ => None,
    }
}

/// What the view must say: `value / base`, unknown while either is.
fn rate(value: Option<i64>, base: Option<i64>) -> Option<f64> {
    match (value, base) {
        (Some(v), Some(b)) if b > 0 => Some(v as f64 / b as f64),
        _ => None,
    }
}

/// A database holding `weeks` weeks up to the last complete one for 3 apps,
/// as a backfill at `now()` leaves it.
struct Filled {
    _db: TestDb,
    p: Runtime,
    apps: Vec<AppId>,
    first: NaturalWeek,
    last: NaturalWeek,
}

async fn filled(weeks: i64) -> Filled {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let apps = apps(3);
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let last = NaturalWeek::last_completed_at(now(), BEIJING);
    let first = last.plus_weeks(1 - weeks);
    let report = backfill(&p, first, last, now(), false).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        table(&p.store).await,
        truth(&apps, first, last, now(), 10),
        "the table holds what WeChat published, and only that"
    );
    // A sparse app's week of 0 users must show as "no rate", not as 0 %.
    assert!(
        apps.iter()
            .any(|a| NaturalWeek::range(first, last).any(|w| truth_value(
                a,
                w,
                Metric::VisitUvNew,
                0
            ) == 0)),
        "the fixture has a week with 0 new users"
    );
    sim.shutdown().await;
    Filled {
        _db: db,
        p,
        apps,
        first,
        last,
    }
}

/// A row of `retention_cohorts` (and of `retention_latest_complete`).
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Cohort {
    appid: String,
    week_start: NaiveDate,
    week_end: NaiveDate,
    new_users: Option<i64>,
    new_w1: Option<i64>,
    new_w2: Option<i64>,
    new_w3: Option<i64>,
    new_w4: Option<i64>,
    new_rate_w1: Option<f64>,
    new_rate_w2: Option<f64>,
    new_rate_w3: Option<f64>,
    new_rate_w4: Option<f64>,
    active_users: Option<i64>,
    active_w1: Option<i64>,
    active_w2: Option<i64>,
    active_w3: Option<i64>,
    active_w4: Option<i64>,
    active_rate_w1: Option<f64>,
    active_rate_w2: Option<f64>,
    active_rate_w3: Option<f64>,
    active_rate_w4: Option<f64>,
    published_weeks: Option<i16>,
    complete: bool,
}

/// The row the view must hold for `week` of `appid`, from the truth.
fn expected_cohort(appid: &AppId, week: NaturalWeek) -> Cohort {
    let n = |k| published(appid, week, Metric::VisitUvNew, k);
    let a = |k| published(appid, week, Metric::VisitUv, k);
    let both = |k| n(k).is_some() && a(k).is_some();
    let published_weeks = both(0)
        .then(|| i16::try_from((1..=4).take_while(|&k| both(k)).count()).expect("at most 4"));
    Cohort {
        appid: appid.to_string(),
        week_start: week.monday(),
        week_end: week.sunday(),
        new_users: n(0),
        new_w1: n(1),
        new_w2: n(2),
        new_w3: n(3),
        new_w4: n(4),
        new_rate_w1: rate(n(1), n(0)),
        new_rate_w2: rate(n(2), n(0)),
        new_rate_w3: rate(n(3), n(0)),
        new_rate_w4: rate(n(4), n(0)),
        active_users: a(0),
        active_w1: a(1),
        active_w2: a(2),
        active_w3: a(3),
        active_w4: a(4),
        active_rate_w1: rate(a(1), a(0)),
        active_rate_w2: rate(a(2), a(0)),
        active_rate_w3: rate(a(3), a(0)),
        active_rate_w4: rate(a(4), a(0)),
        published_weeks,
        complete: (0..=4).all(both),
    }
}

async fn cohorts(store: &Store, view: &str) -> Vec<Cohort> {
    sqlx::query_as(&format!("SELECT * FROM {view} ORDER BY appid, week_start"))
        .fetch_all(store.pool())
        .await
        .expect("read the view")
}

#[tokio::test]
async fn cohorts_hold_the_published_rates_and_null_for_keys_not_published_yet() {
    let f = filled(12).await;
    let mut expected = Vec::new();
    for appid in &f.apps {
        for week in NaturalWeek::range(f.first, f.last) {
            expected.push(expected_cohort(appid, week));
        }
    }
    let got = cohorts(&f.p.store, "retention_cohorts").await;
    assert_eq!(got, expected);

    // Spelled out: the most recent week has key 0 and nothing else, as NULLs.
    let newest = got
        .iter()
        .find(|c| c.appid == f.apps[0].as_str() && c.week_start == f.last.monday())
        .expect("the most recent week has a row");
    assert!(newest.new_users.is_some());
    assert_eq!(
        (newest.new_w1, newest.new_rate_w1, newest.active_rate_w4),
        (None, None, None)
    );
    assert_eq!((newest.published_weeks, newest.complete), (Some(0), false));
    // 8 complete weeks and 4 maturing ones (with 0, 1, 2, 3 later keys) per app.
    let maturing: Vec<Option<i16>> = got
        .iter()
        .filter(|c| c.appid == f.apps[0].as_str() && !c.complete)
        .map(|c| c.published_weeks)
        .collect();
    assert_eq!(maturing, [Some(3), Some(2), Some(1), Some(0)]);
    // A week of 0 new users: its counts are 0, its rates unknown.
    let zero = got
        .iter()
        .find(|c| c.new_users == Some(0) && c.new_w1.is_some())
        .expect("a week of 0 new users");
    assert_eq!(zero.new_w1, Some(0));
    assert_eq!(zero.new_rate_w1, None);
}

#[tokio::test]
async fn latest_complete_is_the_newest_week_with_every_key_of_both_metrics() {
    let f = filled(12).await;
    let newest_complete = |appid: &AppId| {
        NaturalWeek::range(f.first, f.last)
            .filter(|w| expected_cohort(appid, *w).complete)
            .last()
            .expect("a complete week")
    };
    let mut expected: Vec<Cohort> = f
        .apps
        .iter()
        .map(|a| expected_cohort(a, newest_complete(a)))
        .collect();
    assert_eq!(expected[0].week_start, f.last.plus_weeks(-4).monday());
    assert_eq!(
        cohorts(&f.p.store, "retention_latest_complete").await,
        expected
    );

    // The first app's newest complete week loses key 4 of visit_uv only: it is
    // no longer complete, and the week before takes its place.
    let week = newest_complete(&f.apps[0]);
    let deleted = sqlx::query(
        "DELETE FROM weekly_retention
          WHERE appid = $1 AND week_start = $2 AND metric = 'visit_uv' AND key = 4",
    )
    .bind(f.apps[0].as_str())
    .bind(week.monday())
    .execute(f.p.store.pool())
    .await
    .expect("delete one key");
    assert_eq!(deleted.rows_affected(), 1);
    expected[0] = expected_cohort(&f.apps[0], week.prev());
    assert_eq!(
        cohorts(&f.p.store, "retention_latest_complete").await,
        expected
    );
    let row = cohorts(&f.p.store, "retention_cohorts")
        .await
        .into_iter()
        .find(|c| c.appid == f.apps[0].as_str() && c.week_start == week.monday())
        .expect("the week is still there");
    assert_eq!((row.published_weeks, row.complete), (Some(3), false));
    assert!(row.new_rate_w4.is_some() && row.active_rate_w4.is_none());
}

#[tokio::test]
async fn rates_have_a_row_per_published_key_with_its_base() {
    let f = filled(12).await;
    type RateRow = (
        String,
        NaiveDate,
        NaiveDate,
        String,
        String,
        i16,
        i64,
        Option<i64>,
        Option<f64>,
    );
    let mut expected: Vec<RateRow> = Vec::new();
    for appid in &f.apps {
        for week in NaturalWeek::range(f.first, f.last) {
            for (metric, cohort) in [(Metric::VisitUv, "active"), (Metric::VisitUvNew, "new")] {
                let base = published(appid, week, metric, 0);
                for key in 0..=4 {
                    if let Some(users) = published(appid, week, metric, key) {
                        expected.push((
                            appid.to_string(),
                            week.monday(),
                            week.sunday(),
                            cohort.to_string(),
                            metric.to_string(),
                            i16::from(key),
                            users,
                            base,
                            rate(Some(users), base),
                        ));
                    }
                }
            }
        }
    }
    let got: Vec<RateRow> = sqlx::query_as(
        "SELECT appid, week_start, week_end, cohort, metric, weeks_after, users, base_users, rate
           FROM retention_rates ORDER BY appid, week_start, cohort, weeks_after",
    )
    .fetch_all(f.p.store.pool())
    .await
    .expect("read retention_rates");
    assert_eq!(got, expected);
}

#[tokio::test]
async fn the_12_week_curve_is_the_user_weighted_mean_of_the_newest_published_weeks() {
    // 20 weeks: more than 12 have each key, so the window has to slide.
    let f = filled(20).await;
    type CurveRow = (String, String, i16, f64, i32, NaiveDate, NaiveDate);
    let mut expected: Vec<CurveRow> = Vec::new();
    for appid in &f.apps {
        for (metric, cohort) in [(Metric::VisitUv, "active"), (Metric::VisitUvNew, "new")] {
            for key in 0..=4u8 {
                let mut weeks: Vec<(NaturalWeek, i64, i64)> = NaturalWeek::range(f.first, f.last)
                    .filter_map(|w| {
                        let base = published(appid, w, metric, 0).filter(|b| *b > 0)?;
                        Some((w, published(appid, w, metric, key)?, base))
                    })
                    .collect();
                weeks.reverse();
                weeks.truncate(12);
                if weeks.is_empty() {
                    continue;
                }
                let users: i64 = weeks.iter().map(|w| w.1).sum();
                let base: i64 = weeks.iter().map(|w| w.2).sum();
                expected.push((
                    appid.to_string(),
                    cohort.to_string(),
                    i16::from(key),
                    users as f64 / base as f64,
                    i32::try_from(weeks.len()).expect("a few weeks"),
                    weeks[weeks.len() - 1].0.monday(),
                    weeks[0].0.monday(),
                ));
            }
        }
    }
    let got: Vec<CurveRow> = sqlx::query_as(
        "SELECT appid, cohort, weeks_after, rate, cohorts, first_week, last_week
           FROM retention_curve_12w ORDER BY appid, cohort, weeks_after",
    )
    .fetch_all(f.p.store.pool())
    .await
    .expect("read retention_curve_12w");
    assert_eq!(got, expected);
    // Not vacuous: key 0 is 1.0, and key 4's window ends 4 weeks before key 0's.
    let first_app: Vec<&CurveRow> = got.iter().filter(|r| r.0 == f.apps[0].as_str()).collect();
    assert_eq!(first_app.len(), 10, "{first_app:?}");
    assert!(first_app.iter().all(|r| r.4 == 12));
    assert_eq!((first_app[0].2, first_app[0].3), (0, 1.0));
    assert_eq!(first_app[4].6, f.last.plus_weeks(-4).monday());
    assert_eq!(first_app[0].6, f.last.monday());
}

#[tokio::test]
async fn fetch_health_counts_the_ledger_states_and_names_the_latest_failure() {
    // A Monday before WeChat publishes: last week is still being computed.
    let as_of = beijing(2026, 9, 7, 9);
    let db = TestDb::new().await;
    let (ok, failing, queued) = (sim_appid(1), sim_appid(2), sim_appid(3));
    let sim = simulator(as_of, |c| {
        c.history_weeks = 6;
        c.faults = Faults {
            app_errors: vec![(failing.clone(), -1)],
            ..Faults::default()
        };
    })
    .await;
    let p = pipeline(config(&db, &sim, &[ok.clone(), failing.clone()], FAST)).await;
    let last = NaturalWeek::last_completed_at(as_of, BEIJING);
    let first = last.plus_weeks(-9);
    backfill(&p, first, last, as_of, false).await;
    // The 4 oldest weeks are no longer served (61501): 3 tries and they are
    // unavailable. Only those weeks, so last week stays not ready.
    let oldest = first.plus_weeks(3);
    for day in 1..=3 {
        let at = as_of + chrono::Duration::days(day);
        sim.clock().set(at);
        pass_over(&p, first, oldest, at).await;
    }
    // A different failure, later, on one week of the failing app: the one to report.
    let at = as_of + chrono::Duration::days(4);
    sim.clock().set(at);
    sim.set_faults(Faults {
        app_errors: vec![(failing.clone(), 61500)],
        ..Faults::default()
    });
    let week = oldest.next();
    pass_over(&p, week, week, at).await;
    // Planned, never fetched: an app the daemon has not reached yet.
    p.store
        .enqueue(
            std::slice::from_ref(&queued),
            retention_range(first, last),
            as_of,
            false,
        )
        .await
        .expect("enqueue");

    type Health = (
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<String>,
    );
    let got: Vec<Health> = sqlx::query_as(
        "SELECT appid, weeks, complete, maturing, missing, not_ready, failing, unavailable,
                due_now, last_success_at, last_attempt_at, last_error
           FROM retention_fetch_health ORDER BY appid",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("read retention_fetch_health");
    assert_eq!(got.len(), 3, "{got:?}");

    // The healthy app: states by the publication calendar at `as_of`, except
    // the weeks older than the simulator serves.
    let served_from = NaturalWeek::current_at(as_of, BEIJING).plus_weeks(-6);
    let [mut complete, mut maturing, mut not_ready, mut unavailable] = [0i64; 4];
    for w in NaturalWeek::range(first, last) {
        match publication(w, as_of, 10) {
            _ if w < served_from => unavailable += 1,
            Publication::Keys(4) => complete += 1,
            Publication::Keys(_) => maturing += 1,
            _ => not_ready += 1,
        }
    }
    assert_eq!(
        (complete, maturing, not_ready, unavailable),
        (1, 4, 1, 4),
        "the fixture has every state"
    );
    let h = &got[0];
    assert_eq!(h.0, ok.as_str());
    // Every week not final is overdue now: `as_of` lies weeks in the past.
    let due = maturing + not_ready;
    assert_eq!(
        (h.1, h.2, h.3, h.4, h.5, h.6, h.7, h.8),
        (10, complete, maturing, 0, not_ready, 0, unavailable, due)
    );
    assert!(h.9.is_some() && h.10.is_some());
    assert_eq!(
        h.11, None,
        "unavailable weeks have errors, but none is failing"
    );

    // The failing app: every week failing, the latest error is the 61500 one
    // (final: not due again), though the other nine say something else.
    let h = &got[1];
    assert_eq!(h.0, failing.as_str());
    assert_eq!(
        (h.1, h.2, h.3, h.4, h.5, h.6, h.7, h.8),
        (10, 0, 0, 0, 0, 10, 0, 9)
    );
    assert_eq!(h.9, None);
    assert!(h.10.is_some());
    let error = h.11.as_deref().expect("a last error");
    assert!(error.contains("61500"), "{error}");

    let h = &got[2];
    assert_eq!(h.0, queued.as_str());
    assert_eq!((h.1, h.4, h.8), (10, 10, 10));
    assert_eq!((h.9, h.10, h.11.as_deref()), (None, None, None));
    sim.shutdown().await;
}

#[tokio::test]
async fn every_view_and_every_column_is_described_in_the_database() {
    let db = TestDb::new().await;
    let store = Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let views = [
        "retention_cohorts",
        "retention_latest_complete",
        "retention_curve_12w",
        "retention_rates",
        "retention_fetch_health",
        "retention_fetch_health_all",
    ];
    let undocumented: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text
           FROM pg_class c
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                AND col_description(a.attrelid, a.attnum) IS NULL
          WHERE c.relname = ANY($1) AND c.relkind = 'v'
            AND (obj_description(c.oid, 'pg_class') IS NULL OR a.attname IS NOT NULL)",
    )
    .bind(views)
    .fetch_all(store.pool())
    .await
    .expect("read the catalog");
    assert_eq!(undocumented, [], "views or columns without COMMENT ON");
    let present: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname = ANY($1) AND relkind = 'v'",
    )
    .bind(views)
    .fetch_one(store.pool())
    .await
    .expect("read the catalog");
    assert_eq!(present, views.len() as i64);
    store.pool().close().await;
}
