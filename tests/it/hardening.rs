//! Faults nobody listed: leases that run out while a claim waits, replicas
//! that share a hostname and a PID, clocks ahead of the truth, a database
//! migrated by a newer release, answers that cannot be true.

use crate::common;

use chrono::Utc;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use wxretain::simulator::{Faults, SimulatorHandle};

/// `wxretain once` against `db` and `sim`, output captured.
fn once_command(
    config: &Path,
    env: &HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
) -> tokio::process::Command {
    once_via(None, config, env, db, sim)
}

/// The same, as PID 1 of a PID namespace of its own, as in a container.
fn once_in_own_pid_namespace(
    config: &Path,
    env: &HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
) -> tokio::process::Command {
    once_via(
        Some(&["unshare", "--pid", "--fork", "--mount-proc"]),
        config,
        env,
        db,
        sim,
    )
}

/// `wxretain once ...`, run by `wrapper` (a program and its arguments) if given.
fn once_via(
    wrapper: Option<&[&str]>,
    config: &Path,
    env: &HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
) -> tokio::process::Command {
    let binary = env!("CARGO_BIN_EXE_wxretain");
    let mut command = match wrapper {
        Some([program, args @ ..]) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(binary);
            c
        }
        _ => tokio::process::Command::new(binary),
    };
    command
        .args(["once", "--config"])
        .arg(config)
        .envs(env)
        .env("DATABASE_URL", &db.url)
        .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Both `once` runs exited 0 (else their stderr says why).
fn both_succeeded(first: &std::process::Output, second: &std::process::Output) {
    for (name, out) in [("first", first), ("second", second)] {
        assert!(
            out.status.success(),
            "{name} once: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Periods the simulator was asked for more than once.
fn fetched_twice(sim: &SimulatorHandle) -> Vec<String> {
    sim.stats()
        .per_period
        .iter()
        .filter(|(_, c)| c.calls > 1)
        .map(|((appid, week), c)| format!("{appid} {week}: {} calls", c.calls))
        .collect()
}

/// A claim waits behind the app's rate limit far longer than the lease (which
/// the config accepts: it covers one fetch); a second replica that starts
/// after the lease would have ended finds nothing to take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_waits_longer_than_its_lease_is_not_fetched_twice() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let apps = apps(1);
    let extra = "[wechat]\nconnect_timeout_secs = 1\nrequest_timeout_secs = 1\nretry_attempts = 1\n\
                 retry_min_delay_ms = 5\nmax_in_flight = 16\nrate_per_second = 1000\napp_rate_per_second = 2\n\
                 [schedule]\nlookback_weeks = 30\nlease_secs = 11\n[collect]\nretention = [\"weekly\"]\n";
    let (_dir, path, env) = config_file(&apps, extra);
    let first = once_command(&path, &env, &db, &sim)
        .env("HOSTNAME", "replica-a")
        .spawn()
        .expect("spawn first");
    // 30 weeks at 2 a second: the first replica needs ~15 s; its later
    // claims have waited past their 11 s lease when the second one starts.
    // (The lease is real time on the database's clock, and 11 s is the
    // shortest the config takes with 1 s timeouts; the wait counts from the
    // first claim, so a slow start-up cannot cut it short.)
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM retention_ledger WHERE lease_owner LIKE 'replica-a:%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first never claimed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(13)).await;
    let second = once_command(&path, &env, &db, &sim)
        .env("HOSTNAME", "replica-b")
        .output()
        .await
        .expect("second once");
    let first = first.wait_with_output().await.expect("first once");
    both_succeeded(&first, &second);
    assert_eq!(
        sim.stats().per_week.len() as i64,
        published_weeks(30, Utc::now())
    );
    assert_eq!(fetched_twice(&sim), Vec::<String>::new());
}

/// Two processes that are both PID 1 on a host of the same name (containers
/// with host networking, a fixed `hostname:`) must not take each other's
/// live leases for a dead process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_share_a_hostname_and_a_pid_do_not_free_each_others_leases() {
    if !require_root("unshare --pid makes each replica PID 1") || !require_tool("unshare") {
        return;
    }
    let db = TestDb::new().await;
    let sim = real_time_simulator(300).await;
    let apps = apps(4);
    let extra =
        format!("{FAST}[schedule]\nlookback_weeks = 6\n[collect]\nretention = [\"weekly\"]\n");
    let extra = extra.replace("max_in_flight = 8", "max_in_flight = 4");
    let (_dir, path, env) = config_file(&apps, &extra);
    let first = once_in_own_pid_namespace(&path, &env, &db, &sim)
        .env("HOSTNAME", "shared-host")
        .spawn()
        .expect("spawn first (is `unshare` available, and are we root?)");
    // Let the first one claim and start fetching.
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM retention_ledger WHERE lease_owner IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        if held > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first never claimed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = once_in_own_pid_namespace(&path, &env, &db, &sim)
        .env("HOSTNAME", "shared-host")
        .output()
        .await
        .expect("second once");
    let first = first.wait_with_output().await.expect("first once");
    both_succeeded(&first, &second);
    assert_eq!(
        sim.stats().per_week.len() as i64,
        4 * published_weeks(6, Utc::now())
    );
    assert_eq!(fetched_twice(&sim), Vec::<String>::new());
}

// ---- clocks ------------------------------------------------------------------

/// `once --as-of` eight weeks ahead of the database's clock is refused: it
/// plans nothing, claims nothing, and says why with a non-zero exit.
#[tokio::test]
async fn once_as_of_a_time_the_database_has_not_reached_is_refused() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let apps = apps(2);
    let (_dir, path, env) = config_file(&apps, FAST);
    let ahead = (Utc::now() + chrono::Duration::weeks(8)).to_rfc3339();
    let out = once_command(&path, &env, &db, &sim)
        .args(["--as-of", &ahead])
        .output()
        .await
        .expect("once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--as-of") && stderr.contains("database's clock"),
        "{stderr}"
    );
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let planned: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_ledger")
        .fetch_one(&pool)
        .await
        .expect("ledger");
    assert_eq!(planned, 0, "a refused pass plans nothing");
    assert_eq!(sim.stats().total_data_calls, 0);
}

