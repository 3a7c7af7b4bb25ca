//! Several `wxretain run` processes on one database: they share the work,
//! never fetch a week twice at once, and finish the weeks of one that dies.

use crate::common;

use chrono::{DateTime, NaiveDate, Utc};
use common::*;
use std::time::{Duration, Instant};
use tokio::process::Child;
use wxretain::domain::{Grain, NaturalWeek};
use wxretain::simulator::SimulatorHandle;

/// One `wxretain run` process, named by `HOSTNAME`.
struct Replica {
    host: String,
    port: u16,
    child: Child,
}

impl Replica {
    fn start(
        host: &str,
        config: &std::path::Path,
        env: &std::collections::HashMap<String, String>,
        db: &TestDb,
        sim: &SimulatorHandle,
    ) -> Self {
        let port = free_port();
        let child = run_command(config, env, &db.url, &sim.base_url(), port)
            .env("HOSTNAME", host)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("spawn wxretain run");
        Self::named(host, port, child)
    }

    /// As if on another machine: PID 1 of a PID namespace of its own, whose
    /// death the others cannot see, so its weeks come back only when its
    /// lease ends. Killing it (`unshare`) kills the replica with it.
    fn start_elsewhere(
        host: &str,
        config: &std::path::Path,
        env: &std::collections::HashMap<String, String>,
        db: &TestDb,
        sim: &SimulatorHandle,
    ) -> Self {
        let port = free_port();
        let plain = run_command(config, env, &db.url, &sim.base_url(), port);
        let plain = plain.as_std();
        let mut command = tokio::process::Command::new("unshare");
        command
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(plain.get_program())
            .args(plain.get_args())
            .envs(env)
            .env("DATABASE_URL", &db.url)
            .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
            .env("HOSTNAME", host)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let child = command.spawn().expect("spawn unshare … wxretain run");
        Self::named(host, port, child)
    }

    fn named(host: &str, port: u16, child: Child) -> Self {
        Self {
            host: host.to_string(),
            port,
            child,
        }
    }

    /// Weeks this replica fetched, from its /metrics.
    async fn fetches(&self) -> u64 {
        fetches_on(self.port).await
    }

    async fn stop(mut self) {
        let status = terminate(&mut self.child, Duration::from_secs(15)).await;
        assert!(status.success(), "{}: exit status {status:?}", self.host);
    }
}

