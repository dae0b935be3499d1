//! Group value types, valid by construction.

use serde::{Deserialize, Serialize};

use super::FieldError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Open,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Open => "open",
            Visibility::Private => "private",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "open" => Ok(Self::Open),
            "private" => Ok(Self::Private),
            _ => Err(FieldError::new(
                "visibility",
                "must be \"open\" or \"private\"",
            )),
        }
    }
}

/// 1..=100 characters after trimming; no control or bidirectional formatting characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    pub const MAX: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let t = raw.trim();
        let len = t.chars().count();
        if len == 0 || len > Self::MAX {
            return Err(FieldError::new(
                "name",
                format!("must be 1..{} characters", Self::MAX),
            ));
        }
        if t.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if let Some(c) = super::text::refused_char(t, false) {
            return Err(FieldError::new("name", super::text::refused_message(c)));
        }
        Ok(Self(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Up to 1000 characters; line breaks and tabs, but no other control characters and no
/// bidirectional formatting characters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    pub const MAX: usize = 1000;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > Self::MAX {
            return Err(FieldError::new(
                "description",
                format!("must be at most {} characters", Self::MAX),
            ));
        }
        if let Some(c) = super::text::refused_char(raw, true) {
            return Err(FieldError::new(
                "description",
                super::text::refused_message(c),
            ));
        }
        Ok(Self(raw.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 2..=`limit` members, where the limit is the server's configured ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxMembers(u32);

impl MaxMembers {
    pub const MIN: u32 = 2;

    pub fn parse(raw: i64, limit: u32) -> Result<Self, FieldError> {
        if raw < Self::MIN as i64 || raw > limit as i64 {
            return Err(FieldError::new(
                "max_members",
                format!("must be {}..{}", Self::MIN, limit),
            ));
        }
        Ok(Self(raw as u32))
    }

    /// For values read back from a store, which only ever held validated ones.
    pub fn trusted(v: u32) -> Self {
        Self(v)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_fields_have_limits() {
        assert!(GroupName::parse("").is_err());
        assert!(GroupName::parse("   ").is_err());
        assert_eq!(GroupName::parse("  Rust  ").unwrap().as_str(), "Rust");
        assert!(GroupName::parse(&"n".repeat(100)).is_ok());
        assert!(GroupName::parse(&"n".repeat(101)).is_err());
        assert!(GroupName::parse("a\u{0}b").is_err());
        assert!(Description::parse(&"d".repeat(1000)).is_ok());
        assert!(Description::parse(&"d".repeat(1001)).is_err());
        assert!(MaxMembers::parse(1, 1000).is_err());
        assert!(MaxMembers::parse(2, 1000).is_ok());
        assert!(MaxMembers::parse(1000, 1000).is_ok());
        assert!(MaxMembers::parse(1001, 1000).is_err());
        assert_eq!(Visibility::parse("private").unwrap(), Visibility::Private);
        assert!(Visibility::parse("Private").is_err());
    }
}
