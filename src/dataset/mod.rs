//! Datasets: the datacube APIs wxretain collects, each declared in one file.
//!
//! A dataset says what differs between the APIs, as data and small
//! functions: its API per grain, its request, the keys a period's data
//! comes in and when each is expected, how an answer is read into typed
//! rows, and how those rows are written to its table(s). The engine above
//! (planner, ledger, leases, client, archive, metrics) is written once and
//! only ever holds a [`DatasetId`] and a [`DatasetSpec`]: it never asks which
//! dataset it has.
//!
//! Adding a dataset: its own file implementing [`Dataset`], a variant of
//! [`DatasetId`] pointing at it, a migration for its table(s), the
//! simulator's answers, and the docs.

mod erased;
mod rejection;
pub mod retention;

pub use erased::{AnyAnswer, DatasetSpec};
pub use rejection::Rejection;

use crate::domain::{AppId, Grain, KeySet, Period};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::fmt;
use std::str::FromStr;

/// Which dataset: the `dataset` column of the ledger, the archive and the
/// rejects, the config's `[collect]` keys, the metrics' `dataset` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetId {
    /// `getDailyRetain`, `getWeeklyRetain`, `getMonthlyRetain`.
    Retention,
}

impl DatasetId {
    pub const ALL: [DatasetId; 1] = [DatasetId::Retention];

    /// The name in the ledger, the config, the CLI and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetId::Retention => "retention",
        }
    }

    /// What the dataset is: the one place that maps a name to its code.
    pub fn spec(self) -> &'static dyn DatasetSpec {
        match self {
            DatasetId::Retention => &retention::Retention,
        }
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetId::ALL
            .into_iter()
            .find(|d| d.as_str() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = DatasetId::ALL.iter().map(|d| d.as_str()).collect();
                format!("{s:?} is not a dataset ({})", names.join(", "))
            })
    }
}

/// One dataset at one grain: what one API serves, what an app collects,
/// and what the planner plans and the metrics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stream {
    pub dataset: DatasetId,
    pub grain: Grain,
}

impl Stream {
    pub fn new(dataset: DatasetId, grain: Grain) -> Self {
        Self { dataset, grain }
    }

    /// Every stream: each dataset at each of its grains, in order.
    pub fn all() -> impl Iterator<Item = Stream> {
        DatasetId::ALL
            .into_iter()
            .flat_map(|d| d.spec().grains().iter().map(move |&g| Stream::new(d, g)))
    }

    /// Its position in [`Stream::all`]: per-stream counters are arrays.
    pub fn index(self) -> usize {
        Stream::all().position(|s| s == self).unwrap_or(0)
    }

    pub fn spec(self) -> &'static dyn DatasetSpec {
        self.dataset.spec()
    }

    /// Its API.
    pub fn api(self) -> Api {
        self.spec().api(self.grain)
    }
}

impl fmt::Display for Stream {
    /// `retention weekly`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.dataset, self.grain)
    }
}

/// One of WeChat's APIs: where it is, and its name for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Api {
    /// Under the base URL, e.g. `datacube/getweanalysisappidweeklyretaininfo`.
    pub path: &'static str,
    /// The documentation's name, e.g. `getWeeklyRetain`.
    pub name: &'static str,
}

impl Api {
    /// The path's last segment: how errors name the call.
    pub fn endpoint(self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }
}

/// What the config says about when WeChat's data is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Hour (Beijing) from which a period's data is expected on its day.
    pub publish_hour: u32,
}

/// One period of one dataset, as the ledger keys it (besides the appid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub dataset: DatasetId,
    pub period: Period,
}

impl Target {
    pub fn new(dataset: DatasetId, period: Period) -> Self {
        Self { dataset, period }
    }

    pub fn grain(self) -> Grain {
        self.period.grain()
    }

    pub fn stream(self) -> Stream {
        Stream::new(self.dataset, self.period.grain())
    }