/// Waits until every period a pass can fetch has been stored or answered,
/// with nothing due now and no lease held, and `expected(now)` of them (the
/// periods planned but not published yet are left out: see
/// [`fetchable_periods`]). Returns how many there are.
async fn wait_until_settled(
    db: &TestDb,
    expected: impl Fn(DateTime<Utc>) -> i64,
    within: Duration,
) -> i64 {
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let deadline = Instant::now() + within;
    loop {
        let (handled, open): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE NOT waiting),
                    count(*) FILTER (WHERE NOT waiting
                                       AND (next_due_at <= now() OR lease_owner IS NOT NULL
                                            OR state IN ('missing', 'failing')))
               FROM (SELECT *, state = 'missing' AND lease_owner IS NULL AND next_due_at > now()
                               AS waiting
                       FROM retention_ledger) l",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or((0, -1));
        let expected = expected(Utc::now());
        if handled == expected && open == 0 {
            return handled;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {handled} of {expected} periods fetched or answered, {open} still open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_a_backfill_and_fetch_every_week_exactly_once() {
    let db = TestDb::new().await;
    let sim = real_time_simulator(20).await;
    let apps = apps(100);
    let weeks = 8;
    let extra = format!("{FAST}[schedule]\nlookback_weeks = {weeks}\n");
    let (_dir, path, env) = config_file(&apps, &extra);
    // Every grain: the days from the oldest week's Monday, the weeks, the months.
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;

    let replicas: Vec<Replica> = ["replica-a", "replica-b", "replica-c"]
        .iter()
        .map(|host| Replica::start(host, &path, &env, &db, &sim))
        .collect();
    let periods = wait_until_settled(
        &db,
        |now| 100 * fetchable_periods_all_grains(&p, now),
        Duration::from_secs(90),
    )
    .await;

    let mut total = 0;
    for r in &replicas {
        let n = r.fetches().await;
        assert!(n > 0, "{} fetched nothing: the work was not shared", r.host);
        total += n;
    }
    for r in replicas {
        r.stop().await;
    }

    // Every (appid, period) of every grain went to WeChat once, and the
    // weekly table is the truth.
    let stats = sim.stats();
    assert_eq!(stats.per_period.len() as i64, periods);
    let repeated: Vec<_> = stats
        .per_period
        .iter()
        .filter(|(_, c)| c.calls != 1)
        .collect();
    assert!(repeated.is_empty(), "fetched more than once: {repeated:?}");
    assert_eq!(total, periods as u64);
    let (first, last) = kept_weeks(&p, Utc::now());
    assert_eq!(
        table(&p.store).await,
        truth(&apps, first, last, sim.clock().now(), 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_weeks_are_finished_by_the_others_once_its_lease_ends() {
    if !require_root("unshare --pid hides the killed replica from the others")
        || !require_tool("unshare")
    {
        return;
    }
    let db = TestDb::new().await;
    let sim = real_time_simulator(100).await;
    let apps = apps(30);
    let weeks = 20;
    // A short lease (the config refuses one shorter than a fetch can take)
    // and a tick every 2 s, so the survivors look again soon after it ends.
    let extra =
        "[wechat]\nconnect_timeout_secs = 1\nrequest_timeout_secs = 1\nretry_attempts = 1\n\
                 retry_min_delay_ms = 5\nmax_in_flight = 4\n\
                 [schedule]\nlookback_weeks = 20\nlease_secs = 11\ncron = \"*/2 * * * * *\"\n\
                 [collect]\nretention = [\"weekly\"]\n";
    let (_dir, path, env) = config_file(&apps, extra);
    let p = pipeline(config(&db, &sim, &apps, extra)).await;

    let mut doomed = Replica::start_elsewhere("replica-doomed", &path, &env, &db, &sim);
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    // Kill it while it holds leases.
    let deadline = Instant::now() + Duration::from_secs(30);
    let held: Vec<(String, NaiveDate, DateTime<Utc>)> = loop {
        let held: Vec<(String, NaiveDate, DateTime<Utc>)> = sqlx::query_as(
            "SELECT appid, period_start, lease_until FROM retention_ledger
              WHERE lease_owner LIKE 'replica-doomed:%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        if held.len() >= 4 {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "the doomed replica never claimed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    doomed.child.start_kill().expect("kill -9");
    let killed_at = Utc::now();
    doomed.child.wait().await.expect("reaped");

    let survivors: Vec<Replica> = ["replica-a", "replica-b"]
        .iter()
        .map(|host| Replica::start(host, &path, &env, &db, &sim))
        .collect();
    wait_until_settled(
        &db,
        |now| 30 * fetchable_periods(&p, Grain::Weekly, now),
        Duration::from_secs(90),
    )
    .await;
    for r in survivors {
        r.stop().await;
    }

    // The weeks it held and had not stored were stored by the others, and not
    // before its lease ended: nobody fetched them while it might still have.
    let mut taken_over = 0;
    for (appid, week, lease_until) in &held {
        let stored_at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT last_success_at FROM retention_ledger WHERE appid = $1 AND period_start = $2",
        )
        .bind(appid)
        .bind(week)
        .fetch_one(&pool)
        .await
        .expect("ledger row");
        let stored_at = stored_at.expect("every held week was stored in the end");
        if stored_at > killed_at {
            taken_over += 1;
            assert!(
                stored_at >= *lease_until,
                "{appid} {week} was taken at {stored_at}, before its lease ended at {lease_until}"
            );
        }
    }
    assert!(taken_over > 0, "no held week was left to take over");
    let (first, last) = kept_weeks(&p, Utc::now());
    assert_eq!(
        NaturalWeek::range(first, last).count(),
        weeks as usize,
        "config keeps {weeks} weeks"
    );
    assert_eq!(
        table(&p.store).await,
        truth(&apps, first, last, sim.clock().now(), 10)
    );
}
