//! `token_file`: a token kept current by someone else (a mounted secret, a
//! sidecar) is read again when its TTL passes or WeChat refuses it, and a
//! file (or variable) that keeps holding a refused token makes its app broken.

use crate::common;

use common::*;
use std::collections::HashMap;
use std::path::Path;
use wxretain::config::Config;
use wxretain::domain::{AppId, NaturalWeek, BEIJING};
use wxretain::pass::PassReport;
use wxretain::runtime::Runtime;
use wxretain::simulator::{sim_appid, SimulatorHandle};

fn now() -> chrono::DateTime<chrono::Utc> {
    beijing(2026, 11, 24, 12)
}

/// The last completed week and the `n - 1` before it.
fn weeks(n: i64) -> (NaturalWeek, NaturalWeek) {
    let last = NaturalWeek::last_completed_at(now(), BEIJING);
    (last.plus_weeks(1 - n), last)
}

/// A token the simulator hands out for `appid`, as the sidecar that feeds
/// the file would get it: stable (`force` mints a new one and makes the
/// previous stable token answer 40001) or classic (kept apart from stable).
async fn token_from(sim: &SimulatorHandle, appid: &AppId, stable: bool, force: bool) -> String {
    if stable {
        return common::token_of(&common::stable_token(sim, appid, force).await);
    }
    let answer: serde_json::Value = reqwest::get(format!(
        "{}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret=sidecar",
        sim.base_url()
    ))
    .await
    .expect("token call")
    .json()
    .await
    .expect("token JSON");
    common::token_of(&answer)
}

/// A pipeline for one app whose credential is `credential` (TOML lines).
async fn pipeline_with(
    db: &TestDb,
    sim: &SimulatorHandle,
    wechat: &str,
    credential: &str,
) -> Runtime {
    let app = sim_appid(1);
    let toml = format!(
        "[wechat]\nretry_min_delay_ms = 5\nrate_per_second = 1000000\napp_rate_per_second = 1000000\n{wechat}\
         [[apps]]\nappid = \"{app}\"\n{credential}\n"
    );
    let env: HashMap<String, String> = [
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("WXRETAIN_WECHAT_BASE_URL".to_string(), sim.base_url()),
    ]
    .into();
    pipeline(Config::parse(&toml, Path::new("test.toml"), &env).expect("valid config")).await
}

fn write(path: &Path, token: &str) {
    // A trailing newline, as `echo` and most writers leave.
    std::fs::write(path, format!("{token}\n")).expect("write the token file");
}

/// Data calls the simulator answered with something other than data.
fn refused_calls(sim: &SimulatorHandle) -> u64 {
    let stats = sim.stats();
    stats.total_data_calls - stats.ok_answers
}

/// The file is rotated between two passes of one process (two ticks of
/// `run`): the old token stops working and the new one is in the file. With a
/// TTL longer than the gap, the cached token is refused once and the file is
/// read again at once; with a TTL that has passed, the new token is read
/// before any call, and nothing is refused. Either way every week is stored
/// and wxretain itself never calls the token endpoints.
#[tokio::test]
async fn a_rotated_token_file_is_read_again_when_refused_or_when_its_ttl_passes() {
    for (ttl_secs, refused) in [(3600, 1), (1, 0)] {
        let db = TestDb::new().await;
        let sim = simulator(now(), |_| {}).await;
        let app = sim_appid(1);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        write(&file, &token_from(&sim, &app, true, false).await);
        let p = pipeline_with(
            &db,
            &sim,
            &format!("max_in_flight = 1\ntoken_file_ttl_secs = {ttl_secs}\n"),
            &format!("token_file = \"{}\"", file.display()),
        )
        .await;
        let (first, last) = weeks(4);
        let report = backfill(&p, first, first.plus_weeks(1), now(), false).await;
        assert_eq!(report.stored, 2, "ttl {ttl_secs}: {report:?}");
        let token_calls = sim.stats().token_calls;

        // The sidecar rotates: a classic token into the file, and the old
        // stable one is no longer valid (a forced stable refresh elsewhere).
        write(&file, &token_from(&sim, &app, false, false).await);
        token_from(&sim, &app, true, true).await;
        if ttl_secs == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        let before = refused_calls(&sim);
        let report: PassReport = backfill(&p, first.plus_weeks(2), last, now(), false).await;
        assert_eq!(
            (report.stored, report.failed),
            (2, 0),
            "ttl {ttl_secs}: {report:?}"
        );
        assert_eq!(
            refused_calls(&sim) - before,
            refused,
            "ttl {ttl_secs}: refused data calls after the rotation"
        );
        assert_eq!(
            table(&p.store).await,
            truth(std::slice::from_ref(&app), first, last, now(), 10)
        );
        // The only token calls are the test's own (the sidecar's).
        assert_eq!(
            sim.stats().token_calls.stable + sim.stats().token_calls.classic,
            token_calls.stable + token_calls.classic + 2,
            "ttl {ttl_secs}"
        );
    }
}

