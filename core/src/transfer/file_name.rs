//! Reducing an offered file name to a safe base name (spec §7.8).

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
/// trim spaces (U+0020 only) and dots at the end and spaces at the start; replace a leading
/// `.` with `_` (no hidden files); prefix Windows device names (`CON`, `NUL`, `COM1`, `COM¹`
/// …) with `_`; cut to 255 bytes on a character boundary, keeping a short extension. Empty
/// results are refused.
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
    safe_component(base)
}

/// Reduces `name` to a safe **relative path** for a receiver that keeps folders (spec §7.8,
/// "Folders"), or `None` when it must be refused (`bad-file-name`).
///
/// The name is split at `/` and `\`; empty and `.` components are dropped; a `..` component,
/// an absolute path (a leading `/` or `\`, or a drive such as `C:`), more than `max_depth`
/// components, or a component that reduces to nothing refuses the whole name. Every other
/// component is reduced like a base name by [`safe_file_name`] (rules 3–9). The result joins
/// the components with `/`; a name ending in `/` or `\` (a folder) keeps one trailing `/`.
/// Names over 4096 bytes, before or after the reduction, are refused.
///
/// ```
/// use tidings_core::transfer::safe_path;
/// assert_eq!(safe_path("photos/2024/a.jpg", 32).as_deref(), Some("photos/2024/a.jpg"));
/// assert_eq!(safe_path("a//./b\\.hidden", 32).as_deref(), Some("a/b/_hidden"));
/// assert_eq!(safe_path("empty/", 32).as_deref(), Some("empty/"));
/// assert_eq!(safe_path("a/../../x", 32), None);
/// assert_eq!(safe_path("/etc/x", 32), None);
/// assert_eq!(safe_path("a/b/c", 2), None);
/// ```
pub fn safe_path(name: &str, max_depth: usize) -> Option<String> {
    if name.len() > MAX_WIRE_NAME {
        return None;
    }
    let absolute = match name.as_bytes() {
        [b'/' | b'\\', ..] => true,
        [d, b':', ..] => d.is_ascii_alphabetic(),
        _ => false,
    };
    if absolute {
        return None;
    }
    let folder = name.ends_with(['/', '\\']);
    let mut out = String::with_capacity(name.len());
    let mut depth = 0;
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => continue,
            ".." => return None,
            _ => {}
        }
        depth += 1;
        if depth > max_depth {
            return None;
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(&safe_component(part)?);
    }
    if out.is_empty() {
        return None;
    }
    if folder {
        out.push('/');
    }
    (out.len() <= MAX_WIRE_NAME).then_some(out)
}

/// The reduction a receiver applies to an offered name: [`safe_path`] with at most
/// `max_depth` components, or, when `max_depth` is 0 (folders are not kept), the version 1
/// rule [`safe_file_name`], which keeps only the last component.
///
/// ```
/// use tidings_core::transfer::reduce_name;
/// assert_eq!(reduce_name("a/b.txt", 32).as_deref(), Some("a/b.txt"));
/// assert_eq!(reduce_name("a/b.txt", 0).as_deref(), Some("b.txt"));
/// ```
pub fn reduce_name(name: &str, max_depth: usize) -> Option<String> {
    if max_depth == 0 {
        safe_file_name(name)
    } else {
        safe_path(name, max_depth)
    }
}

/// Rules 3–9 of spec §7.8 on one component (no separators left in it).
fn safe_component(base: &str) -> Option<String> {
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
        || ["COM", "LPT"].iter().any(|port| {
            let mut rest = stem.strip_prefix(port).unwrap_or("").chars();
            // Windows takes the superscripts ¹ ² ³ for digits here too.
            matches!((rest.next(), rest.next()),
                (Some(d), None) if d.is_ascii_digit() || matches!(d, '¹' | '²' | '³'))
        });
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
            ("COM\u{B9}.txt", Some("_COM\u{B9}.txt")),
            ("lpt\u{B3}", Some("_lpt\u{B3}")),
            ("COM\u{663}.txt", Some("COM\u{663}.txt")),
            ("COM10", Some("COM10")),
            ("\u{A0}x\u{3000}", Some("\u{A0}x\u{3000}")),
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
    fn hostile_paths() {
        for (input, want) in [
            ("a/b/c.txt", Some("a/b/c.txt")),
            ("a\\b", Some("a/b")),
            ("./a//b/./", Some("a/b/")),
            ("dir/", Some("dir/")),
            ("../x", None),
            ("a/../../x", None),
            ("a/..", None),
            ("/etc/x", None),
            ("\\\\host\\share", None),
            ("C:\\x", None),
            ("c:x", None),
            ("a/C:b", Some("a/b")),
            ("a/.git/config", Some("a/_git/config")),
            ("a/ /b", None),
            ("a/.../b", None),
            ("CON/nul.txt", Some("_CON/_nul.txt")),
            ("x\u{202E}/y", Some("x_/y")),
            ("/", None),
            ("./", None),
            ("", None),
        ] {
            assert_eq!(safe_path(input, 32).as_deref(), want, "{input:?}");
        }
        let deep = "d/".repeat(32) + "f";
        assert_eq!(safe_path(&deep, 32), None);
        assert_eq!(safe_path(&deep, 33).as_deref(), Some(deep.as_str()));
        assert_eq!(safe_path(&"a".repeat(MAX_WIRE_NAME + 1), 32), None);
        // Device names grow by one byte each: the result is held to the wire limit too.
        let grows = "nul/".repeat(MAX_WIRE_NAME / 4);
        assert_eq!(safe_path(&grows, usize::MAX), None);
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
