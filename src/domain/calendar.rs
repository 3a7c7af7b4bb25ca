//! Beijing's calendar as WeChat's datacube reads it: one day, one natural
//! week (Monday to Sunday) or one natural month. Grains and periods only:
//! what a dataset does with them (its API, its keys) is the dataset's
//! ([`crate::dataset`]).

use super::week::{parse_date, yyyymmdd, NaturalWeek, WeekError, BEIJING, FIRST_DATA_DAY};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use std::fmt;
use std::str::FromStr;

/// How long a period is: a day, a natural week or a natural month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    Daily,
    Weekly,
    Monthly,
}

impl Grain {
    pub const ALL: [Grain; 3] = [Grain::Daily, Grain::Weekly, Grain::Monthly];

    /// The name in config, the CLI, the ledger and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Daily => "daily",
            Grain::Weekly => "weekly",
            Grain::Monthly => "monthly",
        }
    }

    /// The period's unit, for people: "day", "week", "month".
    pub fn unit(self) -> &'static str {
        match self {
            Grain::Daily => "day",
            Grain::Weekly => "week",
            Grain::Monthly => "month",
        }
    }

    /// One period's length as (months, days): what SQL's `make_interval`
    /// takes to step from one period's first day to the next's.
    pub fn step(self) -> (i32, i32) {
        match self {
            Grain::Daily => (0, 1),
            Grain::Weekly => (0, 7),
            Grain::Monthly => (1, 0),
        }
    }

    /// The period holding `date`.
    pub fn containing(self, date: NaiveDate) -> Period {
        let start = match self {
            Grain::Daily => date,
            Grain::Weekly => NaturalWeek::containing(date).monday(),
            Grain::Monthly => date.with_day(1).unwrap_or(date),
        };
        Period { grain: self, start }
    }

    /// The most recent period that had fully ended at `instant` (Beijing).
    pub fn last_completed_at(self, instant: DateTime<Utc>) -> Period {
        self.containing(instant.with_timezone(&BEIJING).date_naive())
            .prev()
    }
}

impl fmt::Display for Grain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Grain::ALL
            .into_iter()
            .find(|g| g.as_str() == s.trim())
            .ok_or_else(|| format!("{s:?} is not a grain (daily, weekly or monthly)"))
    }
}

/// One day, natural week or natural month, identified by its grain and first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    grain: Grain,
    start: NaiveDate,
}

impl Period {
    /// The period of `grain` starting on `start`; refuses a date that does
    /// not start one (a Tuesday for a week, the 2nd for a month).
    pub fn starting(grain: Grain, start: NaiveDate) -> Result<Self, WeekError> {
        let period = grain.containing(start);
        if period.start != start {
            return Err(match grain {
                Grain::Weekly => NaturalWeek::starting(start)
                    .err()
                    .unwrap_or(WeekError::BadDate(start.to_string())),
                _ => WeekError::BadDate(format!("{start} does not start a {}", grain.unit())),
            });
        }
        Ok(period)
    }

    pub fn grain(self) -> Grain {
        self.grain
    }

    /// The first day.
    pub fn start(self) -> NaiveDate {
        self.start
    }

    /// The last day (inclusive).
    pub fn end(self) -> NaiveDate {
        self.next().start.pred_opt().unwrap_or(self.start)
    }

    /// The period `n` periods later (earlier when negative).
    pub fn plus(self, n: i64) -> Self {
        let start = match self.grain {
            Grain::Daily => shift_days(self.start, n),
            Grain::Weekly => shift_days(self.start, 7 * n),
            Grain::Monthly => {
                let months = Months::new(u32::try_from(n.unsigned_abs()).unwrap_or(u32::MAX));
                let moved = if n >= 0 {
                    self.start.checked_add_months(months)
                } else {
                    self.start.checked_sub_months(months)
                };
                moved.unwrap_or(self.start)
            }
        };
        Self { start, ..self }
    }

    pub fn next(self) -> Self {
        self.plus(1)
    }

    pub fn prev(self) -> Self {
        self.plus(-1)
    }

