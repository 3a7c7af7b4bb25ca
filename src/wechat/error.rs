//! WeChat's errcodes and what a collector does about each: one table, here.
//!
//! Callers branch on [`ErrorClass`], never on `errmsg` (its tail changes from
//! `hint: [...]` to `rid: ...` between WeChat versions).

use std::fmt;

/// An errcode WeChat answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiErrorCode {
    /// -1: system busy.
    SystemBusy,
    /// 40001: invalid credential: from the token endpoint a wrong AppSecret,
    /// from the data endpoint a token that is not valid.
    InvalidCredential,
    /// 40002: the token request's grant_type is not client_credential.
    InvalidGrantType,
    /// 40014: invalid access_token (not the latest).
    InvalidAccessToken,
    /// 42001: access_token expired.
    AccessTokenExpired,
    /// 45009: the daily quota of this API is used up.
    DailyQuota,
    /// 45011: called too often this minute.
    MinuteQuota,
    /// 47001: the request body is malformed.
    DataFormat,
    /// 48001: the app has no permission for this API.
    ApiUnauthorized,
    /// 61007: a third-party platform lacks the datacube permission set.
    ThirdPartyUnauthorized,
    /// 40013: invalid appid.
    InvalidAppId,
    /// 40125: invalid AppSecret.
    InvalidSecret,
    /// 40164: the caller's IP is not on the app's whitelist.
    IpNotWhitelisted,
    /// 40243: the AppSecret is frozen (an administrator froze it).
    SecretFrozen,
    /// 41002: the token request has no appid.
    AppIdMissing,
    /// 41004: the token request has no AppSecret.
    SecretMissing,
    /// 61500: date format error.
    DateFormat,
    /// 61501: date range error (the period has not ended, or is not served).
    DateRange,
    /// 61503: data still being computed ("计算延迟,请稍后再试").
    NotReady,
    /// Any other code: kept verbatim, tried a bounded number of times
    /// ([`ErrorClass::Unknown`]).
    Other(i64),
}

/// What the collector does about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry with backoff within the pass, then due again later.
    Transient,
    /// The token was refused: refresh once and retry once.
    Token,
    /// Per-minute quota: pause the app until the next minute.
    MinuteQuota,
    /// Daily quota: pause the app until the next Beijing day.
    DailyQuota,
    /// WeChat has not computed the period yet: due later, not a failure.
    NotReady,
    /// 61501: not ended yet (a recent period) or not served (an old one).
    DateRange,
    /// The app's setup is wrong: mark it broken, leave the other apps alone.
    Config,
    /// Our request is wrong: report it with the request, never retry.
    Bug,
    /// Never sent: the app had been paused by the time it was its turn.
    Paused,
    /// An errcode this table does not know. Neither busy (retrying it at
    /// once) nor a setup problem (pausing the app) is known to fit, so the
    /// period is asked again a few times, hours apart, then left failing:
    /// treated as transient, an errcode WeChat gives for good would be asked
    /// for every few hours until the period's deadline, weeks away.
    Unknown,
}

impl ApiErrorCode {
    pub fn from_code(code: i64) -> Self {
        use ApiErrorCode::*;
        match code {
            -1 => SystemBusy,
            40001 => InvalidCredential,
            40002 => InvalidGrantType,
            40014 => InvalidAccessToken,
            42001 => AccessTokenExpired,
            45009 => DailyQuota,
            45011 => MinuteQuota,
            47001 => DataFormat,
            48001 => ApiUnauthorized,
            61007 => ThirdPartyUnauthorized,
            40013 => InvalidAppId,
            40125 => InvalidSecret,
            40164 => IpNotWhitelisted,
            40243 => SecretFrozen,
            41002 => AppIdMissing,
            41004 => SecretMissing,
            61500 => DateFormat,
            61501 => DateRange,
            61503 => NotReady,
            other => Other(other),
        }
    }

    pub fn code(self) -> i64 {
        use ApiErrorCode::*;
        match self {
            SystemBusy => -1,
            InvalidCredential => 40001,
            InvalidGrantType => 40002,
            InvalidAccessToken => 40014,
            AccessTokenExpired => 42001,
            DailyQuota => 45009,
            MinuteQuota => 45011,
            DataFormat => 47001,
            ApiUnauthorized => 48001,
            ThirdPartyUnauthorized => 61007,
            InvalidAppId => 40013,
            InvalidSecret => 40125,
            IpNotWhitelisted => 40164,
            SecretFrozen => 40243,
            AppIdMissing => 41002,
            SecretMissing => 41004,
            DateFormat => 61500,
            DateRange => 61501,
            NotReady => 61503,
            Other(code) => code,
        }
    }

