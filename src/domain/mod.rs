//! Types that parse once and can only hold valid values.

mod appid;
mod keys;
mod metric;
mod week;

pub use appid::{AppId, AppIdError};
pub use keys::KeySet;
pub use metric::{Metric, MAX_KEY};
pub use week::{parse_date, yyyymmdd, NaturalWeek, WeekError, BEIJING};
