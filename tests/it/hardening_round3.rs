//! Hardening, round 3: one bad answer, one stopped process or one narrowed
//! config must never cost other data, nor fetch what is not wanted.

use crate::common;

use chrono::Duration;
use common::*;
use sqlx::Connection;
use wxretain::domain::{Grain, Metric};
use wxretain::simulator::truth_value_of;

/// Daily keys answered on the morning after the day, all of them as zeros,
/// are neither stored nor the end of the day: key 1 is fetched when due.
#[tokio::test]
async fn keys_answered_before_they_can_exist_do_not_close_a_day() {
    let db = TestDb::new().await;
    let morning = beijing(2026, 11, 25, 10) + Duration::minutes(30);
    let sim = simulator(morning, |c| c.faults.premature_keys_rate = 1.0).await;
    let apps = apps(1);
    let extra = "[schedule]\nlookback_weeks = 1\n[collect]\nretention = [\"daily\"]\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let day = Grain::Daily.last_completed_at(morning);

    once(&p, morning).await;
    let stored: Vec<(i16,)> =
        sqlx::query_as("SELECT DISTINCT key FROM daily_retention WHERE day = $1 ORDER BY 1")
            .bind(day.start())
            .fetch_all(p.store.pool())
            .await
            .expect("rows");
    assert_eq!(stored, [(0,)], "only key 0 can exist the morning after");
    let (state, keys): (String, Vec<i16>) = sqlx::query_as(
        "SELECT state, keys FROM retention_ledger WHERE grain = 'daily' AND period_start = $1",
    )
    .bind(day.start())
    .fetch_one(p.store.pool())
    .await
    .expect("ledger");
    assert_eq!((state.as_str(), keys), ("maturing", vec![0]));

    // The next morning key 1 is published and fetched, with WeChat's value.
    let next = morning + Duration::days(1);
    sim.clock().set(next);
    let mut faults = sim.faults_now();
    faults.premature_keys_rate = 0.0;
    sim.set_faults(faults);
    once(&p, next).await;
    let value: i64 = sqlx::query_scalar(
        "SELECT value FROM daily_retention WHERE day = $1 AND metric = 'visit_uv' AND key = 1",
    )
    .bind(day.start())
    .fetch_one(p.store.pool())
    .await
    .expect("key 1 stored");
    assert_eq!(value, truth_value_of(&apps[0], day, Metric::VisitUv, 1));
}

/// Calls the simulator answered for `grain`'s retention API so far.
fn grain_calls(sim: &wxretain::simulator::SimulatorHandle, grain: Grain) -> u64 {
    sim.stats().per_grain.get(&grain).map_or(0, |c| c.calls)
}

/// An app narrowed to weekly retention no longer has its days and months
/// fetched, though they are in the ledger and due: the claim honours the
/// config, not only the planner.
#[tokio::test]
async fn a_grain_no_longer_collected_is_no_longer_fetched() {
    let db = TestDb::new().await;
    let start = beijing(2026, 11, 18, 11);
    let sim = simulator(start, |_| {}).await;
    let apps = apps(1);
    let all = pipeline(config(&db, &sim, &apps, "[schedule]\nlookback_weeks = 6\n")).await;
    once(&all, start).await;
    assert!(grain_calls(&sim, Grain::Daily) > 0 && grain_calls(&sim, Grain::Monthly) > 0);
    let (daily, monthly) = (
        grain_calls(&sim, Grain::Daily),
        grain_calls(&sim, Grain::Monthly),
    );

    let extra = "[schedule]\nlookback_weeks = 6\n[collect]\nretention = [\"weekly\"]\n";
    let weekly = pipeline(config(&db, &sim, &apps, extra)).await;
    // Days later every stored day has a new key due, and a new month began.
    for days in [1, 3, 14] {
        let at = start + Duration::days(days);
        sim.clock().set(at);
        once(&weekly, at).await;
    }
    assert_eq!(
        grain_calls(&sim, Grain::Daily),
        daily,
        "days fetched after narrowing"
    );
    assert_eq!(
        grain_calls(&sim, Grain::Monthly),
        monthly,
        "months fetched after narrowing"
    );
    // Weeks go on.
    assert!(
        sim.stats()
            .per_grain
            .get(&Grain::Weekly)
            .map_or(0, |c| c.calls)
            > 0
    );
}

