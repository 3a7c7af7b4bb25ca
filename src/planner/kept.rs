//! The periods a pass keeps: from the oldest kept one to the last completed.

use crate::config::ScheduleConfig;
use crate::domain::{Grain, NaturalWeek, Period, BEIJING};
use chrono::{DateTime, Utc};

/// The oldest week kept, given the most recently completed one: the
/// config's `start_week`, else `lookback_weeks` back; never before WeChat
/// had data (a long `lookback_weeks` stops at 2017).
pub fn oldest_week(schedule: &ScheduleConfig, last_completed: NaturalWeek) -> NaturalWeek {
    match schedule.start_week {
        Some(week) => week,
        None => last_completed
            .plus_weeks(1 - i64::from(schedule.lookback_weeks))
            .max(NaturalWeek::first_with_data()),
    }
}

/// The periods of `grain` a pass at `as_of` keeps: from the one holding the
/// oldest kept week's Monday (the oldest week kept applies to every grain:
/// days from its Monday, months from the month that holds it) to the last
/// completed one.
pub fn kept_periods(
    schedule: &ScheduleConfig,
    grain: Grain,
    as_of: DateTime<Utc>,
) -> (Period, Period) {
    let last_week = NaturalWeek::last_completed_at(as_of, BEIJING);
    let oldest = oldest_week(schedule, last_week);
    (
        grain.containing(oldest.monday()),
        grain.last_completed_at(as_of),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_date;
    use chrono::TimeZone;

    fn schedule(start_week: Option<&str>, lookback_weeks: u32) -> ScheduleConfig {
        ScheduleConfig {
            start_week: start_week.map(|w| NaturalWeek::parse_monday(w).expect("monday")),
            lookback_weeks,
            ..ScheduleConfig::default()
        }
    }

    #[test]
    fn every_grain_starts_at_the_oldest_kept_weeks_monday() {
        // Wednesday 2026-12-02, noon in Beijing: the last week ended on the 29th.
        let at = BEIJING
            .with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
            .single()
            .expect("valid")
            .with_timezone(&Utc);
        let s = schedule(None, 3);
        let (first, last) = kept_periods(&s, Grain::Weekly, at);
        assert_eq!(
            (first.to_string(), last.to_string()),
            (
                "2026-11-09..2026-11-15".to_string(),
                "2026-11-23..2026-11-29".to_string()
            )
        );
        let (first, last) = kept_periods(&s, Grain::Daily, at);
        assert_eq!(
            (first.start(), last.start()),
            (
                parse_date("20261109").expect("d"),
                parse_date("20261201").expect("d")
            )
        );
        let (first, last) = kept_periods(&s, Grain::Monthly, at);
        assert_eq!(
            (first.to_string(), last.to_string()),
            ("2026-11".to_string(), "2026-11".to_string())
        );
        // A fixed start wins; a long lookback stops at WeChat's first week.
        let (first, _) = kept_periods(&schedule(Some("2026-10-05"), 26), Grain::Weekly, at);
        assert_eq!(first.start(), parse_date("20261005").expect("d"));
        let (first, _) = kept_periods(&schedule(None, 1000), Grain::Weekly, at);
        assert_eq!(first.start(), NaturalWeek::first_with_data().monday());
    }
}
