//! Why an answer was refused: stored with the body in `rejected_answers`
//! and in the ledger's `last_error`, so it names exactly what was wrong.

use crate::domain::{Grain, Metric};

/// Why an answer was refused. What WeChat sent is quoted cut short and
/// with its control characters escaped: it goes into logs and `status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("ref_date is missing or not a string")]
    NoRefDate,
    #[error("ref_date {got:?} is not the period asked for ({wanted})")]
    WrongPeriod { got: String, wanted: String },
    #[error("{0} is missing or not an array")]
    MissingSeries(Metric),
    #[error("{metric}[{index}] is not an object with integer key and value")]
    BadEntry { metric: Metric, index: usize },
    #[error("{metric}[{index}].key {key} is not a {grain} key ({keys:?})")]
    KeyOutOfRange {
        metric: Metric,
        index: usize,
        key: i64,
        grain: Grain,
        keys: &'static [u8],
    },
    #[error("{metric} has key {key} twice")]
    DuplicateKey { metric: Metric, key: u8 },
    #[error("{metric} key {key}: value {value} is not a non-negative integer that fits i64")]
    BadValue {
        metric: Metric,
        key: u8,
        value: String,
    },
    /// Anything else a dataset refuses, said in its own words.
    #[error("{0}")]
    Invalid(String),
}

/// At most this many characters of a value WeChat sent are quoted.
const QUOTED: usize = 40;

/// `text` cut to [`QUOTED`] characters, for a rejection's message.
pub fn quoted(text: &str) -> String {
    crate::text::printable(&text.chars().take(QUOTED).collect::<String>())
}
