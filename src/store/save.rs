//! Storing valid answers: rows, archive and ledger for a whole batch of weeks
//! in one statement, so a crash or a lost connection leaves all of it or none,
//! and a backfill costs one round trip per batch instead of five per week.

use super::{Claim, Store};
use crate::planner::Verdict;
use crate::replica::ReplicaId;
use crate::validate::WeekAnswer;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

/// One validated answer waiting to be written.
#[derive(Debug, Clone)]
pub struct Answered {
    pub claim: Claim,
    pub answer: WeekAnswer,
    /// The body's text as WeChat sent it, for the archive.
    pub raw: String,
    /// The answer looks impossible and was stored because WeChat repeated it.
    pub suspect: bool,
    pub verdict: Verdict,
}

/// What storing one answer changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveStats {
    /// Rows inserted or whose value changed (an identical answer writes none).
    pub rows_written: u64,
    /// Whether the answer differed from the last one archived for the week.
    pub archived: bool,
}

/// The batch as parallel arrays, the shape `unnest` takes.
#[derive(Default)]
struct Columns {
    // weekly_retention rows
    row_appid: Vec<String>,
    row_week: Vec<NaiveDate>,
    row_metric: Vec<&'static str>,
    row_key: Vec<i16>,
    row_value: Vec<i64>,
    // one entry per week: archive and ledger
    appid: Vec<String>,
    week: Vec<NaiveDate>,
    /// The text received: the archive keeps it, and its parsed form (jsonb).
    body: Vec<String>,
    suspect: Vec<bool>,
    state: Vec<&'static str>,
    /// `smallint[]` literals: unnest would flatten a two-dimensional array.
    keys: Vec<String>,
    next_due: Vec<Option<DateTime<Utc>>>,
    attempts: Vec<i32>,
    late_since: Vec<Option<DateTime<Utc>>>,
}

impl Columns {
    /// One entry per week: a week answered twice in a batch (claimed again
    /// after its lease ran out) would make the upsert touch a row twice,
    /// which Postgres refuses for the whole statement. The later answer wins.
    fn of(batch: &[Answered]) -> Self {
        let mut c = Columns::default();
        let mut last = HashMap::new();
        for (i, a) in batch.iter().enumerate() {
            last.insert((&a.claim.appid, a.claim.week), i);
        }
        for (i, a) in batch.iter().enumerate() {
            if last.get(&(&a.claim.appid, a.claim.week)) != Some(&i) {
                continue;
            }
            let appid = a.claim.appid.to_string();
            let monday = a.claim.week.monday();
            for ((metric, key), value) in &a.answer.values {
                c.row_appid.push(appid.clone());
                c.row_week.push(monday);
                c.row_metric.push(metric.as_str());
                c.row_key.push(i16::from(*key));
                c.row_value.push(*value);
            }
            let held: Vec<String> = a.answer.keys().iter().map(u8::to_string).collect();
            c.keys.push(format!("{{{}}}", held.join(",")));
            c.appid.push(appid);
            c.week.push(monday);
            c.body.push(a.raw.clone());
            c.suspect.push(a.suspect);
            c.state.push(a.verdict.state.as_str());
            c.next_due.push(a.verdict.next_due);
            c.attempts.push(a.verdict.attempts);
            c.late_since.push(a.verdict.late_since);
        }
        c
    }
}

