//! Where tokens come from, attacked: tokens that expire while calls wait
//! their turn, lease holders hidden by `/proc`, token commands and files
//! that never end, flood memory or see what they should not.

mod common;

use common::*;
use wxretain::domain::Grain;
use wxretain::store::Scope;

// ---- tokens that expire while calls wait -------------------------------------

/// Tokens good for 20 calls; 3 apps, each with 8 weeks, their 56 days and
/// their 2 months due, spaced by the per-app rate limit. About 20 calls per
/// app wait their turn at once (64 in flight): a token taken before the wait
/// was spent by the calls ahead, and so was the retry's, queued behind as
/// many again. The newest token sent at each turn, and the retry taking the
/// app's next turn, every period is stored in the one pass. (4 weeks, 28
/// days and a month are 33 calls an app: fewer than two tokens' worth, too
/// few for the retries to run out.)
#[tokio::test]
async fn tokens_that_expire_while_calls_wait_do_not_leave_periods_missing() {
    let db = TestDb::new().await;
    let now = beijing(2026, 3, 20, 12);
    let sim = simulator(now, |c| c.faults.token_expire_after_calls = Some(20)).await;
    let apps = apps(3);
    let extra = "[wechat]\napp_rate_per_second = 20\nretry_min_delay_ms = 5\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let day = |d: &str| d.parse::<chrono::NaiveDate>().expect("a date");
    // Monday 2 February to Sunday 1 March 2026: four weeks, 28 days, February.
    let ranges = vec![
        (
            Grain::Daily.containing(day("2026-01-05")),
            Grain::Daily.containing(day("2026-03-01")),
        ),
        (
            Grain::Weekly.containing(day("2026-01-05")),
            Grain::Weekly.containing(day("2026-02-23")),
        ),
        (
            Grain::Monthly.containing(day("2026-01-01")),
            Grain::Monthly.containing(day("2026-02-01")),
        ),
    ];
    for &(first, last) in &ranges {
        p.store
            .enqueue(&apps, first, last, now, false)
            .await
            .expect("enqueue");
    }
    let scope = Scope {
        apps: apps.clone(),
        ranges: ranges.clone(),
    };
    let report = wxretain::pass::run_pass(
        &p,
        &wxretain::pass::PassOptions {
            as_of: now,
            scope,
            plan: false,
        },
        &Default::default(),
        None,
    )
    .await
    .expect("pass");
    assert_eq!(
        (report.stored, report.failed),
        (3 * (56 + 8 + 2), 0),
        "{report:?}"
    );
    for &(first, last) in &ranges {
        assert_eq!(
            rows_of(&p.store, first.grain()).await,
            truth_of(&apps, first, last, now),
            "{}",
            first.grain()
        );
    }
    // Still one retry at most: no period was asked more than twice.
    let asked_more: Vec<_> = sim
        .stats()
        .per_period
        .into_iter()
        .filter(|(_, calls)| calls.calls > 2)
        .collect();
    assert!(asked_more.is_empty(), "{asked_more:?}");
}
