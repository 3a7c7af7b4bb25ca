//! The "Hardening" issue's configuration and command-line items, through the
//! real binary: huge numbers and bad cron expressions refused up front,
//! secrets in the database URL never printed, dates before WeChat refused,
//! `once`'s exit code, concurrent `migrate`, the week calendar under another
//! cron time zone, and how `run` stops.

use crate::common;

use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// No command may take longer than this; a hang is a failure, not a stuck test.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs `wxretain --config CONFIG ARGS...` with exactly `env` (and `PATH`).
async fn wxretain(config: &Path, env: &HashMap<String, String>, args: &[&str]) -> Output {
    let full = [std::ffi::OsStr::new("--config"), config.as_os_str()]
        .into_iter()
        .chain(args.iter().map(std::ffi::OsStr::new));
    Output::of(
        wxretain_command(full, env),
        RUN_LIMIT,
        &format!("wxretain {args:?}"),
    )
    .await
}

/// A config file for `apps` with `extra` on top, and the environment pointing
/// at `database_url` and the WeChat at `base_url`. Keep the dir alive.
fn setup(
    apps: &[wxretain::domain::AppId],
    extra: &str,
    database_url: &str,
    base_url: &str,
) -> (tempfile::TempDir, PathBuf, HashMap<String, String>) {
    let (dir, path, mut env) = config_file(apps, extra);
    env.insert("DATABASE_URL".into(), database_url.into());
    env.insert("WXRETAIN_WECHAT_BASE_URL".into(), base_url.into());
    (dir, path, env)
}

// ---- huge numbers and the cron expression --------------------------------------

#[tokio::test]
async fn huge_numbers_are_refused_with_the_key_and_its_range_never_a_panic() {
    // A real database and WeChat: before the bounds, these values got past
    // the config and panicked (or failed in SQL) mid-pass.
    let db = TestDb::new().await;
    let sim = simulator(chrono::Utc::now(), |_| {}).await;
    let last = wxretain::domain::NaturalWeek::last_completed_at(
        chrono::Utc::now(),
        wxretain::domain::BEIJING,
    );
    let (from, to) = (last.plus_weeks(-2).monday(), last.sunday());
    let (from, to) = (from.to_string(), to.to_string());
    for int in wxretain::config::INTEGER_KEYS {
        let (section, key) = (int.section, int.key);
        for huge in [u64::MAX, 1_000_000_000_000] {
            let extra = format!("[{section}]\n{key} = {huge}\n");
            let (_dir, path, env) = setup(&apps(1), &extra, &db.url, &sim.base_url());
            for args in [vec!["once"], vec!["backfill", "--from", &from, "--to", &to]] {
                let what = format!("{section}.{key} = {huge}, {}", args[0]);
                let out = wxretain(&path, &env, &args).await;
                assert!(!out.stderr.contains("panicked"), "{what}:\n{}", out.stderr);
                out.expect_code(2, &what)
                    .expect_stderr_has(&format!("{section}.{key}"), &what)
                    .expect_stderr_has("out of range: allowed", &what);
            }
        }
    }
    // A token_command app is where token_command_ttl_secs ends up in an Instant.
    let toml = "[wechat]\ntoken_command_ttl_secs = 18446744073709551615\n\
                [[apps]]\nappid = \"wx51a0000000000001\"\ntoken_command = [\"/bin/echo\", \"t\"]\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wxretain.toml");
    std::fs::write(&path, toml).expect("write config");
    let env: HashMap<String, String> = [
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("WXRETAIN_WECHAT_BASE_URL".to_string(), sim.base_url()),
    ]
    .into();
    let out = wxretain(&path, &env, &["once"]).await;
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out.expect_code(2, "token_command_ttl_secs")
        .expect_stderr_has("wechat.token_command_ttl_secs", "token_command_ttl_secs");
}