/// The file keeps a token WeChat refuses (the sidecar died): after one
/// refused call and one more read of the file, the app is a configuration
/// failure (`status` shows the errcode, the app is paused for the pass and
/// due again in an hour), not a refused token retried every few minutes.
/// Once the file holds a good token, the next pass heals it.
#[tokio::test]
async fn a_token_file_that_keeps_a_refused_token_makes_its_app_broken_until_it_changes() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let app = sim_appid(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    write(&file, &token_from(&sim, &app, true, false).await);
    // Replaced behind the file's back: the file's token now answers 40001.
    token_from(&sim, &app, true, true).await;
    let p = pipeline_with(
        &db,
        &sim,
        "max_in_flight = 1\n",
        &format!("token_file = \"{}\"", file.display()),
    )
    .await;
    let (first, last) = weeks(4);
    let (capture, guard) = Capture::debug_log();
    let report = backfill(&p, first, last, now(), false).await;
    drop(guard);
    assert_eq!((report.failed, report.deferred), (1, 3), "{report:?}");
    assert_eq!(
        sim.stats().total_data_calls,
        1,
        "one refused call, then paused"
    );
    let rows = ledger_weeks(&p.store, std::slice::from_ref(&app), first, last).await;
    let failed: Vec<_> = rows.iter().filter(|r| r.last_errcode.is_some()).collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert_eq!(failed[0].last_errcode, Some(40001));
    let error = failed[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains(&format!("token_file {}", file.display()))
            && error.contains("still gives the token WeChat refused"),
        "{error}"
    );
    assert!(
        rows.iter().all(|r| r
            .next_due_at
            .is_some_and(|t| t >= now() + chrono::Duration::minutes(59))),
        "every week waits for the app's pause: {rows:?}"
    );
    assert!(
        capture.text().contains("app configuration problem"),
        "logged as a broken app"
    );

    // The sidecar is back: the file holds a good token, and the weeks come in.
    write(&file, &token_from(&sim, &app, true, false).await);
    let later = now() + chrono::Duration::hours(2);
    let report = pass_over(&p, first, last, later).await;
    assert_eq!(report.stored, 4, "{report:?}");
}

/// `token_env` in a long-running process: the variable cannot change, so a
/// refused token is a configuration failure at once (not a refused token
/// retried forever), and the message says to use `token_file`.
#[tokio::test]
async fn a_refused_token_env_is_a_configuration_failure_that_points_to_token_file() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let app = sim_appid(1);
    // Unique to this test: the process environment is shared by the tests
    // of this file, and only this one reads the variable.
    let var = "WXRETAIN_TEST_TOKEN_ENV_REFUSED";
    std::env::set_var(var, token_from(&sim, &app, true, false).await);
    token_from(&sim, &app, true, true).await;
    let toml_env = format!("token_env = \"{var}\"");
    let toml = format!(
        "[wechat]\nretry_min_delay_ms = 5\nmax_in_flight = 1\n[[apps]]\nappid = \"{app}\"\n{toml_env}\n"
    );
    let env: HashMap<String, String> = [
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("WXRETAIN_WECHAT_BASE_URL".to_string(), sim.base_url()),
        (var.to_string(), "set".to_string()),
    ]
    .into();
    let p = pipeline(Config::parse(&toml, Path::new("t.toml"), &env).expect("valid")).await;
    let (first, last) = weeks(3);
    let report = backfill(&p, first, last, now(), false).await;
    assert_eq!((report.failed, report.deferred), (1, 2), "{report:?}");
    let rows = ledger_weeks(&p.store, std::slice::from_ref(&app), first, last).await;
    let error = rows
        .iter()
        .find_map(|r| r.last_error.clone())
        .unwrap_or_default();
    assert!(
        error.contains(&format!("token_env {var}")) && error.contains("use token_file"),
        "{error}"
    );
}

#[test]
fn a_token_file_that_cannot_be_read_or_is_empty_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    for (path, problem) in [
        (dir.path().join("missing"), "cannot read"),
        (empty, "is empty"),
    ] {
        let toml = format!(
            "[[apps]]\nappid = \"wx0123456789abcdef\"\ntoken_file = \"{}\"\n",
            path.display()
        );
        let env: HashMap<String, String> = HashMap::new();
        let error = Config::parse(&toml, Path::new("t.toml"), &env)
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("apps[0].token_file") && error.contains(problem),
            "{error}"
        );
    }
}
