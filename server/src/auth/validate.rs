//! Field rules for accounts, checked before any hashing or database work.

use app::wire::{PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("Usernames are 3-64 characters: letters, digits, '.', '_' or '-'.")]
    Username,
    #[error("That does not look like an email address.")]
    Email,
    #[error("Passwords need at least {PASSWORD_MIN_CHARS} characters.")]
    PasswordTooShort,
    #[error("Passwords can have at most {PASSWORD_MAX_CHARS} characters.")]
    PasswordTooLong,
    #[error(
        "An email or username has at most {} characters.",
        super::throttle::MAX_IDENTIFIER_CHARS
    )]
    LoginTooLong,
}

impl FieldError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Username => "invalid_username",
            Self::Email => "invalid_email",
            Self::PasswordTooShort => "password_too_short",
            Self::PasswordTooLong => "password_too_long",
            Self::LoginTooLong => "login_too_long",
        }
    }

    pub fn field(&self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
            Self::PasswordTooShort | Self::PasswordTooLong => "password",
            Self::LoginTooLong => "login",
        }
    }
}

/// Trimmed username: 3-64 ASCII letters, digits, `.`, `_`, `-` (covers the original guide's
/// `test-user-1234567890` and keeps names safe to print in logs and terminals).
pub fn username(raw: &str) -> Result<&str, FieldError> {
    let name = raw.trim();
    let ok_len = (3..=64).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok_len && ok_chars {
        Ok(name)
    } else {
        Err(FieldError::Username)
    }
}

/// An email as calos stores and compares it: trimmed, NFKC-normalised (a
/// full-width `ｅ` is an `e`) and lower-cased in full Unicode. The database's
/// `lower()` folds only ASCII on SQLite, so two spellings of one address
/// could otherwise both register; normalising in one place makes both
/// databases agree.
pub fn normalise_email(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    raw.trim().nfkc().collect::<String>().to_lowercase()
}

/// A valid email, normalised ([`normalise_email`]); deliberately loose (RFC
/// 5321 lengths, one `@`, a dotted domain, no whitespace or control
/// characters): deliverability is not our business.
pub fn email(raw: &str) -> Result<String, FieldError> {
    let email = normalise_email(raw);
    let Some((local, domain)) = email.split_once('@') else {
        return Err(FieldError::Email);
    };
    let valid = email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(FieldError::Email)
    }
}

/// Length only, counted in characters, on the password exactly as received
/// (ASVS 6.2.5 no composition rules, 6.2.8 no trimming or case folding).
pub fn password(raw: &str) -> Result<(), FieldError> {
    // Byte length bounds the work before counting chars of a huge string.
    if raw.len() > PASSWORD_MAX_CHARS * 4 {
        return Err(FieldError::PasswordTooLong);
    }
    match raw.chars().count() {
        n if n < PASSWORD_MIN_CHARS => Err(FieldError::PasswordTooShort),
        n if n > PASSWORD_MAX_CHARS => Err(FieldError::PasswordTooLong),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_style_usernames_are_accepted_and_odd_ones_refused() {
        assert_eq!(
            username(" test-user-1732900000 "),
            Ok("test-user-1732900000")
        );
        assert_eq!(username("ab"), Err(FieldError::Username));
        assert_eq!(username("bad\nname"), Err(FieldError::Username));
        assert_eq!(username("a b c"), Err(FieldError::Username));
    }

    #[test]
    fn emails_are_compared_in_one_normal_form() {
        assert_eq!(email(" Dev@Example.COM ").unwrap(), "dev@example.com");
        // Full-width letters (NFKC) and non-ASCII capitals (which SQLite's
        // lower() leaves alone) come out as one address.
        assert_eq!(email("ＤＥＶ@example.com").unwrap(), "dev@example.com");
        assert_eq!(
            email("ÉMILE@example.com").unwrap(),
            email("émile@example.com").unwrap()
        );
        // A composed and a decomposed é are one character.
        assert_eq!(
            email("e\u{301}mile@example.com").unwrap(),
            "\u{e9}mile@example.com"
        );
    }

    #[test]
    fn emails_need_an_at_and_a_dotted_domain() {
        assert!(email("dev@example.com").is_ok());
        for bad in [
            "dev",
            "dev@",
            "@example.com",
            "dev@localhost",
            "a b@example.com",
            "a@b@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_counted_in_characters_between_8_and_128() {
        assert_eq!(password("1234567"), Err(FieldError::PasswordTooShort));
        assert_eq!(password("12345678"), Ok(()));
        assert_eq!(password(&"é".repeat(128)), Ok(()));
        assert_eq!(password(&"x".repeat(129)), Err(FieldError::PasswordTooLong));
        assert_eq!(
            password(&"x".repeat(1_000_000)),
            Err(FieldError::PasswordTooLong)
        );
    }
}
