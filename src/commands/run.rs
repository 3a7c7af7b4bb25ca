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
    let metrics = crate::metrics::install()?;
    // Lazy: the daemon starts (and says it is not ready) while Postgres is down.
    let store = Store::connect_lazy(&config.database.url, config.database.max_connections)?;
    let listen = args.listen.unwrap_or(config.server.listen);
    let p = Arc::new(Pipeline::new(Arc::new(config), store.clone())?);
    let shutdown = CancellationToken::new();
    super::signals::stop_on_signals(
        shutdown.clone(),
        "stopping: no new work; waiting for the weeks in flight",
    );
    crate::server::serve(listen, &p, metrics, shutdown.clone()).await?;
    crate::scheduler::run(p, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
