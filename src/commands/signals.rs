//! Stop signals for the commands that drain their work before exiting.

use tokio_util::sync::CancellationToken;

/// SIGTERM (systemd, containers) and SIGINT (a terminal) both mean: stop
/// taking work, let the weeks in flight commit, then exit; `on_first` says so
/// to the operator. A second signal means they will not wait: the process
/// exits at once with 128 + the signal's number (130 for SIGINT, 143 for
/// SIGTERM), as if the signal had killed it, and the weeks in flight are
/// taken again when their leases end.
pub fn stop_on_signals(shutdown: CancellationToken, on_first: &'static str) {
    // Listening starts here, not in the task: a signal sent before the task
    // first runs is then caught, not fatal.
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for stop signals");
            return;
        }
    };
    tokio::spawn(async move {
        let first = signals.next().await;
        tracing::info!(
            signal = first.name,
            "{on_first}; a second signal exits at once"
        );
        shutdown.cancel();
        let second = signals.next().await;
        tracing::warn!(
            signal = second.name,
            "second stop signal: exiting at once, without waiting for weeks in flight"
        );
        std::process::exit(second.exit_code);
    });
}

/// A stop signal received.
struct Received {
    name: &'static str,
    exit_code: i32,
}

/// The stop signals, listened for once for the whole process: a listener
/// made after a signal arrived would miss it.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Self> {
        Ok(Self {})
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Received {
        // `None` only once the runtime is going away: nothing to report then.
        tokio::select! {
            Some(()) = self.term.recv() => Received { name: "SIGTERM", exit_code: 128 + 15 },
            Some(()) = self.int.recv() => Received { name: "SIGINT", exit_code: 128 + 2 },
            else => std::future::pending().await,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Received {
        // Without a way to listen, never report a signal rather than a false one.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        Received {
            name: "ctrl-c",
            exit_code: 130,
        }
    }
}
