//! The daemon: a pass at start-up, one per cron tick, and one whenever a
//! period falls due between ticks (see [`wake`]); never two at once.

mod gauges;
mod wake;

use crate::pass::{run_pass, PassOptions};
use crate::runtime::Runtime;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown` fires, then lets the pass in flight finish, waiting
/// for it at most `[schedule] drain_timeout_secs`.
pub async fn run(p: Arc<Runtime>, shutdown: CancellationToken) -> anyhow::Result<()> {
    wait_for_database(&p, &shutdown).await?;
    if shutdown.is_cancelled() {
        return Ok(());
    }
    if let Err(e) = p.sync_apps().await {
        tracing::warn!(
            error = format!("{e:#}"),
            "could not record the configured apps in the apps table; the next start tries again"
        );
    }
    // tokio-cron-scheduler starts a tick even while the last one runs: this
    // gate makes a tick that finds a pass in flight skip instead of overlap.
    let gate = Arc::new(Mutex::new(()));
    // Told at the end of every pass, so the waker reads the due times the
    // pass just wrote (a quota pause, a late key) instead of stale ones.
    let pass_done = Arc::new(Notify::new());
    let mut scheduler = JobScheduler::new().await?;
    let tz = p.config.schedule.timezone;
    let cron = p.config.schedule.cron.clone();
    let job = {
        let (p, gate, shutdown, done) =
            (p.clone(), gate.clone(), shutdown.clone(), pass_done.clone());
        Job::new_async_tz(cron.as_str(), tz, move |_id, _sched| {
            let (p, gate, shutdown, done) =
                (p.clone(), gate.clone(), shutdown.clone(), done.clone());
            Box::pin(async move { tick(&p, &gate, &shutdown, &done, "cron").await })
        })
        .map_err(|e| anyhow::anyhow!("schedule.cron {cron:?}: {e}"))?
    };
    scheduler.add(job).await?;
    scheduler.start().await?;
    tracing::info!(cron = %p.config.schedule.cron, timezone = %tz, apps = p.config.apps.len(), "scheduler started");
    // Periods missed while the daemon was down are due now: fetch them at once,
    // in a task like a cron tick's, so that a stop during it is drained within
    // the same bound instead of waiting for the whole pass.
    {
        let (p, gate, shutdown, done) =
            (p.clone(), gate.clone(), shutdown.clone(), pass_done.clone());
        tokio::spawn(async move { tick(&p, &gate, &shutdown, &done, "start-up").await });
    }
    // Between ticks: a pass when the earliest due period falls due.
    let waker = tokio::spawn(wake::wake_when_due(
        p.clone(),
        gate.clone(),
        shutdown.clone(),
        pass_done,
    ));
    shutdown.cancelled().await;
    tracing::info!("shutting down: no new work; waiting for periods in flight");
    let drain = p.config.schedule.drain_timeout;
    let drained = tokio::time::timeout(drain, async {
        let _ = scheduler.shutdown().await;
        let _ = waker.await;
        let _ = gate.lock().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("a pass did not finish within {drain:?}; its periods will be taken again when their leases end");
    }
    Ok(())
}

async fn tick(
    p: &Runtime,
    gate: &Mutex<()>,
    shutdown: &CancellationToken,
    done: &Notify,
    why: &str,
) {
    let Ok(held) = gate.try_lock() else {
        tracing::info!(why, "previous pass still running; skipping this tick");
        return;
    };
    if shutdown.is_cancelled() {
        return;
    }
    pass(p, shutdown, why, true).await;
    drop(held);
    done.notify_one();
}

/// One pass over every configured app, logged; the caller holds the gate.
/// `plan`: add the periods the ledger lacks first and refresh the per-state
/// gauges (ticks do; a wake-up only fetches what is due, and may come every
/// few seconds, too often for a count over the whole ledger). False when
/// the pass failed.
async fn pass(p: &Runtime, shutdown: &CancellationToken, why: &str, plan: bool) -> bool {
    let as_of = p.clock.now();
    let opts = PassOptions {
        as_of,
        scope: p.kept_scope(as_of),
        plan,
    };
    let started = std::time::Instant::now();
    let done = match run_pass(p, &opts, shutdown, None).await {
        Ok(r) => {
            metrics::gauge!("wxretain_last_successful_pass_timestamp_seconds")
                .set(Utc::now().timestamp() as f64);
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            // A wake-up another replica beat to the work did nothing: not news.
            let news = plan || r.attempted + r.deferred > 0;
            // One numeric field per count, for log shippers to sum and alert on.
            macro_rules! pass_done {
                ($level:ident) => {
                    tracing::$level!(
                        why,
                        elapsed_ms,
                        planned = r.planned,
                        attempted = r.attempted,
                        stored = r.stored,
                        rows_written = r.rows_written,
                        not_ready = r.not_ready,
                        failed = r.failed,
                        rejected = r.rejected,
                        deferred = r.deferred,
                        unsaved = r.unsaved,
                        lease_lost = r.lease_lost,
                        "pass done"
                    )
                };
            }
            if news {
                pass_done!(info);
            } else {
                pass_done!(debug);
            }
            true
        }
        Err(e) => {
            tracing::error!(
                why,
                error = %crate::telemetry::describe(&e),
                "pass failed; the next tick tries again"
            );
            false
        }
    };
    if plan {
        gauges::update_period_gauges(&p.store, &p.all_apps().apps).await;
    }
    done
}

/// Start-up with the database down waits for it instead of crashing; a
/// database that does not exist is created, as `migrate` would. Only a
/// database the server refuses to create ends the wait (and the daemon).
async fn wait_for_database(p: &Runtime, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let mut pause = Duration::from_secs(1);
    loop {
        // Migrations wait for any other session holding their lock (another
        // replica migrating, a stuck one): a stop request must not.
        let migrated = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            migrated = p.store.migrate() => migrated,
        };
        let schema = match migrated {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match schema.downcast_ref::<crate::store::SchemaError>() {
            Some(crate::store::SchemaError::NoDatabase(_)) => {
                match crate::store::Store::create_database_if_missing(&p.config.database.url).await
                {
                    Ok(()) => continue,
                    Err(e) if refused_by_server(&e) => {
                        return Err(e.context("the database does not exist and could not be created: create it, or run `wxretain migrate` as a role that may"));
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::telemetry::describe(&e), retry_in_secs = pause.as_secs(), "cannot reach the database server to create the database; waiting");
                    }
                }
            }
            Some(schema) if !schema.is_unreachable() => {
                tracing::error!(error = %schema, retry_in_secs = pause.as_secs(), "the database's schema is not one this release can use; waiting (see /readyz)");
            }
            _ => {
                tracing::warn!(error = %crate::telemetry::describe(&schema), retry_in_secs = pause.as_secs(), "cannot reach the database; waiting");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// The server answered, with a refusal (no CREATEDB, no access to the
/// `postgres` database): waiting will not change it.
fn refused_by_server(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(|e| e.as_database_error().is_some())
    })
}
