//! Where tokens come from, attacked: tokens that expire while calls wait
//! their turn, lease holders hidden by `/proc`, token commands and files
//! that never end, flood memory or see what they should not.

use crate::common;

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
            .enqueue(&apps, retention_range(first, last), now, false)
            .await
            .expect("enqueue");
    }
    let scope = Scope {
        apps: apps.clone(),
        ranges: ranges.iter().map(|&(f, l)| retention_range(f, l)).collect(),
        ..Default::default()
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

// ---- lease holders hidden by /proc ------------------------------------------

/// Whether a test that needs root can run: otherwise it says so and passes,
/// except on CI, where every test must run.
fn root_or_skip(name: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{name} needs root, and CI runs every test"
    );
    println!("SKIPPED: {name}: needs root");
    false
}

/// A daemon running as another user under `hidepid=2` (systemd's
/// `ProtectProc=invisible`) sees no other user's process in `/proc`. A live
/// root process holding leases (a `backfill` run by hand) must not be judged
/// dead from there, while a holder that is really gone still is: `once`,
/// run as nobody in a mount namespace with such a `/proc`, takes back the
/// dead holder's periods and leaves the live one's alone.
#[tokio::test]
async fn a_live_process_hidden_by_proc_keeps_its_leases() {
    let name = "a_live_process_hidden_by_proc_keeps_its_leases";
    if !root_or_skip(name) {
        return;
    }
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let apps = apps(2);
    let extra = "[schedule]\nlookback_weeks = 3\n[collect]\nretention = [\"weekly\"]\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let space = wxretain::replica::ReplicaId::current()
        .pid_space()
        .expect("this kernel names its pid space")
        .to_string();
    // A live root process of this pid space, and a pid no process has.
    let mut live = tokio::process::Command::new("sleep")
        .arg("300")
        .kill_on_drop(true)
        .spawn()
        .expect("sleep");
    let live_pid = live.id().expect("pid");
    let holders = [
        (&apps[0], format!("by-hand:{live_pid}:abcdef01:{space}")),
        (&apps[1], format!("gone:99999999:abcdef01:{space}")),
    ];
    let weeks: Vec<wxretain::domain::Period> = {
        let last = wxretain::domain::NaturalWeek::last_completed_at(
            chrono::Utc::now(),
            wxretain::domain::BEIJING,
        );
        (0..3).map(|i| last.plus_weeks(-i).into()).collect()
    };
    for (appid, owner) in &holders {
        for week in &weeks {
            sqlx::query(
                "INSERT INTO retention_ledger (appid, dataset, grain, period_start, next_due_at, lease_owner, lease_until)
                 VALUES ($1, 'retention', 'weekly', $2, now() - interval '1 minute', $3, now() + interval '1 hour')",
            )
            .bind(appid.as_str())
            .bind(week.start())
            .bind(owner)
            .execute(p.store.pool())
            .await
            .expect("a leased period");
        }
    }
    let (dir, path, env) = config_file(&apps, extra);
    // nobody must read the config (it holds no secret: they are in `env`).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let script = "mount -t proc -o hidepid=2 proc /proc && \
                  exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$@\"";
    let mut command = tokio::process::Command::new("unshare");
    command
        .args(["--mount", "--kill-child", "sh", "-c", script, "sh"])
        .arg(env!("CARGO_BIN_EXE_wxretain"))
        .arg("--config")
        .arg(&path)
        .arg("once")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .env("DATABASE_URL", &db.url)
        .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = Output::of(
        command,
        std::time::Duration::from_secs(120),
        "once as nobody",
    )
    .await;
    assert!(
        !out.stderr.contains("mount:") && !out.stderr.contains("unshare:"),
        "the hidepid /proc could not be set up\n{}",
        out.stderr
    );
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT appid, lease_owner FROM retention_ledger WHERE lease_owner IS NOT NULL ORDER BY 1, 2",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("leases");
    let live_owner = &holders[0].1;
    assert_eq!(
        held,
        vec![(apps[0].to_string(), live_owner.clone()); 3],
        "the live holder keeps its leases, the gone one's are taken back\n{}",
        out.all()
    );
    let stats = sim.stats();
    let asked: std::collections::BTreeSet<String> = stats
        .per_period
        .keys()
        .map(|(appid, _)| appid.to_string())
        .collect();
    assert_eq!(
        asked,
        [apps[1].to_string()].into(),
        "only the gone holder's periods were fetched\n{}",
        out.all()
    );
    live.kill().await.expect("kill sleep");
}

