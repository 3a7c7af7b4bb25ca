//! When WeChat publishes each key of a period, on the simulator's clock.

use crate::dataset::retention;
use crate::domain::{NaturalWeek, Period};
use chrono::{DateTime, Utc};

/// What the API can say about a period at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// The period has not ended (Beijing time): the API answers 61501.
    NotEnded,
    /// Ended but key 0 not published yet: the API answers 61503.
    Computing,
    /// The grain's keys up to and including `k` are published (for a day,
    /// `Keys(14)` means 0..=7 and 14).
    Keys(u8),
}

/// Which keys of `period` are published at `now`.
///
/// Key k appears at `publish_hour` the morning after the period k periods
/// later has ended ([`Period::morning_after`]), which models "the arrays grow
/// as periods pass" from the API notes.
pub fn publication_of(period: Period, now: DateTime<Utc>, publish_hour: u32) -> Publication {
    if now < period.ends_at() {
        return Publication::NotEnded;
    }
    let published = retention::keys(period.grain())
        .iter()
        .copied()
        .take_while(|&k| now >= period.morning_after(k, publish_hour))
        .last();
    match published {
        None => Publication::Computing,
        Some(k) => Publication::Keys(k),
    }
}

/// [`publication_of`] for a natural week: key k on the Monday after week W+k
/// ends, at `publish_hour`:00 Beijing.
pub fn publication(week: NaturalWeek, now: DateTime<Utc>, publish_hour: u32) -> Publication {
    publication_of(Period::from(week), now, publish_hour)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{parse_date, Grain, BEIJING};
    use chrono::TimeZone;

    fn beijing(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        BEIJING
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    fn period(grain: Grain, text: &str) -> Period {
        grain.containing(parse_date(text).expect("a date"))
    }

    #[test]
    fn weekly_publication_follows_the_calendar() {
        let wk = NaturalWeek::parse_monday("20240304").expect("a monday");
        let at =
            |d: (i32, u32, u32), h: u32, m: u32| publication(wk, beijing(d.0, d.1, d.2, h, m), 10);
        assert_eq!(at((2024, 3, 4), 0, 0), Publication::NotEnded);
        assert_eq!(at((2024, 3, 10), 23, 59), Publication::NotEnded);
        assert_eq!(at((2024, 3, 11), 0, 0), Publication::Computing);
        assert_eq!(at((2024, 3, 11), 9, 59), Publication::Computing);
        assert_eq!(at((2024, 3, 11), 10, 0), Publication::Keys(0));
        assert_eq!(at((2024, 3, 18), 9, 59), Publication::Keys(0));
        assert_eq!(at((2024, 3, 18), 10, 0), Publication::Keys(1));
        assert_eq!(at((2024, 4, 1), 10, 0), Publication::Keys(3));
        assert_eq!(at((2024, 4, 8), 10, 0), Publication::Keys(4));
        assert_eq!(at((2030, 1, 1), 0, 0), Publication::Keys(4));
    }

    #[test]
    fn daily_keys_fill_in_day_by_day_across_a_year_boundary() {
        let day = period(Grain::Daily, "20261231");
        let at = |y, m, d, h| publication_of(day, beijing(y, m, d, h, 0), 10);
        assert_eq!(at(2026, 12, 31, 23), Publication::NotEnded);
        assert_eq!(at(2027, 1, 1, 9), Publication::Computing);
        assert_eq!(at(2027, 1, 1, 10), Publication::Keys(0));
        assert_eq!(at(2027, 1, 2, 10), Publication::Keys(1));
        assert_eq!(at(2027, 1, 8, 10), Publication::Keys(7));
        // Days 8..13 add nothing: the next key is 14.
        assert_eq!(at(2027, 1, 14, 10), Publication::Keys(7));
        assert_eq!(at(2027, 1, 15, 10), Publication::Keys(14));
        assert_eq!(at(2027, 1, 31, 9), Publication::Keys(14));
        assert_eq!(at(2027, 1, 31, 10), Publication::Keys(30));
    }

    #[test]
    fn monthly_keys_come_on_the_first_of_a_month() {
        let dec = period(Grain::Monthly, "20261201");
        let at = |y, m, d, h| publication_of(dec, beijing(y, m, d, h, 0), 10);
        assert_eq!(at(2026, 12, 31, 23), Publication::NotEnded);
        assert_eq!(at(2027, 1, 1, 0), Publication::Computing);
        assert_eq!(at(2027, 1, 1, 10), Publication::Keys(0));
        assert_eq!(at(2027, 1, 31, 23), Publication::Keys(0));
        assert_eq!(at(2027, 2, 1, 10), Publication::Keys(1));
    }
}
