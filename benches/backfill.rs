//! Backfill benchmark: `cargo bench --bench backfill [-- OPTIONS]`.
//!
//! Runs the real binaries as separate processes, so each is measured on its
//! own: `wxretain simulate` with a chosen latency, and `wxretain backfill` of
//! A apps × W weeks at concurrency C, talking to Postgres through a small proxy
//! that counts round trips. Prints wall time against the ideal A·W·latency/C,
//! the backfill process's CPU time and peak RSS (from wait4), round trips and
//! simulator calls per week; then the same at zero latency, for throughput;
//! then a mix of the daily, weekly and monthly grains over M whole months
//! (`--retention` runs that mix alone), against the ideal calls·latency/C.
//! Figures, not assertions: this machine is shared and noisy.

use chrono::{DateTime, NaiveDate, Utc};
use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wxretain::domain::{Grain, NaturalWeek, Period, BEIJING};
use wxretain::simulator::sim_appid;

#[derive(Parser, Debug)]
#[command(about = "wxretain backfill benchmark")]
struct Args {
    /// Apps of the latency run.
    #[arg(long, default_value_t = 500)]
    apps: u32,
    /// Weeks per app.
    #[arg(long, default_value_t = 26)]
    weeks: u32,
    /// Simulated WeChat latency per data call, in ms.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Requests in flight ([wechat] max_in_flight).
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    /// Apps of the zero-latency run (0 skips it).
    #[arg(long, default_value_t = 1000)]
    zero_latency_apps: u32,
    /// Run only the mix, of these grains (comma-separated: daily,weekly,monthly).
    /// Without it: the weekly runs, then a mix of all three.
    #[arg(long, value_name = "GRAINS", value_delimiter = ',')]
    retention: Vec<Grain>,
    /// Apps of the mix (0 skips it).
    #[arg(long, default_value_t = 100)]
    mix_apps: u32,
    /// Whole months of the mix: every day, week and month of them.
    #[arg(long, default_value_t = 6)]
    months: u32,
    /// Postgres server (a database wxretain_bench is created on it).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    // `cargo bench` passes --bench to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Which periods a backfill asks for: `--from..--to` of these grains.
struct Scenario {
    grains: Vec<Grain>,
    from: NaiveDate,
    to: NaiveDate,
}

impl Scenario {
    /// The periods of `grain` that `wxretain backfill --from --to` fetches
    /// for one app: every day of the range, every week and month overlapping it.
    fn periods(&self, grain: Grain) -> u64 {
        (grain
            .containing(self.from)
            .periods_until(grain.containing(self.to))
            + 1) as u64
    }

