//! The ledger: which `(appid, dataset, grain, period)` exist, which are
//! due, who holds them.

use super::{app_strings, Result, Store};
use crate::dataset::{DatasetId, Stream, Target};
use crate::domain::{AppId, Period};
use crate::planner::{Before, Rule, Verdict};
use crate::replica::ReplicaId;
use chrono::{DateTime, NaiveDate, Utc};

/// Which part of the ledger a pass may touch.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these apps (always set: apps no longer configured are left alone).
    pub apps: Vec<AppId>,
    /// Only these periods: `(dataset, first, last)`, `first` and `last` of
    /// one grain, inclusive. Empty: every period of every stream.
    pub ranges: Vec<Range>,
    /// Streams these apps do not collect (any more): their periods stay in
    /// the ledger and are not fetched.
    pub excluded: Vec<(AppId, Stream)>,
    /// The oldest period each stream keeps: older ones are fetched only if a
    /// backfill asked for them (`requested`). Empty: no floor (a backfill's
    /// own range). A stream without a floor while others have one is not
    /// collected by any app of the scope.
    pub floors: Vec<(Stream, NaiveDate)>,
}

/// Periods `first..=last` (of one grain) of one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub dataset: DatasetId,
    pub first: Period,
    pub last: Period,
}

impl Range {
    pub fn new(dataset: DatasetId, first: Period, last: Period) -> Self {
        Self {
            dataset,
            first,
            last,
        }
    }
}

/// The scope as the arrays the queries bind. The names are static: the
/// macros, which expect `String`s for `text[]`, are told so with
/// `as &[&str]`.
pub(super) struct ScopeColumns {
    pub(super) apps: Vec<String>,
    pub(super) datasets: Vec<&'static str>,
    pub(super) grains: Vec<&'static str>,
    pub(super) firsts: Vec<NaiveDate>,
    pub(super) lasts: Vec<NaiveDate>,
    pub(super) excluded_apps: Vec<String>,
    pub(super) excluded_datasets: Vec<&'static str>,
    pub(super) excluded_grains: Vec<&'static str>,
    pub(super) floor_datasets: Vec<&'static str>,
    pub(super) floor_grains: Vec<&'static str>,
    pub(super) floors: Vec<NaiveDate>,
}

impl Scope {
    /// `apps`, every period of every stream they collect (`excluded` names
    /// the ones they do not).
    pub fn of(apps: Vec<AppId>, excluded: Vec<(AppId, Stream)>) -> Self {
        Self {
            apps,
            ranges: Vec::new(),
            excluded,
            floors: Vec::new(),
        }
    }

    pub(super) fn columns(&self) -> ScopeColumns {
        ScopeColumns {
            apps: app_strings(&self.apps),
            datasets: self.ranges.iter().map(|r| r.dataset.as_str()).collect(),
            grains: self
                .ranges
                .iter()
                .map(|r| r.first.grain().as_str())
                .collect(),
            firsts: self.ranges.iter().map(|r| r.first.start()).collect(),
            lasts: self.ranges.iter().map(|r| r.last.start()).collect(),
            excluded_apps: self.excluded.iter().map(|(a, _)| a.to_string()).collect(),
            excluded_datasets: self
                .excluded
                .iter()
                .map(|(_, s)| s.dataset.as_str())
                .collect(),
            excluded_grains: self
                .excluded
                .iter()
                .map(|(_, s)| s.grain.as_str())
                .collect(),
            floor_datasets: self
                .floors
                .iter()
                .map(|(s, _)| s.dataset.as_str())
                .collect(),
            floor_grains: self.floors.iter().map(|(s, _)| s.grain.as_str()).collect(),
            floors: self.floors.iter().map(|&(_, f)| f).collect(),
        }
    }
}
/// Which periods of a range [`Store::requeue`] makes due again, beyond those
/// never stored, not published yet or failing and due again later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requeue {
    /// Every period, stored ones too (`backfill --refetch`); tries start again.
    pub refetch: bool,
    /// Periods that ended failed too: `unavailable`, or `failing` and not
    /// due again (`backfill --retry-failed`); tries start again.
    pub retry_failed: bool,
}

/// A period this process holds the lease on.
#[derive(Debug, Clone)]
pub struct Claim {
    pub appid: AppId,
    pub dataset: DatasetId,
    pub period: Period,
    pub before: Before,
}

impl Claim {
    pub fn target(&self) -> Target {
        Target::new(self.dataset, self.period)
    }
}