    pub fn class(self) -> ErrorClass {
        use ApiErrorCode::*;
        match self {
            SystemBusy => ErrorClass::Transient,
            Other(_) => ErrorClass::Unknown,
            InvalidCredential | InvalidAccessToken | AccessTokenExpired => ErrorClass::Token,
            MinuteQuota => ErrorClass::MinuteQuota,
            DailyQuota => ErrorClass::DailyQuota,
            NotReady => ErrorClass::NotReady,
            DateRange => ErrorClass::DateRange,
            ApiUnauthorized
            | ThirdPartyUnauthorized
            | InvalidAppId
            | InvalidSecret
            | IpNotWhitelisted
            | InvalidGrantType
            | SecretFrozen
            | AppIdMissing
            | SecretMissing => ErrorClass::Config,
            DateFormat | DataFormat => ErrorClass::Bug,
        }
    }

    /// The class of this code when `endpoint` answered it.
    ///
    /// A token call says nothing about a period, and there is no token yet to
    /// refuse: from the token endpoint, 40001 means the AppSecret is wrong
    /// (WeChat's table for `cgi-bin/token`), and a "refused token", a
    /// malformed request, "not ready" or a date range error can only be a
    /// setup problem too (a wrong base_url, a gateway rewriting requests).
    /// Treating them as [`ErrorClass::Config`] pauses the app, raises
    /// `wxretain_app_broken` and tries again in an hour; treated as a refused
    /// token, each period would cost a token call, forever. An errcode we do
    /// not know is a refusal of the app's credentials too, for the same
    /// reason. Busy and quota answers keep their class: they pass by themselves.
    pub fn class_at(self, endpoint: Endpoint) -> ErrorClass {
        match (endpoint, self.class()) {
            (
                Endpoint::Token,
                ErrorClass::Token
                | ErrorClass::Bug
                | ErrorClass::NotReady
                | ErrorClass::DateRange
                | ErrorClass::Unknown,
            ) => ErrorClass::Config,
            (_, class) => class,
        }
    }

    /// [`Self::meaning`], as `endpoint` means it.
    pub fn meaning_at(self, endpoint: Endpoint) -> &'static str {
        match (endpoint, self) {
            (Endpoint::Token, ApiErrorCode::InvalidCredential) => {
                "the AppSecret is wrong or is not this app's: a configuration error"
            }
            _ => self.meaning(),
        }
    }

    /// What an operator should do, in words, for logs and `status`.
    pub fn meaning(self) -> &'static str {
        use ApiErrorCode::*;
        match self {
            SystemBusy => "WeChat is busy",
            InvalidCredential => "access token refused (invalid credential)",
            InvalidGrantType => "WeChat refused the token request's grant_type",
            InvalidAccessToken => "access token is not the latest",
            AccessTokenExpired => "access token expired",
            DailyQuota => "daily API quota used up",
            MinuteQuota => "per-minute API quota used up",
            DataFormat => "WeChat could not parse the request body",
            ApiUnauthorized => "the app lacks permission for the datacube API",
            ThirdPartyUnauthorized => {
                "the third-party platform lacks the datacube permission set (18)"
            }
            InvalidAppId => "WeChat does not know this appid",
            InvalidSecret => "the AppSecret is wrong",
            IpNotWhitelisted => "this machine's IP is not on the app's IP whitelist",
            SecretFrozen => "the AppSecret is frozen: an administrator must unfreeze or reset it",
            AppIdMissing => "the token request reached WeChat without an appid",
            SecretMissing => "the token request reached WeChat without an AppSecret",
            DateFormat => "WeChat refused the date format",
            DateRange => "WeChat refused the period (not ended yet, or too old)",
            NotReady => "WeChat is still computing this period",
            Other(_) => "unknown errcode",
        }
    }
}

impl fmt::Display for ApiErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errcode {} ({})", self.code(), self.meaning())
    }
}

/// Which call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    /// A datacube call: `getWeeklyRetain`...
    Data(crate::dataset::Api),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Token => f.write_str("token"),
            Endpoint::Data(api) => f.write_str(api.endpoint()),
        }
    }
}

