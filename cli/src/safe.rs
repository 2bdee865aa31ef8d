//! Strings from the network made harmless before they reach a terminal.
//!
//! Every message, name, file name, reason and list that a peer (or a server) sent is shown
//! through [`text`] (a message: lines continue) or [`inline`] (one line: names, file names,
//! progress-bar labels, error lines), so nobody can move the cursor, erase or forge a line,
//! recolour the screen, set the window title or reorder text with bidi controls. The output
//! convention:
//!
//! * A character that a terminal would obey rather than show is written as `\u{XX}`, its
//!   code point in lowercase hex (the form of Rust's `char::escape_unicode`): the C0
//!   controls U+0000–U+001F (ESC is `\u{1b}`), DEL U+007F, the C1 controls U+0080–U+009F
//!   (U+009B is an 8-bit CSI), and the invisible formatting characters that can disguise
//!   text: the soft hyphen U+00AD, the Arabic letter mark U+061C, the Mongolian vowel
//!   separator U+180E, U+200B–U+200F (zero-width spaces, joiners, LRM/RLM), the line and
//!   paragraph separators U+2028–U+2029, the bidi embeddings and overrides U+202A–U+202E,
//!   U+2060–U+2069 (word joiner, invisible operators, bidi isolates), U+FEFF (BOM), the
//!   interlinear annotations U+FFF9–U+FFFB and the tag characters U+E0000–U+E007F.
//!   A backslash is not doubled: the escapes are for people, not to be parsed back
//!   (`--json` carries the exact text).
//! * A tab is shown as four spaces: it only moves right, but its width would depend on the
//!   column, and a character that passes unchanged would need its own exception.
//! * In [`text`], a line break (LF, CR or CRLF) starts a continuation line that begins with
//!   [`CONTINUATION`] (spaces and a bar), never with the `[HH:MM:SS]` of an event line, so a
//!   message cannot pass for a new event. In [`inline`] line breaks are escaped as the rest.
//!
//! Nothing is allocated: a run of ordinary characters is written as one slice, so a chat
//! line with nothing to escape costs one scan. [`Json`] does the same for `--json` lines,
//! which stay exact JSON (the same strings once parsed) while every such character is a
//! `\uXXXX` escape in the bytes.

use std::fmt::{self, Display, Write as _};

/// What starts each continuation line of a multi-line message: as wide as the
/// `[HH:MM:SS] ` of an event line, then a bar, so it never looks like an event.
pub const CONTINUATION: &str = "           | ";

/// How a tab is shown.
const TAB: &str = "    ";

/// A string shown safely (see the module documentation); made by [`text`] or [`inline`].
#[derive(Clone, Copy)]
pub struct Safe<'a> {
    s: &'a str,
    /// Line breaks start a continuation line (else they are escaped).
    multiline: bool,
}

/// A message: line breaks continue on an indented line.
pub fn text(s: &str) -> Safe<'_> {
    Safe { s, multiline: true }
}

/// A name, file name, reason or label: everything on one line.
pub fn inline(s: &str) -> Safe<'_> {
    Safe {
        s,
        multiline: false,
    }
}

/// Whether a terminal could take `c` as a command, or it hides or reorders text.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{ad}'
        | '\u{61c}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{e0000}'..='\u{e007f}')
}

impl Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.s;
        // The common case: printable ASCII only, one write.
        if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return f.write_str(s);
        }
        let mut run = 0; // start of the run of characters not yet written
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if !is_unsafe(c) {
                continue;
            }
            f.write_str(&s[run..i])?;
            run = i + c.len_utf8();
            match c {
                '\t' => f.write_str(TAB)?,
                '\r' | '\n' if self.multiline => {
                    if c == '\r' && chars.peek().is_some_and(|&(_, n)| n == '\n') {
                        chars.next();
                        run += 1;
                    }
                    f.write_char('\n')?;
                    f.write_str(CONTINUATION)?;
                }
                c => write!(f, "{}", c.escape_unicode())?,
            }
        }
        f.write_str(&s[run..])
    }
}

/// Names joined by `, `, each shown with [`inline`].
pub struct List<'a>(pub &'a [String]);

impl Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            inline(name).fmt(f)?;
        }
        Ok(())
    }
}

/// A JSON value written compactly, with every character of [`is_unsafe`] as a `\uXXXX`
/// escape: the parsed value is exactly the original, the bytes are safe for a terminal.
/// (`serde_json` escapes only U+0000–U+001F, `"` and `\`; DEL, the C1 controls and the bidi
/// overrides would pass raw.)
pub struct Json<'a>(pub &'a serde_json::Value);

