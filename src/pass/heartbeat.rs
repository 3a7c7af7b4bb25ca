//! Keeping the leases of a pass's claimed periods while it runs.

use crate::runtime::Runtime;
use std::time::Duration;

/// Renews this process's leases every third of a lease while a pass runs;
/// stops when dropped.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    pub fn start(rt: &Runtime, lease: Duration) -> Self {
        let (store, owner) = (rt.store.clone(), rt.owner.clone());
        Self(tokio::spawn(async move {
            let mut every = tokio::time::interval(lease / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await; // the first tick is immediate: the claim just set them
            loop {
                every.tick().await;
                if let Err(e) = store.extend_leases(&owner, lease).await {
                    tracing::warn!(error = %e, "could not renew leases; periods whose lease runs out may be taken by another replica, and this one's result is then dropped");
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
