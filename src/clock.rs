//! Whose time a pass acts on, and the check that keeps a wrong clock from
//! acting at all.
//!
//! The planner trusts the instant it is given: a host clock eight weeks ahead
//! (an NTP step, a VM restored from a snapshot) would plan periods that have not
//! happened and give up on keys WeChat has not published yet. The database's
//! clock is the second opinion every replica shares: a pass whose host clock
//! disagrees with it by more than `[schedule] max_clock_skew`, or that is asked
//! to act as of an instant the database has not reached, does nothing.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The host's clock. Production reads the system clock; tests play a host
/// whose clock is wrong by an offset.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostClock {
    offset: chrono::Duration,
}

impl HostClock {
    /// The system clock as it is.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clock, wrong by `offset` (positive: ahead).
    pub fn offset_by(offset: chrono::Duration) -> Self {
        Self { offset }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// Why a pass refused to plan or claim anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The host and the database disagree on the time.
    #[error(
        "this host's clock is {} the database's by {}s, more than [schedule] max_clock_skew ({}s): \
         planning and claiming nothing until the clocks agree (check NTP on this host and the database's)",
        if *host_ahead { "ahead of" } else { "behind" },
        skew.as_secs(),
        limit.as_secs()
    )]
    Skewed {
        host_ahead: bool,
        skew: Duration,
        limit: Duration,
    },
    /// `--as-of` names an instant the database's clock has not reached.
    #[error(
        "--as-of {as_of} is later than the database's clock ({database}): \
         a pass cannot act on periods and keys that have not happened yet"
    )]
    AsOfAhead {
        as_of: DateTime<Utc>,
        database: DateTime<Utc>,
    },
}

/// Checks the host's and the pass's instants against the database's.
pub fn check(
    host: DateTime<Utc>,
    database: DateTime<Utc>,
    as_of: DateTime<Utc>,
    limit: Duration,
) -> Result<(), ClockError> {
    let skew = (host - database).abs().to_std().unwrap_or(Duration::MAX);
    if skew > limit {
        return Err(ClockError::Skewed {
            host_ahead: host > database,
            skew,
            limit,
        });
    }
    let tolerance = chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX);
    if as_of > database + tolerance {
        return Err(ClockError::AsOfAhead { as_of, database });
    }
    Ok(())
}

/// Reads the database's clock and [`check`]s this host's and `as_of`
/// against it, recording the skew; a refusal is logged and counted.
pub async fn check_against_database(
    store: &crate::store::Store,
    clock: HostClock,
    as_of: DateTime<Utc>,
    limit: Duration,
) -> anyhow::Result<()> {
    use crate::telemetry::instant;
    let database = store.db_now().await?;
    let host = clock.now();
    metrics::gauge!("wxretain_clock_skew_seconds")
        .set((host - database).num_milliseconds() as f64 / 1000.0);
    check(host, database, as_of, limit).map_err(|e| {
        tracing::error!(error = %e, host = instant(Some(host)), database = instant(Some(database)), as_of = instant(Some(as_of)), "refusing to plan or claim");
        metrics::counter!("wxretain_passes_refused_total", "reason" => "clock").increment(1);
        anyhow::Error::new(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(300);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + secs, 0).expect("valid")
    }

    #[test]
    fn clocks_within_the_limit_pass() {
        assert_eq!(check(at(299), at(0), at(299), LIMIT), Ok(()));
        assert_eq!(check(at(-299), at(0), at(-10_000_000), LIMIT), Ok(()));
    }

    #[test]
    fn a_host_clock_beyond_the_limit_either_way_is_refused() {
        let ahead = check(at(301), at(0), at(301), LIMIT).expect_err("ahead");
        assert!(ahead
            .to_string()
            .contains("ahead of the database's by 301s"));
        let behind = check(at(-3600), at(0), at(-3600), LIMIT).expect_err("behind");
        assert!(behind
            .to_string()
            .contains("behind the database's by 3600s"));
    }

    #[test]
    fn an_as_of_the_database_has_not_reached_is_refused() {
        let e = check(at(0), at(0), at(8 * 7 * 86_400), LIMIT).expect_err("future");
        assert!(matches!(e, ClockError::AsOfAhead { .. }), "{e}");
        assert!(e.to_string().contains("--as-of"));
    }
}