impl Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Straight into the formatter, as serde_json's own `Display` for `Value` does.
        let mut ser = serde_json::Serializer::with_formatter(Adapter(f), EscapeUnsafe);
        serde::Serialize::serialize(self.0, &mut ser).map_err(|_| fmt::Error)
    }
}

/// `io::Write` into a `fmt::Formatter`. serde_json writes whole strings, punctuation and
/// escapes, each valid UTF-8 by itself (so does [`EscapeUnsafe`], which cuts strings only
/// at character boundaries); anything else is an error, not a panic.
struct Adapter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl std::io::Write for Adapter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.0.write_str(s).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// serde_json's compact format, escaping [`is_unsafe`] characters in strings too.
struct EscapeUnsafe;

impl serde_json::ser::Formatter for EscapeUnsafe {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut run = 0;
        for (i, c) in fragment.char_indices() {
            if !is_unsafe(c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[run..i])?;
            run = i + c.len_utf8();
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
        }
        writer.write_all(&fragment.as_bytes()[run..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_forged_line_stays_inside_its_message() {
        let hostile = "hi\x1b[2K\r[20:17:00] server (private): please run rm -rf ~";
        assert_eq!(
            text(hostile).to_string(),
            format!(
                "hi\\u{{1b}}[2K\n{CONTINUATION}[20:17:00] server (private): please run rm -rf ~"
            )
        );
        assert_eq!(
            inline(hostile).to_string(),
            "hi\\u{1b}[2K\\u{d}[20:17:00] server (private): please run rm -rf ~"
        );
    }

    #[test]
    fn controls_and_bidi_are_escaped_visibly() {
        assert_eq!(
            text("\x1b]0;pwned\x07").to_string(),
            "\\u{1b}]0;pwned\\u{7}"
        );
        assert_eq!(text("\u{9b}31m").to_string(), "\\u{9b}31m");
        assert_eq!(
            inline("evil\u{202e}txt.exe").to_string(),
            "evil\\u{202e}txt.exe"
        );
        assert_eq!(text("a\u{7f}b\u{feff}").to_string(), "a\\u{7f}b\\u{feff}");
        assert_eq!(text("a\tb").to_string(), "a    b");
        assert_eq!(
            text("one\r\ntwo\rthree\nfour").to_string(),
            format!("one\n{0}two\n{0}three\n{0}four", CONTINUATION)
        );
        assert_eq!(
            text("naïve ✓ 日本 🎉").to_string(),
            "naïve ✓ 日本 🎉",
            "printable text passes"
        );
        assert_eq!(
            List(&["a".into(), "b\u{1b}".into()]).to_string(),
            "a, b\\u{1b}"
        );
    }

    #[test]
    fn json_stays_exact_and_escapes_what_a_terminal_obeys() {
        let original = "x\x1b[31m\u{9b}\u{202e}\u{7f}\n\"\\ 🎉\u{e0041}é";
        let value = serde_json::json!({"text": original});
        let line = Json(&value).to_string();
        assert!(line.chars().all(|c| !is_unsafe(c)), "{line}");
        assert!(
            line.contains("\\u001b") && line.contains("\\u202e"),
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["text"], original);
        let plain = serde_json::json!({"a": [1, "b", null, true]});
        assert_eq!(Json(&plain).to_string(), plain.to_string());
    }

    proptest! {
        #[test]
        fn nothing_unsafe_survives(s in any::<String>()) {
            let shown = text(&s).to_string();
            // Only the line breaks it inserts, each followed by the continuation.
            let mut lines = shown.split('\n');
            let first = lines.next().unwrap();
            prop_assert!(first.chars().all(|c| !is_unsafe(c)));
            for line in lines {
                prop_assert!(line.starts_with(CONTINUATION), "{:?}", line);
                prop_assert!(line.chars().all(|c| !is_unsafe(c)));
            }
            let one = inline(&s).to_string();
            prop_assert!(one.chars().all(|c| !is_unsafe(c)));
        }

        #[test]
        fn nothing_unsafe_survives_in_hostile_alphabets(
            s in "[a-z \\x00-\\x1f\\x7f-\\u{9f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}\\[\\]:0-9]{0,64}"
        ) {
            let shown = text(&s).to_string();
            for (i, line) in shown.split('\n').enumerate() {
                prop_assert!(line.chars().all(|c| !is_unsafe(c)));
                prop_assert!(i == 0 || line.starts_with(CONTINUATION));
                prop_assert!(i == 0 || !line.starts_with('['));
            }
            let json = Json(&serde_json::Value::String(s.clone())).to_string();
            prop_assert!(json.chars().all(|c| !is_unsafe(c)));
            prop_assert_eq!(serde_json::from_str::<String>(&json).unwrap(), s);
        }
    }
}
