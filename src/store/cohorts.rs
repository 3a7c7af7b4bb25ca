//! Cohort triangles as the `retention_cohorts` view defines them, so a report
//! and a dashboard can never disagree about a rate.

use super::Store;
use crate::domain::{AppId, Metric, NaturalWeek};
use chrono::NaiveDate;

/// One week of one cohort (new or active users) and who came back.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortWeek {
    pub week_start: NaiveDate,
    pub week_end: NaiveDate,
    /// Key 0: the week's users; `None` while WeChat has not published it.
    pub users: Option<i64>,
    /// Keys 1..=4: of those users, how many were active again k weeks later;
    /// `None` while the key is not published.
    pub retained: [Option<i64>; 4],
    /// `retained[k] / users` as a fraction, from the view; `None` while the
    /// key is unpublished or `users` is 0.
    pub rates: [Option<f64>; 4],
}

/// The prefix of the view's columns for `metric` (`new_users`, `new_w1`...).
pub fn column_prefix(metric: Metric) -> &'static str {
    match metric {
        Metric::VisitUvNew => "new",
        Metric::VisitUv => "active",
    }
}

impl Store {
    /// The oldest and the most recent week the app has any data for.
    pub async fn stored_weeks(
        &self,
        appid: &AppId,
    ) -> sqlx::Result<Option<(NaturalWeek, NaturalWeek)>> {
        let (first, last): (Option<NaiveDate>, Option<NaiveDate>) = sqlx::query_as(
            "SELECT min(week_start), max(week_start) FROM weekly_retention WHERE appid = $1",
        )
        .bind(appid.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(first
            .zip(last)
            .map(|(f, l)| (NaturalWeek::containing(f), NaturalWeek::containing(l))))
    }

    /// Apps with any data, for telling a user which appids they could mean.
    pub async fn apps_with_data(&self) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar("SELECT DISTINCT appid FROM weekly_retention ORDER BY appid")
            .fetch_all(self.pool())
            .await
    }

    /// Every week of `first..=last`, in order; weeks with no data at all come
    /// back with every value `None`, so a gap shows instead of vanishing.
    pub async fn cohort_weeks(
        &self,
        appid: &AppId,
        metric: Metric,
        first: NaturalWeek,
        last: NaturalWeek,
    ) -> sqlx::Result<Vec<CohortWeek>> {
        let p = column_prefix(metric);
        // `p` is one of two constants, never user input.
        let sql = format!(
            "SELECT w::date AS week_start, (w::date + 6) AS week_end,
                    c.{p}_users AS users,
                    c.{p}_w1 AS w1, c.{p}_w2 AS w2, c.{p}_w3 AS w3, c.{p}_w4 AS w4,
                    c.{p}_rate_w1 AS rate_w1, c.{p}_rate_w2 AS rate_w2,
                    c.{p}_rate_w3 AS rate_w3, c.{p}_rate_w4 AS rate_w4
               FROM generate_series($2::date, $3::date, interval '7 days') AS w
               LEFT JOIN retention_cohorts c ON c.appid = $1 AND c.week_start = w::date
              ORDER BY w"
        );
        let rows: Vec<CohortRow> = sqlx::query_as(&sql)
            .bind(appid.as_str())
            .bind(first.monday())
            .bind(last.monday())
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(CohortWeek::from).collect())
    }
}

#[derive(sqlx::FromRow)]
struct CohortRow {
    week_start: NaiveDate,
    week_end: NaiveDate,
    users: Option<i64>,
    w1: Option<i64>,
    w2: Option<i64>,
    w3: Option<i64>,
    w4: Option<i64>,
    rate_w1: Option<f64>,
    rate_w2: Option<f64>,
    rate_w3: Option<f64>,
    rate_w4: Option<f64>,
}

impl From<CohortRow> for CohortWeek {
    fn from(r: CohortRow) -> Self {
        Self {
            week_start: r.week_start,
            week_end: r.week_end,
            users: r.users,
            retained: [r.w1, r.w2, r.w3, r.w4],
            rates: [r.rate_w1, r.rate_w2, r.rate_w3, r.rate_w4],
        }
    }
}
