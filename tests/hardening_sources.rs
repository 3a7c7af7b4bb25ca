//! Where tokens come from, attacked: tokens that expire while calls wait
//! their turn, lease holders hidden by `/proc`, token commands and files
//! that never end, flood memory or see what they should not.

mod common;

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
            .enqueue(&apps, first, last, now, false)
            .await
            .expect("enqueue");
    }
    let scope = Scope {
        apps: apps.clone(),
        ranges: ranges.clone(),
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
                "INSERT INTO retention_ledger (appid, grain, period_start, next_due_at, lease_owner, lease_until)
                 VALUES ($1, 'weekly', $2, now() - interval '1 minute', $3, now() + interval '1 hour')",
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
        .args(["--mount", "--fork", "sh", "-c", script, "sh"])
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
