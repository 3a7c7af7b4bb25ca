//! Planning: adding the kept periods the ledger lacks, for every stream
//! (dataset and grain) each app collects.

use crate::config::Config;
use crate::dataset::Stream;
use crate::domain::{AppId, Period};
use crate::planner::{kept_periods, Rule};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a complete plan is trusted before the ledger is checked again.
/// wxretain never deletes ledger entries; this bounds how long one deleted
/// by hand stays unplanned.
const PLAN_RECHECK: Duration = Duration::from_secs(3600);

/// Apps per planning statement (see [`Planner::plan`]).
const PLAN_CHUNK: usize = 1000;

/// Plans the ledger, remembering per stream what this process last planned
/// in full.
#[derive(Debug, Default)]
pub struct Planner {
    planned: Mutex<HashMap<Stream, Planned>>,
}

/// A plan that left the ledger holding every period of `first..=last` for
/// the apps whose list hashes to `apps`, at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planned {
    first: Period,
    last: Period,
    apps: u64,
    at: Instant,
}

impl Planner {
    /// Adds the kept periods the ledger lacks, for every stream each app in
    /// `apps` collects; returns how many it added.
    ///
    /// The streams, and [`PLAN_CHUNK`] apps of each, are planned at once,
    /// each on a connection of the pool. Checking that an app's periods run
    /// unbroken reads each of its kept entries (182 days, 26 weeks, 6 months
    /// by default: 0.45 s of one core for 10,000 apps' days), so a stream
    /// whose range and apps are those this process planned in full within
    /// [`PLAN_RECHECK`] is not checked again: every tick of a day but the
    /// first costs nothing here. Entries are only ever added, so what was
    /// planned stays planned; a new period (the range moves) is checked and
    /// added as before.
    pub async fn plan(
        &self,
        store: &Store,
        config: &Config,
        rule: &Rule,
        apps: &[AppId],
        as_of: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let wanted: HashSet<&AppId> = apps.iter().collect();
        let wanted = &wanted;
        let plans = config.streams().into_iter().map(|stream| async move {
            let collecting: Vec<AppId> = config
                .apps_collecting(stream)
                .into_iter()
                .filter(|a| wanted.contains(a))
                .collect();
            let (first, last) = kept_periods(&config.schedule, stream.grain, as_of);
            let fingerprint = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                collecting.hash(&mut h);
                h.finish()
            };
            let recent = lock(&self.planned).get(&stream).is_some_and(|p| {
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
                .map(|apps| store.plan(apps, stream.dataset, first, last, rule));
            let planned: u64 = futures::future::try_join_all(chunks)
                .await?
                .into_iter()
                .sum();
            lock(&self.planned).insert(
                stream,
                Planned {
                    first,
                    last,
                    apps: fingerprint,
                    at: Instant::now(),
                },
            );
            Ok::<u64, StoreError>(planned)
        });
        let planned = futures::future::try_join_all(plans).await?;
        Ok(planned.into_iter().sum())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the memo is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
