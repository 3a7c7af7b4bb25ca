//! Writing what attempts decided: a failure, a rejection or a deferral per
//! period, and valid answers a batch at a time. A batch the database
//! refuses is written again period by period, so only the period that
//! cannot be written fails (and backs off like a transient failure): one
//! bad answer never costs the others theirs.

use super::attempt::Settled;
use super::outcome::{log_lost, Outcome, Timing};
use crate::planner::{Rule, Verdict};
use crate::replica::ReplicaId;
use crate::store::{Answered, Claim, Failure, SaveStats, Store, StoreError};
use crate::telemetry::{instant, list};
use crate::wechat::ErrorClass;
use chrono::{DateTime, Utc};

/// Where results go: the store, as this process.
pub struct Recorder<'a> {
    pub store: &'a Store,
    pub owner: &'a ReplicaId,
    pub rule: &'a Rule,
    pub as_of: DateTime<Utc>,
}

impl Recorder<'_> {
    /// Writes an attempt that brought no answer to store, and counts it.
    pub async fn record(&self, settled: Settled) -> (Claim, Outcome) {
        let (claim, outcome) = self.write(settled).await;
        outcome.record(&claim.appid, claim.target());
        (claim, outcome)
    }

    async fn write(&self, settled: Settled) -> (Claim, Outcome) {
        let (claim, written, outcome) = match settled {
            Settled::Abandoned { claim } => return (claim, Outcome::LeaseLost),
            Settled::Deferred { claim, until } => {
                let verdict = Verdict {
                    state: claim.before.state,
                    next_due: Some(until),
                    attempts: claim.before.attempts,
                    late_since: claim.before.late_since,
                };
                let written = self.store.defer(self.owner, &claim, &verdict).await;
                return match written {
                    Ok(true) => (claim, Outcome::Deferred),
                    Ok(false) => (claim, Outcome::LeaseLost),
                    Err(e) => {
                        unsaved(&claim, &e);
                        (claim, Outcome::Unsaved)
                    }
                };
            }
            Settled::Failed {
                claim,
                error,
                verdict,
                requests,
                timing: _,
            } => {
                let class = error.class();
                let text = error.to_string();
                let failure = Failure {
                    errcode: error.errcode(),
                    class: class.as_str(),
                    error: &text,
                    requests,
                };
                let written = self
                    .store
                    .record_failure(self.owner, &claim, &verdict, failure)
                    .await;
                (claim, written, Outcome::Failed(class))
            }
            Settled::Rejected {
                claim,
                reason,
                body,
                verdict,
                requests,
                timing: _,
            } => {
                let written = self
                    .store
                    .record_rejection(self.owner, &claim, &verdict, (&reason, &body), requests)
                    .await;
                (claim, written, Outcome::Rejected)
            }
        };
        match written {
            Ok(true) => (claim, outcome),
            Ok(false) => (claim, Outcome::LeaseLost),
            Err(e) => {
                unsaved(&claim, &e);
                (claim, Outcome::Unsaved)
            }
        }
    }

    /// Writes a batch of answers; per answer, what became of it.
    pub async fn save(&self, batch: &[Answered], timings: &[Timing]) -> Vec<Outcome> {
        let saved = match self.store.save_answers(self.owner, batch).await {
            Ok(stats) => stats.into_iter().map(Ok).collect(),
            // A database that is away is everybody's: nothing can be written.
            Err(e) if e.is_unreachable() => {
                tracing::error!(periods = batch.len(), error = %e, "could not store a batch of answers; its periods will be taken again when their leases end");
                batch.iter().map(|_| Err(None)).collect()
            }
            // Refused: one answer may be the cause. Each is written alone,
            // so only a period that cannot be written fails.
            Err(e) => {
                tracing::warn!(periods = batch.len(), error = %e, "the database refused a batch of answers; writing them one by one");
                let mut each = Vec::with_capacity(batch.len());
                for answered in batch {
                    each.push(
                        match self
                            .store
                            .save_answers(self.owner, std::slice::from_ref(answered))
                            .await
                        {
                            Ok(mut stats) => Ok(stats.pop().flatten()),
                            Err(e) => Err(Some(e)),
                        },
                    );
                }
                each
            }
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for ((answered, &timing), saved) in batch.iter().zip(timings).zip(saved) {
            let outcome = match saved {
                Ok(Some(stats)) => stored(answered, stats, timing),
                Ok(None) => {
                    log_lost(&answered.claim, timing);
                    Outcome::LeaseLost
                }
                Err(None) => Outcome::Unsaved,
                Err(Some(e)) => self.unwritable(answered, &e).await,
            };
            outcome.record(&answered.claim.appid, answered.claim.target());
            outcomes.push(outcome);
        }
        outcomes
    }

    /// An answer the database refuses to store: the period fails with the
    /// reason and backs off like a transient failure, instead of staying
    /// due (and being fetched again at once, forever).
    async fn unwritable(&self, answered: &Answered, error: &StoreError) -> Outcome {
        let claim = &answered.claim;
        let verdict = self.rule.after_failure(
            claim.target(),
            ErrorClass::Transient,
            claim.before,
            self.as_of,
        );
        let text = format!("could not store the answer: {error}");
        tracing::error!(appid = %claim.appid, dataset = %claim.dataset, grain = %claim.period.grain(), period = %claim.period,
            outcome = "unsaved", error = %error, next_due = instant(verdict.next_due),
            "the database refused this period's answer; it is tried again later");
        let failure = Failure {
            errcode: None,
            class: error.class(),
            error: &text,
            requests: answered.requests,
        };
        match self
            .store
            .record_failure(self.owner, claim, &verdict, failure)
            .await
        {
            Ok(true) => Outcome::Failed(ErrorClass::Transient),
            Ok(false) => Outcome::LeaseLost,
            Err(e) => {
                unsaved(claim, &e);
                Outcome::Unsaved
            }
        }
    }
}

fn stored(answered: &Answered, stats: SaveStats, timing: Timing) -> Outcome {
    let (claim, verdict) = (&answered.claim, &answered.verdict);
    let Timing {
        latency_ms,
        waited_ms,
    } = timing;
    let keys: Vec<u8> = answered.answer.keys().iter().collect();
    tracing::info!(appid = %claim.appid, dataset = %claim.dataset, grain = %claim.period.grain(), period = %claim.period,
        outcome = "stored", keys = %list(&keys), rows_written = stats.rows_written,
        state = verdict.state.as_str(), next_due = instant(verdict.next_due), latency_ms, waited_ms,
        "fetched period");
    Outcome::Stored {
        rows: stats.rows_written,
        state: verdict.state,
    }
}

fn unsaved(claim: &Claim, error: &StoreError) {
    tracing::error!(appid = %claim.appid, dataset = %claim.dataset, grain = %claim.period.grain(), period = %claim.period,
        error = %error, "could not record the result; the period will be taken again when its lease ends");
}
