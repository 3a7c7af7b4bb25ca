//! The maturing rule: when a week is due again, as a pure function of what
//! the ledger knows and the clock.
//!
//! WeChat publishes key k of week W on the Monday after week W+k ends (keys
//! grow 0 → 4 over five weeks), so a week is fetched once when it ends and
//! once per new key: about five calls over its life, not one per pass.

use crate::config::ScheduleConfig;
use crate::domain::{NaturalWeek, BEIJING, MAX_KEY};
use crate::wechat::ErrorClass;
use chrono::{DateTime, Duration, DurationRound, Utc};

/// A week's state in the ledger (`retention_ledger.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeekState {
    /// Never fetched successfully.
    Missing,
    /// Has some keys; later keys are still to come.
    Maturing,
    /// Final: key 4 is in, or its grace period is over.
    Complete,
    /// WeChat has not computed the week yet (61503, an empty answer).
    NotReady,
    /// The last attempt failed; due again after a backoff.
    Failing,
    /// Final: WeChat refuses to serve the week (61501 on an old week).
    Unavailable,
}

impl WeekState {
    pub const ALL: [WeekState; 6] = [
        WeekState::Missing,
        WeekState::Maturing,
        WeekState::Complete,
        WeekState::NotReady,
        WeekState::Failing,
        WeekState::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WeekState::Missing => "missing",
            WeekState::Maturing => "maturing",
            WeekState::Complete => "complete",
            WeekState::NotReady => "not_ready",
            WeekState::Failing => "failing",
            WeekState::Unavailable => "unavailable",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What the ledger says of a week before an attempt.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    pub state: WeekState,
    pub has_keys: bool,
    /// Consecutive attempts that did not bring what was expected.
    pub attempts: i32,
}

/// The ledger's next word on a week after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub state: WeekState,
    /// `None`: final, never due again (until a manual backfill).
    pub next_due: Option<DateTime<Utc>>,
    pub attempts: i32,
}

/// 61501 on a week that ended this long ago means "not served", not "not yet".
const DATE_RANGE_RECENT: i64 = 3;
/// Tries before an old week that keeps answering 61501 is given up.
const DATE_RANGE_TRIES: i32 = 3;

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Hour (Beijing) from which a key is expected on its Monday.
    pub publish_hour: u32,
    /// After key 4's expected time plus this, a week is final with what it has.
    pub final_grace: Duration,
}

impl Rule {
    pub fn from_config(schedule: &ScheduleConfig) -> Self {
        Self {
            publish_hour: schedule.publish_hour,
            final_grace: schedule.final_grace,
        }
    }

    /// When key `key` of `week` should be published.
    pub fn key_expected_at(&self, week: NaturalWeek, key: u8) -> DateTime<Utc> {
        week.local_instant(7 * (i64::from(key) + 1), self.publish_hour, BEIJING)
    }

    /// After this, a week without key 4 stops being asked for it.
    pub fn final_deadline(&self, week: NaturalWeek) -> DateTime<Utc> {
        self.key_expected_at(week, MAX_KEY) + self.final_grace
    }

    /// First time a never-fetched week is worth asking for.
    pub fn first_due(&self, week: NaturalWeek) -> DateTime<Utc> {
        self.key_expected_at(week, 0)
    }

    /// After a valid answer holding `keys` (keys present in both series).
    pub fn after_answer(
        &self,
        week: NaturalWeek,
        keys: &[u8],
        before: Before,
        as_of: DateTime<Utc>,
    ) -> Verdict {
        let past_deadline = as_of >= self.final_deadline(week);
        let Some(next_key) = (0..=MAX_KEY).find(|k| !keys.contains(k)) else {
            return final_verdict(WeekState::Complete);
        };
        if keys.is_empty() {
            // An empty answer: WeChat has nothing for the week (yet).
            if past_deadline {
                return final_verdict(WeekState::Unavailable);
            }
            return self.later(
                WeekState::NotReady,
                before.attempts,
                as_of,
                Duration::hours(1),
                Duration::hours(12),
            );
        }
        if past_deadline {
            return final_verdict(WeekState::Complete);
        }
        let expected = self.key_expected_at(week, next_key);
        if as_of < expected {
            return Verdict {
                state: WeekState::Maturing,
                next_due: Some(expected),
                attempts: 0,
            };
        }
        // The key is late: come back with a growing pause, but not past the deadline.
        let mut verdict = self.later(
            WeekState::Maturing,
            before.attempts,
            as_of,
            Duration::hours(1),
            Duration::hours(12),
        );
        verdict.next_due = verdict.next_due.map(|d| d.min(self.final_deadline(week)));
        verdict
    }

