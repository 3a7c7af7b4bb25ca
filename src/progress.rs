//! The progress bar `backfill` and `demo` show on a terminal, and the log
//! writer that keeps log lines and the bar apart.
//!
//! Both write to stderr. A log line written while the bar is drawn would land
//! after the bar's text on the same line, and the bar's next redraw would
//! overwrite it. So every log line goes through [`Shown::around`], which
//! clears the bar (indicatif's `suspend`), writes the line, and draws the bar
//! again below it. Chosen over the `tracing-indicatif` crate: one bar at a
//! time needs a few lines, not a second way of drawing bars.

use indicatif::ProgressBar;
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

/// The bar currently on the terminal, if any.
#[derive(Debug, Default)]
pub struct Shown {
    active: Mutex<Option<ProgressBar>>,
}

/// The process's bar: the one the log writer steps around.
static SHOWN: Shown = Shown::new();

impl Shown {
    pub const fn new() -> Self {
        Self {
            active: Mutex::new(None),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        // Poisoned: a panic elsewhere; the slot itself is still sound.
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `bar` the one log lines step around.
    pub fn show(&self, bar: &ProgressBar) {
        *self.slot() = Some(bar.clone());
    }

    pub fn hide(&self) {
        *self.slot() = None;
    }

    /// Runs `write` with the bar cleared from the terminal, then draws it
    /// again: what is written lands on lines of its own.
    pub fn around<R>(&self, write: impl FnOnce() -> R) -> R {
        // Cloned out: the bar's own lock is taken inside suspend, ours not held.
        let bar = self.slot().clone();
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// A progress bar on stderr that log lines step around while it lives;
/// cleared when dropped.
pub struct Bar(ProgressBar);

impl std::ops::Deref for Bar {
    type Target = ProgressBar;
    fn deref(&self) -> &ProgressBar {
        &self.0
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        SHOWN.hide();
        self.0.finish_and_clear();
    }
}

/// A bar of `total` periods on stderr; none when stderr is not a terminal
/// (logs to a file or a journal need no bar) or there is nothing to do.
pub fn bar(total: i64) -> Option<Bar> {
    if !io::stderr().is_terminal() || total <= 0 {
        return None;
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {bar:40} {pos}/{len} periods  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style);
    }
    SHOWN.show(&bar);
    Some(Bar(bar))
}

/// The log subscriber's writer: stderr, around the bar if one is shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;
    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

impl Write for Stderr {
    /// tracing's fmt layer writes each event whole in one call: one line.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        SHOWN.around(|| io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{ProgressDrawTarget, TermLike};
    use std::sync::Arc;

    /// A terminal that keeps what ends up on each line, cursor moves and
    /// clears included, as a person would see it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<(Vec<String>, String)>>);

    impl Screen {
        fn text(&self, s: &str) {
            let mut screen = self.0.lock().expect("screen");
            for (i, part) in s.split('\n').enumerate() {
                if i > 0 {
                    let line = std::mem::take(&mut screen.1);
                    screen.0.push(line);
                }
                screen.1.push_str(part);
            }
        }

        fn lines(&self) -> Vec<String> {
            let screen = self.0.lock().expect("screen");
            let mut lines = screen.0.clone();
            lines.push(screen.1.clone());
            lines
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, n: usize) -> io::Result<()> {
            let mut screen = self.0.lock().expect("screen");
            for _ in 0..n {
                let line = screen.0.pop().unwrap_or_default();
                screen.1 = line;
            }
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.text(s);
            self.text("\n");
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.text(s);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            self.0.lock().expect("screen").1.clear();
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Ten log lines while a bar is drawn: with the bar shown to the writer,
    /// each log line is a line of its own and the bar stays whole, last.
    fn screen_after_logging(step_around: bool) -> Vec<String> {
        let screen = Screen::default();
        let bar = ProgressBar::with_draw_target(
            Some(10),
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("[{pos}/{len} periods]").expect("template"),
        );
        let shown = Shown::new();
        if step_around {
            shown.show(&bar);
        }
        for i in 0..10 {
            bar.inc(1);
            bar.tick();
            shown.around(|| screen.text(&format!("INFO fetched week {i}\n")));
        }
        shown.hide();
        screen.lines()
    }

    #[test]
    fn log_lines_and_the_bar_never_share_a_line() {
        let lines = screen_after_logging(true);
        let logs: Vec<&String> = lines.iter().filter(|l| l.contains("INFO")).collect();
        assert_eq!(logs.len(), 10, "{lines:#?}");
        for (i, line) in logs.iter().enumerate() {
            assert_eq!(**line, format!("INFO fetched week {i}"), "{lines:#?}");
        }
        assert_eq!(
            lines.last().map(|l| l.trim_end()),
            Some("[10/10 periods]"),
            "{lines:#?}"
        );
    }

    #[test]
    fn without_stepping_around_the_bar_they_do() {
        // The failure this module prevents, shown on the same screen.
        let lines = screen_after_logging(false);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("periods]") && l.contains("INFO")),
            "{lines:#?}"
        );
    }
}
