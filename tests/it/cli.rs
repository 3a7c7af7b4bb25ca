//! The real `wxretain` binary, run as an operator would: a config file, env
//! vars, exit codes, stdout/stderr, and what lands in Postgres.

use crate::common;

use chrono::{DateTime, Utc};
use common::*;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use wxretain::domain::{AppId, Metric, NaturalWeek, BEIJING};
use wxretain::simulator::{publication, truth_value, Faults, Publication, SimulatorHandle};
use wxretain::store::Store;

/// Nothing listens here: a command that reaches for the database or WeChat fails.
const CLOSED_DB: &str = "postgres://postgres@127.0.0.1:1/wxretain_unreachable";
const CLOSED_HTTP: &str = "http://127.0.0.1:1";
/// A password trust auth ignores: it must never be printed.
const DB_PASSWORD: &str = "S3cretDbPassw0rd";
/// No command may take longer than this; a hang is a failure, not a stuck test.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A config file in a temp dir plus the environment the binary runs with.
struct Wxretain {
    dir: tempfile::TempDir,
    config: PathBuf,
    env: HashMap<String, String>,
}

impl Wxretain {
    /// `toml` as the config file; `env` on top of a cleared environment.
    fn new(toml: &str, env: HashMap<String, String>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the config");
        let config = dir.path().join("wxretain.toml");
        std::fs::write(&config, toml).expect("config written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
                .expect("config chmod 600");
        }
        Self { dir, config, env }
    }

    /// `apps` with secrets in env vars (see `config_toml`), the database at
    /// `database_url`, WeChat at `base_url`.
    fn with_apps(database_url: &str, base_url: &str, apps: &[AppId], extra: &str) -> Self {
        let (toml, mut env) = config_toml(apps, extra);
        env.insert("DATABASE_URL".into(), database_url.into());
        env.insert("WXRETAIN_WECHAT_BASE_URL".into(), base_url.into());
        Self::new(&toml, env)
    }

    fn against(db: &TestDb, sim: &SimulatorHandle, apps: &[AppId]) -> Self {
        Self::with_apps(&db.url, &sim.base_url(), apps, FAST)
    }

    /// Neither the database nor WeChat can be reached.
    fn offline(apps: &[AppId], extra: &str) -> Self {
        Self::with_apps(CLOSED_DB, CLOSED_HTTP, apps, extra)
    }

    fn set_env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Runs `wxretain --config FILE ARGS...`.
    async fn run(&self, args: &[&str]) -> Output {
        let config = self.config.to_str().expect("utf-8 temp path");
        let mut full = vec!["--config", config];
        full.extend_from_slice(args);
        self.run_raw(&full).await
    }

    /// Runs `wxretain ARGS...` exactly as given (no `--config`).
    async fn run_raw(&self, args: &[&str]) -> Output {
        let mut cmd = wxretain_command(args, &self.env);
        cmd.current_dir(self.dir.path());
        Output::of(cmd, RUN_LIMIT, &format!("wxretain {args:?}")).await
    }
}

/// The 12 weeks ending with the last one completed at `now`.
fn twelve_weeks(now: DateTime<Utc>) -> (NaturalWeek, NaturalWeek) {
    let last = NaturalWeek::last_completed_at(now, BEIJING);
    (last.plus_weeks(-11), last)
}

fn backfill_args(first: NaturalWeek, last: NaturalWeek) -> Vec<String> {
    vec![
        "backfill".into(),
        "--from".into(),
        first.monday().to_string(),
        "--to".into(),
        last.sunday().to_string(),
    ]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

async fn store(db: &TestDb) -> Store {
    Store::connect(&SecretString::from(db.url.clone()), 2)
        .await
        .expect("test connects to its database")
}

async fn stamps(store: &Store) -> Vec<(String, chrono::NaiveDate, String, i16, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT appid, week_start, metric, key, last_changed_at FROM weekly_retention ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(store.pool())
    .await
    .expect("read last_changed_at")
}

/// Expected `(stored, complete, maturing, not published)` weeks at `now`.
fn expected_weeks(first: NaturalWeek, last: NaturalWeek, now: DateTime<Utc>) -> [i64; 4] {
    let mut counts = [0; 4];
    for week in NaturalWeek::range(first, last) {
        match publication(week, now, 10) {
            Publication::Keys(4) => {
                counts[0] += 1;
                counts[1] += 1;
            }
            Publication::Keys(_) => {
                counts[0] += 1;
                counts[2] += 1;
            }
            _ => counts[3] += 1,
        }
    }
    counts
}

/// The lines of `stdout` that start with `prefix`.
fn lines_starting<'a>(stdout: &'a str, prefix: &str) -> Vec<&'a str> {
    stdout.lines().filter(|l| l.starts_with(prefix)).collect()
}

