//! The maturing rule: when a period is due again, as a pure function of what
//! the ledger knows and the clock.
//!
//! A period's data comes in keys, each expected at a time its dataset
//! declares (retention: key k of week W on the Monday after week W+k ends,
//! keys 0 → 4 over five weeks), so a period is fetched once when it ends
//! and once per new key: about five calls over a week's life, not one per
//! pass.
//!
//! A period WeChat never completes is made final by deadline, but never by
//! one pass: the ledger keeps when a pass first found it late (`late_since`),
//! and only attempts spread over `final_grace` from then may give up on it.
//! One pass acting on a wrong instant can then delay a period, never lose
//! its keys.

use crate::config::ScheduleConfig;
use crate::dataset::{Target, Timing};
use crate::domain::{KeySet, NaturalWeek, PeriodState, BEIJING};
use crate::wechat::ErrorClass;
use chrono::{DateTime, Duration, DurationRound, Utc};

/// What the ledger says of a period before an attempt.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    pub state: PeriodState,
    /// Keys stored so far (an answer with fewer never takes them away).
    pub keys: KeySet,
    /// Consecutive attempts that did not bring what was expected.
    pub attempts: i32,
    /// When a pass first found the period late: its last key due and not in.
    pub late_since: Option<DateTime<Utc>>,
}

impl Before {
    /// A period the ledger has just planned.
    pub const FRESH: Before = Before {
        state: PeriodState::Missing,
        keys: KeySet::EMPTY,
        attempts: 0,
        late_since: None,
    };
}

/// The ledger's next word on a period after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub state: PeriodState,
    /// `None`: final, never due again (until a manual backfill).
    pub next_due: Option<DateTime<Utc>>,
    pub attempts: i32,
    /// What the ledger keeps as `late_since`.
    pub late_since: Option<DateTime<Utc>>,
}

/// Where a period stands against its deadline at an attempt.
#[derive(Debug, Clone, Copy)]
struct Lateness {
    /// `late_since` after this attempt.
    since: Option<DateTime<Utc>>,
    /// May be made final by deadline now.
    may_finish: bool,
    /// When it may be, if not now.
    finish_at: Option<DateTime<Utc>>,
}

/// 61501 on a period that ended this long ago (days) means "not served", not "not yet".
const DATE_RANGE_RECENT: i64 = 3;
/// The least time from a period's first late attempt to one that may give
/// up on it, whatever `final_grace` says.
const MIN_LATE_SPREAD: Duration = Duration::days(1);
/// Tries before a period is given up on an answer that may be for good: 61501
/// on an old period, or an errcode wxretain does not know.
const GIVE_UP_TRIES: i32 = 3;
/// The pause between those tries: 6 h, then 12 h, so the last is a day
/// after the first (WeChat's outages pass within hours).
const GIVE_UP_BACKOFF: Backoff = Backoff::new(Duration::hours(6), Duration::hours(24));

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Hour (Beijing) from which a key is expected on its day.
    pub publish_hour: u32,
    /// After the last key's expected time plus this, and attempts spread
    /// over as long, a period is final with what it has.
    pub final_grace: Duration,
}

impl Rule {
    pub fn from_config(schedule: &ScheduleConfig) -> Self {
        Self {
            publish_hour: schedule.publish_hour,
            final_grace: schedule.final_grace,
        }
    }

    /// What the datasets read of the config.
    pub fn timing(&self) -> Timing {
        Timing {
            publish_hour: self.publish_hour,
        }
    }

    /// When key `key` of `target` should be published.
    pub fn key_expected_at(&self, target: Target, key: u8) -> DateTime<Utc> {
        target
            .spec()
            .key_expected_at(target.period, key, self.timing())
    }

    /// When the last key of `target` should be published.
    fn last_key_expected_at(&self, target: Target) -> DateTime<Utc> {
        let last = target.spec().last_key(target.grain());
        self.key_expected_at(target, last)
    }

    /// After this, a period without its last key stops being asked for it.
    pub fn final_deadline(&self, target: Target) -> DateTime<Utc> {
        self.last_key_expected_at(target) + self.final_grace
    }