// ---- token commands ----------------------------------------------------------

fn now() -> chrono::DateTime<chrono::Utc> {
    beijing(2026, 11, 24, 12)
}

/// A pipeline for one app (`sim_appid(1)`) with `credential` (TOML lines),
/// weekly retention only, and `wechat` added to `[wechat]`.
async fn one_app(
    db: &TestDb,
    sim: &wxretain::simulator::SimulatorHandle,
    wechat: &str,
    credential: &str,
) -> wxretain::runtime::Runtime {
    let app = wxretain::simulator::sim_appid(1);
    let toml = format!(
        "[wechat]\nretry_min_delay_ms = 5\nrate_per_second = 1000000\napp_rate_per_second = 1000000\n{wechat}\
         [collect]\nretention = [\"weekly\"]\n\
         [[apps]]\nappid = \"{app}\"\n{credential}\n"
    );
    let env: std::collections::HashMap<String, String> = [
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("WXRETAIN_WECHAT_BASE_URL".to_string(), sim.base_url()),
    ]
    .into();
    let config = wxretain::config::Config::parse(&toml, std::path::Path::new("test.toml"), &env)
        .expect("valid config");
    pipeline(config).await
}

/// A backfill of the app's last four weeks, failing the test if it takes
/// longer than `within`; the pass's report and the weeks' ledger rows.
async fn four_weeks(
    p: &wxretain::runtime::Runtime,
    within: std::time::Duration,
) -> (wxretain::pass::PassReport, Vec<wxretain::store::PeriodRow>) {
    let last = wxretain::domain::NaturalWeek::last_completed_at(now(), wxretain::domain::BEIJING);
    let first = last.plus_weeks(-3);
    let report = tokio::time::timeout(within, backfill(p, first, last, now(), false))
        .await
        .unwrap_or_else(|_| panic!("the pass took over {within:?}"));
    let app = wxretain::simulator::sim_appid(1);
    let rows = ledger_weeks(&p.store, &[app], first, last).await;
    (report, rows)
}

/// The errors the weeks failed with (each once).
fn errors_of(rows: &[wxretain::store::PeriodRow]) -> std::collections::BTreeSet<String> {
    rows.iter().filter_map(|r| r.last_error.clone()).collect()
}

/// This process's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// `yes sometoken` prints forever: it is stopped once it has printed more
/// than a token can be (64 KiB), with an error that shows none of it, and
/// the memory of what it printed is not kept.
#[tokio::test]
async fn a_token_command_that_prints_without_end_is_stopped_at_64_kib() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    // A token call (and so the command) may take 2 s: `yes` prints gigabytes in that.
    let wechat = "connect_timeout_secs = 1\nrequest_timeout_secs = 1\n";
    let p = one_app(
        &db,
        &sim,
        wechat,
        "token_command = [\"yes\", \"sometoken\"]",
    )
    .await;
    let (report, rows) = four_weeks(&p, std::time::Duration::from_secs(30)).await;
    assert_eq!(report.stored, 0, "{report:?}");
    let errors = errors_of(&rows);
    assert!(!errors.is_empty(), "{rows:?}");
    for error in &errors {
        assert!(
            error.starts_with("token source:") && error.contains("64 KiB"),
            "{error}"
        );
        assert!(!error.contains("sometoken"), "{error}");
    }
    let peak = peak_rss_kib();
    assert!(peak < 512 * 1024, "the test process peaked at {peak} KiB");
}

