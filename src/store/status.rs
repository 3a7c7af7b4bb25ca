//! What the ledger says, per app, stream and period, for `status`,
//! `backfill`'s summary and the metrics.

use super::{app_strings, Result, Store};
use crate::dataset::{DatasetId, Stream};
use crate::domain::{AppId, Grain, Period, PeriodState};
use chrono::{DateTime, NaiveDate, Utc};

/// One app's health, as `wxretain status` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppStatus {
    pub appid: String,
    /// The app's `name` in the config (its appid when it has none; the
    /// store does not know names: `status` fills them in).
    pub name: String,
    /// Which dataset the counts below are of.
    pub dataset: DatasetId,
    /// daily, weekly or monthly: the counts below are of this grain's periods.
    pub grain: Grain,
    /// Periods with their last key, or past their grace period.
    pub complete: i64,
    /// Periods with some keys, waiting for later ones.
    pub maturing: i64,
    /// Periods with no data yet that WeChat has not said it is computing:
    /// never fetched (or not planned yet).
    pub missing: i64,
    /// Periods WeChat has not published yet (61503, an empty answer): due
    /// again later, not a failure.
    pub not_ready: i64,
    /// Periods whose last attempt failed.
    pub failing: i64,
    /// Of those, periods failing for more than a day: since the later of
    /// their planning, their last success and the time their next key was
    /// due. `status` fills this in ([`Store::long_failing`]).
    pub failing_over_a_day: i64,
    /// The app's last error (below) is a configuration refusal (no
    /// permission, a wrong secret, an IP not whitelisted, a broken token
    /// source) and nothing succeeded since. `status` fills this in.
    pub broken: bool,
    /// Periods WeChat refuses to serve.
    pub unavailable: i64,
    /// Periods stored from an impossible answer WeChat gave twice.
    pub suspect: i64,
    /// The oldest period without data, if any.
    pub oldest_gap: Option<NaiveDate>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_errcode: Option<i64>,
    /// How wxretain classed the last error (`last_error_class`).
    #[serde(skip)]
    pub last_error_class: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// No longer in the config: its periods stay in the ledger, unfetched
    /// (shown by `status --all` only).
    pub retired: bool,
}

