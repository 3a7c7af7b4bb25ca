//! Cohort triangles as the dashboard views define them (`retention_cohorts`,
//! `retention_cohorts_daily`, `retention_cohorts_monthly`), so a report and a
//! dashboard can never disagree about a rate. One query serves every grain:
//! what differs is the view's name and column names, which the retention
//! dataset declares ([`CohortView`]).
//!
//! These are the store's only statements built at run time (with
//! `CREATE DATABASE`): the table, the view and its columns are identifiers
//! chosen by the grain and the metric, and an identifier cannot be a bind
//! parameter. Checked macros would need one copy of each statement per
//! grain (and of the pivot per grain and metric: six), the grain list
//! written out here once more, and a fourth grain would have to add its
//! copies by hand; one statement built from [`CohortView`] keeps this one
//! engine over data. The names are constants of the code, never user input,
//! and the report tests (`tests/it/views_family.rs`, `tests/it/cli.rs`) run every
//! statement on every grain.

use super::{Result, Store};
use crate::dataset::retention::{column_prefix, later_keys, table, CohortView};
use crate::domain::{AppId, Grain, Metric, Period};
use chrono::NaiveDate;

/// One period (day, week or month) of one cohort (new or active users) and
/// who came back.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortPeriod {
    pub period: Period,
    /// Key 0: the period's users; `None` while WeChat has not published it.
    pub users: Option<i64>,
    /// One per key after 0 (`Grain::keys()[1..]`): of those users, how many
    /// were active again k periods later; `None` while the key is not published.
    pub retained: Vec<Option<i64>>,
    /// `retained[i] / users` as a fraction, from the view; `None` while the
    /// key is unpublished or `users` is 0.
    /// Why the period has no data at all, when it has none and the ledger
    /// says more than "not published yet" (see [`Gap`]).
    pub gap: Option<Gap>,
    pub rates: Vec<Option<f64>>,
}

/// Why a period has no data, as the ledger tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gap {
    /// Not in the ledger: outside the range kept, or not collected then.
    NotPlanned,
    /// Planned, never fetched yet.
    NotFetched,
    /// WeChat's answer was refused (`rejected_answers` has it).
    Rejected,
    /// The last attempt failed.
    Failed,
    /// WeChat does not serve it (61501 on an old period).
    Unavailable,
}

impl Gap {
    /// What the ledger's entry (`None`: there is none) says of a period
    /// with no data; `None` when that is "not published yet".
    pub fn of(entry: Option<&super::PeriodRow>) -> Option<Gap> {
        let Some(row) = entry else {
            return Some(Gap::NotPlanned);
        };
        match row.state.as_str() {
            "missing" => Some(Gap::NotFetched),
            "unavailable" => Some(Gap::Unavailable),
            "failing" if row.last_error_class.as_deref() == Some("rejected") => Some(Gap::Rejected),
            "failing" => Some(Gap::Failed),
            _ => None,
        }
    }
}

impl Store {
    /// The oldest and the most recent period of `grain` the app has any data for.
    pub async fn stored_periods(
        &self,
        grain: Grain,
        appid: &AppId,
    ) -> Result<Option<(Period, Period)>> {
        let start = CohortView::of(grain).start_column();
        // Table and column names are constants of the grain, never user input.
        let sql = format!(
            "SELECT min({start}), max({start}) FROM {} WHERE appid = $1",
            table(grain)
        );
        let (first, last): (Option<NaiveDate>, Option<NaiveDate>) = sqlx::query_as(&sql)
            .bind(appid.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(first
            .zip(last)
            .map(|(f, l)| (grain.containing(f), grain.containing(l))))
    }

    /// Apps with any data of `grain`, for telling a user which appids they could mean.
    pub async fn apps_with_data(&self, grain: Grain) -> Result<Vec<String>> {
        let sql = format!("SELECT DISTINCT appid FROM {} ORDER BY appid", table(grain));
        Ok(sqlx::query_scalar(&sql).fetch_all(self.pool()).await?)
    }

    /// Every period of `first..=last` (both of one grain), in order; periods
    /// with no data at all come back with every value `None`, so a gap shows
    /// instead of vanishing.
    pub async fn cohort_periods(
        &self,
        appid: &AppId,
        metric: Metric,
        first: Period,
        last: Period,
    ) -> Result<Vec<CohortPeriod>> {
        let grain = first.grain();
        let view = CohortView::of(grain);
        let p = column_prefix(metric);
        let labels: Vec<String> = later_keys(grain)
            .iter()
            .map(|&k| view.key_label(k))
            .collect();
        let counts: Vec<String> = labels.iter().map(|l| format!("c.{p}_{l}")).collect();
        let rates: Vec<String> = labels.iter().map(|l| format!("c.{p}_rate_{l}")).collect();
        // Every name is a constant of the grain or the metric, never user
        // input. The periods come from Rust (months are not a fixed
        // interval). The appid and the range of starts are constants for the
        // view, so Postgres pushes them down to the table's primary key: the
        // join alone would pivot every period the app has.
        let sql = format!(
            "SELECT p.start, c.{p}_users AS users,
                    ARRAY[{counts}]::bigint[] AS retained,
                    ARRAY[{rates}]::double precision[] AS rates
               FROM unnest($2::date[]) WITH ORDINALITY AS p(start, n)
               LEFT JOIN {name} c ON c.appid = $1 AND c.{start} = p.start
                    AND c.{start} BETWEEN $3 AND $4
              ORDER BY p.n",
            counts = counts.join(", "),
            rates = rates.join(", "),
            name = view.view,
            start = view.start_column(),
        );
        let starts: Vec<NaiveDate> = Period::range(first, last).map(Period::start).collect();
        let rows: Vec<CohortRow> = sqlx::query_as(&sql)
            .bind(appid.as_str())
            .bind(starts)
            .bind(first.start())
            .bind(last.start())
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| CohortPeriod {
                period: grain.containing(r.start),
                users: r.users,
                retained: r.retained,
                rates: r.rates,
                gap: None,
            })
            .collect())
    }
}

#[derive(sqlx::FromRow)]
struct CohortRow {
    start: NaiveDate,
    users: Option<i64>,
    retained: Vec<Option<i64>>,
    rates: Vec<Option<f64>>,
}
