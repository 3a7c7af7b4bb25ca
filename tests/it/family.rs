//! The retention family through the real pipeline: daily and monthly beside
//! weekly, against the simulator and a real Postgres.

use crate::common;

use chrono::{Duration, NaiveDate};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use wxretain::config::Config;
use wxretain::domain::{Grain, Period};
use wxretain::simulator::{publication_of, Publication};
use wxretain::store::Scope;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
}

/// Each grain backfilled over a month and year boundary equals the
/// simulator's truth (keys not yet published absent, zeros kept), and a
/// second run writes nothing.
#[tokio::test]
async fn each_grain_backfills_to_the_truth_across_a_year_boundary_and_a_rerun_changes_nothing() {
    let db = TestDb::new().await;
    let now = beijing(2026, 1, 20, 12);
    let apps = apps(12); // enough apps that some have all-zero periods
    let huge = apps[11].clone(); // and one whose values pass 2^32
    let sim = simulator(now, |c| c.faults.huge_apps = vec![huge.clone()]).await;
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let ranges = vec![
        (
            Grain::Daily.containing(date("2025-12-20")),
            Grain::Daily.containing(date("2026-01-18")),
        ),
        (
            Grain::Weekly.containing(date("2025-12-15")),
            Grain::Weekly.containing(date("2026-01-12")),
        ),
        (
            Grain::Monthly.containing(date("2025-10-01")),
            Grain::Monthly.containing(date("2025-12-01")),
        ),
    ];
    for &(first, last) in &ranges {
        p.store
            .enqueue(&apps, retention_range(first, last), now, false)
            .await
            .expect("enqueue");
    }
    let scope = Scope {
        apps: apps.clone(),
        ranges: ranges.iter().map(|&(f, l)| retention_range(f, l)).collect(),
        ..Default::default()
    };
    let pass = |scope: Scope| {
        let p = &p;
        async move {
            wxretain::pass::run_pass(
                p,
                &wxretain::pass::PassOptions {
                    as_of: now,
                    scope,
                    plan: false,
                },
                &Default::default(),
                None,
            )
            .await
            .expect("pass")
        }
    };
    let report = pass(scope.clone()).await;
    let periods: i64 = ranges.iter().map(|(f, l)| f.periods_until(*l) + 1).sum();
    assert_eq!(report.stored as i64, periods * 12, "{report:?}");
    let mut zeros = 0;
    for &(first, last) in &ranges {
        let stored = rows_of(&p.store, first.grain()).await;
        zeros += stored.iter().filter(|r| r.4 == 0).count();
        let mut expected = truth_of(&apps, first, last, now);
        for row in expected.iter_mut().filter(|r| r.0 == huge.as_str()) {
            row.4 <<= 32;
        }
        assert!(expected.iter().any(|r| r.4 > i64::from(u32::MAX)));
        assert_eq!(stored, expected, "{}", first.grain());
    }
    assert!(zeros > 0, "some all-zero periods are kept as zeros");
    // Keys not yet published have no row: the newest day has key 0 and key 1 only.
    let newest: Vec<i16> = sqlx::query_scalar(
        "SELECT DISTINCT key FROM daily_retention WHERE day = '2026-01-18' ORDER BY 1",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("keys");
    assert_eq!(newest, [0, 1]);

    for &(first, last) in &ranges {
        p.store
            .enqueue(&apps, retention_range(first, last), now, true)
            .await
            .expect("enqueue again");
    }
    let before: Vec<Vec<Row>> = {
        let mut all = Vec::new();
        for &(first, _) in &ranges {
            all.push(rows_of(&p.store, first.grain()).await);
        }
        all
    };
    let again = pass(scope).await;
    assert_eq!(again.rows_written, 0, "{again:?}");
    for (i, &(first, _)) in ranges.iter().enumerate() {
        assert_eq!(rows_of(&p.store, first.grain()).await, before[i]);
    }
}

/// `once` every hour for five weeks across New Year: after every pass each
/// grain's table holds exactly what WeChat has published by then (a key lands
/// in the pass at its publication hour), and the calls stay within 1.2 × one
/// per key set WeChat published while we watched.
#[tokio::test]
async fn five_weeks_of_hourly_passes_land_every_key_when_published_at_about_one_call_per_key_set() {
    let db = TestDb::new().await;
    let start = beijing(2025, 12, 15, 0); // a Monday
    let end = start + Duration::weeks(5);
    let sim = simulator(start, |_| {}).await;
    let apps = apps(1);
    let extra = format!("{FAST}[schedule]\nstart_week = \"2025-12-08\"\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let mut t = start;
    while t < end {
        sim.clock().set(t);
        once(&p, t).await;
        for grain in Grain::ALL {
            let (first, last) = p.kept_periods(grain, t);
            assert_eq!(
                rows_of(&p.store, grain).await,
                truth_of(&apps, first, last, t),
                "{grain} at {t}"
            );
        }
        t += Duration::hours(1);
    }
    // The least number of calls that sees every key: one per distinct key
    // set each period showed while the passes ran.
    let stats = sim.stats();
    let mut needed: BTreeMap<Grain, usize> = BTreeMap::new();
    let mut made: BTreeMap<Grain, u64> = BTreeMap::new();
    for grain in Grain::ALL {
        let (first, last) = p.kept_periods(grain, end);
        for period in Period::range(first, last) {
            let mut seen = BTreeSet::new();
            let mut at = start;
            while at < end {
                if let Publication::Keys(k) = publication_of(period, at, 10) {
                    seen.insert(k);
                }
                at += Duration::hours(1);
            }
            *needed.entry(grain).or_default() += seen.len();
            *made.entry(grain).or_default() += stats
                .per_period
                .get(&(apps[0].clone(), period))
                .map(|c| c.ok)
                .unwrap_or(0);
        }
    }
    for grain in Grain::ALL {
        let (needed, made) = (needed[&grain] as f64, made[&grain] as f64);
        assert!(needed > 0.0, "{grain}: nothing was published");
        assert!(
            made >= needed && made <= 1.2 * needed,
            "{grain}: {made} successful calls for {needed} published key sets"
        );
    }
    // Daily keys really came in over days: the oldest day has all ten, key 30 included.
    let keys: Vec<i16> = sqlx::query_scalar(
        "SELECT DISTINCT key FROM daily_retention WHERE day = '2025-12-08' ORDER BY 1",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("keys");
    assert_eq!(keys, [0, 1, 2, 3, 4, 5, 6, 7, 14, 30]);
}

/// `[collect] retention` picks the grains; an app's own `retention` wins;
/// an unknown name is a config error naming its key.
#[tokio::test]
async fn per_app_retention_overrides_the_collected_grains() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 10, 12);
    let sim = simulator(now, |_| {}).await;
    let apps = apps(2);
    let toml = format!(
        "{FAST}[schedule]\nlookback_weeks = 2\n[collect]\nretention = [\"weekly\", \"monthly\"]\n\
         [[apps]]\nappid = \"{}\"\nsecret_env = \"S0\"\nretention = [\"daily\"]\n\
         [[apps]]\nappid = \"{}\"\nsecret_env = \"S1\"\n",
        apps[0], apps[1]
    );
    let env: std::collections::HashMap<String, String> = [
        ("S0", "secret-0"),
        ("S1", "secret-1"),
        ("DATABASE_URL", db.url.as_str()),
        ("WXRETAIN_WECHAT_BASE_URL", &sim.base_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::parse(&toml, Path::new("test.toml"), &env).expect("valid");
    let grains =
        |i: usize| -> Vec<Grain> { config.apps[i].streams.iter().map(|s| s.grain).collect() };
    assert_eq!(grains(0), [Grain::Daily]);
    assert_eq!(grains(1), [Grain::Weekly, Grain::Monthly]);
    let p = pipeline(config).await;
    let report = once(&p, now).await;
    assert!(report.stored > 0, "{report:?}");
    let by_app: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT appid, grain, count(*) FROM retention_ledger GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("ledger");
    let grains: Vec<(&str, &str)> = by_app
        .iter()
        .map(|(a, g, _)| (a.as_str(), g.as_str()))
        .collect();
    assert_eq!(
        grains,
        [
            (apps[0].as_str(), "daily"),
            (apps[1].as_str(), "monthly"),
            (apps[1].as_str(), "weekly"),
        ]
    );
    let daily_apps: Vec<String> = sqlx::query_scalar("SELECT DISTINCT appid FROM daily_retention")
        .fetch_all(p.store.pool())
        .await
        .expect("daily");
    assert_eq!(daily_apps, [apps[0].to_string()]);

    for (text, key) in [
        ("[collect]\nretention = [\"hourly\"]\n", "collect.retention"),
        ("[collect]\nretention = []\n", "collect.retention"),
        (
            "[[apps]]\nappid = \"wx51a0000000000001\"\nsecret_env = \"S0\"\nretention = [\"weekly\", \"yearly\"]\n",
            "apps[0].retention",
        ),
    ] {
        let err = Config::parse(text, Path::new("t.toml"), &env).expect_err(text);
        assert!(err.to_string().contains(key), "{err}");
    }
}