/// A shorter lookback stops fetches of weeks older than it keeps, though
/// they are maturing and due; weeks a backfill asks for are still fetched.
#[tokio::test]
async fn a_shorter_range_stops_older_weeks_but_not_a_backfill() {
    let db = TestDb::new().await;
    let start = beijing(2026, 11, 18, 11);
    let sim = simulator(start, |_| {}).await;
    let apps = apps(1);
    let weekly = "[collect]\nretention = [\"weekly\"]\n";
    let long = pipeline(config(
        &db,
        &sim,
        &apps,
        &format!("[schedule]\nlookback_weeks = 4\n{weekly}"),
    ))
    .await;
    once(&long, start).await;
    let short = pipeline(config(
        &db,
        &sim,
        &apps,
        &format!("[schedule]\nlookback_weeks = 1\n{weekly}"),
    ))
    .await;
    let (old_first, _) = kept_weeks(&long, start);
    let (kept_first, _) = kept_weeks(&short, start);
    let calls = |week: wxretain::domain::NaturalWeek| sim.calls_for(&apps[0], week);
    let before: Vec<u64> = (0..3).map(|i| calls(old_first.plus_weeks(i))).collect();

    // A week later every stored week has a new key due.
    let later = start + Duration::weeks(1);
    sim.clock().set(later);
    once(&short, later).await;
    let after: Vec<u64> = (0..3).map(|i| calls(old_first.plus_weeks(i))).collect();
    assert_eq!(
        after, before,
        "weeks before {kept_first} fetched after the range shrank"
    );

    // Asked for by a backfill, an old week is fetched.
    backfill(&short, old_first, old_first, later, true).await;
    assert_eq!(calls(old_first), before[0] + 1);
}

/// A replica of this host that died leaves leases that would keep its
/// periods for the lease's length; the daemon, idle between ticks, takes
/// them back at its next poll and fetches them within seconds.
#[tokio::test]
async fn an_idle_daemon_takes_back_a_dead_neighbours_periods_at_once() {
    let Some(space) = wxretain::replica::ReplicaId::current()
        .pid_space()
        .map(str::to_string)
    else {
        eprintln!("SKIPPED: an_idle_daemon_takes_back_a_dead_neighbours_periods_at_once: this kernel does not say which pid space this is");
        return;
    };
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let apps = apps(1);
    // No tick while the test runs, and leases far longer than the test.
    let extra = format!(
        "{FAST}[schedule]\ncron = \"0 0 0 1 1 *\"\nlookback_weeks = 2\nlease_secs = 3600\n[collect]\nretention = [\"weekly\"]\n"
    );
    let (_dir, path, env) = config_file(&apps, &extra);
    let mut daemon = run_command(&path, &env, &db.url, &sim.base_url(), free_port())
        .spawn()
        .expect("spawn wxretain run");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let stored = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM retention_ledger WHERE cardinality(keys) > 0",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0)
    };
    // The start-up pass fetches what is kept and published.
    let now = chrono::Utc::now();
    let last = wxretain::domain::NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING);
    let kept = published_weeks(2, now);
    let started = std::time::Instant::now();
    while stored(pool.clone()).await < kept {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "start-up pass"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Older weeks a backfill asked for, leased by a process of this host
    // that no longer runs (pids stop at 2^22), for an hour.
    let store = wxretain::store::Store::from_pool(pool.clone());
    let old = retention_range(last.plus_weeks(-7), last.plus_weeks(-4));
    store
        .enqueue(&apps, old, now, false)
        .await
        .expect("enqueue");
    sqlx::query(
        "UPDATE retention_ledger SET lease_owner = $1, lease_until = now() + interval '1 hour'
          WHERE period_start BETWEEN $2 AND $3",
    )
    .bind(format!("ghost:99999999:deadbeef:{space}"))
    .bind(old.first.start())
    .bind(old.last.start())
    .execute(&pool)
    .await
    .expect("leased by the dead");
    let started = std::time::Instant::now();
    while stored(pool.clone()).await < kept + 4 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the dead process's weeks wait for its lease"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    terminate(&mut daemon, std::time::Duration::from_secs(30)).await;
}

