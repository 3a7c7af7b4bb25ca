//! One pass: plan → claim → fetch → read → store.
//!
//! The daemon's ticks, `once`, `backfill` and the tests all call
//! [`run_pass`]; only what they put in [`PassOptions`] differs.
//!
//! - [`attempt`]: one period, from its claim to what the ledger is to say;
//! - [`record`]: writing that, and valid answers a batch at a time;
//! - [`outcome`]: what became of each period, the pass's report, metrics.

mod attempt;
mod heartbeat;
mod outcome;
mod record;

pub use attempt::{Attempt, Attempted, Fetch, Pauses, Settled};
pub use outcome::{Outcome, PassReport, Timing};

use crate::dataset::Target;
use crate::domain::AppId;
use crate::runtime::Runtime;
use crate::store::{Answered, Claim, Scope, StoreError};
use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use heartbeat::Heartbeat;
use outcome::tally;
use record::Recorder;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a pass is asked to do.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// The instant the pass acts as if it were (`--as-of`, or now).
    pub as_of: DateTime<Utc>,
    pub scope: Scope,
    /// Add the configured range's missing periods to the ledger first.
    pub plan: bool,
}

/// How long a fetched answer may wait for its batch to fill.
const FLUSH_AFTER: Duration = Duration::from_millis(200);

/// What finished among the futures a pass polls together.
enum Event {
    Claimed(Result<Vec<Claim>, StoreError>),
    /// A valid answer, to be written with its batch.
    Answered(Box<Answered>, Timing),
    /// An attempt that brought nothing to store, written and counted.
    Done(Claim, Outcome),
    /// The oldest unsaved answer has waited [`FLUSH_AFTER`].
    FlushDue,
    /// A written (or refused) batch.
    Saved(Vec<Answered>, Vec<Outcome>),
}

/// A period held by this pass, as the ledger keys it.
type Held = (AppId, Target);

fn held(claim: &Claim) -> Held {
    (claim.appid.clone(), claim.target())
}

