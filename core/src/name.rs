//! Peer names (spec §6.1): what a client may call itself.

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Why a name is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Empty.
    Empty,
    /// Longer than [`MAX_NAME_CHARS`] characters.
    TooLong,
    /// Contains a character outside letters, digits, `-`, `_` and `.`.
    BadCharacter(char),
    /// Starts with `.` or `-` (reads like a path or an option).
    BadStart,
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NameError::Empty => write!(f, "the name is empty"),
            NameError::TooLong => write!(f, "the name is longer than {MAX_NAME_CHARS} characters"),
            NameError::BadCharacter(c) => write!(
                f,
                "the name contains {c:?}; use letters, digits, '-', '_' or '.'"
            ),
            NameError::BadStart => write!(f, "the name must not start with '.' or '-'"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name against the rules of spec §6.1: 1 to 32 characters, each a Unicode letter or
/// digit or one of `-_.`, not starting with `.` or `-`, and no invisible letters (the Hangul
/// fillers, which are letters that show as nothing). Every other invisible character —
/// zero-width spaces and joiners, direction marks, variation selectors — is not a letter or
/// digit and so is refused as well. Names compare by [`name_key`]: case-insensitively, with
/// look-alike characters folded together.
///
/// ```
/// use tidings_core::name::{validate_name, NameError};
/// assert!(validate_name("alice").is_ok());
/// assert!(validate_name("Zoë_2").is_ok());
/// assert_eq!(validate_name("a b"), Err(NameError::BadCharacter(' ')));
/// assert_eq!(validate_name(".hidden"), Err(NameError::BadStart));
/// assert_eq!(validate_name("alice\u{200B}"), Err(NameError::BadCharacter('\u{200B}')));
/// assert_eq!(validate_name("\u{3164}"), Err(NameError::BadCharacter('\u{3164}')));
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let mut count = 0;
    for c in name.chars() {
        if !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')) || is_invisible_letter(c) {
            return Err(NameError::BadCharacter(c));
        }
        count += 1;
    }
    if count == 0 {
        return Err(NameError::Empty);
    }
    if count > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if name.starts_with(['.', '-']) {
        return Err(NameError::BadStart);
    }
    Ok(())
}

/// Letters that display as nothing: the Hangul fillers (default-ignorable code points that
/// are nevertheless `Alphabetic`). A name made of them would look empty, or like another
/// name with nothing appended.
fn is_invisible_letter(c: char) -> bool {
    matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}')
}

/// The key under which a name is unique (spec §6.1): two names are the same name when their
/// keys are equal, and a name addresses whoever registered a name with its key.
///
/// The key is a small, fixed *skeleton* of the name, built in three steps so that names
/// which look alike on screen cannot be told apart by the server either:
///
/// 1. **Compatibility forms** are folded to the letters and digits they are drawn from, as
///    Unicode NFKC would: full-width ASCII (`Ａ` → `A`), mathematical alphanumerics
///    (`𝐀`, `𝔞`, `𝟙`), letter-like symbols (`ℓ`, `ℝ`, `K` Kelvin), circled and
///    parenthesis-free enclosed letters and digits (`Ⓐ`, `①`), Roman numerals (`Ⅳ` → `IV`),
///    super- and subscript digits, the Latin ligatures (`ﬁ` → `fi`) and long s (`ſ`).
/// 2. **Case** is removed by Unicode's full lower-case mapping of the whole name (so a
///    word-final `Σ` becomes `ς`, as in `Final_Sigma`).
/// 3. **Look-alikes** of Latin letters are mapped to them: the Cyrillic, Greek and Armenian
///    letters that draw like a Latin one in upper or lower case (`а` → `a`, `ο` → `o`,
///    `Н`/`н` → `h`, `і` → `i` …), the Latin small capitals (`ᴀ` → `a`) and a few Latin
///    letters without their dot or hook (`ı` → `i`, `ɡ` → `g`). The full table is
///    [`LOOK_ALIKES`].
///
/// It deliberately does *not* fold accents (`é` ≠ `e`), digits into letters (`0` ≠ `o`,
/// `1` ≠ `l`) or letter sequences (`rn` ≠ `m`): those stay distinct names, as in ordinary
/// text. Invisible characters never reach the key: [`validate_name`] refuses them.
///
/// ```
/// use tidings_core::name::name_key;
/// assert_eq!(name_key("ÅLice"), "ålice");
/// // Full-width, Cyrillic and mathematical forms of "alice" are all "alice".
/// for look_alike in ["Ａlice", "ＡＬＩＣＥ", "\u{430}lice", "\u{1D41A}lice", "АLICЕ"] {
///     assert_eq!(name_key(look_alike), "alice", "{look_alike}");
/// }
/// assert_eq!(name_key("Ⅳ"), "iv");
/// assert_ne!(name_key("alicé"), name_key("alice"));
/// ```
pub fn name_key(name: &str) -> String {
    if name.is_ascii() {
        // Nothing to fold but case (every folded form and look-alike is outside ASCII): the
        // common case, once per routed private message, in one allocation.
        return name.to_ascii_lowercase();
    }
    let mut folded = String::with_capacity(name.len());
    for c in name.chars() {
        fold_compatibility(c, &mut folded);
    }
    folded
        .to_lowercase()
        .chars()
        .map(|c| look_alike(c).unwrap_or(c))
        .collect()
}

