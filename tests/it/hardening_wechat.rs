//! Hardening of the WeChat side: what an echoing gateway, a wrong secret, a
//! failing token source, an odd `expires_in` and `force_refresh` can do.

use crate::common;

use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxretain::config::Config;
use wxretain::domain::{NaturalWeek, BEIJING};
use wxretain::simulator::{sim_appid, Faults, SimulatorHandle};
use wxretain::wechat::{ErrorClass, WeChatClient};

fn now() -> chrono::DateTime<chrono::Utc> {
    beijing(2026, 11, 24, 12)
}

fn weeks(n: i64) -> (NaturalWeek, NaturalWeek) {
    let last = NaturalWeek::last_completed_at(now(), BEIJING);
    (last.plus_weeks(1 - n), last)
}

/// The secret `config_toml` gives `appid`.
fn secret_of(appid: &wxretain::domain::AppId) -> String {
    format!("secret-{appid}")
}

/// The whole test database as `pg_dump` prints it.
async fn pg_dump(db: &TestDb) -> String {
    let out = tokio::process::Command::new("pg_dump")
        .arg(&db.url)
        .output()
        .await
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 dump")
}

// ---- 1. tokens and secrets are scrubbed from everything kept ----------------

/// A gateway echoes every request URL (with the access token, and with the
/// AppSecret on the classic token endpoint) into errmsg and into answers:
/// rejected ones, valid ones with an extra field, and errors at both
/// endpoints. None of it may reach the database, the log or `status`.
#[tokio::test]
async fn tokens_and_secrets_echoed_by_a_gateway_are_stored_and_logged_nowhere() {
    let (capture, _guard) = Capture::debug_log();

    let db = TestDb::new().await;
    let apps = apps(4);
    let (no_permission, not_whitelisted) = (apps[2].clone(), apps[3].clone());
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            echo_request: true,
            wrong_ref_date_rate: 0.3,
            app_errors: vec![
                (no_permission.clone(), 48001),
                (not_whitelisted.clone(), 40164),
            ],
            seed: 3,
            ..Faults::default()
        };
    })
    .await;
    // The classic endpoint puts the AppSecret in the URL, so its echo has it.
    let extra = format!("{FAST}token_endpoint = \"classic\"\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let (first, last) = weeks(12);
    backfill(&p, first, last, now(), false).await;

    // The echoes did reach every place that keeps text (scrubbed).
    let rejected: Vec<String> = sqlx::query_scalar("SELECT body FROM rejected_answers")
        .fetch_all(p.store.pool())
        .await
        .expect("rejected");
    assert!(!rejected.is_empty(), "some answers were rejected");
    assert!(
        rejected.iter().all(|b| b.contains("access_token=***")),
        "{rejected:?}"
    );
    let archived: Vec<serde_json::Value> = sqlx::query_scalar("SELECT body FROM retention_answers")
        .fetch_all(p.store.pool())
        .await
        .expect("archive");
    assert!(!archived.is_empty(), "some answers were stored");
    assert!(
        archived.iter().all(|b| b["request"]
            .as_str()
            .is_some_and(|r| r.contains("access_token=***"))),
        "{archived:?}"
    );
    let errors: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT appid, last_errcode, last_error FROM retention_ledger WHERE last_errcode IS NOT NULL",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("ledger errors");
    for (app, code) in [(&no_permission, 48001), (&not_whitelisted, 40164)] {
        assert!(
            errors
                .iter()
                .any(|(a, c, e)| a == app.as_str() && *c == code && e.contains("request:")),
            "{code} with its echo in the ledger: {errors:?}"
        );
    }
    assert!(
        errors.iter().any(|(_, _, e)| e.contains("secret=***")),
        "the token call's echo, secret scrubbed: {errors:?}"
    );

    let tokens = sim.issued_tokens();
    assert!(tokens.len() >= 3, "{} tokens", tokens.len());
    let secrets: Vec<String> = apps.iter().map(secret_of).collect();
    let status = format!(
        "{:?}",
        p.store
            .app_status(
                &apps,
                wxretain::dataset::DatasetId::Retention,
                first.into(),
                last.into()
            )
            .await
            .expect("status")
    );
    let dump = pg_dump(&db).await;
    assert!(
        dump.contains("access_token=***"),
        "the dump holds the scrubbed echoes"
    );
    let log = capture.text();
    assert!(log.contains("40164"), "the log was captured");
    for (place, text) in [("database", &dump), ("log", &log), ("status", &status)] {
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "an access token is in the {place}"
            );
        }
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "an AppSecret is in the {place}"
            );
        }
    }
}