    /// After a failed attempt of class `class`.
    pub fn after_failure(
        &self,
        week: NaturalWeek,
        class: ErrorClass,
        before: Before,
        as_of: DateTime<Utc>,
    ) -> Verdict {
        let kept_or = |fallback: WeekState| {
            if before.has_keys {
                WeekState::Maturing
            } else {
                fallback
            }
        };
        match class {
            ErrorClass::NotReady => self.later(
                kept_or(WeekState::NotReady),
                before.attempts,
                as_of,
                Duration::hours(1),
                Duration::hours(12),
            ),
            ErrorClass::DateRange => {
                let recent = as_of < week.ends_at(BEIJING) + Duration::days(DATE_RANGE_RECENT);
                if recent {
                    self.later(
                        kept_or(WeekState::NotReady),
                        before.attempts,
                        as_of,
                        Duration::hours(1),
                        Duration::hours(12),
                    )
                } else if before.attempts + 1 >= DATE_RANGE_TRIES {
                    Verdict {
                        attempts: before.attempts + 1,
                        ..final_verdict(if before.has_keys {
                            WeekState::Complete
                        } else {
                            WeekState::Unavailable
                        })
                    }
                } else {
                    self.later(
                        WeekState::Failing,
                        before.attempts,
                        as_of,
                        Duration::hours(6),
                        Duration::hours(24),
                    )
                }
            }
            ErrorClass::Transient | ErrorClass::Token => self.later(
                WeekState::Failing,
                before.attempts,
                as_of,
                Duration::minutes(5),
                Duration::hours(6),
            ),
            // Quotas say nothing about the week: keep its state and attempts.
            ErrorClass::MinuteQuota => Verdict {
                state: before.state,
                next_due: Some(next_minute(as_of)),
                attempts: before.attempts,
            },
            ErrorClass::DailyQuota => Verdict {
                state: before.state,
                next_due: Some(next_beijing_day(as_of)),
                attempts: before.attempts,
            },
            ErrorClass::Config => self.later(
                WeekState::Failing,
                before.attempts,
                as_of,
                Duration::hours(1),
                Duration::hours(6),
            ),
            // Our own request is wrong: asking again cannot help. A manual
            // backfill (after an upgrade) marks it due again.
            ErrorClass::Bug => Verdict {
                state: WeekState::Failing,
                next_due: None,
                attempts: before.attempts + 1,
            },
        }
    }

    fn later(
        &self,
        state: WeekState,
        attempts: i32,
        as_of: DateTime<Utc>,
        base: Duration,
        cap: Duration,
    ) -> Verdict {
        Verdict {
            state,
            next_due: Some(as_of + backoff(base, attempts, cap)),
            attempts: attempts + 1,
        }
    }
}