// ---- 1. backfill over HTTP ----------------------------------------------------

#[tokio::test]
async fn backfill_stores_the_simulators_values_and_a_rerun_changes_nothing() {
    let now = Utc::now();
    let sim = simulator(now, |_| {}).await;
    let db = TestDb::new().await;
    let apps = apps(3);
    let (first, last) = twelve_weeks(now);
    let cli = Wxretain::against(&db, &sim, &apps);
    let args = backfill_args(first, last);

    let out = cli.run(&strs(&args)).await;
    out.expect_code(0, "first backfill");
    // 12 unless run on a Monday before WeChat publishes the last week's key 0.
    let [stored, ..] = expected_weeks(first, last, now);
    for appid in &apps {
        let lines = lines_starting(&out.stdout, &format!("{appid}: retention weekly: "));
        assert_eq!(
            lines.len(),
            1,
            "one weekly summary line for {appid}:\n{}",
            out.stdout
        );
        assert!(
            lines[0].starts_with(&format!(
                "{appid}: retention weekly: 12 weeks: {stored} stored"
            )),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with(", 0 not stored"), "{}", lines[0]);
    }
    let store = store(&db).await;
    let expected = truth(&apps, first, last, now, 10);
    assert_eq!(table(&store).await, expected);
    let before = stamps(&store).await;

    let again = cli.run(&strs(&args)).await;
    again.expect_code(0, "second backfill");
    assert!(
        again.stdout.contains(" 0 rows written,"),
        "second run writes nothing:\n{}",
        again.stdout
    );
    assert_eq!(table(&store).await, expected);
    assert_eq!(
        stamps(&store).await,
        before,
        "a second run must not touch a row"
    );
}

// ---- 2. bad arguments ----------------------------------------------------------

#[tokio::test]
async fn bad_backfill_arguments_are_refused_before_any_network_or_database_call() {
    let cli = Wxretain::offline(&apps(1), "");
    let today = Utc::now().with_timezone(&BEIJING).date_naive().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["--from", "2026-13-01", "--to", "2026-01-04"], "--from"),
        (&["--from", "2026-01-05", "--to", "2026-02-30"], "--to"),
        (&["--from", "2026-03-09", "--to", "2026-03-01"], "--from"),
        (&["--from", "2026-01-05", "--to", today.as_str()], "--to"),
        (
            &[
                "--from",
                "2026-01-05",
                "--to",
                "2026-01-11",
                "--app",
                "wx0000000000000bad",
            ],
            "--app wx0000000000000bad",
        ),
    ];
    for (args, flag) in cases {
        let mut full = vec!["backfill"];
        full.extend_from_slice(args);
        let out = cli.run(&full).await;
        let what = format!("backfill {args:?}");
        out.expect_code(2, &what).expect_stderr_has(flag, &what);
        assert!(
            !out.stderr.contains("database"),
            "{what}: refused before touching the database:\n{}",
            out.stderr
        );
    }
    // The two sides of a reversed range are both named.
    cli.run(&["backfill", "--from", "2026-03-09", "--to", "2026-03-01"])
        .await
        .expect_stderr_has("after --to", "reversed range");
    cli.run(&["backfill", "--from", "2026-01-05", "--to", today.as_str()])
        .await
        .expect_stderr_has("has not ended", "unfinished week");
}

// ---- 3. config errors ----------------------------------------------------------

