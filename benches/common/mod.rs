//! What the benchmarks share: the launcher that measures a process's own
//! CPU time and peak RSS (wait4), the Postgres proxy that counts round
//! trips, and small helpers. Each bench uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn wait_for_http(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(url).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{url} did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub struct Usage {
    pub cpu: Duration,
    pub max_rss_kib: i64,
}

/// First argument of the benchmark re-run as a launcher: `LAUNCH program args…`.
///
/// The backfill is started by this small process, not by the benchmark
/// itself, because Linux carries the spawner's peak RSS into the child's
/// `ru_maxrss`: at exec the kernel records the high-water mark of the memory
/// the process leaves, which after a `vfork` (what `Command::spawn` uses) is
/// the parent's. The benchmark grows to ~55 MiB reading the simulator's stats
/// of a 26,000-week run, and every backfill it started after that reported
/// 55 MiB. The launcher is a fresh exec, a few MiB.
pub const LAUNCH: &str = "__launch";

/// The launcher: runs the command (stdout to /dev/null, stderr inherited),
/// reaps it with wait4 and prints `exited_ok wall_ns cpu_ns max_rss_kib`.
pub fn launch(command: &[std::ffi::OsString]) -> anyhow::Result<()> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("{LAUNCH}: no command"))?;
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (ok, usage) = wait_with_usage(child)?;
    let wall = started.elapsed();
    println!(
        "{} {} {} {}",
        u8::from(ok),
        wall.as_nanos(),
        usage.cpu.as_nanos(),
        usage.max_rss_kib
    );
    Ok(())
}

/// Reads the launcher's line.
pub fn parse_launched(stdout: &[u8]) -> anyhow::Result<(bool, Duration, Usage)> {
    let text = String::from_utf8_lossy(stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [ok, wall, cpu, rss] = fields[..] else {
        anyhow::bail!("the launcher printed {text:?}");
    };
    let nanos = |t: &str| -> anyhow::Result<Duration> { Ok(Duration::from_nanos(t.parse()?)) };
    Ok((
        ok == "1",
        nanos(wall)?,
        Usage {
            cpu: nanos(cpu)?,
            max_rss_kib: rss.parse()?,
        },
    ))
}

/// Waits for the child with wait4, which reports that process's own CPU time
/// and peak RSS (not the benchmark's, not the simulator's).
pub fn wait_with_usage(child: Child) -> anyhow::Result<(bool, Usage)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own un-waited child; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    anyhow::ensure!(
        waited == pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    let tv = |t: libc::timeval| {
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_usec).unwrap_or(0) * 1000,
        )
    };
    Ok((
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        Usage {
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            max_rss_kib: usage.ru_maxrss,
        },
    ))
}

/// A TCP proxy in front of Postgres that counts round trips: every Sync
/// (extended protocol) or Query (simple protocol) message the client sends
/// is one wait for the server.
pub struct CountingProxy {
    pub port: u16,
    pub round_trips: Arc<AtomicU64>,
}

impl CountingProxy {
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = round_trips.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = relay(client, server, counter).await;
                    }
                });
            }
        });
        Ok(Self { port, round_trips })
    }
}

pub async fn relay(
    client: TcpStream,
    server: TcpStream,
    counter: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let down = tokio::spawn(async move { tokio::io::copy(&mut server_rx, &mut client_tx).await });
    let mut parser = Frontend::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = client_rx.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        counter.fetch_add(parser.feed(&buf[..n]), Ordering::Relaxed);
        server_tx.write_all(&buf[..n]).await?;
    }
    let _ = server_tx.shutdown().await;
    down.abort();
    Ok(())
}

/// Splits the client's byte stream into protocol messages. The first
/// messages (SSLRequest, GSSENCRequest, StartupMessage) carry no type byte.
#[derive(Default)]
pub struct Frontend {
    started: bool,
    pending: Vec<u8>,
}

impl Frontend {
    /// Takes more bytes; returns how many Sync/Query messages they completed.
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        self.pending.extend_from_slice(bytes);
        let mut round_trips = 0;
        loop {
            if !self.started {
                let Some(len) = be_u32(&self.pending, 0) else {
                    break;
                };
                let Some(code) = be_u32(&self.pending, 4) else {
                    break;
                };
                if self.pending.len() < len as usize {
                    break;
                }
                self.pending.drain(..len as usize);
                // SSLRequest / GSSENCRequest are followed by another untyped message.
                if code != 80_877_103 && code != 80_877_104 {
                    self.started = true;
                }
            } else {
                let Some(len) = be_u32(&self.pending, 1) else {
                    break;
                };
                let total = 1 + len as usize;
                if self.pending.len() < total {
                    break;
                }
                if matches!(self.pending[0], b'S' | b'Q') {
                    round_trips += 1;
                }
                self.pending.drain(..total);
            }
        }
        round_trips
    }
}

pub fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes(slice.try_into().ok()?))
}