    /// `183 days + 27 weeks + 6 months`
    fn describe(&self) -> String {
        self.grains
            .iter()
            .map(|&g| format!("{} {}s", self.periods(g), g.unit()))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// One grain of a run: (app, period) pairs stored with every key, and the
/// simulator's calls of that grain's API.
struct GrainCount {
    grain: Grain,
    stored: u64,
    sim_calls: u64,
}

/// What one backfill run measured.
struct Run {
    /// (app, period) pairs stored with every key, all grains.
    periods: u64,
    per_grain: Vec<GrainCount>,
    wall: Duration,
    cpu: Duration,
    max_rss_kib: i64,
    round_trips: u64,
    sim_calls: u64,
    ok: bool,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == LAUNCH) {
        return launch(&argv[2..]);
    }
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wxretain"));
    println!(
        "wxretain backfill benchmark — {} — {} CPUs",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    if !args.retention.is_empty() {
        anyhow::ensure!(
            args.mix_apps > 0,
            "--retention runs the mix: --mix-apps must be > 0"
        );
        return mix(&runtime, &bin, &args, &args.retention);
    }

    // The weeks: W complete ones (all keys published) ending five weeks ago.
    let last = NaturalWeek::last_completed_at(chrono::Utc::now(), BEIJING).plus_weeks(-5);
    let first = last.plus_weeks(-(i64::from(args.weeks) - 1));
    let weekly = Scenario {
        grains: vec![Grain::Weekly],
        from: first.monday(),
        to: last.sunday(),
    };
    let run = runtime.block_on(backfill(&bin, &args, &weekly, args.apps, args.latency_ms))?;
    let ideal = Duration::from_secs_f64(
        run.periods as f64 * args.latency_ms as f64 / 1000.0 / f64::from(args.concurrency),
    );
    println!(
        "\nlatency {} ms, A = {} apps × W = {} weeks, C = {}",
        args.latency_ms, args.apps, args.weeks, args.concurrency
    );
    report(&run, "week");
    let ratio = run.wall.as_secs_f64() / ideal.as_secs_f64().max(f64::EPSILON);
    println!(
        "  wall / ideal           {ratio:.3}  (ideal A·W·latency/C = {:.2} s; target ≤ 1.15: {})",
        ideal.as_secs_f64(),
        verdict(ratio <= 1.15)
    );
    let cpu_per_k = run.cpu.as_secs_f64() * 1000.0 / run.periods.max(1) as f64;
    println!(
        "  CPU per 1,000 weeks    {cpu_per_k:.3} s  (target ≤ 0.1: {})",
        verdict(cpu_per_k <= 0.1)
    );
    println!(
        "  peak RSS               {:.1} MiB  (target ≤ 64: {})",
        run.max_rss_kib as f64 / 1024.0,
        verdict(run.max_rss_kib <= 64 * 1024)
    );

    if args.zero_latency_apps > 0 {
        let zero = runtime.block_on(backfill(&bin, &args, &weekly, args.zero_latency_apps, 0))?;
        println!(
            "\nlatency 0 ms, A = {} apps × W = {} weeks, C = {}",
            args.zero_latency_apps, args.weeks, args.concurrency
        );
        report(&zero, "week");
        let rate = zero.periods as f64 / zero.wall.as_secs_f64();
        println!(
            "  throughput             {rate:.0} weeks/s  (target ≥ 2,000: {})",
            verdict(rate >= 2000.0)
        );
    }

    if args.mix_apps > 0 {
        mix(&runtime, &bin, &args, &Grain::ALL)?;
    }
    Ok(())
}

/// Beijing hour the simulator publishes keys at (`wxretain simulate`'s default).
const PUBLISH_HOUR: u32 = 10;

/// The mix's range: `months` whole months, the latest of them the most recent
/// month by whose end every key of every period of `grains` overlapping it is
/// published, so each period is fetched once and stored complete, as in the
/// weekly runs.
fn mix_range(grains: &[Grain], months: u32, now: DateTime<Utc>) -> Scenario {
    let mut last = Grain::Monthly.last_completed_at(now);
    let published = |month: Period| {
        grains.iter().all(|g| {
            let period = g.containing(month.end());
            now >= period.key_expected_at(g.max_key(), PUBLISH_HOUR)
        })
    };
    while !published(last) {
        last = last.prev();
    }
    let first = last.plus(-(i64::from(months.max(1)) - 1));
    Scenario {
        grains: grains.to_vec(),
        from: first.start(),
        to: last.end(),
    }
}

/// A backfill of every day, week and month (of `grains`) of whole months,
/// reported per period against the ideal calls·latency/C.
fn mix(
    runtime: &tokio::runtime::Runtime,
    bin: &Path,
    args: &Args,
    grains: &[Grain],
) -> anyhow::Result<()> {
    let scenario = mix_range(grains, args.months, chrono::Utc::now());
    let run = runtime.block_on(backfill(
        bin,
        args,
        &scenario,
        args.mix_apps,
        args.latency_ms,
    ))?;
    let per_app: u64 = scenario.grains.iter().map(|&g| scenario.periods(g)).sum();
    println!(
        "\nlatency {} ms, A = {} apps × ({}) = {} periods each, {}..{}, C = {}",
        args.latency_ms,
        args.mix_apps,
        scenario.describe(),
        per_app,
        scenario.from,
        scenario.to,
        args.concurrency
    );
    report(&run, "period");
    for g in &run.per_grain {
        let expected = u64::from(args.mix_apps) * scenario.periods(g.grain);
        println!(
            "  {:<23}{} of {expected} stored with all {} keys, {} simulator calls ({:.3} per {})",
            g.grain.as_str(),
            g.stored,
            g.grain.keys().len(),
            g.sim_calls,
            g.sim_calls as f64 / g.stored.max(1) as f64,
            g.grain.unit()
        );
    }
    let ideal = Duration::from_secs_f64(
        run.periods as f64 * args.latency_ms as f64 / 1000.0 / f64::from(args.concurrency),
    );
    if args.latency_ms > 0 {
        let ratio = run.wall.as_secs_f64() / ideal.as_secs_f64();
        println!(
            "  wall / ideal           {ratio:.3}  (ideal calls·latency/C = {:.2} s)",
            ideal.as_secs_f64()
        );
    } else {
        println!(
            "  throughput             {:.0} periods/s",
            run.periods as f64 / run.wall.as_secs_f64()
        );
    }
    println!(
        "  CPU per 1,000 periods  {:.3} s",
        run.cpu.as_secs_f64() * 1000.0 / run.periods.max(1) as f64
    );
    println!(
        "  peak RSS               {:.1} MiB",
        run.max_rss_kib as f64 / 1024.0
    );
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

fn report(run: &Run, unit: &str) {
    let per = |n: u64| n as f64 / run.periods.max(1) as f64;
    println!(
        "  {:<23}{}{}",
        format!("{unit}s stored"),
        run.periods,
        if run.ok {
            ""
        } else {
            "  (backfill exited non-zero!)"
        }
    );
    println!("  wall                   {:.2} s", run.wall.as_secs_f64());
    println!(
        "  CPU (user+sys)         {:.2} s of the wxretain process",
        run.cpu.as_secs_f64()
    );
    println!(
        "  Postgres round trips   {} ({:.3} per {unit})",
        run.round_trips,
        per(run.round_trips)
    );
    println!(
        "  simulator calls        {} ({:.3} per {unit})",
        run.sim_calls,
        per(run.sim_calls)
    );
}

async fn backfill(
    bin: &Path,
    args: &Args,
    scenario: &Scenario,
    apps: u32,
    latency_ms: u64,
) -> anyhow::Result<Run> {
    let server = reqwest::Url::parse(&args.database_url)?;
    let mut db_url = server.clone();
    db_url.set_path("/wxretain_bench");
    let admin = sqlx::PgPool::connect(server.as_str()).await?;
    sqlx::query("DROP DATABASE IF EXISTS wxretain_bench WITH (FORCE)")
        .execute(&admin)
        .await?;
    admin.close().await;

    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "bench-secret")?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    }
    let mut toml = format!(
        "[database]\nmax_connections = 4\n\
         [wechat]\nmax_in_flight = {c}\nrate_per_second = 1000000\n\
         app_rate_per_second = 1000000\nretry_min_delay_ms = 20\n\
         [collect]\nretention = [{grains}]\n",
        c = args.concurrency,
        grains = scenario
            .grains
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in 1..=apps {
        toml.push_str(&format!(
            "[[apps]]\nappid = \"{}\"\nsecret_file = \"{}\"\n",
            sim_appid(n),
            secret.display()
        ));
    }
    let config = dir.path().join("wxretain.toml");
    std::fs::write(&config, toml)?;

    let sim_port = free_port()?;
    let mut sim = Command::new(bin)
        .args(["simulate", "--listen", &format!("127.0.0.1:{sim_port}")])
        .args(["--latency-ms", &latency_ms.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    wait_for_http(&format!("{sim_url}/__sim/stats")).await?;

    let pg_addr: SocketAddr = format!(
        "{}:{}",
        server.host_str().unwrap_or("127.0.0.1"),
        server.port().unwrap_or(5432)
    )
    .parse()?;
    let proxy = CountingProxy::start(pg_addr).await?;
    let mut proxied = db_url.clone();
    proxied.set_host(Some("127.0.0.1"))?;
    let _ = proxied.set_port(Some(proxy.port));
    // The proxy reads the protocol, so no TLS on this hop.
    proxied.query_pairs_mut().append_pair("sslmode", "disable");

    // `via` runs `bin` (itself, or the launcher that measures it).
    let command_via = |via: &Path, command: &[&str]| {
        let mut c = Command::new(via);
        if via != bin {
            c.arg(LAUNCH).arg(bin);
        }
        c.arg("--config")
            .arg(&config)
            .args(command)
            .env("DATABASE_URL", proxied.as_str())
            .env("WXRETAIN_WECHAT_BASE_URL", &sim_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        c
    };
    // Migrations are set-up, not part of the measure.
    let migrated = command_via(bin, &["migrate"]).status()?;
    anyhow::ensure!(migrated.success(), "wxretain migrate failed");
    proxy.round_trips.store(0, Ordering::SeqCst);

    print!(
        "running backfill of {apps} apps × {} at {latency_ms} ms … ",
        scenario.describe()
    );
    let _ = std::io::stdout().flush();
    let (from, to) = (scenario.from.to_string(), scenario.to.to_string());
    let grains = scenario
        .grains
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut command = vec!["backfill", "--from", &from, "--to", &to];
    // The weekly runs call backfill as they always did: the config's grain.
    if scenario.grains != [Grain::Weekly] {
        command.extend(["--retention", &grains]);
    }
    let launched = command_via(&std::env::current_exe()?, &command)
        .stdout(Stdio::piped())
        .output()?;
    anyhow::ensure!(launched.status.success(), "the launcher failed");
    let (ok, wall, usage) = parse_launched(&launched.stdout)?;
    println!("done in {:.2} s", wall.as_secs_f64());

    let stats: serde_json::Value = reqwest::get(format!("{sim_url}/__sim/stats"))
        .await?
        .json()
        .await?;
    let _ = sim.kill();
    let _ = sim.wait();
    let pool = sqlx::PgPool::connect(db_url.as_str()).await?;
    let mut per_grain = Vec::new();
    for &grain in &scenario.grains {
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM retention_ledger WHERE grain = $1 AND cardinality(keys) = $2",
        )
        .bind(grain.as_str())
        .bind(grain.keys().len() as i32)
        .fetch_one(&pool)
        .await?;
        per_grain.push(GrainCount {
            grain,
            stored: stored as u64,
            sim_calls: stats["by_grain"][grain.as_str()]["calls"]
                .as_u64()
                .unwrap_or(0),
        });
    }
    pool.close().await;
    Ok(Run {
        periods: per_grain.iter().map(|g| g.stored).sum(),
        per_grain,
        wall,
        cpu: usage.cpu,
        max_rss_kib: usage.max_rss_kib,
        round_trips: proxy.round_trips.load(Ordering::SeqCst),
        sim_calls: stats["total_data_calls"].as_u64().unwrap_or(0),
        ok,
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_http(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(url).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{url} did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

struct Usage {
    cpu: Duration,
    max_rss_kib: i64,
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
const LAUNCH: &str = "__launch";

/// The launcher: runs the command (stdout to /dev/null, stderr inherited),
/// reaps it with wait4 and prints `exited_ok wall_ns cpu_ns max_rss_kib`.
fn launch(command: &[std::ffi::OsString]) -> anyhow::Result<()> {
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
fn parse_launched(stdout: &[u8]) -> anyhow::Result<(bool, Duration, Usage)> {
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
fn wait_with_usage(child: Child) -> anyhow::Result<(bool, Usage)> {
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
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
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
struct CountingProxy {
    port: u16,
    round_trips: Arc<AtomicU64>,
}

impl CountingProxy {
    async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
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

async fn relay(
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
struct Frontend {
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

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes(slice.try_into().ok()?))
}