#[tokio::test]
async fn a_bad_cron_expression_is_refused_by_every_command_before_any_connection() {
    // Nothing listens on port 1: a command that got past the config would
    // fail on the connection instead, with exit 1.
    let closed_db = "postgres://postgres@127.0.0.1:1/wxretain_unreachable";
    for cron in ["0 61 * * * *", "0 0 0 30 2 *", "0 * * * * FUNDAY"] {
        let extra = format!("[schedule]\ncron = \"{cron}\"\n");
        let (_dir, path, env) = setup(&apps(1), &extra, closed_db, "http://127.0.0.1:1");
        for args in [
            vec!["once"],
            vec!["run"],
            vec!["status"],
            vec!["backfill", "--from", "2026-01-05", "--to", "2026-01-11"],
        ] {
            let what = format!("cron {cron:?}, {}", args[0]);
            let out = wxretain(&path, &env, &args).await;
            out.expect_code(2, &what)
                .expect_stderr_has("schedule.cron", &what);
            assert!(
                !out.stderr.contains("connect"),
                "{what}: refused before any connection:\n{}",
                out.stderr
            );
        }
    }
}

// ---- dates before WeChat ---------------------------------------------------------

#[tokio::test]
async fn dates_before_wechat_existed_are_refused_naming_the_flag_or_key() {
    let closed_db = "postgres://postgres@127.0.0.1:1/wxretain_unreachable";
    let (_dir, path, env) = setup(&apps(1), "", closed_db, "http://127.0.0.1:1");
    let cases: [(&[&str], &str); 5] = [
        (&["--from", "1900-01-01", "--to", "2026-01-11"], "--from"),
        // A negative year looks like a flag unless attached with `=`.
        (&["--from=-0001-01-01", "--to", "2026-01-11"], "--from"),
        (&["--from", "00010101", "--to", "2026-01-11"], "--from"),
        (&["--from", "2016-12-31", "--to", "2016-12-31"], "--from"),
        (&["--from", "2026-01-05", "--to", "19000107"], "--to"),
    ];
    for (args, flag) in cases {
        let mut full = vec!["backfill"];
        full.extend_from_slice(args);
        let what = format!("backfill {args:?}");
        let out = wxretain(&path, &env, &full).await;
        out.expect_code(2, &what)
            .expect_stderr_has(&format!("{flag}: "), &what)
            .expect_stderr_has("before 2017-01-01", &what);
        assert!(
            !out.stderr.contains("database"),
            "{what}: refused before touching the database:\n{}",
            out.stderr
        );
    }
    for monday in ["1900-01-01", "2016-12-26"] {
        let extra = format!("[schedule]\nstart_week = \"{monday}\"\n");
        let (_dir, path, env) = setup(&apps(1), &extra, closed_db, "http://127.0.0.1:1");
        for command in ["once", "status"] {
            let what = format!("start_week {monday}, {command}");
            wxretain(&path, &env, &[command])
                .await
                .expect_code(2, &what)
                .expect_stderr_has("schedule.start_week", &what)
                .expect_stderr_has("before 2017-01-01", &what);
        }
    }
}

// ---- the week calendar is Beijing's ----------------------------------------------

#[tokio::test]
async fn a_cron_zone_far_from_beijing_still_plans_the_week_that_just_ended_in_beijing() {
    // Monday 10:30 in Beijing (key 0 of last week is out since 10:00), still
    // Sunday 18:30 in Los Angeles.
    let as_of = "2026-11-23T10:30:00+08:00";
    let now = chrono::DateTime::parse_from_rfc3339(as_of)
        .expect("instant")
        .with_timezone(&chrono::Utc);
    let db = TestDb::new().await;
    let sim = simulator(now, |_| {}).await;
    let extra = "[wechat]\nretry_min_delay_ms = 5\n\
                 [schedule]\ntimezone = \"America/Los_Angeles\"\nlookback_weeks = 2\n";
    let (_dir, path, env) = setup(&apps(1), extra, &db.url, &sim.base_url());
    wxretain(&path, &env, &["once", "--as-of", as_of])
        .await
        .expect_code(0, "once");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let weeks: Vec<(chrono::NaiveDate, i32)> = sqlx::query_as(
        "SELECT period_start, cardinality(keys) FROM retention_ledger WHERE grain = 'weekly' ORDER BY period_start",
    )
    .fetch_all(&pool)
    .await
    .expect("ledger");
    let monday = |d: &str| d.parse::<chrono::NaiveDate>().expect("date");
    assert_eq!(
        weeks,
        vec![(monday("2026-11-09"), 2), (monday("2026-11-16"), 1)],
        "the two weeks kept end with the one that ended in Beijing last night, its key 0 stored"
    );
}