impl Store {
    /// Adds every period of `first..=last` (one grain) for `apps` that the
    /// ledger lacks, due when key 0 should be out. Idempotent: every
    /// replica's tick may plan.
    ///
    /// Every tick of every replica runs this, over every app and period kept,
    /// so it must not touch each (app, period): an app whose periods run
    /// unbroken from `first` gets only the periods after its latest one (the
    /// common case: none, or the one that just ended). Counting an app's
    /// periods is an index-only scan; with 10,000 apps × 104 weeks a tick
    /// costs ~0.3 s instead of 4 s of conflicting inserts.
    pub async fn plan(
        &self,
        apps: &[AppId],
        dataset: DatasetId,
        first: Period,
        last: Period,
        rule: &Rule,
    ) -> Result<u64> {
        if last < first || apps.is_empty() {
            return Ok(0);
        }
        let (months, days) = first.grain().step();
        // 0..=23 (config checks it); a local, not a cast in the macro's
        // arguments, which would turn its type check off.
        let publish_hour = rule.publish_hour as i32;
        // Unbroken from `first`: the n-th period after `first` is the latest.
        let result = sqlx::query!(
            "INSERT INTO retention_ledger (appid, dataset, grain, period_start, next_due_at)
             SELECT a, $8, $5, p::date, ((p::date + step.i)::timestamp + make_interval(hours => $4)) AT TIME ZONE 'Asia/Shanghai'
             FROM unnest($1::text[]) AS a
             CROSS JOIN (SELECT make_interval(months => $6, days => $7) AS i) AS step
             CROSS JOIN LATERAL (SELECT count(*) AS n, max(l.period_start) AS top FROM retention_ledger l
                                  WHERE l.appid = a AND l.dataset = $8 AND l.grain = $5
                                    AND l.period_start BETWEEN $2 AND $3) AS have
             CROSS JOIN LATERAL generate_series(
                 CASE WHEN have.n > 0 AND ($2::date + (have.n - 1) * step.i)::date = have.top
                      THEN (have.top + step.i)::date ELSE $2::date END,
                 $3::date, step.i) AS p
             ON CONFLICT (appid, dataset, grain, period_start) DO NOTHING",
            &app_strings(apps),
            first.start(),
            last.start(),
            publish_hour,
            first.grain().as_str(),
            months,
            days,
            dataset.as_str(),
        )
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Makes `first..=last` (one grain) due at `as_of` for `apps`: periods
    /// never stored, not published yet, or failing and due again later; with
    /// `refetch`, every period. See [`Store::requeue`].
    pub async fn enqueue(
        &self,
        apps: &[AppId],
        range: Range,
        as_of: DateTime<Utc>,
        refetch: bool,
    ) -> Result<u64> {
        let how = Requeue {
            refetch,
            retry_failed: false,
        };
        self.requeue(apps, range, as_of, how).await
    }

    /// Makes `first..=last` (one grain) due at `as_of` for `apps`, adding the
    /// periods the ledger lacks. A period still being tried keeps its count
    /// of tries, so a re-run goes on where the last one stopped: a period
    /// WeChat no longer serves reaches `unavailable` after its tries, however
    /// many runs they take. Periods that ended failed (`unavailable`, or
    /// `failing` and not due again) are left alone unless `how` asks, and
    /// then start their tries again. Running daemons see the periods due within
    /// seconds (see [`crate::daemon`]).
    pub async fn requeue(
        &self,
        apps: &[AppId],
        range: Range,
        as_of: DateTime<Utc>,
        how: Requeue,
    ) -> Result<u64> {
        let Range {
            dataset,
            first,
            last,
        } = range;
        let (months, days) = first.grain().step();
        let result = sqlx::query!(
            "INSERT INTO retention_ledger (appid, dataset, grain, period_start, next_due_at, requested)
             SELECT a, $10, $6, p::date, $4, true
             FROM unnest($1::text[]) AS a
             CROSS JOIN generate_series($2::date, $3::date, make_interval(months => $7, days => $8)) AS p
             ON CONFLICT (appid, dataset, grain, period_start) DO UPDATE
                SET next_due_at = LEAST(retention_ledger.next_due_at, EXCLUDED.next_due_at),
                    requested = true,
                    attempts = CASE WHEN $5 OR retention_ledger.next_due_at IS NULL THEN 0
                                    ELSE retention_ledger.attempts END,
                    updated_at = now()
                WHERE $5
                   OR retention_ledger.state IN ('missing', 'not_ready')
                   OR (retention_ledger.state = 'failing' AND retention_ledger.next_due_at IS NOT NULL)
                   OR ($9 AND retention_ledger.state IN ('failing', 'unavailable'))",
            &app_strings(apps),
            first.start(),
            last.start(),
            as_of,
            how.refetch,
            first.grain().as_str(),
            months,
            days,
            how.retry_failed,
            dataset.as_str(),
        )
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Records a failed attempt: the error (errcode and text, already free
    /// of secrets), the verdict and the data requests it sent. False when
    /// `owner` no longer holds the period (its lease ran out and another
    /// replica took it): then nothing is written.
    pub async fn record_failure(
        &self,
        owner: &ReplicaId,
        claim: &Claim,
        verdict: &Verdict,
        failure: Failure<'_>,
    ) -> Result<bool> {
        mark_failed(self.pool(), owner, claim, verdict, failure).await
    }

    /// Records an answer that failed validation: nothing goes to the table,
    /// the body is kept for inspection, the ledger says why.
    /// False, and nothing written, when `owner` no longer holds the period.
    pub async fn record_rejection(
        &self,
        owner: &ReplicaId,
        claim: &Claim,
        verdict: &Verdict,
        (reason, body): (&str, &str),
        requests: u32,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let failure = Failure {
            errcode: None,
            class: "rejected",
            error: &format!("rejected answer: {reason}"),
            requests,
        };
        let ours = mark_failed(&mut *tx, owner, claim, verdict, failure).await?;
        if !ours {
            return Ok(false);
        }
        sqlx::query!(
            "INSERT INTO rejected_answers (appid, dataset, grain, period_start, reason, body)
             VALUES ($1, $6, $5, $2, $3, $4)",
            claim.appid.as_str(),
            claim.period.start(),
            reason,
            body,
            claim.period.grain().as_str(),
            claim.dataset.as_str(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// What an unsuccessful attempt leaves in the ledger besides its verdict.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    pub errcode: Option<i64>,
    /// How wxretain classed it (`last_error_class`): `config`, `transient`...
    pub class: &'a str,
    /// Free of secrets already, and printable.
    pub error: &'a str,
    /// Data requests the attempt sent (`calls`).
    pub requests: u32,
}

/// The ledger's side of an unsuccessful attempt; the lease is given back.
/// Fenced: only while `owner` still holds the period.
async fn mark_failed<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    owner: &ReplicaId,
    claim: &Claim,
    verdict: &Verdict,
    failure: Failure<'_>,
) -> Result<bool> {
    // At most retry_attempts × 2 (a refused token) + 2 (a second look).
    let requests = i32::try_from(failure.requests).unwrap_or(i32::MAX);
    let result = sqlx::query!(
        "UPDATE retention_ledger
            SET state = $3, next_due_at = $4, attempts = $5, calls = calls + $11,
                last_attempt_at = now(), last_errcode = $6, last_error = $7, last_error_class = $13,
                late_since = $9, lease_owner = NULL, lease_until = NULL, updated_at = now()
          WHERE appid = $1 AND dataset = $12 AND grain = $10 AND period_start = $2 AND lease_owner = $8",
        claim.appid.as_str(),
        claim.period.start(),
        verdict.state.as_str(),
        verdict.next_due,
        verdict.attempts,
        failure.errcode,
        failure.error,
        owner.as_str(),
        verdict.late_since,
        claim.period.grain().as_str(),
        requests,
        claim.dataset.as_str(),
        failure.class,
    )
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}
impl Store {
    /// Puts a claimed period off without an attempt (its app is paused), if
    /// `owner` still holds it.
    pub async fn defer(&self, owner: &ReplicaId, claim: &Claim, verdict: &Verdict) -> Result<bool> {
        let result = sqlx::query!(
            "UPDATE retention_ledger
                SET next_due_at = $3, lease_owner = NULL, lease_until = NULL, updated_at = now()
              WHERE appid = $1 AND dataset = $6 AND grain = $5 AND period_start = $2 AND lease_owner = $4",
            claim.appid.as_str(),
            claim.period.start(),
            verdict.next_due,
            owner.as_str(),
            claim.period.grain().as_str(),
            claim.dataset.as_str(),
        )
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// How many periods in `scope` are due at `as_of` (for progress bars).
    pub async fn count_due(&self, scope: &Scope, as_of: DateTime<Utc>) -> Result<i64> {
        let r = scope.columns();
        // The scope's filters, as in the claim (see lease.rs).
        let count = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM retention_ledger l JOIN unnest($1::text[]) AS a(appid) USING (appid)
              WHERE next_due_at <= $2
                AND (cardinality($3::text[]) = 0 OR EXISTS (
                     SELECT 1 FROM unnest($6::text[], $3::text[], $4::date[], $5::date[]) AS r(d, g, f, t)
                      WHERE r.d = l.dataset AND r.g = l.grain AND l.period_start BETWEEN r.f AND r.t))
                AND NOT EXISTS (
                     SELECT 1 FROM unnest($7::text[], $8::text[], $9::text[]) AS x(a, d, g)
                      WHERE x.a = l.appid AND x.d = l.dataset AND x.g = l.grain)
                AND (cardinality($10::text[]) = 0 OR l.requested OR l.period_start >= (
                     SELECT f FROM unnest($10::text[], $11::text[], $12::date[]) AS k(d, g, f)
                      WHERE k.d = l.dataset AND k.g = l.grain))"#,
            &r.apps,
            as_of,
            &r.grains as &[&str],
            &r.firsts,
            &r.lasts,
            &r.datasets as &[&str],
            &r.excluded_apps,
            &r.excluded_datasets as &[&str],
            &r.excluded_grains as &[&str],
            &r.floor_datasets as &[&str],
            &r.floor_grains as &[&str],
            &r.floors,
        )
        .fetch_one(self.pool())
        .await?;
        Ok(count)
    }
}
