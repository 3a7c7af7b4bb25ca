//! Leases: which replica holds a period, renewing and giving them back, and
//! freeing those of processes known to be gone.

use super::{Claim, Result, Scope, Store};
use crate::domain::{Grain, KeySet, Period, PeriodState};
use crate::planner::Before;
use crate::replica::ReplicaId;
use chrono::{DateTime, NaiveDate, Utc};
use std::time::Duration;

impl Store {
    /// How many periods of `scope` another holder leases now: what a
    /// backfill beside running daemons waits for.
    pub async fn leased_by_others(&self, scope: &Scope, me: &ReplicaId) -> Result<i64> {
        let r = scope.columns();
        let count = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM retention_ledger l JOIN unnest($1::text[]) AS a(appid) USING (appid)
              WHERE l.lease_owner IS NOT NULL AND l.lease_owner <> $9 AND l.lease_until > now()
                AND (cardinality($2::text[]) = 0 OR EXISTS (
                     SELECT 1 FROM unnest($2::text[], $3::text[], $4::date[], $5::date[]) AS r(d, g, f, t)
                      WHERE r.d = l.dataset AND r.g = l.grain AND l.period_start BETWEEN r.f AND r.t))
                AND NOT EXISTS (
                     SELECT 1 FROM unnest($6::text[], $7::text[], $8::text[]) AS x(a, d, g)
                      WHERE x.a = l.appid AND x.d = l.dataset AND x.g = l.grain)"#,
            &r.apps,
            &r.datasets as &[&str],
            &r.grains as &[&str],
            &r.firsts,
            &r.lasts,
            &r.excluded_apps,
            &r.excluded_datasets as &[&str],
            &r.excluded_grains as &[&str],
            me.as_str(),
        )
        .fetch_one(self.pool())
        .await?;
        Ok(count)
    }

    /// Leases up to `limit` due periods for `owner`. `FOR UPDATE SKIP LOCKED`
    /// keeps replicas off each other's rows; the lease (wall clock, not
    /// `as_of`) hands a dead replica's periods to the others once it runs out.
    pub async fn claim(
        &self,
        owner: &ReplicaId,
        scope: &Scope,
        as_of: DateTime<Utc>,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Claim>> {
        let r = scope.columns();
        // Filters on the few rows the ordered index scan reads: the scope's
        // apps, its ranges, not a stream an app no longer collects, not a
        // period older than its stream keeps unless a backfill asked for it.
        let rows = sqlx::query_as!(
            ClaimRow,
            "WITH due AS (
                 SELECT appid, dataset, grain, period_start FROM retention_ledger l
                 WHERE next_due_at <= $2
                   AND appid = ANY($1)
                   AND (cardinality($3::text[]) = 0 OR EXISTS (
                        SELECT 1 FROM unnest($9::text[], $3::text[], $4::date[], $5::date[]) AS r(d, g, f, t)
                         WHERE r.d = l.dataset AND r.g = l.grain AND l.period_start BETWEEN r.f AND r.t))
                   AND NOT EXISTS (
                        SELECT 1 FROM unnest($10::text[], $11::text[], $12::text[]) AS x(a, d, g)
                         WHERE x.a = l.appid AND x.d = l.dataset AND x.g = l.grain)
                   AND (cardinality($13::text[]) = 0 OR l.requested OR l.period_start >= (
                        SELECT f FROM unnest($13::text[], $14::text[], $15::date[]) AS k(d, g, f)
                         WHERE k.d = l.dataset AND k.g = l.grain))
                   AND (lease_until IS NULL OR lease_until < now())
                 ORDER BY next_due_at, period_start, appid
                 LIMIT $6
                 FOR UPDATE SKIP LOCKED)
             UPDATE retention_ledger l
                SET lease_owner = $7, lease_until = now() + make_interval(secs => $8)
               FROM due
              WHERE l.appid = due.appid AND l.dataset = due.dataset AND l.grain = due.grain
                AND l.period_start = due.period_start
             RETURNING l.appid, l.dataset, l.grain, l.period_start, l.state, l.keys, l.attempts, l.late_since",
            &r.apps,
            as_of,
            &r.grains as &[&str],
            &r.firsts,
            &r.lasts,
            limit,
            owner.as_str(),
            lease.as_secs_f64(),
            &r.datasets as &[&str],
            &r.excluded_apps,
            &r.excluded_datasets as &[&str],
            &r.excluded_grains as &[&str],
            &r.floor_datasets as &[&str],
            &r.floor_grains as &[&str],
            &r.floors,
        )
        .fetch_all(self.pool())
        .await?;
        let mut claims: Vec<Claim> = rows
            .into_iter()
            .filter_map(|r| {
                let grain: Grain = r.grain.parse().ok()?;
                Some(Claim {
                    appid: r.appid.parse().ok()?,
                    dataset: r.dataset.parse().ok()?,
                    period: Period::starting(grain, r.period_start).ok()?,
                    before: Before {
                        state: PeriodState::parse(&r.state)?,
                        keys: KeySet::of(r.keys.into_iter().filter_map(|k| u8::try_from(k).ok())),
                        attempts: r.attempts,
                        late_since: r.late_since,
                    },
                })
            })
            .collect();
        // RETURNING does not keep the CTE's order; interleave apps period by period.
        claims.sort_by(|a, b| {
            (a.period.start(), a.period.grain(), a.dataset, &a.appid).cmp(&(
                b.period.start(),
                b.period.grain(),
                b.dataset,
                &b.appid,
            ))
        });
        Ok(claims)
    }

    /// Gives back every lease `owner` still holds (end of a pass, shutdown).
    pub async fn release(&self, owner: &ReplicaId) -> Result<u64> {
        let result = sqlx::query!(
            "UPDATE retention_ledger SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            owner.as_str(),
        )
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Renews every lease `owner` holds for another `lease`: a claimed period
    /// may wait in the queue, the rate limiter and the token lock far longer
    /// than one fetch takes, and must not be handed to another replica
    /// meanwhile. The pass calls this well within each lease.
    pub async fn extend_leases(&self, owner: &ReplicaId, lease: Duration) -> Result<u64> {
        let result = sqlx::query!(
            "UPDATE retention_ledger SET lease_until = now() + make_interval(secs => $2)
              WHERE lease_owner = $1",
            owner.as_str(),
            lease.as_secs_f64(),
        )
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }
}