    pub fn spec(self) -> &'static dyn DatasetSpec {
        self.dataset.spec()
    }
}

impl fmt::Display for Target {
    /// `retention weekly 2026-11-02..2026-11-08`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.dataset,
            self.period.grain(),
            self.period
        )
    }
}

/// A dataset, with its answers' own type. Implemented once per dataset; the
/// engine sees it through [`DatasetSpec`].
pub trait Dataset: Send + Sync + 'static {
    /// A valid answer, as typed rows.
    type Answer: Clone + PartialEq + fmt::Debug + Send + Sync + 'static;

    fn id(&self) -> DatasetId;

    /// The grains it can be collected at (all of them by default).
    fn grains(&self) -> &'static [Grain];

    /// The API that serves `grain`.
    fn api(&self, grain: Grain) -> Api;

    /// The request body for `period`: by default its first and last day.
    fn request(&self, period: Period) -> serde_json::Value {
        serde_json::json!({ "begin_date": period.begin_date(), "end_date": period.end_date() })
    }

    /// The keys a period's data comes in, ascending: a period is complete
    /// once its answers have brought all of them. Key 0 is expected the
    /// morning after the period ends, at `publish_hour` (planning writes
    /// that due time itself).
    fn keys(&self, grain: Grain) -> &'static [u8];

    /// When `key` of `period` is expected.
    fn key_expected_at(&self, period: Period, key: u8, timing: Timing) -> DateTime<Utc>;

    /// Reads an answer for `period`, asked at `as_of`, refusing anything that
    /// is not a valid one. What is stored must be exactly what WeChat said:
    /// be strict on what is used, lenient on unknown fields. Data that
    /// cannot exist yet at `as_of` (retention's key k before period P+k has
    /// ended) is left out, so it can neither be stored nor end the period.
    fn read(
        &self,
        period: Period,
        body: &serde_json::Value,
        as_of: DateTime<Utc>,
    ) -> Result<Self::Answer, Rejection>;

    /// The keys `answer` brings, asked at `as_of`. An empty set means the
    /// answer has nothing yet (WeChat has not computed the period).
    fn keys_of(&self, period: Period, answer: &Self::Answer, as_of: DateTime<Utc>) -> KeySet;

    /// Why the answer cannot be true, if it cannot: it is then asked again
    /// before it is stored (see the pass).
    fn implausibility(&self, _answer: &Self::Answer) -> Option<String> {
        None
    }

    /// Writes the rows of `items` to the dataset's table(s), in the caller's
    /// transaction, and says per item how many rows it inserted or changed
    /// (an identical answer changes none; `last_changed_at` moves only on a
    /// change).
    fn write<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        items: &'a [Item<'a, Self::Answer>],
    ) -> BoxFuture<'a, sqlx::Result<Vec<u64>>>;
}

/// One app's answer for one period, as [`Dataset::write`] takes it.
pub type Item<'a, A> = (&'a AppId, Period, &'a A);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dataset_names_itself_and_parses_back() {
        for id in DatasetId::ALL {
            assert_eq!(id.spec().id(), id);
            assert_eq!(id.as_str().parse::<DatasetId>(), Ok(id));
            assert!(!id.spec().grains().is_empty());
        }
        assert!("visits".parse::<DatasetId>().is_err());
    }

    #[test]
    fn key_zero_is_expected_the_morning_after_the_period() {
        // Planning writes this due time in SQL: every dataset must agree.
        let timing = Timing { publish_hour: 10 };
        let day = crate::domain::parse_date("20261231").expect("date");
        for id in DatasetId::ALL {
            let spec = id.spec();
            for &grain in spec.grains() {
                let period = grain.containing(day);
                assert_eq!(spec.keys(grain).first(), Some(&0), "{id} {grain}");
                assert_eq!(
                    spec.key_expected_at(period, 0, timing),
                    period.morning_after(0, 10),
                    "{id} {grain}"
                );
            }
        }
    }
}
