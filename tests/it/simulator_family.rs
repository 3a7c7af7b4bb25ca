//! The simulator's three retention APIs over HTTP: the same tokens, faults,
//! quotas and clock for a day, a week and a month.

use crate::common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use reqwest::Client;
use serde_json::{json, Value};
use wxretain::domain::{AppId, Grain, Metric, Period, BEIJING};
use wxretain::simulator::{
    publication_of, sim_appid, truth_value_of, Faults, Publication, SimClock, SimConfig, Simulator,
    SimulatorHandle,
};

fn beijing(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    BEIJING
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid instant")
        .to_utc()
}

fn period(grain: Grain, y: i32, m: u32, d: u32) -> Period {
    grain.containing(NaiveDate::from_ymd_opt(y, m, d).expect("a date"))
}

async fn start(
    now: DateTime<Utc>,
    tweak: impl FnOnce(&mut SimConfig),
) -> (SimulatorHandle, Client) {
    let mut config = SimConfig {
        clock: SimClock::frozen_at(now),
        ..SimConfig::default()
    };
    tweak(&mut config);
    let sim = Simulator::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator starts");
    (sim, Client::new())
}

/// A valid stable token; asked again after each clock move, since tokens
/// live 2 hours and these tests move the clock by days.
async fn token(sim: &SimulatorHandle, appid: &AppId) -> String {
    common::token_of(&common::stable_token(sim, appid, false).await)
}

/// The raw answer of `grain`'s API to `body`.
async fn post(
    sim: &SimulatorHandle,
    client: &Client,
    grain: Grain,
    token: &str,
    body: String,
) -> String {
    client
        .post(format!(
            "{}/{}?access_token={token}",
            sim.base_url(),
            wxretain::dataset::retention::api(grain).path
        ))
        .body(body)
        .send()
        .await
        .expect("data call")
        .text()
        .await
        .expect("a body")
}

async fn ask_dates(
    sim: &SimulatorHandle,
    client: &Client,
    grain: Grain,
    token: &str,
    begin: &str,
    end: &str,
) -> Value {
    let body = json!({"begin_date": begin, "end_date": end}).to_string();
    serde_json::from_str(&post(sim, client, grain, token, body).await).expect("JSON")
}

async fn ask(sim: &SimulatorHandle, client: &Client, token: &str, p: Period) -> Value {
    ask_dates(
        sim,
        client,
        p.grain(),
        token,
        &p.begin_date(),
        &p.end_date(),
    )
    .await
}

fn errcode(answer: &Value) -> Option<i64> {
    answer.get("errcode").and_then(Value::as_i64)
}

