//! One pass: plan → claim → fetch → validate → store.
//!
//! The scheduler's ticks, `once`, `backfill` and the tests all call
//! [`run_pass`]; only what they put in [`PassOptions`] differs.

use crate::clock::HostClock;
use crate::config::{AppConfig, Config};
use crate::domain::{AppId, Grain, KeySet, NaturalWeek, Period};
use crate::metrics::per_app::{self, FetchOutcome, Implausible};
use crate::planner::{Rule, Verdict, WeekState};
use crate::replica::ReplicaId;
use crate::store::{Answered, Claim, SaveStats, Scope, Store};
use crate::telemetry::{instant, list};
use crate::validate::{validate, PeriodAnswer};
use crate::wechat::{CallMeter, ErrorClass, FetchError, WeChatClient};
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Everything a pass needs; built once per process.
pub struct Pipeline {
    pub config: Arc<Config>,
    /// The host's clock, checked against the database's before each pass.
    pub clock: HostClock,
    pub store: Store,
    pub client: WeChatClient,
    pub rule: Rule,
    /// This process's name in `lease_owner`.
    pub owner: ReplicaId,
    /// Per grain, what this process last planned in full: see [`Pipeline::plan`].
    planned: Mutex<HashMap<Grain, Planned>>,
    /// Where each app is in `config.apps`: every claimed period looks its
    /// app up, and searching a list of 10,000 apps for each of a burst's
    /// 100,000 periods costs seconds of CPU.
    app_index: HashMap<AppId, usize>,
}

/// A plan that left the ledger holding every period of `first..=last` for
/// the apps whose list hashes to `apps`, at `at`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Planned {
    first: Period,
    last: Period,
    apps: u64,
    at: Instant,
}

/// How long a complete plan is trusted before the ledger is checked again.
/// wxretain never deletes ledger entries; this bounds how long one deleted
/// by hand stays unplanned.
const PLAN_RECHECK: Duration = Duration::from_secs(3600);

/// Apps per planning statement (see [`Pipeline::plan`]).
const PLAN_CHUNK: usize = 1000;

/// What a pass is asked to do.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// The instant the pass acts as if it were (`--as-of`, or now).
    pub as_of: DateTime<Utc>,
    pub scope: Scope,
    /// Add the configured range's missing weeks to the ledger first.
    pub plan: bool,
}

/// What a pass did, counted per week attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    pub planned: u64,
    pub attempted: u64,
    pub stored: u64,
    pub rows_written: u64,
    pub not_ready: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Weeks put off because their app was paused (quota, broken setup).
    pub deferred: u64,
    /// Weeks whose result could not be written (database trouble); their lease
    /// runs out and a later pass takes them again.
    pub unsaved: u64,
    /// Weeks whose lease another replica had taken by the time their result
    /// was written: that replica's result counts, this one was dropped.
    pub lease_lost: u64,
}

/// Apps paused for the rest of the pass, and until when.
type Pauses = Mutex<HashMap<AppId, DateTime<Utc>>>;

impl Pipeline {
    pub fn new(config: Arc<Config>, store: Store) -> anyhow::Result<Self> {
        let app_index = config
            .apps
            .iter()
            .enumerate()
            .map(|(i, a)| (a.appid.clone(), i))
            .collect();
        Ok(Self {
            client: WeChatClient::new(&config.wechat, Arc::new(store.clone()))?,
            rule: Rule::from_config(&config.schedule),
            owner: ReplicaId::current(),
            clock: HostClock::system(),
            config,
            store,
            planned: Mutex::new(HashMap::new()),
            app_index,
        })
    }

    /// The configured apps as a scope over every period of every grain.
    pub fn all_apps(&self) -> Scope {
        Scope {
            apps: self.config.apps.iter().map(|a| a.appid.clone()).collect(),
            ranges: Vec::new(),
        }
    }

    /// Records the configured apps (and their names) in the apps registry
    /// and marks the others retired: see [`Store::sync_apps`].
    pub async fn sync_apps(&self) -> anyhow::Result<()> {
        let configured: Vec<(AppId, String)> = self
            .config
            .apps
            .iter()
            .map(|a| (a.appid.clone(), a.name.clone()))
            .collect();
        self.store
            .sync_apps(&configured)
            .await
            .map_err(|e| anyhow::Error::new(e).context("recording the configured apps"))
    }

