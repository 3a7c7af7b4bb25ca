//! Starting, observing and stopping a simulator.

use super::config::{SimArgs, SimConfig};
use super::engine::Engine;
use super::faults::Faults;
use super::server::router;
use super::stats::SimStats;
use super::SimClock;
use crate::domain::{AppId, NaturalWeek, Period};
use anyhow::Context;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long `shutdown` waits for open requests before dropping them.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Namespace for starting a simulator.
pub struct Simulator;

impl Simulator {
    /// Binds `listen` (port 0 picks a free port) and serves in a background task.
    pub async fn start(config: SimConfig, listen: SocketAddr) -> anyhow::Result<SimulatorHandle> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener
            .local_addr()
            .context("bound socket has no address")?;
        let engine = Arc::new(Engine::new(config));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = router(engine.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        tracing::info!(%addr, "WeChat API simulator listening");
        Ok(SimulatorHandle {
            addr,
            engine,
            stop: Arc::new(Mutex::new(Some((stop_tx, task)))),
        })
    }
}

/// What `shutdown` needs: the stop signal and the serving task, taken once.
type Stopper = Arc<Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>>;

/// A running simulator; clones share it.
#[derive(Clone)]
pub struct SimulatorHandle {
    addr: SocketAddr,
    engine: Arc<Engine>,
    stop: Stopper,
}

impl SimulatorHandle {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`, with a wildcard bind address replaced by loopback
    /// so the URL can be called from this machine.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    pub fn clock(&self) -> &SimClock {
        &self.engine.clock
    }

    /// A snapshot of the call counters.
    pub fn stats(&self) -> SimStats {
        self.engine.stats()
    }

    /// `getWeeklyRetain` calls (errored included) whose token belonged to
    /// `appid` and whose body named `week`.
    pub fn calls_for(&self, appid: &AppId, week: NaturalWeek) -> u64 {
        self.engine.stats().calls_for(appid, week)
    }

    /// Calls of `period`'s API (errored included) whose token belonged to
    /// `appid` and whose body named `period`.
    pub fn calls_for_period(&self, appid: &AppId, period: Period) -> u64 {
        self.engine.stats().calls_for_period(appid, period)
    }

    /// Each data call's arrival time (since the simulator started) and the
    /// app its token belonged to, in arrival order (the first million calls).
    pub fn arrivals(&self) -> Vec<(Option<AppId>, std::time::Duration)> {
        self.engine.arrivals()
    }

    /// Every access token handed out (while fewer than 100,000 were), so a
    /// test can check that none of them was stored or logged.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.engine.issued_tokens()
    }

    /// The faults in force.
    pub fn faults_now(&self) -> Faults {
        self.engine.faults()
    }

    /// Replaces the faults and reseeds the fault RNG with `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        self.engine.set_faults(faults);
    }

    /// Stops accepting, lets open requests finish (up to 5 s), then returns.
    /// Stopping one clone stops them all; later calls return at once.
    pub async fn shutdown(self) {
        let stop = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((tx, mut task)) = stop {
            let _ = tx.send(());
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// For `wxretain simulate`: starts a simulator and serves until ctrl-c.
pub async fn serve_until_ctrl_c(args: &SimArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let handle = Simulator::start(config, args.listen).await?;
    println!("WeChat API simulator at {}", handle.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for ctrl-c")?;
    handle.shutdown().await;
    Ok(())
}

/// Deterministic demo appids: `wx51a0000000000000` + n, in hex.
pub fn sim_appid(n: u32) -> AppId {
    let text = format!("wx{:016x}", 0x51a0_0000_0000_0000_u64 + u64::from(n));
    match text.parse() {
        Ok(appid) => appid,
        // 16 lowercase hex digits after "wx" always parse.
        Err(_) => unreachable!("sim_appid produced {text}"),
    }
}