/// A failed call. Its text never holds a token, a secret, or a URL with either.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// WeChat answered with an errcode (what it means depends on which call).
    #[error("{endpoint}: errcode {} ({}): {errmsg}", .code.code(), .code.meaning_at(*.endpoint))]
    Api {
        endpoint: Endpoint,
        code: ApiErrorCode,
        errmsg: String,
    },
    /// A non-2xx HTTP status (a gateway in front of WeChat, usually).
    #[error("{endpoint}: HTTP {status}")]
    Http { endpoint: Endpoint, status: u16 },
    /// Timeouts, refused or reset connections, TLS failures.
    #[error("{endpoint}: {message}")]
    Transport { endpoint: Endpoint, message: String },
    /// A 2xx answer that is not a JSON object.
    #[error("{endpoint}: answer is not JSON ({detail}); body starts {body:?}")]
    Garbage {
        endpoint: Endpoint,
        detail: String,
        body: String,
    },
    /// An answer larger than `wechat.max_body_bytes`.
    #[error("{endpoint}: answer larger than {limit} bytes")]
    TooLarge { endpoint: Endpoint, limit: usize },
    /// `token_command` / `token_env` / `token_file` did not yield a token.
    #[error("token source: {0}")]
    TokenSource(String),
    /// WeChat refused the token a `token_command`, `token_env` or
    /// `token_file` gives, and asked again, the source gives the same one:
    /// only whoever feeds the source can fix that.
    #[error("token source: {origin} still gives the token WeChat refused with errcode {} ({}); it must be replaced there", .code.code(), .code.meaning())]
    RefusedTokenKept { origin: String, code: ApiErrorCode },
    /// Not sent: while this call waited its turn, WeChat refused the app
    /// (a quota, its setup), so the call would only be refused too.
    #[error("not sent: the app was paused while the call waited (quota or configuration)")]
    Paused,
    /// Not sent: this process's leases were not renewed in time (it was
    /// stopped, or the database did not answer), so another replica may
    /// hold the period now.
    #[error("not sent: this process's leases ran out before the call's turn")]
    LeaseRunOut,
}

impl FetchError {
    pub fn class(&self) -> ErrorClass {
        match self {
            FetchError::Api { endpoint, code, .. } => code.class_at(*endpoint),
            FetchError::Http { status, .. } if *status >= 500 || *status == 429 => {
                ErrorClass::Transient
            }
            // 4xx from a gateway: most often a wrong base_url.
            FetchError::Http { .. } => ErrorClass::Config,
            FetchError::Transport { .. }
            | FetchError::Garbage { .. }
            | FetchError::TooLarge { .. } => ErrorClass::Transient,
            FetchError::TokenSource(_) | FetchError::RefusedTokenKept { .. } => ErrorClass::Config,
            FetchError::Paused | FetchError::LeaseRunOut => ErrorClass::Paused,
        }
    }

    /// The errcode, when WeChat gave one (what the ledger's `last_errcode` holds).
    pub fn errcode(&self) -> Option<i64> {
        match self {
            FetchError::Api { code, .. } | FetchError::RefusedTokenKept { code, .. } => {
                Some(code.code())
            }
            _ => None,
        }
    }

    /// The class of a failure recorded before the ledger kept its class
    /// (`last_error_class` is NULL on those rows), read from its
    /// `last_errcode` and `last_error` (this error's text, which starts with
    /// the endpoint: `token: …`, `token source: …`, `getweanalysis…: …`).
    /// `None` when the text is not one of these errors' (a rejected answer,
    /// say). Every failure recorded since has its class in the ledger.
    pub fn legacy_class(errcode: Option<i64>, text: &str) -> Option<ErrorClass> {
        // A token source's failures are its own, whatever errcode they carry.
        if text.starts_with("token source:") {
            return Some(ErrorClass::Config);
        }
        let at_token_endpoint = text.starts_with("token:");
        if let Some(code) = errcode {
            let code = ApiErrorCode::from_code(code);
            return Some(if at_token_endpoint {
                code.class_at(Endpoint::Token)
            } else {
                code.class()
            });
        }
        let status: u16 = text.split_once(": HTTP ")?.1.trim().parse().ok()?;
        Some(
            FetchError::Http {
                endpoint: Endpoint::Token,
                status,
            }
            .class(),
        )
    }

    /// A short label for metrics, logs and the ledger's `last_error_class`.
    pub fn kind(&self) -> &'static str {
        self.class().as_str()
    }
}

impl ErrorClass {
    /// The class's name in the ledger's `last_error_class`, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Token => "token",
            ErrorClass::MinuteQuota | ErrorClass::DailyQuota => "quota",
            ErrorClass::NotReady => "not_ready",
            ErrorClass::DateRange => "date_range",
            ErrorClass::Config => "config",
            ErrorClass::Bug => "bug",
            ErrorClass::Paused => "paused",
            ErrorClass::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every errcode in the reference notes, with the class the notes prescribe.
    const NOTES: &[(i64, ErrorClass)] = &[
        (-1, ErrorClass::Transient),
        (40001, ErrorClass::Token),
        (40014, ErrorClass::Token),
        (42001, ErrorClass::Token),
        (45009, ErrorClass::DailyQuota),
        (45011, ErrorClass::MinuteQuota),
        (61500, ErrorClass::Bug),
        (61501, ErrorClass::DateRange),
        (61503, ErrorClass::NotReady),
        (48001, ErrorClass::Config),
        (61007, ErrorClass::Config),
        (40013, ErrorClass::Config),
        (40125, ErrorClass::Config),
        (40164, ErrorClass::Config),
        (47001, ErrorClass::Bug),
    ];