// ---- secrets in the database URL -------------------------------------------------

/// Runs `wxretain --config CONFIG run --listen 127.0.0.1:PORT` until it has
/// said why it cannot reach the database (the error, where a password could
/// show) or has exited, then SIGTERMs it and returns all it printed.
async fn run_until_it_names_the_database(config: &Path, env: &HashMap<String, String>) -> Output {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxretain"));
    let mut child = cmd
        .arg("--config")
        .arg(config)
        .args(["run", "--listen", &format!("127.0.0.1:{}", free_port())])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn wxretain run");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut stderr = String::new();
    let said = tokio::time::timeout(RUN_LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains("cannot reach the database") {
                break;
            }
        }
    })
    .await;
    assert!(
        said.is_ok(),
        "run never said why it cannot reach the database:\n{stderr}"
    );
    let pid = child.id().map(|pid| pid.to_string());
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
    }
    let out = tokio::time::timeout(RUN_LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            stderr.push_str(&line);
            stderr.push('\n');
        }
        child.wait_with_output().await
    })
    .await
    .expect("run exits after SIGTERM")
    .expect("wait");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

#[tokio::test]
async fn a_password_in_the_database_urls_query_is_never_printed() {
    const SECRET: &str = "hunter2xyz";
    // Nothing listens on port 1: every command fails and describes the URL.
    let urls = [
        format!("postgres://u@127.0.0.1:1/db?password={SECRET}"),
        format!("postgres://u@127.0.0.1:1/db?sslmode=disable&PASSWORD={SECRET}"),
        format!("postgres://u:{SECRET}@127.0.0.1:1/db?sslpassword={SECRET}"),
        format!("ftp://u@127.0.0.1:1/db?password={SECRET}"),
    ];
    for url in &urls {
        let (_dir, path, env) = setup(&apps(1), "", url, "http://127.0.0.1:1");
        let commands: [&[&str]; 6] = [
            &["migrate"],
            &["once"],
            &["status"],
            &["report", "--app", "wx51a0000000000001"],
            &["backfill", "--from", "2026-01-05", "--to", "2026-01-11"],
            &[
                "backfill",
                "--enqueue",
                "--from",
                "2026-01-05",
                "--to",
                "2026-01-11",
            ],
        ];
        for args in commands {
            let what = format!("{url} {args:?}");
            let out = wxretain(&path, &env, args).await;
            assert!(matches!(out.code, Some(1 | 2)), "{what}: fails: {out:?}");
            assert!(
                !out.stderr.contains(SECRET) && !out.stdout.contains(SECRET),
                "{what}: the password was printed:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
        let out = run_until_it_names_the_database(&path, &env).await;
        assert!(
            !out.stderr.contains(SECRET) && !out.stdout.contains(SECRET),
            "{url} run: the password was printed:\n{}",
            out.stderr
        );
    }
}

// ---- concurrent migrate ------------------------------------------------------------

#[tokio::test]
async fn eight_concurrent_migrates_of_a_missing_database_all_succeed() {
    // Not created: TestDb's Drop only drops it when the test ends.
    let db = TestDb::not_created();
    let (_dir, path, env) = setup(&apps(1), "", &db.url, "http://127.0.0.1:1");
    let runs: Vec<_> = (0..8)
        .map(|_| wxretain(&path, &env, &["migrate"]))
        .collect();
    let outs = futures::future::join_all(runs).await;
    for (i, out) in outs.iter().enumerate() {
        out.expect_code(0, &format!("migrate #{i}"));
    }
    let created = outs
        .iter()
        .filter(|o| o.stderr.contains("created database"))
        .count();
    assert_eq!(created, 1, "one process created the database");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("migrations table");
    let expected: Vec<(i64, bool)> = wxretain::store::MIGRATOR
        .iter()
        .map(|m| (m.version, true))
        .collect();
    assert_eq!(applied, expected, "every migration applied once");
    pool.close().await;
}

// ---- once's exit code ----------------------------------------------------------------

/// `once --as-of AS_OF` against a simulator frozen then, with `faults`.
async fn once_against(
    as_of: &str,
    extra: &str,
    faults: impl FnOnce(&mut wxretain::simulator::Faults),
) -> Output {
    let now = chrono::DateTime::parse_from_rfc3339(as_of)
        .expect("instant")
        .with_timezone(&chrono::Utc);
    let db = TestDb::new().await;
    let sim = simulator(now, |c| faults(&mut c.faults)).await;
    let extra = format!("[wechat]\nretry_min_delay_ms = 5\nretry_attempts = 2\n{extra}");
    let (_dir, path, env) = setup(&apps(2), &extra, &db.url, &sim.base_url());
    wxretain(&path, &env, &["once", "--as-of", as_of]).await
}

#[tokio::test]
async fn once_exits_1_when_an_attempted_week_failed_and_0_when_all_is_stored_or_not_ready() {
    let lookback = "[schedule]\nlookback_weeks = 3\n[collect]\nretention = [\"weekly\"]\n";
    let out = once_against("2026-11-23T10:30:00+08:00", lookback, |_| {}).await;
    out.expect_code(0, "all stored");
    assert!(out.stdout.contains("\"stored\":6"), "{}", out.stdout);

    // Expected from 08:00 but published at 10:00: attempted, not ready, no failure.
    let early =
        "[schedule]\nlookback_weeks = 3\npublish_hour = 8\n[collect]\nretention = [\"weekly\"]\n";
    let out = once_against("2026-11-23T09:00:00+08:00", early, |_| {}).await;
    out.expect_code(0, "stored or not ready");
    assert!(out.stdout.contains("\"not_ready\":2"), "{}", out.stdout);

    let out = once_against("2026-11-23T10:30:00+08:00", lookback, |f| {
        f.app_errors = vec![(wxretain::simulator::sim_appid(2), 48001)];
    })
    .await;
    out.expect_code(1, "an app without permission (48001)");
    assert!(out.stdout.contains("\"failed\":"), "{}", out.stdout);

    let out = once_against("2026-11-23T10:30:00+08:00", lookback, |f| {
        f.wrong_ref_date_rate = 1.0;
    })
    .await;
    out.expect_code(1, "every answer rejected");

    // --help says the same.
    let help = wxretain(
        Path::new("unused.toml"),
        &HashMap::new(),
        &["once", "--help"],
    )
    .await;
    help.expect_code(0, "once --help");
    for needle in [
        "Exit status:",
        "not yet published",
        "  1  an attempted period failed",
    ] {
        assert!(help.stdout.contains(needle), "{needle}:\n{}", help.stdout);
    }
}

// ---- how run stops ---------------------------------------------------------------

/// `wxretain run` against a simulator whose every data call takes 25 s
/// (longer than the 20 s request timeout), with its stderr kept; returns once
/// the start-up pass has a fetch in flight.
async fn run_with_a_fetch_in_flight(
    db: &TestDb,
    sim: &wxretain::simulator::SimulatorHandle,
    schedule: &str,
) -> (tempfile::TempDir, tokio::process::Child) {
    let extra =
        format!("[wechat]\nretry_min_delay_ms = 5\n[schedule]\nlookback_weeks = 2\n{schedule}");
    let (dir, path, env) = config_file(&apps(1), &extra);
    let before = sim.stats().total_data_calls;
    let child = run_command(&path, &env, &db.url, &sim.base_url(), free_port())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wxretain run");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sim.stats().total_data_calls == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the start-up pass never called WeChat"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (dir, child)
}

async fn slow_simulator() -> wxretain::simulator::SimulatorHandle {
    simulator(chrono::Utc::now(), |c| c.faults.latency_ms = 25_000).await
}

fn kill(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal} {pid}");
}

async fn stderr_of(child: &mut tokio::process::Child) -> String {
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut text).await;
    }
    text
}

