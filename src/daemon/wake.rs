//! Between cron ticks, the daemon wakes when the earliest period falls due:
//! a quota pause that ends (45011 at the next minute, 45009 at Beijing
//! midnight), a late key's retry, a `backfill --enqueue`, a dead replica's
//! lease that runs out. Each is a `next_due_at` in the ledger, so one rule
//! covers them all: sleep until the earliest one, then run a pass.
//!
//! The ledger is read again every [`POLL`] rather than told of changes by
//! `LISTEN`/`NOTIFY`: a poll sees every way a period becomes due (an enqueue
//! by any release, SQL by hand, another replica's deferral, a lease running
//! out, which no one announces), needs no connection held open per replica,
//! works through a transaction-pooling PgBouncer, and costs one indexed
//! `LIMIT 1` query every few seconds. A notification could only save those
//! few seconds, which [`MIN_GAP`] spends anyway.

use crate::runtime::Runtime;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the earliest due time is read again while nothing is due.
pub const POLL: Duration = Duration::from_secs(5);

/// The least time between the end of one pass and a wake-up pass: a period
/// due again at once (a call held back by a pause, a lease kept by a live
/// replica that just ran out) must not become a busy loop of passes.
pub const MIN_GAP: Duration = Duration::from_secs(5);

/// After a wake-up pass that failed (the clocks disagree, the database went
/// away mid-pass), the next waits this long: the error is not news every
/// few seconds, and the ticks go on as before.
pub const AFTER_FAILURE: Duration = Duration::from_secs(60);

/// Runs a pass (fetching, not planning) whenever a period of a configured app
/// is due, until `shutdown`. `gate` is the scheduler's: a wake-up waits for a
/// pass in flight instead of overlapping it. `pass_done` is told at the end
/// of every other pass.
pub async fn wake_when_due(
    p: Arc<Runtime>,
    gate: Arc<Mutex<()>>,
    shutdown: CancellationToken,
    pass_done: Arc<Notify>,
) {
    // The start-up pass has just begun: the gap holds the first wake-up back.
    let mut last_pass_end = Instant::now();
    loop {
        // A replica of this host that died holds its periods until its
        // lease ends; nothing else would announce them sooner. Freed here,
        // they are due at once (they were due when it took them).
        match p.store.release_dead_local(&p.owner).await {
            Ok(0) | Err(_) => {}
            Ok(n) => tracing::info!(
                periods = n,
                "took back periods leased by a process of this host that died"
            ),
        }
        let scope = p.kept_scope(p.clock.now());
        let due_in = match p.store.next_due(&scope).await {
            Ok(Some(at)) => (at - p.clock.now()).to_std().unwrap_or(Duration::ZERO),
            Ok(None) => POLL,
            Err(e) => {
                // The ticks report a database that is away; this only waits.
                tracing::debug!(error = %e, "cannot read the earliest due time");
                POLL
            }
        };
        let wake_at = (Instant::now() + due_in.min(POLL)).max(last_pass_end + MIN_GAP);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = pass_done.notified() => {
                last_pass_end = Instant::now();
                continue;
            }
            _ = tokio::time::sleep_until(wake_at) => {}
        }
        if due_in > POLL {
            continue;
        }
        let held = tokio::select! {
            _ = shutdown.cancelled() => return,
            held = gate.lock() => held,
        };
        // A tick may have run while this waited for the gate: due still?
        let still_due = match p.store.next_due(&p.kept_scope(p.clock.now())).await {
            Ok(Some(at)) => at <= p.clock.now(),
            _ => false,
        };
        if still_due && !shutdown.is_cancelled() {
            let ok = super::pass(&p, &shutdown, "due", false).await;
            last_pass_end = Instant::now();
            if !ok {
                last_pass_end += AFTER_FAILURE - MIN_GAP;
            }
        }
        drop(held);
    }
}
