//! [`Dataset`] with its answer type erased, for the engine: one
//! implementation for every dataset, so the engine holds `&dyn DatasetSpec`
//! and [`AnyAnswer`]s and never names a dataset's types.

use super::{Api, Dataset, DatasetId, Item, Rejection, Timing};
use crate::domain::{AppId, Grain, KeySet, Period};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// What the engine can ask of any dataset (see [`Dataset`] for each item).
pub trait DatasetSpec: Send + Sync {
    fn id(&self) -> DatasetId;
    fn grains(&self) -> &'static [Grain];
    fn api(&self, grain: Grain) -> Api;
    fn request(&self, period: Period) -> serde_json::Value;
    fn keys(&self, grain: Grain) -> &'static [u8];
    fn key_expected_at(&self, period: Period, key: u8, timing: Timing) -> DateTime<Utc>;
    /// Reads and checks an answer, asked at `as_of`.
    fn read(
        &self,
        period: Period,
        body: &serde_json::Value,
        as_of: DateTime<Utc>,
    ) -> Result<AnyAnswer, Rejection>;
    /// Writes the rows of answers read by this dataset (an answer of
    /// another dataset is a bug, refused as an error rather than skipped:
    /// skipping would store nothing while the ledger says stored).
    fn write<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        items: &'a [(&'a AppId, Period, &'a AnyAnswer)],
    ) -> BoxFuture<'a, sqlx::Result<Vec<u64>>>;

    /// The last key: once it is in, a period is complete.
    fn last_key(&self, grain: Grain) -> u8 {
        self.keys(grain).last().copied().unwrap_or(0)
    }

    fn is_key(&self, grain: Grain, key: u8) -> bool {
        self.keys(grain).contains(&key)
    }
}

/// A valid answer of some dataset, with what the engine needs to know of it.
#[derive(Clone)]
pub struct AnyAnswer {
    dataset: DatasetId,
    keys: KeySet,
    implausible: Option<String>,
    rows: Arc<dyn Erased>,
}

impl AnyAnswer {
    pub fn dataset(&self) -> DatasetId {
        self.dataset
    }

    /// The keys it brings (see [`Dataset::keys_of`]).
    pub fn keys(&self) -> KeySet {
        self.keys
    }

    /// Why it cannot be true, if it cannot (see [`Dataset::implausibility`]).
    pub fn implausibility(&self) -> Option<&str> {
        self.implausible.as_deref()
    }

    /// The typed answer, for its own dataset.
    pub fn downcast<A: 'static>(&self) -> Option<&A> {
        self.rows.as_any().downcast_ref()
    }
}

impl PartialEq for AnyAnswer {
    fn eq(&self, other: &Self) -> bool {
        self.dataset == other.dataset && self.rows.same_as(other.rows.as_ref())
    }
}

impl fmt::Debug for AnyAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyAnswer")
            .field("dataset", &self.dataset)
            .field("keys", &self.keys)
            .field("rows", &self.rows)
            .finish()
    }
}

/// A typed answer behind a trait object: comparable, printable.
trait Erased: fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn same_as(&self, other: &dyn Erased) -> bool;
}

impl<T: PartialEq + fmt::Debug + Send + Sync + 'static> Erased for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same_as(&self, other: &dyn Erased) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

impl<D: Dataset> DatasetSpec for D {
    fn id(&self) -> DatasetId {
        Dataset::id(self)
    }

    fn grains(&self) -> &'static [Grain] {
        Dataset::grains(self)
    }

    fn api(&self, grain: Grain) -> Api {
        Dataset::api(self, grain)
    }

    fn request(&self, period: Period) -> serde_json::Value {
        Dataset::request(self, period)
    }

    fn keys(&self, grain: Grain) -> &'static [u8] {
        Dataset::keys(self, grain)
    }

    fn key_expected_at(&self, period: Period, key: u8, timing: Timing) -> DateTime<Utc> {
        Dataset::key_expected_at(self, period, key, timing)
    }

    fn read(
        &self,
        period: Period,
        body: &serde_json::Value,
        as_of: DateTime<Utc>,
    ) -> Result<AnyAnswer, Rejection> {
        let answer = Dataset::read(self, period, body, as_of)?;
        Ok(AnyAnswer {
            dataset: Dataset::id(self),
            keys: self.keys_of(period, &answer, as_of),
            implausible: self.implausibility(&answer),
            rows: Arc::new(answer),
        })
    }

    fn write<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        items: &'a [(&'a AppId, Period, &'a AnyAnswer)],
    ) -> BoxFuture<'a, sqlx::Result<Vec<u64>>> {
        let typed: Option<Vec<Item<'a, D::Answer>>> = items
            .iter()
            .map(|&(appid, period, answer)| Some((appid, period, answer.downcast()?)))
            .collect();
        match typed {
            Some(typed) => Box::pin(async move { Dataset::write(self, conn, &typed).await }),
            None => Box::pin(async move {
                Err(sqlx::Error::Protocol(format!(
                    "an answer of another dataset was handed to {}",
                    Dataset::id(self)
                )))
            }),
        }
    }
}
