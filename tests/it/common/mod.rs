//! Shared test harness: a fresh Postgres database per test, an in-process
//! simulator, and configs pointing one at the other.

use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use wxretain::config::Config;
use wxretain::dataset::{DatasetId, Target};
use wxretain::domain::{AppId, Grain, Metric, NaturalWeek, Period, BEIJING, MAX_KEY};
use wxretain::pass::{run_pass, PassOptions, PassReport};
use wxretain::runtime::Runtime;
use wxretain::simulator::{
    publication, publication_of, sim_appid, truth_value, truth_value_of, Publication, SimClock,
    SimConfig, Simulator, SimulatorHandle,
};
use wxretain::store::{PeriodRow, Range, Scope, Store};

/// The server every test database lives on (`DATABASE_URL` overrides).
pub fn server_url() -> String {
    std::env::var("WXRETAIN_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A database with every migration applied: a copy of the template
    /// (see [`template_name`]), which is far quicker than migrating each one.
    pub async fn new() -> Self {
        let db = Self::not_created();
        wait_for_connections_to_spare().await;
        TEMPLATE_READY
            .get_or_init(|| ensure_template(OtherTemplates::Drop))
            .await;
        // A run of another checkout with other migrations, on the same
        // server, drops this template when it makes its own: make ours
        // again (leaving theirs) and copy that.
        if let Err(e) = db.create_from_template().await {
            let missing =
                matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000"));
            assert!(
                missing,
                "test database copied from {}: {e}",
                template_name()
            );
            ensure_template(OtherTemplates::Keep).await;
            db.create_from_template()
                .await
                .unwrap_or_else(|e| panic!("test database copied from {}: {e}", template_name()));
        }
        db
    }

    /// A database with no schema at all, for tests of what migrates one.
    pub async fn empty() -> Self {
        let db = Self::not_created();
        wait_for_connections_to_spare().await;
        Store::create_database_if_missing(&secrecy::SecretString::from(db.url.clone()))
            .await
            .expect("test database created (is Postgres running on 127.0.0.1:5432?)");
        db
    }

    /// A fresh name and its URL, for tests of what creates a missing
    /// database; dropped at the end like any other if something created it.
    pub fn not_created() -> Self {
        let name = format!("wxretain_test_{}", uuid::Uuid::new_v4().simple());
        let url = database_url(&name);
        Self { name, url }
    }

    async fn create_from_template(&self) -> Result<(), sqlx::Error> {
        let mut admin = admin_connection().await;
        let created = sqlx::query(&format!(
            "CREATE DATABASE \"{}\" TEMPLATE \"{}\"",
            self.name,
            template_name()
        ))
        .execute(&mut admin)
        .await;
        // Commits need not wait for the disk: a test database outlives no
        // server crash, and the hour-by-hour tests commit thousands of times.
        if created.is_ok() {
            sqlx::query(&format!(
                "ALTER DATABASE \"{}\" SET synchronous_commit = off",
                self.name
            ))
            .execute(&mut admin)
            .await?;
        }
        let _ = sqlx::Connection::close(admin).await;
        created.map(|_| ())
    }
}

/// Waits (two minutes at most) until fewer than 60 % of the server's
/// connections are in use before a test starts. Test runs share the server
/// (two suites at once, other checkouts' tests), and a test whose daemons
/// find it full fails for no fault of the code.
async fn wait_for_connections_to_spare() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut admin = admin_connection().await;
    loop {
        let (used, max): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
                    current_setting('max_connections')::bigint",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap_or((0, 100));
        if used * 10 < max * 6 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let _ = sqlx::Connection::close(admin).await;
}

/// The URL of database `name` on the test server.
fn database_url(name: &str) -> String {
    let mut url = reqwest::Url::parse(&server_url()).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A connection to the server's `postgres` database, where test databases
/// are created and dropped and the template's advisory lock is taken. A
/// server out of connections (other test runs share it) is waited for.
async fn admin_connection() -> sqlx::PgConnection {
    use sqlx::Connection;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match sqlx::PgConnection::connect(&database_url("postgres")).await {
            Ok(conn) => return conn,
            // 53300: too many connections.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("53300") && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                panic!("connect to the test server (is Postgres running on 127.0.0.1:5432?): {e}")
            }
        }
    }
}