#[tokio::test]
async fn config_errors_exit_2_and_name_the_key_before_any_network_or_database_call() {
    let app = |appid: &str, extra: &str| format!("[[apps]]\nappid = \"{appid}\"\n{extra}\n");
    let good = "wx0123456789abcdef";
    let secret = "secret_env = \"SECRET\"";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            format!("[wechat]\nbase_ulr = \"http://x\"\n{}", app(good, secret)),
            "base_ulr",
        ),
        (
            "duplicate appid",
            format!("{}{}", app(good, secret), app(good, secret)),
            "apps[1].appid",
        ),
        ("malformed appid", app("wxNOPE", secret), "apps[0].appid"),
        (
            "missing secret variable",
            app(good, "secret_env = \"NO_SUCH_SECRET_VAR\""),
            "apps[0].secret_env",
        ),
        (
            "two credentials",
            app(good, "secret_env = \"SECRET\"\ntoken_env = \"SECRET\""),
            "apps[0]",
        ),
        (
            "bad time zone",
            format!(
                "[schedule]\ntimezone = \"Mars/Olympus\"\n{}",
                app(good, secret)
            ),
            "schedule.timezone",
        ),
        (
            "start_week not a Monday",
            format!(
                "[schedule]\nstart_week = \"2026-01-06\"\n{}",
                app(good, secret)
            ),
            "schedule.start_week",
        ),
        (
            "rate not positive",
            format!("[wechat]\nrate_per_second = 0\n{}", app(good, secret)),
            "wechat.rate_per_second",
        ),
        (
            "lease shorter than a fetch",
            format!(
                "[wechat]\nrequest_timeout_secs = 30\n[schedule]\nlease_secs = 60\n{}",
                app(good, secret)
            ),
            "schedule.lease_secs",
        ),
    ];
    for (what, toml, key) in cases {
        let mut cli = Wxretain::new(&toml, HashMap::new());
        cli.set_env("SECRET", "s3cret")
            .set_env("DATABASE_URL", CLOSED_DB)
            .set_env("WXRETAIN_WECHAT_BASE_URL", CLOSED_HTTP);
        // (`migrate` and `report` read no config while DATABASE_URL is set;
        // `status` reads no secrets: tests/it/operator_status.rs.)
        for command in ["status", "once", "run"] {
            if what == "missing secret variable" && command == "status" {
                continue;
            }
            let what = format!("{what} ({command})");
            cli.run(&[command])
                .await
                .expect_code(2, &what)
                .expect_stderr_has(key, &what)
                .expect_stderr_has("wxretain.toml", &what);
        }
    }
    // Two credentials: the message says what to do.
    let cli = Wxretain::new(
        &app(good, "secret_env = \"SECRET\"\ntoken_env = \"SECRET\""),
        HashMap::from([("SECRET".to_string(), "s3cret".to_string())]),
    );
    cli.run(&["status"])
        .await
        .expect_stderr_has("exactly one", "two credentials");

    // A missing file is named by its path, from --config and from WXRETAIN_CONFIG.
    let mut cli = Wxretain::offline(&apps(1), "");
    let missing = cli.dir.path().join("nope.toml");
    let missing = missing.to_str().expect("utf-8 temp path");
    cli.run_raw(&["--config", missing, "status"])
        .await
        .expect_code(2, "missing --config file")
        .expect_stderr_has(missing, "missing --config file");
    cli.set_env("WXRETAIN_CONFIG", missing);
    cli.run_raw(&["status"])
        .await
        .expect_code(2, "missing $WXRETAIN_CONFIG file")
        .expect_stderr_has(missing, "missing $WXRETAIN_CONFIG file");
}

// ---- 4. secrets never reach the logs ---------------------------------------------

/// Every token the simulator can have minted so far: it mints
/// sha256(seed, n, appid) for its n-th token, and mints at most once per call.
fn possible_tokens(sim: &SimulatorHandle, seed: u64, apps: &[AppId]) -> Vec<String> {
    let stats = sim.stats();
    let calls = stats.token_calls.stable + stats.token_calls.classic;
    let mut tokens = Vec::new();
    for n in 1..=calls + 1 {
        for appid in apps {
            let mut hasher = Sha256::new();
            hasher.update(seed.to_le_bytes());
            hasher.update(n.to_le_bytes());
            hasher.update(appid.as_str().as_bytes());
            tokens.push(
                hasher
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            );
        }
    }
    tokens
}

/// The token the simulator currently holds for `appid`, as WeChat would hand it out.
#[tokio::test]
async fn migrate_needs_only_database_url_and_creates_the_database() {
    // A database that does not exist yet (TestDb's name, dropped first).
    let db = TestDb::new().await;
    let admin = sqlx::PgPool::connect(&server_url()).await.expect("server");
    sqlx::query(&format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name))
        .execute(&admin)
        .await
        .expect("drop");
    // No config file anywhere: a DBA without the apps' secrets.
    let mut cli = Wxretain::new("", HashMap::new());
    std::fs::remove_file(&cli.config).expect("no config file");
    cli.set_env("DATABASE_URL", &db.url);
    let out = cli.run_raw(&["migrate"]).await;
    out.expect_code(0, "migrate with DATABASE_URL only");
    assert!(out.stdout.contains("up to date"), "{}", out.stdout);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&sqlx::PgPool::connect(&db.url).await.expect("created"))
        .await
        .expect("migrations table");
    assert_eq!(applied, wxretain::store::MIGRATOR.iter().count() as i64);
    // Without DATABASE_URL it needs the config, and says where it looked.
    cli.env.remove("DATABASE_URL");
    cli.run_raw(&["migrate"])
        .await
        .expect_code(2, "migrate without DATABASE_URL or config")
        .expect_stderr_has("wxretain.toml", "names the file it looked for");
}

