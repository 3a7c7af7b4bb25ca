//! The per-app series of `/metrics`, held in fixed arrays per configured app
//! and written out at each scrape.
//!
//! A fleet of 10,000 apps has about 240,000 per-app series
//! (`wxretain_periods` alone is apps × streams × 6 states). In the Prometheus
//! exporter's registry each costs about a kilobyte (its key, its labels, its
//! handle and the map around them): measured, 260–330 MB for such a fleet.
//! Here an app costs about half a kilobyte whatever it records. The names, labels
//! and values are the ones the registry printed (the alert rules and
//! dashboards read them), and a series appears when the registry's did: a
//! counter at its first increment, a gauge when it is first set.

use crate::dataset::Stream;
use crate::domain::{AppId, PeriodState};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

/// A period's final outcome in a pass, as `wxretain_fetches_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    Stored,
    NotReady,
    Failed,
    Rejected,
    Deferred,
    Unsaved,
    LeaseLost,
}

impl FetchOutcome {
    const ALL: [FetchOutcome; 7] = [
        FetchOutcome::Stored,
        FetchOutcome::NotReady,
        FetchOutcome::Failed,
        FetchOutcome::Rejected,
        FetchOutcome::Deferred,
        FetchOutcome::Unsaved,
        FetchOutcome::LeaseLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FetchOutcome::Stored => "stored",
            FetchOutcome::NotReady => "not_ready",
            FetchOutcome::Failed => "failed",
            FetchOutcome::Rejected => "rejected",
            FetchOutcome::Deferred => "deferred",
            FetchOutcome::Unsaved => "unsaved",
            FetchOutcome::LeaseLost => "lease_lost",
        }
    }
}

/// What became of an impossible answer (`wxretain_implausible_answers_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implausible {
    /// WeChat repeated it: stored, flagged suspect.
    Stored,
    /// A plausible second answer was stored instead.
    Replaced,
    Refused,
}

impl Implausible {
    const ALL: [Implausible; 3] = [
        Implausible::Stored,
        Implausible::Replaced,
        Implausible::Refused,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Implausible::Stored => "stored",
            Implausible::Replaced => "replaced",
            Implausible::Refused => "refused",
        }
    }
}

/// The families written here, in the order a scrape shows them. The
/// registry describes and records none of them (see [`super::describe`]).
pub const FAMILIES: [&str; 6] = [
    "wxretain_fetches_total",
    "wxretain_periods",
    "wxretain_last_success_timestamp_seconds",
    "wxretain_app_broken",
    "wxretain_token_refreshes_total",
    "wxretain_implausible_answers_total",
];

const STATES: usize = PeriodState::ALL.len();
const OUTCOMES: usize = FetchOutcome::ALL.len();

/// `last_success` before it is known.
const NEVER: i64 = i64::MIN;
/// `broken` before it is set, and its two values.
const UNSET: u8 = 0;
const FINE: u8 = 1;
const BROKEN: u8 = 2;

/// Periods per state of each stream ([`Stream::all`]'s order), for one app.
pub type StateCounts = Vec<[u64; STATES]>;

/// One app's series.
struct App {
    appid: AppId,
    /// The streams it collects: `wxretain_periods` has a series for each.
    streams: Vec<Stream>,
    /// Per stream, in [`Stream::all`]'s order.
    fetches: Vec<[AtomicU64; OUTCOMES]>,
    periods: Vec<[AtomicU64; STATES]>,
    last_success: AtomicI64,
    broken: AtomicU8,
    token_refreshes: AtomicU64,
    implausible: [AtomicU64; Implausible::ALL.len()],
}

struct PerApp {
    apps: Vec<App>,
    index: HashMap<AppId, usize>,
    /// `wxretain_periods` is absent until the ledger has been counted once,
    /// rather than a row of zeros that would clear a firing alert.
    periods_counted: AtomicBool,
}

static INSTALLED: OnceLock<PerApp> = OnceLock::new();

