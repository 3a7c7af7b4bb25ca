//! Mini Program appids: `wx` followed by 16 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

/// An appid known to have WeChat's shape, so it is safe in URLs, SQL and logs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Mini Program appid (expected \"wx\" followed by 16 hex digits)")]
pub struct AppIdError(pub String);

impl AppId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AppId {
    type Err = AppIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 18
            && s.starts_with("wx")
            && s[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(AppIdError(s.to_string()))
        }
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AppId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for AppId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AppId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_real_shape_only() {
        assert!("wx0123456789abcdef".parse::<AppId>().is_ok());
        for bad in [
            "",
            "wx0123456789ABCDEF",
            "wx0123456789abcde",
            "wa0123456789abcdef",
            "wx0123456789abcdeg",
            "wx0123456789abcdef0",
        ] {
            assert!(bad.parse::<AppId>().is_err(), "{bad} should be refused");
        }
    }

    proptest! {
        #[test]
        fn generated_appids_parse(hex in "[0-9a-f]{16}") {
            let text = format!("wx{hex}");
            prop_assert_eq!(text.parse::<AppId>().map(|a| a.to_string()), Ok(text));
        }

        #[test]
        fn other_text_never_panics(text in ".{0,24}") {
            let _ = text.parse::<AppId>();
        }
    }
}