async fn current_token(sim: &SimulatorHandle, appid: &AppId, secret: &str) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/cgi-bin/stable_token", sim.base_url()))
        .json(&serde_json::json!({
            "grant_type": "client_credential",
            "appid": appid.as_str(),
            "secret": secret,
            "force_refresh": false,
        }))
        .send()
        .await
        .expect("stable_token call")
        .json()
        .await
        .expect("stable_token answer is JSON");
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {answer}"))
        .to_string()
}

#[tokio::test]
async fn secrets_tokens_and_the_database_password_never_reach_stdout_or_stderr() {
    const SEED: u64 = 7;
    let now = Utc::now();
    let sim = simulator(now, |c| {
        c.faults = Faults {
            token_expire_after_calls: Some(3),
            garbage_rate: 0.2,
            seed: SEED,
            ..Default::default()
        }
    })
    .await;
    let db = TestDb::new().await;
    let apps = apps(2);
    let secrets: Vec<String> = apps
        .iter()
        .map(|a| format!("AppS3cret-{}-do-not-log", &a.as_str()[10..]))
        .collect();
    let mut url = reqwest::Url::parse(&db.url).expect("test database URL");
    url.set_password(Some(DB_PASSWORD))
        .expect("postgres URL takes a password");
    // Garbage answers are retried: enough tries that every week gets through.
    // One call at a time: with four in flight, a replacement token could be
    // used up (3 calls) by the others before its call's one retry, and that
    // week then failed or not depending on the interleaving.
    let extra = "[wechat]\nretry_min_delay_ms = 1\nretry_attempts = 12\nmax_in_flight = 1\n";
    let mut cli = Wxretain::with_apps(url.as_str(), &sim.base_url(), &apps, extra);
    for (i, secret) in secrets.iter().enumerate() {
        cli.set_env(&format!("SECRET_{i}"), secret);
    }
    cli.set_env("RUST_LOG", "debug");
    let (first, last) = twelve_weeks(now);
    let mut args = backfill_args(first, last);
    args.push("--refetch".into());
    // Weekly only: 24 periods are plenty to show every kind of leak, and the
    // tokens expiring every 3 calls stay within the forced-refresh budget.
    args.extend(["--retention".into(), "weekly".into()]);

    let mut outputs = Vec::new();
    for format in ["text", "json"] {
        let mut full = vec!["--log-format", format];
        full.extend(strs(&args));
        let out = cli.run(&full).await;
        out.expect_code(0, &format!("backfill with {format} logs"));
        assert!(
            out.stderr.contains("token refused"),
            "the faults forced token refreshes ({format}):\n{}",
            out.stderr
        );
        outputs.push(out);
        let report = ["report", "--app", apps[0].as_str()];
        for status in [&["status"][..], &["status", "--json"], &report] {
            let mut full = vec!["--log-format", format];
            full.extend_from_slice(status);
            let out = cli.run(&full).await;
            out.expect_code(0, &format!("{status:?} with {format} logs"));
            outputs.push(out);
        }
        // The error for an app without data names the database, redacted.
        let out = cli.run(&["report", "--app", "wx0123456789abcdef"]).await;
        out.expect_code(2, "report on an app without data")
            .expect_stderr_has("postgres://postgres:***@", "report on an app without data");
        outputs.push(out);
    }
    let stats = sim.stats();
    assert!(
        stats.token_calls.stable > apps.len() as u64,
        "tokens were refreshed: {stats:?}"
    );

    let mut current = Vec::new();
    for (appid, secret) in apps.iter().zip(&secrets) {
        current.push(current_token(&sim, appid, secret).await);
    }
    let minted = possible_tokens(&sim, SEED, &apps);
    for token in &current {
        assert!(
            minted.contains(token),
            "the token derivation matches the simulator's"
        );
    }
    let mut forbidden: Vec<(&str, &str)> = vec![("database password", DB_PASSWORD)];
    forbidden.extend(secrets.iter().map(|s| ("app secret", s.as_str())));
    forbidden.extend(current.iter().map(|t| ("current token", t.as_str())));
    forbidden.extend(minted.iter().map(|t| ("minted token", t.as_str())));
    for out in &outputs {
        let all = out.all();
        for (what, value) in &forbidden {
            assert!(!all.contains(value), "{what} {value} leaked:\n{all}");
        }
    }
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_with_the_cause_and_without_its_password() {
    let mut url = reqwest::Url::parse(CLOSED_DB).expect("closed URL");
    url.set_password(Some(DB_PASSWORD))
        .expect("postgres URL takes a password");
    let cli = Wxretain::with_apps(url.as_str(), CLOSED_HTTP, &apps(1), "");
    let week = NaturalWeek::last_completed_at(Utc::now(), BEIJING);
    let backfill = backfill_args(week, week);
    let appid = apps(1)[0].to_string();
    for command in [
        strs(&backfill),
        vec!["status"],
        vec!["once"],
        vec!["migrate"],
        vec!["report", "--app", &appid],
    ] {
        let what = format!("{command:?} with the database down");
        let started = std::time::Instant::now();
        let out = cli.run(&command).await;
        out.expect_code(1, &what)
            .expect_stderr_has("postgres://postgres:***@127.0.0.1:1/", &what)
            .expect_stderr_has("refused", &what);
        assert!(!out.all().contains(DB_PASSWORD), "{what}: {}", out.all());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: took {:?} to notice",
            started.elapsed()
        );
    }
}