/// A config of the given TOML, pointed at the test database and simulator.
fn config_of(db: &TestDb, sim: &SimulatorHandle, toml: &str) -> Config {
    let env: HashMap<String, String> = [
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("WXRETAIN_WECHAT_BASE_URL".to_string(), sim.base_url()),
    ]
    .into();
    Config::parse(toml, Path::new("test.toml"), &env).expect("test config is valid")
}

// ---- 2. a wrong AppSecret is a configuration error --------------------------

#[tokio::test]
async fn a_wrong_app_secret_pauses_its_app_after_one_token_call_and_the_others_are_stored() {
    let db = TestDb::new().await;
    let apps = apps(3);
    let wrong = apps[1].clone();
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            // The config has `secret-<appid>`: wrong for this app.
            app_secrets: vec![(wrong.clone(), "the-right-secret".to_string())],
            ..Faults::default()
        };
    })
    .await;
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let (first, last) = weeks(12);
    let report = backfill(&p, first, last, now(), false).await;

    let good: Vec<_> = apps.iter().filter(|a| **a != wrong).cloned().collect();
    assert_eq!(report.stored, 24, "{report:?}");
    assert_eq!(table(&p.store).await, truth(&good, first, last, now(), 10));
    let stats = sim.stats();
    assert_eq!(
        stats.token_calls_by_app.get(&wrong),
        Some(&1),
        "one token call for the app, not one per week"
    );
    let rows = ledger_weeks(&p.store, std::slice::from_ref(&wrong), first, last).await;
    let failing: Vec<_> = rows.iter().filter(|r| r.state == "failing").collect();
    assert!(!failing.is_empty(), "{rows:?}");
    for row in &failing {
        assert_eq!(row.last_errcode, Some(40001), "{row:?}");
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("AppSecret is wrong") && error.contains("configuration"),
            "{error}"
        );
    }
    // Failed or put off untried, every week waits for the app's pause (an
    // hour for a configuration error), not for a token retry in minutes.
    assert_eq!(report.failed + report.deferred, 12, "{report:?}");
    assert!(
        rows.iter().all(|r| r
            .next_due_at
            .is_some_and(|t| t >= now() + chrono::Duration::minutes(59))),
        "{rows:?}"
    );
}

// ---- 3. a failing token source runs once for the weeks waiting on it --------

/// A `token_command` for one app that appends a line to `runs` each time it
/// runs, then does `then` (shell).
fn token_script(dir: &Path, then: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let runs = dir.join("runs");
    let script = dir.join("token.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho run >> '{}'\n{then}\n", runs.display()),
    )
    .expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (script, runs)
}

fn runs_of(runs: &Path) -> usize {
    std::fs::read_to_string(runs).map_or(0, |t| t.lines().count())
}