/// Runs one pass. Stops claiming when `shutdown` fires; periods in flight
/// finish and commit first.
pub async fn run_pass(
    rt: &Runtime,
    opts: &PassOptions,
    shutdown: &CancellationToken,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<PassReport> {
    let mut report = PassReport::default();
    rt.check_clock(opts.as_of).await?;
    // A schema this release was not built for (a newer release migrated it
    // under this process, a migration failed) is not written to: checked
    // before every pass, not only at start-up.
    rt.store.schema_state().await.map_err(|e| {
        tracing::error!(error = %e, "not writing to a schema this release does not know");
        anyhow::Error::new(e).context("checking the database's schema before the pass")
    })?;
    if opts.plan {
        report.planned = rt.plan(&opts.scope.apps, opts.as_of).await?;
    }
    // Leases this process still holds are left from an earlier pass that lost
    // the database mid-way: one process runs one pass at a time.
    if let Err(e) = rt.store.release(&rt.owner).await {
        tracing::warn!(error = %e, "could not release this process's stale leases");
    }
    match rt.store.release_dead_local(&rt.owner).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            periods = n,
            "took back periods leased by a process of this host that died"
        ),
        Err(e) => tracing::warn!(error = %e, "could not check for leases of dead processes"),
    }
    let max_in_flight = rt.config.wechat.max_in_flight;
    let claim_batch = i64::try_from(max_in_flight * 2).unwrap_or(i64::MAX);
    // Answers are written a batch at a time: one transaction for up to this
    // many periods, instead of one per period.
    let save_batch = max_in_flight;
    // Answers waiting for a write hold memory and leases: while a write is
    // slow, fetching pauses once this many are waiting, and claiming with
    // it (the queue stops draining). Without it, a write that took seconds
    // (10,000 apps, a publication day) let the pass fetch on and lease
    // 130,000 periods, and each later write, which finds this process's
    // leases, slower still.
    let max_waiting = save_batch * 4;
    let lease = rt.config.schedule.lease;
    // Claimed periods wait (queue, rate limits, the token lock) before their
    // fetch starts: renew every lease held well before it can run out.
    let heartbeat = Heartbeat::start(rt, lease);
    // Periods claimed and not yet finished: a claim that returns one of them
    // again (its lease had run out and we took it back) must not start it twice.
    let mut in_flight: HashSet<Held> = HashSet::new();
    let pauses = Pauses::default();
    // Pauses last one pass (this one decides afresh), here and in the client.
    rt.client.resume_all();
    let attempt = Attempt {
        fetcher: &rt.client,
        rule: &rt.rule,
        wechat: &rt.config.wechat,
        pauses: &pauses,
        as_of: opts.as_of,
    };
    let recorder = Recorder {
        store: &rt.store,
        owner: &rt.owner,
        rule: &rt.rule,
        as_of: opts.as_of,
    };
    let (attempt, recorder) = (&attempt, &recorder);
    let mut queue: VecDeque<Claim> = VecDeque::new();
    let mut answered: Vec<(Answered, Timing)> = Vec::new();
    // Claims, fetches and saves are polled together: awaiting a claim on its
    // own would stall fetches that hold a pooled connection mid-transaction,
    // and with a small pool the claim would then wait for them forever.
    let mut events: FuturesUnordered<Pin<Box<dyn Future<Output = Event> + Send + '_>>> =
        FuturesUnordered::new();
    let (mut fetching, mut claiming, mut saving, mut exhausted) = (0usize, false, false, false);
    let mut flush_due = false;
    let mut claim_error = None;
    loop {
        // Leases that may have run out (the process was stopped) end the
        // pass as a stop does: what another replica took is not asked twice.
        let stopping = shutdown.is_cancelled() || heartbeat.run_out();
        if !claiming && !exhausted && queue.len() < max_in_flight && !stopping {
            claiming = true;
            let scope = &opts.scope;
            events.push(Box::pin(async move {
                Event::Claimed(
                    rt.store
                        .claim(&rt.owner, scope, opts.as_of, claim_batch, lease)
                        .await,
                )
            }));
        }
        while fetching < max_in_flight && answered.len() + fetching < max_waiting && !stopping {
            let Some(claim) = queue.pop_front() else {
                break;
            };
            fetching += 1;
            events.push(Box::pin(async move {
                let Some(app) = rt.app(&claim.appid) else {
                    // The scope only holds configured apps.
                    return Event::Done(claim, Outcome::Deferred);
                };
                match attempt.run(app, claim).await {
                    Attempted::Answered(a, timing) => Event::Answered(a, timing),
                    Attempted::Settled(settled) => {
                        let (claim, outcome) = recorder.record(settled).await;
                        Event::Done(claim, outcome)
                    }
                }
            }));
        }
        // Write when the batch is full, when nothing else could add to it,
        // or when its oldest answer has waited long enough.
        if !saving
            && !answered.is_empty()
            && (answered.len() >= save_batch || fetching == 0 || flush_due)
        {
            saving = true;
            flush_due = false;
            let (batch, timings): (Vec<Answered>, Vec<Timing>) =
                std::mem::take(&mut answered).into_iter().unzip();
            events.push(Box::pin(async move {
                let outcomes = recorder.save(&batch, &timings).await;
                Event::Saved(batch, outcomes)
            }));
        }
        match events.next().await {
            None => break,
            Some(Event::Claimed(Ok(claims))) => {
                claiming = false;
                exhausted = claims.is_empty();
                queue.extend(claims.into_iter().filter(|c| in_flight.insert(held(c))));
            }
            Some(Event::Claimed(Err(e))) => {
                claiming = false;
                exhausted = true;
                claim_error = Some(e);
            }
            Some(Event::Done(claim, outcome)) => {
                fetching -= 1;
                in_flight.remove(&held(&claim));
                tally(&outcome, &mut report, progress);
            }
            Some(Event::Answered(a, timing)) => {
                fetching -= 1;
                if answered.is_empty() {
                    events.push(Box::pin(async {
                        tokio::time::sleep(FLUSH_AFTER).await;
                        Event::FlushDue
                    }));
                }
                answered.push((*a, timing));
            }
            Some(Event::FlushDue) => flush_due = true,
            Some(Event::Saved(batch, outcomes)) => {
                saving = false;
                for (a, outcome) in batch.iter().zip(&outcomes) {
                    in_flight.remove(&held(&a.claim));
                    tally(outcome, &mut report, progress);
                }
            }
        }
    }

    if let Err(e) = rt.store.release(&rt.owner).await {
        tracing::warn!(error = %e, "could not release leases; they expire by themselves");
    }
    if let Some(e) = claim_error {
        return Err(anyhow::Error::new(e).context("claiming due periods"));
    }
    metrics::gauge!("wxretain_last_pass_timestamp_seconds").set(Utc::now().timestamp() as f64);
    Ok(report)
}
