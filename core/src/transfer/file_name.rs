//! Reducing an offered file name to a safe base name (spec §7.6).

/// Longest accepted name on the wire, in bytes; longer offers are rejected outright.
pub const MAX_WIRE_NAME: usize = 4096;
/// Longest name after reduction, in bytes (what common file systems allow).
pub const MAX_BASE_NAME: usize = 255;

/// Reduces `name` to a base name that is safe to create inside a download folder, or `None`
/// when nothing usable is left (the offer is then rejected with `bad-file-name`).
///
/// The rules, in order: reject names over 4096 bytes; keep what follows the last `/` or `\`;
/// drop a drive prefix such as `C:`; replace control characters, invisible and bidirectional
/// formatting characters ([`is_invisible`]) and `: * ? " < > |` with `_`;
/// trim spaces and dots at the end and spaces at the start; replace a leading `.` with `_`
/// (no hidden files); prefix Windows device names (`CON`, `NUL`, `COM1` …) with `_`; cut to 255
/// bytes on a character boundary, keeping a short extension. Empty results are refused.
///
/// ```
/// use tidings_core::transfer::safe_file_name;
/// assert_eq!(safe_file_name("report.pdf").as_deref(), Some("report.pdf"));
/// assert_eq!(safe_file_name("../../etc/passwd").as_deref(), Some("passwd"));
/// assert_eq!(safe_file_name("C:\\Windows\\win.ini").as_deref(), Some("win.ini"));
/// assert_eq!(safe_file_name(".bashrc").as_deref(), Some("_bashrc"));
/// assert_eq!(safe_file_name("nul.txt").as_deref(), Some("_nul.txt"));
/// assert_eq!(safe_file_name("a\u{0}b").as_deref(), Some("a_b"));
/// assert_eq!(safe_file_name(".."), None);
/// ```
pub fn safe_file_name(name: &str) -> Option<String> {
    if name.len() > MAX_WIRE_NAME {
        return None;
    }
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let base = match base.as_bytes() {
        [d, b':', ..] if d.is_ascii_alphabetic() => &base[2..],
        _ => base,
    };
    let mut out: String = base
        .chars()
        .map(|c| {
            if c.is_control()
                || is_invisible(c)
                || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|')
            {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = out.trim_end_matches([' ', '.']).trim_start_matches(' ');
    out = trimmed.to_string();
    if out.is_empty() {
        return None;
    }
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    let stem = out.split('.').next().unwrap_or("").to_ascii_uppercase();
    let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    if device {
        out.insert(0, '_');
    }
    if out.len() > MAX_BASE_NAME {
        out = shorten(&out);
    }
    Some(out)
}

/// Invisible and bidirectional formatting characters (spec §7.8 rule 4): a right-to-left
/// override lets `evil\u{202E}txt.exe` display as `evilexe.txt`, and zero-width characters
/// make two names look the same. The list is explicit so that every implementation agrees:
/// U+00AD, U+061C, U+180E, U+200B–U+200F, U+202A–U+202E, U+2060–U+2064, U+2066–U+2069, U+FEFF.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Cuts a long name to [`MAX_BASE_NAME`] bytes, keeping an extension of up to 16 bytes.
fn shorten(name: &str) -> String {
    let ext = match name.rfind('.') {
        Some(i) if name.len() - i <= 16 => &name[i..],
        _ => "",
    };
    let mut cut = MAX_BASE_NAME - ext.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &name[..cut], ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names() {
        for (input, want) in [
            ("/etc/shadow", Some("shadow")),
            ("..\\..\\boot.ini", Some("boot.ini")),
            ("dir/", None),
            ("   ", None),
            ("...", None),
            ("file. . ", Some("file")),
            ("COM1", Some("_COM1")),
            ("lpt9.log", Some("_lpt9.log")),
            ("console.log", Some("console.log")),
            ("a\u{7f}\u{85}b", Some("a__b")),
            ("what?.txt", Some("what_.txt")),
            ("D:evil", Some("evil")),
            ("evil\u{202E}txt.exe", Some("evil_txt.exe")),
            ("a\u{200B}b\u{FEFF}", Some("a_b_")),
        ] {
            assert_eq!(safe_file_name(input).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn length_limits() {
        assert_eq!(safe_file_name(&"a".repeat(MAX_WIRE_NAME + 1)), None);
        let long = format!("{}.tar.gz", "é".repeat(300));
        let short = safe_file_name(&long).unwrap();
        assert!(short.len() <= MAX_BASE_NAME);
        assert!(short.ends_with(".gz"));
    }
}
