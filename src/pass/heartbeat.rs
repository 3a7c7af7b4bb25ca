//! Keeping the leases of a pass's claimed periods while it runs, and
//! knowing when they may have run out.

use crate::runtime::Runtime;
use crate::wechat::LeaseHold;
use std::time::{Duration, Instant};

/// Renews this process's leases every third of a lease while a pass runs,
/// and keeps [`LeaseHold`] at the instant they are known to hold until: the
/// client sends nothing past it. A renewal that comes after that instant
/// (the process was stopped, the database did not answer) does not move
/// it: meanwhile another replica may have taken periods, so this pass sends
/// no more calls and ends. Stops when dropped.
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    hold: LeaseHold,
}

impl Heartbeat {
    pub fn start(rt: &Runtime, lease: Duration) -> Self {
        let (store, owner, hold) = (rt.store.clone(), rt.owner.clone(), rt.client.lease_hold());
        // Every lease of this pass is taken after this instant, for `lease`.
        hold.set(Some(Instant::now() + lease));
        let renewing = hold.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(lease / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await; // the first tick is immediate: the claim just set them
            loop {
                every.tick().await;
                let asked = Instant::now();
                if renewing.run_out() {
                    tracing::warn!("this process's leases were not renewed in time (was it stopped?); it sends no more calls this pass");
                    return;
                }
                match store.extend_leases(&owner, lease).await {
                    Ok(_) => renewing.set(Some(asked + lease)),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew leases; periods whose lease runs out may be taken by another replica, and this one's result is then dropped")
                    }
                }
            }
        });
        Self { task, hold }
    }

    /// Whether the leases may have run out: the pass then claims and sends
    /// nothing more.
    pub fn run_out(&self) -> bool {
        self.hold.run_out()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
        self.hold.set(None);
    }
}