/// Makes room for the configured apps' series; the daemon does it once, at
/// start-up. Without it (`once`, `backfill`: no `/metrics`) recording does
/// nothing, as the metrics macros do without a recorder.
pub fn install(apps: &[(AppId, Vec<Stream>)]) {
    if INSTALLED.set(PerApp::new(apps)).is_err() {
        tracing::debug!("per-app metrics were installed already; keeping the first app list");
    }
}

impl PerApp {
    fn new(apps: &[(AppId, Vec<Stream>)]) -> PerApp {
        let streams = Stream::all().count();
        PerApp {
            apps: apps
                .iter()
                .map(|(appid, collected)| App {
                    appid: appid.clone(),
                    streams: Stream::all().filter(|s| collected.contains(s)).collect(),
                    fetches: (0..streams).map(|_| Default::default()).collect(),
                    periods: (0..streams).map(|_| Default::default()).collect(),
                    last_success: AtomicI64::new(NEVER),
                    broken: AtomicU8::new(UNSET),
                    token_refreshes: AtomicU64::new(0),
                    implausible: Default::default(),
                })
                .collect(),
            index: apps
                .iter()
                .enumerate()
                .map(|(i, (appid, _))| (appid.clone(), i))
                .collect(),
            periods_counted: AtomicBool::new(false),
        }
    }

    fn app(&self, appid: &AppId) -> Option<&App> {
        self.index.get(appid).map(|&i| &self.apps[i])
    }
}

fn app(appid: &AppId) -> Option<&'static App> {
    INSTALLED.get()?.app(appid)
}

/// `wxretain_fetches_total{appid, dataset, grain, outcome}` += 1.
pub fn fetched(appid: &AppId, stream: Stream, outcome: FetchOutcome) {
    if let Some(counts) = app(appid).and_then(|app| app.fetches.get(stream.index())) {
        counts[outcome as usize].fetch_add(1, Relaxed);
    }
}

/// `wxretain_app_broken{appid}`.
pub fn set_broken(appid: &AppId, broken: bool) {
    if let Some(app) = app(appid) {
        app.broken
            .store(if broken { BROKEN } else { FINE }, Relaxed);
    }
}

/// `wxretain_last_success_timestamp_seconds{appid}`: never moves back (the
/// ledger's figure and this process's successes both land here).
pub fn succeeded_at(appid: &AppId, unix_seconds: i64) {
    if let Some(app) = app(appid) {
        app.last_success.fetch_max(unix_seconds, Relaxed);
    }
}

/// `wxretain_token_refreshes_total{appid}` += 1.
pub fn token_refreshed(appid: &AppId) {
    if let Some(app) = app(appid) {
        app.token_refreshes.fetch_add(1, Relaxed);
    }
}

/// `wxretain_implausible_answers_total{appid, outcome}` += 1.
pub fn implausible(appid: &AppId, outcome: Implausible) {
    if let Some(app) = app(appid) {
        app.implausible[outcome as usize].fetch_add(1, Relaxed);
    }
}

/// `wxretain_periods{appid, dataset, grain, state}` for `apps`, counted
/// from the ledger. Each value goes from the old count to the new one directly: a
/// scrape meanwhile never sees an app at zero.
pub fn set_period_counts(apps: &[AppId], counts: &[StateCounts]) {
    let Some(per_app) = INSTALLED.get() else {
        return;
    };
    for (appid, counts) in apps.iter().zip(counts) {
        if let Some(&i) = per_app.index.get(appid) {
            let app = &per_app.apps[i];
            for (stream, states) in counts.iter().enumerate() {
                if let Some(series) = app.periods.get(stream) {
                    for (state, &n) in states.iter().enumerate() {
                        series[state].store(n, Relaxed);
                    }
                }
            }
        }
    }
    per_app.periods_counted.store(true, Relaxed);
}

/// Apps written per chunk of a scrape: `wxretain_periods` of 256 apps with
/// three streams is about 480 KB of text.
const APPS_PER_CHUNK: usize = 256;