    /// Refuses to act when this host's clock is not the database's, or when
    /// `as_of` is an instant the database has not reached: see [`crate::clock`].
    pub async fn check_clock(&self, as_of: DateTime<Utc>) -> anyhow::Result<()> {
        let database = self.store.db_now().await?;
        let host = self.clock.now();
        metrics::gauge!("wxretain_clock_skew_seconds")
            .set((host - database).num_milliseconds() as f64 / 1000.0);
        let limit = self.config.schedule.max_clock_skew;
        crate::clock::check(host, database, as_of, limit).map_err(|e| {
            tracing::error!(error = %e, host = instant(Some(host)), database = instant(Some(database)), as_of = instant(Some(as_of)), "refusing to plan or claim");
            metrics::counter!("wxretain_passes_refused_total", "reason" => "clock").increment(1);
            anyhow::Error::new(e)
        })
    }

    /// The weeks a pass at `as_of` keeps: oldest kept to last completed.
    pub fn kept_weeks(&self, as_of: DateTime<Utc>) -> (NaturalWeek, NaturalWeek) {
        let last = NaturalWeek::last_completed_at(as_of, crate::domain::BEIJING);
        (self.config.oldest_week(last), last)
    }

    /// The periods of `grain` a pass at `as_of` keeps: from the one holding
    /// the oldest kept week's Monday to the last completed one.
    pub fn kept_periods(&self, grain: Grain, as_of: DateTime<Utc>) -> (Period, Period) {
        let last_week = NaturalWeek::last_completed_at(as_of, crate::domain::BEIJING);
        (
            self.config.oldest_period(grain, last_week),
            grain.last_completed_at(as_of),
        )
    }

    /// Adds the kept periods the ledger lacks, for every grain each app in
    /// `apps` collects.
    ///
    /// The grains, and [`PLAN_CHUNK`] apps of each, are planned at once, each
    /// on a connection of the pool. Checking that an app's periods run
    /// unbroken reads each of its kept entries (182 days, 26 weeks, 6 months
    /// by default: 0.45 s of one core for 10,000 apps' days), so
    /// a grain whose range and apps are those this process planned in full
    /// within [`PLAN_RECHECK`] is not checked again: every tick of a day but
    /// the first costs nothing here. Entries are only ever added, so what was
    /// planned stays planned; a new period (the range moves) is checked and
    /// added as before.
    pub async fn plan(&self, apps: &[AppId], as_of: DateTime<Utc>) -> anyhow::Result<u64> {
        let wanted: HashSet<&AppId> = apps.iter().collect();
        let wanted = &wanted;
        let plans = Grain::ALL.into_iter().map(|grain| async move {
            let collecting: Vec<AppId> = self
                .config
                .apps_collecting(grain)
                .into_iter()
                .filter(|a| wanted.contains(a))
                .collect();
            let (first, last) = self.kept_periods(grain, as_of);
            let fingerprint = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                collecting.hash(&mut h);
                h.finish()
            };
            let recent = lock(&self.planned).get(&grain).is_some_and(|p| {
                (p.first, p.last, p.apps) == (first, last, fingerprint)
                    && p.at.elapsed() < PLAN_RECHECK
            });
            if recent {
                return Ok(0);
            }
            // Apps in chunks, each its own statement on its own connection:
            // the check is per app, so Postgres can spread it over its cores.
            let chunks = collecting
                .chunks(PLAN_CHUNK)
                .map(|apps| self.store.plan(apps, first, last, &self.rule));
            let planned: u64 = futures::future::try_join_all(chunks)
                .await?
                .into_iter()
                .sum();
            lock(&self.planned).insert(
                grain,
                Planned {
                    first,
                    last,
                    apps: fingerprint,
                    at: Instant::now(),
                },
            );
            Ok::<u64, sqlx::Error>(planned)
        });
        let planned = futures::future::try_join_all(plans).await?;
        Ok(planned.into_iter().sum())
    }
}

