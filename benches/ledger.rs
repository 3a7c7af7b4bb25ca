//! Ledger-scale benchmark: `cargo bench --bench ledger [-- OPTIONS]`.
//!
//! Fills a ledger with A apps (default 10,000) × every period of the three
//! grains the daemon keeps by default (182 days, 26 weeks, 5–6 months: about
//! 2.1 million entries), as the daemon leaves it: nothing due. Then it times
//! what every replica does on every tick (planning, in-process, cold and
//! again; `wxretain once` as a process: plan, release, claim) and what an
//! operator runs (`wxretain status`), with each process's peak RSS. Last, the
//! daemon's whole pass on a publication day: the ledger as it is one second
//! before the day's keys come out, `wxretain run` against the simulator at
//! 0 ms, its pass time and peak RSS (VmHWM) once the pass and the gauges are
//! done and /metrics was scraped. With `--plans FILE` it also writes the
//! query plans Postgres chose (auto_explain, sent to the client as notices).

use clap::Parser;
use common::{fill_ledger, free_port, last_publication, launch, parse_launched, LAUNCH};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxretain::config::{Config, ProcessEnv};
use wxretain::domain::Grain;
use wxretain::simulator::sim_appid;

mod common;

#[derive(Parser, Debug)]
#[command(about = "wxretain ledger-scale benchmark")]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    apps: u32,
    /// Grains collected (comma-separated); default all three.
    #[arg(long, value_delimiter = ',', default_value = "daily,weekly,monthly")]
    retention: Vec<Grain>,
    /// Runs of each command (the median is printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the plans of each command's queries here.
    #[arg(long, value_name = "FILE")]
    plans: Option<PathBuf>,
    /// Skip the daemon's pass on a publication day.
    #[arg(long)]
    no_pass: bool,
    #[command(flatten)]
    server: common::Server,
}

/// Beijing hour keys come out (the config's and the simulator's default).
/// The database the bench makes, and drops first, on the server.
const LEDGER_DB: &str = "wxretain_bench_ledger";

const PUBLISH_HOUR: u32 = 10;

