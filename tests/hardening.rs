//! Faults nobody listed: leases that run out while a claim waits, replicas
//! that share a hostname and a PID, clocks ahead of the truth, a database
//! migrated by a newer release, answers that cannot be true.

mod common;

use chrono::Utc;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use wxretain::simulator::{Faults, SimClock, SimulatorHandle};

/// `wxretain once` against `db` and `sim`, output captured.
fn once_command(
    config: &Path,
    env: &HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxretain"));
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

/// The same, as PID 1 of a PID namespace of its own, as in a container.
fn once_in_own_pid_namespace(
    config: &Path,
    env: &HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_wxretain"))
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

/// Weeks the simulator was asked for more than once.
fn fetched_twice(sim: &SimulatorHandle) -> Vec<String> {
    sim.stats()
        .per_week
        .iter()
        .filter(|(_, c)| c.calls > 1)
        .map(|((appid, week), c)| format!("{appid} {week}: {} calls", c.calls))
        .collect()
}

async fn real_time_simulator(latency_ms: u64) -> SimulatorHandle {
    simulator(Utc::now(), |c| {
        c.clock = SimClock::real();
        c.faults = Faults {
            latency_ms,
            ..Faults::default()
        };
    })
    .await
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
                 [schedule]\nlookback_weeks = 24\nlease_secs = 9\n";
    let (_dir, path, env) = config_file(&apps, extra);
    let first = once_command(&path, &env, &db, &sim)
        .env("HOSTNAME", "replica-a")
        .spawn()
        .expect("spawn first");
    // 24 weeks at 2 a second: the first replica needs ~12 s; its later
    // claims have waited past their 9 s lease when the second one starts.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let second = once_command(&path, &env, &db, &sim)
        .env("HOSTNAME", "replica-b")
        .output()
        .await
        .expect("second once");
    let first = first.wait_with_output().await.expect("first once");
    for (name, out) in [("first", &first), ("second", &second)] {
        assert!(
            out.status.success(),
            "{name} once: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(sim.stats().per_week.len(), 24);
    assert_eq!(fetched_twice(&sim), Vec::<String>::new());
}

/// Two processes that are both PID 1 on a host of the same name (containers
/// with host networking, a fixed `hostname:`) must not take each other's
/// live leases for a dead process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_share_a_hostname_and_a_pid_do_not_free_each_others_leases() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(300).await;
    let apps = apps(4);
    let extra = format!("{FAST}[schedule]\nlookback_weeks = 6\n");
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
    for (name, out) in [("first", &first), ("second", &second)] {
        assert!(
            out.status.success(),
            "{name} once: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(sim.stats().per_week.len(), 24);
    assert_eq!(fetched_twice(&sim), Vec::<String>::new());
}