/// The migrated database [`TestDb::new`] copies, named by a hash of the
/// migrations this build applies (each one's version and description, from
/// its file name, and its checksum, of its content): a new or changed
/// migration makes a new template, and a template is never stale.
pub fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for m in wxretain::store::MIGRATOR.iter() {
        hasher.update(m.version.to_be_bytes());
        hasher.update(m.description.as_bytes());
        hasher.update([0]);
        hasher.update(&m.checksum);
    }
    let hash: String = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{TEMPLATE_PREFIX}{hash}")
}

/// Every template's name starts so (`.ci/run` leaves them when it drops the
/// databases interrupted runs left behind).
pub const TEMPLATE_PREFIX: &str = "wxretain_test_template_";

/// Made (or found) once per test process.
static TEMPLATE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// What [`ensure_template`] does with the templates of other migrations
/// when it makes ours.
#[derive(Clone, Copy, PartialEq)]
enum OtherTemplates {
    /// Drops them: left by older checkouts, they would pile up.
    Drop,
    /// Keeps them: ours vanished mid-run, so a run with other migrations is
    /// live on this server and still copies its own.
    Keep,
}

/// Makes the template if it is missing: one process at a time, under an
/// advisory lock on the server's `postgres` database, so that test
/// processes starting together make it once. It is built under a temporary
/// name and renamed when migrated, so a run killed half-way leaves no
/// half-migrated template (only a `wxretain_test_<uuid>` leftover, which
/// `.ci/run` drops); nothing stays connected to it, which `CREATE DATABASE
/// ... TEMPLATE` requires, and it accepts no connections from then on.
async fn ensure_template(others: OtherTemplates) {
    // Any fixed key: only this function takes it.
    const LOCK: i64 = 0x7778_7265_7461_696e; // "wxretain"
    let template = template_name();
    let mut admin = admin_connection().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut admin)
        .await
        .expect("template lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("look for the template");
    if !exists {
        let building = TestDb::empty().await;
        let store = Store::connect(&secrecy::SecretString::from(building.url.clone()), 1)
            .await
            .expect("connect to the template being built");
        store.migrate().await.expect("migrate the template");
        store.pool().close().await;
        for statement in [
            format!(
                "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
                building.name
            ),
            format!(
                "ALTER DATABASE \"{}\" RENAME TO \"{template}\"",
                building.name
            ),
        ] {
            sqlx::query(&statement)
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        // Renamed: its Drop finds nothing left to drop.
        if others == OtherTemplates::Drop {
            let others: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND datname <> $2",
            )
            .bind(TEMPLATE_PREFIX)
            .bind(&template)
            .fetch_all(&mut admin)
            .await
            .expect("list the other templates");
            for other in others {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{other}\""))
                    .execute(&mut admin)
                    .await;
            }
        }
    }
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut admin)
        .await;
    let _ = sqlx::Connection::close(admin).await;
}

impl Drop for TestDb {
    fn drop(&mut self) {
        clean_up_on_server(vec![format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )]);
    }
}

/// Runs `statements` on the test server, in order, for a `Drop` that
/// cleans up after a test. Drop runs outside async: a thread with its own
/// small runtime does it. Failures are ignored: cleaning up must not fail
/// (or panic inside) a test that is already ending.
pub fn clean_up_on_server(statements: Vec<String>) {
    let server = server_url();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server).await.ok()?;
            for statement in statements {
                let _ = sqlx::query(&statement).execute(&mut conn).await;
            }
            Some(())
        })
    })
    .join();
}