    /// First time a never-fetched period is worth asking for.
    pub fn first_due(&self, target: Target) -> DateTime<Utc> {
        self.key_expected_at(target, 0)
    }

    /// Whether the period may be made final by deadline at `as_of`: past
    /// its deadline, and late (by the ledger's record) for at least
    /// `final_grace`. A `late_since` after `as_of` was written by a pass
    /// acting on a later instant than this one: it is not evidence, so it
    /// starts again.
    fn lateness(&self, target: Target, before: Before, as_of: DateTime<Utc>) -> Lateness {
        if as_of < self.last_key_expected_at(target) {
            return Lateness {
                since: None,
                may_finish: false,
                finish_at: None,
            };
        }
        let recorded = before.late_since.filter(|s| *s <= as_of);
        let since = recorded.unwrap_or(as_of);
        // However short the grace, giving up needs attempts a day apart at
        // least: a key published half an hour after a first late attempt
        // must still be fetched.
        let spread = self.final_grace.max(MIN_LATE_SPREAD);
        let finish_at = self.final_deadline(target).max(since + spread);
        Lateness {
            since: Some(since),
            // Never by one pass: an earlier attempt must have found it late.
            may_finish: recorded.is_some_and(|s| s < as_of) && as_of >= finish_at,
            finish_at: Some(finish_at),
        }
    }

    /// After a valid answer: `keys` are those it holds together with those
    /// stored before (an answer that lost keys does not erase them).
    pub fn after_answer(
        &self,
        target: Target,
        keys: KeySet,
        before: Before,
        as_of: DateTime<Utc>,
    ) -> Verdict {
        let late = self.lateness(target, before, as_of);
        let Some(next_key) = target
            .spec()
            .keys(target.grain())
            .iter()
            .copied()
            .find(|k| !keys.contains(*k))
        else {
            return final_verdict(PeriodState::Complete);
        };
        if late.may_finish {
            return final_verdict(if keys.is_empty() {
                PeriodState::Unavailable
            } else {
                PeriodState::Complete
            });
        }
        if keys.is_empty() {
            // An empty answer: WeChat has nothing for the period (yet).
            return self.late_retry(PeriodState::NotReady, before, as_of, late, HOURLY);
        }
        let expected = self.key_expected_at(target, next_key);
        if as_of < expected {
            return Verdict {
                state: PeriodState::Maturing,
                next_due: Some(expected),
                attempts: 0,
                late_since: late.since,
            };
        }
        // The key is late: come back with a growing pause.
        self.late_retry(PeriodState::Maturing, before, as_of, late, HOURLY)
    }