// ---- 5. status ---------------------------------------------------------------------

#[tokio::test]
async fn status_prints_a_row_per_app_and_json_with_the_counts() {
    let now = Utc::now();
    let sim = simulator(now, |_| {}).await;
    let db = TestDb::new().await;
    let apps = apps(2);
    let (first, last) = twelve_weeks(now);
    let cli = Wxretain::with_apps(
        &db.url,
        &sim.base_url(),
        &apps,
        &format!("{FAST}[schedule]\nlookback_weeks = 12\n[collect]\nretention = [\"weekly\"]\n"),
    );
    // Only the first app is backfilled: the second shows 12 missing weeks.
    let mut args = backfill_args(first, last);
    args.extend(["--app".into(), apps[0].to_string()]);
    cli.run(&strs(&args)).await.expect_code(0, "backfill");
    // Weeks WeChat has not published yet are not ready, not missing.
    let [_, complete, maturing, unpublished] = expected_weeks(first, last, now);
    let expected = [
        (apps[0].as_str(), complete, maturing, 0, unpublished),
        (apps[1].as_str(), 0, 0, 12, 0),
    ];

    let out = cli.run(&["status"]).await;
    out.expect_code(0, "status");
    assert!(
        out.stdout.starts_with(&format!(
            "retention weekly {} .. {} (12 weeks)\n",
            first.monday(),
            last.sunday()
        )),
        "{}",
        out.stdout
    );
    for (appid, complete, maturing, missing, not_ready) in expected {
        let rows = lines_starting(&out.stdout, appid);
        assert_eq!(rows.len(), 1, "one row for {appid}:\n{}", out.stdout);
        let cells: Vec<&str> = rows[0].split_whitespace().collect();
        let counts = [complete, maturing, missing, not_ready, 0, 0].map(|n| n.to_string());
        assert_eq!(cells[1..7], counts, "{}", rows[0]);
    }

    let out = cli.run(&["status", "--json"]).await;
    out.expect_code(0, "status --json");
    let json: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("status --json prints JSON");
    let rows = json.as_array().expect("a JSON array");
    assert_eq!(rows.len(), 2, "{json}");
    for (row, (appid, complete, maturing, missing, not_ready)) in rows.iter().zip(expected) {
        assert_eq!(row["appid"], appid, "{row}");
        assert_eq!(row["complete"], complete, "{row}");
        assert_eq!(row["maturing"], maturing, "{row}");
        assert_eq!(row["missing"], missing, "{row}");
        assert_eq!(row["not_ready"], not_ready, "{row}");
        assert_eq!(row["failing"], 0, "{row}");
        assert_eq!(row["unavailable"], 0, "{row}");
    }
    assert!(rows[0]["last_success"].is_string(), "{}", rows[0]);
    assert!(rows[1]["last_success"].is_null(), "{}", rows[1]);
    assert_eq!(rows[1]["oldest_gap"], first.monday().to_string());
}

// ---- 6. once --as-of and --help ------------------------------------------------------

