//! One claimed period: fetch (with retries), read, confirm an impossible
//! answer, and decide what the ledger is to say. Nothing here writes to the
//! database: the pass writes what an attempt decided, so this can be tested
//! with a stand-in for WeChat.

use super::outcome::Timing;
use crate::config::{AppConfig, WechatConfig};
use crate::dataset::{AnyAnswer, Target};
use crate::domain::AppId;
use crate::metrics::per_app::{self, Implausible};
use crate::planner::{Rule, Verdict};
use crate::store::{Answered, Claim};
use crate::wechat::{CallMeter, ErrorClass, FetchError, RawAnswer, WeChatClient};
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where answers come from: WeChat's client, or a stand-in in tests.
pub trait Fetch: Sync {
    /// One data call for `target`, adding what it sends to `meter`.
    fn fetch<'a>(
        &'a self,
        app: &'a AppConfig,
        target: Target,
        meter: &'a CallMeter,
    ) -> BoxFuture<'a, Result<RawAnswer, FetchError>>;

    /// Sends nothing more for `appid` in this pass: calls already waiting
    /// behind its rate limit are held back at the moment of sending.
    fn pause(&self, appid: &AppId);
}

impl Fetch for WeChatClient {
    fn fetch<'a>(
        &'a self,
        app: &'a AppConfig,
        target: Target,
        meter: &'a CallMeter,
    ) -> BoxFuture<'a, Result<RawAnswer, FetchError>> {
        Box::pin(self.fetch_metered(app, target, meter))
    }

    fn pause(&self, appid: &AppId) {
        WeChatClient::pause(self, appid)
    }
}

/// Apps paused for the rest of a pass (a quota, a broken setup), and until when.
#[derive(Debug, Default)]
pub struct Pauses(Mutex<HashMap<AppId, DateTime<Utc>>>);

impl Pauses {
    pub fn until(&self, appid: &AppId) -> Option<DateTime<Utc>> {
        self.lock().get(appid).copied()
    }

