//! Gauges computed from the ledger (counters are recorded where things happen).

use crate::pass::Pipeline;

/// Sets `wxretain_weeks{appid, state}` from the ledger.
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
}
