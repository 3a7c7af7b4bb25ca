//! One way to send a request and read its answer: bounded in size, JSON only,
//! and scrubbed of every secret before anyone else sees it.

use super::error::{ApiErrorCode, Endpoint, FetchError};
use crate::text::printable;
use serde_json::Value;

/// A POST with a JSON body. reqwest's `json()` would do, but it sets no
/// charset, and some gateways in front of WeChat insist on one.
pub fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .body(body.to_string())
}

/// Sends, reads at most `limit` bytes, and parses a JSON object.
///
/// This is where an answer enters wxretain, so it is scrubbed here, once:
/// `secrets` (the token, the AppSecret) and any credential query parameter
/// are removed from the answer and from any text an error keeps. Proxies,
/// gateways and some errmsgs echo the request URL, and with it the token;
/// what leaves this function can be stored and logged as it is.
pub async fn send_and_read(
    request: reqwest::RequestBuilder,
    endpoint: Endpoint,
    limit: usize,
    secrets: &[&str],
) -> Result<serde_json::Value, FetchError> {
    send_and_read_text(request, endpoint, limit, secrets)
        .await
        .map(|(value, _)| value)
}

/// As [`send_and_read`], with the body's text as received: parsing loses
/// what the archive should keep (a key given twice, how numbers were written).
pub async fn send_and_read_text(
    request: reqwest::RequestBuilder,
    endpoint: Endpoint,
    limit: usize,
    secrets: &[&str],
) -> Result<(serde_json::Value, String), FetchError> {
    let transport = |e: reqwest::Error| FetchError::Transport {
        endpoint,
        // The URL carries the access token: drop it before the text exists.
        message: printable(&scrub(&describe(&e.without_url()), secrets)),
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(FetchError::TooLarge { endpoint, limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge { endpoint, limit });
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(FetchError::Http {
            endpoint,
            status: status.as_u16(),
        });
    }
    match serde_json::from_slice::<Value>(&body) {
        // JSON that parsed is UTF-8 (serde_json checks the strings); the lossy
        // conversion only guards against a parser that some day does not.
        Ok(mut value) if value.is_object() => {
            scrub_json(&mut value, secrets);
            // Postgres refuses NUL in text and jsonb: made storable here,
            // where the answer enters, so no answer can fail a write.
            crate::text::storable_json(&mut value);
            let text = crate::text::storable(&scrub(&String::from_utf8_lossy(&body), secrets));
            Ok((value, text))
        }
        Ok(_) => Err(garbage(endpoint, "not a JSON object", &body, secrets)),
        Err(e) => Err(garbage(endpoint, &e.to_string(), &body, secrets)),
    }
}

/// The error a (scrubbed) answer stands for, if it has a non-zero errcode.
pub fn api_error(endpoint: Endpoint, body: &Value) -> Option<FetchError> {
    let code = body
        .get("errcode")
        .and_then(Value::as_i64)
        .filter(|&c| c != 0)?;
    Some(FetchError::Api {
        endpoint,
        code: ApiErrorCode::from_code(code),
        // Shown in logs, `status` and the ledger: one printable line.
        errmsg: printable(
            &body
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>(),
        ),
    })
}

fn garbage(endpoint: Endpoint, detail: &str, body: &[u8], secrets: &[&str]) -> FetchError {
    // Scrubbed whole, then cut: a cut first could split a secret in two
    // halves that no longer match.
    let text = scrub(&String::from_utf8_lossy(body), secrets);
    FetchError::Garbage {
        endpoint,
        detail: printable(&scrub(detail, secrets)),
        body: printable(&text.chars().take(200).collect::<String>()),
    }
}

/// Query parameters whose value is a credential, lower case. Matching is by
/// substring, so `cloudbase_access_token=`, `authorizer_access_token=`,
/// `component_access_token=`, `appsecret=` and `client_secret=` are covered
/// too; `%3d` is `=` in a URL that was itself URL-encoded into another.
const CREDENTIAL_PARAMS: [&str; 4] = ["access_token=", "secret=", "access_token%3d", "secret%3d"];

/// The length of the shortest of [`CREDENTIAL_PARAMS`]: no shorter text holds one.
const SHORTEST_PARAM: usize = "secret=".len();

/// Where a query parameter's value ends in echoed text: the next parameter,
/// whitespace, or the quote or bracket around the URL.
fn ends_value(c: char) -> bool {
    c.is_whitespace() || "&\"'<>#,;()[]{}\\|`".contains(c)
}

/// Replaces every secret in `text`, and the value of every credential query
/// parameter (see [`CREDENTIAL_PARAMS`]), with `***`.
///
/// Known secrets shorter than 4 characters are left alone: replacing them
/// would mangle the text without protecting anything. The parameter rule
/// catches credentials we do not know, such as an older token a gateway
/// still echoes.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    // A needle longer than the text cannot be in it, but looking for it
    // still prepares a search over the needle (a token is ~150 bytes): for
    // each secret, in each of an answer's ~50 short strings, that was 7 % of
    // a pass's CPU. Skipping them changes no result.
    let text = secrets
        .iter()
        .filter(|s| s.len() >= 4 && s.len() <= text.len())
        .fold(text.to_string(), |t, s| t.replace(s, "***"));
    if text.len() < SHORTEST_PARAM {
        return text;
    }
    // ASCII lowercasing keeps every byte offset, so positions found in
    // `lower` are positions (and char boundaries) in `text`.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some((found, name_len)) = CREDENTIAL_PARAMS
        .iter()
        .filter(|p| p.len() <= lower.len() - at)
        .filter_map(|p| lower[at..].find(p).map(|i| (at + i, p.len())))
        .min()
    {
        let value = found + name_len;
        let end = text[value..]
            .find(ends_value)
            .map_or(text.len(), |i| value + i);
        out.push_str(&text[at..value]);
        if end > value {
            out.push_str("***");
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// [`scrub`] on every string of a JSON value, object keys included.
pub fn scrub_json(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(text) => *text = scrub(text, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_json(v, secrets)),
        Value::Object(fields) => {
            fields.values_mut().for_each(|v| scrub_json(v, secrets));
            // Rebuilt only when a key changes: an answer has ~20 objects,
            // and rebuilding each map cost more than the rest of the scrub.
            if fields.keys().any(|key| scrub(key, secrets) != *key) {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(key, v)| (scrub(&key, secrets), v))
                    .collect();
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// reqwest's Display hides the cause (timeout, refused...) in `source()`.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_parameter_is_the_shortest_of_the_list() {
        let shortest = CREDENTIAL_PARAMS.iter().map(|p| p.len()).min();
        assert_eq!(Some(SHORTEST_PARAM), shortest);
        // Text shorter than a secret or a parameter comes back as it is.
        assert_eq!(scrub("value", &["TOKEN1234"]), "value");
        assert_eq!(scrub("secret=", &[]), "secret=");
        assert_eq!(scrub("secret=x", &[]), "secret=***");
    }

    #[test]
    fn known_secrets_and_credential_parameters_are_scrubbed() {
        let cases = [
            ("token TOKEN1234 echoed", "token *** echoed"),
            (
                "GET /cgi-bin/token?grant_type=client_credential&appid=wx1&secret=S3CRET",
                "GET /cgi-bin/token?grant_type=client_credential&appid=wx1&secret=***",
            ),
            (
                "invalid ip, url: https://api.weixin.qq.com/x?ACCESS_TOKEN=older-token&a=1 rid: 1",
                "invalid ip, url: https://api.weixin.qq.com/x?ACCESS_TOKEN=***&a=1 rid: 1",
            ),
            (
                "<a href='/x?cloudbase_access_token=abc'>",
                "<a href='/x?cloudbase_access_token=***'>",
            ),
            (
                "next=%2Fx%3Faccess_token%3Dabc%26b",
                "next=%2Fx%3Faccess_token%3D***",
            ),
            (
                "authorizer_access_token=a\nappsecret=b",
                "authorizer_access_token=***\nappsecret=***",
            ),
            ("access_token=", "access_token="),
            (
                "no credentials here: 中文 access",
                "no credentials here: 中文 access",
            ),
            ("short secret ab stays", "short secret ab stays"),
        ];
        for (text, want) in cases {
            assert_eq!(scrub(text, &["TOKEN1234", "ab"]), want, "{text}");
        }
    }

    #[test]
    fn json_is_scrubbed_in_values_and_keys_and_keeps_its_numbers() {
        let mut body = serde_json::json!({
            "ref_date": "20240304-20240310",
            "request": "POST /datacube/x?access_token=TOKEN1234",
            "TOKEN1234": [{"key": 0, "value": 12, "note": "TOKEN1234"}],
        });
        scrub_json(&mut body, &["TOKEN1234"]);
        assert_eq!(
            body,
            serde_json::json!({
                "ref_date": "20240304-20240310",
                "request": "POST /datacube/x?access_token=***",
                "***": [{"key": 0, "value": 12, "note": "***"}],
            })
        );
    }
}
