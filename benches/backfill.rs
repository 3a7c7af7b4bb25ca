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
//! Last, the daily publication burst: the ledger of `--burst-apps` apps as
//! the daemon has it just before a day's keys come out, then one pass
//! (`wxretain once`), against the ideal cohorts·latency/C.
//!
//! The weekly latency run and the burst use wxretain's defaults (`--limits
//! defaults`): the config sets nothing but `max_in_flight`, and that only
//! with `--concurrency`. `--limits off` raises the rate limits out of the way
//! for the weekly run; the zero-latency run and the mix always do (they
//! measure throughput, and the per-app limit of 5 calls/s would bound a mix
//! of 100 apps × 216 periods at 43 s).
//! Figures, not assertions: this machine is shared and noisy.

use chrono::{DateTime, NaiveDate, Utc};
use clap::Parser;
use common::{fill_ledger, last_publication, launch, parse_launched, CountingProxy, Usage, LAUNCH};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;
use wxretain::config::{Config, ProcessEnv, DEFAULT_MAX_IN_FLIGHT};
use wxretain::domain::{Grain, NaturalWeek, Period, BEIJING};
use wxretain::simulator::sim_appid;

mod common;

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
    /// Requests in flight ([wechat] max_in_flight); unset: not in the
    /// config, wxretain's default.
    #[arg(long)]
    concurrency: Option<u32>,
    /// The weekly latency run's rate limits: `defaults` (none set) or `off`.
    #[arg(long, value_enum, default_value_t = Limits::Defaults)]
    limits: Limits,
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
    /// Apps of the daily publication burst (0 skips it).
    #[arg(long, default_value_t = 2000)]
    burst_apps: u32,
    /// Run only the burst.
    #[arg(long)]
    burst_only: bool,
    /// The Postgres server (a database wxretain_bench is created on it).
    #[command(flatten)]
    server: common::Server,
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

    if args.burst_only {
        return runtime.block_on(burst(&bin, &args));
    }
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
    let run = runtime.block_on(backfill(
        &bin,
        &args,
        &weekly,
        args.apps,
        args.latency_ms,
        args.limits,
    ))?;
    let ideal = Duration::from_secs_f64(
        run.periods as f64 * args.latency_ms as f64 / 1000.0 / f64::from(concurrency(&args)),
    );
    println!(
        "\nlatency {} ms, A = {} apps × W = {} weeks, C = {}{}, limits {:?}",
        args.latency_ms,
        args.apps,
        args.weeks,
        concurrency(&args),
        if args.concurrency.is_none() {
            " (the default)"
        } else {
            ""
        },
        args.limits
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
    print_peak_rss(run.max_rss_kib);

    if args.zero_latency_apps > 0 {
        let zero = runtime.block_on(backfill(
            &bin,
            &args,
            &weekly,
            args.zero_latency_apps,
            0,
            Limits::Off,
        ))?;
        println!(
            "\nlatency 0 ms, A = {} apps × W = {} weeks, C = {}, limits off",
            args.zero_latency_apps,
            args.weeks,
            concurrency(&args)
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
    if args.burst_apps > 0 {
        runtime.block_on(burst(&bin, &args))?;
    }
    Ok(())
}

/// C: `--concurrency`, or wxretain's default when the config leaves it out.
fn concurrency(args: &Args) -> u32 {
    args.concurrency
        .unwrap_or(u32::try_from(DEFAULT_MAX_IN_FLIGHT).unwrap_or(64))
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
            now >= period.morning_after(
                *wxretain::dataset::retention::keys(*g).last().unwrap_or(&0),
                PUBLISH_HOUR,
            )
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
        Limits::Off,
    ))?;
    let per_app: u64 = scenario.grains.iter().map(|&g| scenario.periods(g)).sum();
    println!(
        "\nlatency {} ms, A = {} apps × ({}) = {} periods each, {}..{}, C = {}, limits off",
        args.latency_ms,
        args.mix_apps,
        scenario.describe(),
        per_app,
        scenario.from,
        scenario.to,
        concurrency(args)
    );
    report(&run, "period");
    for g in &run.per_grain {
        let expected = u64::from(args.mix_apps) * scenario.periods(g.grain);
        println!(
            "  {:<23}{} of {expected} stored with all {} keys, {} simulator calls ({:.3} per {})",
            g.grain.as_str(),
            g.stored,
            wxretain::dataset::retention::keys(g.grain).len(),
            g.sim_calls,
            g.sim_calls as f64 / g.stored.max(1) as f64,
            g.grain.unit()
        );
    }
    let ideal = Duration::from_secs_f64(
        run.periods as f64 * args.latency_ms as f64 / 1000.0 / f64::from(concurrency(args)),
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

/// The peak RSS line of a report, against the 64 MB target.
fn print_peak_rss(max_rss_kib: i64) {
    println!(
        "  peak RSS               {:.1} MiB  (target ≤ 64: {})",
        max_rss_kib as f64 / 1024.0,
        verdict(max_rss_kib <= 64 * 1024)
    );
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

/// Which rate limits a run's config sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Limits {
    /// Nothing but `max_in_flight` (and only with `--concurrency`): what a
    /// new user gets.
    Defaults,
    /// `rate_per_second` and `app_rate_per_second` raised out of the way.
    Off,
}

/// A fresh database, a config of `apps` apps, a simulator and the counting
/// proxy: what each measured run starts from. The simulator stops on drop.
struct Setup {
    bin: PathBuf,
    _dir: tempfile::TempDir,
    config: PathBuf,
    sim: Child,
    sim_url: String,
    proxy: CountingProxy,
    /// The bench database, through the proxy.
    proxied: reqwest::Url,
    /// The bench database, directly.
    db_url: reqwest::Url,
}

impl Setup {
    async fn start(
        bin: &Path,
        args: &Args,
        grains: &[Grain],
        apps: u32,
        latency_ms: u64,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let db_url = args.server.database("wxretain_bench")?;
        args.server.drop_database("wxretain_bench").await?;

        let dir = tempfile::tempdir()?;
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "bench-secret")?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
        }
        let mut toml =
            String::from("[database]\nmax_connections = 4\n[wechat]\nretry_min_delay_ms = 20\n");
        if let Some(c) = args.concurrency {
            toml.push_str(&format!("max_in_flight = {c}\n"));
        }
        if limits == Limits::Off {
            toml.push_str("rate_per_second = 1000000\napp_rate_per_second = 1000000\n");
        }
        toml.push_str(&common::collect_section(grains));
        for n in 1..=apps {
            toml.push_str(&format!(
                "[[apps]]\nappid = \"{}\"\nsecret_file = \"{}\"\n",
                sim_appid(n),
                secret.display()
            ));
        }
        let config = dir.path().join("wxretain.toml");
        std::fs::write(&config, toml)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))?;
        }

        let (sim, sim_url) =
            common::simulator(bin, &["--latency-ms", &latency_ms.to_string()]).await?;

        let pg_addr: SocketAddr = format!(
            "{}:{}",
            db_url.host_str().unwrap_or("127.0.0.1"),
            db_url.port().unwrap_or(5432)
        )
        .parse()?;
        let proxy = CountingProxy::start(pg_addr).await?;
        let mut proxied = db_url.clone();
        proxied.set_host(Some("127.0.0.1"))?;
        let _ = proxied.set_port(Some(proxy.port));
        // The proxy reads the protocol, so no TLS on this hop.
        proxied.query_pairs_mut().append_pair("sslmode", "disable");
        let setup = Self {
            bin: bin.to_path_buf(),
            _dir: dir,
            config,
            sim,
            sim_url,
            proxy,
            proxied,
            db_url,
        };
        // Migrations are set-up, not part of the measure.
        let migrated = setup.command(bin, &["migrate"]).status()?;
        anyhow::ensure!(migrated.success(), "wxretain migrate failed");
        setup.proxy.round_trips.store(0, Ordering::SeqCst);
        Ok(setup)
    }

    /// `wxretain COMMAND` run by `via`: the binary itself, or the launcher
    /// that measures it.
    fn command(&self, via: &Path, command: &[&str]) -> Command {
        let mut c = Command::new(via);
        if via != self.bin {
            c.arg(LAUNCH).arg(&self.bin);
        }
        c.arg("--config")
            .arg(&self.config)
            .args(command)
            .env("DATABASE_URL", self.proxied.as_str())
            .env("WXRETAIN_WECHAT_BASE_URL", &self.sim_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        c
    }

    /// Runs `wxretain COMMAND` under the launcher: (exited 0, wall, usage).
    fn measure(&self, command: &[&str]) -> anyhow::Result<(bool, Duration, Usage)> {
        let launched = self
            .command(&std::env::current_exe()?, command)
            .stdout(Stdio::piped())
            .output()?;
        anyhow::ensure!(launched.status.success(), "the launcher failed");
        parse_launched(&launched.stdout)
    }

    async fn sim_stats(&self) -> anyhow::Result<serde_json::Value> {
        Ok(reqwest::get(format!("{}/__sim/stats", self.sim_url))
            .await?
            .json()
            .await?)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.sim.kill();
        let _ = self.sim.wait();
    }
}