/// A command that leaves a child behind (a `sleep` in the background) has
/// done its work when it exits: its token is used at once, not after the
/// child's end, and the child, in the command's process group, is killed.
#[tokio::test]
async fn a_token_command_that_leaves_a_child_behind_is_done_when_it_exits() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let token = token_of(&stable_token(&sim, &wxretain::simulator::sim_appid(1), false).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let child_pid = dir.path().join("child.pid");
    let script = format!(
        "sleep 300 & echo $! > '{}'; echo {token}",
        child_pid.display()
    );
    let credential = format!("token_command = [\"sh\", \"-c\", {script:?}]");
    let wechat = "connect_timeout_secs = 5\nrequest_timeout_secs = 5\n";
    let p = one_app(&db, &sim, wechat, &credential).await;
    let (report, rows) = four_weeks(&p, std::time::Duration::from_secs(30)).await;
    assert_eq!(report.stored, 4, "{report:?} {:?}", errors_of(&rows));
    let pid: i32 = std::fs::read_to_string(&child_pid)
        .expect("the command wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid");
    // Killed at once; gone (or a zombie until its new parent reaps it)
    // within a few seconds, whatever the machine's load.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while runs(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the command's child {pid} still runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A command that hangs is stopped after the token call timeout with every
/// process it started: nothing of it is left running.
#[tokio::test]
async fn a_hanging_token_command_is_stopped_with_its_children() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let child_pid = dir.path().join("child.pid");
    let script = format!("sleep 300 & echo $! > '{}'; sleep 300", child_pid.display());
    let credential = format!("token_command = [\"sh\", \"-c\", {script:?}]");
    let wechat = "connect_timeout_secs = 1\nrequest_timeout_secs = 1\n";
    let p = one_app(&db, &sim, wechat, &credential).await;
    let (report, rows) = four_weeks(&p, std::time::Duration::from_secs(30)).await;
    assert_eq!(report.stored, 0, "{report:?}");
    assert!(
        errors_of(&rows)
            .iter()
            .all(|e| e.contains("did not finish within 2s")),
        "{:?}",
        errors_of(&rows)
    );
    let pid: i32 = std::fs::read_to_string(&child_pid)
        .expect("the command wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while runs(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hung command's child {pid} still runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` runs: it exists and is not a zombie.
fn runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// A `token_command` sees PATH, HOME, the locale and the variables its
/// `token_command_env` names: not another app's AppSecret, not the
/// database URL and its password, nothing else of wxretain's environment.
#[tokio::test]
async fn a_token_command_sees_only_the_environment_its_entry_names() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let apps = apps(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("environ");
    // The shell's own environment as it was given (dash adds PWD to what
    // it passes on, not to this).
    let script = format!(
        "tr '\\0' '\\n' < /proc/$$/environ > '{}'; echo not-a-token",
        dump.display()
    );
    let toml = format!(
        "[schedule]\nlookback_weeks = 1\n[collect]\nretention = [\"weekly\"]\n\
         [[apps]]\nappid = \"{}\"\nsecret_env = \"OTHER_APP_SECRET\"\n\
         [[apps]]\nappid = \"{}\"\ntoken_command = [\"sh\", \"-c\", {script:?}]\n\
         token_command_env = [\"TOKEN_SERVICE_KEY\"]\n",
        apps[0], apps[1]
    );
    let config = dir.path().join("wxretain.toml");
    std::fs::write(&config, toml).expect("write config");
    // trust authentication ignores the password: it is there to be kept out.
    let url = db.url.replacen("postgres@", "postgres:db-password-x@", 1);
    assert_ne!(url, db.url, "{}", db.url);
    let env: std::collections::HashMap<String, String> = [
        ("OTHER_APP_SECRET", "app-secret-x"),
        ("TOKEN_SERVICE_KEY", "service-key-x"),
        ("HOME", "/nonexistent"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("LC_MESSAGES", "C"),
        ("UNRELATED", "unrelated-x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    wxretain_with_config(&config, &env, &url, &sim, &["once"]).await;
    let seen = std::fs::read_to_string(&dump).expect("the command ran");
    let mut names: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split_once('=').map(|(name, _)| name))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["HOME", "LANG", "LC_ALL", "PATH", "TOKEN_SERVICE_KEY"],
        "{seen}"
    );
    assert!(seen.contains("TOKEN_SERVICE_KEY=service-key-x"), "{seen}");
    for kept_out in ["app-secret-x", "db-password-x", "unrelated-x"] {
        assert!(!seen.contains(kept_out), "{seen}");
    }
}

// ---- credential files ----------------------------------------------------------

/// Makes a FIFO at `path`, in place of whatever was there.
fn make_fifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .expect("mkfifo");
}

/// A `token_file` replaced by a FIFO after start-up (a sidecar gone wrong)
/// is not opened, let alone waited on: the app's periods fail with an error
/// that says what the file is, and the pass ends.
#[tokio::test]
async fn a_token_file_that_became_a_fifo_fails_its_periods_and_the_pass_ends() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    let token = token_of(&stable_token(&sim, &wxretain::simulator::sim_appid(1), false).await);
    std::fs::write(&file, format!("{token}\n")).expect("write the token file");
    let credential = format!("token_file = {:?}", file.display().to_string());
    let p = one_app(&db, &sim, "token_file_ttl_secs = 0\n", &credential).await;
    make_fifo(&file);
    let (report, rows) = four_weeks(&p, std::time::Duration::from_secs(30)).await;
    assert_eq!(report.stored, 0, "{report:?}");
    assert_eq!(
        errors_of(&rows),
        [format!(
            "token source: token_file {} is a FIFO, not a regular file",
            file.display()
        )]
        .into(),
        "{rows:?}"
    );
}

/// A credential file that is no regular file of at most 64 KiB is a config
/// error naming its key (exit 2), found before anything is read from it:
/// `/dev/zero` as a `secret_file` grew the process by gigabytes.
#[tokio::test]
async fn a_credential_file_that_is_no_small_regular_file_is_a_config_error() {
    let db = TestDb::new().await;
    let sim = simulator(now(), |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    make_fifo(&fifo);
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 64 * 1024 + 1]).expect("write");
    let cases = [
        (
            "secret_file",
            "/dev/zero".into(),
            "is a character device, not a regular file",
        ),
        ("token_file", fifo, "is a FIFO, not a regular file"),
        (
            "secret_file",
            dir.path().to_path_buf(),
            "is a directory, not a regular file",
        ),
        ("token_file", big, "holds more than 64 KiB"),
    ];
    for (key, path, problem) in cases {
        let toml = format!(
            "[[apps]]\nappid = \"{}\"\n{key} = {:?}\n",
            wxretain::simulator::sim_appid(1),
            path.display().to_string()
        );
        let config = dir.path().join("wxretain.toml");
        std::fs::write(&config, toml).expect("write config");
        let out =
            wxretain_with_config(&config, &Default::default(), &db.url, &sim, &["once"]).await;
        out.expect_code(2, key)
            .expect_stderr_has(&format!("apps[0].{key}"), key)
            .expect_stderr_has(problem, key);
    }
}

