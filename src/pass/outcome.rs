//! What became of each claimed period: its outcome, the pass's report, and
//! the log line and metrics each outcome leaves.

use crate::dataset::Target;
use crate::domain::{AppId, PeriodState};
use crate::metrics::per_app::{self, FetchOutcome};
use crate::store::Claim;
use crate::wechat::ErrorClass;
use chrono::Utc;

/// What a pass did, counted per period attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    pub planned: u64,
    pub attempted: u64,
    pub stored: u64,
    pub rows_written: u64,
    pub not_ready: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Periods put off because their app was paused (quota, broken setup).
    pub deferred: u64,
    /// Periods whose result could not be written (database trouble, or a
    /// write the database refused); a later pass takes them again.
    pub unsaved: u64,
    /// Periods whose lease another replica had taken by the time their
    /// result was written: that replica's result counts, this one was dropped.
    pub lease_lost: u64,
}

impl std::ops::AddAssign for PassReport {
    /// Another pass's counts added to these (a run of several passes).
    fn add_assign(&mut self, other: PassReport) {
        self.planned += other.planned;
        self.attempted += other.attempted;
        self.stored += other.stored;
        self.rows_written += other.rows_written;
        self.not_ready += other.not_ready;
        self.failed += other.failed;
        self.rejected += other.rejected;
        self.deferred += other.deferred;
        self.unsaved += other.unsaved;
        self.lease_lost += other.lease_lost;
    }
}

/// What happened to one claimed period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored {
        rows: u64,
        state: PeriodState,
    },
    Failed(ErrorClass),
    Rejected,
    Deferred,
    /// Nothing of the attempt could be written.
    Unsaved,
    /// Another replica holds the period now: nothing of this attempt was written.
    LeaseLost,
}

impl Outcome {
    /// Adds this outcome to `report`.
    pub fn count(&self, r: &mut PassReport) {
        match self {
            Outcome::Deferred => r.deferred += 1,
            Outcome::LeaseLost => {
                r.attempted += 1;
                r.lease_lost += 1
            }
            Outcome::Unsaved => {
                r.attempted += 1;
                r.unsaved += 1
            }
            Outcome::Stored { rows, state } => {
                r.attempted += 1;
                r.rows_written += rows;
                if *state == PeriodState::NotReady {
                    r.not_ready += 1
                } else {
                    r.stored += 1
                }
            }
            Outcome::Failed(class) => {
                r.attempted += 1;
                match class {
                    ErrorClass::NotReady | ErrorClass::DateRange => r.not_ready += 1,
                    _ => r.failed += 1,
                }
            }
            Outcome::Rejected => {
                r.attempted += 1;
                r.rejected += 1
            }
        }
    }

    /// The label of `wxretain_fetches_total`.
    fn label(&self) -> FetchOutcome {
        match self {
            Outcome::Stored {
                state: PeriodState::NotReady,
                ..
            } => FetchOutcome::NotReady,
            Outcome::Stored { .. } => FetchOutcome::Stored,
            Outcome::Failed(ErrorClass::NotReady | ErrorClass::DateRange) => FetchOutcome::NotReady,
            Outcome::Failed(_) => FetchOutcome::Failed,
            Outcome::Rejected => FetchOutcome::Rejected,
            Outcome::Deferred => FetchOutcome::Deferred,
            Outcome::Unsaved => FetchOutcome::Unsaved,
            Outcome::LeaseLost => FetchOutcome::LeaseLost,
        }
    }

    /// Per-app counters and gauges for one period's final outcome.
    pub fn record(&self, appid: &AppId, target: Target) {
        per_app::fetched(appid, target.stream(), self.label());
        if let Outcome::Stored { rows, .. } = self {
            per_app::set_broken(appid, false);
            metrics::counter!("wxretain_rows_written_total").increment(*rows);
            per_app::succeeded_at(appid, Utc::now().timestamp());
        }
    }
}

/// How long a fetch took, for its log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// On the wire: from sending each data request to its answer.
    pub latency_ms: u64,
    /// Everything else from the start of the attempt: waiting for the rate
    /// limits, the token, pauses between retries.
    pub waited_ms: u64,
}

/// Counts `outcome` in `report` and moves the progress bar.
pub fn tally(
    outcome: &Outcome,
    report: &mut PassReport,
    progress: Option<&indicatif::ProgressBar>,
) {
    if let Some(bar) = progress {
        bar.inc(1);
    }
    outcome.count(report);
}

/// The log line of a claim's outcome, in the claim's span.
pub fn log_lost(claim: &Claim, timing: Timing) {
    let Timing {
        latency_ms,
        waited_ms,
    } = timing;
    tracing::warn!(appid = %claim.appid, dataset = %claim.dataset, grain = %claim.period.grain(), period = %claim.period,
        outcome = "lease_lost", latency_ms, waited_ms,
        "another replica took this period after its lease ran out; this answer is dropped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_counts_once_where_the_report_says() {
        let mut r = PassReport::default();
        for o in [
            Outcome::Stored {
                rows: 4,
                state: PeriodState::Maturing,
            },
            Outcome::Stored {
                rows: 0,
                state: PeriodState::NotReady,
            },
            Outcome::Failed(ErrorClass::NotReady),
            Outcome::Failed(ErrorClass::Transient),
            Outcome::Rejected,
            Outcome::Deferred,
            Outcome::Unsaved,
            Outcome::LeaseLost,
        ] {
            o.count(&mut r);
        }
        assert_eq!(
            r,
            PassReport {
                planned: 0,
                attempted: 7,
                stored: 1,
                rows_written: 4,
                not_ready: 2,
                failed: 1,
                rejected: 1,
                deferred: 1,
                unsaved: 1,
                lease_lost: 1,
            }
        );
    }
}
