//! wxretain keeps Postgres tables of WeChat Mini Program analytics (the
//! datacube: retention first), complete and correct.
//!
//! The pipeline, one module per step:
//! - [`config`]: the TOML file and environment, validated up front;
//! - [`dataset`]: what differs between the datacube's APIs, one file each;
//! - [`planner`]: which `(appid, dataset, grain, period)` are due, by the
//!   maturing rule;
//! - [`store`]: Postgres — the datasets' tables, the ledger, the answer
//!   archive, claims with leases;
//! - [`wechat`]: tokens and the data calls;
//! - [`pass`]: one pass of plan → claim → fetch → read → store, driven by the
//!   daemon, `once`, `backfill` and the tests alike;
//! - [`runtime`]: what a process wires together once for its passes;
//! - [`daemon`]: the passes of `run`, on cron ticks and when a period falls
//!   due between them;
//! - [`clock`]: the host's clock, checked against the database's;
//! - [`replica`]: who holds a lease, and whether a holder still runs;
//! - [`metrics`], [`server`], [`telemetry`]: what operators see;
//! - [`text`]: text from outside made safe where it enters;
//! - [`report`]: the cohort triangle as a table, CSV or JSON;
//! - [`commands`] and [`cli`]: the subcommands;
//! - [`simulator`]: a WeChat stand-in for tests, the demo and the benchmarks.

// The module maps link the private modules they describe: the crate's
// documentation is for its contributors (`cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod credential_file;
pub mod daemon;
pub mod dataset;
pub mod domain;
pub mod metrics;
pub mod pass;
pub mod planner;
pub mod progress;
pub mod replica;
pub mod report;
pub mod runtime;
pub mod server;
pub mod simulator;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod wechat;

#[cfg(test)]
mod architecture;
