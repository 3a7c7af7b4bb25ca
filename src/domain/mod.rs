//! Types that parse once and can only hold valid values.

mod appid;
mod grain;
mod keys;
mod metric;
mod week;

pub use appid::{AppId, AppIdError};
pub use grain::{Grain, Period};
pub use keys::KeySet;
pub use metric::{Metric, MAX_KEY};
pub use week::{
    ensure_wechat_era, parse_date, yyyymmdd, NaturalWeek, WeekError, BEIJING, FIRST_DATA_DAY,
};
