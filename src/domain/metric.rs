//! The two series `getWeeklyRetain` answers with.

use std::fmt;

/// Which retention series a value belongs to; stored as WeChat's field name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Metric {
    /// `visit_uv_new`: users new that week, and how many of them came back.
    #[serde(rename = "visit_uv_new")]
    VisitUvNew,
    /// `visit_uv`: users active that week, and how many of them came back.
    #[serde(rename = "visit_uv")]
    VisitUv,
}

impl Metric {
    pub const ALL: [Metric; 2] = [Metric::VisitUvNew, Metric::VisitUv];

    /// WeChat's field name, which is also the `metric` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::VisitUvNew => "visit_uv_new",
            Metric::VisitUv => "visit_uv",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retention keys run from 0 (the week itself) to 4 (four weeks later).
pub const MAX_KEY: u8 = 4;
