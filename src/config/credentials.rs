//! How an app proves itself to WeChat, read from its `[[apps]]` entry.

use super::check::Checker;
use super::raw::RawApp;
use super::{redact, Env, Secrets};
use secrecy::SecretString;
use std::fmt;
use std::path::{Path, PathBuf};

/// How an app proves itself to WeChat.
#[derive(Clone)]
pub enum Credential {
    /// AppSecret: tokens come from WeChat's token endpoint.
    Secret(SecretString),
    /// A program that prints a current access token (third-party platforms,
    /// central token services): `argv`, run with `PATH`, `HOME`, the locale
    /// and the variables `env` names (`token_command_env`), nothing else of
    /// wxretain's environment.
    Command { argv: Vec<String>, env: Vec<String> },
    /// An environment variable that holds a current access token: read by
    /// this process, so in `run` it never changes.
    Env(String),
    /// A file that holds a current access token, kept current by someone
    /// else (a mounted secret, a sidecar): read again when its TTL passes or
    /// WeChat refuses the token.
    File(PathBuf),
    /// Not read: the config was loaded for a command that never calls
    /// WeChat ([`Secrets::Skip`]). Says where the credential would come from.
    Unresolved(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Secret([REDACTED])"),
            Credential::Command { argv, env } => f
                .debug_struct("Command")
                .field("argv", argv)
                .field("env", env)
                .finish(),
            Credential::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Credential::File(path) => f.debug_tuple("File").field(path).finish(),
            Credential::Unresolved(from) => f.debug_tuple("Unresolved").field(from).finish(),
        }
    }
}

impl Checker<'_> {
    /// What a credential file (`secret_file`, `token_file`) holds, read at
    /// start-up so that a wrong path, an empty file or one that is no regular
    /// file of at most 64 KiB fails then (see [`crate::credential_file`]); a
    /// file others can read earns a warning, once per file.
    pub(super) fn credential_file(
        &self,
        key: String,
        file: &Path,
        holds: &str,
    ) -> Result<String, super::ConfigError> {
        let text = crate::credential_file::read(file)
            .map_err(|unfit| self.invalid(key.as_str(), unfit.describe("", file)))?;
        if text.trim().is_empty() {
            return Err(self.invalid(key, format!("{} is empty", file.display())));
        }
        if self.warned.borrow_mut().insert(file.to_path_buf()) {
            redact::warn_if_readable_by_others(file, holds);
        }
        Ok(text)
    }

    /// `token_command_env`: variable names, each set when the credentials
    /// are read. A named variable that is not set is refused rather than
    /// left out: the command would fail later, and less clearly.
    fn token_command_env(
        &self,
        key: &str,
        names: &[String],
        env: &dyn Env,
    ) -> Result<(), super::ConfigError> {
        for name in names {
            let mut chars = name.chars();
            let well_formed = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !well_formed {
                return Err(self.invalid(
                    key,
                    format!("{name:?} is not an environment variable name (letters, digits, _)"),
                ));
            }
            if self.secrets == Secrets::Resolve && env.var(name).is_none() {
                return Err(self.invalid(key, format!("environment variable {name} is not set")));
            }
        }
        Ok(())
    }

    /// The app's one credential (`apps[i]`), read now unless
    /// [`Secrets::Skip`] says not to.
    pub(super) fn credential(
        &self,
        i: usize,
        appid: &str,
        raw: &mut RawApp,
        env: &dyn Env,
    ) -> Result<Credential, super::ConfigError> {
        let key = |field: &str| format!("apps[{i}].{field}");
        let given = [
            raw.secret_env.is_some(),
            raw.secret_file.is_some(),
            raw.token_command.is_some(),
            raw.token_env.is_some(),
            raw.token_file.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(self.invalid(
                format!("apps[{i}] ({appid})"),
                "set exactly one of secret_env, secret_file, token_command, token_env, token_file",
            ));
        }
        if raw.token_command_env.is_some() && raw.token_command.is_none() {
            return Err(self.invalid(
                key("token_command_env"),
                "only goes with token_command: it names the environment variables the command sees",
            ));
        }
        if let Some(argv) = raw.token_command.take() {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(self.invalid(
                    key("token_command"),
                    "must name a program, e.g. [\"/usr/local/bin/get-token\", \"wx...\"]",
                ));
            }
            let names = raw.token_command_env.take().unwrap_or_default();
            self.token_command_env(&key("token_command_env"), &names, env)?;
            return Ok(Credential::Command { argv, env: names });
        }
        if self.secrets == Secrets::Skip {
            let from = match (
                &raw.secret_env,
                &raw.secret_file,
                &raw.token_env,
                &raw.token_file,
            ) {
                (Some(var), ..) => format!("secret_env {var}"),
                (_, Some(file), ..) => format!("secret_file {}", file.display()),
                (_, _, Some(var), _) => format!("token_env {var}"),
                (.., Some(file)) => format!("token_file {}", file.display()),
                _ => unreachable!("exactly one credential was counted above"),
            };
            return Ok(Credential::Unresolved(from));
        }
        if let Some(var) = raw.secret_env.take() {
            let secret = env.var(&var).ok_or_else(|| {
                self.invalid(
                    key("secret_env"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            return Ok(Credential::Secret(SecretString::from(
                secret.trim().to_string(),
            )));
        }
        if let Some(file) = raw.secret_file.take() {
            let secret = self.credential_file(key("secret_file"), &file, "an AppSecret")?;
            return Ok(Credential::Secret(SecretString::from(
                secret.trim().to_string(),
            )));
        }
        if let Some(var) = raw.token_env.take() {
            if env.var(&var).is_none() {
                return Err(self.invalid(
                    key("token_env"),
                    format!("environment variable {var} is not set"),
                ));
            }
            return Ok(Credential::Env(var));
        }
        match raw.token_file.take() {
            Some(file) => {
                // What it holds is read again whenever a token is needed.
                self.credential_file(key("token_file"), &file, "an access token")?;
                Ok(Credential::File(file))
            }
            None => unreachable!("exactly one credential was counted above"),
        }
    }
}
