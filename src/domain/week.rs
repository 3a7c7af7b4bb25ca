//! Natural weeks (Monday to Sunday), the only unit `getWeeklyRetain` accepts.
//!
//! WeChat rejects any other range with 61500/61501, and every date it speaks of
//! is a Beijing date, so the type can only hold a Monday and every conversion
//! from an instant names the time zone it reads the calendar in.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

/// The calendar WeChat's datacube speaks: Beijing, UTC+8, no daylight saving.
pub const BEIJING: Tz = chrono_tz::Asia::Shanghai;

/// The first day WeChat can have data for: the Mini Program platform opened
/// in January 2017. An earlier date is a typo (year 1900, year -1), never a
/// week worth asking WeChat about.
pub const FIRST_DATA_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2017, 1, 1) {
    Some(day) => day,
    None => panic!("2017-01-01 is a date"),
};

/// A Monday-to-Sunday week, identified by its Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NaturalWeek {
    monday: NaiveDate,
}

/// Why a text or a date is not a natural week.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeekError {
    #[error("{0:?} is not a date (expected yyyymmdd or yyyy-mm-dd)")]
    BadDate(String),
    #[error("{date} is a {weekday:?}, not a Monday")]
    NotMonday { date: NaiveDate, weekday: Weekday },
    #[error("{0:?} is not a week range (expected yyyymmdd-yyyymmdd, Monday to Sunday)")]
    BadRange(String),
    #[error("{begin}..{end} is not one natural week (Monday to the Sunday after it)")]
    NotOneWeek { begin: NaiveDate, end: NaiveDate },
    #[error("{0} is before {FIRST_DATA_DAY}: WeChat has no data from before the Mini Program platform started in 2017")]
    BeforeWeChat(NaiveDate),
}

/// `date` itself when WeChat can have data for it, else why not.
pub fn ensure_wechat_era(date: NaiveDate) -> Result<NaiveDate, WeekError> {
    if date < FIRST_DATA_DAY {
        Err(WeekError::BeforeWeChat(date))
    } else {
        Ok(date)
    }
}

/// Parses `yyyymmdd` (WeChat's form) or `yyyy-mm-dd` (what people type).
pub fn parse_date(text: &str) -> Result<NaiveDate, WeekError> {
    let t = text.trim();
    let parsed = if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        NaiveDate::parse_from_str(t, "%Y%m%d")
    } else {
        NaiveDate::parse_from_str(t, "%Y-%m-%d")
    };
    parsed.map_err(|_| WeekError::BadDate(text.to_string()))
}

