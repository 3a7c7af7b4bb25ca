//! Which periods are due, and when, as pure functions of the config, what
//! the ledger knows and the instant (planning the ledger itself is
//! [`crate::runtime::Planner`]'s):
//!
//! - [`kept`]: the periods a pass keeps;
//! - [`rule`]: when a period is due again after an answer or a failure.

mod kept;
mod rule;

pub use kept::{kept_periods, oldest_week};
pub use rule::{backoff, Before, Rule, Verdict};