/// Step 1 of [`name_key`]: the NFKC-like folding of compatibility forms, pushed onto `out`.
fn fold_compatibility(c: char, out: &mut String) {
    let u = c as u32;
    let latin = |i: u32| {
        // 0..26 upper case, 26..52 lower case.
        if i < 26 {
            char::from(b'A' + i as u8)
        } else {
            char::from(b'a' + (i - 26) as u8)
        }
    };
    let folded: Option<char> = match u {
        // Full-width ASCII.
        0xFF01..=0xFF5E => char::from_u32(u - 0xFEE0),
        // Mathematical alphanumeric symbols: thirteen Latin alphabets of 52 letters each,
        // then (after the Greek ones) five sets of ten digits.
        0x1D400..=0x1D6A3 => Some(latin((u - 0x1D400) % 52)),
        0x1D7CE..=0x1D7FF => char::from_u32('0' as u32 + (u - 0x1D7CE) % 10),
        // Circled letters and digits.
        0x24B6..=0x24CF => Some(latin(u - 0x24B6)),
        0x24D0..=0x24E9 => Some(latin(26 + u - 0x24D0)),
        0x2460..=0x2468 => char::from_u32('1' as u32 + u - 0x2460),
        0x24EA => Some('0'),
        // Super- and subscript digits and letters.
        0x2070 | 0x2080 => Some('0'),
        0x00B9 | 0x2081 => Some('1'),
        0x00B2 | 0x2082 => Some('2'),
        0x00B3 | 0x2083 => Some('3'),
        0x2074..=0x2079 => char::from_u32('4' as u32 + u - 0x2074),
        0x2084..=0x2089 => char::from_u32('4' as u32 + u - 0x2084),
        0x2071 => Some('i'),
        0x207F => Some('n'),
        0x00AA => Some('a'),
        0x00BA => Some('o'),
        // Letter-like symbols.
        0x2102 | 0x212D => Some('C'),
        0x210A => Some('g'),
        0x210B..=0x210D => Some('H'),
        0x210E => Some('h'),
        0x2110 | 0x2111 => Some('I'),
        0x2112 => Some('L'),
        0x2113 => Some('l'),
        0x2115 => Some('N'),
        0x2119 => Some('P'),
        0x211A => Some('Q'),
        0x211B..=0x211D => Some('R'),
        0x2124 | 0x2128 => Some('Z'),
        0x212A => Some('K'),
        0x212B => Some('Å'),
        0x212C => Some('B'),
        0x212F | 0x2147 => Some('e'),
        0x2130 => Some('E'),
        0x2131 => Some('F'),
        0x2133 => Some('M'),
        0x2134 => Some('o'),
        0x2139 | 0x2148 => Some('i'),
        0x2145 => Some('D'),
        0x2146 => Some('d'),
        0x2149 => Some('j'),
        0x017F => Some('s'),
        _ => None,
    };
    if let Some(f) = folded {
        out.push(f);
        return;
    }
    let expanded: &str = match u {
        // Circled numbers 10–20.
        0x2469..=0x2473 => {
            const N: [&str; 11] = [
                "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20",
            ];
            N[(u - 0x2469) as usize]
        }
        // Roman numerals, upper and lower case.
        0x2160..=0x217F => {
            const R: [&str; 16] = [
                "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "L", "C",
                "D", "M",
            ];
            R[((u - 0x2160) % 16) as usize]
        }
        // Latin ligatures.
        0xFB00 => "ff",
        0xFB01 => "fi",
        0xFB02 => "fl",
        0xFB03 => "ffi",
        0xFB04 => "ffl",
        0xFB05 | 0xFB06 => "st",
        0x0132 => "IJ",
        0x0133 => "ij",
        _ => {
            out.push(c);
            return;
        }
    };
    out.push_str(expanded);
}

