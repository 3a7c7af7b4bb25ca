//! Storing valid answers: rows, archive and ledger for a whole batch of
//! periods (of any dataset and grain) in one transaction, so a crash or a
//! lost connection leaves all of it or none, and a backfill costs a few
//! round trips per batch instead of five per period.

use super::{Claim, Result, Store};
use crate::dataset::{AnyAnswer, DatasetId};
use crate::domain::{AppId, Period};
use crate::planner::Verdict;
use crate::replica::ReplicaId;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{HashMap, HashSet};

/// One validated answer waiting to be written.
#[derive(Debug, Clone)]
pub struct Answered {
    pub claim: Claim,
    pub answer: AnyAnswer,
    /// The body's text as WeChat sent it (credentials masked, NUL escaped),
    /// for the archive.
    pub raw: String,
    /// The body as parsed (credentials masked, NUL masked): the archive's
    /// `jsonb`.
    pub body: serde_json::Value,
    /// The answer looks impossible and was stored because WeChat repeated it.
    pub suspect: bool,
    pub verdict: Verdict,
    /// Data requests the attempt sent, retries included (`calls`).
    pub requests: u32,
}

/// What storing one answer changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveStats {
    /// Rows inserted or whose value changed (an identical answer writes none).
    pub rows_written: u64,
    /// Whether the answer differed from the last one archived for the period.
    pub archived: bool,
}

/// A period as the ledger keys it, as the queries return it.
type Key = (String, String, String, NaiveDate);

fn key_of(appid: &AppId, dataset: DatasetId, period: Period) -> Key {
    (
        appid.to_string(),
        dataset.as_str().to_string(),
        period.grain().as_str().to_string(),
        period.start(),
    )
}

impl Store {
    /// Writes a batch of answers atomically and says, per answer, what
    /// changed: `None` for a period `owner` no longer holds (its lease ran
    /// out and another replica took it), of which nothing is written.
    ///
    /// One transaction: the periods still held are locked first (so no
    /// other replica's claim can slip in), then each dataset writes its
    /// rows, then the archive and the ledger are written for those periods.
    pub async fn save_answers(
        &self,
        owner: &ReplicaId,
        batch: &[Answered],
    ) -> Result<Vec<Option<SaveStats>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // One entry per period: a period answered twice in a batch (claimed
        // again after its lease ran out) would make an upsert touch a row
        // twice, which Postgres refuses for the whole statement. The later
        // answer wins.
        let mut last: HashMap<Key, usize> = HashMap::new();
        for (i, a) in batch.iter().enumerate() {
            last.insert(key_of(&a.claim.appid, a.claim.dataset, a.claim.period), i);
        }
        let entries: Vec<&Answered> = batch
            .iter()
            .enumerate()
            .filter(|(i, a)| {
                last.get(&key_of(&a.claim.appid, a.claim.dataset, a.claim.period)) == Some(i)
            })
            .map(|(_, a)| a)
            .collect();
        let mut tx = self.pool().begin().await?;
        let mine = lock_held(&mut tx, owner, &entries).await?;
        let held: Vec<&Answered> = entries
            .into_iter()
            .filter(|a| mine.contains(&key_of(&a.claim.appid, a.claim.dataset, a.claim.period)))
            .collect();
        let mut stats: HashMap<Key, SaveStats> = held
            .iter()
            .map(|a| {
                let key = key_of(&a.claim.appid, a.claim.dataset, a.claim.period);
                (key, SaveStats::default())
            })
            .collect();
        for dataset in DatasetId::ALL {
            let items: Vec<(&AppId, Period, &AnyAnswer)> = held
                .iter()
                .filter(|a| a.claim.dataset == dataset)
                .map(|a| (&a.claim.appid, a.claim.period, &a.answer))
                .collect();
            if items.is_empty() {
                continue;
            }
            let written = dataset.spec().write(&mut tx, &items).await?;
            for ((appid, period, _), n) in items.iter().zip(written) {
                if let Some(s) = stats.get_mut(&key_of(appid, dataset, *period)) {
                    s.rows_written = n;
                }
            }
        }
        for archived in archive_and_record(&mut tx, owner, &held).await? {
            if let Some(s) = stats.get_mut(&archived) {
                s.archived = true;
            }
        }
        tx.commit().await?;
        Ok(batch
            .iter()
            .map(|a| {
                stats
                    .get(&key_of(&a.claim.appid, a.claim.dataset, a.claim.period))
                    .copied()
            })
            .collect())
    }
}

/// Locks the periods of `entries` that `owner` still holds, and says which.
async fn lock_held(
    conn: &mut sqlx::PgConnection,
    owner: &ReplicaId,
    entries: &[&Answered],
) -> Result<HashSet<Key>> {
    let c = Columns::of(entries);
    let rows = sqlx::query!(
        r#"SELECT l.appid, l.dataset, l.grain, l.period_start FROM retention_ledger l
             JOIN unnest($1::text[], $2::text[], $3::text[], $4::date[]) AS t(appid, dataset, grain, period_start)
               USING (appid, dataset, grain, period_start)
            WHERE l.lease_owner = $5
            FOR UPDATE OF l"#,
        &c.appid,
        &c.dataset as &[&str],
        &c.grain as &[&str],
        &c.start,
        owner.as_str(),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.appid, r.dataset, r.grain, r.period_start))
        .collect())
}

