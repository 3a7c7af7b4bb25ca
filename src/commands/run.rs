//! `wxretain run`: the long-lived service.

use crate::config::Config;
use crate::pass::Pipeline;
use crate::store::Store;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Address for /livez, /readyz and /metrics (default: [server] listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

pub async fn run(config: Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let metrics = crate::server::install_metrics()?;
    // Lazy: the daemon starts (and says it is not ready) while Postgres is down.
    let store = Store::connect_lazy(&config.database.url, config.database.max_connections)?;
    let listen = args.listen.unwrap_or(config.server.listen);
    let p = Arc::new(Pipeline::new(Arc::new(config), store.clone())?);
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    crate::server::serve(listen, &p, metrics, shutdown.clone()).await?;
    crate::scheduler::run(p, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (systemd, containers) and SIGINT (a terminal) both mean: stop taking
/// work, let the weeks in flight commit, exit 0.
fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    });
}