fn final_verdict(state: WeekState) -> Verdict {
    Verdict {
        state,
        next_due: None,
        attempts: 0,
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
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule() -> Rule {
        Rule {
            publish_hour: 10,
            final_grace: Duration::days(14),
        }
    }

    fn week() -> NaturalWeek {
        NaturalWeek::parse_monday("20261102").expect("monday")
    }

    fn beijing(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        BEIJING
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid")
            .with_timezone(&Utc)
    }

    const FRESH: Before = Before {
        state: WeekState::Missing,
        has_keys: false,
        attempts: 0,
    };

    #[test]
    fn key_k_is_expected_on_the_monday_after_week_w_plus_k() {
        assert_eq!(rule().key_expected_at(week(), 0), beijing(2026, 11, 9, 10));
        assert_eq!(rule().key_expected_at(week(), 1), beijing(2026, 11, 16, 10));
        assert_eq!(rule().key_expected_at(week(), 4), beijing(2026, 12, 7, 10));
    }

    #[test]
    fn an_on_time_answer_waits_for_the_next_key() {
        let v = rule().after_answer(week(), &[0], FRESH, beijing(2026, 11, 9, 10));
        assert_eq!(v.state, WeekState::Maturing);
        assert_eq!(v.next_due, Some(beijing(2026, 11, 16, 10)));
    }

    #[test]
    fn key_four_makes_a_week_final() {
        let v = rule().after_answer(week(), &[0, 1, 2, 3, 4], FRESH, beijing(2026, 12, 7, 10));
        assert_eq!((v.state, v.next_due), (WeekState::Complete, None));
    }

    #[test]
    fn a_late_key_backs_off_then_gives_up_at_the_deadline() {
        let before = Before {
            state: WeekState::Maturing,
            has_keys: true,
            attempts: 0,
        };
        let at = beijing(2026, 11, 16, 10);
        let v = rule().after_answer(week(), &[0], before, at);
        assert_eq!(v.next_due, Some(at + Duration::hours(1)));
        let v2 = rule().after_answer(
            week(),
            &[0],
            Before {
                attempts: v.attempts,
                ..before
            },
            at + Duration::hours(1),
        );
        assert_eq!(v2.next_due, Some(at + Duration::hours(3)));
        let v3 = rule().after_answer(week(), &[0, 1, 2, 3], before, rule().final_deadline(week()));
        assert_eq!((v3.state, v3.next_due), (WeekState::Complete, None));
    }

    #[test]
    fn old_weeks_answering_61501_become_unavailable_after_a_few_tries() {
        let at = beijing(2026, 11, 30, 12);
        let mut before = FRESH;
        for _ in 0..DATE_RANGE_TRIES - 1 {
            let v = rule().after_failure(week(), ErrorClass::DateRange, before, at);
            assert!(v.next_due.is_some());
            before.attempts = v.attempts;
        }
        let v = rule().after_failure(week(), ErrorClass::DateRange, before, at);
        assert_eq!((v.state, v.next_due), (WeekState::Unavailable, None));
        // ...but a week that only just ended is simply not ready.
        let v = rule().after_failure(
            week(),
            ErrorClass::DateRange,
            before,
            beijing(2026, 11, 9, 1),
        );
        assert_eq!(v.state, WeekState::NotReady);
    }

    #[test]
    fn quotas_wait_for_the_next_minute_or_beijing_day() {
        let at = BEIJING
            .with_ymd_and_hms(2026, 11, 9, 23, 59, 30)
            .single()
            .expect("valid")
            .with_timezone(&Utc);
        let v = rule().after_failure(week(), ErrorClass::MinuteQuota, FRESH, at);
        assert_eq!(v.next_due, Some(beijing(2026, 11, 10, 0)));
        let v = rule().after_failure(
            week(),
            ErrorClass::DailyQuota,
            FRESH,
            beijing(2026, 11, 9, 11),
        );
        assert_eq!(v.next_due, Some(beijing(2026, 11, 10, 0)));
        let v = rule().after_failure(
            week(),
            ErrorClass::DailyQuota,
            FRESH,
            beijing(2026, 11, 15, 23),
        );
        assert_eq!(v.next_due, Some(beijing(2026, 11, 16, 0)));
    }

    #[test]
    fn our_bugs_are_never_retried_by_themselves() {
        let v = rule().after_failure(week(), ErrorClass::Bug, FRESH, beijing(2026, 11, 9, 11));
        assert_eq!((v.state, v.next_due), (WeekState::Failing, None));
    }
}
