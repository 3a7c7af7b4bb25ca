//! Types that parse once and can only hold valid values.

mod appid;
mod calendar;
mod keys;
mod metric;
mod state;
mod week;

pub use appid::{AppId, AppIdError};
pub use calendar::{Grain, Period};
pub use keys::KeySet;
pub use metric::{Metric, MAX_KEY};
pub use state::PeriodState;
pub use week::{
    ensure_wechat_era, parse_date, yyyymmdd, NaturalWeek, WeekError, BEIJING, FIRST_DATA_DAY,
};