/// A daemon whose `token_file` became a FIFO fails the app's periods and
/// stops on SIGTERM within `drain_timeout_secs` and a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_whose_token_file_became_a_fifo_stops_on_sigterm() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let app = wxretain::simulator::sim_appid(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    let token = token_of(&stable_token(&sim, &app, false).await);
    std::fs::write(&file, format!("{token}\n")).expect("write the token file");
    let config = dir.path().join("wxretain.toml");
    std::fs::write(
        &config,
        format!(
            "[wechat]\ntoken_file_ttl_secs = 0\n\
             [schedule]\nlookback_weeks = 1\ndrain_timeout_secs = 2\n\
             [collect]\nretention = [\"weekly\"]\n\
             [[apps]]\nappid = \"{app}\"\ntoken_file = {:?}\n",
            file.display().to_string()
        ),
    )
    .expect("write config");
    let port = free_port();
    let mut daemon = run_command(&config, &Default::default(), &db.url, &sim.base_url(), port)
        .spawn()
        .expect("spawn run");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    // Started (its start-up pass has planned the week), the file goes bad.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let planned: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_ledger")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if planned > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never planned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    make_fifo(&file);
    // Older weeks a backfill asked for, due now: the daemon wakes for them
    // and reads the file.
    let last = wxretain::domain::NaturalWeek::last_completed_at(
        chrono::Utc::now(),
        wxretain::domain::BEIJING,
    );
    for back in 1..=3 {
        sqlx::query(
            "INSERT INTO retention_ledger (appid, dataset, grain, period_start, next_due_at, requested)
             VALUES ($1, 'retention', 'weekly', $2, now(), true)",
        )
        .bind(app.as_str())
        .bind(last.plus_weeks(-back).monday())
        .execute(&pool)
        .await
        .expect("a due week");
    }
    let fifo_error = format!("token source: token_file {} is a FIFO", file.display());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let failed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM retention_ledger WHERE starts_with(last_error, $1)",
        )
        .bind(&fifo_error)
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        if failed > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no period failed with {fifo_error:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let stopping = std::time::Instant::now();
    terminate(&mut daemon, std::time::Duration::from_secs(30)).await;
    let took = stopping.elapsed();
    assert!(
        took < std::time::Duration::from_secs(2 + 5),
        "stopped {took:?} after SIGTERM"
    );
}

