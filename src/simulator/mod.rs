//! A built-in stand-in for WeChat's token endpoints and its retention family
//! (`getDailyRetain`, `getWeeklyRetain`, `getMonthlyRetain`), served over
//! real HTTP with the same tokens, faults, per-API quotas and clock.
//!
//! Collectors are hard to test against the real API: data matures over weeks
//! or months, errors are rare and quotas are real. The simulator serves
//! deterministic data ([`truth_value_of`]) that tests can compare a database
//! against, publishes keys on a movable clock ([`SimClock`]) so periods pass in
//! milliseconds, injects the failures listed in the API notes ([`Faults`]),
//! and counts every call ([`SimStats`]) so tests can check how hard a
//! collector hit it. It is used by the integration tests, `wxretain simulate`,
//! the demo and the benchmark.

mod clock;
mod config;
mod engine;
mod faults;
mod handle;
mod publish;
mod quota;
mod request;
mod server;
mod stats;
mod tokens;
mod truth;

pub use clock::SimClock;
pub use config::{SimArgs, SimConfig};
pub use faults::Faults;
pub use handle::{serve_until_ctrl_c, sim_appid, Simulator, SimulatorHandle};
pub use publish::{publication, publication_of, Publication};
pub use stats::{PeriodCalls, SimStats, TokenCalls, WeekCalls};
pub use truth::{truth_answer, truth_answer_of, truth_value, truth_value_of};