// ---- tools a contributor may not have ----------------------------------------

/// Whether `tool` is on `PATH`. Tests that run a tool a contributor may not
/// have call this first and return (pass) when it says false: outside CI the
/// test prints `SKIPPED: <test>: <why>` on stderr; in CI (`CI=true`), which
/// installs every tool (`.ci/run`), a missing tool fails the test instead.
pub fn require_tool(tool: &str) -> bool {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    on_path || skip(&format!("{tool} is not installed ({})", install_hint(tool)))
}

/// Whether this process runs as root, for tests that need it (`unshare`'s
/// PID namespaces); otherwise as [`require_tool`]: skipped, or failed in CI.
pub fn require_root(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root || skip(&format!("needs root: {why}"))
}

/// Says why the running test is skipped and returns false, or fails it in CI.
fn skip(why: &str) -> bool {
    // libtest runs each test on a thread named after it.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{test}: {why}; CI must have it (.ci/run installs it)");
    }
    eprintln!("SKIPPED: {test}: {why}");
    false
}

/// How to get `tool` on Debian, as `.ci/run` does.
fn install_hint(tool: &str) -> String {
    let package = match tool {
        "promtool" | "prometheus" => "prometheus",
        "systemd-analyze" => "systemd",
        "psql" | "pg_dump" => "postgresql-client",
        "unshare" => "util-linux",
        other => other,
    };
    format!("apt-get install {package}")
}

/// An instant written as Beijing wall time.
pub fn beijing(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    BEIJING
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid instant")
        .with_timezone(&Utc)
}

pub fn apps(n: u32) -> Vec<AppId> {
    (1..=n).map(sim_appid).collect()
}

/// A simulator whose clock is frozen at `now`.
pub async fn simulator(now: DateTime<Utc>, tweak: impl FnOnce(&mut SimConfig)) -> SimulatorHandle {
    let mut config = SimConfig {
        clock: SimClock::frozen_at(now),
        ..SimConfig::default()
    };
    tweak(&mut config);
    Simulator::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator starts")
}

/// The simulator's answer to a `stable_token` request for `appid`
/// (`force`: mint a new token, which makes the previous one answer 40001).
pub async fn stable_token(sim: &SimulatorHandle, appid: &AppId, force: bool) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{}/cgi-bin/stable_token", sim.base_url()))
        .json(&serde_json::json!({"grant_type": "client_credential", "appid": appid.as_str(), "secret": "s3cret", "force_refresh": force}))
        .send()
        .await
        .expect("token call")
        .json()
        .await
        .expect("token JSON")
}

/// The token in a simulator's token answer.
pub fn token_of(answer: &serde_json::Value) -> String {
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {answer}"))
        .to_string()
}

/// A simulator on the real clock answering every call after `latency_ms`,
/// for tests that run daemons as processes (they cannot share a fake clock).
pub async fn real_time_simulator(latency_ms: u64) -> SimulatorHandle {
    simulator(Utc::now(), |c| {
        c.clock = SimClock::real();
        c.faults = wxretain::simulator::Faults {
            latency_ms,
            ..Default::default()
        };
    })
    .await
}

/// The TOML of a config for `apps`, each with secret `secret-<appid>` in `SECRET_<n>`.
pub fn config_toml(apps: &[AppId], extra: &str) -> (String, HashMap<String, String>) {
    let mut env = HashMap::new();
    let mut toml = format!("{}\n", few_connections(&unthrottled(extra)));
    for (i, appid) in apps.iter().enumerate() {
        let var = format!("SECRET_{i}");
        env.insert(var.clone(), format!("secret-{appid}"));
        toml.push_str(&format!(
            "[[apps]]\nappid = \"{appid}\"\nsecret_env = \"{var}\"\n"
        ));
    }
    (toml, env)
}