async fn command_pass(then: &str, wechat: &str, within: Duration) -> (usize, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (script, runs) = token_script(dir.path(), then);
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let app = sim_appid(1);
    let toml = format!(
        "[wechat]\nretry_min_delay_ms = 5\nmax_in_flight = 8\n{wechat}\
         [[apps]]\nappid = \"{app}\"\ntoken_command = [\"{}\"]\n",
        script.display()
    );
    let p = pipeline(config_of(&db, &sim, &toml)).await;
    let (first, last) = weeks(8);
    let started = Instant::now();
    let report = tokio::time::timeout(within, backfill(&p, first, last, now(), false))
        .await
        .unwrap_or_else(|_| panic!("the pass took over {within:?}"));
    let took = started.elapsed();
    assert_eq!(report.stored, 0, "{report:?}");
    assert_eq!(report.failed + report.deferred, 8, "{report:?}");
    let rows = ledger_weeks(&p.store, &[app], first, last).await;
    assert!(
        rows.iter().filter(|r| r.state == "failing").all(|r| r
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("token source:"))),
        "{rows:?}"
    );
    (runs_of(&runs), took)
}

#[tokio::test]
async fn a_failing_token_command_runs_once_for_the_eight_weeks_waiting_for_it() {
    let (runs, took) = command_pass("sleep 1; exit 1", "", Duration::from_secs(30)).await;
    assert_eq!(runs, 1, "the command ran {runs} times");
    assert!(took < Duration::from_secs(4), "the pass took {took:?}");
}

#[tokio::test]
async fn a_hanging_token_command_is_stopped_after_the_token_call_timeout_once() {
    // A token call may take connect + request timeouts (2 s here): so may the command.
    let wechat = "connect_timeout_secs = 1\nrequest_timeout_secs = 1\n";
    let (runs, took) = command_pass("exec sleep 60", wechat, Duration::from_secs(20)).await;
    assert_eq!(runs, 1, "the command ran {runs} times");
    assert!(took < Duration::from_secs(6), "the pass took {took:?}");
}

// ---- 4. an odd expires_in is clamped, never a panic -------------------------

#[tokio::test]
async fn any_expires_in_leaves_the_weeks_stored_with_one_token_call() {
    let odd = [
        serde_json::json!(u64::MAX),
        serde_json::json!(i64::MAX),
        serde_json::json!(1e300),
        serde_json::json!(-5),
        serde_json::json!(0),
        serde_json::json!("7200"),
        serde_json::json!("soon"),
        serde_json::Value::Null,
    ];
    for expires_in in odd {
        let db = TestDb::new().await;
        let sim = simulator(now(), |c| {
            c.faults = Faults {
                token_expires_in: Some(expires_in.clone()),
                ..Faults::default()
            };
        })
        .await;
        let apps = apps(1);
        let p = pipeline(config(&db, &sim, &apps, FAST)).await;
        let (first, last) = weeks(4);
        let report = backfill(&p, first, last, now(), false).await;
        assert_eq!(report.stored, 4, "expires_in {expires_in}: {report:?}");
        assert_eq!(table(&p.store).await, truth(&apps, first, last, now(), 10));
        // Even "already expired" keeps the token for the pass: not a call per week.
        assert_eq!(
            sim.stats().token_calls_by_app.get(&apps[0]),
            Some(&1),
            "expires_in {expires_in}"
        );
    }
}

// ---- 5. forced token refreshes come from one budget for all replicas --------

/// How many forced refreshes the budget table says `appid` took today.
async fn budget_taken(p: &wxretain::runtime::Runtime, appid: &wxretain::domain::AppId) -> i32 {
    sqlx::query_scalar("SELECT count FROM force_refresh_budget WHERE appid = $1")
        .bind(appid.as_str())
        .fetch_optional(p.store.pool())
        .await
        .expect("read the budget")
        .unwrap_or(0)
}