/// A newer release migrated the database under this process: its next pass
/// writes nothing, and says why.
#[tokio::test]
async fn a_schema_migrated_by_a_newer_release_is_not_written_to() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 18, 11);
    let sim = simulator(now, |_| {}).await;
    let apps = apps(2);
    let p = pipeline(config(&db, &sim, &apps, "[schedule]\nlookback_weeks = 2\n")).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000000, 'from the future', true, '\\x00', 1)",
    )
    .execute(p.store.pool())
    .await
    .expect("a newer migration");
    let opts = wxretain::pass::PassOptions {
        as_of: now,
        scope: p.kept_scope(now),
        plan: true,
    };
    let refused = wxretain::pass::run_pass(&p, &opts, &Default::default(), None).await;
    let error = format!("{:#}", refused.expect_err("a pass on a newer schema"));
    assert!(error.contains("newer"), "{error}");
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM weekly_retention) + (SELECT count(*) FROM retention_ledger)",
    )
    .fetch_one(p.store.pool())
    .await
    .expect("count");
    assert_eq!(written, 0, "nothing planned, fetched or stored");
    assert_eq!(sim.stats().total_data_calls, 0);
}

/// SIGTERM while the daemon waits at start-up for the migrations' lock
/// (another session holds it) ends the process, without waiting for the lock.
#[tokio::test]
async fn a_stop_during_the_start_up_migration_wait_is_honoured() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let apps = apps(1);
    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect");
    store.migrate().await.expect("migrated");
    // Another session holds the migrations table: reading it waits.
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut blocker)
        .await
        .expect("begin");
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .expect("lock");
    let (_dir, path, env) = config_file(&apps, "[schedule]\ndrain_timeout_secs = 2\n");
    let mut daemon = run_command(&path, &env, &db.url, &sim.base_url(), free_port())
        .spawn()
        .expect("spawn wxretain run");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let status = terminate(&mut daemon, std::time::Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    drop(blocker);
}

/// A database that accepts connections and says nothing does not hold a
/// one-shot command silent: it fails, naming the wait.
#[tokio::test]
async fn a_database_that_never_answers_ends_status_within_its_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let _accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let env: std::collections::HashMap<String, String> = [(
        "DATABASE_URL".to_string(),
        format!("postgres://postgres@127.0.0.1:{port}/wxretain"),
    )]
    .into();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("wxretain.toml");
    std::fs::write(&config, "").expect("config");
    let started = std::time::Instant::now();
    let mut command = wxretain_command(["--config", &config.display().to_string(), "status"], &env);
    command.env("RUST_LOG", "warn");
    let out = Output::of(command, std::time::Duration::from_secs(40), "status").await;
    out.expect_code(1, "status")
        .expect_stderr_has("did not answer within 10 s", "status");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// Sends `signal` (STOP, CONT...) to `child`.
fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// A process stopped longer than its lease (SIGSTOP, a frozen VM) finds its
/// periods taken by another replica when it resumes: it sends no call for
/// any of them.
#[tokio::test]
async fn a_process_stopped_past_its_lease_sends_nothing_when_it_resumes() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(300).await;
    let apps = apps(2);
    // The shortest lease these timeouts allow (16 s), few calls in flight,
    // each app two calls a second: the backfill holds claims it has not sent.
    let extra = "[wechat]\nconnect_timeout_secs = 1\nrequest_timeout_secs = 2\nretry_attempts = 1\n\
                 retry_min_delay_ms = 0\nmax_in_flight = 4\napp_rate_per_second = 2\n\
                 [schedule]\nlease_secs = 16\nlookback_weeks = 30\n[collect]\nretention = [\"weekly\"]\n";
    let (_dir, path, env) = config_file(&apps, extra);
    let now = chrono::Utc::now();
    let last = wxretain::domain::NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING);
    let (from, to) = (last.plus_weeks(-29).monday(), last.plus_weeks(-1).sunday());
    let args = [
        "--config".to_string(),
        path.display().to_string(),
        "backfill".into(),
        "--from".into(),
        from.to_string(),
        "--to".into(),
        to.to_string(),
    ];
    let mut first = wxretain_command(&args, &env);
    first
        .env("DATABASE_URL", &db.url)
        .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first = first.spawn().expect("spawn backfill");
    let started = std::time::Instant::now();
    while sim.stats().total_data_calls < 4 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the backfill calls"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    signal(&first, "STOP");
    // Its leases run out; another replica takes every period and finishes.
    tokio::time::sleep(std::time::Duration::from_secs(18)).await;
    let mut second = wxretain_command(&args, &env);
    second
        .env("DATABASE_URL", &db.url)
        .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
        .env("RUST_LOG", "warn");
    Output::of(
        second,
        std::time::Duration::from_secs(120),
        "second backfill",
    )
    .await
    .expect_code(0, "the second backfill stores everything");
    let calls = sim.stats().total_data_calls;
    signal(&first, "CONT");
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), first.wait())
        .await
        .expect("the resumed backfill ends")
        .expect("wait");
    assert_eq!(
        sim.stats().total_data_calls,
        calls,
        "the resumed process sent calls for periods another replica had taken ({status:?})"
    );
}

/// An answer holding NUL (which Postgres refuses), a newline and an ESC
/// sequence is stored, and archived with what it held escaped; it costs no
/// other app its periods.
#[tokio::test]
async fn an_answer_holding_nul_and_escapes_is_stored_and_costs_no_one_else() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 18, 11);
    let apps = apps(3);
    let hostile = apps[1].clone();
    let sim = simulator(now, |c| c.faults.hostile_text_apps = vec![hostile.clone()]).await;
    let extra = "[schedule]\nlookback_weeks = 4\n[collect]\nretention = [\"weekly\"]\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let (first, last) = kept_weeks(&p, now);
    let report = backfill(&p, first, last, now, false).await;
    assert_eq!(report.unsaved + report.failed, 0, "{report:?}");
    assert_eq!(table(&p.store).await, truth(&apps, first, last, now, 10));
    let (raw, note): (String, String) =
        sqlx::query_as("SELECT raw, body->>'note' FROM retention_answers WHERE appid = $1 LIMIT 1")
            .bind(hostile.as_str())
            .fetch_one(p.store.pool())
            .await
            .expect("archived");
    assert!(
        raw.contains("a\\u0000b"),
        "the raw text keeps the NUL, escaped: {raw}"
    );
    assert_eq!(note, "a\u{fffd}b\nFORGED LINE \u{1b}[31mred");
}