/// One period's ledger entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeriodRow {
    pub appid: String,
    pub dataset: String,
    pub grain: String,
    pub period_start: NaiveDate,
    pub state: String,
    pub keys: Vec<i16>,
    pub attempts: i32,
    pub calls: i32,
    pub last_errcode: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_class: Option<String>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Per-app counts of one dataset over `first..=last`; periods the
    /// ledger has not planned yet count as missing.
    pub async fn app_status(
        &self,
        apps: &[AppId],
        dataset: DatasetId,
        first: Period,
        last: Period,
    ) -> Result<Vec<AppStatus>> {
        let wanted = StatusRange {
            stream: Stream::new(dataset, first.grain()),
            apps: apps.to_vec(),
            first,
            last,
        };
        let mut all = self.app_statuses(&[wanted]).await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// [`Store::app_status`] of several streams at once, answered in the
    /// same order, each sorted by appid. Every stream of one grain must ask
    /// for the same range (the kept range is per grain).
    ///
    /// One scan of the ledger for all of them: a query per grain read the
    /// whole ledger once per grain, and with 10,000 apps × three grains (2.1
    /// million entries) `status` took over 3 s. The scan is grouped by
    /// (app, grain, state) first, a few hashed columns and four aggregates
    /// per entry, then those groups (a few per app) are rolled up: counting
    /// each state with its own filter cost four times as much per entry.
    /// Joining to the app list comes after, on the groups; the last errors
    /// come from a partial index of the few entries that have one.
    pub async fn app_statuses(&self, wanted: &[StatusRange]) -> Result<Vec<Vec<AppStatus>>> {
        let mut want_apps = Vec::new();
        let mut want_datasets: Vec<&str> = Vec::new();
        let mut want_grains: Vec<&str> = Vec::new();
        for w in wanted {
            let mut apps = app_strings(&w.apps);
            apps.sort();
            apps.dedup();
            want_datasets.extend(std::iter::repeat_n(w.stream.dataset.as_str(), apps.len()));
            want_grains.extend(std::iter::repeat_n(w.stream.grain.as_str(), apps.len()));
            want_apps.extend(apps);
        }
        // Each grain's range as two scalar parameters (NULL for a grain not
        // asked for), picked per entry by a CASE on its grain: 1.0-1.2 s
        // where joining the ledger to a table of the ranges took 1.35 s, at
        // 2.1 million entries.
        let range = |grain: Grain| {
            let found = wanted.iter().find(|w| w.stream.grain == grain);
            (
                found.map(|w| w.first.start()),
                found.map(|w| w.last.start()),
            )
        };
        let (daily, weekly, monthly) = (
            range(Grain::Daily),
            range(Grain::Weekly),
            range(Grain::Monthly),
        );
        // The first grouping holds a few groups per app and grain (30,000 to
        // 60,000 with 10,000 apps): over the default work_mem of 4 MB it
        // spills to disk and takes half again as long. Local to this
        // transaction, so nothing else is affected.
        let mut tx = self.pool().begin().await?;
        sqlx::query!("SET LOCAL work_mem = '64MB'")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query_as!(
            AppStatusRow,
            // The compiler sees every column of the CTEs as nullable: `!`
            // where coalesce or the app list sets it, `?` on what the left
            // joins leave NULL.
            r#"WITH by_state AS (
                    SELECT l.appid, l.dataset, l.grain, l.state,
                           l.period_start
                             BETWEEN (CASE l.grain WHEN 'daily' THEN $1::date
                                                   WHEN 'weekly' THEN $3::date
                                                   WHEN 'monthly' THEN $5::date END)
                                 AND (CASE l.grain WHEN 'daily' THEN $2::date
                                                   WHEN 'weekly' THEN $4::date
                                                   WHEN 'monthly' THEN $6::date END) AS in_range,
                           count(*) AS n, count(*) FILTER (WHERE l.suspect) AS suspect,
                           min(l.period_start) FILTER (WHERE cardinality(l.keys) = 0) AS oldest_gap,
                           max(l.last_success_at) AS last_success
                      FROM retention_ledger l
                     GROUP BY 1, 2, 3, 4, 5),
                  counts AS (
                    SELECT appid, dataset, grain,
                           sum(n) FILTER (WHERE in_range AND state = 'complete') AS complete,
                           sum(n) FILTER (WHERE in_range AND state = 'maturing') AS maturing,
                           sum(n) FILTER (WHERE in_range AND state = 'missing') AS missing,
                           sum(n) FILTER (WHERE in_range AND state = 'not_ready') AS not_ready,
                           sum(n) FILTER (WHERE in_range AND state = 'failing') AS failing,
                           sum(n) FILTER (WHERE in_range AND state = 'unavailable') AS unavailable,
                           sum(suspect) FILTER (WHERE in_range) AS suspect,
                           sum(n) FILTER (WHERE in_range) AS planned,
                           min(oldest_gap) FILTER (WHERE in_range AND state <> 'not_ready') AS oldest_gap,
                           max(last_success) AS last_success
                      FROM by_state
                     GROUP BY appid, dataset, grain),
                  errors AS (
                    SELECT DISTINCT ON (l.appid, l.dataset, l.grain) l.appid, l.dataset, l.grain,
                           l.last_error, l.last_errcode, l.last_error_class, l.last_attempt_at
                      FROM retention_ledger l
                     WHERE l.last_error IS NOT NULL
                       -- "Not computed yet" is no error: 61503, and 61501 on a
                       -- period too recent for WeChat to serve.
                       AND l.last_errcode IS DISTINCT FROM 61503
                       AND NOT (l.last_errcode = 61501 AND l.state IN ('not_ready', 'maturing'))
                     ORDER BY l.appid, l.dataset, l.grain, l.last_attempt_at DESC NULLS LAST)
             SELECT w.appid AS "appid!", w.dataset AS "dataset!", w.grain AS "grain!",
                    coalesce(c.complete, 0)::bigint AS "complete!", coalesce(c.maturing, 0)::bigint AS "maturing!",
                    coalesce(c.missing, 0)::bigint AS "missing!", coalesce(c.not_ready, 0)::bigint AS "not_ready!",
                    coalesce(c.failing, 0)::bigint AS "failing!",
                    coalesce(c.unavailable, 0)::bigint AS "unavailable!", coalesce(c.suspect, 0)::bigint AS "suspect!",
                    coalesce(c.planned, 0)::bigint AS "planned!",
                    c.oldest_gap AS "oldest_gap?", c.last_success AS "last_success?",
                    e.last_error AS "last_error?", e.last_errcode AS "last_errcode?",
                    e.last_error_class AS "last_error_class?", e.last_attempt_at AS "last_error_at?"
               FROM unnest($7::text[], $9::text[], $8::text[]) WITH ORDINALITY AS w(appid, dataset, grain, n)
               LEFT JOIN counts c USING (appid, dataset, grain)
               LEFT JOIN errors e USING (appid, dataset, grain)
              ORDER BY w.n"#,
            daily.0,
            daily.1,
            weekly.0,
            weekly.1,
            monthly.0,
            monthly.1,
            &want_apps,
            &want_grains as &[&str],
            &want_datasets as &[&str],
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out: Vec<Vec<AppStatus>> = wanted.iter().map(|_| Vec::new()).collect();
        for r in rows {
            let Some(i) = wanted.iter().position(|w| {
                w.stream.grain.as_str() == r.grain && w.stream.dataset.as_str() == r.dataset
            }) else {
                continue;
            };
            let (first, last) = (wanted[i].first, wanted[i].last);
            let expected = first.periods_until(last) + 1;
            let unplanned = (expected - r.planned).max(0);
            // A gap the ledger has not planned yet is as old as `first`.
            let oldest_gap = if unplanned > 0 {
                Some(first.start())
            } else {
                r.oldest_gap
            };
            out[i].push(AppStatus {
                name: r.appid.clone(),
                appid: r.appid,
                dataset: wanted[i].stream.dataset,
                grain: first.grain(),
                complete: r.complete,
                maturing: r.maturing,
                missing: r.missing + unplanned,
                not_ready: r.not_ready,
                failing: r.failing,
                failing_over_a_day: 0,
                broken: false,
                unavailable: r.unavailable,
                suspect: r.suspect,
                oldest_gap,
                last_success: r.last_success,
                last_error: r.last_error,
                last_errcode: r.last_errcode,
                last_error_class: r.last_error_class,
                last_error_at: r.last_error_at,
                retired: false,
            });
        }
        Ok(out)
    }

    /// The ledger entries of `apps` over `first..=last` (one grain) of `dataset`.
    pub async fn periods(
        &self,
        apps: &[AppId],
        dataset: DatasetId,
        first: Period,
        last: Period,
    ) -> Result<Vec<PeriodRow>> {
        let rows = sqlx::query_as!(
            PeriodRow,
            "SELECT appid, dataset, grain, period_start, state, keys, attempts, calls, last_errcode, last_error,
                    last_error_class, next_due_at, last_attempt_at
               FROM retention_ledger
              WHERE appid = ANY($1) AND dataset = $5 AND grain = $4 AND period_start BETWEEN $2 AND $3
              ORDER BY appid, period_start",
            &app_strings(apps),
            first.start(),
            last.start(),
            first.grain().as_str(),
            dataset.as_str(),
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}

/// What [`Store::app_statuses`] is asked: one stream's apps and range.
#[derive(Debug, Clone)]
pub struct StatusRange {
    pub stream: Stream,
    pub apps: Vec<AppId>,
    pub first: Period,
    pub last: Period,
}

struct AppStatusRow {
    appid: String,
    dataset: String,
    grain: String,
    complete: i64,
    maturing: i64,
    missing: i64,
    not_ready: i64,
    failing: i64,
    unavailable: i64,
    suspect: i64,
    planned: i64,
    oldest_gap: Option<NaiveDate>,
    last_success: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_errcode: Option<i64>,
    last_error_class: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
}

/// A failing period that may have been failing for more than a day.
#[derive(Debug, Clone)]
pub struct FailingPeriod {
    pub appid: String,
    pub dataset: DatasetId,
    pub period: Period,
    pub keys: Vec<i16>,
    /// When the ledger planned it.
    pub created_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The failing periods of `dataset` for `apps` over `first..=last`
    /// planned, and last successful, before `before`: those that can have
    /// been failing since then. (When their failing began also depends on
    /// when their next key was due: [`crate::commands::status`] works that
    /// out.)
    pub async fn long_failing(
        &self,
        apps: &[AppId],
        dataset: DatasetId,
        first: Period,
        last: Period,
        before: DateTime<Utc>,
    ) -> Result<Vec<FailingPeriod>> {
        let rows = sqlx::query!(
            r#"SELECT l.appid, l.period_start, l.keys, l.created_at, l.last_success_at
                 FROM retention_ledger l JOIN unnest($1::text[]) AS a(appid) USING (appid)
                WHERE l.dataset = $6 AND l.grain = $2 AND l.state = 'failing'
                  AND l.period_start BETWEEN $3 AND $4
                  AND l.created_at < $5 AND coalesce(l.last_success_at, l.created_at) < $5"#,
            &app_strings(apps),
            first.grain().as_str(),
            first.start(),
            last.start(),
            before,
            dataset.as_str(),
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(FailingPeriod {
                    period: Period::starting(first.grain(), r.period_start).ok()?,
                    dataset,
                    appid: r.appid,
                    keys: r.keys,
                    created_at: r.created_at,
                    last_success_at: r.last_success_at,
                })
            })
            .collect())
    }
}