/// Formats a date the way WeChat wants it in request bodies.
pub fn yyyymmdd(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

impl NaturalWeek {
    /// The week starting on `monday`; any other weekday is refused.
    pub fn starting(monday: NaiveDate) -> Result<Self, WeekError> {
        match monday.weekday() {
            Weekday::Mon => Ok(Self { monday }),
            weekday => Err(WeekError::NotMonday {
                date: monday,
                weekday,
            }),
        }
    }

    /// The week that holds `date`.
    pub fn containing(date: NaiveDate) -> Self {
        let back = i64::from(date.weekday().num_days_from_monday());
        Self {
            monday: date - Duration::days(back),
        }
    }

    /// The first week that starts on or after [`FIRST_DATA_DAY`].
    pub fn first_with_data() -> Self {
        Self::containing(FIRST_DATA_DAY + Duration::days(6))
    }

    /// Parses a Monday written as `yyyymmdd` or `yyyy-mm-dd`.
    pub fn parse_monday(text: &str) -> Result<Self, WeekError> {
        Self::starting(parse_date(text)?)
    }

    /// Parses WeChat's `ref_date`, e.g. `20170306-20170312`.
    pub fn parse_ref_date(text: &str) -> Result<Self, WeekError> {
        let (begin, end) = text
            .split_once('-')
            .filter(|(b, e)| b.len() == 8 && e.len() == 8)
            .ok_or_else(|| WeekError::BadRange(text.to_string()))?;
        let begin = parse_date(begin).map_err(|_| WeekError::BadRange(text.to_string()))?;
        let end = parse_date(end).map_err(|_| WeekError::BadRange(text.to_string()))?;
        let week = Self::starting(begin).map_err(|_| WeekError::NotOneWeek { begin, end })?;
        if week.sunday() != end {
            return Err(WeekError::NotOneWeek { begin, end });
        }
        Ok(week)
    }

    /// The week in progress at `instant`, reading the calendar in `tz`.
    pub fn current_at(instant: DateTime<Utc>, tz: Tz) -> Self {
        Self::containing(instant.with_timezone(&tz).date_naive())
    }

    /// The most recent week that had fully ended at `instant` in `tz`.
    pub fn last_completed_at(instant: DateTime<Utc>, tz: Tz) -> Self {
        Self::current_at(instant, tz).prev()
    }

    pub fn monday(self) -> NaiveDate {
        self.monday
    }

    pub fn sunday(self) -> NaiveDate {
        self.monday + Duration::days(6)
    }

    pub fn next(self) -> Self {
        self.plus_weeks(1)
    }

    pub fn prev(self) -> Self {
        self.plus_weeks(-1)
    }

    pub fn plus_weeks(self, weeks: i64) -> Self {
        Self {
            monday: self.monday + Duration::weeks(weeks),
        }
    }

    /// Whole weeks from `self` to `later` (negative when `later` is earlier).
    pub fn weeks_until(self, later: Self) -> i64 {
        (later.monday - self.monday).num_weeks()
    }

    /// `begin_date` of the request body.
    pub fn begin_date(self) -> String {
        yyyymmdd(self.monday)
    }

    /// `end_date` of the request body.
    pub fn end_date(self) -> String {
        yyyymmdd(self.sunday())
    }

    /// The `ref_date` WeChat answers with for this week.
    pub fn ref_date(self) -> String {
        format!("{}-{}", self.begin_date(), self.end_date())
    }

    /// The instant `days` after this week's Monday at `hour`:00 local time in `tz`.
    ///
    /// Beijing has no daylight saving; for other zones a skipped hour resolves to
    /// the first valid instant after it, so the result always exists.
    pub fn local_instant(self, days: i64, hour: u32, tz: Tz) -> DateTime<Utc> {
        let date = self.monday + Duration::days(days);
        let mut naive =
            date.and_time(NaiveTime::from_hms_opt(hour.min(23), 0, 0).unwrap_or_default());
        loop {
            match tz.from_local_datetime(&naive).earliest() {
                Some(local) => return local.with_timezone(&Utc),
                None => naive += Duration::minutes(30),
            }
        }
    }

    /// The first instant after the week, i.e. the next Monday 00:00 in `tz`.
    pub fn ends_at(self, tz: Tz) -> DateTime<Utc> {
        self.local_instant(7, 0, tz)
    }

    /// Every week from `first` to `last`, inclusive; empty when `last < first`.
    pub fn range(first: Self, last: Self) -> impl Iterator<Item = Self> {
        let count = first.weeks_until(last) + 1;
        (0..count.max(0)).map(move |i| first.plus_weeks(i))
    }
}

impl fmt::Display for NaturalWeek {
    /// Printed as its Monday, `yyyy-mm-dd`: how `week_start` reads in SQL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.monday.format("%Y-%m-%d"))
    }
}

impl FromStr for NaturalWeek {
    type Err = WeekError;

    /// Accepts a Monday (`yyyymmdd`, `yyyy-mm-dd`) or a `ref_date`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 17 && s.as_bytes().get(8) == Some(&b'-') {
            Self::parse_ref_date(s)
        } else {
            Self::parse_monday(s)
        }
    }
}

impl serde::Serialize for NaturalWeek {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for NaturalWeek {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn official_sample_week_round_trips() {
        let week = NaturalWeek::parse_ref_date("20170306-20170312").expect("sample parses");
        assert_eq!(week.monday(), date(2017, 3, 6));
        assert_eq!(week.begin_date(), "20170306");
        assert_eq!(week.end_date(), "20170312");
        assert_eq!(week.ref_date(), "20170306-20170312");
        assert_eq!(week.to_string(), "2017-03-06");
        assert_eq!("2017-03-06".parse::<NaturalWeek>(), Ok(week));
        assert_eq!("20170306-20170312".parse::<NaturalWeek>(), Ok(week));
    }

    #[test]
    fn refuses_what_is_not_a_week() {
        assert!(matches!(
            NaturalWeek::parse_monday("20170307"),
            Err(WeekError::NotMonday { .. })
        ));
        assert!(matches!(
            NaturalWeek::parse_ref_date("20170306-20170313"),
            Err(WeekError::NotOneWeek { .. })
        ));
        assert!(matches!(
            NaturalWeek::parse_ref_date("20170307-20170313"),
            Err(WeekError::NotOneWeek { .. })
        ));
        assert!(matches!(
            NaturalWeek::parse_ref_date("2017030620170312"),
            Err(WeekError::BadRange(_))
        ));
        assert!(matches!(
            parse_date("2017-02-30"),
            Err(WeekError::BadDate(_))
        ));
        assert!(matches!(
            parse_date("yesterday"),
            Err(WeekError::BadDate(_))
        ));
    }