/// Step 3 of [`name_key`]: lower-case characters that draw like a Latin letter, and the
/// letter they draw like. Only letters are mapped (never to or from digits), and only where
/// the upper- or lower-case forms are indistinguishable in common fonts. Where the two cases
/// resemble different Latin letters, the upper case wins (Greek `Ν`/`ν` → `n`, `Υ`/`υ` →
/// `y`): capitals are the ones drawn identically.
pub const LOOK_ALIKES: &[(char, char)] = &[
    // Cyrillic (the lower-case forms; upper case reaches them through step 2).
    ('а', 'a'),
    ('в', 'b'),
    ('ь', 'b'),
    ('с', 'c'),
    ('ԁ', 'd'),
    ('е', 'e'),
    ('ё', 'ë'),
    ('һ', 'h'),
    ('н', 'h'),
    ('і', 'i'),
    ('ї', 'ï'),
    ('ј', 'j'),
    ('к', 'k'),
    ('ӏ', 'l'),
    ('м', 'm'),
    ('о', 'o'),
    ('р', 'p'),
    ('ԛ', 'q'),
    ('ѕ', 's'),
    ('т', 't'),
    ('у', 'y'),
    ('ү', 'y'),
    ('х', 'x'),
    ('ԝ', 'w'),
    ('ѡ', 'w'),
    ('ѵ', 'v'),
    // Greek.
    ('α', 'a'),
    ('β', 'b'),
    ('ϲ', 'c'),
    ('ε', 'e'),
    ('η', 'h'),
    ('ι', 'i'),
    ('ϳ', 'j'),
    ('κ', 'k'),
    ('μ', 'm'),
    ('ν', 'n'),
    ('ο', 'o'),
    ('ρ', 'p'),
    ('τ', 't'),
    ('υ', 'y'),
    ('χ', 'x'),
    ('γ', 'y'),
    ('ζ', 'z'),
    ('ω', 'w'),
    // Armenian.
    ('հ', 'h'),
    ('ո', 'n'),
    ('ս', 'u'),
    ('օ', 'o'),
    // Latin: dotless, hooked and script forms, and the small capitals.
    ('ı', 'i'),
    ('ȷ', 'j'),
    ('ɑ', 'a'),
    ('ɡ', 'g'),
    ('ɩ', 'i'),
    ('ʋ', 'v'),
    ('ᴀ', 'a'),
    ('ʙ', 'b'),
    ('ᴄ', 'c'),
    ('ᴅ', 'd'),
    ('ᴇ', 'e'),
    ('ɢ', 'g'),
    ('ʜ', 'h'),
    ('ɪ', 'i'),
    ('ᴊ', 'j'),
    ('ᴋ', 'k'),
    ('ʟ', 'l'),
    ('ᴍ', 'm'),
    ('ɴ', 'n'),
    ('ᴏ', 'o'),
    ('ᴘ', 'p'),
    ('ʀ', 'r'),
    ('ꜱ', 's'),
    ('ᴛ', 't'),
    ('ᴜ', 'u'),
    ('ᴠ', 'v'),
    ('ᴡ', 'w'),
    ('ʏ', 'y'),
    ('ᴢ', 'z'),
];

