//! Reading typed values from the environment map, each error naming its setting.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::{ConfigError, err};

pub(super) struct Reader<'a>(pub(super) &'a HashMap<String, String>);

impl Reader<'_> {
    pub(super) fn opt(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn str(&self, key: &str, default: &str) -> String {
        self.opt(key).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn num<T>(&self, key: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.opt(key) else {
            return Ok(default);
        };
        let v: T = raw
            .parse()
            .map_err(|_| err(key, format!("not a number: {raw:?}")))?;
        if v < min || v > max {
            return Err(err(
                key,
                format!("must be between {min} and {max}, got {v}"),
            ));
        }
        Ok(v)
    }

    pub(super) fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.opt(key).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(other) => Err(err(key, format!("must be true or false, got {other:?}"))),
        }
    }

    pub(super) fn duration(&self, key: &str, default: &str) -> Result<Duration, ConfigError> {
        let raw = self.str(key, default);
        humantime::parse_duration(&raw)
            .map_err(|e| err(key, format!("not a duration like \"48h\" or \"3s\": {e}")))
    }

    /// [`Self::duration_in`] in milliseconds, for short timeouts.
    pub(super) fn duration_ms_in(
        &self,
        key: &str,
        default: &str,
        min_ms: u64,
        max_ms: u64,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(key, default)?;
        let (min, max) = (Duration::from_millis(min_ms), Duration::from_millis(max_ms));
        let range = || format!("must be between {min_ms}ms and {max_ms}ms");
        (min..=max)
            .contains(&d)
            .then_some(d)
            .ok_or_else(|| err(key, range()))
    }

    pub(super) fn duration_in(
        &self,
        key: &str,
        default: &str,
        min_s: u64,
        max_s: u64,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(key, default)?;
        if d < Duration::from_secs(min_s) || d > Duration::from_secs(max_s) {
            return Err(err(key, format!("must be between {min_s}s and {max_s}s")));
        }
        Ok(d)
    }
}