/// Periods fetched by the daemon serving /metrics on `port`: the sum of its
/// `wxretain_fetches_total` series.
pub async fn fetches_on(port: u16) -> u64 {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics body");
    body.lines()
        .filter(|l| l.starts_with("wxretain_fetches_total{"))
        // wxretain writes its per-app counters as integers.
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// How many of the periods of `grain` kept at `now` a pass can fetch: those
/// whose key 0 is published by then. The newest day ends at Beijing midnight
/// but comes out at 10:00 (so does the newest week on a Monday, the newest
/// month on the 1st): between the two it is in the ledger, not yet due.
/// Tests on the real clock count with this, or fail from 16:00 to 02:00 UTC.
pub fn fetchable_periods(p: &Runtime, grain: wxretain::domain::Grain, now: DateTime<Utc>) -> i64 {
    let (first, last) = p.kept_periods(grain, now);
    (0..=first.periods_until(last))
        .map(|i| first.plus(i))
        .filter(|&period| p.rule.key_expected_at(retention(period), 0) <= now)
        .count() as i64
}

/// `period` of the retention dataset.
pub fn retention(period: Period) -> Target {
    Target::new(DatasetId::Retention, period)
}

/// Retention's periods `first..=last`, as the store's ranges take them.
pub fn retention_range(first: impl Into<Period>, last: impl Into<Period>) -> Range {
    Range::new(DatasetId::Retention, first.into(), last.into())
}

/// The ledger entries of `apps`' weeks `first..=last`.
pub async fn ledger_weeks(
    store: &Store,
    apps: &[AppId],
    first: NaturalWeek,
    last: NaturalWeek,
) -> Vec<PeriodRow> {
    store
        .periods(apps, DatasetId::Retention, first.into(), last.into())
        .await
        .expect("ledger")
}

/// The weeks a pass at `as_of` keeps: oldest kept to last completed.
pub fn kept_weeks(p: &Runtime, as_of: DateTime<Utc>) -> (NaturalWeek, NaturalWeek) {
    let last = NaturalWeek::last_completed_at(as_of, BEIJING);
    (
        wxretain::planner::oldest_week(&p.config.schedule, last),
        last,
    )
}

/// Of the `weeks` newest completed weeks at `now`, how many WeChat has
/// published (key 0 out at 10:00 Beijing, the default `publish_hour`): all
/// but the newest from Monday 00:00 to 10:00 Beijing. For tests that run
/// the binary and have no [`Pipeline`] to ask [`fetchable_periods`].
pub fn published_weeks(weeks: i64, now: DateTime<Utc>) -> i64 {
    let last = NaturalWeek::last_completed_at(now, BEIJING);
    (0..weeks)
        .map(|i| wxretain::domain::Period::from(last.plus_weeks(-i)))
        .filter(|&period| period.morning_after(0, 10) <= now)
        .count() as i64
}

/// [`fetchable_periods`] of every grain.
pub fn fetchable_periods_all_grains(p: &Runtime, now: DateTime<Utc>) -> i64 {
    wxretain::domain::Grain::ALL
        .iter()
        .map(|&g| fetchable_periods(p, g, now))
        .sum()
}

/// Tests run without the default rate limits (which would make a 500-week
/// backfill take seconds) unless they set their own.
pub fn unthrottled(extra: &str) -> String {
    const NO_LIMITS: &str = "rate_per_second = 1000000\napp_rate_per_second = 1000000\n";
    if extra.contains("rate_per_second") {
        extra.to_string()
    } else if extra.contains("[wechat]\n") {
        extra.replacen("[wechat]\n", &format!("[wechat]\n{NO_LIMITS}"), 1)
    } else {
        format!("[wechat]\n{NO_LIMITS}{extra}")
    }
}

/// The binaries tests run take 4 connections to Postgres, not the default
/// 10, unless they set their own: tests run 8 at a time, some with three
/// daemons, and two suites at once (or other checkouts' tests on the same
/// server) ran Postgres out of its default 100.
fn few_connections(toml: &str) -> String {
    const FEW: &str = "max_connections = 4\n";
    if toml.contains("max_connections") {
        toml.to_string()
    } else if toml.contains("[database]\n") {
        toml.replacen("[database]\n", &format!("[database]\n{FEW}"), 1)
    } else {
        format!("{toml}\n[database]\n{FEW}")
    }
}

/// Fast retries: tests should not sleep for real backoffs.
pub const FAST: &str = "[wechat]\nretry_min_delay_ms = 5\nmax_in_flight = 8\n";

pub fn config(db: &TestDb, sim: &SimulatorHandle, apps: &[AppId], extra: &str) -> Config {
    let (toml, mut env) = config_toml(apps, extra);
    env.insert("DATABASE_URL".into(), db.url.clone());
    env.insert("WXRETAIN_WECHAT_BASE_URL".into(), sim.base_url());
    Config::parse(&toml, Path::new("test.toml"), &env).expect("test config is valid")
}

/// A runtime on `config`'s database, migrated, with a pool of 4
/// connections (what the binaries tests run get too: see `few_connections`).
pub async fn pipeline(config: Config) -> Runtime {
    let store = Store::connect(&config.database.url, 4)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Runtime::new(Arc::new(config), store).expect("runtime")
}

/// What `backfill` does: mark the weeks due, then one pass over them.
pub async fn backfill(
    p: &Runtime,
    first: NaturalWeek,
    last: NaturalWeek,
    as_of: DateTime<Utc>,
    refetch: bool,
) -> PassReport {
    let apps = p.all_apps().apps;
    p.store
        .enqueue(&apps, retention_range(first, last), as_of, refetch)
        .await
        .expect("enqueue");
    pass_over(p, first, last, as_of).await
}

/// One pass over the configured apps' weeks `first..=last`, planning nothing:
/// what a backfill runs after marking its weeks due.
pub async fn pass_over(
    p: &Runtime,
    first: NaturalWeek,
    last: NaturalWeek,
    as_of: DateTime<Utc>,
) -> PassReport {
    let scope = Scope {
        apps: p.all_apps().apps,
        ranges: vec![retention_range(first, last)],
        ..Default::default()
    };
    let opts = PassOptions {
        as_of,
        scope,
        plan: false,
    };
    run_pass(p, &opts, &Default::default(), None)
        .await
        .expect("pass")
}

/// What `/readyz` of `p`'s process checks.
pub fn readiness(p: &Runtime) -> wxretain::server::Readiness {
    wxretain::server::Readiness {
        store: p.store.clone(),
        clock: p.clock,
        max_clock_skew: p.config.schedule.max_clock_skew,
    }
}

/// What `once --as-of` does.
pub async fn once(p: &Runtime, as_of: DateTime<Utc>) -> PassReport {
    run_pass(
        p,
        &PassOptions {
            as_of,
            scope: p.kept_scope(as_of),
            plan: true,
        },
        &Default::default(),
        None,
    )
    .await
    .expect("pass")
}

pub type Row = (String, chrono::NaiveDate, String, i16, i64);

/// Every stored row of the three tables as `(appid, grain, period_start)`:
/// for checks that the ledger and the tables agree.
pub const STORED_ROWS: &str =
    "SELECT appid, 'daily' AS grain, day AS period_start FROM daily_retention
     UNION ALL SELECT appid, 'weekly', week_start FROM weekly_retention
     UNION ALL SELECT appid, 'monthly', month_start FROM monthly_retention";

pub async fn table(store: &Store) -> Vec<Row> {
    sqlx::query_as(
        "SELECT appid, week_start, metric, key, value FROM weekly_retention ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(store.pool())
    .await
    .expect("read weekly_retention")
}

/// The rows the table must hold for `apps` × `first..=last` at `now`, per the
/// simulator's publication rule (keys not published yet are absent, never 0).
pub fn truth(
    apps: &[AppId],
    first: NaturalWeek,
    last: NaturalWeek,
    now: DateTime<Utc>,
    publish_hour: u32,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for appid in apps {
        for week in NaturalWeek::range(first, last) {
            let Publication::Keys(max) = publication(week, now, publish_hour) else {
                continue;
            };
            for metric in Metric::ALL {
                for key in 0..=max.min(MAX_KEY) {
                    rows.push((
                        appid.to_string(),
                        week.monday(),
                        metric.as_str().to_string(),
                        i16::from(key),
                        truth_value(appid, week, metric, key),
                    ));
                }
            }
        }
    }
    rows.sort();
    rows
}

/// `(appid, period start, metric, key, value)` rows of one grain's table.
pub async fn rows_of(store: &Store, grain: Grain) -> Vec<Row> {
    let sql = match grain {
        Grain::Daily => "SELECT appid, day, metric, key, value FROM daily_retention ORDER BY 1, 2, 3, 4",
        Grain::Weekly => {
            "SELECT appid, week_start, metric, key, value FROM weekly_retention ORDER BY 1, 2, 3, 4"
        }
        Grain::Monthly => {
            "SELECT appid, month_start, metric, key, value FROM monthly_retention ORDER BY 1, 2, 3, 4"
        }
    };
    sqlx::query_as(sql)
        .fetch_all(store.pool())
        .await
        .expect("read table")
}

/// What the grain's table must hold for `apps` × `first..=last` at `now`:
/// published keys only, never a 0 for a key not out yet.
pub fn truth_of(apps: &[AppId], first: Period, last: Period, now: DateTime<Utc>) -> Vec<Row> {
    let mut rows = Vec::new();
    for appid in apps {
        for period in Period::range(first, last) {
            let Publication::Keys(max) = publication_of(period, now, 10) else {
                continue;
            };
            for metric in Metric::ALL {
                for &key in wxretain::dataset::retention::keys(period.grain())
                    .iter()
                    .filter(|k| **k <= max)
                {
                    rows.push((
                        appid.to_string(),
                        period.start(),
                        metric.as_str().to_string(),
                        i16::from(key),
                        truth_value_of(appid, period, metric, key),
                    ));
                }
            }
        }
    }
    rows.sort();
    rows
}

/// A TCP proxy to Postgres that the test can cut and restore.
pub struct Proxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        let server = reqwest::Url::parse(&server_url()).expect("DATABASE_URL is a URL");
        let upstream = format!(
            "{}:{}",
            server.host_str().unwrap_or("127.0.0.1"),
            server.port().unwrap_or(5432)
        );
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut client).await;
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().expect("lock").push(task.abort_handle());
            }
        });
        Self { port, up, conns }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A config file for `apps` (see `config_toml`) in a fresh temp dir, and the
