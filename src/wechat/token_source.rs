//! Tokens from outside WeChat: a `token_command`, run bounded and in a clean
//! environment, and a `token_file`, read bounded.

use super::error::FetchError;
use crate::config::Credential;
use secrecy::SecretString;
use std::path::Path;
use std::time::Duration;

/// Where a token that is not WeChat's own answer comes from, for messages;
/// `None` for an AppSecret (stable_token and cgi-bin/token are WeChat's).
pub(super) fn outside_source(credential: &Credential) -> Option<String> {
    match credential {
        Credential::Secret(_) => None,
        Credential::Command { argv, .. } => Some(format!(
            "token_command {}",
            argv.first().map_or("", String::as_str)
        )),
        Credential::Env(var) => Some(format!(
            "token_env {var} (a variable cannot change while wxretain runs: use token_file for a token that is renewed)"
        )),
        Credential::File(path) => Some(format!("token_file {}", path.display())),
        Credential::Unresolved(from) => Some(from.clone()),
    }
}

/// The token in `token_file`: its first line, trimmed (a trailing newline,
/// or a second line some writers add, is not part of the token). Read as at
/// start-up (a regular file of at most 64 KiB), within `timeout`: a file on
/// a hung mount fails the app like a hung `token_command`.
pub(super) async fn read_token_file(
    path: &Path,
    timeout: Duration,
) -> Result<SecretString, FetchError> {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || crate::credential_file::read(&owned));
    let text = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(Ok(text))) => text,
        Ok(Ok(Err(unfit))) => {
            return Err(FetchError::TokenSource(unfit.describe("token_file ", path)))
        }
        Ok(Err(e)) => {
            return Err(FetchError::TokenSource(format!(
                "cannot read token_file {}: {e}",
                path.display()
            )))
        }
        Err(_) => {
            return Err(FetchError::TokenSource(format!(
                "token_file {} could not be read within {timeout:?} ([wechat] connect_timeout_secs + request_timeout_secs)",
                path.display()
            )))
        }
    };
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(FetchError::TokenSource(format!(
            "token_file {} holds no token",
            path.display()
        )));
    }
    Ok(SecretString::from(token.to_string()))
}

/// The most a `token_command` may print, as for a credential file: `yes`
/// prints gigabytes in seconds.
const MAX_TOKEN_SOURCE_BYTES: usize = crate::credential_file::MAX_BYTES;

/// What a `token_command` sees of wxretain's environment, when set, besides
/// the variables its `token_command_env` names: where programs are, a home,
/// and the locale.
const COMMAND_ENV: [&str; 5] = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE"];

/// Runs `token_command` and takes the first line it prints as the token.
///
/// The command gets a clean environment: [`COMMAND_ENV`] and `env`, the
/// names in its `token_command_env`. It runs in a process group of its own,
/// killed (SIGKILL) when it exits, overflows or runs out of time, and if the
/// fetch is dropped: a child it leaves behind, holding the output pipe
/// open, would otherwise make a finished command look hung, and outlive it.
/// stdout is read up to [`MAX_TOKEN_SOURCE_BYTES`]; stderr, which may echo
/// the token, is only counted.
pub(super) async fn run_token_command(
    argv: &[String],
    env: &[String],
    timeout: Duration,
) -> Result<SecretString, FetchError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| FetchError::TokenSource("token_command is empty".to_string()))?;
    let mut command = tokio::process::Command::new(program);
    // Not wxretain's environment: it holds every app's AppSecret and the
    // database URL, password included.
    command.env_clear();
    for name in COMMAND_ENV
        .iter()
        .copied()
        .chain(env.iter().map(String::as_str))
    {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| FetchError::TokenSource(format!("cannot run {program}: {e}")))?;
    let group = ProcessGroup::of(&child);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(FetchError::TokenSource(format!(
            "cannot read what {program} prints"
        )));
    };
    let run = async {
        tokio::join!(
            async {
                let status = child.wait().await;
                // Its children go with it: they hold the pipes open.
                group.kill();
                status
            },
            async {
                let read = read_capped(stdout).await;
                if matches!(read, Ok(None)) {
                    group.kill();
                }
                read
            },
            count_bytes(stderr),
        )
    };
    let (status, stdout, stderr_bytes) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| {
            FetchError::TokenSource(format!(
                "{program} did not finish within {timeout:?} ([wechat] connect_timeout_secs + request_timeout_secs)"
            ))
        })?;
    let stdout = stdout
        .map_err(|e| FetchError::TokenSource(format!("cannot read what {program} prints: {e}")))?
        .ok_or_else(|| {
            FetchError::TokenSource(format!(
                "{program} printed more than {} KiB, more than any token: stopped",
                MAX_TOKEN_SOURCE_BYTES / 1024
            ))
        })?;
    let status =
        status.map_err(|e| FetchError::TokenSource(format!("cannot run {program}: {e}")))?;
    if !status.success() {
        // stderr may echo the token it failed to produce: show only its size.
        return Err(FetchError::TokenSource(format!(
            "{program} exited with {status} ({stderr_bytes} bytes on stderr)"
        )));
    }
    let stdout = String::from_utf8(stdout).map_err(|_| {
        FetchError::TokenSource(format!("{program} printed something that is not UTF-8"))
    })?;
    let token = stdout.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(FetchError::TokenSource(format!(
            "{program} printed no token"
        )));
    }
    Ok(SecretString::from(token))
}

/// Everything `reader` gives, or `None` past [`MAX_TOKEN_SOURCE_BYTES`].
async fn read_capped(
    reader: impl tokio::io::AsyncRead + Unpin,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let limit = MAX_TOKEN_SOURCE_BYTES as u64 + 1;
    reader.take(limit).read_to_end(&mut bytes).await?;
    Ok((bytes.len() <= MAX_TOKEN_SOURCE_BYTES).then_some(bytes))
}

/// How many bytes `reader` gives until its end, none of them kept.
async fn count_bytes(mut reader: impl tokio::io::AsyncRead + Unpin) -> u64 {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    while let Ok(n @ 1..) = reader.read(&mut buf).await {
        total = total.saturating_add(n as u64);
    }
    total
}

/// A token command's process group, killed (SIGKILL) on [`Self::kill`] and
/// when dropped, so that nothing it started outlives a fetch that gives up
/// on it (a timeout, a pass that stops).
struct ProcessGroup {
    #[cfg(unix)]
    leader: Option<rustix::process::Pid>,
}

impl ProcessGroup {
    /// The group `child` leads (it was started with `process_group(0)`).
    fn of(child: &tokio::process::Child) -> Self {
        #[cfg(unix)]
        {
            let leader = child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw);
            Self { leader }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            Self {}
        }
    }

    fn kill(&self) {
        // ESRCH (the group is gone) is what is wanted. The group's id cannot
        // name another group while one of its processes lives, and once all
        // are gone a new process would have to be given that very pid in
        // the moments since: pids are handed out in turn, millions apart.
        #[cfg(unix)]
        if let Some(leader) = self.leader {
            let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
