//! Retention's dashboard views, as the report and the store read them.

use super::keys;
use crate::domain::{Grain, Metric};

/// The names a grain's dashboard view uses: a public interface
/// (docs/views.md), which is why they are spelled out here rather than
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
    keys(grain).get(1..).unwrap_or_default()
}