/// The per-app families in the Prometheus text format, in chunks of
/// [`APPS_PER_CHUNK`] apps written as the response is sent, so a scrape of
/// 10,000 apps never holds its 20 MB of text at once. Empty when nothing was
/// installed.
pub fn render() -> impl Iterator<Item = String> + Send + 'static {
    chunks(INSTALLED.get(), APPS_PER_CHUNK)
}

fn chunks(
    per_app: Option<&'static PerApp>,
    apps_per_chunk: usize,
) -> impl Iterator<Item = String> + Send + 'static {
    let apps = per_app.map_or(&[][..], |p| p.apps.as_slice());
    let periods_counted = per_app.is_some_and(|p| p.periods_counted.load(Relaxed));
    FAMILIES.into_iter().flat_map(move |family| {
        let mut headed = false;
        apps.chunks(apps_per_chunk).filter_map(move |chunk| {
            let mut out = String::new();
            for app in chunk {
                write_app(&mut out, family, app, periods_counted);
            }
            if out.is_empty() {
                return None;
            }
            if !headed {
                headed = true;
                out.insert_str(0, &header(family));
            }
            Some(out)
        })
    })
}

/// `# HELP` and `# TYPE`, from [`super::METRICS`].
fn header(family: &str) -> String {
    let Some(metric) = super::METRICS.iter().find(|m| m.name == family) else {
        return String::new();
    };
    let kind = match metric.kind {
        super::Kind::Counter => "counter",
        super::Kind::Gauge => "gauge",
        super::Kind::Histogram => "histogram",
    };
    format!("# HELP {family} {}\n# TYPE {family} {kind}\n", metric.help)
}

/// `app`'s series of `family`. (Writing to a String cannot fail.)
fn write_app(out: &mut String, family: &str, app: &App, periods_counted: bool) {
    let id = app.appid.as_str();
    match family {
        "wxretain_fetches_total" => {
            for (stream, outcomes) in Stream::all().zip(&app.fetches) {
                let outcomes = FetchOutcome::ALL.iter().map(|o| o.as_str()).zip(outcomes);
                write_outcomes(
                    out,
                    family,
                    &format!(
                        "appid=\"{id}\",dataset=\"{}\",grain=\"{}\"",
                        stream.dataset, stream.grain
                    ),
                    outcomes,
                );
            }
        }
        "wxretain_periods" if periods_counted => {
            for &stream in &app.streams {
                let Some(counts) = app.periods.get(stream.index()) else {
                    continue;
                };
                for (state, n) in PeriodState::ALL.iter().zip(counts) {
                    let _ = writeln!(
                        out,
                        "{family}{{appid=\"{id}\",dataset=\"{}\",grain=\"{}\",state=\"{}\"}} {}",
                        stream.dataset,
                        stream.grain,
                        state.as_str(),
                        n.load(Relaxed)
                    );
                }
            }
        }
        "wxretain_last_success_timestamp_seconds" => {
            let at = app.last_success.load(Relaxed);
            if at != NEVER {
                let _ = writeln!(out, "{family}{{appid=\"{id}\"}} {at}");
            }
        }
        "wxretain_app_broken" => match app.broken.load(Relaxed) {
            FINE => {
                let _ = writeln!(out, "{family}{{appid=\"{id}\"}} 0");
            }
            BROKEN => {
                let _ = writeln!(out, "{family}{{appid=\"{id}\"}} 1");
            }
            _ => {}
        },
        "wxretain_token_refreshes_total" => {
            let n = app.token_refreshes.load(Relaxed);
            if n > 0 {
                let _ = writeln!(out, "{family}{{appid=\"{id}\"}} {n}");
            }
        }
        "wxretain_implausible_answers_total" => {
            let outcomes = Implausible::ALL
                .iter()
                .map(|o| o.as_str())
                .zip(&app.implausible);
            write_outcomes(out, family, &format!("appid=\"{id}\""), outcomes);
        }
        _ => {}
    }
}

