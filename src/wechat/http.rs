//! One way to send a request and read its answer: bounded in size, JSON only,
//! with every secret scrubbed from what an error can carry.

use super::error::{Endpoint, FetchError};

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
/// `secrets` are removed from any text an error keeps (a proxy's error page
/// can echo the URL and its `access_token`).
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
        message: describe(&e.without_url()),
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
    match serde_json::from_slice::<serde_json::Value>(&body) {
        // JSON that parsed is UTF-8 (serde_json checks the strings); the lossy
        // conversion only guards against a parser that some day does not.
        Ok(value) if value.is_object() => Ok((value, String::from_utf8_lossy(&body).into_owned())),
        Ok(_) => Err(garbage(endpoint, "not a JSON object", &body, secrets)),
        Err(e) => Err(garbage(endpoint, &e.to_string(), &body, secrets)),
    }
}

fn garbage(endpoint: Endpoint, detail: &str, body: &[u8], secrets: &[&str]) -> FetchError {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    FetchError::Garbage {
        endpoint,
        detail: detail.to_string(),
        body: scrub(&text, secrets),
    }
}

/// Replaces every secret in `text` with `***`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_string(), |t, s| t.replace(s, "***"))
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
