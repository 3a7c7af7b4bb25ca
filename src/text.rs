//! Text from outside made safe where it enters.
//!
//! WeChat's bodies and errmsgs, a gateway's error page, a config's app name:
//! any of them may hold NUL (which Postgres `text` and `jsonb` refuse, so
//! one answer could fail a whole batch's write), newlines (which forge log
//! lines) or ESC sequences (which a terminal obeys). What is shown to people
//! (logs, errors, `status`, `report`) goes through [`printable`]; what is
//! stored goes through [`storable`] and [`storable_json`].

use serde_json::Value;
use std::fmt::Write as _;

/// `text` with every control character written as an escape (`\n`, `\t`,
/// `\u{1b}`...): one line, nothing a terminal acts on. Printable text,
/// Chinese included, is unchanged.
pub fn printable(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Control characters (C0, DEL, C1) and the Unicode line and paragraph
/// separators and bidirectional overrides, which reorder what follows.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` as Postgres `text` takes it: NUL, which it refuses, becomes the
/// six characters `\u0000`, so nothing else of the text is lost.
pub fn storable(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\\u0000")
    } else {
        text.to_string()
    }
}

/// `value` as Postgres `jsonb` takes it: a NUL in a string (or a key),
/// which jsonb refuses even escaped, becomes U+FFFD. The raw text kept
/// beside it in the archive still says what it was.
pub fn storable_json(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', "\u{fffd}"),
        Value::Array(items) => items.iter_mut().for_each(storable_json),
        Value::Object(fields) => {
            fields.values_mut().for_each(storable_json);
            if fields.keys().any(|k| k.contains('\0')) {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\u{fffd}"), v))
                    .collect();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_one_safe_line() {
        assert_eq!(printable("计算延迟,请稍后再试"), "计算延迟,请稍后再试");
        assert_eq!(
            printable("a\nb\r\tc\u{1b}[31mred\0"),
            "a\\nb\\r\\tc\\u{1b}[31mred\\u{0}"
        );
        assert_eq!(printable("x\u{202e}y\u{85}"), "x\\u{202e}y\\u{85}");
    }

    #[test]
    fn nul_is_kept_as_an_escape_in_text_and_masked_in_json() {
        assert_eq!(storable("a\0b"), "a\\u0000b");
        assert_eq!(storable("ab"), "ab");
        let mut v = serde_json::json!({"note": "a\u{0}b", "k\u{0}": [1, "\u{0}"]});
        storable_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"note": "a\u{fffd}b", "k\u{fffd}": [1, "\u{fffd}"]})
        );
    }

    proptest::proptest! {
        #[test]
        fn printable_never_holds_a_control_character(text in ".*") {
            let shown = printable(&text);
            proptest::prop_assert!(!shown.chars().any(is_unsafe));
            proptest::prop_assert!(!storable(&text).contains('\0'));
        }
    }
}