/// Runs one pass. Stops claiming when `shutdown` fires; weeks in flight finish
/// and commit first.
pub async fn run_pass(
    p: &Pipeline,
    opts: &PassOptions,
    shutdown: &CancellationToken,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<PassReport> {
    let mut report = PassReport::default();
    p.check_clock(opts.as_of).await?;
    if opts.plan {
        report.planned = p.plan(&opts.scope.apps, opts.as_of).await?;
    }
    // Leases this process still holds are left from an earlier pass that lost
    // the database mid-way: one process runs one pass at a time.
    if let Err(e) = p.store.release(&p.owner).await {
        tracing::warn!(error = %e, "could not release this process's stale leases");
    }
    match p.store.release_dead_local(&p.owner).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            weeks = n,
            "took back weeks leased by a process of this host that died"
        ),
        Err(e) => tracing::warn!(error = %e, "could not check for leases of dead processes"),
    }
    let max_in_flight = p.config.wechat.max_in_flight;
    let claim_batch = max_in_flight as i64 * 2;
    // Answers are written a batch at a time: one statement for up to this
    // many weeks, instead of a transaction per week.
    let save_batch = max_in_flight;
    // Answers waiting for a write hold memory and leases: while a write is
    // slow, fetching pauses once this many are waiting, and claiming with
    // it (the queue stops draining). Without it, a write that took seconds
    // (10,000 apps, a publication day) let the pass fetch on and lease
    // 130,000 periods, and each later write, which finds this process's
    // leases, slower still.
    let max_waiting = save_batch * 4;
    let lease = p.config.schedule.lease;
    // Claimed weeks wait (queue, rate limits, the token lock) before their
    // fetch starts: renew every lease held well before it can run out.
    let _heartbeat = Heartbeat::start(p, lease);
    // Weeks claimed and not yet finished: a claim that returns one of them
    // again (its lease had run out and we took it back) must not start it twice.
    let mut held: HashSet<(AppId, Period)> = HashSet::new();
    let pauses: Pauses = Mutex::new(HashMap::new());
    // Pauses last one pass (this one decides afresh), here and in the client.
    p.client.resume_all();
    let mut queue: VecDeque<Claim> = VecDeque::new();
    let mut answered: Vec<Pending> = Vec::new();
    // Claims, fetches and saves are polled together: awaiting a claim on its
    // own would stall fetches that hold a pooled connection mid-transaction,
    // and with a small pool the claim would then wait for them forever.
    let mut events: FuturesUnordered<Pin<Box<dyn Future<Output = Event> + Send + '_>>> =
        FuturesUnordered::new();
    let (mut fetching, mut claiming, mut saving, mut exhausted) = (0usize, false, false, false);
    let mut flush_due = false;
    let mut claim_error = None;
    loop {
        if !claiming && !exhausted && queue.len() < max_in_flight && !shutdown.is_cancelled() {
            claiming = true;
            let scope = &opts.scope;
            events.push(Box::pin(async move {
                Event::Claimed(
                    p.store
                        .claim(&p.owner, scope, opts.as_of, claim_batch, lease)
                        .await,
                )
            }));
        }
        while fetching < max_in_flight
            && answered.len() + fetching < max_waiting
            && !shutdown.is_cancelled()
        {
            let Some(claim) = queue.pop_front() else {
                break;
            };
            fetching += 1;
            let pauses = &pauses;
            events.push(Box::pin(async move {
                Event::Fetched(process(p, claim, opts.as_of, pauses).await)
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
            let (batch, latencies): (Vec<Answered>, Vec<Timing>) = std::mem::take(&mut answered)
                .into_iter()
                .map(|p| (p.answered, p.timing))
                .unzip();
            events.push(Box::pin(async move {
                let saved = p.store.save_answers(&p.owner, &batch).await;
                Event::Saved(batch, latencies, saved)
            }));
        }
        match events.next().await {
            None => break,
            Some(Event::Claimed(Ok(claims))) => {
                claiming = false;
                exhausted = claims.is_empty();
                queue.extend(
                    claims
                        .into_iter()
                        .filter(|c| held.insert((c.appid.clone(), c.period))),
                );
            }
            Some(Event::Claimed(Err(e))) => {
                claiming = false;
                exhausted = true;
                claim_error = Some(e);
            }
            Some(Event::Fetched(Fetched::Done(week, outcome))) => {
                fetching -= 1;
                held.remove(&week);
                tally(&outcome, &mut report, progress);
            }
            Some(Event::Fetched(Fetched::Answered(pending))) => {
                fetching -= 1;
                if answered.is_empty() {
                    events.push(Box::pin(async {
                        tokio::time::sleep(FLUSH_AFTER).await;
                        Event::FlushDue
                    }));
                }
                answered.push(pending);
            }
            Some(Event::FlushDue) => flush_due = true,
            Some(Event::Saved(batch, latencies, saved)) => {
                saving = false;
                for a in &batch {
                    held.remove(&(a.claim.appid.clone(), a.claim.period));
                }
                for outcome in saved_outcomes(batch, latencies, saved) {
                    tally(&outcome, &mut report, progress);
                }
            }
        }
    }

    if let Err(e) = p.store.release(&p.owner).await {
        tracing::warn!(error = %e, "could not release leases; they expire by themselves");
    }
    if let Some(e) = claim_error {
        return Err(anyhow::Error::new(e).context("claiming due weeks"));
    }
    metrics::gauge!("wxretain_last_pass_timestamp_seconds").set(Utc::now().timestamp() as f64);
    Ok(report)
}

/// How long a fetched answer may wait for its batch to fill.
const FLUSH_AFTER: Duration = Duration::from_millis(200);

/// What finished among the futures a pass polls together.
enum Event {
    Claimed(sqlx::Result<Vec<Claim>>),
    Fetched(Fetched),
    /// The oldest unsaved answer has waited [`FLUSH_AFTER`].
    FlushDue,
    /// A written (or lost) batch, with each answer's fetch timing.
    Saved(
        Vec<Answered>,
        Vec<Timing>,
        sqlx::Result<Vec<Option<SaveStats>>>,
    ),
}

/// A fetch either ended the week's attempt or brought an answer to store.
enum Fetched {
    Done((AppId, Period), Outcome),
    Answered(Pending),
}

/// Renews this process's leases every third of a lease while a pass runs;
/// stops when dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    fn start(p: &Pipeline, lease: Duration) -> Self {
        let (store, owner) = (p.store.clone(), p.owner.clone());
        Self(tokio::spawn(async move {
            let mut every = tokio::time::interval(lease / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await; // the first tick is immediate: the claim just set them
            loop {
                every.tick().await;
                if let Err(e) = store.extend_leases(&owner, lease).await {
                    tracing::warn!(error = %e, "could not renew leases; weeks whose lease runs out may be taken by another replica, and this one's result is then dropped");
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A valid answer waiting for its batch to be written.
struct Pending {
    answered: Answered,
    timing: Timing,
}

/// How long a fetch took, for its log line.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// On the wire: from sending each data request to its answer.
    latency_ms: u64,
    /// Everything else from the start of the attempt: waiting for the rate
    /// limits, the token, pauses between retries.
    waited_ms: u64,
}

fn tally(outcome: &Outcome, report: &mut PassReport, progress: Option<&indicatif::ProgressBar>) {
    if let Some(bar) = progress {
        bar.inc(1);
    }
    outcome.count(report);
}

/// Logs and counts each week of a written (or lost) batch.
fn saved_outcomes(
    batch: Vec<Answered>,
    latencies: Vec<Timing>,
    saved: sqlx::Result<Vec<Option<SaveStats>>>,
) -> Vec<Outcome> {
    match saved {
        Ok(stats) => batch
            .iter()
            .zip(latencies)
            .zip(stats)
            .map(|((a, timing), stats)| {
                let (claim, verdict) = (&a.claim, &a.verdict);
                let Timing { latency_ms, waited_ms } = timing;
                let Some(stats) = stats else {
                    tracing::warn!(appid = %claim.appid, period = %claim.period, outcome = "lease_lost", latency_ms, waited_ms, "another replica took this week after its lease ran out; this answer is dropped");
                    record_metrics(claim, &Outcome::LeaseLost);
                    return Outcome::LeaseLost;
                };
                tracing::info!(appid = %claim.appid, period = %claim.period, outcome = "stored", keys = %list(&a.answer.keys()),
                    rows_written = stats.rows_written, state = verdict.state.as_str(),
                    next_due = instant(verdict.next_due), latency_ms, waited_ms, "fetched week");
                let outcome = Outcome::Stored {
                    rows: stats.rows_written,
                    state: verdict.state,
                };
                record_metrics(claim, &outcome);
                outcome
            })
            .collect(),
        Err(e) => {
            tracing::error!(weeks = batch.len(), error = %e, "could not store a batch of answers; its weeks will be taken again when their leases end");
            batch
                .iter()
                .map(|a| {
                    record_metrics(&a.claim, &Outcome::Unsaved);
                    Outcome::Unsaved
                })
                .collect()
        }
    }
}

/// What happened to one claimed week.
enum Outcome {
    Stored {
        rows: u64,
        state: WeekState,
    },
    Failed(ErrorClass),
    Rejected,
    Deferred,
    Unsaved,
    /// Another replica holds the week now: nothing of this attempt was written.
    LeaseLost,
}

impl Outcome {
    fn count(&self, r: &mut PassReport) {
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
                if *state == WeekState::NotReady {
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
}

async fn process(p: &Pipeline, claim: Claim, as_of: DateTime<Utc>, pauses: &Pauses) -> Fetched {
    let week = (claim.appid.clone(), claim.period);
    match attempt(p, claim, as_of, pauses).await {
        Attempt::Done(outcome) => Fetched::Done(week, outcome),
        Attempt::Answered(pending) => Fetched::Answered(pending),
    }
}

enum Attempt {
    Done(Outcome),
    Answered(Pending),
}

/// Puts a claimed period off to `until` without an attempt (its app is paused).
async fn defer(p: &Pipeline, claim: &Claim, until: DateTime<Utc>) -> Outcome {
    let verdict = Verdict {
        state: claim.before.state,
        next_due: Some(until),
        attempts: claim.before.attempts,
        late_since: claim.before.late_since,
    };
    let outcome = match p.store.defer(&p.owner, claim, &verdict).await {
        Ok(true) => Outcome::Deferred,
        Ok(false) => Outcome::LeaseLost,
        Err(_) => Outcome::Unsaved,
    };
    record_metrics(claim, &outcome);
    outcome
}

/// Whether a fenced write found the week still ours.
fn fenced(written: sqlx::Result<bool>, outcome: Outcome) -> sqlx::Result<Outcome> {
    written.map(|ours| if ours { outcome } else { Outcome::LeaseLost })
}

async fn attempt(p: &Pipeline, claim: Claim, as_of: DateTime<Utc>, pauses: &Pauses) -> Attempt {
    let Some(app) = p
        .app_index
        .get(&claim.appid)
        .and_then(|&i| p.config.apps.get(i))
    else {
        return Attempt::Done(Outcome::Deferred); // scope only holds configured apps
    };
    let paused_until = lock(pauses).get(&claim.appid).copied();
    if let Some(until) = paused_until {
        return Attempt::Done(defer(p, &claim, until).await);
    }
    let started = Instant::now();
    // Data requests this attempt sends, retries included (the ledger's
    // `calls`), and their own time on the wire.
    let meter = CallMeter::default();
    let fetched = fetch_with_retry(p, app, claim.period, &meter).await;
    // The call's own time, and apart from it the waits before it (rate
    // limits, the token, retry pauses): a queue is not a slow WeChat.
    let timing = Timing {
        latency_ms: meter.wire().as_millis() as u64,
        waited_ms: started.elapsed().saturating_sub(meter.wire()).as_millis() as u64,
    };
    if let Err(FetchError::Paused) = fetched {
        // Held back at the moment of sending: the app was paused meanwhile.
        let until = lock(pauses).get(&claim.appid).copied();
        return Attempt::Done(defer(p, &claim, until.unwrap_or(as_of)).await);
    }
    let written = match fetched {
        Ok(raw) => {
            // Refusals keep the body received first, for inspection.
            let checked = match validate(claim.period, &raw.body) {
                Ok(answer) => match answer.implausibility() {
                    None => Ok((answer, raw.text, false)),
                    Some(why) => confirm(p, app, claim.period, answer, why, &meter)
                        .await
                        .map_err(|reason| (reason, raw.text)),
                },
                Err(rejection) => Err((rejection.to_string(), raw.text)),
            };
            match checked {
                Ok((answer, raw, suspect)) => {
                    let keys = KeySet::of(answer.keys()).union(claim.before.keys);
                    let verdict = p.rule.after_answer(claim.period, keys, claim.before, as_of);
                    return Attempt::Answered(Pending {
                        answered: Answered {
                            claim,
                            answer,
                            raw,
                            suspect,
                            verdict,
                            requests: meter.requests(),
                        },
                        timing,
                    });
                }
                Err((reason, body)) => {
                    let verdict = p.rule.after_failure(
                        claim.period,
                        ErrorClass::Transient,
                        claim.before,
                        as_of,
                    );
                    tracing::warn!(appid = %claim.appid, period = %claim.period, outcome = "rejected", %reason, latency_ms = timing.latency_ms, waited_ms = timing.waited_ms, "answer refused; nothing written");
                    let saved = p
                        .store
                        .record_rejection(
                            &p.owner,
                            &claim,
                            &verdict,
                            (&reason, &body),
                            meter.requests(),
                        )
                        .await;
                    fenced(saved, Outcome::Rejected)
                }
            }
        }
        Err(error) => {
            let class = error.class();
            let verdict = p
                .rule
                .after_failure(claim.period, class, claim.before, as_of);
            log_failure(&claim, &error, &verdict, timing);
            if class == ErrorClass::Config {
                per_app::set_broken(&claim.appid, true);
            }
            match class {
                ErrorClass::MinuteQuota | ErrorClass::DailyQuota | ErrorClass::Config => {
                    if let Some(until) = verdict.next_due {
                        lock(pauses).insert(claim.appid.clone(), until);
                    }
                    // Calls already waiting behind the app's rate limit stay unsent.
                    p.client.pause(&claim.appid);
                }
                _ => {}
            }
            let saved = p
                .store
                .record_failure(
                    &p.owner,
                    &claim,
                    &verdict,
                    (error.errcode(), &error.to_string()),
                    meter.requests(),
                )
                .await;
            fenced(saved, Outcome::Failed(class))
        }
    };
    let outcome = match written {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(appid = %claim.appid, period = %claim.period, error = %e, "could not record the result; the week will be taken again when its lease ends");
            Outcome::Unsaved
        }
    };
    record_metrics(&claim, &outcome);
    Attempt::Done(outcome)
}

/// Per-app counters and gauges for one week's final outcome.
fn record_metrics(claim: &Claim, outcome: &Outcome) {
    let label = match outcome {
        Outcome::Stored {
            state: WeekState::NotReady,
            ..
        } => FetchOutcome::NotReady,
        Outcome::Stored { .. } => FetchOutcome::Stored,
        Outcome::Failed(ErrorClass::NotReady | ErrorClass::DateRange) => FetchOutcome::NotReady,
        Outcome::Failed(_) => FetchOutcome::Failed,
        Outcome::Rejected => FetchOutcome::Rejected,
        Outcome::Deferred => FetchOutcome::Deferred,
        Outcome::Unsaved => FetchOutcome::Unsaved,
        Outcome::LeaseLost => FetchOutcome::LeaseLost,
    };
    per_app::fetched(&claim.appid, claim.period.grain(), label);
    if let Outcome::Stored { rows, .. } = outcome {
        per_app::set_broken(&claim.appid, false);
        metrics::counter!("wxretain_rows_written_total").increment(*rows);
        per_app::succeeded_at(&claim.appid, Utc::now().timestamp());
    }
}

/// An answer that cannot be true (see [`crate::validate::PeriodAnswer::implausibility`])
/// is never stored on first sight: the period is asked again after a pause,
/// and the answer is stored, flagged `suspect`, only if WeChat repeats it
/// exactly. A plausible second answer is stored instead; anything else is
/// refused (the first body is kept in `rejected_answers`) and retried later.
async fn confirm(
    p: &Pipeline,
    app: &AppConfig,
    period: Period,
    first: PeriodAnswer,
    why: String,
    meter: &CallMeter,
) -> Result<(PeriodAnswer, String, bool), String> {
    let counted = |outcome| per_app::implausible(&app.appid, outcome);
    tracing::info!(appid = %app.appid, %period, reason = %why, pause_ms = p.config.wechat.suspect_recheck.as_millis() as u64, "answer looks impossible; asking WeChat again before storing it");
    tokio::time::sleep(p.config.wechat.suspect_recheck).await;
    let unconfirmed = |detail: String| {
        counted(Implausible::Refused);
        format!("impossible answer not confirmed ({why}): {detail}")
    };
    let again = fetch_with_retry(p, app, period, meter)
        .await
        .map_err(|e| unconfirmed(format!("asking again failed: {e}")))?;
    match validate(period, &again.body) {
        Err(rejection) => Err(unconfirmed(format!(
            "the second answer is invalid: {rejection}"
        ))),
        Ok(second) if second == first => {
            counted(Implausible::Stored);
            tracing::warn!(appid = %app.appid, %period, reason = %why, "WeChat gave the same impossible answer twice; stored as WeChat's, flagged suspect");
            Ok((second, again.text, true))
        }
        Ok(second) if second.implausibility().is_none() => {
            counted(Implausible::Replaced);
            Ok((second, again.text, false))
        }
        Ok(_) => Err(unconfirmed(
            "WeChat answered differently, and again impossibly".to_string(),
        )),
    }
}

/// Transient failures are retried here with exponential backoff and jitter,
/// a bounded number of times; everything else goes straight to the ledger.
async fn fetch_with_retry(
    p: &Pipeline,
    app: &AppConfig,
    period: Period,
    meter: &CallMeter,
) -> Result<crate::wechat::RawAnswer, FetchError> {
    let w = &p.config.wechat;
    let policy = ExponentialBuilder::default()
        .with_min_delay(w.retry_min_delay)
        .with_max_delay(w.retry_min_delay * 16)
        .with_max_times(w.retry_attempts.saturating_sub(1))
        .with_jitter();
    (|| p.client.retain_metered(app, period, meter))
        .retry(policy)
        .when(|e: &FetchError| e.class() == ErrorClass::Transient)
        .notify(|e: &FetchError, pause: Duration| {
            tracing::debug!(appid = %app.appid, %period, error = %e, pause_ms = pause.as_millis() as u64, "transient failure; retrying");
        })
        .await
}

fn log_failure(claim: &Claim, error: &FetchError, verdict: &Verdict, timing: Timing) {
    let (appid, period) = (&claim.appid, claim.period);
    let errcode = error.errcode();
    let next_due = instant(verdict.next_due);
    let Timing {
        latency_ms,
        waited_ms,
    } = timing;
    match error.class() {
        ErrorClass::NotReady | ErrorClass::DateRange => {
            tracing::info!(%appid, %period, outcome = "not_ready", errcode, next_due, latency_ms, waited_ms, "period not ready at WeChat")
        }
        ErrorClass::Config => {
            tracing::error!(%appid, %period, outcome = "broken", errcode, error = %error, next_due, latency_ms, waited_ms, "app configuration problem: fix it; other apps go on")
        }
        ErrorClass::Bug => {
            tracing::error!(%appid, %period, outcome = "failed", errcode, error = %error, request = %format!("begin_date={} end_date={}", period.begin_date(), period.end_date()), latency_ms, waited_ms, "WeChat refused our request as malformed; not retried")
        }
        _ => {
            tracing::warn!(%appid, %period, outcome = "failed", errcode, error = %error, state = verdict.state.as_str(), next_due, latency_ms, waited_ms, "fetch failed")
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the counters are still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