async fn backfill(
    bin: &Path,
    args: &Args,
    scenario: &Scenario,
    apps: u32,
    latency_ms: u64,
    limits: Limits,
) -> anyhow::Result<Run> {
    let setup = Setup::start(bin, args, &scenario.grains, apps, latency_ms, limits).await?;
    print!(
        "running backfill of {apps} apps × {} at {latency_ms} ms, limits {limits:?} … ",
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
    let (ok, wall, usage) = setup.measure(&command)?;
    println!("done in {:.2} s", wall.as_secs_f64());

    let stats = setup.sim_stats().await?;
    let pool = sqlx::PgPool::connect(setup.db_url.as_str()).await?;
    let mut per_grain = Vec::new();
    for &grain in &scenario.grains {
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM retention_ledger WHERE grain = $1 AND cardinality(keys) = $2",
        )
        .bind(grain.as_str())
        .bind(i32::try_from(wxretain::dataset::retention::keys(grain).len()).unwrap_or(0))
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
        round_trips: setup.proxy.round_trips.load(Ordering::SeqCst),
        sim_calls: stats["total_data_calls"].as_u64().unwrap_or(0),
        ok,
    })
}

/// The day a day's keys come out: every app has key 0 of yesterday and keys
/// 1..7, 14 and 30 of the days that many days before it due at once, ten
/// cohorts per app. The ledger is filled as the daemon leaves it one second
/// before that publication (every kept day with the keys out by then, due
/// when its next key is expected; yesterday planned and waiting for key 0),
/// then one pass runs now, after it, on the simulator's real clock, which
/// publishes the same keys at the same hour (src/simulator/publish.rs).
async fn burst(bin: &Path, args: &Args) -> anyhow::Result<()> {
    let apps = args.burst_apps;
    let setup = Setup::start(
        bin,
        args,
        &[Grain::Daily],
        apps,
        args.latency_ms,
        Limits::Defaults,
    )
    .await?;
    let now = chrono::Utc::now();
    let published = last_publication(now, PUBLISH_HOUR);
    let before = published - chrono::Duration::seconds(1);
    // The days the pass keeps (the config's lookback), through yesterday.
    let config = Config::load(&setup.config, &ProcessEnv)?;
    let first = wxretain::planner::kept_periods(&config.schedule, Grain::Daily, now).0;
    let last = Grain::Daily.last_completed_at(now);
    let ids: Vec<String> = (1..=apps).map(|n| sim_appid(n).to_string()).collect();
    let pool = sqlx::PgPool::connect(setup.db_url.as_str()).await?;
    let filled = fill_ledger(&pool, &ids, first, last, before, PUBLISH_HOUR).await?;
    sqlx::query("VACUUM ANALYZE retention_ledger")
        .execute(&pool)
        .await?;
    let due: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retention_ledger WHERE next_due_at <= now()")
            .fetch_one(&pool)
            .await?;
    setup.proxy.round_trips.store(0, Ordering::SeqCst);
    print!(
        "\nrunning the burst: {apps} apps × {} days in the ledger ({filled} entries), {due} cohorts due since {published} … ",
        first.periods_until(last) + 1
    );
    let _ = std::io::stdout().flush();
    let (ok, wall, usage) = setup.measure(&["once"])?;
    println!("done in {:.2} s", wall.as_secs_f64());
    let stats = setup.sim_stats().await?;
    let calls = stats["by_grain"]["daily"]["calls"].as_u64().unwrap_or(0);
    let still_due: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retention_ledger WHERE next_due_at <= now()")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    let c = concurrency(args);
    let latency = args.latency_ms as f64 / 1000.0;
    let ideal = due as f64 * latency / f64::from(c);
    let ratio = wall.as_secs_f64() / ideal.max(f64::EPSILON);
    let cpu_per_k = usage.cpu.as_secs_f64() * 1000.0 / calls.max(1) as f64;
    println!(
        "\nburst at {} ms, C = {c}, limits defaults: {apps} apps, {due} cohorts due",
        args.latency_ms
    );
    println!(
        "  simulator calls        {calls} ({:.3} per due cohort; target 1: {}){}",
        calls as f64 / due.max(1) as f64,
        verdict(calls == due as u64),
        if ok { "" } else { "  (once exited non-zero!)" }
    );
    println!("  left due after        {still_due}");
    println!("  wall                   {:.2} s", wall.as_secs_f64());
    println!(
        "  wall / ideal           {ratio:.3}  (ideal cohorts·latency/C = {ideal:.2} s; target ≤ 1.1: {})",
        verdict(ratio <= 1.1)
    );
    println!(
        "  CPU per 1,000 calls    {cpu_per_k:.3} s  (target ≤ 0.1: {})",
        verdict(cpu_per_k <= 0.1)
    );
    print_peak_rss(usage.max_rss_kib);
    println!(
        "  Postgres round trips   {} ({:.3} per call)",
        setup.proxy.round_trips.load(Ordering::SeqCst),
        setup.proxy.round_trips.load(Ordering::SeqCst) as f64 / calls.max(1) as f64
    );
    // 10,000 apps: five times the calls; the fixed part (start-up, planning)
    // grows less than that, so scaling the whole wall is an upper bound.
    let scale = 10_000.0 / f64::from(apps.max(1));
    println!(
        "  projected to 10,000 apps: {:.0} calls, ideal {:.1} s, wall ≤ {:.1} s at this ratio, CPU {:.1} s",
        due as f64 * scale,
        ideal * scale,
        wall.as_secs_f64() * scale,
        usage.cpu.as_secs_f64() * scale
    );
    Ok(())
}
