//! Parsing what a caller sent, into what the engine decides on.

use crate::domain::{parse_date, NaturalWeek};
use serde_json::Value;

/// The fields of a token request, whichever endpoint it came from.
#[derive(Debug, Default)]
pub(crate) struct TokenRequest {
    pub grant_type: Option<String>,
    pub appid: Option<String>,
    pub secret: Option<String>,
    pub force_refresh: bool,
}

/// The asked week, or the errcode for a body that does not name one:
/// 47001 not JSON, 61500 dates missing or not `yyyymmdd`, 61501 not Monday..Sunday.
pub(crate) fn parse_week(body: &[u8]) -> Result<NaturalWeek, i64> {
    let value: Value = serde_json::from_slice(body).map_err(|_| 47001)?;
    let date = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| parse_date(s).ok())
    };
    let (Some(begin), Some(end)) = (date("begin_date"), date("end_date")) else {
        return Err(61500);
    };
    let week = NaturalWeek::starting(begin).map_err(|_| 61501)?;
    if week.sunday() != end {
        return Err(61501);
    }
    Ok(week)
}