/// environment holding their secrets. Keep the dir alive while it is used.
pub fn config_file(
    apps: &[AppId],
    extra: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    HashMap<String, String>,
) {
    let (toml, env) = config_toml(apps, extra);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wxretain.toml");
    std::fs::write(&path, toml).expect("write config");
    (dir, path, env)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The binary with `args`, its environment cleared but for `PATH` and `env`
/// (nothing of the test's own environment leaks in), no stdin, killed if the
/// test drops it. Not yet started.
pub fn wxretain_command<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    env: &HashMap<String, String>,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxretain"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// `wxretain --config CONFIG ARGS...` run to the end against the given
/// database and simulator, with `env` (the apps' secrets) and nothing else
/// of the test's environment.
pub async fn wxretain_with_config(
    config: &Path,
    env: &HashMap<String, String>,
    database_url: &str,
    sim: &SimulatorHandle,
    args: &[&str],
) -> Output {
    let mut command = wxretain_command(
        [std::ffi::OsStr::new("--config"), config.as_os_str()]
            .into_iter()
            .chain(args.iter().map(std::ffi::OsStr::new)),
        env,
    );
    command
        .env("DATABASE_URL", database_url)
        .env("WXRETAIN_WECHAT_BASE_URL", sim.base_url())
        .env("RUST_LOG", "warn");
    Output::of(
        command,
        std::time::Duration::from_secs(240),
        &format!("wxretain {args:?}"),
    )
    .await
}

/// `wxretain run --config CONFIG --listen 127.0.0.1:PORT` against the given
/// database and WeChat, output discarded, killed if the test drops it. Add
/// environment before spawning. tokio's Command: a blocking wait would stall
/// an in-process simulator on the test's runtime.
pub fn run_command(
    config: &Path,
    env: &HashMap<String, String>,
    database_url: &str,
    base_url: &str,
    port: u16,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxretain"));
    command
        .args(["run", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .envs(env)
        .env("DATABASE_URL", database_url)
        .env("WXRETAIN_WECHAT_BASE_URL", base_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Sends SIGTERM and waits (at most `within`) for the exit status.
pub async fn terminate(
    child: &mut tokio::process::Child,
    within: std::time::Duration,
) -> std::process::ExitStatus {
    let pid = child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -TERM {pid}");
    tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit within {within:?} of SIGTERM"))
        .expect("wait")
}

/// A log sink the test can read back.
#[derive(Clone, Default)]
pub struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// Where this thread's log goes while a test captures it.
    static CAPTURING: std::cell::RefCell<Option<Capture>> = const { std::cell::RefCell::new(None) };
}

/// The writer of the tests' one log subscriber: the capture of the thread
/// that logs, if it has one.
struct ThisThreadsCapture;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThisThreadsCapture {
    type Writer = Box<dyn std::io::Write>;
    fn make_writer(&'a self) -> Self::Writer {
        match CAPTURING.with(|c| c.borrow().clone()) {
            Some(capture) => Box::new(capture),
            None => Box::new(std::io::sink()),
        }
    }
}

/// Lets an event through only on a thread that captures. Asked at every
/// event: a verdict cached per call site would be one thread's, wrong for
/// the others (with one `set_default` subscriber per capturing thread, call
/// sites first hit elsewhere were sometimes left disabled for all).
struct OnACapturingThread;

impl<S> tracing_subscriber::layer::Filter<S> for OnACapturingThread {
    fn enabled(
        &self,
        _: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        CAPTURING.with(|c| c.borrow().is_some())
    }

    fn callsite_enabled(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

/// Stops a capture when dropped.
pub struct CaptureGuard(Option<Capture>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CAPTURING.with(|c| *c.borrow_mut() = previous);
    }
}

impl Capture {
    /// Captures this thread's DEBUG log (dependencies at WARN) until the
    /// guard is dropped: for tests that read back what was logged.
    pub fn debug_log() -> (Self, CaptureGuard) {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            use tracing_subscriber::filter::FilterExt;
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::Layer;
            let levels = tracing_subscriber::EnvFilter::new(
                "debug,sqlx=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn",
            );
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(ThisThreadsCapture)
                .with_filter(OnACapturingThread.and(levels));
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("the tests' log subscriber is the only one");
        });
        let capture = Capture::default();
        let previous = CAPTURING.with(|c| c.borrow_mut().replace(capture.clone()));
        (capture, CaptureGuard(previous))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("capture lock").clone()).expect("utf-8 log")
    }
}

/// What one run of the binary left behind.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Runs `command` to the end, its stdout and stderr piped, failing the
    /// test if it takes longer than `limit` (`what` names it then).
    pub async fn of(
        mut command: tokio::process::Command,
        limit: std::time::Duration,
        what: &str,
    ) -> Self {
        let out = tokio::time::timeout(limit, command.output())
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
            .expect("the command runs");
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, printing both streams when it differs.
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn expect_stderr_has(&self, needle: &str, what: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "{what}: stderr should mention {needle:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    /// stdout and stderr together, for "never appears anywhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}
