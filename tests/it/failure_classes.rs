//! What docs/failures.md's table says of HTTP 429, errcodes
//! wxretain does not know, and answers that fail validation, each against
//! the simulator: how often a period is asked within a pass, and when again.

use crate::common;

use common::*;
use wxretain::domain::{AppId, NaturalWeek, BEIJING};
use wxretain::runtime::Runtime;
use wxretain::simulator::Faults;
use wxretain::store::PeriodRow;

fn now() -> chrono::DateTime<chrono::Utc> {
    beijing(2026, 11, 24, 12)
}

fn weeks(n: i64) -> (NaturalWeek, NaturalWeek) {
    let last = NaturalWeek::last_completed_at(now(), BEIJING);
    (last.plus_weeks(1 - n), last)
}

async fn ledger(p: &Runtime, app: &AppId, first: NaturalWeek, last: NaturalWeek) -> Vec<PeriodRow> {
    ledger_weeks(&p.store, std::slice::from_ref(app), first, last).await
}

/// A gateway's 429 is busy, not a wrong setup: each week is tried
/// `retry_attempts` times in the pass (the app is not paused, so every week
/// is tried), then due again in 5 minutes, and stored once the gateway lets
/// calls through.
#[tokio::test]
async fn http_429_is_retried_as_transient_and_does_not_pause_the_app() {
    let db = TestDb::new().await;
    let apps = apps(1);
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            http_429_rate: 1.0,
            ..Faults::default()
        };
    })
    .await;
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let (first, last) = weeks(3);
    let report = backfill(&p, first, last, now(), false).await;
    assert_eq!((report.failed, report.deferred), (3, 0), "{report:?}");
    for week in NaturalWeek::range(first, last) {
        assert_eq!(
            sim.calls_for(&apps[0], week),
            4,
            "retry_attempts for {week}"
        );
    }
    for row in ledger(&p, &apps[0], first, last).await {
        assert_eq!(row.state, "failing", "{row:?}");
        assert!(
            row.last_error
                .as_deref()
                .is_some_and(|e| e.contains("HTTP 429")),
            "{row:?}"
        );
        assert_eq!(row.next_due_at, Some(now() + chrono::Duration::minutes(5)));
    }

    sim.set_faults(Faults::default());
    let report = pass_over(&p, first, last, now() + chrono::Duration::minutes(5)).await;
    assert_eq!(report.stored, 3, "{report:?}");
}

/// An errcode wxretain does not know is not retried within the pass, nor
/// forever: three attempts, 6 h and 12 h apart, then the period is left
/// `failing` with the errcode, not due again by itself. Other apps go on.
#[tokio::test]
async fn an_unknown_errcode_is_tried_three_times_then_left_failing() {
    let db = TestDb::new().await;
    let apps = apps(2);
    let odd = apps[0].clone();
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            app_errors: vec![(odd.clone(), 99_999)],
            ..Faults::default()
        };
    })
    .await;
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let (first, last) = weeks(2);
    let report = backfill(&p, first, last, now(), false).await;
    assert_eq!(
        (report.stored, report.failed, report.deferred),
        (2, 2, 0),
        "{report:?}"
    );
    let calls = |sim: &wxretain::simulator::SimulatorHandle| {
        NaturalWeek::range(first, last)
            .map(|w| sim.calls_for(&odd, w))
            .sum::<u64>()
    };
    assert_eq!(
        calls(&sim),
        2,
        "one call per week, no retry within the pass"
    );

    let mut as_of = now();
    for pause in [6, 12] {
        let rows = ledger(&p, &odd, first, last).await;
        for row in &rows {
            assert_eq!(
                (row.state.as_str(), row.last_errcode),
                ("failing", Some(99_999)),
                "{row:?}"
            );
            assert_eq!(
                row.next_due_at,
                Some(as_of + chrono::Duration::hours(pause)),
                "{row:?}"
            );
        }
        as_of += chrono::Duration::hours(pause);
        pass_over(&p, first, last, as_of).await;
    }
    assert_eq!(calls(&sim), 6, "three attempts per week");
    for row in ledger(&p, &odd, first, last).await {
        assert_eq!(
            (row.state.as_str(), row.next_due_at, row.last_errcode),
            ("failing", None, Some(99_999)),
            "{row:?}"
        );
    }
    // Left alone: two days later, nothing more is asked.
    let report = pass_over(&p, first, last, as_of + chrono::Duration::days(2)).await;
    assert_eq!(calls(&sim), 6, "{report:?}");
}

/// An answer that fails validation is kept in `rejected_answers` and is not
/// asked again within the pass; like a transient failure that outlasted the
/// pass's retries, the period is due again after 5 minutes, doubling.
#[tokio::test]
async fn a_rejected_answer_is_not_retried_in_the_pass_and_is_due_again_like_a_transient_failure() {
    let db = TestDb::new().await;
    let apps = apps(1);
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            wrong_ref_date_rate: 1.0,
            ..Faults::default()
        };
    })
    .await;
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let (first, last) = weeks(2);
    let report = backfill(&p, first, last, now(), false).await;
    assert_eq!(report.rejected, 2, "{report:?}");
    for week in NaturalWeek::range(first, last) {
        assert_eq!(sim.calls_for(&apps[0], week), 1, "{week}: asked once");
    }
    for row in ledger(&p, &apps[0], first, last).await {
        assert_eq!(row.state, "failing", "{row:?}");
        assert_eq!(row.next_due_at, Some(now() + chrono::Duration::minutes(5)));
    }
    let later = now() + chrono::Duration::minutes(5);
    pass_over(&p, first, last, later).await;
    for row in ledger(&p, &apps[0], first, last).await {
        assert_eq!(row.next_due_at, Some(later + chrono::Duration::minutes(10)));
    }
}
