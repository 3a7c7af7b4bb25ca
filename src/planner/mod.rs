//! Which periods are due, and when: the kept range, the maturing rule, and
//! planning the ledger.
//!
//! - [`kept`]: the periods a pass keeps, as a pure function of the config
//!   and the instant;
//! - [`rule`]: when a period is due again after an answer or a failure, as a
//!   pure function of what the ledger knows and the instant;
//! - [`plan`]: adding the kept periods the ledger lacks, remembered per
//!   process so most ticks cost nothing.

mod kept;
mod plan;
mod rule;

pub use kept::{kept_periods, oldest_week};
pub use plan::Planner;
pub use rule::{backoff, Before, Rule, Verdict};