// ---- shutdown ----------------------------------------------------------------

/// The pid of a child of `parent`, once it has one.
async fn child_of(parent: u32) -> u32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let children = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| {
                        let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
                        ppid.parse::<u32>().ok()
                    })
                    == Some(parent)
            })
            .collect::<Vec<_>>();
        if let [child] = children[..] {
            return child;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{parent} has no single child: {children:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whatever is still blocked when the daemon has drained (here a DNS lookup,
/// which runs on a blocking thread: the name server never answers), the
/// process exits a few seconds later. The lookup goes on for minutes: the
/// runtime dropped at the end of `main` waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_exits_after_its_drain_whatever_is_still_blocked() {
    let name = "the_daemon_exits_after_its_drain_whatever_is_still_blocked";
    if !root_or_skip(name) {
        return;
    }
    let db = TestDb::new().await;
    // A name server that hears every query and answers none; port 53 is
    // root's, the address is this test's own.
    let silent = tokio::net::UdpSocket::bind("127.0.0.77:53")
        .await
        .expect("bind 127.0.0.77:53");
    let dir = tempfile::tempdir().expect("tempdir");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.77\noptions timeout:30 attempts:5\n",
    )
    .expect("write resolv.conf");
    let app = wxretain::simulator::sim_appid(1);
    let config = dir.path().join("wxretain.toml");
    std::fs::write(
        &config,
        format!(
            "[wechat]\nconnect_timeout_secs = 1\nrequest_timeout_secs = 1\nretry_attempts = 1\n\
             [schedule]\nlookback_weeks = 1\ndrain_timeout_secs = 2\n\
             [collect]\nretention = [\"weekly\"]\n\
             [[apps]]\nappid = \"{app}\"\nsecret_env = \"APP_SECRET\"\n"
        ),
    )
    .expect("write config");
    // This daemon alone sees the silent name server: its own mount
    // namespace, with the file over /etc/resolv.conf.
    let script = "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"";
    let mut unshare = tokio::process::Command::new("unshare")
        .args(["--mount", "--kill-child", "sh", "-c", script])
        .arg(&resolv)
        .arg(env!("CARGO_BIN_EXE_wxretain"))
        .arg("--config")
        .arg(&config)
        .args(["run", "--listen", "off"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_SECRET", "s3cret")
        .env("DATABASE_URL", &db.url)
        .env("WXRETAIN_WECHAT_BASE_URL", "http://wechat.silent.test:8089")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn unshare");
    let daemon = child_of(unshare.id().expect("unshare's pid")).await;
    // The daemon's token call looks the name up, and waits.
    let mut query = [0u8; 512];
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        silent.recv_from(&mut query),
    )
    .await
    .expect("the daemon never asked the name server")
    .expect("a query");
    let stopping = std::time::Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &daemon.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -TERM {daemon}");
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), unshare.wait())
        .await
        .expect("the daemon did not exit within 60 s of SIGTERM")
        .expect("wait");
    let took = stopping.elapsed();
    let mut stderr = String::new();
    if let Some(mut pipe) = unshare.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    assert!(status.success(), "{status:?}\n{stderr}");
    // The drain (2 s) and the runtime's grace for blocked threads (3 s).
    assert!(
        took < std::time::Duration::from_secs(2 + 3 + 3),
        "exited {took:?} after SIGTERM\n{stderr}"
    );
}
