//! HTTP routes: WeChat's two token endpoints and three retention APIs, plus
//! `/__sim/` admin endpoints.
//!
//! Handlers take raw bytes and parse them themselves, so a malformed body or
//! query gets a WeChat-style `errcode` answer (HTTP 200) instead of axum's
//! plain-text rejection, the way a collector will meet it in production.

use super::engine::{Answer, Engine};
use super::faults::Faults;
use super::request::TokenRequest;
use super::tokens::TokenKind;
use crate::dataset::Stream;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// What a broken gateway in front of WeChat sends.
const GARBAGE_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n\
<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

pub(crate) fn router(engine: Arc<Engine>) -> Router {
    let mut router = Router::new()
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/token", get(classic_token));
    for stream in Stream::all() {
        let handler = move |engine, uri, query, body| data(stream, engine, uri, query, body);
        router = router.route(&format!("/{}", stream.api().path), post(handler));
    }
    router
        .route("/__sim/stats", get(stats))
        .route("/__sim/clock", get(get_clock).post(set_clock))
        .route("/__sim/faults", get(get_faults).post(set_faults))
        .with_state(engine)
}

fn params(query: Params) -> HashMap<String, String> {
    query.map(|Query(q)| q).unwrap_or_default()
}

async fn stable_token(State(engine): State<Arc<Engine>>, uri: Uri, body: Bytes) -> Json<Value> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        tracing::debug!("simulator stable_token: body is not a JSON object");
        return Json(engine.error(47001));
    };
    let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
    let req = TokenRequest {
        grant_type: text("grant_type"),
        appid: text("appid"),
        secret: text("secret"),
        force_refresh: fields
            .get("force_refresh")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    // Never the secret or the token: only the app and the refresh flag.
    tracing::debug!(appid = ?req.appid, force_refresh = req.force_refresh, "simulator stable_token");
    let answer = engine.token_call(TokenKind::Stable, &req);
    Json(engine.echo(&format!("POST {uri}"), answer))
}

async fn classic_token(State(engine): State<Arc<Engine>>, uri: Uri, query: Params) -> Json<Value> {
    let mut q = params(query);
    let req = TokenRequest {
        grant_type: q.remove("grant_type"),
        appid: q.remove("appid"),
        secret: q.remove("secret"),
        force_refresh: false,
    };
    tracing::debug!(appid = ?req.appid, "simulator classic token");
    let answer = engine.token_call(TokenKind::Classic, &req);
    Json(engine.echo(&format!("GET {uri}"), answer))
}

/// Any data API: they differ in the stream of the asked period.
async fn data(
    stream: Stream,
    State(engine): State<Arc<Engine>>,
    uri: Uri,
    query: Params,
    body: Bytes,
) -> Response {
    let q = params(query);
    let token = q
        .get("access_token")
        .or_else(|| q.get("cloudbase_access_token"))
        .map(String::as_str);
    match engine.data_call(stream, token, &body).await {
        Answer::Json(value) => Json(engine.echo(&format!("POST {uri}"), value)).into_response(),
        Answer::GatewayError => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            GARBAGE_PAGE,
        )
            .into_response(),
        Answer::TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "text/plain")],
            "Too Many Requests\n",
        )
            .into_response(),
        Answer::Garbage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            GARBAGE_PAGE,
        )
            .into_response(),
    }
}

async fn stats(State(engine): State<Arc<Engine>>) -> Json<Value> {
    Json(engine.stats().to_json())
}

fn clock_json(engine: &Engine) -> Json<Value> {
    Json(json!({"now": engine.clock.now().to_rfc3339(), "frozen": engine.clock.is_frozen()}))
}

async fn get_clock(State(engine): State<Arc<Engine>>) -> Json<Value> {
    clock_json(&engine)
}

/// `{"now":"RFC3339"}` freezes or moves the clock; `{"now":null}` unfreezes it.
async fn set_clock(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    let now = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("now").cloned());
    match now {
        Some(Value::Null) => engine.clock.unfreeze(),
        Some(Value::String(text)) => match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(at) => engine.clock.set(at.to_utc()),
            Err(e) => return bad_request(format!("{text:?} is not RFC 3339: {e}")),
        },
        _ => return bad_request("expected {\"now\": \"RFC3339\" | null}".into()),
    }
    clock_json(&engine).into_response()
}

async fn get_faults(State(engine): State<Arc<Engine>>) -> Json<Faults> {
    Json(engine.faults())
}

/// Replaces all faults (missing fields take their defaults).
async fn set_faults(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            engine.set_faults(faults);
            Json(engine.faults()).into_response()
        }
        Err(e) => bad_request(format!("not a faults object: {e}")),
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}
