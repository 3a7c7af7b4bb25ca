//! `--log-format json`: one JSON object per line, with typed fields.
//!
//! tracing-subscriber's own JSON format writes every field logged with `?`
//! or `%` as a string, and leaves out a field whose `Option` is `None`: a
//! shipper then sees `"next_due": "Some(2026-…)"`, or no `next_due` at all.
//! This one writes numbers and booleans as such, a list (see
//! [`super::list`]) as an array, and a field the event declares but did not
//! record (an `Option` that was `None`) as `null`.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter for `--log-format json`.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        for field in meta.fields() {
            fields.insert(field.name().to_string(), Value::Null);
        }
        event.record(&mut Fields(&mut fields));
        // The fields of the spans around the event (a period's appid,
        // dataset, grain and period), as their JSON field formatter wrote
        // them; the event's own fields win.
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let extensions = span.extensions();
                let Some(formatted) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(span_fields)) = serde_json::from_str(formatted.as_str()) {
                    for (name, value) in span_fields {
                        fields.entry(name).or_insert(value);
                    }
                }
            }
        }
        writeln!(
            writer,
            "{}",
            line(meta.level().as_str(), meta.target(), fields)
        )
    }
}

/// One log line: `timestamp` (RFC 3339, UTC), `level`, `target`, then the
/// fields (`message` among them). A field named like one of the first three
/// cannot replace it.
pub fn line(level: &str, target: &str, fields: Map<String, Value>) -> String {
    let mut object = Map::new();
    object.insert(
        "timestamp".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .into(),
    );
    object.insert("level".into(), level.into());
    object.insert("target".into(), target.into());
    for (name, value) in fields {
        object.entry(name).or_insert(value);
    }
    // serde_json escapes newlines inside strings: one object, one line.
    Value::Object(object).to_string()
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn set(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: null.
        self.set(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, value.into());
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.set(field, number_or_text(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.set(field, number_or_text(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field, super::chain(value).into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.set(field, list_or_text(text));
    }
}

/// A 128-bit integer as a number when it fits in 64 bits, else as text
/// (JSON parsers lose precision beyond that).
fn number_or_text<T: Copy + fmt::Display + TryInto<i64> + TryInto<u64>>(value: T) -> Value {
    if let Ok(n) = TryInto::<i64>::try_into(value) {
        n.into()
    } else if let Ok(n) = TryInto::<u64>::try_into(value) {
        n.into()
    } else {
        value.to_string().into()
    }
}

/// A value printed as a JSON array (what [`super::list`] prints) is kept as
/// one; any other text stays text. Only a whole, valid array counts, which
/// no message or error text is.
fn list_or_text(text: String) -> Value {
    if text.starts_with('[') && text.ends_with(']') {
        if let Ok(list @ Value::Array(_)) = serde_json::from_str(&text) {
            return list;
        }
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_json_array_becomes_an_array() {
        assert_eq!(list_or_text("[0,1,4]".into()), serde_json::json!([0, 1, 4]));
        assert_eq!(list_or_text("[]".into()), serde_json::json!([]));
        for text in ["[48001] no permission", "[a, b]", "x [1]", "{\"a\":1}", "1"] {
            assert_eq!(list_or_text(text.into()), Value::String(text.into()));
        }
    }

    #[test]
    fn a_line_keeps_its_own_keys_and_is_one_line() {
        let mut fields = Map::new();
        fields.insert("message".into(), "two\nlines".into());
        fields.insert("level".into(), "spoofed".into());
        let text = line("WARN", "wxretain::x", fields);
        assert!(!text.contains('\n'), "{text}");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "two\nlines");
        assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn big_integers_stay_numbers_when_they_fit() {
        assert_eq!(number_or_text(5i128), serde_json::json!(5));
        assert_eq!(
            number_or_text(u128::MAX),
            Value::String(u128::MAX.to_string())
        );
    }
}