#[tokio::test]
async fn once_refuses_a_malformed_instant_naming_the_flag() {
    let cli = Wxretain::offline(&apps(1), "");
    for bad in ["yesterday", "2026-11-23", "2026-11-23T25:00:00+08:00"] {
        let what = format!("once --as-of {bad}");
        let out = cli.run(&["once", "--as-of", bad]).await;
        out.expect_code(2, &what)
            .expect_stderr_has("--as-of", &what)
            .expect_stderr_has("RFC 3339", &what);
    }
}

#[tokio::test]
async fn every_subcommand_has_help() {
    // No config file and nothing reachable: --help needs neither.
    let cli = Wxretain::new("", HashMap::new());
    for command in [
        "migrate", "backfill", "once", "run", "status", "report", "simulate", "demo",
    ] {
        let out = cli.run_raw(&[command, "--help"]).await;
        out.expect_code(0, &format!("{command} --help"));
        assert!(
            out.stdout.contains(&format!("Usage: wxretain {command}")),
            "{command} --help:\n{}",
            out.stdout
        );
    }
    let out = cli.run_raw(&["--help"]).await;
    out.expect_code(0, "--help");
}

// ---- 7. migrate creates the database ---------------------------------------------------

#[tokio::test]
async fn migrate_creates_a_missing_database() {
    // Not created: TestDb's Drop only drops it (WITH (FORCE)) when the test ends.
    let db = TestDb::not_created();
    let exists = || async {
        let admin = Store::connect(&SecretString::from(server_url()), 1)
            .await
            .expect("connect to the server");
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        )
        .bind(&db.name)
        .fetch_one(admin.pool())
        .await
        .expect("query pg_database")
    };
    assert!(!exists().await, "the database does not exist yet");

    let cli = Wxretain::with_apps(&db.url, CLOSED_HTTP, &apps(1), "");
    let out = cli.run(&["migrate"]).await;
    out.expect_code(0, "migrate");
    assert!(
        out.stdout.contains("database is up to date"),
        "{}",
        out.stdout
    );
    assert!(exists().await, "migrate created {}", db.name);
    let store = store(&db).await;
    store.ready().await.expect("every migration applied");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM weekly_retention")
        .fetch_one(store.pool())
        .await
        .expect("weekly_retention exists");
    assert_eq!(rows, 0);

    // Again: nothing to do, still 0.
    cli.run(&["migrate"]).await.expect_code(0, "second migrate");
    store.pool().close().await;
}

// ---- 8. report and demo ------------------------------------------------------------

/// What `report` must print for key `key` of `week`: its count and its rate
/// against key 0 if WeChat published it at `now`, else nothing.
fn reported(
    appid: &AppId,
    week: NaturalWeek,
    metric: Metric,
    key: u8,
    now: DateTime<Utc>,
) -> Option<(i64, Option<f64>)> {
    let Publication::Keys(max) = publication(week, now, 10) else {
        return None;
    };
    if key > max {
        return None;
    }
    let value = truth_value(appid, week, metric, key);
    let base = truth_value(appid, week, metric, 0);
    Some((value, (base > 0).then(|| value as f64 / base as f64)))
}

/// The table's tokens for one week: the Monday, users, then `count pct%` per
/// published key and `…` per key still maturing.
fn table_tokens(appid: &AppId, week: NaturalWeek, now: DateTime<Utc>) -> Vec<String> {
    let metric = Metric::VisitUvNew;
    let mut tokens = vec![week.monday().to_string()];
    match reported(appid, week, metric, 0, now) {
        Some((users, _)) => tokens.push(users.to_string()),
        None => tokens.push("…".into()),
    }
    for key in 1..=4 {
        match reported(appid, week, metric, key, now) {
            Some((n, Some(rate))) => {
                tokens.extend([n.to_string(), format!("{:.1}%", 100.0 * rate)])
            }
            Some((n, None)) => tokens.extend([n.to_string(), "-".into()]),
            None => tokens.push("…".into()),
        }
    }
    tokens
}

/// A database backfilled at 2026-11-24 12:00 Beijing with 12 weeks of `apps`:
/// the last 4 weeks are still maturing.
async fn filled_for_report(apps: &[AppId]) -> (TestDb, DateTime<Utc>, NaturalWeek) {
    let now = beijing(2026, 11, 24, 12);
    let sim = simulator(now, |_| {}).await;
    let db = TestDb::new().await;
    let p = pipeline(config(&db, &sim, apps, FAST)).await;
    let last = NaturalWeek::last_completed_at(now, BEIJING);
    let report = backfill(&p, last.plus_weeks(-11), last, now, false).await;
    assert_eq!(report.failed, 0, "{report:?}");
    p.store.pool().close().await;
    sim.shutdown().await;
    (db, now, last)
}

