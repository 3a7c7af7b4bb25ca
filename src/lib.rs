//! wxretain keeps a Postgres table of WeChat Mini Program weekly retention.
//!
//! The pipeline, one module per step:
//! - [`config`]: the TOML file and environment, validated up front;
//! - [`clock`]: the host's clock, checked against the database's;
//! - [`planner`]: which `(appid, week)` are due, by the maturing rule;
//! - [`store`]: Postgres — the `weekly_retention` table, the ledger, the raw
//!   answer archive, claims with leases;
//! - [`wechat`]: tokens and the `getWeeklyRetain` call;
//! - [`validate`]: an answer is checked before anything is written;
//! - [`pass`]: one pass of plan → claim → fetch → validate → store, driven by
//!   the scheduler, `once`, `backfill` and the tests alike;
//! - [`scheduler`] and [`wake`]: the daemon's passes, on cron ticks and
//!   when a period falls due between them;
//! - [`replica`]: who holds a lease, and whether a holder still runs;
//! - [`report`]: the cohort triangle as a table, CSV or JSON;
//! - [`simulator`]: a WeChat stand-in for tests, the demo and the benchmark.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod credential_file;
pub mod domain;
pub mod metrics;
pub mod pass;
pub mod planner;
pub mod progress;
pub mod replica;
pub mod report;
pub mod scheduler;
pub mod server;
pub mod simulator;
pub mod store;
pub mod telemetry;
pub mod validate;
pub mod wake;
pub mod wechat;
