//! Colours for people: a stable colour per name, the server's own participant, private
//! messages, errors and notices.
//!
//! Every escape sequence printed comes from here and is wrapped *around* text: the text itself
//! (names, messages, reasons — anything a peer chose) is printed as given to [`Style::name`]
//! or [`Style::paint`], so a caller that must make peer strings harmless passes the harmless
//! form there. Colours are off unless standard output is a terminal and `NO_COLOR` is unset
//! (<https://no-color.org>), and always off with `--json`; `--color always|never` overrides.

use std::fmt::{self, Display};
use std::io::IsTerminal;

use anstyle::{AnsiColor, Effects};

/// When to colour the output (`--color`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// When standard output is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    /// Always, even into a pipe (not with `--json`).
    Always,
    /// Never.
    Never,
}

/// Whether to colour, from the flag, `--json`, the environment and standard output.
pub fn enabled(when: ColorWhen, json: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    decide(when, json, no_color, std::io::stdout().is_terminal())
}

fn decide(when: ColorWhen, json: bool, no_color: bool, terminal: bool) -> bool {
    match when {
        // JSON is for machines: an escape sequence in it would be data.
        _ if json => false,
        ColorWhen::Never => false,
        ColorWhen::Always => true,
        ColorWhen::Auto => terminal && !no_color,
    }
}

/// Names get one of these, by a hash of the name: the same name has the same colour in every
/// run and on every machine. Red, yellow and magenta are kept for errors, the server and
/// private messages.
const PALETTE: [AnsiColor; 6] = [
    AnsiColor::Green,
    AnsiColor::Blue,
    AnsiColor::Cyan,
    AnsiColor::BrightGreen,
    AnsiColor::BrightBlue,
    AnsiColor::BrightCyan,
];

/// The colours in force (all plain when off), and the server participant's name.
#[derive(Clone, Debug, Default)]
pub struct Style {
    on: bool,
    operator: String,
}

impl Style {
    /// Colours on or off.
    pub fn new(on: bool) -> Style {
        Style {
            on,
            operator: String::new(),
        }
    }

    /// The server's own participant (learnt when connecting), whose name stands out.
    pub fn set_operator(&mut self, name: &str) {
        name.clone_into(&mut self.operator);
    }

    /// `shown` in the colour of the name `raw`: the colour is chosen by the name as the
    /// server sent it, and `shown` is what is printed (the name made harmless, when it came
    /// from a peer).
    pub fn name<T: Display>(&self, raw: &str, shown: T) -> Paint<T> {
        let style = if !self.operator.is_empty() && raw == self.operator {
            AnsiColor::BrightYellow.on_default() | Effects::BOLD
        } else {
            PALETTE[fnv1a(raw.as_bytes()) as usize % PALETTE.len()].on_default()
        };
        self.paint(style, shown)
    }

    /// The mark of a private message (`(private)`, `→ bob`).
    pub fn private<T: Display>(&self, shown: T) -> Paint<T> {
        self.paint(AnsiColor::BrightMagenta.on_default() | Effects::BOLD, shown)
    }

    /// The time in front of a line, quieter than the line.
    pub fn time<T: Display>(&self, shown: T) -> Paint<T> {
        self.paint(AnsiColor::BrightBlack.on_default(), shown)
    }

    /// A whole line by its kind of event: errors red, notices from the server and our own
    /// state (reconnecting) yellow, help grey; chat lines plain.
    pub fn line<T: Display>(&self, kind: &str, shown: T) -> Paint<T> {
        let style = match kind {
            "error" | "failed" | "closed" => AnsiColor::Red.on_default(),
            "notice" | "reconnecting" => AnsiColor::Yellow.on_default(),
            "hint" | "help" => AnsiColor::BrightBlack.on_default(),
            _ => anstyle::Style::new(),
        };
        self.paint(style, shown)
    }

    /// `shown` in `style` (plain when colours are off).
    pub fn paint<T: Display>(&self, style: anstyle::Style, shown: T) -> Paint<T> {
        Paint {
            style: if self.on {
                style
            } else {
                anstyle::Style::new()
            },
            shown,
        }
    }
}

/// Text in a colour: the escape sequences around it, none inside.
pub struct Paint<T> {
    style: anstyle::Style,
    shown: T,
}

impl<T: Display> Display for Paint<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A plain style renders as nothing, reset included.
        write!(
            f,
            "{}{}{}",
            self.style.render(),
            self.shown,
            self.style.render_reset()
        )
    }
}

/// FNV-1a: a stable hash (the standard library's is seeded per process).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_colours_are_on() {
        use ColorWhen::*;
        assert!(decide(Auto, false, false, true));
        assert!(!decide(Auto, false, false, false), "not a terminal");
        assert!(!decide(Auto, false, true, true), "NO_COLOR");
        assert!(decide(Always, false, true, false), "the flag wins");
        assert!(!decide(Never, false, false, true));
        assert!(!decide(Always, true, false, true), "never in JSON");
    }

    #[test]
    fn names_keep_their_colour_and_plain_is_plain() {
        let mut s = Style::new(true);
        assert_eq!(
            s.name("alice", "alice").to_string(),
            s.name("alice", "x").to_string().replace('x', "alice")
        );
        let alice = s.name("alice", "alice").to_string();
        assert!(
            alice.starts_with("\x1b[") && alice.ends_with("\x1b[0m"),
            "{alice:?}"
        );
        s.set_operator("server");
        assert!(
            s.name("server", "server").to_string().contains("\x1b[1m"),
            "bold"
        );
        assert_eq!(s.line("said", "hi").to_string(), "hi", "chat lines plain");
        let off = Style::new(false);
        assert_eq!(off.name("alice", "alice").to_string(), "alice");
        assert_eq!(off.line("error", "boom").to_string(), "boom");
        assert_eq!(off.private("(private)").to_string(), "(private)");
    }
}
