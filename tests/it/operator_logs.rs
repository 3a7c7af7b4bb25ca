//! Logs a log shipper can read: with `--log-format json` every stderr line
//! is one JSON object with typed fields, fatal errors included; text logs
//! carry no colour codes when stderr is not a terminal; `latency_ms` is a
//! call's own time, not its wait in the queue.

use crate::common;
use crate::operator;

use common::*;
use operator::*;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// A config for `apps` against `db` and `sim`, weekly retention only.
fn against(
    db: &TestDb,
    sim: &wxretain::simulator::SimulatorHandle,
    apps: &[wxretain::domain::AppId],
    extra: &str,
) -> Cli {
    let (toml, env) = config_toml(apps, extra);
    let mut cli = Cli::new(&toml, env);
    cli.set("DATABASE_URL", &db.url)
        .set("WXRETAIN_WECHAT_BASE_URL", &sim.base_url());
    cli
}

fn u64_field(line: &serde_json::Map<String, Value>, name: &str) -> u64 {
    line.get(name)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{name} is not a number: {line:?}"))
}

#[tokio::test]
async fn once_logs_typed_json_and_latency_is_the_calls_own_time_not_its_queue() {
    let db = TestDb::new().await;
    // Each data call takes 100 ms at WeChat; the app may be called twice a
    // second, so the fourth of four weeks waits about 1.5 s for its turn.
    let sim = simulator(chrono::Utc::now(), |c| c.faults.latency_ms = 100).await;
    let cli = against(
        &db,
        &sim,
        &apps(1),
        "[wechat]\napp_rate_per_second = 2\nmax_in_flight = 4\n[schedule]\nlookback_weeks = 4\n[collect]\nretention = [\"weekly\"]\n",
    );
    let out = cli.run(&["--log-format", "json", "once"]).await;
    out.expect_code(0, "once");
    let lines = json_lines(&out.stderr, "once --log-format json");
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(
                line.get(key).is_some_and(Value::is_string),
                "{key}: {line:?}"
            );
        }
    }
    let fetched: Vec<_> = lines
        .iter()
        .filter(|l| l.get("latency_ms").is_some())
        .collect();
    assert_eq!(fetched.len(), 4, "one line per week:\n{}", out.stderr);
    let mut longest_wait = 0;
    for line in &fetched {
        let latency = u64_field(line, "latency_ms");
        assert!(
            (100..450).contains(&latency),
            "latency_ms {latency} is not the simulator's 100 ms: {line:?}"
        );
        longest_wait = longest_wait.max(u64_field(line, "waited_ms"));
        // Every period's line names it, from its span or its own fields.
        for key in ["appid", "dataset", "grain", "period"] {
            assert!(line[key].is_string(), "{key}: {line:?}");
        }
        if line["message"] == "fetched period" {
            let keys = line["keys"].as_array().expect("keys is a JSON array");
            assert!(
                !keys.is_empty() && keys.iter().all(Value::is_u64),
                "{line:?}"
            );
            u64_field(line, "rows_written");
            match &line["next_due"] {
                Value::Null => {}
                Value::String(t) => {
                    chrono::DateTime::parse_from_rfc3339(t).expect("next_due is RFC 3339");
                }
                other => panic!("next_due is {other}"),
            }
        } else {
            assert_eq!(line["message"], "period not ready at WeChat", "{line:?}");
            assert!(line["errcode"].is_i64(), "{line:?}");
        }
    }
    assert!(
        longest_wait >= 1000,
        "the last call queued behind the rate limit (waited_ms {longest_wait})"
    );
    // Not one of tokio-cron-scheduler's or sqlx's chatter at INFO.
    for line in &lines {
        let target = line["target"].as_str().unwrap_or_default();
        assert!(
            target.starts_with("wxretain"),
            "a dependency's line: {line:?}"
        );
    }
}

