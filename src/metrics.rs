//! Gauges computed from the ledger (counters are recorded where things happen).

use crate::pass::Pipeline;

/// Sets `wxretain_periods{appid, grain, state}` (and, for weekly, the older
/// `wxretain_weeks{appid, state}`) and the last success per app from the ledger.
pub async fn update_week_gauges(p: &Pipeline) {
    let apps = p.all_apps().apps;
    let grains: Vec<_> = p
        .config
        .apps
        .iter()
        .map(|a| (a.appid.clone(), a.grains.clone()))
        .collect();
    match p.store.state_counts(&grains).await {
        Ok(counts) => {
            for (appid, grain, state, n) in counts {
                if grain == crate::domain::Grain::Weekly {
                    metrics::gauge!("wxretain_weeks", "appid" => appid.clone(), "state" => state)
                        .set(n as f64);
                }
                metrics::gauge!("wxretain_periods", "appid" => appid, "grain" => grain.as_str(), "state" => state)
                    .set(n as f64);
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
