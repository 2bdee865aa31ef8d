//! What the person types into `tidings chat`: a line editor on a terminal, plain lines
//! otherwise.
//!
//! The editor is rustyline, with its `ExternalPrinter`: every line the chat prints is handed
//! to the editor, which clears its prompt, prints the line and draws the prompt again with
//! the text being typed, so nothing that arrives breaks it. Why rustyline: both it and
//! reedline (`external_printer`) were built here and driven on a pseudo-terminal. Reedline
//! is some fifty crates (crossterm, chrono, strum...), looks for printed lines only every
//! 100 ms, and asks the terminal for the cursor position (`ESC [6n`) before each prompt and
//! after each printed line, waiting for the answer: a round trip per incoming line over
//! ssh, and a hang on anything that does not answer. An editor of our own on crossterm
//! would be ours to keep right (widths, wrapping, history, bracketed paste). Rustyline is
//! about seventeen small crates, prints a line at once (a pipe beside the terminal in the
//! same `poll`) and asks the terminal nothing.
//!
//! Keys: the usual Emacs ones (arrows, Home/End, Ctrl-A/E/W/U/K/Y, Alt-B/F), Up/Down and
//! Ctrl-R for the history; Ctrl-C clears the line being typed, and on an empty line quits, as
//! Ctrl-D does.
//!
//! When standard input or standard output is not a terminal (a script, a test, `| tee`),
//! lines are read plainly and nothing but the chat's lines is written.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::{
    Cmd, ConditionalEventHandler, DefaultEditor, Event, EventContext, EventHandler,
    ExternalPrinter, KeyEvent, Movement, RepeatCount,
};

use crate::out::Out;

/// The command that ends the chat (the editor stops reading after it).
pub const QUIT: &str = "/quit";

/// Lines kept in the editor's history (and in its file).
const HISTORY_LINES: usize = 1000;

/// Something typed.
pub enum Typed {
    /// A line, without its end.
    Line(String),
    /// Ctrl-D, Ctrl-C on an empty line, or the end of standard input.
    Quit,
}

/// The source of typed lines for the whole chat (it outlives reconnections).
pub struct Input {
    lines: Receiver<Typed>,
    editor: Option<Editing>,
}

/// What is needed to leave the terminal as it was when the chat ends while the editor waits
/// for a key (the server removed us): rustyline cannot be told to stop waiting.
struct Editing {
    /// The editor's thread is inside `readline` (the terminal is in raw mode).
    reading: Arc<AtomicBool>,
    /// A printer of its own, to wait until the editor printed what it was given.
    drain: Box<dyn ExternalPrinter + Send>,
    /// The terminal's settings before the editor changed them.
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl Input {
    /// The line editor when standard input and output are a terminal (lines printed through
    /// `out` then go above its prompt), or plain lines of standard input.
    pub fn start(name: &str, no_history: bool, out: &mut Out) -> Input {
        let (tx, lines) = async_channel::bounded(64);
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            let history = if no_history { None } else { history_file() };
            match editor(&format!("{name}> "), history, tx.clone(), out) {
                Ok(editing) => {
                    return Input {
                        lines,
                        editor: Some(editing),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "no line editor; reading plain lines"),
            }
        }
        plain(tx);
        Input {
            lines,
            editor: None,
        }
    }

    /// The next thing typed.
    pub async fn recv(&self) -> Typed {
        self.lines.recv().await.unwrap_or(Typed::Quit)
    }

    /// Lines go to standard output again, and the terminal is as it was found.
    pub fn finish(self, out: &mut Out) {
        out.set_printer(None);
        let Some(editing) = self.editor else { return };
        let reading = editing.reading.load(Ordering::SeqCst);
        if reading {
            // The printer's queue holds one line: the second empty line can be queued only
            // once the editor took the first, which it does after printing everything given
            // before. Bounded, in case the editor is stuck.
            let mut drain = editing.drain;
            let (done, drained) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = drain.print(String::new());
                let _ = drain.print(String::new());
                let _ = done.send(());
            });
            let _ = drained.recv_timeout(Duration::from_secs(1));
        }
        #[cfg(unix)]
        if let Some(saved) = &editing.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
        if reading {
            // Bracketed paste off again, and the abandoned prompt erased.
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(b"\x1b[?2004l\r\x1b[K");
            let _ = stdout.flush();
        }
    }
}