/// WeChat refuses every token of the app (40001 on the data call) while
/// stable_token keeps handing back the current one, so each week wants a
/// forced refresh. Two clients (two replicas) share the database: together
/// they force at most once per 30 s and at most the daily budget (10 of
/// WeChat's 20); a week that gets no forced refresh fails as a refused token.
#[tokio::test]
async fn two_replicas_force_token_refreshes_from_one_budget_spaced_30_s() {
    let db = TestDb::new().await;
    let apps = apps(1);
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            app_errors: vec![(apps[0].clone(), 40001)],
            ..Faults::default()
        };
    })
    .await;
    let config = config(&db, &sim, &apps, FAST);
    let p = pipeline(config.clone()).await; // migrates the database
    let replicas = [
        WeChatClient::new(&config.wechat, Arc::new(p.store.clone())).expect("client"),
        WeChatClient::new(&config.wechat, Arc::new(p.store.clone())).expect("client"),
    ];
    let app = &config.apps[0];
    let (first, _) = weeks(4);
    let forced = || sim.stats().token_calls.forced;
    let mut per_round = Vec::new();
    // The first rounds run back to back, well within 30 s; before each later
    // round, the budget is aged by 31 s, as if that much time had passed.
    let back_to_back = 3;
    for round in 0..16 {
        let before = forced();
        let weeks = (0..4)
            .map(|i| replicas[i % 2].fetch(app, retention(first.plus_weeks(i as i64).into())));
        for result in futures::future::join_all(weeks).await {
            let error = result.expect_err("every token is refused");
            assert_eq!(
                (error.class(), error.errcode()),
                (ErrorClass::Token, Some(40001)),
                "round {round}: {error}"
            );
        }
        per_round.push(forced() - before);
        if round + 1 >= back_to_back {
            // The budget's clock is the database's.
            sqlx::query(
                "UPDATE force_refresh_budget SET last_at = last_at - interval '31 seconds'",
            )
            .execute(p.store.pool())
            .await
            .expect("age the budget");
        }
    }
    // Within 30 s, one forced refresh between the two replicas, and never
    // two in a round: each would be closer to the other than WeChat allows.
    assert_eq!(
        per_round[..back_to_back].iter().sum::<u64>(),
        1,
        "{per_round:?}"
    );
    assert!(per_round.iter().all(|&n| n <= 1), "{per_round:?}");
    assert_eq!(forced(), 10, "the daily budget, all used: {per_round:?}");
    assert_eq!(budget_taken(&p, &apps[0]).await, 10);
}

/// `force_refresh = "never"` (or `false`, its first spelling): however
/// often WeChat refuses the token stable_token keeps handing back, no token
/// request with `force_refresh: true` reaches WeChat, and the budget is
/// untouched, although it is empty: the default would force one at once
/// (see the test below).
#[tokio::test]
async fn with_force_refresh_never_no_refresh_is_forced() {
    for setting in ["\"never\"", "false"] {
        let db = TestDb::new().await;
        let apps = apps(1);
        let sim = simulator(now(), |c| {
            c.faults = Faults {
                app_errors: vec![(apps[0].clone(), 40001)],
                ..Faults::default()
            };
        })
        .await;
        let extra = format!("{FAST}force_refresh = {setting}\n");
        let p = pipeline(config(&db, &sim, &apps, &extra)).await;
        let (first, last) = weeks(4);
        let report = backfill(&p, first, last, now(), false).await;
        assert_eq!(report.failed, 4, "{setting}: {report:?}");
        let calls = sim.stats().token_calls;
        assert!(
            calls.stable >= 2,
            "{setting}: the token was asked for again: {calls:?}"
        );
        assert_eq!(calls.forced, 0, "{setting}");
        assert_eq!(budget_taken(&p, &apps[0]).await, 0, "{setting}");
    }
}

#[tokio::test]
async fn by_default_a_refused_token_that_comes_back_is_forced_once() {
    let db = TestDb::new().await;
    let apps = apps(1);
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            app_errors: vec![(apps[0].clone(), 40001)],
            ..Faults::default()
        };
    })
    .await;
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let (first, last) = weeks(4);
    backfill(&p, first, last, now(), false).await;
    // Four weeks refused within 30 s: one forced refresh between them.
    assert_eq!(sim.stats().token_calls.forced, 1);
    assert_eq!(budget_taken(&p, &apps[0]).await, 1);
}