    #[test]
    fn every_errcode_of_the_notes_maps_to_its_class_and_back() {
        for &(code, class) in NOTES {
            let parsed = ApiErrorCode::from_code(code);
            assert!(
                !matches!(parsed, ApiErrorCode::Other(_)),
                "{code} has no variant"
            );
            assert_eq!(parsed.code(), code);
            assert_eq!(parsed.class(), class, "class of {code}");
        }
        assert_eq!(ApiErrorCode::from_code(12345), ApiErrorCode::Other(12345));
        assert_eq!(ApiErrorCode::Other(12345).class(), ErrorClass::Unknown);
    }

    fn api(endpoint: Endpoint, code: i64) -> FetchError {
        FetchError::Api {
            endpoint,
            code: ApiErrorCode::from_code(code),
            errmsg: "invalid credential, access_token is invalid or not latest rid: 1".into(),
        }
    }

    fn weekly() -> Endpoint {
        Endpoint::Data(crate::dataset::retention::api(crate::domain::Grain::Weekly))
    }

    #[test]
    fn the_class_of_a_legacy_row_is_read_from_its_text() {
        let weekly = weekly();
        let errors = [
            api(weekly, 48001),
            api(weekly, 61503),
            api(weekly, 40001),
            api(Endpoint::Token, 40001),
            api(Endpoint::Token, 40125),
            api(Endpoint::Token, -1),
            FetchError::TokenSource("get-token exited with 1 (0 bytes on stderr)".into()),
            FetchError::RefusedTokenKept {
                origin: "token_file /run/secrets/token".into(),
                code: ApiErrorCode::from_code(40001),
            },
            api(weekly, 99999),
            api(Endpoint::Token, 99999),
            FetchError::Http {
                endpoint: weekly,
                status: 404,
            },
            FetchError::Http {
                endpoint: Endpoint::Token,
                status: 429,
            },
            FetchError::Http {
                endpoint: weekly,
                status: 502,
            },
            FetchError::Transport {
                endpoint: weekly,
                message: "timed out".into(),
            },
        ];
        for e in errors {
            let recorded = FetchError::legacy_class(e.errcode(), &e.to_string());
            let expected = match e.class() {
                // Transport failures say nothing the text could be read for.
                ErrorClass::Transient if matches!(e, FetchError::Transport { .. }) => None,
                class => Some(class),
            };
            assert_eq!(recorded, expected, "{e}");
        }
        assert_eq!(
            FetchError::legacy_class(None, "rejected answer: keys repeat"),
            None
        );
    }

    #[test]
    fn the_token_endpoint_refusing_credentials_is_a_configuration_error() {
        for code in [
            40001, 40002, 40013, 40014, 40125, 40164, 40243, 41002, 41004, 42001,
        ] {
            assert_eq!(
                api(Endpoint::Token, code).class(),
                ErrorClass::Config,
                "{code}"
            );
        }
        for code in [47001, 61500, 61501, 61503, 12345] {
            assert_eq!(
                api(Endpoint::Token, code).class(),
                ErrorClass::Config,
                "{code}"
            );
        }
        // What passes by itself keeps its class.
        assert_eq!(api(Endpoint::Token, -1).class(), ErrorClass::Transient);
        assert_eq!(api(Endpoint::Token, 45011).class(), ErrorClass::MinuteQuota);
        assert_eq!(api(Endpoint::Token, 45009).class(), ErrorClass::DailyQuota);
        // The data endpoint's refused tokens stay refused tokens.
        for code in [40001, 40014, 42001] {
            assert_eq!(api(weekly(), code).class(), ErrorClass::Token, "{code}");
        }
        let wrong_secret = api(Endpoint::Token, 40001).to_string();
        assert!(
            wrong_secret.starts_with("token: errcode 40001 (the AppSecret is wrong"),
            "{wrong_secret}"
        );
        assert!(wrong_secret.contains("configuration"), "{wrong_secret}");
        let refused = api(weekly(), 40001).to_string();
        assert!(
            refused.contains("errcode 40001 (access token refused"),
            "{refused}"
        );
    }
}
