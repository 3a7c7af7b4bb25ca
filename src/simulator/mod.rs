//! A built-in stand-in for WeChat's token and `getWeeklyRetain` endpoints,
//! served over real HTTP.
//!
//! Collectors are hard to test against the real API: data matures over five
//! weeks, errors are rare and quotas are real. The simulator serves
//! deterministic data ([`truth_value`]) that tests can compare a database
//! against, publishes keys on a movable clock ([`SimClock`]) so weeks pass in
//! milliseconds, injects the failures listed in the API notes ([`Faults`]),
//! and counts every call ([`SimStats`]) so tests can check how hard a
//! collector hit it. It is used by the integration tests, `wxretain simulate`,
//! the demo and the benchmark.

mod clock;
mod config;
mod engine;
mod faults;
mod handle;
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
pub use stats::{SimStats, TokenCalls, WeekCalls};
pub use truth::{publication, truth_answer, truth_value, Publication};