    #[test]
    fn beijing_monday_morning_is_still_sunday_in_utc() {
        // 2017-03-13 00:30 Beijing = 2017-03-12 16:30 UTC: the week of 03-06 is over
        // in Beijing even though a UTC clock still reads Sunday.
        let instant = Utc
            .with_ymd_and_hms(2017, 3, 12, 16, 30, 0)
            .single()
            .expect("valid");
        assert_eq!(
            NaturalWeek::last_completed_at(instant, BEIJING).monday(),
            date(2017, 3, 6)
        );
        assert_eq!(
            NaturalWeek::last_completed_at(instant, chrono_tz::UTC).monday(),
            date(2017, 2, 27)
        );
    }

    #[test]
    fn ends_at_is_next_monday_midnight_in_the_zone() {
        let week = NaturalWeek::parse_monday("20170306").expect("monday");
        assert_eq!(
            week.ends_at(BEIJING),
            Utc.with_ymd_and_hms(2017, 3, 12, 16, 0, 0)
                .single()
                .expect("valid")
        );
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (0i64..40_000).prop_map(|d| date(1990, 1, 1) + Duration::days(d))
    }

    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..3_000_000_000)
            .prop_map(|s| DateTime::from_timestamp(631_152_000 + s, 0).expect("in range"))
    }

    fn any_zone() -> impl Strategy<Value = Tz> {
        prop_oneof![
            Just(BEIJING),
            Just(chrono_tz::UTC),
            Just(chrono_tz::America::New_York),
            Just(chrono_tz::Europe::Berlin),
            Just(chrono_tz::Pacific::Kiritimati),
        ]
    }

    proptest! {
        #[test]
        fn containing_holds_the_date_and_starts_on_monday(d in any_date()) {
            let week = NaturalWeek::containing(d);
            prop_assert_eq!(week.monday().weekday(), Weekday::Mon);
            prop_assert!(week.monday() <= d && d <= week.sunday());
            prop_assert_eq!(NaturalWeek::starting(week.monday()), Ok(week));
        }

        #[test]
        fn only_mondays_start_a_week(d in any_date()) {
            prop_assert_eq!(NaturalWeek::starting(d).is_ok(), d.weekday() == Weekday::Mon);
        }

        #[test]
        fn text_forms_round_trip(d in any_date()) {
            let week = NaturalWeek::containing(d);
            prop_assert_eq!(NaturalWeek::parse_ref_date(&week.ref_date()), Ok(week));
            prop_assert_eq!(NaturalWeek::parse_monday(&week.begin_date()), Ok(week));
            prop_assert_eq!(week.to_string().parse::<NaturalWeek>(), Ok(week));
        }

        #[test]
        fn every_instant_of_a_week_maps_to_the_week_before(d in any_date(), secs in 0i64..(7 * 86_400), tz in any_zone()) {
            let week = NaturalWeek::containing(d);
            let start = week.local_instant(0, 0, tz);
            let instant = start + Duration::seconds(secs);
            // Zones with DST have 167 or 169 hour weeks: stay inside this week.
            prop_assume!(instant < week.ends_at(tz));
            prop_assert_eq!(NaturalWeek::current_at(instant, tz), week);
            prop_assert_eq!(NaturalWeek::last_completed_at(instant, tz), week.prev());
        }

        #[test]
        fn the_last_completed_week_has_ended_and_its_successor_has_not(t in any_instant(), tz in any_zone()) {
            let done = NaturalWeek::last_completed_at(t, tz);
            prop_assert!(done.ends_at(tz) <= t);
            prop_assert!(done.next().ends_at(tz) > t);
        }

        #[test]
        fn range_is_contiguous(d in any_date(), n in 0i64..60) {
            let first = NaturalWeek::containing(d);
            let weeks: Vec<_> = NaturalWeek::range(first, first.plus_weeks(n)).collect();
            prop_assert_eq!(weeks.len() as i64, n + 1);
            for pair in weeks.windows(2) {
                prop_assert_eq!(pair[0].next(), pair[1]);
            }
        }
    }
}
