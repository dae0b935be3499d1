//! Passwords too easy to guess to be accepted, whatever their length: the username itself, one
//! character repeated, and the common passwords of leaked password sets (the list shipped in
//! `common-passwords.txt`, with its source and licence). Checked ignoring case and surrounding
//! spaces, since guessers try those variants first.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::domain::{Password, Username};
use crate::error::AppError;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Refuses a weak password with 422 `weak_password`, saying why.
pub fn refuse_weak(password: &Password, username: &Username) -> Result<(), AppError> {
    let folded = password.expose().trim().to_lowercase();
    let mut chars = folded.chars();
    let repeated = chars.next().is_none_or(|first| chars.all(|c| c == first));
    let why = if folded == username.canonical() {
        "must not be the username"
    } else if repeated {
        "must not be one character repeated"
    } else if COMMON.contains(folded.as_str()) {
        "is one of the most common passwords; choose another"
    } else {
        return Ok(());
    };
    Err(AppError::WeakPassword(why.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weak(password: &str, username: &str) -> bool {
        refuse_weak(
            &Password::parse(password).unwrap(),
            &Username::parse(username).unwrap(),
        )
        .is_err()
    }

    #[test]
    fn the_list_is_loaded_and_lowercase() {
        assert!(COMMON.len() > 3_000, "{}", COMMON.len());
        assert!(
            COMMON
                .iter()
                .all(|p| p.len() >= 8 && *p == p.to_lowercase())
        );
    }

    #[test]
    fn weak_passwords_are_refused() {
        for (pw, user) in [
            ("password", "alice"),
            ("PassWord", "alice"),
            ("12345678", "alice"),
            ("qwertyuiop", "alice"),
            ("        ", "alice"),
            ("aaaaaaaaaaaa", "alice"),
            ("alice_in_chains", "Alice_In_Chains"),
            (" password1 ", "alice"),
        ] {
            assert!(weak(pw, user), "{pw:?} for {user}");
        }
    }

    #[test]
    fn ordinary_passwords_pass() {
        for pw in [
            "correct horse battery staple",
            "pw-alice-secret",
            "a long enough password",
            "alice-password",
        ] {
            assert!(!weak(pw, "alice"), "{pw:?}");
        }
    }
}