fn main() -> anyhow::Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == LAUNCH) {
        return launch(&argv[2..]);
    }
    let args = Args::parse();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wxretain"));
    let runtime = tokio::runtime::Runtime::new()?;
    let url = args.server.database(LEDGER_DB)?;
    let dir = tempfile::tempdir()?;
    let config_path = write_config(dir.path(), args.apps, &args.retention)?;
    let config = Config::load(&config_path, &ProcessEnv)?;
    println!(
        "wxretain ledger benchmark — {} — {} apps × {:?}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        args.apps,
        args.retention
    );
    let filled = Instant::now();
    let entries = runtime.block_on(fill(&args, &config, url.as_str(), &bin, None))?;
    println!(
        "ledger filled with {entries} entries in {:.1} s (nothing due)",
        filled.elapsed().as_secs_f64()
    );

    runtime.block_on(plan_in_process(&config, url.as_str(), args.runs))?;

    let run = |command: &[&str], extra_env: &[(&str, &str)], measured: bool| {
        let me = std::env::current_exe()?;
        let mut c = Command::new(if measured { &me } else { &bin });
        if measured {
            c.arg(LAUNCH).arg(&bin);
        }
        let out = c
            .arg("--config")
            .arg(&config_path)
            .args(command)
            .env("DATABASE_URL", url.as_str())
            // Nothing is due: no call may reach WeChat; a closed port proves it.
            .env("WXRETAIN_WECHAT_BASE_URL", "http://127.0.0.1:1")
            .env("RUST_LOG", "warn")
            .envs(extra_env.iter().copied())
            .stdout(if measured {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "wxretain {command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    };

    let commands: [(&str, &[&str]); 3] = [
        ("once (a tick with nothing due)", &["once"]),
        ("status", &["status"]),
        ("status --json", &["status", "--json"]),
    ];
    for (label, command) in commands {
        let mut times = Vec::new();
        let mut peak = 0;
        for _ in 0..args.runs.max(1) {
            let out = run(command, &[], true)?;
            let (ok, wall, usage) = parse_launched(&out.stdout)?;
            anyhow::ensure!(ok, "wxretain {command:?} exited non-zero");
            times.push(wall);
            peak = peak.max(usage.max_rss_kib);
        }
        times.sort();
        println!(
            "  {label:<32} {:>7.3} s  (median of {}; the process's whole run), peak RSS {:.1} MiB",
            times[times.len() / 2].as_secs_f64(),
            times.len(),
            peak as f64 / 1024.0
        );
    }

    if let Some(path) = &args.plans {
        // auto_explain at NOTICE level reaches the client, and sqlx logs notices.
        let options =
            "-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 \
                       -c auto_explain.log_analyze=on -c auto_explain.log_buffers=on \
                       -c auto_explain.log_level=notice";
        let env = [
            ("PGOPTIONS", options),
            ("RUST_LOG", "warn,sqlx::postgres::notice=info"),
            ("NO_COLOR", "1"),
        ];
        let mut text = String::new();
        for (label, command) in commands {
            let out = run(command, &env, false)?;
            text.push_str(&format!(
                "==== wxretain {label}\n{}\n",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::fs::write(path, text)?;
        println!("plans written to {}", path.display());
    }

    if !args.no_pass {
        runtime.block_on(once_pass(&args, &config, &config_path, &url, &bin))?;
        runtime.block_on(daemon_pass(&args, &config, &config_path, &url, &bin))?;
    }
    Ok(())
}

/// Planning as a tick runs it, in this process: the first call of a fresh
/// pipeline (what `once` and a daemon's first tick pay) and the calls after
/// it (every later tick of the same day).
async fn plan_in_process(config: &Config, url: &str, runs: usize) -> anyhow::Result<()> {
    let store =
        wxretain::store::Store::connect(&secrecy::SecretString::from(url.to_string()), 4).await?;
    let apps: Vec<_> = config.apps.iter().map(|a| a.appid.clone()).collect();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..runs.max(1) {
        let p = wxretain::runtime::Runtime::new(Arc::new(config.clone()), store.clone())?;
        let now = chrono::Utc::now();
        let started = Instant::now();
        let planned = p.plan(&apps, now).await?;
        cold.push(started.elapsed());
        anyhow::ensure!(
            planned == 0,
            "planning added {planned} periods: the fill is not what the planner expects"
        );
        let started = Instant::now();
        p.plan(&apps, now).await?;
        warm.push(started.elapsed());
    }
    cold.sort();
    warm.sort();
    println!(
        "  planning, a fresh process      {:>7.3} s  (median of {}; target ≤ 0.5 s)",
        cold[cold.len() / 2].as_secs_f64(),
        cold.len()
    );
    println!(
        "  planning, the next tick        {:>7.3} s  (median of {})",
        warm[warm.len() / 2].as_secs_f64(),
        warm.len()
    );
    store.pool().close().await;
    Ok(())
}

fn write_config(dir: &Path, apps: u32, grains: &[Grain]) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let secret = dir.join("secret");
    std::fs::write(&secret, "bench-secret")?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    // The defaults but the grains: 26 weeks kept, max_in_flight, no rate cap.
    let mut toml = common::collect_section(grains);
    for n in 1..=apps {
        toml.push_str(&format!(
            "[[apps]]\nappid = \"{}\"\nsecret_file = \"{}\"\n",
            sim_appid(n),
            secret.display()
        ));
    }
    let path = dir.join("wxretain.toml");
    std::fs::write(&path, toml)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

/// A fresh database whose ledger holds every kept period of every grain, as
/// the daemon leaves it at `as_of` (default now: nothing due).
async fn fill(
    args: &Args,
    config: &Config,
    url: &str,
    bin: &Path,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<u64> {
    args.server.drop_database(LEDGER_DB).await?;
    common::migrate(bin, url)?;

    let now = chrono::Utc::now();
    let as_of = as_of.unwrap_or(now);
    let ids: Vec<String> = config.apps.iter().map(|a| a.appid.to_string()).collect();
    let pool = sqlx::PgPool::connect(url).await?;
    let mut entries = 0;
    for &grain in &args.retention {
        // The periods a pass at `now` keeps.
        let first = wxretain::planner::kept_periods(&config.schedule, grain, now).0;
        let last = grain.last_completed_at(now);
        entries += fill_ledger(&pool, &ids, first, last, as_of, PUBLISH_HOUR).await?;
    }
    sqlx::query("VACUUM ANALYZE retention_ledger")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(entries)
}

/// `wxretain once` on a publication day (see [`daemon_pass`]): the pass
/// alone, with no metrics recorder, under the launcher for its peak RSS.
async fn once_pass(
    args: &Args,
    config: &Config,
    config_path: &Path,
    url: &reqwest::Url,
    bin: &Path,
) -> anyhow::Result<()> {
    let published = fill_before_publication(args, config, url, bin).await?;
    let (mut sim, sim_url) = common::simulator(bin, &[]).await?;
    let out = Command::new(std::env::current_exe()?)
        .arg(LAUNCH)
        .arg(bin)
        .arg("--config")
        .arg(config_path)
        .arg("once")
        .env("DATABASE_URL", url.as_str())
        .env("WXRETAIN_WECHAT_BASE_URL", &sim_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()?;
    let _ = sim.kill();
    let _ = sim.wait();
    let (ok, wall, usage) = parse_launched(&out.stdout)?;
    println!(
        "\n  wxretain once on the publication of {published}: {:.1} s{}, CPU {:.1} s, peak RSS {:.1} MiB  (target ≤ 64 MB)",
        wall.as_secs_f64(),
        if ok { "" } else { " (exited non-zero!)" },
        usage.cpu.as_secs_f64(),
        usage.max_rss_kib as f64 / 1024.0
    );
    Ok(())
}

/// Fills the ledger as it was one second before the latest publication, so
/// that everything published then is due; returns that publication.
async fn fill_before_publication(
    args: &Args,
    config: &Config,
    url: &reqwest::Url,
    bin: &Path,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let published = last_publication(chrono::Utc::now(), PUBLISH_HOUR);
    fill(
        args,
        config,
        url.as_str(),
        bin,
        Some(published - chrono::Duration::seconds(1)),
    )
    .await?;
    Ok(published)
}

/// The daemon's start-up pass on a publication day, from the ledger as it
/// was one second before the latest publication: everything published then
/// is due (ten cohorts per app on any day; the weeks too on a Monday, the
/// months on the 1st).
async fn daemon_pass(
    args: &Args,
    config: &Config,
    config_path: &Path,
    url: &reqwest::Url,
    bin: &Path,
) -> anyhow::Result<()> {
    let filled = Instant::now();
    let published = fill_before_publication(args, config, url, bin).await?;
    let pool = sqlx::PgPool::connect(url.as_str()).await?;
    let due: Vec<(String, i64)> = sqlx::query_as(
        "SELECT grain, count(*) FROM retention_ledger WHERE next_due_at <= now() GROUP BY grain ORDER BY grain",
    )
    .fetch_all(&pool)
    .await?;
    let total: i64 = due.iter().map(|(_, n)| n).sum();
    println!(
        "\nthe daemon's pass on the publication of {published}: ledger refilled in {:.1} s, due {due:?}",
        filled.elapsed().as_secs_f64()
    );

    let (mut sim, sim_url) = common::simulator(bin, &[]).await?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let started = Instant::now();
    let mut daemon = Command::new(bin)
        .arg("--config")
        .arg(config_path)
        .args(["run", "--listen", &listen])
        .env("DATABASE_URL", url.as_str())
        .env("WXRETAIN_WECHAT_BASE_URL", &sim_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = daemon.id();
    let metrics_url = format!("http://{listen}/metrics");
    // The pass is done when its timestamp is out, the gauges after it when
    // wxretain_periods is: both before the metrics are read once more.
    let mut pass_done = None;
    let mut hwm_at_pass = String::new();
    let mut scrape_bytes;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the daemon's pass took over 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(response) = reqwest::get(&metrics_url).await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        scrape_bytes = text.len();
        if pass_done.is_none() && text.contains("wxretain_last_successful_pass_timestamp_seconds") {
            pass_done = Some(started.elapsed());
            hwm_at_pass = vm_hwm(pid)?;
        }
        if pass_done.is_some() && text.contains("wxretain_periods{") {
            break;
        }
    }
    let hwm = vm_hwm(pid)?;
    // SAFETY: `pid` is our own child, not yet reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let _ = daemon.wait();
    let stats: serde_json::Value = reqwest::get(format!("{sim_url}/__sim/stats"))
        .await?
        .json()
        .await?;
    let _ = sim.kill();
    let _ = sim.wait();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retention_ledger WHERE next_due_at <= now()")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    let calls = stats["total_data_calls"].as_u64().unwrap_or(0);
    let pass = pass_done.unwrap_or_default();
    println!(
        "  wxretain run: start-up pass done in {:.1} s ({calls} calls for {total} due, {left} left due, {:.0} calls/s at 0 ms)",
        pass.as_secs_f64(),
        calls as f64 / pass.as_secs_f64().max(f64::EPSILON)
    );
    println!(
        "  peak RSS (VmHWM): {hwm_at_pass} when the pass was seen done; {hwm} after the gauges and a scrape of {:.1} MiB  (target ≤ 64 MB)",
        scrape_bytes as f64 / 1048576.0
    );
    Ok(())
}

/// A process's peak resident set so far, as /proc says it (`VmHWM`).
fn vm_hwm(pid: u32) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        .unwrap_or_default())
}