fn look_alike(c: char) -> Option<char> {
    if c.is_ascii() {
        return None;
    }
    LOOK_ALIKES
        .iter()
        .find(|&&(from, _)| from == c)
        .map(|&(_, to)| to)
}

#[cfg(test)]
mod tests {
    use super::{name_key, validate_name, NameError, LOOK_ALIKES};

    /// Each row: names that must share one key (the first is the plain form).
    #[test]
    fn look_alike_names_share_a_key() {
        let table: &[&[&str]] = &[
            &[
                "alice",
                "Alice",
                "ALICE",
                "Ａlice",
                "ａｌｉｃｅ",
                "\u{430}lice",
                "аlicе",
                "АLICЕ",
            ],
            &[
                "alice",
                "\u{1D400}lice",
                "\u{1D41A}\u{1D425}ice",
                "ⓐlice",
                "Ⓐlice",
                "ᴀlice",
            ],
            &["server", "ѕеrvеr", "SЕRVЕR", "ｓｅｒｖｅｒ", "ꜱᴇʀᴠᴇʀ"],
            &["bob", "ьоь", "ВОВ", "βοβ", "Βοβ"],
            &["paypal", "рауpаl", "ΡΑΥΡΑL"],
            &["ok", "οκ", "ΟΚ", "ОК", "ok"],
            &["nick", "nіck", "nıck", "ɴɪᴄᴋ"],
            &["file", "ﬁle", "ＦＩＬＥ"],
            &["r2d2", "R²D₂", "ʀ2ᴅ2", "ℛ2ⅅ2"],
            &["iv", "Ⅳ", "ⅳ", "IV"],
            &["x1", "x①", "𝐱𝟏"],
            &["hello", "НЕLLО", "ℌello"],
            &["zoë", "ZOË", "Ζοë"],
        ];
        for row in table {
            let want = name_key(row[0]);
            for name in *row {
                assert!(
                    validate_name(name).is_ok(),
                    "{name:?} should be a valid name"
                );
                assert_eq!(name_key(name), want, "{name:?} vs {:?}", row[0]);
            }
        }
    }

    #[test]
    fn the_ascii_shortcut_agrees_with_the_full_key() {
        for name in ["alice", "ALICE", "Bob_2", "x.y-z", "Server", "I", "K"] {
            let mut full = String::new();
            for c in name.chars() {
                super::fold_compatibility(c, &mut full);
            }
            let full: String = full
                .to_lowercase()
                .chars()
                .map(|c| super::look_alike(c).unwrap_or(c))
                .collect();
            assert_eq!(name_key(name), full);
        }
    }

    #[test]
    fn distinct_names_stay_distinct() {
        for (a, b) in [
            ("alice", "alicé"),
            ("bob1", "bobl"),
            ("o0", "oo"),
            ("rn", "m"),
            ("日本", "日木"),
            ("Ärger", "Arger"),
        ] {
            assert_ne!(name_key(a), name_key(b), "{a} / {b}");
        }
    }

    #[test]
    fn invisible_characters_are_refused() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{034F}',
            '\u{180E}',
            '\u{FE0F}',
            '\u{202E}',
            '\u{115F}',
            '\u{1160}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{2800}',
            '\u{E0041}',
        ] {
            let name = format!("alice{c}");
            assert_eq!(
                validate_name(&name),
                Err(NameError::BadCharacter(c)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn the_look_alike_table_is_well_formed() {
        for &(from, to) in LOOK_ALIKES {
            assert!(!from.is_ascii() && from.is_alphabetic(), "{from:?}");
            // Lower case already (step 2 comes first), and the target is a Latin letter.
            assert_eq!(from.to_lowercase().collect::<String>(), from.to_string());
            assert!(to.is_alphabetic() && to.is_lowercase(), "{to:?}");
            assert!(LOOK_ALIKES.iter().filter(|&&(f, _)| f == from).count() == 1);
        }
    }
}