/// Archives each answer unless it is the same as the last one archived for
/// its period, and writes each period's ledger entry (fenced by `owner`
/// again, though the caller holds the locks); returns the periods archived.
async fn archive_and_record(
    conn: &mut sqlx::PgConnection,
    owner: &ReplicaId,
    held: &[&Answered],
) -> Result<Vec<Key>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let c = Columns::of(held);
    let archived = sqlx::query!(
        r#"WITH periods AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::jsonb[], $6::text[],
                                  $7::boolean[], $8::text[], $9::text[], $10::timestamptz[],
                                  $11::integer[], $12::timestamptz[], $13::integer[])
                      AS t(appid, dataset, grain, period_start, body, raw, suspect, state, keys, next_due,
                           attempts, late_since, requests)),
         archived AS (
             INSERT INTO retention_answers (appid, dataset, grain, period_start, body, raw, suspect)
             SELECT appid, dataset, grain, period_start, body, raw, suspect FROM periods
              WHERE (body, raw) IS DISTINCT FROM (
                    SELECT (r.body, r.raw) FROM retention_answers r
                     WHERE r.appid = periods.appid AND r.dataset = periods.dataset
                       AND r.grain = periods.grain AND r.period_start = periods.period_start
                     ORDER BY r.id DESC LIMIT 1)
             RETURNING appid, dataset, grain, period_start),
         ledger AS (
             UPDATE retention_ledger l
                -- an answer with fewer keys than before takes none away
                SET state = periods.state, next_due_at = periods.next_due, late_since = periods.late_since,
                    suspect = periods.suspect,
                    keys = ARRAY(SELECT DISTINCT k FROM unnest(l.keys || periods.keys::smallint[]) AS k ORDER BY k),
                    attempts = periods.attempts, calls = l.calls + periods.requests,
                    last_success_at = now(), last_attempt_at = now(),
                    last_errcode = NULL, last_error = NULL, last_error_class = NULL,
                    lease_owner = NULL, lease_until = NULL, updated_at = now()
               FROM periods
              WHERE l.appid = periods.appid AND l.dataset = periods.dataset AND l.grain = periods.grain
                AND l.period_start = periods.period_start AND l.lease_owner = $14)
         SELECT appid AS "appid!", dataset AS "dataset!", grain AS "grain!", period_start AS "period_start!"
           FROM archived"#,
        &c.appid,
        &c.dataset as &[&str],
        &c.grain as &[&str],
        &c.start,
        &c.body,
        &c.raw,
        &c.suspect,
        &c.state as &[&str],
        &c.keys,
        &c.next_due as &[Option<DateTime<Utc>>],
        &c.attempts,
        &c.late_since as &[Option<DateTime<Utc>>],
        &c.requests,
        owner.as_str(),
    )
    .fetch_all(conn)
    .await?;
    Ok(archived
        .into_iter()
        .map(|r| (r.appid, r.dataset, r.grain, r.period_start))
        .collect())
}

/// The entries as parallel arrays, the shape `unnest` takes.
#[derive(Default)]
struct Columns {
    appid: Vec<String>,
    dataset: Vec<&'static str>,
    grain: Vec<&'static str>,
    start: Vec<NaiveDate>,
    body: Vec<serde_json::Value>,
    raw: Vec<String>,
    suspect: Vec<bool>,
    state: Vec<&'static str>,
    /// `smallint[]` literals: unnest would flatten a two-dimensional array.
    keys: Vec<String>,
    next_due: Vec<Option<DateTime<Utc>>>,
    attempts: Vec<i32>,
    late_since: Vec<Option<DateTime<Utc>>>,
    requests: Vec<i32>,
}

impl Columns {
    fn of(entries: &[&Answered]) -> Self {
        let mut c = Columns::default();
        for a in entries {
            c.appid.push(a.claim.appid.to_string());
            c.dataset.push(a.claim.dataset.as_str());
            c.grain.push(a.claim.period.grain().as_str());
            c.start.push(a.claim.period.start());
            c.body.push(a.body.clone());
            c.raw.push(a.raw.clone());
            c.suspect.push(a.suspect);
            c.state.push(a.verdict.state.as_str());
            let held: Vec<String> = a.answer.keys().iter().map(|k| k.to_string()).collect();
            c.keys.push(format!("{{{}}}", held.join(",")));
            c.next_due.push(a.verdict.next_due);
            c.attempts.push(a.verdict.attempts);
            c.late_since.push(a.verdict.late_since);
            c.requests
                .push(i32::try_from(a.requests).unwrap_or(i32::MAX));
        }
        c
    }
}
