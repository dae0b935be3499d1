//! Pagination: a bounded page size and an opaque cursor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::FieldError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const MAX: u32 = 100;
    pub const DEFAULT: u32 = 50;

    pub fn parse(raw: Option<i64>) -> Result<Self, FieldError> {
        match raw {
            None => Ok(Self(Self::DEFAULT)),
            Some(n) if (1..=Self::MAX as i64).contains(&n) => Ok(Self(n as u32)),
            Some(_) => Err(FieldError::new(
                "limit",
                format!("must be 1..{}", Self::MAX),
            )),
        }
    }

    pub fn new_clamped(n: u32) -> Self {
        Self(n.clamp(1, Self::MAX))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// An opaque position in a listing. Inside it is the sort key of the last item returned
/// (the stores decide what that is); clients only pass it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    pub fn from_key(key: &str) -> Self {
        Self(key.to_owned())
    }

    pub fn key(&self) -> &str {
        &self.0
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    pub fn decode(raw: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new("cursor", "is not a cursor this server issued");
        if raw.len() > 512 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        String::from_utf8(bytes).map(Self).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        assert_eq!(Limit::parse(None).unwrap().get(), 50);
        assert_eq!(Limit::parse(Some(100)).unwrap().get(), 100);
        assert!(Limit::parse(Some(0)).is_err());
        assert!(Limit::parse(Some(101)).is_err());
        let c = Cursor::from_key("2026|abc");
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("!!!").is_err());
    }
}