/// Fills the ledger with `grain`'s periods `first..=last` for `apps` as the
/// daemon leaves it at `as_of` (keys published at `publish_hour` Beijing):
/// each period has the keys WeChat had published by then, is `complete`
/// once it has them all, and is due when its next key is expected. Rows go
/// in period order, then app, as a daemon writes them day after day (the
/// table's physical order matters to what a scan costs).
pub async fn fill_ledger(
    pool: &sqlx::PgPool,
    apps: &[String],
    first: wxretain::domain::Period,
    last: wxretain::domain::Period,
    as_of: chrono::DateTime<chrono::Utc>,
    publish_hour: u32,
) -> anyhow::Result<u64> {
    let grain = first.grain();
    let (months, days) = grain.step();
    let keys: Vec<i16> = wxretain::dataset::retention::keys(grain)
        .iter()
        .map(|&k| i16::from(k))
        .collect();
    let done = sqlx::query(
        "INSERT INTO retention_ledger
             (appid, grain, period_start, state, keys, calls, last_success_at, last_attempt_at, next_due_at)
         SELECT a.appid, $2, k.p,
                CASE WHEN cardinality(k.have) = cardinality($7::smallint[]) THEN 'complete'
                     WHEN cardinality(k.have) = 0 THEN 'missing' ELSE 'maturing' END,
                k.have, cardinality(k.have),
                CASE WHEN cardinality(k.have) > 0 THEN $8 - interval '1 day' END,
                CASE WHEN cardinality(k.have) > 0 THEN $8 - interval '1 day' END,
                k.next_due
           FROM (SELECT p::date AS p,
                        coalesce(array_agg(key ORDER BY key) FILTER (WHERE e.at <= $8), '{}') AS have,
                        min(e.at) FILTER (WHERE e.at > $8) AS next_due
                   FROM generate_series($3::date, $4::date, make_interval(months => $5, days => $6)) AS p
                  CROSS JOIN unnest($7::smallint[]) AS key
                  CROSS JOIN LATERAL (
                        SELECT ((p::date + (key + 1) * make_interval(months => $5, days => $6))::date::timestamp
                                + make_interval(hours => $9)) AT TIME ZONE 'Asia/Shanghai' AS at) e
                  GROUP BY p) k
          CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS a(appid, n)
          ORDER BY k.p, a.n",
    )
    .bind(apps)
    .bind(grain.as_str())
    .bind(first.start())
    .bind(last.start())
    .bind(months)
    .bind(days)
    .bind(&keys)
    .bind(as_of)
    .bind(publish_hour as i32)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The latest instant at or before `now` when WeChat publishes the day's
/// keys (`publish_hour`:00 Beijing): today's, or yesterday's before it.
pub fn last_publication(
    now: chrono::DateTime<chrono::Utc>,
    publish_hour: u32,
) -> chrono::DateTime<chrono::Utc> {
    // Key 0 of the day that ended last midnight comes out today.
    let yesterday = wxretain::domain::Grain::Daily.last_completed_at(now);
    let today = yesterday.morning_after(0, publish_hour);
    if today <= now {
        today
    } else {
        yesterday.prev().morning_after(0, publish_hour)
    }
}

/// The Postgres server every bench makes its database on, and the `--bench`
/// flag `cargo bench` passes to every bench target.
#[derive(clap::Args, Debug)]
pub struct Server {
    /// Postgres server (the bench creates and drops its own database on it).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl Server {
    /// The URL of database `name` on this server.
    pub fn database(&self, name: &str) -> anyhow::Result<reqwest::Url> {
        let mut url = reqwest::Url::parse(&self.database_url)?;
        url.set_path(&format!("/{name}"));
        Ok(url)
    }

    /// Drops database `name` if it is there.
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        let admin = sqlx::PgPool::connect(&self.database_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&admin)
            .await?;
        admin.close().await;
        Ok(())
    }
}

/// `wxretain migrate` on `url`: creates the database if missing.
pub fn migrate(bin: &Path, url: &str) -> anyhow::Result<()> {
    let migrated = Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", url)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(migrated.success(), "wxretain migrate failed");
    Ok(())
}

/// `wxretain simulate` on a free port with `faults` (its flags), started and
/// answering: the process and its base URL.
pub async fn simulator(bin: &Path, faults: &[&str]) -> anyhow::Result<(Child, String)> {
    let port = free_port()?;
    let sim = Command::new(bin)
        .args(["simulate", "--listen", &format!("127.0.0.1:{port}")])
        .args(faults)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{url}/__sim/stats")).await?;
    Ok((sim, url))
}

/// A config's `[collect]` section collecting `grains`.
pub fn collect_section(grains: &[wxretain::domain::Grain]) -> String {
    let names: Vec<String> = grains.iter().map(|g| format!("\"{g}\"")).collect();
    format!("[collect]\nretention = [{}]\n", names.join(", "))
}
