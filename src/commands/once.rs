//! `wxretain once`: one scheduling pass, as a cron tick would run it.

use crate::config::Config;
use crate::pass::{run_pass, PassOptions};
use chrono::{DateTime, Utc};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit status:
  0  every period the pass attempted was stored, or is not yet published by WeChat
     (or no period was due)
  1  an attempted period failed (an app refused for its configuration included: no
     permission, wrong secret, IP not whitelisted), had its answer rejected, was
     put off because its app was paused, or could not be written; or the
     database could not be reached
  2  a bad config or arguments")]
pub struct OnceArgs {
    /// Act as if it were this instant (RFC 3339, e.g. 2026-11-23T10:30:00+08:00).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub as_of: Option<DateTime<Utc>>,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{text:?} is not an RFC 3339 instant like 2026-11-23T10:30:00+08:00 ({e})")
        })
}

pub async fn run(config: Config, args: OnceArgs) -> anyhow::Result<ExitCode> {
    let p = super::runtime(config).await?;
    let as_of = args.as_of.unwrap_or_else(|| p.clock.now());
    let opts = PassOptions {
        as_of,
        scope: p.kept_scope(as_of),
        plan: true,
    };
    let report = run_pass(&p, &opts, &CancellationToken::new(), None).await?;
    println!("{}", serde_json::to_string(&report)?);
    // Cron jobs and scripts read only the exit code: a period left unstored
    // for any reason but "not published yet" must not look like success.
    let unstored = report.failed + report.rejected + report.deferred + report.unsaved;
    Ok(if unstored == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
