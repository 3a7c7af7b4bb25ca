//! Storing a valid answer: rows, archive and ledger in one transaction, so a
//! crash or a lost connection leaves either all of it or none.

use super::{Claim, Store};
use crate::planner::Verdict;
use crate::validate::WeekAnswer;

/// What storing one answer changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveStats {
    /// Rows inserted or whose value changed (an identical answer writes none).
    pub rows_written: u64,
    /// Whether the answer differed from the last one archived for the week.
    pub archived: bool,
}

impl Store {
    pub async fn save_answer(
        &self,
        claim: &Claim,
        answer: &WeekAnswer,
        body: &serde_json::Value,
        verdict: &Verdict,
    ) -> sqlx::Result<SaveStats> {
        let (metrics, (keys, values)): (Vec<&str>, (Vec<i16>, Vec<i64>)) = answer
            .values
            .iter()
            .map(|((m, k), v)| (m.as_str(), (i16::from(*k), *v)))
            .unzip();
        let appid = claim.appid.as_str();
        let monday = claim.week.monday();
        let mut tx = self.pool().begin().await?;
        // One statement for all rows; unchanged values are not touched, so
        // `last_changed_at` means what it says.
        let rows = sqlx::query(
            "INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value)
             SELECT $1, $2, $3, m, k, v FROM unnest($4::text[], $5::smallint[], $6::bigint[]) AS t(m, k, v)
             ON CONFLICT (appid, week_start, metric, key) DO UPDATE
                SET value = EXCLUDED.value, last_changed_at = now()
              WHERE weekly_retention.value IS DISTINCT FROM EXCLUDED.value",
        )
        .bind(appid)
        .bind(monday)
        .bind(claim.week.sunday())
        .bind(&metrics)
        .bind(&keys)
        .bind(&values)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let archived = sqlx::query(
            "INSERT INTO retention_answers (appid, week_start, body)
             SELECT $1, $2, $3
              WHERE $3 IS DISTINCT FROM (SELECT body FROM retention_answers
                                          WHERE appid = $1 AND week_start = $2
                                          ORDER BY id DESC LIMIT 1)",
        )
        .bind(appid)
        .bind(monday)
        .bind(body)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let held: Vec<i16> = answer.keys().into_iter().map(i16::from).collect();
        sqlx::query(
            "UPDATE retention_ledger
                SET state = $3, keys = $4, next_due_at = $5, attempts = $6, calls = calls + 1,
                    last_success_at = now(), last_attempt_at = now(),
                    last_errcode = NULL, last_error = NULL,
                    lease_owner = NULL, lease_until = NULL, updated_at = now()
              WHERE appid = $1 AND week_start = $2",
        )
        .bind(appid)
        .bind(monday)
        .bind(verdict.state.as_str())
        .bind(&held)
        .bind(verdict.next_due)
        .bind(verdict.attempts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SaveStats {
            rows_written: rows,
            archived,
        })
    }
}