    /// Whole periods from `self` to `later` (negative when earlier).
    pub fn periods_until(self, later: Self) -> i64 {
        match self.grain {
            Grain::Daily => (later.start - self.start).num_days(),
            Grain::Weekly => (later.start - self.start).num_weeks(),
            Grain::Monthly => {
                let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
                months(later.start) - months(self.start)
            }
        }
    }

    /// Every period from `first` to `last`, inclusive.
    pub fn range(first: Self, last: Self) -> impl Iterator<Item = Self> {
        let n = first.periods_until(last).max(-1) + 1;
        (0..n).map(move |i| first.plus(i))
    }

    /// `begin_date` of the request body.
    pub fn begin_date(self) -> String {
        yyyymmdd(self.start)
    }

    /// `end_date` of the request body.
    pub fn end_date(self) -> String {
        yyyymmdd(self.end())
    }

    /// The `ref_date` WeChat answers with: `20170306`, `20170306-20170312`, `201703`.
    pub fn ref_date(self) -> String {
        match self.grain {
            Grain::Daily => self.begin_date(),
            Grain::Weekly => format!("{}-{}", self.begin_date(), self.end_date()),
            Grain::Monthly => self.start.format("%Y%m").to_string(),
        }
    }

    /// Parses a `ref_date` of `grain`.
    pub fn parse_ref_date(grain: Grain, text: &str) -> Result<Self, WeekError> {
        match grain {
            Grain::Weekly => NaturalWeek::parse_ref_date(text).map(Self::from),
            Grain::Daily if text.len() == 8 => parse_date(text).map(|d| grain.containing(d)),
            Grain::Monthly if text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) => {
                let first = parse_date(&format!("{text}01"))?;
                Ok(grain.containing(first))
            }
            _ => Err(WeekError::BadRange(text.to_string())),
        }
    }

    /// The instant the period is over: its next period's first midnight, Beijing.
    pub fn ends_at(self) -> DateTime<Utc> {
        beijing_instant(self.next().start, 0)
    }

    /// `hour`:00 Beijing on the first day after the period `later` periods
    /// after this one: for `later` 0, the morning after this period ends.
    /// WeChat publishes a period's data from a morning after it ends (and
    /// retention's key k from the morning after period P+k ends).
    pub fn morning_after(self, later: u8, hour: u32) -> DateTime<Utc> {
        beijing_instant(self.plus(i64::from(later) + 1).start, hour)
    }

    /// Whether WeChat can have data for it (the platform started in 2017).
    pub fn in_wechat_era(self) -> bool {
        self.end() >= FIRST_DATA_DAY
    }

    /// The week, when the grain is weekly.
    pub fn week(self) -> Option<NaturalWeek> {
        (self.grain == Grain::Weekly)
            .then(|| NaturalWeek::starting(self.start).ok())
            .flatten()
    }
}

impl From<NaturalWeek> for Period {
    fn from(week: NaturalWeek) -> Self {
        Self {
            grain: Grain::Weekly,
            start: week.monday(),
        }
    }
}

impl fmt::Display for Period {
    /// `2026-11-02` for a day, `2026-11-02..2026-11-08` for a week, `2026-11` for a month.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.grain {
            Grain::Daily => write!(f, "{}", self.start),
            Grain::Weekly => write!(f, "{}..{}", self.start, self.end()),
            Grain::Monthly => write!(f, "{}", self.start.format("%Y-%m")),
        }
    }
}

fn shift_days(date: NaiveDate, n: i64) -> NaiveDate {
    let days = Days::new(n.unsigned_abs());
    let moved = if n >= 0 {
        date.checked_add_days(days)
    } else {
        date.checked_sub_days(days)
    };
    moved.unwrap_or(date)
}

