//! What `/metrics` exports: every metric's help text and the series present
//! from start-up (counters are recorded where things happen; the gauges
//! counted from the ledger are set by the daemon). The per-app series are
//! kept apart, in [`per_app`].

pub mod per_app;

use crate::config::AppConfig;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The kind of a metric, as `# TYPE` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric wxretain records and its `# HELP` text.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, unit: Option<Unit>, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
    }
}

/// Every metric recorded anywhere in wxretain (the `process_*` series aside:
/// `metrics-process` describes its own). `promtool check metrics` refuses a
/// family without HELP; a unit test checks the sources against this list.
pub const METRICS: &[Metric] = &[
    metric("wxretain_build_info", Kind::Gauge, None,
        "Always 1; the version label is this binary's version."),
    metric("wxretain_fetches_total", Kind::Counter, None,
        "Period fetches by dataset, grain and final outcome: stored, not_ready, failed, rejected, deferred, unsaved, lease_lost."),
    metric("wxretain_api_latency_seconds", Kind::Histogram, Some(Unit::Seconds),
        "Latency of the data calls to WeChat, by dataset and grain."),
    metric("wxretain_rows_written_total", Kind::Counter, None,
        "Rows inserted or changed in the datasets' tables."),
    metric("wxretain_periods", Kind::Gauge, Some(Unit::Count),
        "Periods in the ledger by app, dataset, grain and state (complete, maturing, missing, not_ready, failing, unavailable), counted after each pass."),
    metric("wxretain_last_success_timestamp_seconds", Kind::Gauge, Some(Unit::Seconds),
        "Unix time of the app's last successful fetch, from the ledger; absent for an app never fetched."),
    metric("wxretain_last_pass_timestamp_seconds", Kind::Gauge, Some(Unit::Seconds),
        "Unix time this process last finished a pass (a pass stopped by a database error or a clock refusal does not count)."),
    metric("wxretain_last_successful_pass_timestamp_seconds", Kind::Gauge, Some(Unit::Seconds),
        "Unix time the daemon's scheduler last saw a pass finish without error."),
    metric("wxretain_token_refreshes_total", Kind::Counter, None,
        "Access tokens obtained, by app."),
    metric("wxretain_app_broken", Kind::Gauge, None,
        "1 while the app's last attempt in this process failed for a configuration reason, else 0."),
    metric("wxretain_clock_skew_seconds", Kind::Gauge, Some(Unit::Seconds),
        "This host's clock minus the database's, at the last pass."),
    metric("wxretain_passes_refused_total", Kind::Counter, None,
        "Passes that planned and claimed nothing, by reason (clock: the host's and the database's clocks disagree)."),
    metric("wxretain_implausible_answers_total", Kind::Counter, None,
        "Impossible answers from WeChat by outcome: stored (repeated, flagged suspect), replaced, refused."),
];

/// Installs the global Prometheus recorder (once per process) and the
/// per-app series of `apps`, describes every metric and sets the series that
/// exist from start-up, so a scrape before the database answers already
/// shows this process.
pub fn install(apps: &[AppConfig]) -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("wxretain_api_latency_seconds".to_string()),
            &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
        )?
        .install_recorder()?;
    describe();
    let apps: Vec<_> = apps
        .iter()
        .map(|a| (a.appid.clone(), a.streams.clone()))
        .collect();
    per_app::install(&apps);
    metrics::gauge!("wxretain_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Counters alerted on with increase(): present at 0, so the first
    // refusal is an increase rather than the series' first sample.
    metrics::counter!("wxretain_passes_refused_total", "reason" => "clock").absolute(0);
    metrics::counter!("wxretain_rows_written_total").absolute(0);
    Ok(handle)
}

/// Gives every metric the registry records its `# HELP`, the process
/// collector's included ([`per_app`] writes its own).
pub fn describe() {
    for m in METRICS
        .iter()
        .filter(|m| !per_app::FAMILIES.contains(&m.name))
    {
        match (m.kind, m.unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(m.name, unit, m.help),
            (Kind::Counter, None) => metrics::describe_counter!(m.name, m.help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(m.name, unit, m.help),
            (Kind::Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(m.name, unit, m.help),
            (Kind::Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
    metrics_process::Collector::default().describe();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Names in `metrics::counter!("…"`, `gauge!("…"` and `histogram!("…"`
    /// calls under `dir`.
    fn recorded_names(dir: &Path, out: &mut BTreeSet<String>) {
        let entries = std::fs::read_dir(dir).expect("read src/");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                recorded_names(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            for call in ["counter!(", "gauge!(", "histogram!("] {
                for (at, _) in text.match_indices(call) {
                    let rest = text[at + call.len()..].trim_start();
                    if let Some(quoted) = rest.strip_prefix('"') {
                        let name = quoted.split('"').next().unwrap_or_default();
                        // (This file's own "counter!(" literals name nothing.)
                        if !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        {
                            out.insert(name.to_string());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_metric_recorded_in_the_sources_is_described() {
        let mut recorded = BTreeSet::new();
        recorded_names(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut recorded,
        );
        // The scan must see the calls (and those of per_app's families,
        // which are written without the registry, must not be there).
        assert!(recorded.len() >= 6, "found too few: {recorded:?}");
        for family in per_app::FAMILIES {
            assert!(!recorded.contains(family), "{family} is in the registry");
            recorded.insert(family.to_string());
        }
        let described: BTreeSet<String> = METRICS.iter().map(|m| m.name.to_string()).collect();
        let undescribed: Vec<_> = recorded.difference(&described).collect();
        assert!(
            undescribed.is_empty(),
            "recorded but not in METRICS: {undescribed:?}"
        );
        let unused: Vec<_> = described.difference(&recorded).collect();
        assert!(
            unused.is_empty(),
            "in METRICS but never recorded: {unused:?}"
        );
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for m in METRICS {
            assert!(m.name.starts_with("wxretain_"), "{}", m.name);
            // promtool: counters end in _total, nothing else does.
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            if m.unit == Some(Unit::Seconds) {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            assert!(
                m.help.ends_with('.') && !m.help.contains('\n'),
                "{}",
                m.name
            );
        }
    }
}