fn keys(answer: &Value, metric: Metric) -> Vec<u8> {
    answer[metric.as_str()]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|i| i["key"].as_u64())
                .filter_map(|k| u8::try_from(k).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the answer is `p`'s truth with exactly `expected` keys.
fn assert_truth(answer: &Value, appid: &AppId, p: Period, expected: &[u8]) {
    assert_eq!(answer["ref_date"], p.ref_date(), "{answer}");
    for metric in Metric::ALL {
        assert_eq!(keys(answer, metric), expected, "{metric}: {answer}");
        for (item, &key) in answer[metric.as_str()]
            .as_array()
            .into_iter()
            .flatten()
            .zip(expected)
        {
            assert_eq!(
                item["value"],
                truth_value_of(appid, p, metric, key),
                "{p} {metric} {key}"
            );
        }
    }
}

#[tokio::test]
async fn a_day_is_served_at_a_year_boundary() {
    let day = period(Grain::Daily, 2026, 12, 31);
    let (sim, client) = start(beijing(2026, 12, 31, 12), |_| ()).await;
    let app = sim_appid(3);
    let t = token(&sim, &app).await;
    assert_eq!(
        errcode(&ask(&sim, &client, &t, day).await),
        Some(61501),
        "not over yet"
    );
    sim.clock().set(beijing(2027, 1, 1, 9));
    let t = token(&sim, &app).await;
    assert_eq!(
        errcode(&ask(&sim, &client, &t, day).await),
        Some(61503),
        "computing"
    );
    sim.clock().set(beijing(2027, 1, 1, 10));
    let t = token(&sim, &app).await;
    assert_truth(&ask(&sim, &client, &t, day).await, &app, day, &[0]);
    sim.clock().set(beijing(2027, 1, 15, 10));
    let t = token(&sim, &app).await;
    assert_truth(
        &ask(&sim, &client, &t, day).await,
        &app,
        day,
        &[0, 1, 2, 3, 4, 5, 6, 7, 14],
    );
    sim.clock().set(beijing(2027, 2, 1, 10));
    let t = token(&sim, &app).await;
    assert_truth(
        &ask(&sim, &client, &t, day).await,
        &app,
        day,
        wxretain::dataset::retention::keys(Grain::Daily),
    );
    assert_eq!(sim.calls_for_period(&app, day), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_month_is_served_at_a_year_boundary() {
    let dec = period(Grain::Monthly, 2026, 12, 1);
    let (sim, client) = start(beijing(2026, 12, 31, 23), |_| ()).await;
    let app = sim_appid(4);
    let t = token(&sim, &app).await;
    assert_eq!(
        errcode(&ask(&sim, &client, &t, dec).await),
        Some(61501),
        "not over yet"
    );
    sim.clock().set(beijing(2027, 1, 1, 0));
    let t = token(&sim, &app).await;
    assert_eq!(
        errcode(&ask(&sim, &client, &t, dec).await),
        Some(61503),
        "computing"
    );
    sim.clock().set(beijing(2027, 1, 1, 10));
    let t = token(&sim, &app).await;
    let answer = ask(&sim, &client, &t, dec).await;
    assert_eq!(answer["ref_date"], "202612");
    assert_truth(&answer, &app, dec, &[0]);
    sim.clock().set(beijing(2027, 2, 1, 10));
    let t = token(&sim, &app).await;
    assert_truth(&ask(&sim, &client, &t, dec).await, &app, dec, &[0, 1]);
    // January ended at midnight; its key 0 came out at 10:00 the same day.
    let jan = dec.next();
    assert_eq!(
        publication_of(jan, sim.clock().now(), 10),
        Publication::Keys(0)
    );
    assert_truth(&ask(&sim, &client, &t, jan).await, &app, jan, &[0]);
    sim.shutdown().await;
}

#[tokio::test]
async fn windows_of_the_wrong_shape_get_61501() {
    let (sim, client) = start(beijing(2027, 2, 1, 10), |_| ()).await;
    let t = token(&sim, &sim_appid(5)).await;
    let cases = [
        (Grain::Monthly, "20261201", "20261230", Some(61501)), // 30 days of a 31-day month
        (Grain::Monthly, "20261201", "20261201", Some(61501)), // one day
        (Grain::Monthly, "20261202", "20270101", Some(61501)), // a month's length, misplaced
        (Grain::Monthly, "20261101", "20261130", None),        // November has 30 days
        (Grain::Daily, "20261230", "20261231", Some(61501)),   // two days
        (Grain::Daily, "20261228", "20270103", Some(61501)),   // a week, on the daily API
        (Grain::Daily, "20261231", "20261231", None),
        (Grain::Weekly, "20261201", "20261231", Some(61501)), // a month, on the weekly API
        (Grain::Daily, "2026-12-31", "20261231", Some(61500)),
        (Grain::Monthly, "202612", "202612", Some(61500)),
    ];
    for (grain, begin, end, code) in cases {
        let answer = ask_dates(&sim, &client, grain, &t, begin, end).await;
        assert_eq!(errcode(&answer), code, "{grain} {begin}..{end}: {answer}");
    }
    for grain in [Grain::Daily, Grain::Monthly] {
        let answer: Value =
            serde_json::from_str(&post(&sim, &client, grain, &t, "{nope".into()).await)
                .expect("JSON");
        assert_eq!(errcode(&answer), Some(47001), "{grain}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn quotas_are_counted_per_api() {
    let now = beijing(2027, 2, 1, 10);
    let (sim, client) = start(now, |c| {
        c.faults.minute_quota = Some(1);
        c.faults.daily_quota = Some(2);
    })
    .await;
    let app = sim_appid(6);
    let t = token(&sim, &app).await;
    let day = period(Grain::Daily, 2027, 1, 20);
    let week = period(Grain::Weekly, 2027, 1, 18);
    let month = period(Grain::Monthly, 2026, 12, 1);
    for p in [day, week, month] {
        assert_eq!(
            errcode(&ask(&sim, &client, &t, p).await),
            None,
            "{p}: its own quota"
        );
    }
    assert_eq!(errcode(&ask(&sim, &client, &t, day).await), Some(45011));
    sim.clock().set(now + chrono::Duration::minutes(1));
    for p in [day, week, month] {
        assert_eq!(
            errcode(&ask(&sim, &client, &t, p).await),
            None,
            "{p}: a new minute"
        );
    }
    sim.clock().set(now + chrono::Duration::minutes(2));
    assert_eq!(errcode(&ask(&sim, &client, &t, day).await), Some(45009));
    // Another app's quota is its own too.
    let other = sim_appid(7);
    let t2 = token(&sim, &other).await;
    assert_eq!(errcode(&ask(&sim, &client, &t2, day).await), None);
    // Each API has had its 2 calls today: the weekly one refuses now too.
    assert_eq!(errcode(&ask(&sim, &client, &t, week).await), Some(45009));
    sim.shutdown().await;
}

#[tokio::test]
async fn weekly_answers_are_byte_identical_to_before() {
    // Recorded from the simulator before it served other grains.
    let before = [
        (
            "20240304",
            "20240310",
            r#"{"ref_date":"20240304-20240310","visit_uv":[{"key":0,"value":8094},{"key":1,"value":4496},{"key":2,"value":2803},{"key":3,"value":1567},{"key":4,"value":1038}],"visit_uv_new":[{"key":0,"value":2960},{"key":1,"value":1623},{"key":2,"value":1183},{"key":3,"value":741},{"key":4,"value":625}]}"#,
        ),
        (
            "20240325",
            "20240331",
            r#"{"ref_date":"20240325-20240331","visit_uv":[{"key":0,"value":10618},{"key":1,"value":3977}],"visit_uv_new":[{"key":0,"value":4227},{"key":1,"value":2461}]}"#,
        ),
        (
            "20240401",
            "20240407",
            r#"{"ref_date":"20240401-20240407","visit_uv":[{"key":0,"value":9938}],"visit_uv_new":[{"key":0,"value":3396}]}"#,
        ),
    ];
    let (sim, client) = start(beijing(2024, 4, 8, 10), |_| ()).await;
    let t = token(&sim, &sim_appid(5)).await;
    for (begin, end, text) in before {
        let body = format!(r#"{{"begin_date":"{begin}","end_date":"{end}"}}"#);
        assert_eq!(post(&sim, &client, Grain::Weekly, &t, body).await, text);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn answer_faults_apply_to_every_grain() {
    let now = beijing(2027, 2, 1, 10);
    let (sim, client) = start(now, |_| ()).await;
    let app = sim_appid(8);
    let t = token(&sim, &app).await;
    let asked = [
        period(Grain::Daily, 2027, 1, 1),
        period(Grain::Weekly, 2027, 1, 4),
        period(Grain::Monthly, 2027, 1, 1),
    ];
    sim.set_faults(Faults {
        wrong_ref_date_rate: 1.0,
        ..Faults::default()
    });
    for p in asked {
        assert_eq!(
            ask(&sim, &client, &t, p).await["ref_date"],
            p.prev().ref_date(),
            "{p}"
        );
    }
    sim.set_faults(Faults {
        empty_answer_rate: 1.0,
        ..Faults::default()
    });
    for p in asked {
        let answer = ask(&sim, &client, &t, p).await;
        assert_eq!(answer["ref_date"], p.ref_date());
        assert_eq!(answer["visit_uv"], json!([]), "{p}");
    }
    sim.set_faults(Faults {
        implausible_apps: vec![app.clone()],
        ..Faults::default()
    });
    for p in asked {
        let answer = ask(&sim, &client, &t, p).await;
        let (new, active) = (
            &answer["visit_uv_new"][0]["value"],
            &answer["visit_uv"][0]["value"],
        );
        assert!(new.as_i64() > active.as_i64(), "{p}: {answer}");
    }
    sim.set_faults(Faults {
        error_rates: vec![(-1, 1.0)],
        ..Faults::default()
    });
    for p in asked {
        assert_eq!(errcode(&ask(&sim, &client, &t, p).await), Some(-1), "{p}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn history_horizon_is_in_days_for_every_grain() {
    // Friday 2027-01-15: one week back is 2027-01-08.
    let (sim, client) = start(beijing(2027, 1, 15, 10), |c| c.history_weeks = 1).await;
    let app = sim_appid(9);
    let t = token(&sim, &app).await;
    let served = |answer: &Value| errcode(answer).is_none();
    assert!(served(
        &ask(&sim, &client, &t, period(Grain::Daily, 2027, 1, 8)).await
    ));
    assert!(!served(
        &ask(&sim, &client, &t, period(Grain::Daily, 2027, 1, 7)).await
    ));
    assert!(served(
        &ask(&sim, &client, &t, period(Grain::Weekly, 2027, 1, 4)).await
    ));
    assert!(!served(
        &ask(&sim, &client, &t, period(Grain::Weekly, 2026, 12, 28)).await
    ));
    assert!(!served(
        &ask(&sim, &client, &t, period(Grain::Monthly, 2026, 12, 1)).await
    ));
    sim.shutdown().await;
    let (sim, client) = start(beijing(2027, 1, 15, 10), |c| c.history_weeks = 3).await;
    let t = token(&sim, &app).await;
    assert!(served(
        &ask(&sim, &client, &t, period(Grain::Monthly, 2026, 12, 1)).await
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn stats_count_every_grain_and_keep_weekly_apart() {
    let (sim, client) = start(beijing(2027, 2, 1, 10), |_| ()).await;
    let app = sim_appid(10);
    let t = token(&sim, &app).await;
    let day = period(Grain::Daily, 2027, 1, 1);
    let week = period(Grain::Weekly, 2027, 1, 4);
    let month = period(Grain::Monthly, 2026, 12, 1);
    for p in [day, day, week, month] {
        assert_eq!(errcode(&ask(&sim, &client, &t, p).await), None);
    }
    let future = period(Grain::Monthly, 2027, 2, 1);
    assert_eq!(errcode(&ask(&sim, &client, &t, future).await), Some(61501));
    assert_eq!(
        errcode(&ask_dates(&sim, &client, Grain::Daily, &t, "x", "y").await),
        Some(61500)
    );
    let stats = sim.stats();
    assert_eq!((stats.total_data_calls, stats.ok_answers), (6, 4));
    assert_eq!(sim.calls_for_period(&app, day), 2);
    assert_eq!(stats.calls_for_period(&app, month), 1);
    assert_eq!(stats.calls_for_period(&app, future), 1);
    assert_eq!(
        stats.per_period.get(&(app.clone(), future)).map(|c| c.ok),
        Some(0)
    );
    let weekly = week.week().expect("a week");
    assert_eq!(sim.calls_for(&app, weekly), 1);
    assert_eq!(stats.per_week.len(), 1, "per_week holds weekly calls only");
    let json = stats.to_json();
    assert_eq!(json["by_grain"]["daily"], json!({"calls": 3, "ok": 2}));
    assert_eq!(json["by_grain"]["monthly"], json!({"calls": 2, "ok": 1}));
    assert_eq!(
        json["period_calls"][format!("{app}/monthly/2026-12")],
        json!({"calls": 1, "ok": 1})
    );
    assert_eq!(
        json["calls"][format!("{app}/2027-01-04")],
        json!({"calls": 1, "ok": 1})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_huge_history_serves_everything_without_a_panic() {
    let (sim, client) = start(beijing(2027, 2, 1, 10), |c| c.history_weeks = u32::MAX).await;
    let app = sim_appid(11);
    let t = token(&sim, &app).await;
    let old = period(Grain::Daily, 2017, 1, 1);
    assert_truth(
        &ask(&sim, &client, &t, old).await,
        &app,
        old,
        wxretain::dataset::retention::keys(Grain::Daily),
    );
    sim.shutdown().await;
}