/// `date` at `hour`:00 Beijing (no daylight saving: always one instant).
fn beijing_instant(date: NaiveDate, hour: u32) -> DateTime<Utc> {
    let naive = date.and_time(NaiveTime::from_hms_opt(hour.min(23), 0, 0).unwrap_or_default());
    BEIJING
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(text: &str) -> NaiveDate {
        parse_date(text).expect("a date")
    }

    fn beijing(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        BEIJING
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn each_grain_has_its_window_and_ref_date() {
        let d = Grain::Daily.containing(day("20170306"));
        assert_eq!(
            (d.begin_date(), d.end_date(), d.ref_date()),
            ("20170306".into(), "20170306".into(), "20170306".into())
        );
        let w = Grain::Weekly.containing(day("20170308"));
        assert_eq!(
            (w.begin_date(), w.end_date(), w.ref_date()),
            (
                "20170306".into(),
                "20170312".into(),
                "20170306-20170312".into()
            )
        );
        let m = Grain::Monthly.containing(day("20170215"));
        assert_eq!(
            (m.begin_date(), m.end_date(), m.ref_date()),
            ("20170201".into(), "20170228".into(), "201702".into())
        );
    }

    #[test]
    fn the_morning_after_a_later_period_ends() {
        let d = Grain::Daily.containing(day("20261130"));
        assert_eq!(d.morning_after(0, 10), beijing(2026, 12, 1, 10));
        assert_eq!(d.morning_after(30, 10), beijing(2026, 12, 31, 10));
        let w = Grain::Weekly.containing(day("20261102"));
        assert_eq!(w.morning_after(4, 10), beijing(2026, 12, 7, 10));
        let m = Grain::Monthly.containing(day("20261201"));
        assert_eq!(m.morning_after(0, 10), beijing(2027, 1, 1, 10));
        assert_eq!(m.morning_after(1, 10), beijing(2027, 2, 1, 10));
    }

    #[test]
    fn month_and_year_boundaries() {
        let dec = Grain::Monthly.containing(day("20261231"));
        assert_eq!((dec.start(), dec.end()), (day("20261201"), day("20261231")));
        assert_eq!(dec.next().start(), day("20270101"));
        let feb = Grain::Monthly.containing(day("20280210"));
        assert_eq!(feb.end(), day("20280229"), "a leap February");
        assert_eq!(
            Grain::Daily.containing(day("20261231")).next().start(),
            day("20270101")
        );
        assert_eq!(dec.periods_until(feb), 14);
        assert_eq!(Period::range(dec, feb).count(), 15);
        // The month that ended at a new year's first minute is December.
        assert_eq!(
            Grain::Monthly.last_completed_at(beijing(2027, 1, 1, 0)),
            dec
        );
        assert_eq!(
            Grain::Daily
                .last_completed_at(beijing(2027, 1, 1, 0))
                .start(),
            day("20261231")
        );
    }

    #[test]
    fn ref_dates_parse_only_for_their_grain() {
        let m = Period::parse_ref_date(Grain::Monthly, "201703").expect("month");
        assert_eq!(m.start(), day("20170301"));
        assert!(Period::parse_ref_date(Grain::Monthly, "20170301").is_err());
        assert!(Period::parse_ref_date(Grain::Daily, "201703").is_err());
        assert!(Period::parse_ref_date(Grain::Daily, "20170306-20170312").is_err());
        assert!(Period::parse_ref_date(Grain::Weekly, "20170306").is_err());
        assert!(Period::starting(Grain::Monthly, day("20170302")).is_err());
        assert!(Period::starting(Grain::Weekly, day("20170307")).is_err());
        assert_eq!("monthly".parse::<Grain>(), Ok(Grain::Monthly));
        assert!("yearly".parse::<Grain>().is_err());
    }

    proptest! {
        #[test]
        fn a_period_holds_its_dates_and_its_neighbours_touch(offset in 0i64..5000, g in 0usize..3) {
            let grain = Grain::ALL[g];
            let date = day("20170101") + chrono::Duration::days(offset);
            let p = grain.containing(date);
            prop_assert!(p.start() <= date && date <= p.end());
            prop_assert_eq!(p.next().start(), p.end() + chrono::Duration::days(1));
            prop_assert_eq!(p.prev().next(), p);
            prop_assert_eq!(Period::parse_ref_date(grain, &p.ref_date()), Ok(p));
            prop_assert_eq!(p.periods_until(p.plus(7)), 7);
        }
    }
}