    fn insert(&self, appid: &AppId, until: DateTime<Utc>) {
        self.lock().insert(appid.clone(), until);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AppId, DateTime<Utc>>> {
        // A poisoned lock means a panic elsewhere; the map is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What an attempt decided.
#[derive(Debug)]
pub enum Attempted {
    /// A valid answer, to be written with its batch.
    Answered(Box<Answered>, Timing),
    /// No answer to store: what the ledger is to say instead.
    Settled(Settled),
}

/// An attempt that brought no answer to store.
#[derive(Debug)]
pub enum Settled {
    /// The call failed: the ledger records the error and the verdict.
    Failed {
        claim: Claim,
        error: FetchError,
        verdict: Verdict,
        requests: u32,
        timing: Timing,
    },
    /// The answer was refused: kept in `rejected_answers`, never stored.
    Rejected {
        claim: Claim,
        reason: String,
        /// The first body received, for inspection.
        body: String,
        verdict: Verdict,
        requests: u32,
        timing: Timing,
    },
    /// Not attempted, or held back at the moment of sending: the app is
    /// paused; due again at `until`.
    Deferred { claim: Claim, until: DateTime<Utc> },
    /// Held back at the moment of sending: this process's leases may have
    /// run out. Nothing is written; the period is another replica's now, or
    /// due again when this pass gives its leases back.
    Abandoned { claim: Claim },
}

/// What an attempt needs besides its claim.
pub struct Attempt<'a, F: Fetch> {
    pub fetcher: &'a F,
    pub rule: &'a Rule,
    pub wechat: &'a WechatConfig,
    pub pauses: &'a Pauses,
    pub as_of: DateTime<Utc>,
}

impl<F: Fetch> Attempt<'_, F> {
    /// Attempts `claim` of `app`.
    #[tracing::instrument(name = "period", skip_all,
        fields(appid = %claim.appid, dataset = %claim.dataset, grain = %claim.period.grain(), period = %claim.period))]
    pub async fn run(&self, app: &AppConfig, claim: Claim) -> Attempted {
        if let Some(until) = self.pauses.until(&claim.appid) {
            return Attempted::Settled(Settled::Deferred { claim, until });
        }
        let target = claim.target();
        let started = Instant::now();
        // Data requests this attempt sends, retries included (the ledger's
        // `calls`), and their own time on the wire.
        let meter = CallMeter::default();
        let fetched = self.fetch_with_retry(app, target, &meter).await;
        // The call's own time, and apart from it the waits before it (rate
        // limits, the token, retry pauses): a queue is not a slow WeChat.
        let timing = Timing {
            latency_ms: u64::try_from(meter.wire().as_millis()).unwrap_or(u64::MAX),
            waited_ms: u64::try_from(started.elapsed().saturating_sub(meter.wire()).as_millis())
                .unwrap_or(u64::MAX),
        };
        let requests = meter.requests();
        let raw = match fetched {
            Ok(raw) => raw,
            // Not sent: the process's leases may have run out.
            Err(FetchError::LeaseRunOut) => {
                return Attempted::Settled(Settled::Abandoned { claim });
            }
            Err(FetchError::Paused) => {
                // Held back at the moment of sending: the app was paused meanwhile.
                let until = self.pauses.until(&claim.appid).unwrap_or(self.as_of);
                return Attempted::Settled(Settled::Deferred { claim, until });
            }
            Err(error) => return Attempted::Settled(self.failed(claim, error, requests, timing)),
        };
        let spec = target.spec();
        let checked = match spec.read(target.period, &raw.body, self.as_of) {
            Ok(answer) => match answer.implausibility().map(str::to_string) {
                None => Ok((answer, raw, false)),
                Some(why) => self
                    .confirm(app, target, answer, why, &meter)
                    .await
                    .map_err(|reason| (reason, raw.text)),
            },
            Err(rejection) => Err((rejection.to_string(), raw.text)),
        };
        let requests = meter.requests();
        match checked {
            Ok((answer, raw, suspect)) => {
                let keys = answer.keys().union(claim.before.keys);
                let verdict = self
                    .rule
                    .after_answer(target, keys, claim.before, self.as_of);
                Attempted::Answered(
                    Box::new(Answered {
                        claim,
                        answer,
                        raw: raw.text,
                        body: raw.body,
                        suspect,
                        verdict,
                        requests,
                    }),
                    timing,
                )
            }
            Err((reason, body)) => {
                let verdict = self.rule.after_failure(
                    target,
                    ErrorClass::Transient,
                    claim.before,
                    self.as_of,
                );
                tracing::warn!(outcome = "rejected", %reason, latency_ms = timing.latency_ms, waited_ms = timing.waited_ms, "answer refused; nothing written");
                Attempted::Settled(Settled::Rejected {
                    claim,
                    reason,
                    body,
                    verdict,
                    requests,
                    timing,
                })
            }
        }
    }

    /// A failed call's verdict; a quota or a broken setup pauses the app.
    fn failed(&self, claim: Claim, error: FetchError, requests: u32, timing: Timing) -> Settled {
        let class = error.class();
        let verdict = self
            .rule
            .after_failure(claim.target(), class, claim.before, self.as_of);
        log_failure(&claim, &error, &verdict, timing);
        if class == ErrorClass::Config {
            per_app::set_broken(&claim.appid, true);
        }
        if matches!(
            class,
            ErrorClass::MinuteQuota | ErrorClass::DailyQuota | ErrorClass::Config
        ) {
            if let Some(until) = verdict.next_due {
                self.pauses.insert(&claim.appid, until);
            }
            // Calls already waiting behind the app's rate limit stay unsent.
            self.fetcher.pause(&claim.appid);
        }
        Settled::Failed {
            claim,
            error,
            verdict,
            requests,
            timing,
        }
    }

    /// An answer that cannot be true is never stored on first sight: the
    /// period is asked again after a pause, and the answer is stored,
    /// flagged `suspect`, only if WeChat repeats it exactly. A plausible
    /// second answer is stored instead; anything else is refused (the first
    /// body is kept in `rejected_answers`) and retried later.
    async fn confirm(
        &self,
        app: &AppConfig,
        target: Target,
        first: AnyAnswer,
        why: String,
        meter: &CallMeter,
    ) -> Result<(AnyAnswer, RawAnswer, bool), String> {
        let counted = |outcome| per_app::implausible(&app.appid, outcome);
        let pause = self.wechat.suspect_recheck;
        tracing::info!(reason = %why, pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            "answer looks impossible; asking WeChat again before storing it");
        tokio::time::sleep(pause).await;
        let unconfirmed = |detail: String| {
            counted(Implausible::Refused);
            format!("impossible answer not confirmed ({why}): {detail}")
        };
        let again = self
            .fetch_with_retry(app, target, meter)
            .await
            .map_err(|e| unconfirmed(format!("asking again failed: {e}")))?;
        match target.spec().read(target.period, &again.body, self.as_of) {
            Err(rejection) => Err(unconfirmed(format!(
                "the second answer is invalid: {rejection}"
            ))),
            Ok(second) if second == first => {
                counted(Implausible::Stored);
                tracing::warn!(reason = %why, "WeChat gave the same impossible answer twice; stored as WeChat's, flagged suspect");
                Ok((second, again, true))
            }
            Ok(second) if second.implausibility().is_none() => {
                counted(Implausible::Replaced);
                Ok((second, again, false))
            }
            Ok(_) => Err(unconfirmed(
                "WeChat answered differently, and again impossibly".to_string(),
            )),
        }
    }

    /// Transient failures are retried here with exponential backoff and
    /// jitter, a bounded number of times; everything else goes straight to
    /// the ledger.
    async fn fetch_with_retry(
        &self,
        app: &AppConfig,
        target: Target,
        meter: &CallMeter,
    ) -> Result<RawAnswer, FetchError> {
        let w = self.wechat;
        let policy = ExponentialBuilder::default()
            .with_min_delay(w.retry_min_delay)
            .with_max_delay(w.retry_min_delay * 16)
            .with_max_times(w.retry_attempts.saturating_sub(1))
            .with_jitter();
        (|| self.fetcher.fetch(app, target, meter))
            .retry(policy)
            .when(|e: &FetchError| e.class() == ErrorClass::Transient)
            .notify(|e: &FetchError, pause: Duration| {
                tracing::debug!(error = %e, pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "transient failure; retrying");
            })
            .await
    }
}

fn log_failure(claim: &Claim, error: &FetchError, verdict: &Verdict, timing: Timing) {
    let errcode = error.errcode();
    let next_due = crate::telemetry::instant(verdict.next_due);
    let Timing {
        latency_ms,
        waited_ms,
    } = timing;
    match error.class() {
        ErrorClass::NotReady | ErrorClass::DateRange => {
            tracing::info!(
                outcome = "not_ready",
                errcode,
                next_due,
                latency_ms,
                waited_ms,
                "period not ready at WeChat"
            )
        }
        ErrorClass::Config => {
            tracing::error!(outcome = "broken", errcode, error = %error, next_due, latency_ms, waited_ms, "app configuration problem: fix it; other apps go on")
        }
        ErrorClass::Bug => {
            let request = claim.target().spec().request(claim.period).to_string();
            tracing::error!(outcome = "failed", errcode, error = %error, %request, latency_ms, waited_ms, "WeChat refused our request as malformed; not retried")
        }
        _ => {
            tracing::warn!(outcome = "failed", errcode, error = %error, state = verdict.state.as_str(), next_due, latency_ms, waited_ms, "fetch failed")
        }
    }
}
