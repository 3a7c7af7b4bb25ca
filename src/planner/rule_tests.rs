//! Tests of the module around this file.

use super::*;
use chrono::TimeZone;

fn rule() -> Rule {
    Rule {
        publish_hour: 10,
        final_grace: Duration::days(14),
    }
}

fn week() -> Target {
    let week = NaturalWeek::parse_monday("20261102").expect("monday");
    Target::new(crate::dataset::DatasetId::Retention, week.into())
}

fn beijing(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    BEIJING
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid")
        .with_timezone(&Utc)
}

const FRESH: Before = Before::FRESH;

fn keys(k: &[u8]) -> KeySet {
    KeySet::of(k.iter().copied())
}

#[test]
fn key_k_is_expected_on_the_monday_after_week_w_plus_k() {
    assert_eq!(rule().key_expected_at(week(), 0), beijing(2026, 11, 9, 10));
    assert_eq!(rule().key_expected_at(week(), 1), beijing(2026, 11, 16, 10));
    assert_eq!(rule().key_expected_at(week(), 4), beijing(2026, 12, 7, 10));
}

#[test]
fn an_on_time_answer_waits_for_the_next_key() {
    let v = rule().after_answer(week(), keys(&[0]), FRESH, beijing(2026, 11, 9, 10));
    assert_eq!(v.state, PeriodState::Maturing);
    assert_eq!(v.next_due, Some(beijing(2026, 11, 16, 10)));
}

#[test]
fn key_four_makes_a_week_final() {
    let v = rule().after_answer(
        week(),
        keys(&[0, 1, 2, 3, 4]),
        FRESH,
        beijing(2026, 12, 7, 10),
    );
    assert_eq!((v.state, v.next_due), (PeriodState::Complete, None));
}

fn maturing(attempts: i32, late_since: Option<DateTime<Utc>>) -> Before {
    Before {
        state: PeriodState::Maturing,
        keys: keys(&[0]),
        attempts,
        late_since,
    }
}

#[test]
fn a_late_key_backs_off() {
    let at = beijing(2026, 11, 16, 10);
    let v = rule().after_answer(week(), keys(&[0]), maturing(0, None), at);
    assert_eq!(v.next_due, Some(at + Duration::hours(1)));
    let v2 = rule().after_answer(
        week(),
        keys(&[0]),
        maturing(v.attempts, None),
        at + Duration::hours(1),
    );
    assert_eq!(v2.next_due, Some(at + Duration::hours(3)));
}

#[test]
fn a_week_is_given_up_by_deadline_only_after_attempts_spread_over_the_grace() {
    let key4 = rule().key_expected_at(week(), 4);
    let deadline = rule().final_deadline(week());
    // The first late attempt, a few minutes after key 4 was due, starts the record.
    let first = key4 + Duration::minutes(7);
    let v = rule().after_answer(week(), keys(&[0, 1, 2, 3]), maturing(0, None), first);
    assert_eq!(v.late_since, Some(first));
    // At the deadline the record is 7 minutes short of the grace: once more, then.
    let v = rule().after_answer(
        week(),
        keys(&[0, 1, 2, 3]),
        maturing(5, v.late_since),
        deadline,
    );
    assert_eq!(v.state, PeriodState::Maturing);
    assert_eq!(v.next_due, Some(first + Duration::days(14)));
    let v = rule().after_answer(
        week(),
        keys(&[0, 1, 2, 3]),
        maturing(6, v.late_since),
        first + Duration::days(14),
    );
    assert_eq!((v.state, v.next_due), (PeriodState::Complete, None));
}

#[test]
fn one_pass_far_past_the_deadline_cannot_make_a_week_final() {
    // A pass acting eight weeks ahead (a wrong clock, --as-of) finds keys
    // 0..3: it starts the record and comes back a grace later.
    let far = rule().final_deadline(week()) + Duration::weeks(8);
    let v = rule().after_answer(week(), keys(&[0, 1, 2, 3]), maturing(0, None), far);
    assert_eq!(v.state, PeriodState::Maturing);
    assert_eq!(v.late_since, Some(far));
    let v = rule().after_answer(week(), KeySet::EMPTY, FRESH, far);
    assert_eq!(v.state, PeriodState::NotReady);
    let v = rule().after_failure(week(), ErrorClass::NotReady, FRESH, far);
    assert!(v.next_due.is_some(), "{v:?}");
    // A record written by a pass acting later than this one is no evidence.
    let now = rule().key_expected_at(week(), 4) + Duration::hours(1);
    let v = rule().after_answer(week(), keys(&[0, 1, 2, 3]), maturing(3, Some(far)), now);
    assert_eq!(v.late_since, Some(now));
    assert_eq!(v.state, PeriodState::Maturing);
}

