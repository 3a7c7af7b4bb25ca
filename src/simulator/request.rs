//! Parsing what a caller sent, into what the engine decides on.

use crate::domain::{parse_date, Grain, Period};
use serde_json::Value;

/// The fields of a token request, whichever endpoint it came from.
#[derive(Debug, Default)]
pub(crate) struct TokenRequest {
    pub grant_type: Option<String>,
    pub appid: Option<String>,
    pub secret: Option<String>,
    pub force_refresh: bool,
}

/// The asked period of `grain`, or the errcode for a body that does not name
/// one: 47001 not JSON, 61500 dates missing or not `yyyymmdd`, 61501 not
/// exactly one period of the grain (a day, Monday..Sunday, the 1st..last of a
/// month), as WeChat answers a 30-day range on the monthly API.
pub(crate) fn parse_period(grain: Grain, body: &[u8]) -> Result<Period, i64> {
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
    let period = grain.containing(begin);
    if period.start() != begin || period.end() != end {
        return Err(61501);
    }
    Ok(period)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(grain: Grain, begin: &str, end: &str) -> Result<String, i64> {
        let body = serde_json::json!({"begin_date": begin, "end_date": end}).to_string();
        parse_period(grain, body.as_bytes()).map(|p| p.ref_date())
    }

    #[test]
    fn each_grain_takes_exactly_its_window() {
        assert_eq!(
            parse(Grain::Daily, "20261231", "20261231"),
            Ok("20261231".into())
        );
        assert_eq!(parse(Grain::Daily, "20261231", "20270101"), Err(61501));
        assert_eq!(
            parse(Grain::Weekly, "20240304", "20240310"),
            Ok("20240304-20240310".into())
        );
        assert_eq!(parse(Grain::Weekly, "20240305", "20240311"), Err(61501));
        assert_eq!(
            parse(Grain::Monthly, "20261201", "20261231"),
            Ok("202612".into())
        );
        assert_eq!(
            parse(Grain::Monthly, "20280201", "20280229"),
            Ok("202802".into())
        );
        assert_eq!(parse(Grain::Monthly, "20261201", "20261230"), Err(61501));
        assert_eq!(parse(Grain::Monthly, "20261202", "20270101"), Err(61501));
        assert_eq!(parse(Grain::Monthly, "20261201", "20261201"), Err(61501));
        assert_eq!(parse(Grain::Monthly, "2026-12-01", "20261231"), Err(61500));
        assert_eq!(parse(Grain::Daily, "20261332", "20261332"), Err(61500));
        assert_eq!(parse_period(Grain::Daily, b"{nope"), Err(47001));
    }
}
