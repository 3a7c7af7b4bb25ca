//! Storing valid answers: rows, archive and ledger for a whole batch of
//! periods (of any grain) in one statement, so a crash or a lost connection
//! leaves all of it or none, and a backfill costs one round trip per batch
//! instead of five per period.

use super::{Claim, Store};
use crate::domain::{AppId, Period};
use crate::planner::Verdict;
use crate::replica::ReplicaId;
use crate::validate::PeriodAnswer;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

/// One validated answer waiting to be written.
#[derive(Debug, Clone)]
pub struct Answered {
    pub claim: Claim,
    pub answer: PeriodAnswer,
    /// The body's text as WeChat sent it, for the archive.
    pub raw: String,
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

/// The batch as parallel arrays, the shape `unnest` takes.
#[derive(Default)]
struct Columns {
    // rows of the grain's table
    row_appid: Vec<String>,
    row_grain: Vec<&'static str>,
    row_start: Vec<NaiveDate>,
    row_metric: Vec<&'static str>,
    row_key: Vec<i16>,
    row_value: Vec<i64>,
    // one entry per period: archive and ledger
    appid: Vec<String>,
    grain: Vec<&'static str>,
    start: Vec<NaiveDate>,
    /// The text received: the archive keeps it, and its parsed form (jsonb).
    body: Vec<String>,
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
    /// One entry per period: a period answered twice in a batch (claimed
    /// again after its lease ran out) would make the upsert touch a row
    /// twice, which Postgres refuses for the whole statement. The later
    /// answer wins.
    fn of(batch: &[Answered]) -> Self {
        let mut c = Columns::default();
        let mut last = HashMap::new();
        for (i, a) in batch.iter().enumerate() {
            last.insert((&a.claim.appid, a.claim.period), i);
        }
        for (i, a) in batch.iter().enumerate() {
            if last.get(&(&a.claim.appid, a.claim.period)) != Some(&i) {
                continue;
            }
            let appid = a.claim.appid.to_string();
            let (grain, start) = (a.claim.period.grain().as_str(), a.claim.period.start());
            for ((metric, key), value) in &a.answer.values {
                c.row_appid.push(appid.clone());
                c.row_grain.push(grain);
                c.row_start.push(start);
                c.row_metric.push(metric.as_str());
                c.row_key.push(i16::from(*key));
                c.row_value.push(*value);
            }
            let held: Vec<String> = a.answer.keys().iter().map(u8::to_string).collect();
            c.keys.push(format!("{{{}}}", held.join(",")));
            c.appid.push(appid);
            c.grain.push(grain);
            c.start.push(start);
            c.body.push(a.raw.clone());
            c.suspect.push(a.suspect);
            c.state.push(a.verdict.state.as_str());
            c.next_due.push(a.verdict.next_due);
            c.attempts.push(a.verdict.attempts);
            c.late_since.push(a.verdict.late_since);
            c.requests
                .push(i32::try_from(a.requests).unwrap_or(i32::MAX));
        }
        c
    }
}

impl Store {
    /// Writes a batch of answers atomically (a single statement is its own
    /// transaction) and says, per answer, what changed: `None` for a period
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
        // Fenced: only the periods whose lease `owner` still holds are
        // written, locked first so no other replica's claim can slip in.
        // Each grain's rows go to its own table (one INSERT each: a table
        // name cannot be a parameter). Unchanged values are not touched, so
        // `last_changed_at` means what it says; an answer identical to the
        // last archived one is not archived again. All report what they
        // wrote, per period.
        // The union's columns come back as nullable to the compiler: every
        // one of them is set on every row (`AS "…!"`). The macro expects
        // `String`s and non-null elements in arrays; `as` names the types we
        // bind (the names are static, the due times may be NULL), which
        // still must encode as the parameter's SQL type.
        let changed = sqlx::query_as!(
            Changed,
            r#"WITH all_periods AS (
                 SELECT * FROM unnest($7::text[], $8::text[], $9::date[], $10::text[]::jsonb[], $10::text[],
                                      $11::boolean[], $12::text[], $13::text[], $14::timestamptz[],
                                      $15::integer[], $16::timestamptz[], $18::integer[])
                          AS t(appid, grain, period_start, body, raw, suspect, state, keys, next_due,
                               attempts, late_since, requests)),
             mine AS (
                 SELECT l.appid, l.grain, l.period_start FROM retention_ledger l
                   JOIN all_periods USING (appid, grain, period_start)
                  WHERE l.lease_owner = $17
                    FOR UPDATE OF l),
             periods AS (SELECT all_periods.* FROM all_periods JOIN mine USING (appid, grain, period_start)),
             new_rows AS (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::smallint[], $6::bigint[])
                          AS t(a, g, p, m, k, v)
                  WHERE (a, g, p) IN (SELECT appid, grain, period_start FROM mine)),
             daily AS (
                 INSERT INTO daily_retention (appid, day, metric, key, value)
                 SELECT a, p, m, k, v FROM new_rows WHERE g = 'daily'
                 ON CONFLICT (appid, day, metric, key) DO UPDATE
                    SET value = EXCLUDED.value, last_changed_at = now()
                  WHERE daily_retention.value IS DISTINCT FROM EXCLUDED.value
                 RETURNING appid, 'daily'::text AS grain, day AS period_start),
             weekly AS (
                 INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value)
                 SELECT a, p, p + 6, m, k, v FROM new_rows WHERE g = 'weekly'
                 ON CONFLICT (appid, week_start, metric, key) DO UPDATE
                    SET value = EXCLUDED.value, last_changed_at = now()
                  WHERE weekly_retention.value IS DISTINCT FROM EXCLUDED.value
                 RETURNING appid, 'weekly'::text AS grain, week_start AS period_start),
             monthly AS (
                 INSERT INTO monthly_retention (appid, month_start, month_end, metric, key, value)
                 SELECT a, p, (p + interval '1 month' - interval '1 day')::date, m, k, v
                   FROM new_rows WHERE g = 'monthly'
                 ON CONFLICT (appid, month_start, metric, key) DO UPDATE
                    SET value = EXCLUDED.value, last_changed_at = now()
                  WHERE monthly_retention.value IS DISTINCT FROM EXCLUDED.value
                 RETURNING appid, 'monthly'::text AS grain, month_start AS period_start),
             written AS (
                 SELECT * FROM daily UNION ALL SELECT * FROM weekly UNION ALL SELECT * FROM monthly),
             archived AS (
                 INSERT INTO retention_answers (appid, grain, period_start, body, raw, suspect)
                 SELECT appid, grain, period_start, body, raw, suspect FROM periods
                  WHERE (body, raw) IS DISTINCT FROM (
                        SELECT (r.body, r.raw) FROM retention_answers r
                         WHERE r.appid = periods.appid AND r.grain = periods.grain
                           AND r.period_start = periods.period_start
                         ORDER BY r.id DESC LIMIT 1)
                 RETURNING appid, grain, period_start),
             ledger AS (
                 UPDATE retention_ledger l
                    -- an answer with fewer keys than before takes none away
                    SET state = periods.state, next_due_at = periods.next_due, late_since = periods.late_since,
                        suspect = periods.suspect,
                        keys = ARRAY(SELECT DISTINCT k FROM unnest(l.keys || periods.keys::smallint[]) AS k ORDER BY k),
                        attempts = periods.attempts, calls = l.calls + periods.requests,
                        last_success_at = now(), last_attempt_at = now(),
                        last_errcode = NULL, last_error = NULL,
                        lease_owner = NULL, lease_until = NULL, updated_at = now()
                   FROM periods
                  WHERE l.appid = periods.appid AND l.grain = periods.grain
                    AND l.period_start = periods.period_start)
             SELECT 'rows' AS "kind!", appid AS "appid!", grain AS "grain!",
                    period_start AS "period_start!", count(*) AS "n!"
               FROM written GROUP BY appid, grain, period_start
             UNION ALL
             SELECT 'archived', appid, grain, period_start, 1 FROM archived
             UNION ALL
             SELECT 'mine', appid, grain, period_start, 1 FROM mine"#,
            &c.row_appid,
            &c.row_grain as &[&str],
            &c.row_start,
            &c.row_metric as &[&str],
            &c.row_key,
            &c.row_value,
            &c.appid,
            &c.grain as &[&str],
            &c.start,
            &c.body,
            &c.suspect,
            &c.state as &[&str],
            &c.keys,
            &c.next_due as &[Option<DateTime<Utc>>],
            &c.attempts,
            &c.late_since as &[Option<DateTime<Utc>>],
            owner.as_str(),
            &c.requests,
        )
        .fetch_all(self.pool())
        .await?;
        let mut stats: HashMap<(String, String, NaiveDate), SaveStats> = HashMap::new();
        for row in changed {
            let s = stats
                .entry((row.appid, row.grain, row.period_start))
                .or_default();
            match row.kind.as_str() {
                "rows" => s.rows_written = row.n as u64,
                "archived" => s.archived = true,
                _ => {} // "mine": present, so held
            }
        }
        Ok(batch
            .iter()
            .map(|a| stats.get(&key(&a.claim.appid, a.claim.period)).copied())
            .collect())
    }
}

/// What the statement reports for one period: `kind` is `rows` (with `n`
/// rows written), `archived` or `mine` (the lease was still held).
struct Changed {
    kind: String,
    appid: String,
    grain: String,
    period_start: NaiveDate,
    n: i64,
}

fn key(appid: &AppId, period: Period) -> (String, String, NaiveDate) {
    (
        appid.to_string(),
        period.grain().as_str().to_string(),
        period.start(),
    )
}
