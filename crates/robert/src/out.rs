//! Standard output that tolerates a reader who leaves early.
//!
//! `robert … | head -1` closes the pipe before the command is done. Rust
//! ignores `SIGPIPE`, so the next write fails with `BrokenPipe`, and
//! `println!` would panic ("failed printing to stdout: Broken pipe"). The
//! commands print through `outln!` and `out!` instead. Once the reader
//! has gone, further output is dropped, the command finishes its work and
//! the process exits with the command's own status (0 on success) without a
//! word on stderr.
//!
//! We chose that over dying of `SIGPIPE` (status 141, what C tools do):
//! several commands print before they save state (`robert phone` writes its
//! state file after printing, `robert keys` and `robert batch` print a
//! report of work already committed), and a script under `set -o pipefail`
//! should not fail because its reader had enough. Commands that would go on
//! producing live secrets for nobody stop instead (`robert codes`, see
//! [`robert_codes::cli::CliError::OutputClosed`]). Any other write error
//! (a full disk) is reported once at exit, with status 2.

use std::fmt;
use std::io::{ErrorKind, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout has failed: later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error that was not a closed pipe.
static ERROR: OnceLock<String> = OnceLock::new();

/// Writes `args` to stdout (no newline), unless stdout has failed before.
pub(crate) fn write(args: fmt::Arguments<'_>) {
    write_with(args, false);
}

/// Writes `args` and a newline to stdout, unless stdout has failed before.
pub(crate) fn line(args: fmt::Arguments<'_>) {
    write_with(args, true);
}

fn write_with(args: fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = result {
        failed(&e);
    }
}

fn failed(e: &std::io::Error) {
    CLOSED.store(true, Ordering::Relaxed);
    if e.kind() != ErrorKind::BrokenPipe {
        let _ = ERROR.set(e.to_string());
    }
}

/// Flushes stdout at exit. `Err` carries a write error other than a closed
/// pipe (which is not an error: the reader stopped reading).
pub(crate) fn finish() -> Result<(), String> {
    if !CLOSED.load(Ordering::Relaxed)
        && let Err(e) = std::io::stdout().flush()
    {
        failed(&e);
    }
    ERROR.get().map_or(Ok(()), |e| Err(e.clone()))
}

/// `println!` that survives a closed pipe (see the module documentation).
macro_rules! outln {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

/// `print!` that survives a closed pipe (see the module documentation).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}
