//! The binary as an operator's tools see it: its exit code and its stderr
//! line by line. Shared by tests/it/operator_logs.rs and tests/it/operator_status.rs.

use crate::common::{wxretain_command, Output};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Nothing listens here.
pub const CLOSED_DB: &str = "postgres://postgres@127.0.0.1:1/wxretain_unreachable";
/// No command may take longer than this; a hang is a failure, not a stuck test.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A config file (mode 600 unless changed) in a temp dir and a cleared
/// environment to run the binary with.
pub struct Cli {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub env: HashMap<String, String>,
}

impl Cli {
    pub fn new(toml: &str, env: HashMap<String, String>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the config");
        let config = dir.path().join("wxretain.toml");
        std::fs::write(&config, toml).expect("config written");
        let cli = Self { dir, config, env };
        cli.chmod(0o600);
        cli
    }

    pub fn chmod(&self, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(mode))
            .expect("config chmod");
    }

    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// The command `wxretain --config FILE ARGS...`, not yet started.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let config = std::ffi::OsStr::new("--config");
        let full = [config, self.config.as_os_str()]
            .into_iter()
            .chain(args.iter().map(std::ffi::OsStr::new));
        let mut cmd = wxretain_command(full, &self.env);
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// Runs `wxretain --config FILE ARGS...` to the end, stderr to a pipe.
    pub async fn run(&self, args: &[&str]) -> Output {
        Output::of(self.command(args), RUN_LIMIT, &format!("wxretain {args:?}")).await
    }

    pub fn path(&self) -> &Path {
        &self.config
    }
}

/// Every line of `stderr` as a JSON object; fails naming the first that is not.
pub fn json_lines(stderr: &str, what: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    assert!(!stderr.trim().is_empty(), "{what}: nothing on stderr");
    stderr
        .lines()
        .map(|line| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => panic!("{what}: a stderr line that is not a JSON object: {line:?}\n--- stderr\n{stderr}"),
        })
        .collect()
}

/// The lines whose `message` is `message`.
pub fn with_message<'a>(
    lines: &'a [serde_json::Map<String, serde_json::Value>],
    message: &str,
) -> Vec<&'a serde_json::Map<String, serde_json::Value>> {
    lines
        .iter()
        .filter(|l| l.get("message").and_then(|m| m.as_str()) == Some(message))
        .collect()
}
