//! Misbehaviour the simulator can inject, to exercise a collector's retries.

use crate::domain::AppId;

/// Faults applied to data calls (and, for a few app errors, token calls).
///
/// Rates are probabilities per data call, drawn from one RNG seeded with
/// `seed`, so a run with the same calls in the same order sees the same faults.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Faults {
    /// Added before every data call is answered.
    pub latency_ms: u64,
    /// `(errcode, probability)`: the first that fires answers that errcode.
    pub error_rates: Vec<(i64, f64)>,
    /// Answers HTTP 502 with an HTML body, as a failing gateway would.
    pub http_5xx_rate: f64,
    /// Answers HTTP 429 Too Many Requests, as a rate-limiting gateway in
    /// front of WeChat does: busy, not a wrong setup.
    pub http_429_rate: f64,
    /// Answers HTTP 200 with an HTML error page instead of JSON.
    pub garbage_rate: f64,
    /// Answers the previous period's data and `ref_date` (the day, week or
    /// month before) instead of the asked one.
    pub wrong_ref_date_rate: f64,
    /// Answers, this once, more new users than active ones for key 0: an
    /// answer that cannot be true, as a glitch would produce.
    pub implausible_rate: f64,
    /// Answers the asked period with empty series, as WeChat does for a
    /// period it has no data for (yet).
    pub empty_answer_rate: f64,
    /// Answers every key of the grain, those not published yet as 0: a
    /// period reported ahead of its time, which must neither be stored nor
    /// end the period.
    pub premature_keys_rate: f64,
    /// These apps' answers carry a `note` field holding NUL, a newline and
    /// an ESC sequence, as an answer WeChat (or a gateway) might pass on:
    /// Postgres refuses NUL, terminals obey ESC.
    pub hostile_text_apps: Vec<AppId>,
    /// Appended to every errmsg: text a gateway or WeChat may put there
    /// (NUL, newlines that forge log lines, ESC sequences).
    pub errmsg_suffix: Option<String>,
    /// These apps' values are multiplied by 2^32: a platform of billions of
    /// users, where any 32-bit integer on the way would overflow.
    pub huge_apps: Vec<AppId>,
    /// These apps' answers always have more new users than active ones for
    /// key 0, identically each time: impossible, but what WeChat says.
    pub implausible_apps: Vec<AppId>,
    /// A token answers 42001 from its (N+1)-th data call on.
    pub token_expire_after_calls: Option<u32>,
    /// Data calls per app and API per minute before 45011 (each retention
    /// API has its own quota, as WeChat's do).
    pub minute_quota: Option<u32>,
    /// Data calls per app and API per Beijing day before 45009.
    pub daily_quota: Option<u32>,
    /// That app always gets that errcode on data calls; 40013, 40125 and
    /// 40164 are also answered on token calls.
    pub app_errors: Vec<(AppId, i64)>,
    /// These apps' AppSecrets: a token call for one of them with any other
    /// secret answers 40001, as WeChat's token endpoints do for a wrong
    /// secret. Apps not listed accept any non-empty secret.
    pub app_secrets: Vec<(AppId, String)>,
    /// Replaces `expires_in` in every token answer, with any JSON: a huge
    /// number, a negative one, a string...
    pub token_expires_in: Option<serde_json::Value>,
    /// Answers echo the request's path and query, as some proxies and
    /// gateways do: appended to every `errmsg`, and as a `request` field of
    /// every successful answer. The query holds the access token (and the
    /// AppSecret on `cgi-bin/token`): a collector must scrub what it keeps.
    pub echo_request: bool,
    pub seed: u64,
}

/// Makes a truth answer impossible: key 0 of `visit_uv_new` one above key 0
/// of `visit_uv` (the same change every time, so it can be confirmed).
pub(crate) fn make_implausible(answer: &mut serde_json::Value) {
    let active = answer
        .pointer("/visit_uv/0/value")
        .and_then(serde_json::Value::as_i64);
    if let (Some(active), Some(new)) = (active, answer.pointer_mut("/visit_uv_new/0/value")) {
        *new = serde_json::json!(active + 1);
    }
}

/// Adds every key of `keys` missing from an answer's series, as 0.
pub(crate) fn make_premature(answer: &mut serde_json::Value, keys: &[u8]) {
    for series in ["visit_uv_new", "visit_uv"] {
        if let Some(entries) = answer.get_mut(series).and_then(|s| s.as_array_mut()) {
            let have: Vec<u64> = entries
                .iter()
                .filter_map(|e| e.get("key").and_then(serde_json::Value::as_u64))
                .collect();
            for &key in keys {
                if !have.contains(&u64::from(key)) {
                    entries.push(serde_json::json!({"key": key, "value": 0}));
                }
            }
        }
    }
}

/// Multiplies every value of an answer by 2^32.
pub(crate) fn make_huge(answer: &mut serde_json::Value) {
    for series in ["visit_uv_new", "visit_uv"] {
        if let Some(entries) = answer.get_mut(series).and_then(|s| s.as_array_mut()) {
            for entry in entries {
                if let Some(value) = entry.get_mut("value") {
                    let scaled = value.as_i64().map(|v| v.saturating_mul(1 << 32));
                    if let Some(scaled) = scaled {
                        *value = serde_json::json!(scaled);
                    }
                }
            }
        }
    }
}

/// Errcodes that `app_errors` also answers on token calls.
pub(crate) const TOKEN_CALL_ERRORS: [i64; 3] = [40013, 40125, 40164];

impl Faults {
    /// The configured errcode for `appid`, if any.
    pub(crate) fn app_error(&self, appid: &AppId) -> Option<i64> {
        self.app_errors
            .iter()
            .find(|(app, _)| app == appid)
            .map(|&(_, code)| code)
    }

    /// Whether `secret` is wrong for `appid` (only listed apps can be wrong).
    pub(crate) fn wrong_secret(&self, appid: &AppId, secret: &str) -> bool {
        self.app_secrets
            .iter()
            .any(|(app, expected)| app == appid && expected != secret)
    }
}

/// The `errmsg` WeChat sends with `code` (without the `rid:` tail).
pub(crate) fn errmsg(code: i64) -> &'static str {
    match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40125 => "invalid appsecret",
        40164 => "invalid ip 10.0.0.1 ipv6 ::ffff:10.0.0.1, not in whitelist",
        41001 => "access_token missing",
        42001 => "access_token expired",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit  mustslower  retry next minute",
        47001 => "data format error",
        48001 => "api unauthorized",
        61007 => "api is unauthorized to component",
        61500 => "date format error",
        61501 => "date range error",
        61503 => "计算延迟,请稍后再试",
        _ => "simulated error",
    }
}