#[tokio::test]
async fn fatal_errors_are_one_json_line_with_their_exit_code() {
    let app = "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"S\"\n";
    let env = HashMap::from([("S".to_string(), "s3cret".to_string())]);
    let fatal = |stderr: &str, what: &str, code: i64| {
        let lines = json_lines(stderr, what);
        let last = lines.last().expect("a line").clone();
        assert_eq!(last["level"], "ERROR", "{what}: {last:?}");
        assert_eq!(last["exit_code"], code, "{what}: {last:?}");
        last["message"].as_str().expect("message").to_string()
    };

    // A config error.
    let mut cli = Cli::new(&format!("[wechat]\nbase_ulr = \"x\"\n{app}"), env.clone());
    cli.set("DATABASE_URL", CLOSED_DB);
    let out = cli.run(&["--log-format", "json", "once"]).await;
    out.expect_code(2, "config error");
    let message = fatal(&out.stderr, "config error", 2);
    assert!(message.contains("base_ulr"), "{message}");

    // Arguments clap refuses, with JSON asked for by the environment.
    let mut cli = Cli::new(app, env.clone());
    cli.set("WXRETAIN_LOG_FORMAT", "json");
    let out = cli.run(&["statuss"]).await;
    out.expect_code(2, "unknown subcommand");
    let message = fatal(&out.stderr, "unknown subcommand", 2);
    assert!(message.contains("statuss"), "{message}");

    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let mut cli = Cli::new(app, env.clone());
    cli.set("DATABASE_URL", CLOSED_DB);
    let out = cli
        .run(&[
            "--log-format",
            "json",
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .await;
    out.expect_code(1, "port in use");
    let message = fatal(&out.stderr, "port in use", 1);
    assert!(
        message.contains(&format!("127.0.0.1:{port}"))
            && message.contains("--listen")
            && message.contains("in use"),
        "{message}"
    );

    // A database that does not exist, for a command that only reads it:
    // each cause named once, and what to do.
    let missing = TestDb::not_created();
    let mut cli = Cli::new(app, HashMap::new());
    cli.set("DATABASE_URL", &missing.url);
    let out = cli.run(&["--log-format", "json", "status"]).await;
    out.expect_code(1, "missing database");
    let message = fatal(&out.stderr, "missing database", 1);
    assert_eq!(message.matches("does not exist").count(), 1, "{message}");
    assert!(message.contains("wxretain migrate"), "{message}");
}

#[tokio::test]
async fn run_creates_a_missing_database_and_logs_its_passes_as_numbers() {
    // Not created: dropped when the test ends.
    let db = TestDb::not_created();
    let sim = simulator(chrono::Utc::now(), |_| {}).await;
    let cli = against(
        &db,
        &sim,
        &apps(2),
        "[wechat]\nretry_min_delay_ms = 5\n[schedule]\nlookback_weeks = 2\n",
    );
    let port = free_port();
    let mut child = cli
        .command(&[
            "--log-format",
            "json",
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wxretain run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while !seen.iter().any(|l: &String| l.contains("\"pass done\"")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(line)) => seen.push(line),
            _ => panic!("no \"pass done\" line:\n{}", seen.join("\n")),
        }
    }
    let status = terminate(&mut child, Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        seen.push(line);
    }
    let stderr = seen.join("\n");
    let lines = json_lines(&stderr, "run --log-format json");
    assert_eq!(
        with_message(&lines, "created database").len(),
        1,
        "{stderr}"
    );
    let done = with_message(&lines, "pass done");
    for field in [
        "elapsed_ms",
        "planned",
        "attempted",
        "stored",
        "rows_written",
        "not_ready",
        "failed",
        "rejected",
        "deferred",
        "unsaved",
        "lease_lost",
    ] {
        u64_field(done[0], field);
    }
    assert!(u64_field(done[0], "stored") > 0, "{:?}", done[0]);
    for line in &lines {
        let target = line["target"].as_str().unwrap_or_default();
        assert!(
            target.starts_with("wxretain"),
            "a dependency's line: {line:?}"
        );
    }
    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 1)
        .await
        .expect("run created the database");
    store.ready().await.expect("and migrated it");
    store.pool().close().await;
}

#[tokio::test]
async fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let db = TestDb::new().await;
    let sim = simulator(chrono::Utc::now(), |_| {}).await;
    let cli = against(&db, &sim, &apps(1), "[schedule]\nlookback_weeks = 2\n");
    let out = cli.run(&["once"]).await;
    out.expect_code(0, "once");
    assert!(out.stderr.contains("fetched period"), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\x1b'),
        "colour codes on a pipe:\n{}",
        out.stderr
    );
    // A fatal error in text is one plain line.
    let mut cli = Cli::new("[wechat]\nbase_ulr = \"x\"\n", HashMap::new());
    cli.set("DATABASE_URL", CLOSED_DB);
    let out = cli.run(&["once"]).await;
    out.expect_code(2, "config error");
    assert!(
        out.stderr.starts_with("error: config file"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains('\x1b'), "{}", out.stderr);
}

#[tokio::test]
async fn the_chmod_warning_is_only_for_a_config_that_holds_a_secret() {
    let app = "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"S\"\n";
    let warned = |stderr: &str| {
        json_lines(stderr, "status").iter().any(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("chmod 600"))
        })
    };
    // Names of where secrets are: nothing secret in the file.
    let cli = Cli::new(
        &format!("[database]\nurl = \"{CLOSED_DB}\"\n{app}"),
        HashMap::new(),
    );
    cli.chmod(0o644);
    let out = cli.run(&["--log-format", "json", "status"]).await;
    assert!(!warned(&out.stderr), "{}", out.stderr);
    // The database password inline: warned, and not shown.
    let with_password = "postgres://postgres:Pa55word@127.0.0.1:1/wxretain_unreachable";
    let cli = Cli::new(
        &format!("[database]\nurl = \"{with_password}\"\n{app}"),
        HashMap::new(),
    );
    cli.chmod(0o644);
    let out = cli.run(&["--log-format", "json", "status"]).await;
    assert!(warned(&out.stderr), "{}", out.stderr);
    assert!(!out.all().contains("Pa55word"), "{}", out.all());
    // Mode 600: no warning.
    cli.chmod(0o600);
    let out = cli.run(&["--log-format", "json", "status"]).await;
    assert!(!warned(&out.stderr), "{}", out.stderr);
}
