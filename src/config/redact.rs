//! Keeping secrets out of what people read: database URLs in messages, and
//! a warning for files that hold a secret and that others can read.

use std::path::Path;

/// Whether a database URL's query parameter holds a secret: `password`
/// (which sqlx reads, like the userinfo's) or `sslpassword` (libpq's
/// client-key passphrase, which sqlx does not read but a URL copied from a
/// libpq setup may carry). Any case: a stray `PASSWORD=` is still a password.
/// `passfile` names a file, and the file is what holds the secret.
pub fn is_secret_url_param(key: &str) -> bool {
    ["password", "sslpassword"]
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

/// The URL with every secret replaced by `***`, for messages:
/// `postgres://user:secret@host/db?password=secret` →
/// `postgres://user:***@host/db?password=***`.
pub fn redact_url_password(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "<unparseable URL>".to_string();
    };
    let in_userinfo = parsed.password().is_some();
    let in_query = parsed.query_pairs().any(|(k, _)| is_secret_url_param(&k));
    if !in_userinfo && !in_query {
        return url.to_string();
    }
    if in_userinfo {
        // set_password only fails for URLs that cannot have one.
        let _ = parsed.set_password(Some("***"));
    }
    if in_query {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_url_param(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// What secret the config file's text holds, if any: the database
/// password, in `[database] url` (its `user:password@` or a `password=`
/// query parameter). Credentials are never inline (`secret_env`,
/// `secret_file` and `token_env` only name where they are), so a file without
/// such a URL holds nothing secret and may be world-readable.
pub(super) fn inline_secret(text: &str) -> Option<&'static str> {
    let raw: super::raw::RawConfig = toml::from_str(text).ok()?;
    let url = reqwest::Url::parse(&raw.database.url?).ok()?;
    let in_query = url.query_pairs().any(|(k, _)| is_secret_url_param(&k));
    (url.password().is_some() || in_query).then_some("the database password")
}

/// Secrets in a file others can read are half-public: say so, but go on.
pub(super) fn warn_if_readable_by_others(path: &Path, holds: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    holds,
                    "file holds a secret but other users can read it; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, holds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_secrets_are_redacted_in_userinfo_and_query() {
        let cases = [
            ("postgres://u:hunter2@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=hunter2",
                "postgres://u@h/db?password=***",
            ),
            (
                "postgres://u@h:5/db?sslmode=require&PassWord=hunter2&application_name=x",
                "postgres://u@h:5/db?sslmode=require&PassWord=***&application_name=x",
            ),
            (
                "postgresql://u:a@h/db?sslpassword=hunter2&password=hunter2",
                "postgresql://u:***@h/db?sslpassword=***&password=***",
            ),
            // Percent-encoded keys are what sqlx decodes, so they are decoded here too.
            (
                "postgres://u@h/db?pass%77ord=hunter2",
                "postgres://u@h/db?password=***",
            ),
            (
                "postgres://u@h/db?sslmode=disable",
                "postgres://u@h/db?sslmode=disable",
            ),
            ("not a url hunter2", "<unparseable URL>"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url_password(url), redacted, "{url}");
        }
    }

    #[test]
    fn only_a_database_password_makes_the_file_secret() {
        const APP: &str = "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"S\"\n";
        assert_eq!(inline_secret(APP), None);
        let url = |u: &str| format!("[database]\nurl = \"{u}\"\n{APP}");
        assert_eq!(inline_secret(&url("postgres://u@h/db")), None);
        assert!(inline_secret(&url("postgres://u:pw@h/db")).is_some());
        assert!(inline_secret(&url("postgres://u@h/db?password=pw")).is_some());
    }
}
