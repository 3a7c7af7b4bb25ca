//! Command-line interface: parses arguments, loads the config, dispatches.

use crate::commands::{self, UsageError};
use crate::config::{Config, ConfigError, ProcessEnv};
use crate::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Keeps a Postgres table of WeChat Mini Program weekly user retention.
#[derive(Debug, Parser)]
#[command(name = "wxretain", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: $WXRETAIN_CONFIG, else ./wxretain.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "WXRETAIN_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Fetch every day, natural week and month overlapping a date range.
    Backfill(commands::backfill::BackfillArgs),
    /// Run one scheduling pass (every app, every period due), then exit.
    Once(commands::once::OnceArgs),
    /// Run as a daemon: a pass at start-up and on every cron tick.
    Run(commands::run::RunArgs),
    /// Show per-app health from the ledger.
    Status(commands::status::StatusArgs),
    /// Print one app's cohort triangle: users per day, week or month and who came back.
    Report(commands::report::ReportArgs),
    /// Serve the built-in WeChat simulator: tokens and the daily, weekly and monthly retention APIs.
    Simulate(crate::simulator::SimArgs),
    /// First run: simulator, migrate, backfill a few apps, show what landed.
    Demo(commands::demo::DemoArgs),
}

/// How long blocking tasks left when a command has finished may hold up the
/// exit (see [`main`]): `run`'s drain has already waited for the work that
/// matters, and a supervisor's stop timeout counts both.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Exit codes: 0 done, 1 failed or incomplete (for `status`: an app needs
/// attention), 2 bad config or arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return refuse_arguments(e),
    };
    // The demo prints its own story; per-fetch lines would drown it.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn",
        _ => telemetry::DEFAULT_FILTER,
    };
    let format = cli.log_format;
    telemetry::init(format, default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("cannot start the async runtime: {e}");
            telemetry::fatal(format, &message, 1);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Dropping the runtime would wait for every blocking task to end: a DNS
    // lookup whose name server never answers, a read of a hung file system.
    // The command is done; whatever still blocks is given a moment, then
    // left to the process's exit.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    match result {
        Ok(code) => code,
        Err(e) => {
            let usage = e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<UsageError>().is_some();
            let code = if usage { 2 } else { 1 };
            telemetry::fatal(format, &telemetry::describe(&e), code);
            ExitCode::from(code)
        }
    }
}

/// clap's own refusal (a mistyped flag, a missing argument), or `--help`.
/// With JSON logs asked for, a refusal is one JSON line like any other error.
fn refuse_arguments(e: clap::Error) -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let env = std::env::var("WXRETAIN_LOG_FORMAT").ok();
    if !e.use_stderr() || !telemetry::json_requested(&args, env.as_deref()) {
        e.exit()
    }
    let rendered = e.render().to_string();
    let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    telemetry::fatal(LogFormat::Json, message.trim_end(), code);
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let load = || -> Result<Config, ConfigError> {
        let path = Config::locate(cli.config.as_deref(), &ProcessEnv);
        Config::load(&path, &ProcessEnv)
    };
    match cli.command {
        Command::Migrate => {
            let url = commands::database_url(cli.config.as_deref(), &ProcessEnv)?;
            commands::migrate::run(&url).await
        }
        Command::Backfill(args) => commands::backfill::run(load()?, args).await,
        Command::Once(args) => commands::once::run(load()?, args).await,
        Command::Run(args) => commands::run::run(load()?, args).await,
        // Commands that only touch the database never read the apps' secrets.
        Command::Status(args) => {
            let config = commands::config_without_secrets(cli.config.as_deref(), &ProcessEnv)?;
            commands::status::run(config, args).await
        }
        Command::Report(args) => {
            let (url, config) =
                commands::database_url_and_config(cli.config.as_deref(), &ProcessEnv)?;
            commands::report::run(url, config.as_ref(), args).await
        }
        Command::Simulate(args) => {
            crate::simulator::serve_until_ctrl_c(&args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => commands::demo::run(args).await,
    }
}