/// Standard input line by line on a thread of its own; the channel closes at its end.
fn plain(tx: Sender<Typed>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send_blocking(Typed::Line(line)).is_err() {
                break;
            }
        }
    });
}

/// Starts the editor on a thread of its own and sends `out`'s lines through its printer.
fn editor(
    prompt: &str,
    history: Option<PathBuf>,
    tx: Sender<Typed>,
    out: &mut Out,
) -> rustyline::Result<Editing> {
    let config = Config::builder()
        .auto_add_history(false)
        .max_history_size(HISTORY_LINES)?
        .history_ignore_dups(true)?
        // As in shells: a line that starts with a space is not remembered.
        .history_ignore_space(true)
        .build();
    let mut ed = DefaultEditor::with_config(config)?;
    ed.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlC)),
    );
    let history = history.filter(|path| match open_history(&mut ed, path) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "history file not used");
            false
        }
    });
    let mut printer = ed.create_external_printer()?;
    let drain = Box::new(ed.create_external_printer()?);
    #[cfg(unix)]
    let saved = rustix::termios::tcgetattr(std::io::stdin()).ok();
    let reading = Arc::new(AtomicBool::new(true));
    let prompt = prompt.to_string();
    let in_readline = reading.clone();
    std::thread::spawn(move || loop {
        in_readline.store(true, Ordering::SeqCst);
        let read = ed.readline(&prompt);
        in_readline.store(false, Ordering::SeqCst);
        let typed = match read {
            Ok(line) => {
                remember(&mut ed, &line, history.as_deref());
                Typed::Line(line)
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => Typed::Quit,
            Err(e) => {
                tracing::warn!(error = %e, "the line editor failed");
                Typed::Quit
            }
        };
        let last = match &typed {
            Typed::Line(line) => line.trim() == QUIT,
            Typed::Quit => true,
        };
        if tx.send_blocking(typed).is_err() || last {
            break;
        }
    });
    // The printer adds the line's end only while the prompt is shown: always give it one.
    out.set_printer(Some(Box::new(move |line: String| {
        printer.print(line + "\n").is_ok()
    })));
    Ok(Editing {
        reading,
        drain,
        #[cfg(unix)]
        saved,
    })
}

/// Ctrl-C clears the line being typed; on an empty line it quits.
struct CtrlC;

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        Some(if ctx.line().is_empty() {
            Cmd::Interrupt
        } else {
            Cmd::Kill(Movement::WholeLine)
        })
    }
}

/// `$XDG_STATE_HOME/tidings/chat-history`, else `~/.local/state/tidings/chat-history`.
fn history_file() -> Option<PathBuf> {
    history_in(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

/// The history file for these values of `XDG_STATE_HOME` and `HOME`: a relative (or empty)
/// one is ignored, as the XDG base directory specification asks.
fn history_in(state: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |v: OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let state = state
        .and_then(absolute)
        .or_else(|| Some(home.and_then(absolute)?.join(".local/state")))?;
    Some(state.join("tidings").join("chat-history"))
}

/// Reads the history file (its folder made private if new; rustyline makes the file 0600).
fn open_history(ed: &mut DefaultEditor, path: &std::path::Path) -> rustyline::Result<()> {
    if let Some(dir) = path.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    match ed.load_history(path) {
        Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Adds a typed line to the history, and to its file when there is one.
fn remember(ed: &mut DefaultEditor, line: &str, file: Option<&std::path::Path>) {
    if line.trim().is_empty() {
        return;
    }
    if let Ok(true) = ed.add_history_entry(line) {
        if let Some(path) = file {
            if let Err(e) = ed.append_history(path) {
                tracing::warn!(path = %path.display(), error = %e, "history not saved");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_file_is_in_the_state_folder() {
        let os = |s: &str| Some(OsString::from(s));
        let file = |p: &str| Some(PathBuf::from(p));
        let in_home = file("/h/.local/state/tidings/chat-history");
        assert_eq!(
            history_in(os("/s"), os("/h")),
            file("/s/tidings/chat-history")
        );
        assert_eq!(history_in(None, os("/h")), in_home);
        assert_eq!(history_in(os("relative"), os("/h")), in_home);
        assert_eq!(history_in(os(""), os("/h")), in_home);
        assert_eq!(history_in(None, None), None, "nowhere: in memory only");
        assert_eq!(history_in(None, os("h")), None);
    }
}
