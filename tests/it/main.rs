//! The integration tests, as one binary: a change in src/ relinks one test
//! executable, not one per file. Each module below was a tests/*.rs file of
//! its own; `cargo test --test it MODULE::` runs one of them.

mod common;
mod operator;

mod apps_registry;
mod backfill_rerun;
mod cli;
mod daemon;
mod daemon_wake;
mod deploy;
mod deploy_host;
mod failure_classes;
mod family;
mod faults;
mod hardening;
mod hardening_config;
mod hardening_round3;
mod hardening_sources;
mod hardening_wechat;
mod ledger;
mod operator_logs;
mod operator_metrics;
mod operator_status;
mod pipeline;
mod rate_limit;
mod readme;
mod replicas;
mod replicas_one_host;
mod run_process;
mod simulator;
mod simulator_family;
mod token_file;
mod views;
mod views_family;
