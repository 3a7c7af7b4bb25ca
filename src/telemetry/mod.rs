//! Logging: readable lines by default, JSON for log shippers; level from `RUST_LOG`.
//!
//! With `--log-format json` every line on stderr is one JSON object, the
//! errors that end the process included ([`fatal`]), with typed fields
//! (see [`json`]). Text lines are coloured only on a terminal without
//! `NO_COLOR`: a file, a pipe, journald or `docker logs` get plain text.

mod json;

use serde_json::{Map, Value};
use std::io::{IsTerminal, Write};
use tracing_subscriber::{fmt, EnvFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The level when `RUST_LOG` is unset: one line per fetch from wxretain;
/// from its dependencies (the scheduler's "Uninited", "Job creator created",
/// connection chatter) only warnings and errors.
pub const DEFAULT_FILTER: &str = "warn,wxretain=info";

/// Installs the global subscriber, writing to stderr (stdout is for results),
/// around the progress bar when one is shown (see [`crate::progress`]).
/// `default_filter` applies when `RUST_LOG` is unset.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(crate::progress::Stderr);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour_on_stderr()).try_init(),
        LogFormat::Json => {
            // A panic's message would otherwise be plain text among the JSON.
            std::panic::set_hook(Box::new(|info| {
                write_line(&json_line("ERROR", "panic", &info.to_string(), Map::new()));
            }));
            // Span fields are kept as JSON, for the event formatter to merge.
            builder
                .fmt_fields(fmt::format::JsonFields::new())
                .event_format(json::JsonLines)
                .try_init()
        }
    };
}

/// Colour only for a person: stderr is a terminal and `NO_COLOR` is unset
/// or empty (<https://no-color.org>).
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether the command line or the environment asks for JSON logs: for the
/// errors found before the arguments are parsed (a mistyped flag).
pub fn json_requested(args: &[std::ffi::OsString], env_value: Option<&str>) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let mut asked = None;
    for (i, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix("--log-format=") {
            asked = Some(value);
        } else if *arg == "--log-format" {
            asked = args.get(i + 1).copied();
        }
    }
    asked.or(env_value) == Some("json")
}

/// Prints what ends the process: `error: MESSAGE` as text, or one JSON
/// object at level ERROR with `exit_code`. Written directly, not through
/// the subscriber: `RUST_LOG=off` must not hide why the process stopped.
pub fn fatal(format: LogFormat, message: &str, exit_code: u8) {
    match format {
        LogFormat::Text => write_line(&format!("error: {message}")),
        LogFormat::Json => {
            let mut fields = Map::new();
            fields.insert("exit_code".into(), exit_code.into());
            write_line(&json_line("ERROR", "wxretain", message, fields));
        }
    }
}

fn json_line(level: &str, target: &str, message: &str, mut fields: Map<String, Value>) -> String {
    fields.insert("message".into(), message.into());
    json::line(level, target, fields)
}

fn write_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// An error and its causes on one line, each cause once: some errors
/// (sqlx's, its migrator's) repeat their source in their own message, which
/// printing the chain would then repeat again (`database "x" does not exist:
/// … does not exist: … does not exist`).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(error);
    while let Some(e) = cause {
        let part = e.to_string();
        // Embedded causes come last in their parent's message.
        if !text.ends_with(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

/// [`chain`] of an `anyhow` error: its contexts, then its causes.
pub fn describe(error: &anyhow::Error) -> String {
    chain(error.as_ref())
}

/// A list for a log field: `keys = %telemetry::list(&keys)` is `[0,1,4]` in
/// text and a JSON array with `--log-format json`.
pub fn list<T: serde::Serialize>(items: &[T]) -> tracing::field::DisplayValue<String> {
    tracing::field::display(serde_json::to_string(items).unwrap_or_else(|_| "[]".into()))
}

/// An instant for a log field: RFC 3339 in UTC, absent in text and `null`
/// in JSON when there is none (`next_due` of a final period).
pub fn instant(at: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn each_cause_is_named_once() {
        // sqlx's shape: each layer's message embeds the next one's.
        let missing = "database \"x\" does not exist";
        let inner = Layer(missing, None);
        let sqlx = Layer(
            "error returned from database: database \"x\" does not exist",
            Some(Box::new(inner)),
        );
        let migrate = Layer(
            "while executing migrations: error returned from database: database \"x\" does not exist",
            Some(Box::new(sqlx)),
        );
        let e = anyhow::Error::new(migrate).context("applying migrations");
        let text = describe(&e);
        assert_eq!(text.matches("does not exist").count(), 1, "{text}");
        assert!(
            text.starts_with("applying migrations: while executing"),
            "{text}"
        );
        // Causes that add something are all kept, in order.
        let e = anyhow::Error::new(Layer("refused", None)).context("cannot connect");
        assert_eq!(describe(&e), "cannot connect: refused");
    }

    #[test]
    fn json_is_asked_for_by_flag_or_environment() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(json_requested(
            &args(&["wxretain", "--log-format", "json", "x"]),
            None
        ));
        assert!(json_requested(
            &args(&["wxretain", "--log-format=json"]),
            None
        ));
        assert!(json_requested(&args(&["wxretain", "status"]), Some("json")));
        assert!(!json_requested(
            &args(&["wxretain", "--log-format", "text"]),
            Some("json")
        ));
        assert!(!json_requested(&args(&["wxretain", "status"]), None));
    }

    #[test]
    fn lists_and_instants_are_typed() {
        assert_eq!(list(&[0u8, 1, 4]).to_string(), "[0,1,4]");
        assert_eq!(instant(None), None);
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-30T02:00:00Z")
            .expect("instant")
            .with_timezone(&chrono::Utc);
        assert_eq!(instant(Some(t)).as_deref(), Some("2026-11-30T02:00:00Z"));
    }
}