#[tokio::test]
async fn report_prints_the_cohort_triangle_as_a_table_csv_and_json() {
    let apps = apps(2);
    let (db, now, last) = filled_for_report(&apps).await;
    // Only DATABASE_URL: the config file (not even TOML here) is not read.
    let cli = Wxretain::new(
        "this is not a config file",
        HashMap::from([("DATABASE_URL".to_string(), db.url.clone())]),
    );
    let appid = apps[0].as_str();
    let weeks: Vec<NaturalWeek> = NaturalWeek::range(last.plus_weeks(-5), last).collect();

    // Table, piped: plain text, a row per week, maturing keys marked.
    let out = cli
        .run_raw(&["report", "--app", appid, "--weeks", "6"])
        .await;
    out.expect_code(0, "report");
    assert!(
        !out.stdout.contains('\x1b'),
        "no colour when piped:\n{}",
        out.stdout
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{appid}: new users per week (visit_uv_new)")),
        "{}",
        out.stdout
    );
    assert_eq!(lines.len(), 2 + weeks.len() + 1, "{}", out.stdout);
    for (line, week) in lines[2..].iter().zip(&weeks) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(tokens, table_tokens(&apps[0], *week, now), "{line}");
    }
    assert_eq!(
        lines[2 + weeks.len() - 1].matches('…').count(),
        4,
        "the newest week has only key 0:\n{}",
        out.stdout
    );
    // The default is 12 weeks; asking for more shows no weeks before the data.
    for args in [
        &["report", "--app", appid][..],
        &["report", "--app", appid, "--weeks", "30"],
    ] {
        let out = cli.run_raw(args).await;
        out.expect_code(0, &format!("{args:?}"));
        assert_eq!(
            out.stdout.lines().count(),
            2 + 12 + 1,
            "{args:?}:\n{}",
            out.stdout
        );
    }
    // On a terminal (forced here), cells are shaded.
    let mut colour = Wxretain::new("", cli.env.clone());
    colour.set_env("CLICOLOR_FORCE", "1");
    let out = colour.run_raw(&["report", "--app", appid]).await;
    out.expect_code(0, "report in colour");
    assert!(out.stdout.contains("\x1b["), "{}", out.stdout);

    // CSV, active users: empty cells where WeChat has not published yet.
    let out = cli
        .run_raw(&[
            "report", "--app", appid, "--weeks", "6", "--metric", "active", "--format", "csv",
        ])
        .await;
    out.expect_code(0, "report --format csv");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "appid,metric,week_start,week_end,users,w1,w2,w3,w4,rate_w1,rate_w2,rate_w3,rate_w4"
    );
    assert_eq!(lines.len(), 1 + weeks.len(), "{}", out.stdout);
    let mut empty_cells = 0;
    for (line, week) in lines[1..].iter().zip(&weeks) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(
            cells[..4],
            [
                appid,
                "visit_uv",
                &week.monday().to_string(),
                &week.sunday().to_string()
            ]
        );
        for key in 0..=4u8 {
            let expected = reported(&apps[0], *week, Metric::VisitUv, key, now);
            let count = cells[4 + usize::from(key)];
            assert_eq!(
                count,
                expected.map(|e| e.0.to_string()).unwrap_or_default(),
                "{line}"
            );
            if key > 0 {
                let rate = cells[8 + usize::from(key)];
                let parsed = (!rate.is_empty()).then(|| rate.parse::<f64>().expect("a number"));
                assert_eq!(parsed, expected.and_then(|e| e.1), "{line}");
            }
            empty_cells += usize::from(count.is_empty());
        }
    }
    assert_eq!(
        empty_cells,
        4 + 3 + 2 + 1,
        "the 4 maturing weeks' missing keys"
    );

    // JSON: nulls where WeChat has not published yet.
    let out = cli
        .run_raw(&["report", "--app", appid, "--weeks", "6", "--format", "json"])
        .await;
    out.expect_code(0, "report --format json");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        (doc["appid"].as_str(), doc["metric"].as_str()),
        (Some(appid), Some("visit_uv_new"))
    );
    let rows = doc["weeks"].as_array().expect("weeks");
    assert_eq!(rows.len(), weeks.len());
    for (row, week) in rows.iter().zip(&weeks) {
        assert_eq!(row["week_start"], week.monday().to_string());
        for key in 1..=4u8 {
            let expected = reported(&apps[0], *week, Metric::VisitUvNew, key, now);
            assert_eq!(
                row[format!("w{key}")].as_i64(),
                expected.map(|e| e.0),
                "{row}"
            );
            // serde_json's parser may be off by an ulp: compare to 1e-12.
            let rate = row[format!("rate_w{key}")].as_f64();
            match (rate, expected.and_then(|e| e.1)) {
                (Some(got), Some(want)) => assert!((got - want).abs() < 1e-12, "{row}"),
                (got, want) => assert_eq!(got, want, "{row}"),
            }
        }
    }
    assert!(rows[weeks.len() - 1]["w1"].is_null());
}