#[tokio::test]
async fn sigterm_during_the_start_up_pass_exits_within_the_drain_timeout() {
    let db = TestDb::new().await;
    let sim = slow_simulator().await;
    let (_dir, mut child) = run_with_a_fetch_in_flight(&db, &sim, "drain_timeout_secs = 3\n").await;
    let sent = std::time::Instant::now();
    let status = terminate(&mut child, Duration::from_secs(20)).await;
    let took = sent.elapsed();
    let stderr = stderr_of(&mut child).await;
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "exit {took:?} after SIGTERM, with a 3 s drain timeout:\n{stderr}"
    );
    assert!(status.success(), "exit status {status:?}:\n{stderr}");
    assert!(stderr.contains("did not finish within 3s"), "{stderr}");
}

#[tokio::test]
async fn a_second_signal_exits_at_once_without_waiting_for_the_drain() {
    let db = TestDb::new().await;
    let sim = slow_simulator().await;
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        // The default 20 s drain: the second signal must not wait for it.
        let (_dir, mut child) = run_with_a_fetch_in_flight(&db, &sim, "").await;
        kill(&child, signal);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "SIG{signal}: still draining after one signal"
        );
        let sent = std::time::Instant::now();
        kill(&child, signal);
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("exit after a second signal")
            .expect("wait");
        let took = sent.elapsed();
        let stderr = stderr_of(&mut child).await;
        assert!(
            took < Duration::from_secs(2),
            "SIG{signal} twice: exit {took:?} after the second:\n{stderr}"
        );
        assert_eq!(status.code(), Some(code), "SIG{signal} twice:\n{stderr}");
        assert!(stderr.contains("exiting at once"), "{stderr}");
    }
}

