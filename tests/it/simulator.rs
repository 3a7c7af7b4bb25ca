//! The simulator over real HTTP, the way a collector meets it.

use crate::common;

use chrono::{DateTime, TimeZone, Utc};
use reqwest::Client;
use serde_json::{json, Value};
use wxretain::domain::{AppId, Metric, NaturalWeek, BEIJING, MAX_KEY};
use wxretain::simulator::{
    sim_appid, truth_value, Faults, SimClock, SimConfig, Simulator, SimulatorHandle,
};

const DATA_PATH: &str = "/datacube/getweanalysisappidweeklyretaininfo";

fn beijing(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    BEIJING
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("valid instant")
        .to_utc()
}

fn week() -> NaturalWeek {
    NaturalWeek::parse_monday("20240304").expect("a monday")
}

/// Key 0 of `week()` is published at 2024-03-11 10:00 Beijing.
fn published() -> DateTime<Utc> {
    beijing(2024, 3, 11, 10, 0)
}

async fn start(faults: Faults, now: DateTime<Utc>) -> (SimulatorHandle, Client) {
    let config = SimConfig {
        faults,
        clock: SimClock::frozen_at(now),
        ..SimConfig::default()
    };
    let addr = "127.0.0.1:0".parse().expect("addr");
    let sim = Simulator::start(config, addr)
        .await
        .expect("simulator starts");
    (sim, Client::new())
}

/// A valid stable token, with the lifetime WeChat gives.
async fn token(sim: &SimulatorHandle, appid: &AppId) -> String {
    let answer = common::stable_token(sim, appid, false).await;
    assert_eq!(answer["expires_in"], 7200, "{answer}");
    common::token_of(&answer)
}

async fn post_data(
    sim: &SimulatorHandle,
    client: &Client,
    token: &str,
    body: Value,
) -> reqwest::Response {
    client
        .post(format!(
            "{}{DATA_PATH}?access_token={token}",
            sim.base_url()
        ))
        .json(&body)
        .send()
        .await
        .expect("data call")
}

async fn data(sim: &SimulatorHandle, client: &Client, token: &str, week: NaturalWeek) -> Value {
    let body = json!({"begin_date": week.begin_date(), "end_date": week.end_date()});
    post_data(sim, client, token, body)
        .await
        .json()
        .await
        .expect("data JSON")
}

fn errcode(answer: &Value) -> Option<i64> {
    answer.get("errcode").and_then(Value::as_i64)
}

/// Asserts the answer holds exactly keys 0..=max_key with the truth values.
fn assert_truth(answer: &Value, appid: &AppId, week: NaturalWeek, max_key: u8) {
    assert_eq!(answer["ref_date"], week.ref_date(), "{answer}");
    for metric in Metric::ALL {
        let series = answer[metric.as_str()].as_array().expect("a series");
        assert_eq!(series.len(), usize::from(max_key) + 1, "{answer}");
        for (key, item) in (0u8..).zip(series) {
            assert_eq!(item["key"], key);
            assert_eq!(
                item["value"],
                truth_value(appid, week, metric, key),
                "{metric} {key}"
            );
        }
    }
}