/// One counter line per outcome counted at least once, as the registry
/// showed a counter from its first increment.
fn write_outcomes<'a>(
    out: &mut String,
    family: &str,
    labels: &str,
    outcomes: impl Iterator<Item = (&'a str, &'a AtomicU64)>,
) {
    for (outcome, n) in outcomes {
        let n = n.load(Relaxed);
        if n > 0 {
            let _ = writeln!(out, "{family}{{{labels},outcome=\"{outcome}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arrays_are_indexed_in_the_order_of_all() {
        for (i, stream) in Stream::all().enumerate() {
            assert_eq!(stream.index(), i);
        }
        for (i, state) in PeriodState::ALL.into_iter().enumerate() {
            assert_eq!(state as usize, i);
        }
        for (i, outcome) in FetchOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, i);
        }
        for (i, outcome) in Implausible::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, i);
        }
    }

    fn weekly() -> Stream {
        Stream::new(
            crate::dataset::DatasetId::Retention,
            crate::domain::Grain::Weekly,
        )
    }

    fn daily() -> Stream {
        Stream::new(
            crate::dataset::DatasetId::Retention,
            crate::domain::Grain::Daily,
        )
    }

    /// Three apps over two chunks: every family is headed once, before its
    /// first series, and has a series only once it was recorded.
    #[test]
    fn a_scrape_writes_what_was_recorded_and_heads_each_family_once() {
        let ids: Vec<AppId> = [
            "wx0000000000000001",
            "wx0000000000000002",
            "wx0000000000000003",
        ]
        .iter()
        .map(|a| a.parse().expect("appid"))
        .collect();
        let apps: Vec<_> = ids
            .iter()
            .map(|a| (a.clone(), vec![weekly(), daily()]))
            .collect();
        let per_app: &'static PerApp = Box::leak(Box::new(PerApp::new(&apps)));
        let text = |p: &'static PerApp| chunks(Some(p), 2).collect::<Vec<_>>().concat();
        assert_eq!(text(per_app), "", "nothing recorded, nothing shown");

        let first = per_app.app(&ids[0]).expect("app");
        first.fetches[weekly().index()][FetchOutcome::Stored as usize].fetch_add(2, Relaxed);
        let third = per_app.app(&ids[2]).expect("app");
        third.broken.store(BROKEN, Relaxed);
        third.last_success.fetch_max(1_764_000_000, Relaxed);
        let text = text(per_app);
        assert_eq!(
            text.matches("# HELP ").count(),
            3,
            "fetches, last success, broken: {text}"
        );
        assert!(text.contains(
            "\nwxretain_fetches_total{appid=\"wx0000000000000001\",dataset=\"retention\",grain=\"weekly\",outcome=\"stored\"} 2\n"
        ), "{text}");
        assert!(
            text.contains("\nwxretain_app_broken{appid=\"wx0000000000000003\"} 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "\nwxretain_last_success_timestamp_seconds{appid=\"wx0000000000000003\"} 1764000000\n"
        ), "{text}");
        assert!(
            !text.contains("wxretain_periods"),
            "not counted yet: {text}"
        );

        per_app.periods_counted.store(true, Relaxed);
        let text = chunks(Some(per_app), 2).collect::<Vec<_>>().concat();
        let periods: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("wxretain_periods{"))
            .collect();
        assert_eq!(
            periods.len(),
            3 * 2 * STATES,
            "apps × their streams × states"
        );
        assert_eq!(
            text.matches("# TYPE wxretain_periods gauge").count(),
            1,
            "{text}"
        );
        // Daily before weekly, as in Grain::ALL, whatever order the config gave.
        assert!(periods[0].contains("grain=\"daily\""), "{periods:?}");
    }

    #[test]
    fn every_family_is_described() {
        for family in FAMILIES {
            let head = header(family);
            assert!(head.starts_with(&format!("# HELP {family} ")), "{family}");
            assert!(head.contains(&format!("\n# TYPE {family} ")), "{family}");
            let counter = head.ends_with(" counter\n");
            assert_eq!(counter, family.ends_with("_total"), "{family}");
        }
    }
}