/// A write the database refuses for one app (a trigger raising "disk
/// full") fails that app's periods, with the reason and a backoff; the
/// other apps' periods of the same batch are stored, and a pass right after
/// does not ask the refused ones again.
#[tokio::test]
async fn a_write_the_database_refuses_fails_only_its_period_and_backs_off() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 18, 11);
    let sim = simulator(now, |_| {}).await;
    let apps = apps(3);
    let refused = apps[2].clone();
    let extra = "[schedule]\nlookback_weeks = 4\n[collect]\nretention = [\"weekly\"]\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON weekly_retention
         FOR EACH ROW WHEN (NEW.appid = '{refused}') EXECUTE FUNCTION refuse();"
    ))
    .execute(p.store.pool())
    .await
    .expect("trigger");
    let (first, last) = kept_weeks(&p, now);
    backfill(&p, first, last, now, false).await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT appid FROM weekly_retention ORDER BY 1")
            .fetch_all(p.store.pool())
            .await
            .expect("rows");
    assert_eq!(stored, [apps[0].to_string(), apps[1].to_string()]);
    let failing: Vec<(String, Option<String>, Option<String>, bool)> = sqlx::query_as(
        "SELECT state, last_error, last_error_class, next_due_at > $2 FROM retention_ledger
          WHERE appid = $1 AND cardinality(keys) = 0 AND last_attempt_at IS NOT NULL",
    )
    .bind(refused.as_str())
    .bind(now)
    .fetch_all(p.store.pool())
    .await
    .expect("ledger");
    assert!(!failing.is_empty());
    for (state, error, class, later) in &failing {
        assert_eq!(state, "failing");
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("could not extend file")),
            "{error:?}"
        );
        assert_eq!(class.as_deref(), Some("store"));
        assert!(later, "backs off instead of staying due");
    }
    // Asked again at once, nothing is due: no spinning on the refused periods.
    let calls = sim.stats().total_data_calls;
    once(&p, now + Duration::seconds(10)).await;
    assert_eq!(sim.stats().total_data_calls, calls);
}

/// An errmsg holding NUL, a newline and an ESC sequence reaches the ledger,
/// `status` and the log as one printable line: no forged log line, no
/// terminal escape, no NUL for Postgres to refuse.
#[tokio::test]
async fn an_errmsg_with_nul_newlines_and_escapes_is_one_printable_line() {
    let db = TestDb::new().await;
    let now = chrono::Utc::now();
    let sim = simulator(now, |c| {
        c.clock = wxretain::simulator::SimClock::real();
        c.faults.app_errors = vec![(wxretain::simulator::sim_appid(1), 48001)];
        c.faults.errmsg_suffix = Some("\u{0}\nFORGED ERROR wxretain: all good \u{1b}[2J".into());
    })
    .await;
    let apps = apps(1);
    let (_dir, path, env) = config_file(
        &apps,
        "[schedule]\nlookback_weeks = 1\n[collect]\nretention = [\"weekly\"]\n",
    );
    let out = wxretain_with_config(&path, &env, &db.url, &sim, &["once"]).await;
    out.expect_code(1, "once with a broken app");
    assert!(out.stderr.contains("48001"), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "an ESC reached the log:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("FORGED")),
        "a forged log line:\n{}",
        out.stderr
    );
    let error: String = sqlx::query_scalar(
        "SELECT last_error FROM retention_ledger WHERE last_error IS NOT NULL LIMIT 1",
    )
    .fetch_one(&sqlx::PgPool::connect(&db.url).await.expect("pool"))
    .await
    .expect("recorded");
    assert!(
        !error.contains('\0') && !error.contains('\n') && !error.contains('\u{1b}'),
        "{error:?}"
    );
    let status = wxretain_with_config(&path, &env, &db.url, &sim, &["status"]).await;
    assert!(
        !status.stdout.contains('\u{1b}') && !status.stdout.contains("\nFORGED"),
        "{}",
        status.stdout
    );
}

