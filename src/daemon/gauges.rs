//! The per-app gauges counted from the ledger, after each of the daemon's
//! planning passes.

use crate::domain::AppId;
use crate::metrics::per_app;
use crate::store::Store;

/// Sets `wxretain_periods{appid, dataset, grain, state}` and the last
/// success per app from the ledger. (`wxretain_weeks{appid, state}`, the
/// weekly grain alone, is gone: promtool reads `_weeks` as a unit; it is
/// `wxretain_periods{grain="weekly"}`.)
pub async fn update_period_gauges(store: &Store, apps: &[AppId]) {
    match store.state_counts(apps).await {
        Ok(counts) => per_app::set_period_counts(apps, &counts),
        Err(e) => tracing::warn!(error = %e, "could not count periods by state"),
    }
    // From the ledger, so the figure to alert on survives restarts.
    match store.last_success_by_app(apps).await {
        Ok(rows) => {
            for (appid, at) in rows {
                if let Ok(appid) = appid.parse() {
                    per_app::succeeded_at(&appid, at.timestamp());
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read last successes"),
    }
}