    /// After a failed attempt of class `class`.
    pub fn after_failure(
        &self,
        target: Target,
        class: ErrorClass,
        before: Before,
        as_of: DateTime<Utc>,
    ) -> Verdict {
        let has_keys = !before.keys.is_empty();
        let kept_or = |fallback: PeriodState| {
            if has_keys {
                PeriodState::Maturing
            } else {
                fallback
            }
        };
        let late = self.lateness(target, before, as_of);
        match class {
            // Not computed yet, or the period just ended: bounded by the
            // deadline like a late key.
            ErrorClass::NotReady => {
                if late.may_finish {
                    return final_verdict(if has_keys {
                        PeriodState::Complete
                    } else {
                        PeriodState::Unavailable
                    });
                }
                self.late_retry(kept_or(PeriodState::NotReady), before, as_of, late, HOURLY)
            }
            ErrorClass::DateRange => {
                let recent = as_of < target.period.ends_at() + Duration::days(DATE_RANGE_RECENT);
                if recent {
                    self.late_retry(kept_or(PeriodState::NotReady), before, as_of, late, HOURLY)
                } else if before.attempts + 1 >= GIVE_UP_TRIES {
                    Verdict {
                        attempts: before.attempts + 1,
                        ..final_verdict(if has_keys {
                            PeriodState::Complete
                        } else {
                            PeriodState::Unavailable
                        })
                    }
                } else {
                    self.late_retry(PeriodState::Failing, before, as_of, late, GIVE_UP_BACKOFF)
                }
            }
            // Not known to pass by itself: a few tries, then failing for
            // good (what it has stays stored; a manual backfill asks again).
            ErrorClass::Unknown => {
                if before.attempts + 1 >= GIVE_UP_TRIES {
                    Verdict {
                        state: PeriodState::Failing,
                        next_due: None,
                        attempts: before.attempts + 1,
                        late_since: late.since,
                    }
                } else {
                    self.late_retry(PeriodState::Failing, before, as_of, late, GIVE_UP_BACKOFF)
                }
            }
            // Failures that say nothing about the period: retried, until
            // it would have been given up anyway. What it has is kept
            // (`complete`); one that has nothing stays `failing`, not due
            // again by itself (a manual backfill asks again).
            ErrorClass::Transient | ErrorClass::Token => {
                if late.may_finish {
                    return Verdict {
                        state: if has_keys {
                            PeriodState::Complete
                        } else {
                            PeriodState::Failing
                        },
                        next_due: None,
                        attempts: before.attempts + 1,
                        late_since: late.since,
                    };
                }
                self.late_retry(
                    PeriodState::Failing,
                    before,
                    as_of,
                    late,
                    Backoff::new(Duration::minutes(5), Duration::hours(6)),
                )
            }
            // Quotas, and a call held back by one, say nothing about the
            // period: keep its state and attempts.
            ErrorClass::MinuteQuota | ErrorClass::Paused => Verdict {
                state: before.state,
                next_due: Some(next_minute(as_of)),
                attempts: before.attempts,
                late_since: before.late_since,
            },
            ErrorClass::DailyQuota => Verdict {
                state: before.state,
                next_due: Some(next_beijing_day(as_of)),
                attempts: before.attempts,
                late_since: before.late_since,
            },
            // A broken setup is retried for as long as it lasts: once it is
            // fixed, the periods come in by themselves.
            ErrorClass::Config => Verdict {
                late_since: before.late_since,
                ..self.later(
                    PeriodState::Failing,
                    before.attempts,
                    as_of,
                    Backoff::new(Duration::hours(1), Duration::hours(6)),
                )
            },
            // Our own request is wrong: asking again cannot help. A manual
            // backfill (after an upgrade) marks it due again.
            ErrorClass::Bug => Verdict {
                state: PeriodState::Failing,
                next_due: None,
                attempts: before.attempts + 1,
                late_since: before.late_since,
            },
        }
    }

    /// Due again after a growing pause, but not after the period may be made
    /// final: the last attempt lands when the deadline allows giving up.
    fn late_retry(
        &self,
        state: PeriodState,
        before: Before,
        as_of: DateTime<Utc>,
        late: Lateness,
        backoff: Backoff,
    ) -> Verdict {
        let mut verdict = self.later(state, before.attempts, as_of, backoff);
        if let (Some(due), Some(finish_at)) = (verdict.next_due, late.finish_at) {
            verdict.next_due = Some(due.min(finish_at));
        }
        verdict.late_since = late.since;
        verdict
    }

    fn later(
        &self,
        state: PeriodState,
        attempts: i32,
        as_of: DateTime<Utc>,
        pause: Backoff,
    ) -> Verdict {
        Verdict {
            state,
            next_due: Some(as_of + backoff(pause.base, attempts, pause.cap)),
            attempts: attempts + 1,
            late_since: None,
        }
    }
}

/// A pause that doubles with each attempt, from `base` up to `cap`.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }
}

/// Not computed yet, or a key late: an hour, doubling up to 12 h.
const HOURLY: Backoff = Backoff {
    base: Duration::hours(1),
    cap: Duration::hours(12),
};

fn final_verdict(state: PeriodState) -> Verdict {
    Verdict {
        state,
        next_due: None,
        attempts: 0,
        late_since: None,
    }
}

/// `base · 2^attempts`, at most `cap`.
pub fn backoff(base: Duration, attempts: i32, cap: Duration) -> Duration {
    let factor = 1i32 << attempts.clamp(0, 16);
    (base * factor).min(cap)
}

fn next_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap_or(t) + Duration::minutes(1)
}

fn next_beijing_day(t: DateTime<Utc>) -> DateTime<Utc> {
    let today = t.with_timezone(&BEIJING).date_naive();
    let week = NaturalWeek::containing(today);
    week.local_instant((today - week.monday()).num_days() + 1, 0, BEIJING)
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
