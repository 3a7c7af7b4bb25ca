//! Hardening of the WeChat side: what an echoing gateway, a wrong secret, a
//! failing token source, an odd `expires_in` and `force_refresh` can do.

mod common;

use common::*;
use std::io::Write;
use std::sync::{Arc, Mutex};
use wxretain::domain::{NaturalWeek, BEIJING};
use wxretain::simulator::Faults;

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("capture lock").clone()).expect("utf-8 log")
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    beijing(2026, 11, 24, 12)
}

fn weeks(n: i64) -> (NaturalWeek, NaturalWeek) {
    let last = NaturalWeek::last_completed_at(now(), BEIJING);
    (last.plus_weeks(1 - n), last)
}

/// The secret `config_toml` gives `appid`.
fn secret_of(appid: &wxretain::domain::AppId) -> String {
    format!("secret-{appid}")
}

/// The whole test database as `pg_dump` prints it.
async fn pg_dump(db: &TestDb) -> String {
    let out = tokio::process::Command::new("pg_dump")
        .arg(&db.url)
        .output()
        .await
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 dump")
}

// ---- 1. tokens and secrets are scrubbed from everything kept ----------------

/// A gateway echoes every request URL (with the access token, and with the
/// AppSecret on the classic token endpoint) into errmsg and into answers:
/// rejected ones, valid ones with an extra field, and errors at both
/// endpoints. None of it may reach the database, the log or `status`.
#[tokio::test]
async fn tokens_and_secrets_echoed_by_a_gateway_are_stored_and_logged_nowhere() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_env_filter("debug,sqlx=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn")
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = TestDb::new().await;
    let apps = apps(4);
    let (no_permission, not_whitelisted) = (apps[2].clone(), apps[3].clone());
    let sim = simulator(now(), |c| {
        c.faults = Faults {
            echo_request: true,
            wrong_ref_date_rate: 0.3,
            app_errors: vec![
                (no_permission.clone(), 48001),
                (not_whitelisted.clone(), 40164),
            ],
            seed: 3,
            ..Faults::default()
        };
    })
    .await;
    // The classic endpoint puts the AppSecret in the URL, so its echo has it.
    let extra = format!("{FAST}token_endpoint = \"classic\"\n");
    let p = pipeline(config(&db, &sim, &apps, &extra)).await;
    let (first, last) = weeks(12);
    backfill(&p, first, last, now(), false).await;

    // The echoes did reach every place that keeps text (scrubbed).
    let rejected: Vec<String> = sqlx::query_scalar("SELECT body FROM rejected_answers")
        .fetch_all(p.store.pool())
        .await
        .expect("rejected");
    assert!(!rejected.is_empty(), "some answers were rejected");
    assert!(
        rejected.iter().all(|b| b.contains("access_token=***")),
        "{rejected:?}"
    );
    let archived: Vec<serde_json::Value> = sqlx::query_scalar("SELECT body FROM retention_answers")
        .fetch_all(p.store.pool())
        .await
        .expect("archive");
    assert!(!archived.is_empty(), "some answers were stored");
    assert!(
        archived.iter().all(|b| b["request"]
            .as_str()
            .is_some_and(|r| r.contains("access_token=***"))),
        "{archived:?}"
    );
    let errors: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT appid, last_errcode, last_error FROM retention_ledger WHERE last_errcode IS NOT NULL",
    )
    .fetch_all(p.store.pool())
    .await
    .expect("ledger errors");
    for (app, code) in [(&no_permission, 48001), (&not_whitelisted, 40164)] {
        assert!(
            errors
                .iter()
                .any(|(a, c, e)| a == app.as_str() && *c == code && e.contains("request:")),
            "{code} with its echo in the ledger: {errors:?}"
        );
    }
    assert!(
        errors.iter().any(|(_, _, e)| e.contains("secret=***")),
        "the token call's echo, secret scrubbed: {errors:?}"
    );

    let tokens = sim.issued_tokens();
    assert!(tokens.len() >= 3, "{} tokens", tokens.len());
    let secrets: Vec<String> = apps.iter().map(secret_of).collect();
    let status = format!(
        "{:?}",
        p.store
            .app_status(&apps, first, last)
            .await
            .expect("status")
    );
    let dump = pg_dump(&db).await;
    assert!(
        dump.contains("access_token=***"),
        "the dump holds the scrubbed echoes"
    );
    let log = capture.text();
    assert!(log.contains("40164"), "the log was captured");
    for (place, text) in [("database", &dump), ("log", &log), ("status", &status)] {
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "an access token is in the {place}"
            );
        }
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "an AppSecret is in the {place}"
            );
        }
    }
}
