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
/// digit or one of `-_.`, not starting with `.` or `-`. Names compare case-insensitively
/// (see [`name_key`]).
///
/// ```
/// use tidings_core::name::{validate_name, NameError};
/// assert!(validate_name("alice").is_ok());
/// assert!(validate_name("Zoë_2").is_ok());
/// assert_eq!(validate_name("a b"), Err(NameError::BadCharacter(' ')));
/// assert_eq!(validate_name(".hidden"), Err(NameError::BadStart));
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let mut count = 0;
    for c in name.chars() {
        if !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')) {
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

/// The key under which a name is unique: lower case, so `Alice` and `alice` are one name.
///
/// ```
/// assert_eq!(tidings_core::name::name_key("ÅLice"), "ålice");
/// ```
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}