#[test]
fn an_answer_that_lost_keys_does_not_make_a_week_not_ready() {
    // The pass hands the planner the union of stored and answered keys.
    let at = beijing(2026, 11, 16, 12);
    let held = keys(&[0, 1]).union(KeySet::EMPTY);
    let v = rule().after_answer(week(), held, maturing(0, None), at);
    assert_eq!(v.state, PeriodState::Maturing);
}

#[test]
fn transient_failures_and_61503_end_by_deadline_not_never() {
    let key4 = rule().key_expected_at(week(), 4);
    let late = Some(key4);
    let done = key4 + Duration::days(14);
    let no_keys = Before {
        late_since: late,
        ..FRESH
    };
    let v = rule().after_failure(week(), ErrorClass::Transient, no_keys, done);
    assert_eq!((v.state, v.next_due), (PeriodState::Failing, None));
    let v = rule().after_failure(week(), ErrorClass::Transient, maturing(9, late), done);
    assert_eq!((v.state, v.next_due), (PeriodState::Complete, None));
    let v = rule().after_failure(week(), ErrorClass::NotReady, no_keys, done);
    assert_eq!((v.state, v.next_due), (PeriodState::Unavailable, None));
    // ...but a day earlier they are still retried.
    let v = rule().after_failure(
        week(),
        ErrorClass::Transient,
        no_keys,
        done - Duration::days(1),
    );
    assert!(v.next_due.is_some_and(|d| d <= done), "{v:?}");
}

#[test]
fn old_weeks_answering_61501_become_unavailable_after_a_few_tries() {
    let at = beijing(2026, 11, 30, 12);
    let mut before = FRESH;
    for _ in 0..GIVE_UP_TRIES - 1 {
        let v = rule().after_failure(week(), ErrorClass::DateRange, before, at);
        assert!(v.next_due.is_some());
        before.attempts = v.attempts;
    }
    let v = rule().after_failure(week(), ErrorClass::DateRange, before, at);
    assert_eq!((v.state, v.next_due), (PeriodState::Unavailable, None));
    // ...but a week that only just ended is simply not ready.
    let v = rule().after_failure(
        week(),
        ErrorClass::DateRange,
        before,
        beijing(2026, 11, 9, 1),
    );
    assert_eq!(v.state, PeriodState::NotReady);
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
fn unknown_errcodes_are_tried_three_times_a_day_apart_then_left_failing() {
    // A week just ended, far from its deadline, with nothing stored, and
    // one with keys: neither is asked again forever.
    let start = beijing(2026, 11, 9, 11);
    for before in [FRESH, maturing(0, None)] {
        let (mut before, mut at, mut pauses) = (before, start, Vec::new());
        for _ in 0..GIVE_UP_TRIES - 1 {
            let v = rule().after_failure(week(), ErrorClass::Unknown, before, at);
            assert_eq!(v.state, PeriodState::Failing);
            let due = v.next_due.expect("tried again");
            pauses.push((due - at).num_hours());
            (before.attempts, at) = (v.attempts, due);
        }
        assert_eq!(pauses, [6, 12], "{before:?}");
        let v = rule().after_failure(week(), ErrorClass::Unknown, before, at);
        assert_eq!(
            (v.state, v.next_due),
            (PeriodState::Failing, None),
            "{before:?}"
        );
        assert_eq!(v.attempts, GIVE_UP_TRIES);
    }
}

#[test]
fn our_bugs_are_never_retried_by_themselves() {
    let v = rule().after_failure(week(), ErrorClass::Bug, FRESH, beijing(2026, 11, 9, 11));
    assert_eq!((v.state, v.next_due), (PeriodState::Failing, None));
}

#[test]
fn no_grace_gives_up_in_one_pass_nor_within_a_day_of_the_first_late_attempt() {
    for grace_days in [0, 1] {
        let rule = Rule {
            publish_hour: 10,
            final_grace: Duration::days(grace_days),
        };
        let first = rule.final_deadline(week()) + Duration::hours(3);
        // The first late attempt only starts the record.
        let v = rule.after_answer(week(), keys(&[0, 1, 2, 3]), maturing(0, None), first);
        assert_eq!(v.state, PeriodState::Maturing, "grace {grace_days}");
        assert_eq!(v.late_since, Some(first));
        let due = v.next_due.expect("due again");
        assert!(due > first, "grace {grace_days}: due again at once");
        // Half an hour later (a key published meanwhile) it is still asked.
        let soon = first + Duration::minutes(30);
        let v = rule.after_answer(week(), keys(&[0, 1, 2, 3]), maturing(1, Some(first)), soon);
        assert_eq!(v.state, PeriodState::Maturing, "grace {grace_days}");
        // A day after the first late attempt it may be given up.
        let later = first + Duration::days(1);
        let v = rule.after_answer(week(), keys(&[0, 1, 2, 3]), maturing(2, Some(first)), later);
        assert_eq!(
            (v.state, v.next_due),
            (PeriodState::Complete, None),
            "grace {grace_days}"
        );
    }
}