/// A host whose clock is ten minutes ahead of the database's (an NTP step, a
/// restored snapshot): passes do nothing and say why, and /readyz says 503.
#[tokio::test]
async fn a_host_clock_off_by_more_than_max_clock_skew_plans_and_claims_nothing() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let apps = apps(2);
    let mut p = pipeline(config(&db, &sim, &apps, FAST)).await;
    p.clock = wxretain::clock::HostClock::offset_by(chrono::Duration::minutes(10));
    let as_of = p.clock.now();
    let refused = wxretain::pass::run_pass(
        &p,
        &wxretain::pass::PassOptions {
            as_of,
            scope: p.all_apps(),
            plan: true,
        },
        &Default::default(),
        None,
    )
    .await
    .expect_err("a skewed clock is refused");
    let text = format!("{refused:#}");
    assert!(
        text.contains("ahead of the database's") && text.contains("max_clock_skew"),
        "{text}"
    );
    let planned: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_ledger")
        .fetch_one(p.store.pool())
        .await
        .expect("ledger");
    assert_eq!(planned, 0);
    assert_eq!(sim.stats().total_data_calls, 0);

    // /readyz says so.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let addr = wxretain::server::serve(
        ([127, 0, 0, 1], 0).into(),
        readiness(&p),
        handle,
        shutdown.clone(),
    )
    .await
    .expect("serve");
    let answer = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("/readyz");
    assert_eq!(answer.status(), 503);
    let body = answer.text().await.expect("body");
    assert!(body.contains("clock"), "{body}");

    // Within the limit, the same pass works.
    p.clock = wxretain::clock::HostClock::offset_by(chrono::Duration::minutes(4));
    let report = once(&p, Utc::now()).await;
    assert!(report.stored > 0, "{report:?}");
    shutdown.cancel();
}

/// One pass acting long after a week's deadline, against a WeChat that has
/// only keys 0 and 1 of it, must not make it final: the next pass, when
/// WeChat has every key, stores them all.
#[tokio::test]
async fn one_pass_past_the_deadline_does_not_make_a_week_final() {
    let db = TestDb::new().await;
    let week = wxretain::domain::NaturalWeek::parse_monday("20260601").expect("a Monday");
    let wechat_now = beijing(2026, 6, 20, 12); // keys 0 and 1 are out
    let sim = simulator(wechat_now, |_| {}).await;
    let apps = apps(1);
    let extra = format!("{FAST}[schedule]\nstart_week = \"{week}\"\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let late = beijing(2026, 8, 20, 12); // five weeks past the deadline
    p.store
        .enqueue(&apps, retention_range(week, week), late, false)
        .await
        .expect("enqueue");
    let report = pass_over(&p, week, week, late).await;
    assert_eq!(report.stored, 1, "{report:?}");
    let rows = ledger_weeks(&p.store, &apps, week, week).await;
    assert_eq!(rows[0].state, "maturing", "{:?}", rows[0]);

    sim.clock().set(late);
    let next = late + chrono::Duration::days(1);
    let report = pass_over(&p, week, week, next).await;
    assert_eq!(report.stored, 1, "{report:?}");
    assert_eq!(table(&p.store).await, truth(&apps, week, week, late, 10));
    let rows = ledger_weeks(&p.store, &apps, week, week).await;
    assert_eq!(rows[0].state, "complete", "{:?}", rows[0]);
}

// ---- a database migrated by a newer release ---------------------------------

/// A rollback onto a database a newer release migrated: `once` refuses with
/// a message that says so, and the daemon stays up but not ready, saying why
/// in /readyz and in its log (not "waiting for the database").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_release_is_named_as_such() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(0).await;
    let apps = apps(1);
    pipeline(config(&db, &sim, &apps, FAST)).await; // migrated by this release
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (29991231000000, 'from a newer release', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .expect("a newer release's migration");

    let (_dir, path, env) = config_file(&apps, FAST);
    let out = once_command(&path, &env, &db, &sim)
        .output()
        .await
        .expect("once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("migrated by a newer wxretain"), "{stderr}");

    let port = free_port();
    let mut daemon = run_command(&path, &env, &db.url, &sim.base_url(), port)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn run");
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        if let Ok(answer) = reqwest::get(&url).await {
            break (answer.status(), answer.text().await.unwrap_or_default());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("newer wxretain"), "{body}");
    // Give start-up a moment to log its verdict, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exit = terminate(&mut daemon, Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit:?}");
    let mut log = String::new();
    if let Some(mut err) = daemon.stderr.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut err, &mut log)
            .await
            .expect("log");
    }
    assert!(
        log.contains("schema is not one this release can use") && log.contains("newer"),
        "{log}"
    );
    assert!(!log.contains("cannot reach the database"), "{log}");
    assert_eq!(sim.stats().total_data_calls, 0);
}

