//! `wxretain run`: the long-lived service.

use crate::config::Config;
use crate::runtime::Runtime;
use crate::store::Store;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Several copies on one host share a config file: give each its own \
--listen (or WXRETAIN_LISTEN), or --listen off for all but one. A copy whose address is \
taken exits 1 and says so."
)]
pub struct RunArgs {
    /// Address for /livez, /readyz and /metrics, or `off` for none
    /// (default: `[server] listen`).
    #[arg(long, env = "WXRETAIN_LISTEN", value_name = "ADDR|off", value_parser = Listen::parse)]
    pub listen: Option<Listen>,
}

/// Where the operator's HTTP listener goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    At(SocketAddr),
    /// No listener: a copy whose health and metrics are watched elsewhere
    /// (another copy on the same host, the database's views).
    Off,
}

impl Listen {
    pub fn parse(text: &str) -> Result<Listen, String> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        text.parse()
            .map(Listen::At)
            .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:9187, nor `off`"))
    }
}

pub async fn run(config: Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let metrics = crate::metrics::install(&config.apps)?;
    // Lazy: the daemon starts (and says it is not ready) while Postgres is down.
    let store = Store::connect_lazy(&config.database.url, config.database.max_connections)?;
    let (listen, from) = match args.listen {
        Some(listen) => (listen, "--listen / WXRETAIN_LISTEN"),
        None => (Listen::At(config.server.listen), "[server] listen"),
    };
    let p = Arc::new(Runtime::new(Arc::new(config), store.clone())?);
    let shutdown = CancellationToken::new();
    super::signals::stop_on_signals(
        shutdown.clone(),
        "stopping: no new work; waiting for the periods in flight",
    );
    match listen {
        Listen::At(addr) => {
            let readiness = crate::server::Readiness {
                store: p.store.clone(),
                clock: p.clock,
                max_clock_skew: p.config.schedule.max_clock_skew,
            };
            crate::server::serve(addr, readiness, metrics, shutdown.clone())
                .await
                .map_err(|e| taken_hint(e, addr, from))?;
        }
        Listen::Off => {
            tracing::info!("no HTTP listener (--listen off): no /livez, /readyz or /metrics")
        }
    }
    crate::daemon::run(p, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// A taken address is what a second copy on the same host meets with the
/// same config: say how to give it its own, instead of picking a port the
/// operator's scraper does not know.
fn taken_hint(e: anyhow::Error, addr: SocketAddr, from: &str) -> anyhow::Error {
    let in_use = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .find(|io| io.kind() == std::io::ErrorKind::AddrInUse);
    match in_use {
        Some(io) => anyhow::anyhow!(
            "cannot listen on {addr} (from {from}): {io}; another process (another copy of \
             `wxretain run`?) has it. To run several copies on one host, give each its own \
             address with --listen ADDR or WXRETAIN_LISTEN=ADDR, or --listen off"
        ),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_is_an_address_or_off() {
        assert_eq!(
            Listen::parse("127.0.0.1:9188"),
            Ok(Listen::At(([127, 0, 0, 1], 9188).into()))
        );
        assert_eq!(Listen::parse("off"), Ok(Listen::Off));
        assert_eq!(Listen::parse("OFF"), Ok(Listen::Off));
        let refused = Listen::parse("9188").expect_err("a port alone");
        assert!(refused.contains("nor `off`"), "{refused}");
    }
}
