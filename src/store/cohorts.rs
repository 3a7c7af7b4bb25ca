//! Cohort triangles as the dashboard views define them (`retention_cohorts`,
//! `retention_cohorts_daily`, `retention_cohorts_monthly`), so a report and a
//! dashboard can never disagree about a rate. One query serves every grain:
//! what differs is the view's name and column names, described by
//! [`CohortView`].
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

use super::Store;
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
    pub rates: Vec<Option<f64>>,
}

/// The names a grain's dashboard view uses: a public interface (README,
/// "Dashboard views"), which is why they are spelled out here rather than
/// derived from the grain's other names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CohortView {
    /// The view's name.
    pub view: &'static str,
    /// The period's columns in the view, its table and the report's CSV: the
    /// first day, then the last day where the view has one.
    pub period_columns: &'static [&'static str],
    /// Key k's column is `<cohort>_<prefix><k>`, its rate `<cohort>_rate_<prefix><k>`.
    pub key_prefix: &'static str,
}

impl CohortView {
    pub fn of(grain: Grain) -> Self {
        match grain {
            Grain::Daily => Self {
                view: "retention_cohorts_daily",
                period_columns: &["day"],
                key_prefix: "d",
            },
            Grain::Weekly => Self {
                view: "retention_cohorts",
                period_columns: &["week_start", "week_end"],
                key_prefix: "w",
            },
            Grain::Monthly => Self {
                view: "retention_cohorts_monthly",
                period_columns: &["month_start", "month_end"],
                key_prefix: "m",
            },
        }
    }

    /// The column holding the period's first day (in the view and the table).
    pub fn start_column(self) -> &'static str {
        self.period_columns[0]
    }

    /// `w1`, `d14`, `m1`...: key `key`'s name in the view's columns and the report's.
    pub fn key_label(self, key: u8) -> String {
        format!("{}{key}", self.key_prefix)
    }
}

/// The prefix of the views' columns for `metric` (`new_users`, `new_w1`...).
pub fn column_prefix(metric: Metric) -> &'static str {
    match metric {
        Metric::VisitUvNew => "new",
        Metric::VisitUv => "active",
    }
}

/// The keys after 0: the ones with a count and a rate in a cohort row.
pub fn later_keys(grain: Grain) -> &'static [u8] {
    grain.keys().get(1..).unwrap_or_default()
}

impl Store {
    /// The oldest and the most recent period of `grain` the app has any data for.
    pub async fn stored_periods(
        &self,
        grain: Grain,
        appid: &AppId,
    ) -> sqlx::Result<Option<(Period, Period)>> {
        let start = CohortView::of(grain).start_column();
        // Table and column names are constants of the grain, never user input.
        let sql = format!(
            "SELECT min({start}), max({start}) FROM {} WHERE appid = $1",
            grain.table()
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
    pub async fn apps_with_data(&self, grain: Grain) -> sqlx::Result<Vec<String>> {
        let sql = format!(
            "SELECT DISTINCT appid FROM {} ORDER BY appid",
            grain.table()
        );
        sqlx::query_scalar(&sql).fetch_all(self.pool()).await
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
    ) -> sqlx::Result<Vec<CohortPeriod>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_grain_names_its_view_and_a_label_per_later_key() {
        for grain in Grain::ALL {
            let view = CohortView::of(grain);
            assert_eq!(later_keys(grain).len() + 1, grain.keys().len());
            assert!(view.view.starts_with("retention_cohorts"));
            assert!(!view.period_columns.is_empty());
        }
        let daily = CohortView::of(Grain::Daily);
        assert_eq!(daily.key_label(30), "d30");
        assert_eq!(daily.start_column(), "day");
        assert_eq!(CohortView::of(Grain::Weekly).key_label(4), "w4");
        assert_eq!(later_keys(Grain::Monthly), &[1]);
    }
}
