//! Call quotas per app and API (45011 per minute, 45009 per Beijing day):
//! WeChat counts each API's quota apart, so a collector that exhausts the
//! daily retention API can still call the weekly one.

use crate::dataset::Stream;
use crate::domain::{AppId, BEIJING};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

/// Data calls one app made to one API in the current minute and Beijing day.
#[derive(Debug)]
struct QuotaUse {
    minute: i64,
    minute_calls: u32,
    day: NaiveDate,
    day_calls: u32,
}

/// Quota use of every (app, API) that had a data call.
#[derive(Debug, Default)]
pub(crate) struct Quotas(HashMap<(AppId, Stream), QuotaUse>);

impl Quotas {
    /// Counts one data call of `appid` to `stream`'s API, or answers the errcode of the quota
    /// it would exceed (the daily one first). Refused calls are not counted.
    pub(crate) fn spend(
        &mut self,
        appid: &AppId,
        stream: Stream,
        now: DateTime<Utc>,
        daily: Option<u32>,
        per_minute: Option<u32>,
    ) -> Result<(), i64> {
        if daily.is_none() && per_minute.is_none() {
            return Ok(());
        }
        // Beijing is UTC+8 all year, so its minutes start with UTC's.
        let minute = now.timestamp().div_euclid(60);
        let day = now.with_timezone(&BEIJING).date_naive();
        let used = self.0.entry((appid.clone(), stream)).or_insert(QuotaUse {
            minute,
            minute_calls: 0,
            day,
            day_calls: 0,
        });
        if used.day != day {
            (used.day, used.day_calls) = (day, 0);
        }
        if used.minute != minute {
            (used.minute, used.minute_calls) = (minute, 0);
        }
        if daily.is_some_and(|q| used.day_calls >= q) {
            return Err(45009);
        }
        if per_minute.is_some_and(|q| used.minute_calls >= q) {
            return Err(45011);
        }
        used.day_calls += 1;
        used.minute_calls += 1;
        Ok(())
    }
}