// ---- answers that cannot be true --------------------------------------------

/// An impossible answer (more new users than active ones) is never written on
/// first sight; when WeChat's second answer is the true one, that is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_answer_not_repeated_is_never_stored() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 10, 12);
    let sim = simulator(now, |c| c.faults.implausible_rate = 1.0).await;
    let apps = apps(1);
    let extra = format!("{FAST}suspect_recheck_ms = 1500\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let week = wxretain::domain::NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING)
        .plus_weeks(-2);
    // WeChat's glitch is over by the time the week is asked again: it ends
    // once the first (impossible) answer is out, not at a set time, which a
    // slow first call could outlast.
    let healed = {
        let (sim, appid) = (sim.clone(), apps[0].clone());
        async move {
            let answered = |sim: &SimulatorHandle| {
                sim.stats()
                    .per_week
                    .get(&(appid.clone(), week))
                    .is_some_and(|c| c.ok > 0)
            };
            while !answered(&sim) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sim.set_faults(Faults::default());
        }
    };
    let (report, ()) = tokio::join!(backfill(&p, week, week, now, false), healed);
    assert_eq!((report.stored, report.rejected), (1, 0), "{report:?}");
    assert_eq!(table(&p.store).await, truth(&apps, week, week, now, 10));
    let suspect: bool = sqlx::query_scalar("SELECT suspect FROM retention_ledger")
        .fetch_one(p.store.pool())
        .await
        .expect("ledger");
    assert!(!suspect);
    assert_eq!(sim.calls_for(&apps[0], week), 2, "asked again once");
}

/// An app whose every answer is impossible, identically: WeChat's word is
/// stored as given (mirrored, not censored) after it said it twice, and
/// flagged for dashboards and `status`; the archive keeps the bytes.
#[tokio::test]
async fn an_impossible_answer_repeated_exactly_is_stored_and_flagged() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 10, 12);
    let apps = apps(2);
    let odd = apps[0].clone();
    let sim = simulator(now, |c| c.faults.implausible_apps = vec![odd.clone()]).await;
    let extra = format!("{FAST}suspect_recheck_ms = 10\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let last = wxretain::domain::NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING);
    let first = last.plus_weeks(-3);
    let report = backfill(&p, first, last, now, false).await;
    assert_eq!((report.stored, report.rejected), (8, 0), "{report:?}");

    // The table holds what WeChat said: the truth, but key 0 of new users one
    // above active users for the odd app.
    let mut expected = truth(&apps, first, last, now, 10);
    for row in expected.iter_mut() {
        if row.0 == odd.as_str() && row.2 == "visit_uv_new" && row.3 == 0 {
            let active = truth(&apps, first, last, now, 10)
                .into_iter()
                .find(|r| r.0 == row.0 && r.1 == row.1 && r.2 == "visit_uv" && r.3 == 0)
                .expect("active key 0");
            row.4 = active.4 + 1;
        }
    }
    expected.sort();
    assert_eq!(table(&p.store).await, expected);
    for week in wxretain::domain::NaturalWeek::range(first, last) {
        assert_eq!(sim.calls_for(&odd, week), 2, "{week}: asked twice");
        assert_eq!(
            sim.calls_for(&apps[1], week),
            1,
            "{week}: plausible, asked once"
        );
    }

    let flagged: Vec<(String, i64)> =
        sqlx::query_as("SELECT appid, suspect_weeks FROM retention_fetch_health ORDER BY appid")
            .fetch_all(p.store.pool())
            .await
            .expect("health view");
    assert_eq!(
        flagged,
        vec![(odd.to_string(), 4), (apps[1].to_string(), 0)]
    );
    let statuses = p
        .store
        .app_status(
            &apps,
            wxretain::dataset::DatasetId::Retention,
            first.into(),
            last.into(),
        )
        .await
        .expect("status");
    assert_eq!(statuses[0].suspect, 4);
    assert_eq!(statuses[1].suspect, 0);
    let archived: Vec<(bool, Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT suspect, raw, body FROM retention_answers WHERE appid = $1 ORDER BY period_start",
    )
    .bind(odd.as_str())
    .fetch_all(p.store.pool())
    .await
    .expect("archive");
    assert_eq!(archived.len(), 4);
    for (suspect, raw, body) in archived {
        assert!(suspect);
        let raw = raw.expect("the bytes as received");
        // The simulator writes compact JSON with sorted keys, as serde_json does.
        assert_eq!(raw, body.to_string());
    }
}