#[tokio::test]
async fn keys_grow_as_the_clock_moves() {
    let (sim, client) = start(Faults::default(), beijing(2024, 3, 10, 23, 59)).await;
    let app = sim_appid(3);
    let t = token(&sim, &app).await;
    assert_eq!(errcode(&data(&sim, &client, &t, week()).await), Some(61501));
    sim.clock().set(beijing(2024, 3, 11, 0, 0));
    let answer = data(&sim, &client, &t, week()).await;
    assert_eq!(errcode(&answer), Some(61503));
    assert!(answer["errmsg"]
        .as_str()
        .is_some_and(|m| m.starts_with("计算延迟")));
    sim.clock().set(published());
    // Ten hours later the first token has expired (7200 s).
    assert_eq!(errcode(&data(&sim, &client, &t, week()).await), Some(42001));
    let t = token(&sim, &app).await;
    assert_truth(&data(&sim, &client, &t, week()).await, &app, week(), 0);
    // A week later the token has expired (7200 s): a stable_token call mints a new one.
    sim.clock().set(beijing(2024, 3, 18, 10, 0));
    assert_eq!(errcode(&data(&sim, &client, &t, week()).await), Some(42001));
    let t = token(&sim, &app).await;
    assert_truth(&data(&sim, &client, &t, week()).await, &app, week(), 1);
    sim.clock().set(beijing(2024, 4, 8, 10, 0));
    let t = token(&sim, &app).await;
    assert_truth(
        &data(&sim, &client, &t, week()).await,
        &app,
        week(),
        MAX_KEY,
    );
    // Too old: more than 160 weeks before the current one.
    assert_eq!(
        errcode(&data(&sim, &client, &t, week().plus_weeks(-200)).await),
        Some(61501)
    );
    let stats = sim.stats();
    assert_eq!(stats.total_data_calls, 8);
    assert_eq!(stats.ok_answers, 3);
    assert_eq!(sim.calls_for(&app, week()), 7);
    assert_eq!(stats.token_calls.stable, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_wechat_errors() {
    let (sim, client) = start(Faults::default(), published()).await;
    let t = token(&sim, &sim_appid(1)).await;
    let cases = [
        (
            json!({"begin_date": "2024-03-04", "end_date": "2024-03-10"}),
            61500,
        ),
        (json!({"begin_date": "20240304"}), 61500),
        (
            json!({"begin_date": "20240305", "end_date": "20240311"}),
            61501,
        ),
        (
            json!({"begin_date": "20240304", "end_date": "20240317"}),
            61501,
        ),
        (json!([1, 2]), 61500),
    ];
    for (body, code) in cases {
        assert_eq!(
            errcode(
                &post_data(&sim, &client, &t, body.clone())
                    .await
                    .json()
                    .await
                    .expect("json")
            ),
            Some(code),
            "{body}"
        );
    }
    let raw = client
        .post(format!("{}{DATA_PATH}?access_token={t}", sim.base_url()))
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(errcode(&raw.json().await.expect("json")), Some(47001));
    let unknown = data(&sim, &client, "nope", week()).await;
    assert_eq!(errcode(&unknown), Some(40001));
    assert!(unknown["errmsg"]
        .as_str()
        .is_some_and(|m| m.contains("rid: ")));
    // cloudbase_access_token is accepted in place of access_token.
    let body = json!({"begin_date": "20240304", "end_date": "20240310"});
    let cloud: Value = client
        .post(format!(
            "{}{DATA_PATH}?cloudbase_access_token={t}",
            sim.base_url()
        ))
        .json(&body)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_truth(&cloud, &sim_appid(1), week(), 0);
    // Token calls: bad appid, missing secret, bad grant type, broken body.
    let post = |body: String| {
        client
            .post(format!("{}/cgi-bin/stable_token", sim.base_url()))
            .body(body)
            .send()
    };
    let code =
        |r: reqwest::Response| async move { errcode(&r.json::<Value>().await.expect("json")) };
    let bad_app = json!({"grant_type": "client_credential", "appid": "wxNOPE", "secret": "s"});
    assert_eq!(
        code(post(bad_app.to_string()).await.expect("sent")).await,
        Some(40013)
    );
    let no_secret =
        json!({"grant_type": "client_credential", "appid": sim_appid(1).as_str(), "secret": ""});
    assert_eq!(
        code(post(no_secret.to_string()).await.expect("sent")).await,
        Some(40125)
    );
    let grant = json!({"grant_type": "password", "appid": sim_appid(1).as_str(), "secret": "s"});
    assert_eq!(
        code(post(grant.to_string()).await.expect("sent")).await,
        Some(40002)
    );
    assert_eq!(
        code(post("][".into()).await.expect("sent")).await,
        Some(47001)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tokens_expire_and_are_replaced() {
    let faults = Faults {
        token_expire_after_calls: Some(2),
        ..Faults::default()
    };
    let (sim, client) = start(faults, published()).await;
    let app = sim_appid(2);
    let t1 = token(&sim, &app).await;
    assert_eq!(
        token(&sim, &app).await,
        t1,
        "stable_token reuses a valid token"
    );
    assert!(errcode(&data(&sim, &client, &t1, week()).await).is_none());
    assert!(errcode(&data(&sim, &client, &t1, week()).await).is_none());
    assert_eq!(
        errcode(&data(&sim, &client, &t1, week()).await),
        Some(42001)
    );
    let t2 = token(&sim, &app).await;
    assert_ne!(t1, t2);
    assert_truth(&data(&sim, &client, &t2, week()).await, &app, week(), 0);
    // force_refresh mints a new one and the old one stops working.
    let forced = common::stable_token(&sim, &app, true).await;
    let t3 = forced["access_token"].as_str().expect("token").to_string();
    assert_ne!(t3, t2);
    assert_eq!(
        errcode(&data(&sim, &client, &t2, week()).await),
        Some(40001)
    );
    // The classic endpoint invalidates its own previous token, not the stable one.
    let classic = |n: u32| {
        client
            .get(format!(
                "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret=s{n}",
                sim.base_url(),
                app
            ))
            .send()
    };
    let c1: Value = classic(1).await.expect("sent").json().await.expect("json");
    let c2: Value = classic(2).await.expect("sent").json().await.expect("json");
    let (c1, c2) = (
        c1["access_token"].as_str().expect("t"),
        c2["access_token"].as_str().expect("t"),
    );
    assert_eq!(errcode(&data(&sim, &client, c1, week()).await), Some(40001));
    assert!(errcode(&data(&sim, &client, c2, week()).await).is_none());
    assert!(errcode(&data(&sim, &client, &t3, week()).await).is_none());
    let stats = sim.stats();
    assert_eq!(
        (stats.token_calls.stable, stats.token_calls.classic),
        (4, 2)
    );
    assert_eq!(stats.token_calls_by_app.get(&app), Some(&6));
    sim.shutdown().await;
}

#[tokio::test]
async fn app_errors_and_quotas() {
    let blocked = sim_appid(10);
    let unauthorized = sim_appid(11);
    let faults = Faults {
        app_errors: vec![(blocked.clone(), 40164), (unauthorized.clone(), 48001)],
        minute_quota: Some(2),
        daily_quota: Some(3),
        ..Faults::default()
    };
    let (sim, client) = start(faults, published()).await;
    assert_eq!(
        errcode(&common::stable_token(&sim, &blocked, false).await),
        Some(40164)
    );
    let t = token(&sim, &unauthorized).await;
    assert_eq!(errcode(&data(&sim, &client, &t, week()).await), Some(48001));

    let app = sim_appid(12);
    let t = token(&sim, &app).await;
    assert!(errcode(&data(&sim, &client, &t, week()).await).is_none());
    assert!(errcode(&data(&sim, &client, &t, week()).await).is_none());
    assert_eq!(errcode(&data(&sim, &client, &t, week()).await), Some(45011));
    sim.clock().set(published() + chrono::Duration::minutes(1));
    assert!(errcode(&data(&sim, &client, &t, week()).await).is_none());
    sim.clock().set(published() + chrono::Duration::minutes(2));
    assert_eq!(errcode(&data(&sim, &client, &t, week()).await), Some(45009));
    // The quota day ends at midnight Beijing time, not UTC.
    sim.clock().set(beijing(2024, 3, 12, 0, 0));
    let t = token(&sim, &app).await;
    assert!(errcode(&data(&sim, &client, &t, week()).await).is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn transport_faults_and_stats_endpoint() {
    let (sim, client) = start(
        Faults {
            garbage_rate: 1.0,
            ..Faults::default()
        },
        published(),
    )
    .await;
    let app = sim_appid(20);
    let t = token(&sim, &app).await;
    let body = json!({"begin_date": "20240304", "end_date": "20240310"});
    let garbage = post_data(&sim, &client, &t, body.clone()).await;
    assert_eq!(garbage.status(), 200);
    let text = garbage.text().await.expect("body");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    sim.set_faults(Faults {
        http_5xx_rate: 1.0,
        ..Faults::default()
    });
    assert!(post_data(&sim, &client, &t, body.clone())
        .await
        .status()
        .is_server_error());

    sim.set_faults(Faults {
        wrong_ref_date_rate: 1.0,
        ..Faults::default()
    });
    let wrong = data(&sim, &client, &t, week()).await;
    assert_ne!(wrong["ref_date"], week().ref_date());

    sim.set_faults(Faults {
        error_rates: vec![(-1, 1.0)],
        ..Faults::default()
    });
    assert_eq!(errcode(&data(&sim, &client, &t, week()).await), Some(-1));

    sim.set_faults(Faults::default());
    assert_truth(&data(&sim, &client, &t, week()).await, &app, week(), 0);

    let stats: Value = client
        .get(format!("{}/__sim/stats", sim.base_url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["total_data_calls"], 5);
    assert_eq!(stats["ok_answers"], 1);
    assert_eq!(stats["token_calls"]["stable"], 1);
    assert_eq!(stats["calls"][format!("{app}/2024-0304")], Value::Null);
    assert_eq!(
        stats["calls"][format!("{app}/2024-03-04")],
        json!({"calls": 5, "ok": 1})
    );

    // The admin clock endpoint moves the frozen clock.
    let moved = client
        .post(format!("{}/__sim/clock", sim.base_url()))
        .json(&json!({"now": "2024-03-11T09:00:00+08:00"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(moved.status(), 200);
    assert_eq!(sim.clock().now(), beijing(2024, 3, 11, 9, 0));
    assert_eq!(errcode(&data(&sim, &client, &t, week()).await), Some(61503));
    let refused = client
        .post(format!("{}/__sim/clock", sim.base_url()))
        .json(&json!({"now": "tomorrow"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn seeded_faults_are_reproducible() {
    let faults = Faults {
        error_rates: vec![(-1, 0.5)],
        seed: 7,
        ..Faults::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (sim, client) = start(faults.clone(), published()).await;
        let t = token(&sim, &sim_appid(30)).await;
        let mut codes = Vec::new();
        for _ in 0..16 {
            codes.push(errcode(&data(&sim, &client, &t, week()).await));
        }
        sim.shutdown().await;
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&Some(-1)) && runs[0].contains(&None),
        "{:?}",
        runs[0]
    );
}
