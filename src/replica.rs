//! Who this process is, in `lease_owner`, and whether another holder of a
//! lease still runs.
//!
//! A lease names its holder `host:pid:nonce:pid-space`. The host is for
//! people reading the ledger. The pid alone says nothing: containers with
//! host networking, Kubernetes `hostNetwork` pods or a fixed `hostname:` all
//! run wxretain as PID 1 under one name. The pid space (the kernel's boot id
//! and the PID namespace's inode) says whose `/proc` the pid belongs to: only
//! a holder in this very pid space can be looked up, and found dead, here.
//! Any other holder's lease ends by time alone.

use std::path::Path;

/// This process's identity as a lease holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaId {
    text: String,
    pid: u32,
    /// `None` where the kernel does not say (not Linux, `/proc` unreadable):
    /// then no other process is ever judged dead from here.
    pid_space: Option<String>,
}

impl ReplicaId {
    /// The running process, named by `HOSTNAME` (else `/etc/hostname`).
    pub fn current() -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok());
        Self::new(
            &host_name(host),
            std::process::id(),
            pid_space(Path::new("/proc")),
        )
    }

    fn new(host: &str, pid: u32, pid_space: Option<String>) -> Self {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let space = pid_space.as_deref().unwrap_or("unknown");
        Self {
            text: format!("{host}:{pid}:{}:{space}", &nonce[..8]),
            pid,
            pid_space,
        }
    }

    /// The text stored in `lease_owner`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The suffix every holder in this pid space shares, for the query that
    /// lists candidates (`None`: none can be judged from here).
    pub fn pid_space(&self) -> Option<&str> {
        self.pid_space.as_deref()
    }

    /// Whether `owner`, a lease holder of this pid space, no longer runs.
    /// A live pid is another live process unless it is ours (then `owner`
    /// is an earlier run of this pid: a restarted container keeps its pid).
    pub fn is_dead_neighbour(&self, owner: &str) -> bool {
        let Some(space) = &self.pid_space else {
            return false;
        };
        if owner == self.text {
            return false;
        }
        let mut fields = owner.rsplitn(4, ':');
        let (Some(their_space), Some(_nonce), Some(pid), Some(_host)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        their_space == space && (pid == self.pid || is_gone(pid))
    }
}

/// Whether no process `pid` exists in this pid space: `kill(pid, 0)`, which
/// sends nothing, says ESRCH. Not `/proc/<pid>`: under `hidepid=2` (systemd's
/// `ProtectProc=invisible`) another user's live process is missing there, and
/// was judged dead. EPERM is a live process of another user; any other
/// answer says nothing, and nothing unknown is judged dead.
#[cfg(unix)]
fn is_gone(pid: u32) -> bool {
    // 0 and negative values address process groups, not a process.
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    gone(rustix::process::test_kill_process(pid))
}

#[cfg(not(unix))]
fn is_gone(_pid: u32) -> bool {
    false
}

/// What `kill(pid, 0)`'s result says: gone only when no such process exists.
#[cfg(unix)]
fn gone(result: rustix::io::Result<()>) -> bool {
    result == Err(rustix::io::Errno::SRCH)
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The host part: trimmed, `localhost` if empty, and without `:`, which
/// separates the fields.
fn host_name(raw: Option<String>) -> String {
    raw.map(|h| h.trim().replace(':', "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `boot-id.pidns-inode`: equal for two processes exactly when each can see
/// the other in `/proc`.
fn pid_space(proc: &Path) -> Option<String> {
    let boot = std::fs::read_to_string(proc.join("sys/kernel/random/boot_id")).ok()?;
    let ns = std::fs::read_link(proc.join("self/ns/pid")).ok()?;
    // "pid:[4026531836]" → "4026531836"
    let inode: String = ns
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let boot: String = boot.trim().chars().filter(|c| *c != '-').take(16).collect();
    (!inode.is_empty() && !boot.is_empty()).then(|| format!("{boot}.{inode}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_in_another_pid_space_is_never_judged_dead() {
        let me = ReplicaId::new("host", 1, Some("b.1".into()));
        // PID 1 of another container on the same host name: alive for all we know.
        assert!(!me.is_dead_neighbour("host:1:abcdef01:b.2"));
        assert!(!me.is_dead_neighbour("host:1:abcdef01:unknown"));
        // An earlier run of our own pid in our own pid space: dead.
        assert!(me.is_dead_neighbour("host:1:abcdef01:b.1"));
        assert!(!me.is_dead_neighbour(me.as_str()));
    }

    #[test]
    fn without_a_pid_space_nobody_is_judged_dead() {
        let me = ReplicaId::new("host", 1, None);
        assert!(!me.is_dead_neighbour("host:1:abcdef01:unknown"));
    }

    #[test]
    fn a_pid_of_this_space_that_does_not_run_is_dead() {
        let me = ReplicaId::current();
        let Some(space) = me.pid_space() else {
            return; // no /proc here: nothing can be judged
        };
        // Pids stop at 2^22 on Linux.
        assert!(me.is_dead_neighbour(&format!("other:99999999:abcdef01:{space}")));
        let live = std::process::id(); // ours, with another nonce: an earlier run
        assert!(me.is_dead_neighbour(&format!("other:{live}:abcdef01:{space}")));
        assert!(!me.is_dead_neighbour(&format!("other:1:abcdef01:{space}")));
    }

    /// A process of another user (EPERM) runs; only ESRCH is gone; an error
    /// that says nothing of the process is not a death.
    #[cfg(unix)]
    #[test]
    fn only_a_process_the_kernel_says_does_not_exist_is_gone() {
        use rustix::io::Errno;
        assert!(!gone(Ok(())));
        assert!(!gone(Err(Errno::PERM)));
        assert!(gone(Err(Errno::SRCH)));
        assert!(!gone(Err(Errno::INVAL)));
        assert!(!is_gone(0), "0 is our process group, not a process");
        assert!(!is_gone(u32::MAX), "not a pid: never judged");
    }

    #[test]
    fn colons_in_the_host_name_cannot_shift_the_fields() {
        assert_eq!(host_name(Some(" a:b\n".into())), "a_b");
        assert_eq!(host_name(Some("  ".into())), "localhost");
        assert_eq!(host_name(None), "localhost");
        let me = ReplicaId::new(&host_name(Some("a:b".into())), 7, Some("s.1".into()));
        assert!(me.is_dead_neighbour("a_b:7:abcdef01:s.1"));
    }
}
