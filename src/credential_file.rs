//! Files that hold a credential (`secret_file`, `token_file`): read whole,
//! but only a regular file, and only so much of one.
//!
//! A path that names a FIFO blocked its reader for good (a pass that never
//! ended, a daemon SIGTERM could not stop); one that names `/dev/zero` grew
//! the process by gigabytes. Neither is a file anyone meant.

use std::io::Read;
use std::path::Path;

/// The most a credential may be: an AppSecret is 32 characters, a token a
/// few hundred bytes. Anything longer is the wrong file or the wrong program.
pub const MAX_BYTES: usize = 64 * 1024;

/// Why a credential file was not read.
#[derive(Debug)]
pub enum Unfit {
    Unreadable(std::io::Error),
    /// What it is instead of a regular file: "a FIFO", "a directory"...
    NotRegular(&'static str),
    TooLarge,
    NotText,
}

impl Unfit {
    /// What is wrong with the file at `path`, which `name` introduces
    /// (`"token_file "`, or nothing where the key is named already).
    pub fn describe(&self, name: &str, path: &Path) -> String {
        let path = path.display();
        match self {
            Unfit::Unreadable(e) => format!("cannot read {name}{path}: {e}"),
            Unfit::NotRegular(what) => format!("{name}{path} is {what}, not a regular file"),
            Unfit::TooLarge => format!(
                "{name}{path} holds more than {} KiB: no credential is that long",
                MAX_BYTES / 1024
            ),
            Unfit::NotText => format!("{name}{path} is not UTF-8 text"),
        }
    }
}

/// The text of the credential file at `path`.
pub fn read(path: &Path) -> Result<String, Unfit> {
    // Follows symlinks: a mounted Kubernetes secret is a symlink to a
    // regular file. Only a regular file is opened at all: opening a FIFO
    // waits for a writer, opening a device may do something.
    let meta = std::fs::metadata(path).map_err(Unfit::Unreadable)?;
    regular(&meta)?;
    let file = open(path).map_err(Unfit::Unreadable)?;
    // What was opened, checked again: the path may name something else now.
    regular(&file.metadata().map_err(Unfit::Unreadable)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Unfit::Unreadable)?;
    if bytes.len() > MAX_BYTES {
        return Err(Unfit::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| Unfit::NotText)
}

/// Opens without waiting: should a FIFO have taken the file's place since
/// it was looked at, the open returns at once and the check after it says so.
#[cfg(unix)]
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?.into())
}

#[cfg(not(unix))]
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

fn regular(meta: &std::fs::Metadata) -> Result<(), Unfit> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    Err(Unfit::NotRegular(if kind.is_dir() {
        "a directory"
    } else {
        special(&kind)
    }))
}

#[cfg(unix)]
fn special(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(not(unix))]
fn special(_kind: &std::fs::FileType) -> &'static str {
    "not a file"
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_of_at_most_64_kib_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        let problem = |path: &Path| read(path).expect_err("refused").describe("", path);
        std::fs::write(&file, "s3cret\n").expect("write");
        assert_eq!(read(&file).ok().as_deref(), Some("s3cret\n"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert_eq!(read(&link).ok().as_deref(), Some("s3cret\n"));

        std::fs::write(&file, vec![b'x'; MAX_BYTES]).expect("write");
        assert_eq!(read(&file).ok().map(|t| t.len()), Some(MAX_BYTES));
        std::fs::write(&file, vec![b'x'; MAX_BYTES + 1]).expect("write");
        assert!(problem(&file).ends_with("holds more than 64 KiB: no credential is that long"));

        assert!(problem(dir.path()).ends_with(" is a directory, not a regular file"));
        assert_eq!(
            problem(Path::new("/dev/zero")),
            "/dev/zero is a character device, not a regular file"
        );
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        assert_eq!(
            read(&fifo)
                .expect_err("a FIFO is refused")
                .describe("token_file ", &fifo),
            format!(
                "token_file {} is a FIFO, not a regular file",
                fifo.display()
            )
        );
        let missing = dir.path().join("missing");
        assert!(read(&missing)
            .expect_err("a missing file is refused")
            .describe("token_file ", &missing)
            .starts_with("cannot read token_file "));
    }
}