#[tokio::test]
async fn backfill_drains_on_the_first_signal_and_exits_at_once_on_the_second() {
    let db = TestDb::new().await;
    let sim = slow_simulator().await;
    let last = wxretain::domain::NaturalWeek::last_completed_at(
        chrono::Utc::now(),
        wxretain::domain::BEIJING,
    );
    let (from, to) = (last.plus_weeks(-1).monday(), last.sunday());
    let (_dir, path, env) = setup(&apps(1), FAST, &db.url, &sim.base_url());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxretain"))
        .arg("--config")
        .arg(&path)
        .args([
            "backfill",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ])
        .envs(&env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn wxretain backfill");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sim.stats().total_data_calls == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "backfill never called WeChat"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(&child, "INT");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still finishing the weeks in flight after one SIGINT"
    );
    kill(&child, "INT");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exit after a second SIGINT")
        .expect("wait");
    let stderr = stderr_of(&mut child).await;
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("re-run to continue"), "{stderr}");
    assert!(stderr.contains("exiting at once"), "{stderr}");
}

#[tokio::test]
async fn demo_refuses_huge_counts_before_building_anything() {
    for (flag, value) in [
        ("--apps", "4294967295"),
        ("--weeks", "4294967295"),
        ("--apps", "0"),
    ] {
        let what = format!("demo {flag} {value}");
        let out = wxretain(
            Path::new("unused.toml"),
            &HashMap::new(),
            &[
                "demo",
                "--database-url",
                "postgres://postgres@127.0.0.1:1/x",
                flag,
                value,
            ],
        )
        .await;
        out.expect_code(2, &what).expect_stderr_has(flag, &what);
    }
}
