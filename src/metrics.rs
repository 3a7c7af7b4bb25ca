//! Gauges computed from the ledger (counters are recorded where things happen).

use crate::pass::Pipeline;

/// Sets `wxretain_weeks{appid, state}` and the last success per app from the ledger.
pub async fn update_week_gauges(p: &Pipeline) {
    let apps = p.all_apps().apps;
    match p.store.state_counts(&apps).await {
        Ok(counts) => {
            for (appid, state, n) in counts {
                metrics::gauge!("wxretain_weeks", "appid" => appid, "state" => state).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count weeks by state"),
    }
    // From the ledger, so the figure to alert on survives restarts.
    match p.store.last_success_by_app(&apps).await {
        Ok(rows) => {
            for (appid, at) in rows {
                metrics::gauge!("wxretain_last_success_timestamp_seconds", "appid" => appid)
                    .set(at.timestamp() as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read last successes"),
    }
}