/// Periods in the ledger per stream ([`Stream::all`]'s order) and state
/// ([`PeriodState::ALL`]'s order), for one app.
pub type StateCounts = Vec<[u64; PeriodState::ALL.len()]>;

impl Store {
    /// For each of `apps`, in its order, how many of its periods are in each
    /// grain and state, zeros included (a gauge must drop to 0 rather than
    /// keep its last value). 10,000 apps take 1.4 MB: the grouped rows are
    /// read one at a time, never held together.
    pub async fn state_counts(&self, apps: &[AppId]) -> Result<Vec<StateCounts>> {
        use futures::TryStreamExt;
        // One grouped scan. Joining every (app, state) pair to the ledger
        // took 1.7 s for 10,000 apps.
        let ids = app_strings(apps);
        let at: std::collections::HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, a)| (a.as_str(), i))
            .collect();
        let streams: Vec<Stream> = Stream::all().collect();
        let mut counts = vec![vec![[0u64; PeriodState::ALL.len()]; streams.len()]; apps.len()];
        let mut rows = sqlx::query!(
            r#"SELECT l.appid, l.dataset, l.grain, l.state, count(*) AS "n!"
               FROM retention_ledger l JOIN unnest($1::text[]) AS a(appid) USING (appid)
              GROUP BY l.appid, l.dataset, l.grain, l.state"#,
            &ids,
        )
        .fetch(self.pool());
        while let Some(r) = rows.try_next().await? {
            let stream = streams
                .iter()
                .position(|s| s.dataset.as_str() == r.dataset && s.grain.as_str() == r.grain);
            let state = PeriodState::parse(&r.state);
            // The ledger's CHECKs allow nothing else.
            if let (Some(app), Some(stream), Some(state)) =
                (at.get(r.appid.as_str()), stream, state)
            {
                counts[*app][stream][state as usize] = u64::try_from(r.n).unwrap_or(0);
            }
        }
        Ok(counts)
    }

    /// The last successful fetch of each app that has one.
    pub async fn last_success_by_app(
        &self,
        apps: &[AppId],
    ) -> Result<Vec<(String, DateTime<Utc>)>> {
        let rows = sqlx::query!(
            r#"SELECT l.appid, max(l.last_success_at) AS "last_success!"
               FROM retention_ledger l JOIN unnest($1::text[]) AS a(appid) USING (appid)
              WHERE l.last_success_at IS NOT NULL GROUP BY l.appid"#,
            &app_strings(apps),
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.appid, r.last_success))
            .collect())
    }
}