/// An empty answer for a week that has keys (WeChat has lost them, for now)
/// takes nothing away: the rows and the ledger's keys stay, and the week
/// stays maturing rather than "not ready".
#[tokio::test]
async fn an_empty_answer_does_not_erase_the_keys_the_ledger_recorded() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 10, 12);
    let sim = simulator(now, |_| {}).await;
    let apps = apps(1);
    let p = pipeline(config(&db, &sim, &apps, FAST)).await;
    let week = wxretain::domain::NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING)
        .plus_weeks(-2); // keys 0..2 are out
    backfill(&p, week, week, now, false).await;
    let before = table(&p.store).await;
    assert_eq!(before.len(), 6);

    sim.set_faults(Faults {
        empty_answer_rate: 1.0,
        ..Faults::default()
    });
    let report = backfill(&p, week, week, now, true).await;
    assert_eq!(report.stored, 1, "{report:?}");
    assert_eq!(table(&p.store).await, before);
    let (state, keys): (String, Vec<i16>) =
        sqlx::query_as("SELECT state, keys FROM retention_ledger")
            .fetch_one(p.store.pool())
            .await
            .expect("ledger");
    assert_eq!((state.as_str(), keys), ("maturing", vec![0, 1, 2]));
}

// ---- refusals stop the calls ---------------------------------------------------

/// WeChat's per-minute quota refuses an app: the calls that were waiting
/// behind the app's rate limit are not sent (issue: "refusals must stop the
/// calls"); the weeks wait for the next minute.
#[tokio::test]
async fn a_quota_refusal_holds_back_the_calls_waiting_behind_it() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 10, 12);
    let sim = simulator(now, |c| c.faults.minute_quota = Some(2)).await;
    let apps = apps(1);
    let extra = "[wechat]\nretry_min_delay_ms = 5\nmax_in_flight = 8\nrate_per_second = 1000\n\
                 app_rate_per_second = 5\n[collect]\nretention = [\"weekly\"]\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let last = wxretain::domain::NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING);
    let report = backfill(&p, last.plus_weeks(-11), last, now, false).await;
    let stats = sim.stats();
    let refused = stats.total_data_calls - stats.ok_answers;
    assert_eq!(stats.ok_answers, 2, "{report:?}");
    assert!(
        refused <= 3,
        "{refused} calls refused with 45011: {report:?}"
    );
    assert_eq!(
        report.stored + report.failed + report.deferred,
        12,
        "{report:?}"
    );
}

/// An app WeChat refuses for its setup (48001) is called at most twice in a
/// pass, however many of its weeks are due.
#[tokio::test]
async fn an_app_refused_for_its_setup_is_called_at_most_twice_in_a_pass() {
    let db = TestDb::new().await;
    let now = beijing(2026, 11, 10, 12);
    let apps = apps(1);
    let sim = simulator(now, |c| {
        c.faults.app_errors = vec![(apps[0].clone(), 48001)]
    })
    .await;
    let extra = "[wechat]\nretry_min_delay_ms = 5\nmax_in_flight = 8\nrate_per_second = 1000\n\
                 app_rate_per_second = 5\n[collect]\nretention = [\"weekly\"]\n";
    let p = pipeline(config(&db, &sim, &apps, extra)).await;
    let last = wxretain::domain::NaturalWeek::last_completed_at(now, wxretain::domain::BEIJING);
    let report = backfill(&p, last.plus_weeks(-11), last, now, false).await;
    let calls = sim.stats().total_data_calls;
    assert!(calls <= 2, "{calls} calls to a 48001 app: {report:?}");
    assert_eq!(report.failed + report.deferred, 12, "{report:?}");
}
