//! The ledger: which `(appid, week)` exist, which are due, who holds them.

use super::{app_strings, Store};
use crate::domain::{AppId, KeySet, NaturalWeek};
use crate::planner::{Before, Rule, Verdict, WeekState};
use crate::replica::ReplicaId;
use chrono::{DateTime, NaiveDate, Utc};
use std::time::Duration;

/// Which part of the ledger a pass may touch.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these apps (always set: apps no longer configured are left alone).
    pub apps: Vec<AppId>,
    /// Only weeks from this one on.
    pub first: Option<NaturalWeek>,
    /// Only weeks up to this one.
    pub last: Option<NaturalWeek>,
}

/// A week this process holds the lease on.
#[derive(Debug, Clone)]
pub struct Claim {
    pub appid: AppId,
    pub week: NaturalWeek,
    pub before: Before,
}

impl Store {
    /// Adds every week of `first..=last` for `apps` that the ledger lacks, due
    /// when key 0 should be out. Idempotent: every replica's tick may plan.
    ///
    /// Every tick of every replica runs this, over every app and week kept, so
    /// it must not touch each (app, week): an app whose weeks run unbroken
    /// from `first` gets only the weeks after its latest one (the common
    /// case: none, or the week that just ended). Counting an app's weeks is an
    /// index-only scan; with 10,000 apps × 104 weeks a tick costs ~0.3 s
    /// instead of 4 s of conflicting inserts.
    pub async fn plan(
        &self,
        apps: &[AppId],
        first: NaturalWeek,
        last: NaturalWeek,
        rule: &Rule,
    ) -> sqlx::Result<u64> {
        if last < first || apps.is_empty() {
            return Ok(0);
        }
        let result = sqlx::query(
            "INSERT INTO retention_ledger (appid, week_start, next_due_at)
             SELECT a, w::date, ((w::date + 7)::timestamp + make_interval(hours => $4)) AT TIME ZONE 'Asia/Shanghai'
             FROM unnest($1::text[]) AS a
             CROSS JOIN LATERAL (SELECT count(*) AS n, max(l.week_start) AS top FROM retention_ledger l
                                  WHERE l.appid = a AND l.week_start BETWEEN $2 AND $3) AS have
             CROSS JOIN LATERAL generate_series(
                 CASE WHEN have.n > 0 AND have.n = (have.top - $2::date) / 7 + 1 THEN have.top + 7 ELSE $2::date END,
                 $3::date, interval '7 days') AS w
             ON CONFLICT (appid, week_start) DO NOTHING",
        )
        .bind(app_strings(apps))
        .bind(first.monday())
        .bind(last.monday())
        .bind(rule.publish_hour as i32)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Makes `first..=last` due at `as_of` for `apps`: weeks never stored,
    /// failing or given up; with `refetch`, every week.
    pub async fn enqueue(
        &self,
        apps: &[AppId],
        first: NaturalWeek,
        last: NaturalWeek,
        as_of: DateTime<Utc>,
        refetch: bool,
    ) -> sqlx::Result<u64> {
        let result = sqlx::query(
            "INSERT INTO retention_ledger (appid, week_start, next_due_at)
             SELECT a, w::date, $4
             FROM unnest($1::text[]) AS a
             CROSS JOIN generate_series($2::date, $3::date, interval '7 days') AS w
             ON CONFLICT (appid, week_start) DO UPDATE
                SET next_due_at = LEAST(retention_ledger.next_due_at, EXCLUDED.next_due_at),
                    attempts = 0, updated_at = now()
                WHERE $5 OR retention_ledger.state NOT IN ('maturing', 'complete')",
        )
        .bind(app_strings(apps))
        .bind(first.monday())
        .bind(last.monday())
        .bind(as_of)
        .bind(refetch)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Leases up to `limit` due weeks for `owner`. `FOR UPDATE SKIP LOCKED`
    /// keeps replicas off each other's rows; the lease (wall clock, not
    /// `as_of`) hands a dead replica's weeks to the others once it runs out.
    pub async fn claim(
        &self,
        owner: &ReplicaId,
        scope: &Scope,
        as_of: DateTime<Utc>,
        limit: i64,
        lease: Duration,
    ) -> sqlx::Result<Vec<Claim>> {
        type Row = (
            String,
            NaiveDate,
            String,
            Vec<i16>,
            i32,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "WITH due AS (
                 SELECT appid, week_start FROM retention_ledger
                 WHERE next_due_at <= $2
                   -- a filter on the few rows the ordered index scan reads
                   AND appid = ANY($1)
                   AND ($3::date IS NULL OR week_start >= $3)
                   AND ($4::date IS NULL OR week_start <= $4)
                   AND (lease_until IS NULL OR lease_until < now())
                 ORDER BY next_due_at, week_start, appid
                 LIMIT $5
                 FOR UPDATE SKIP LOCKED)
             UPDATE retention_ledger l
                SET lease_owner = $6, lease_until = now() + make_interval(secs => $7)
               FROM due
              WHERE l.appid = due.appid AND l.week_start = due.week_start
             RETURNING l.appid, l.week_start, l.state, l.keys, l.attempts, l.late_since",
        )
        .bind(app_strings(&scope.apps))
        .bind(as_of)
        .bind(scope.first.map(NaturalWeek::monday))
        .bind(scope.last.map(NaturalWeek::monday))
        .bind(limit)
        .bind(owner.as_str())
        .bind(lease.as_secs_f64())
        .fetch_all(self.pool())
        .await?;
        let mut claims: Vec<Claim> = rows
            .into_iter()
            .filter_map(|(appid, monday, state, keys, attempts, late_since)| {
                Some(Claim {
                    appid: appid.parse().ok()?,
                    week: NaturalWeek::starting(monday).ok()?,
                    before: Before {
                        state: WeekState::parse(&state)?,
                        keys: KeySet::of(keys.into_iter().filter_map(|k| u8::try_from(k).ok())),
                        attempts,
                        late_since,
                    },
                })
            })
            .collect();
        // RETURNING does not keep the CTE's order; interleave apps week by week.
        claims.sort_by(|a, b| (a.week, &a.appid).cmp(&(b.week, &b.appid)));
        Ok(claims)
    }

    /// Gives back every lease `owner` still holds (end of a pass, shutdown).
    pub async fn release(&self, owner: &ReplicaId) -> sqlx::Result<u64> {
        let result = sqlx::query("UPDATE retention_ledger SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
            .bind(owner.as_str())
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected())
    }

    /// Renews every lease `owner` holds for another `lease`: a claimed week
    /// may wait in the queue, the rate limiter and the token lock far longer
    /// than one fetch takes, and must not be handed to another replica
    /// meanwhile. The pass calls this well within each lease.
    pub async fn extend_leases(&self, owner: &ReplicaId, lease: Duration) -> sqlx::Result<u64> {
        let result = sqlx::query(
            "UPDATE retention_ledger SET lease_until = now() + make_interval(secs => $2)
              WHERE lease_owner = $1",
        )
        .bind(owner.as_str())
        .bind(lease.as_secs_f64())
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Records a failed attempt: the error (already free of secrets) and the
    /// verdict. False when `owner` no longer holds the week (its lease ran
    /// out and another replica took it): then nothing is written.
    pub async fn record_failure(
        &self,
        owner: &ReplicaId,
        claim: &Claim,
        verdict: &Verdict,
        errcode: Option<i64>,
        error: &str,
    ) -> sqlx::Result<bool> {
        mark_failed(self.pool(), owner, claim, verdict, errcode, error).await
    }

    /// Records an answer that failed validation: nothing goes to the table,
    /// the body is kept for inspection, the ledger says why.
    /// False, and nothing written, when `owner` no longer holds the week.
    pub async fn record_rejection(
        &self,
        owner: &ReplicaId,
        claim: &Claim,
        verdict: &Verdict,
        reason: &str,
        body: &str,
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool().begin().await?;
        let ours = mark_failed(
            &mut *tx,
            owner,
            claim,
            verdict,
            None,
            &format!("rejected answer: {reason}"),
        )
        .await?;
        if !ours {
            return Ok(false);
        }
        sqlx::query("INSERT INTO rejected_answers (appid, week_start, reason, body) VALUES ($1, $2, $3, $4)")
            .bind(claim.appid.as_str())
            .bind(claim.week.monday())
            .bind(reason)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The ledger's side of an unsuccessful attempt; the lease is given back.
/// Fenced: only while `owner` still holds the week.
async fn mark_failed<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    owner: &ReplicaId,
    claim: &Claim,
    verdict: &Verdict,
    errcode: Option<i64>,
    error: &str,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE retention_ledger
            SET state = $3, next_due_at = $4, attempts = $5, calls = calls + 1,
                last_attempt_at = now(), last_errcode = $6, last_error = $7, late_since = $9,
                lease_owner = NULL, lease_until = NULL, updated_at = now()
          WHERE appid = $1 AND week_start = $2 AND lease_owner = $8",
    )
    .bind(claim.appid.as_str())
    .bind(claim.week.monday())
    .bind(verdict.state.as_str())
    .bind(verdict.next_due)
    .bind(verdict.attempts)
    .bind(errcode)
    .bind(error)
    .bind(owner.as_str())
    .bind(verdict.late_since)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

impl Store {
    /// Puts a claimed week off without an attempt (its app is paused), if
    /// `owner` still holds it.
    pub async fn defer(
        &self,
        owner: &ReplicaId,
        claim: &Claim,
        verdict: &Verdict,
    ) -> sqlx::Result<bool> {
        let result = sqlx::query(
            "UPDATE retention_ledger
                SET next_due_at = $3, lease_owner = NULL, lease_until = NULL, updated_at = now()
              WHERE appid = $1 AND week_start = $2 AND lease_owner = $4",
        )
        .bind(claim.appid.as_str())
        .bind(claim.week.monday())
        .bind(verdict.next_due)
        .bind(owner.as_str())
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// How many weeks in `scope` are due at `as_of` (for progress bars).
    pub async fn count_due(&self, scope: &Scope, as_of: DateTime<Utc>) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FROM retention_ledger l JOIN unnest($1::text[]) AS a(appid) USING (appid)
              WHERE next_due_at <= $2
                AND ($3::date IS NULL OR week_start >= $3)
                AND ($4::date IS NULL OR week_start <= $4)",
        )
        .bind(app_strings(&scope.apps))
        .bind(as_of)
        .bind(scope.first.map(NaturalWeek::monday))
        .bind(scope.last.map(NaturalWeek::monday))
        .fetch_one(self.pool())
        .await
    }
}

impl Store {
    /// Frees leases held by processes that no longer run in this pid space
    /// (a `kill -9`, a crash), so a re-run need not wait for their leases to
    /// end. Holders elsewhere, even on a host of the same name, are never
    /// judged from here: see [`ReplicaId`].
    pub async fn release_dead_local(&self, me: &ReplicaId) -> sqlx::Result<u64> {
        let Some(space) = me.pid_space() else {
            return Ok(0);
        };
        // An exact suffix, not LIKE: a host name may hold `_` or `%`.
        let owners: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT lease_owner FROM retention_ledger
              WHERE lease_owner IS NOT NULL AND right(lease_owner, length($1) + 1) = ':' || $1
                AND lease_owner <> $2 AND lease_until > now()",
        )
        .bind(space)
        .bind(me.as_str())
        .fetch_all(self.pool())
        .await?;
        let dead: Vec<String> = owners
            .into_iter()
            .filter(|owner| me.is_dead_neighbour(owner))
            .collect();
        if dead.is_empty() {
            return Ok(0);
        }
        let result = sqlx::query("UPDATE retention_ledger SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ANY($1)")
            .bind(&dead)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected())
    }
}
