//! Ledger-scale benchmark: `cargo bench --bench ledger [-- OPTIONS]`.
//!
//! Fills a ledger with A apps × W weeks (default 10,000 × 104: two years of a
//! large third-party platform), then times what every replica does on every
//! tick with nothing due (`wxretain once`: plan, release, claim) and what an
//! operator runs (`wxretain status`), through the real binary. With
//! `--plans FILE` it also writes the query plans Postgres chose for them
//! (auto_explain, sent to the client as notices), for docs/benchmarks.md.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wxretain::domain::{NaturalWeek, BEIJING};
use wxretain::simulator::sim_appid;

#[derive(Parser, Debug)]
#[command(about = "wxretain ledger-scale benchmark")]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    apps: u32,
    #[arg(long, default_value_t = 104)]
    weeks: u32,
    /// Runs of each command (the median is printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the plans of each command's queries here.
    #[arg(long, value_name = "FILE")]
    plans: Option<PathBuf>,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wxretain"));
    let runtime = tokio::runtime::Runtime::new()?;
    let mut url = reqwest::Url::parse(&args.database_url)?;
    url.set_path("/wxretain_bench_ledger");
    println!(
        "wxretain ledger benchmark — {} — {} apps × {} weeks",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        args.apps,
        args.weeks
    );
    let filled = Instant::now();
    runtime.block_on(fill(&args, url.as_str(), &bin))?;
    println!("ledger filled in {:.1} s", filled.elapsed().as_secs_f64());

    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), args.apps)?;
    let run =
        |command: &[&str], extra_env: &[(&str, &str)]| -> anyhow::Result<(Duration, String)> {
            let started = Instant::now();
            let out = Command::new(&bin)
                .arg("--config")
                .arg(&config)
                .args(command)
                .env("DATABASE_URL", url.as_str())
                // Nothing is due: no call may reach WeChat; a closed port proves it.
                .env("WXRETAIN_WECHAT_BASE_URL", "http://127.0.0.1:1")
                .env("RUST_LOG", "warn")
                .envs(extra_env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()?;
            let elapsed = started.elapsed();
            anyhow::ensure!(
                out.status.success(),
                "wxretain {command:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok((elapsed, String::from_utf8_lossy(&out.stderr).into_owned()))
        };

    let commands: [(&str, &[&str]); 3] = [
        ("once (a tick with nothing due)", &["once"]),
        ("status", &["status"]),
        ("status --json", &["status", "--json"]),
    ];
    for (label, command) in commands {
        let mut times = Vec::new();
        for _ in 0..args.runs.max(1) {
            times.push(run(command, &[])?.0);
        }
        times.sort();
        println!(
            "  {label:<32} {:>7.3} s  (median of {}; the process's whole run)",
            times[times.len() / 2].as_secs_f64(),
            times.len()
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
            let (_, stderr) = run(command, &env)?;
            text.push_str(&format!("==== wxretain {label}\n{stderr}\n"));
        }
        std::fs::write(path, text)?;
        println!("plans written to {}", path.display());
    }
    Ok(())
}

fn write_config(dir: &Path, apps: u32) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let secret = dir.join("secret");
    std::fs::write(&secret, "bench-secret")?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    // Weekly only: this measures the weekly ledger's scale, as before the
    // daily and monthly grains existed (issue: 10,000 apps × three grains).
    let mut toml =
        String::from("[schedule]\nlookback_weeks = 104\n[collect]\nretention = [\"weekly\"]\n");
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

/// A ledger as two years of collecting leave it: everything complete but the
/// last four weeks, which mature and are due next Monday.
async fn fill(args: &Args, url: &str, bin: &Path) -> anyhow::Result<()> {
    let admin = sqlx::PgPool::connect(&args.database_url).await?;
    sqlx::query("DROP DATABASE IF EXISTS wxretain_bench_ledger WITH (FORCE)")
        .execute(&admin)
        .await?;
    admin.close().await;
    let migrated = Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", url)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(migrated.success(), "wxretain migrate failed");

    let last = NaturalWeek::last_completed_at(chrono::Utc::now(), BEIJING);
    let first = last.plus_weeks(-(i64::from(args.weeks) - 1));
    let maturing_from = last.plus_weeks(-3);
    let next_due = last.next().local_instant(7, 10, BEIJING);
    let apps: Vec<String> = (1..=args.apps).map(|n| sim_appid(n).to_string()).collect();
    let pool = sqlx::PgPool::connect(url).await?;
    sqlx::query(
        "INSERT INTO retention_ledger
             (appid, grain, period_start, state, keys, calls, last_success_at, last_attempt_at, next_due_at)
         SELECT a, 'weekly', w::date,
                CASE WHEN w >= $3 THEN 'maturing' ELSE 'complete' END,
                CASE WHEN w >= $3 THEN '{0,1}'::smallint[] ELSE '{0,1,2,3,4}' END,
                3, now() - interval '1 day', now() - interval '1 day',
                CASE WHEN w >= $3 THEN $4::timestamptz END
           FROM unnest($5::text[]) AS a
          CROSS JOIN generate_series($1::date, $2::date, interval '7 days') AS w",
    )
    .bind(first.monday())
    .bind(last.monday())
    .bind(maturing_from.monday())
    .bind(next_due)
    .bind(&apps)
    .execute(&pool)
    .await?;
    sqlx::query("VACUUM ANALYZE retention_ledger")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}