/// An app name that would forge lines in logs, `status` and `report` is a
/// config error naming the key.
#[tokio::test]
async fn an_app_name_with_control_characters_is_refused() {
    let db = TestDb::new().await;
    let sim = simulator(beijing(2026, 11, 18, 11), |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wxretain.toml");
    std::fs::write(
        &path,
        "[[apps]]\nappid = \"wx51a0000000000001\"\nname = \"ok\\nFORGED \\u001b[31m\"\nsecret_env = \"S\"\n",
    )
    .expect("config");
    let env: std::collections::HashMap<String, String> =
        [("S".to_string(), "s".to_string())].into();
    wxretain_with_config(&path, &env, &db.url, &sim, &["status"])
        .await
        .expect_code(2, "a name with a newline")
        .expect_stderr_has("apps[0].name", "names the key");
}

/// A backfill beside a running daemon that is fetching the same range waits
/// for it instead of calling those periods failures: exit 0, all stored.
#[tokio::test]
async fn a_backfill_beside_a_busy_daemon_waits_for_it_and_exits_0() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(200).await;
    let apps = apps(3);
    let extra = "[wechat]\napp_rate_per_second = 3\nmax_in_flight = 3\n\
                 [schedule]\ncron = \"0 0 0 1 1 *\"\nlookback_weeks = 12\n[collect]\nretention = [\"weekly\"]\n";
    let (_dir, path, env) = config_file(&apps, extra);
    let mut daemon = run_command(&path, &env, &db.url, &sim.base_url(), free_port())
        .spawn()
        .expect("spawn wxretain run");
    // The daemon's start-up pass is under way.
    let started = std::time::Instant::now();
    while sim.stats().total_data_calls < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the daemon calls"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let now = chrono::Utc::now();
    let last = wxretain::domain::NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING);
    let (from, to) = (
        last.plus_weeks(-11).monday().to_string(),
        last.sunday().to_string(),
    );
    let out = wxretain_with_config(
        &path,
        &env,
        &db.url,
        &sim,
        &["backfill", "--from", &from, "--to", &to],
    )
    .await;
    out.expect_code(0, "backfill beside the daemon");
    terminate(&mut daemon, std::time::Duration::from_secs(30)).await;
}

/// Asked for a grain no selected app collects, backfill says so (exit 2);
/// with some apps that do, it names the others as skipped.
#[tokio::test]
async fn a_backfill_of_a_grain_not_collected_says_so() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 18, 11);
    let sim = simulator(now, |_| {}).await;
    let apps = apps(2);
    let weekly = "[collect]\nretention = [\"weekly\"]\n";
    let (_dir, path, env) = config_file(&apps, weekly);
    let args = [
        "backfill",
        "--retention",
        "daily",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-08",
    ];
    wxretain_with_config(&path, &env, &db.url, &sim, &args)
        .await
        .expect_code(2, "no app collects daily")
        .expect_stderr_has(
            "no selected app collects retention daily",
            "names the stream",
        );
    let mixed = "[collect]\nretention = [\"weekly\"]\n[[apps]]\nappid = \"wx51a0000000000009\"\nsecret_env = \"S9\"\nretention = [\"daily\"]\n";
    let (_dir, path, mut env) = config_file(&apps, mixed);
    env.insert("S9".into(), "s9".into());
    let out = wxretain_with_config(&path, &env, &db.url, &sim, &args).await;
    assert!(
        out.stdout
            .contains(&format!("{}: does not collect retention daily", apps[0])),
        "{}",
        out.stdout
    );
}

/// `report` says what each gap is: a week whose answer was refused is not
/// "not published by WeChat yet".
#[tokio::test]
async fn report_names_a_refused_week_as_refused_not_as_unpublished() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 18, 11);
    let sim = simulator(now, |_| {}).await;
    let apps = apps(1);
    let extra = "[schedule]\nlookback_weeks = 8\n[collect]\nretention = [\"weekly\"]\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let (first, last) = kept_weeks(&p, now);
    // Weeks stored on both sides of four whose answers are refused.
    backfill(&p, first, first.plus_weeks(1), now, false).await;
    backfill(&p, first.plus_weeks(6), last, now, false).await;
    let mut faults = sim.faults_now();
    faults.wrong_ref_date_rate = 1.0;
    sim.set_faults(faults);
    backfill(&p, first.plus_weeks(2), first.plus_weeks(5), now, false).await;
    let (_dir, path, env) = config_file(&apps, extra);
    let out = wxretain_with_config(
        &path,
        &env,
        &db.url,
        &sim,
        &["report", "--app", apps[0].as_str(), "--weeks", "8"],
    )
    .await;
    out.expect_code(0, "report");
    let refused: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("WeChat's answer was refused"))
        .collect();
    assert_eq!(refused.len(), 4, "{}", out.stdout);
}