/// A period [`Store::claim`] leased, as the ledger had it.
struct ClaimRow {
    appid: String,
    dataset: String,
    grain: String,
    period_start: NaiveDate,
    state: String,
    keys: Vec<i16>,
    attempts: i32,
    late_since: Option<DateTime<Utc>>,
}

impl Store {
    /// The earliest `next_due_at` among the periods of `scope` that a claim
    /// could take once it passes (leases held by live replicas are left out;
    /// one that runs out is seen by the next read): when the daemon wakes.
    /// The same filters as the claim: a period the claim would leave (a
    /// stream no longer collected) must not wake the daemon every few seconds.
    pub async fn next_due(&self, scope: &Scope) -> Result<Option<DateTime<Utc>>> {
        let r = scope.columns();
        // The claim's ordered index, read from its start: one row, usually.
        let due = sqlx::query_scalar!(
            r#"SELECT next_due_at AS "next_due_at!" FROM retention_ledger l
              WHERE next_due_at IS NOT NULL AND appid = ANY($1)
                AND (lease_until IS NULL OR lease_until < now())
                AND NOT EXISTS (
                     SELECT 1 FROM unnest($2::text[], $3::text[], $4::text[]) AS x(a, d, g)
                      WHERE x.a = l.appid AND x.d = l.dataset AND x.g = l.grain)
                AND (cardinality($5::text[]) = 0 OR l.requested OR l.period_start >= (
                     SELECT f FROM unnest($5::text[], $6::text[], $7::date[]) AS k(d, g, f)
                      WHERE k.d = l.dataset AND k.g = l.grain))
              ORDER BY next_due_at LIMIT 1"#,
            &r.apps,
            &r.excluded_apps,
            &r.excluded_datasets as &[&str],
            &r.excluded_grains as &[&str],
            &r.floor_datasets as &[&str],
            &r.floor_grains as &[&str],
            &r.floors,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(due)
    }
}

impl Store {
    /// Frees leases held by processes that no longer run in this pid space
    /// (a `kill -9`, a crash), so a re-run need not wait for their leases to
    /// end. Holders elsewhere, even on a host of the same name, are never
    /// judged from here: see [`ReplicaId`].
    pub async fn release_dead_local(&self, me: &ReplicaId) -> Result<u64> {
        let Some(space) = me.pid_space() else {
            return Ok(0);
        };
        // An exact suffix, not LIKE: a host name may hold `_` or `%`.
        let owners = sqlx::query_scalar!(
            r#"SELECT DISTINCT lease_owner AS "lease_owner!" FROM retention_ledger
              WHERE lease_owner IS NOT NULL AND right(lease_owner, length($1) + 1) = ':' || $1
                AND lease_owner <> $2 AND lease_until > now()"#,
            space,
            me.as_str(),
        )
        .fetch_all(self.pool())
        .await?;
        let dead: Vec<String> = owners
            .into_iter()
            .filter(|owner| me.is_dead_neighbour(owner))
            .collect();
        if dead.is_empty() {
            return Ok(0);
        }
        let result = sqlx::query!(
            "UPDATE retention_ledger SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ANY($1)",
            &dead,
        )
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }
}