#[tokio::test]
async fn report_refuses_bad_arguments_and_unknown_apps_with_exit_code_2() {
    let apps = apps(2);
    let (db, _, _) = filled_for_report(&apps).await;
    let cli = Wxretain::new(
        "",
        HashMap::from([("DATABASE_URL".to_string(), db.url.clone())]),
    );
    let appid = apps[0].as_str();
    let cases: [(&[&str], &str); 7] = [
        (&["report", "--app", "wxNOPE"], "--app"),
        (&["report"], "--app"),
        (&["report", "--app", appid, "--weeks", "0"], "--weeks"),
        (&["report", "--app", appid, "--weeks", "many"], "--weeks"),
        (&["report", "--app", appid, "--metric", "bogus"], "--metric"),
        (&["report", "--app", appid, "--format", "xml"], "--format"),
        // Well-formed but not in the database: the message names those that are.
        (&["report", "--app", "wx0123456789abcdef"], apps[1].as_str()),
    ];
    for (args, needle) in cases {
        let what = format!("{args:?}");
        cli.run_raw(args)
            .await
            .expect_code(2, &what)
            .expect_stderr_has(needle, &what);
    }

    // Without DATABASE_URL the config file's URL is used; a missing file says
    // what would do instead.
    let (toml, mut env) = config_toml(&apps, &format!("[database]\nurl = \"{}\"", db.url));
    env.insert("WXRETAIN_WECHAT_BASE_URL".into(), CLOSED_HTTP.into());
    let cli = Wxretain::new(&toml, env);
    cli.run(&["report", "--app", appid])
        .await
        .expect_code(0, "report via the config");
    cli.run_raw(&["--config", "nope.toml", "report", "--app", appid])
        .await
        .expect_code(2, "no config, no DATABASE_URL")
        .expect_stderr_has("DATABASE_URL", "no config, no DATABASE_URL");
}

#[tokio::test]
async fn demo_fills_its_database_and_ends_with_a_report_and_sql_to_try() {
    let db = TestDb::new().await;
    let cli = Wxretain::new("", HashMap::new());
    let out = cli
        .run_raw(&[
            "demo",
            "--database-url",
            &db.url,
            "--apps",
            "2",
            "--weeks",
            "6",
        ])
        .await;
    out.expect_code(0, "demo");
    let now = Utc::now();
    let appid = wxretain::simulator::sim_appid(1);
    assert!(
        out.stdout
            .contains(&format!("$ wxretain report --app {appid} --weeks 6\n")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains('\x1b'), "no colour when piped");
    // The weekly report's rows are the 6 weeks backfilled, as WeChat
    // published them; a daily report follows it.
    let daily = format!("$ wxretain report --app {appid} --retention daily --periods 14\n");
    let (weekly, after) = out.stdout.split_once(&daily).expect("a daily report too");
    assert!(after.contains("day 30"), "{after}");
    let last = NaturalWeek::last_completed_at(now, BEIJING);
    for week in NaturalWeek::range(last.plus_weeks(-5), last) {
        let tokens = table_tokens(&appid, week, now);
        let row = lines_starting(weekly, &week.monday().to_string());
        assert_eq!(row.len(), 1, "{}", out.stdout);
        assert_eq!(row[0].split_whitespace().collect::<Vec<_>>(), tokens);
    }
    for view in [
        "retention_cohorts",
        "retention_latest_complete",
        "retention_curve_12w",
        "retention_fetch_health",
        "retention_cohorts_daily",
        "retention_cohorts_monthly",
    ] {
        assert!(
            out.stdout.contains(view),
            "the demo suggests a query on {view}"
        );
    }
    let store = store(&db).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(DISTINCT appid) FROM retention_cohorts")
        .fetch_one(store.pool())
        .await
        .expect("the views exist");
    assert_eq!(stored, 2);
    store.pool().close().await;
}