impl Store {
    /// Writes a batch of answers atomically (a single statement is its own
    /// transaction) and says, per answer, what changed: `None` for a week
    /// `owner` no longer holds (its lease ran out and another replica took
    /// it), of which nothing is written.
    pub async fn save_answers(
        &self,
        owner: &ReplicaId,
        batch: &[Answered],
    ) -> sqlx::Result<Vec<Option<SaveStats>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let c = Columns::of(batch);
        // Unchanged values are not touched, so `last_changed_at` means what it
        // says; an answer identical to the last archived one is not archived
        // again. Both report what they wrote, per week.
        // Fenced: only the weeks whose lease `owner` still holds are written,
        // locked first so no other replica's claim can slip in between.
        let changed: Vec<(String, String, NaiveDate, i64)> = sqlx::query_as(
            "WITH all_weeks AS (
                 SELECT * FROM unnest($6::text[], $7::date[], $8::text[]::jsonb[], $9::text[], $10::text[],
                                      $11::timestamptz[], $12::integer[], $14::timestamptz[], $15::boolean[],
                                      $8::text[])
                          AS t(appid, week_start, body, state, keys, next_due, attempts, late_since, suspect, raw)),
             mine AS (
                 SELECT l.appid, l.week_start FROM retention_ledger l
                   JOIN all_weeks USING (appid, week_start)
                  WHERE l.lease_owner = $13
                    FOR UPDATE OF l),
             weeks AS (SELECT all_weeks.* FROM all_weeks JOIN mine USING (appid, week_start)),
             written AS (
                 INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value)
                 SELECT a, w, w + 6, m, k, v
                   FROM unnest($1::text[], $2::date[], $3::text[], $4::smallint[], $5::bigint[]) AS t(a, w, m, k, v)
                  WHERE (a, w) IN (SELECT appid, week_start FROM mine)
                 ON CONFLICT (appid, week_start, metric, key) DO UPDATE
                    SET value = EXCLUDED.value, last_changed_at = now()
                  WHERE weekly_retention.value IS DISTINCT FROM EXCLUDED.value
                 RETURNING appid, week_start),
             archived AS (
                 INSERT INTO retention_answers (appid, week_start, body, raw, suspect)
                 SELECT appid, week_start, body, raw, suspect FROM weeks
                  WHERE (body, raw) IS DISTINCT FROM (SELECT (r.body, r.raw) FROM retention_answers r
                                                       WHERE r.appid = weeks.appid AND r.week_start = weeks.week_start
                                                       ORDER BY r.id DESC LIMIT 1)
                 RETURNING appid, week_start),
             ledger AS (
                 UPDATE retention_ledger l
                    -- an answer with fewer keys than before takes none away
                    SET state = weeks.state, next_due_at = weeks.next_due, late_since = weeks.late_since,
                        suspect = weeks.suspect,
                        keys = ARRAY(SELECT DISTINCT k FROM unnest(l.keys || weeks.keys::smallint[]) AS k ORDER BY k),
                        attempts = weeks.attempts, calls = l.calls + 1,
                        last_success_at = now(), last_attempt_at = now(),
                        last_errcode = NULL, last_error = NULL,
                        lease_owner = NULL, lease_until = NULL, updated_at = now()
                   FROM weeks
                  WHERE l.appid = weeks.appid AND l.week_start = weeks.week_start)
             SELECT 'rows', appid, week_start, count(*) FROM written GROUP BY appid, week_start
             UNION ALL
             SELECT 'archived', appid, week_start, 1 FROM archived
             UNION ALL
             SELECT 'mine', appid, week_start, 1 FROM mine",
        )
        .bind(&c.row_appid)
        .bind(&c.row_week)
        .bind(&c.row_metric)
        .bind(&c.row_key)
        .bind(&c.row_value)
        .bind(&c.appid)
        .bind(&c.week)
        .bind(&c.body)
        .bind(&c.state)
        .bind(&c.keys)
        .bind(&c.next_due)
        .bind(&c.attempts)
        .bind(owner.as_str())
        .bind(&c.late_since)
        .bind(&c.suspect)
        .fetch_all(self.pool())
        .await?;
        let mut stats: HashMap<(String, NaiveDate), SaveStats> = HashMap::new();
        for (kind, appid, week, n) in changed {
            let s = stats.entry((appid, week)).or_default();
            match kind.as_str() {
                "rows" => s.rows_written = n as u64,
                "archived" => s.archived = true,
                _ => {} // "mine": present, so held
            }
        }
        Ok(batch
            .iter()
            .map(|a| {
                let key = (a.claim.appid.to_string(), a.claim.week.monday());
                stats.get(&key).copied()
            })
            .collect())
    }
}
