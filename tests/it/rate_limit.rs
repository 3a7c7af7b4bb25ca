//! `[wechat] rate_per_second` and `app_rate_per_second` hold at WeChat's end:
//! counted from the simulator's arrival times, not from our own bookkeeping.

use crate::common;

use common::*;
use std::time::Duration;
use wxretain::domain::{AppId, NaturalWeek};

/// The most arrivals in any window of `width` (each window starts at an arrival).
fn densest(times: &[Duration], width: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| **t < sorted[i] + width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn densest_counts_the_busiest_window() {
    let ms = |v: &[u64]| {
        v.iter()
            .map(|m| Duration::from_millis(*m))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        densest(&ms(&[0, 100, 999, 1000, 1500]), Duration::from_secs(1)),
        3
    );
    assert_eq!(densest(&ms(&[]), Duration::from_secs(1)), 0);
}

#[tokio::test]
async fn no_second_sees_more_calls_than_the_limits_allow() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 2, 12);
    let sim = simulator(now, |_| {}).await;
    let apps = apps(8);
    let (global, per_app) = (20, 4);
    let p = pipeline(config(
        &db,
        &sim,
        &apps,
        &format!(
            "[wechat]\nrate_per_second = {global}\napp_rate_per_second = {per_app}\nmax_in_flight = 16\n"
        ),
    ))
    .await;
    let last = NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING);
    let first = last.plus_weeks(-7);
    let report = backfill(&p, first, last, now, false).await;
    assert_eq!(report.stored, 64, "{report:?}");

    let arrivals = sim.arrivals();
    assert_eq!(arrivals.len(), 64, "one call per week");
    let all: Vec<Duration> = arrivals.iter().map(|(_, t)| *t).collect();
    // One spare call for the window's edges and scheduling jitter.
    let busiest = densest(&all, Duration::from_secs(1));
    assert!(
        busiest <= global + 1,
        "{busiest} calls in one second with a limit of {global}/s"
    );
    // The limit was actually in force: 64 calls at 20/s take over 3 s.
    let span = all.iter().max().copied().unwrap_or_default()
        - all.iter().min().copied().unwrap_or_default();
    assert!(span >= Duration::from_millis(3000), "64 calls in {span:?}");
    for app in &apps {
        let mine: Vec<Duration> = arrivals
            .iter()
            .filter(|(a, _)| a.as_ref() == Some::<&AppId>(app))
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(mine.len(), 8);
        let busiest = densest(&mine, Duration::from_secs(1));
        assert!(
            busiest <= per_app + 1,
            "{app}: {busiest} calls in one second with a limit of {per_app}/s"
        );
    }
}
