//! Several `wxretain run` on one host with one config file: each gets its
//! own listener from `--listen` or `WXRETAIN_LISTEN` (or none with
//! `--listen off`), a copy whose address is taken says how to fix it, and
//! the copies share the work without asking WeChat twice.

use crate::common;

use chrono::Utc;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use wxretain::domain::Grain;
use wxretain::simulator::SimulatorHandle;

/// `wxretain run --config CONFIG ARGS...`, with no `--listen` unless given.
fn run(
    config: &Path,
    env: &HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
    args: &[&str],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxretain"));
    command
        .arg("--config")
        .arg(config)
        .arg("run")
        .args(args)
        .env_remove("WXRETAIN_LISTEN")
        .envs(env)
        .env("DATABASE_URL", &db.url)
        .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("http://127.0.0.1:{port}/readyz"))
        .await
        .map(|r| r.0)
        != Some(200)
    {
        assert!(Instant::now() < deadline, "port {port}: never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_with_one_config_on_one_host_each_serve_their_port_and_share_the_work() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(20).await;
    let apps = apps(40);
    let (configured, other) = (free_port(), free_port());
    let extra = format!(
        "[wechat]\nretry_min_delay_ms = 5\nmax_in_flight = 4\n\
         [schedule]\nlookback_weeks = 2\n[server]\nlisten = \"127.0.0.1:{configured}\"\n"
    );
    let (_dir, path, env) = config_file(&apps, &extra);

    // The first copy takes [server] listen; the second is told another
    // address through the environment, as a systemd template unit would.
    let mut first = run(&path, &env, &db, &sim, &[]).spawn().expect("spawn");
    wait_ready(configured).await;
    let mut second = run(&path, &env, &db, &sim, &[])
        .env("WXRETAIN_LISTEN", format!("127.0.0.1:{other}"))
        .spawn()
        .expect("spawn");
    wait_ready(other).await;

    // A third with nothing of its own is refused, naming the way out.
    let third = run(&path, &env, &db, &sim, &[])
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .expect("third copy runs");
    let said = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(1), "{said}");
    let address = format!("127.0.0.1:{configured}");
    for needle in [
        address.as_str(),
        "[server] listen",
        "--listen ADDR",
        "WXRETAIN_LISTEN",
        "--listen off",
    ] {
        assert!(said.contains(needle), "{needle:?} in: {said}");
    }

    // Every period of every grain, fetched once between the two.
    // (Planned: every kept period; fetched: those already published.)
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let per_app: i64 = Grain::ALL
        .iter()
        .map(|&g| {
            let (first, last) = p.kept_periods(g, Utc::now());
            first.periods_until(last) + 1
        })
        .sum();
    let periods = per_app * apps.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(90);
    let settled = "SELECT count(*) FROM retention_ledger
                    WHERE next_due_at > now() OR (next_due_at IS NULL AND lease_owner IS NULL)";
    loop {
        let n: i64 = sqlx::query_scalar(settled)
            .fetch_one(p.store.pool())
            .await
            .expect("count");
        if n == periods {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {periods} periods settled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fetchable = fetchable_periods_all_grains(&p, Utc::now()) * apps.len() as i64;
    let (a, b) = (fetches_on(configured).await, fetches_on(other).await);
    assert!(a > 0 && b > 0, "the work was not shared: {a} and {b}");
    assert_eq!(a + b, fetchable as u64);
    let repeated: Vec<_> = sim
        .stats()
        .per_period
        .into_iter()
        .filter(|(_, c)| c.calls != 1)
        .collect();
    assert!(repeated.is_empty(), "asked twice: {repeated:?}");

    // A copy without a listener runs beside them, and stops cleanly.
    let mut quiet = run(&path, &env, &db, &sim, &["--listen", "off"])
        .spawn()
        .expect("spawn");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        quiet.try_wait().expect("try_wait").is_none(),
        "--listen off exited"
    );
    for child in [&mut quiet, &mut second, &mut first] {
        let status = terminate(child, Duration::from_secs(15)).await;
        assert!(status.success(), "exit status {status:?}");
    }
}
