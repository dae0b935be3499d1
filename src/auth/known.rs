//! Accounts this process has recently seen exist, so authenticating a request does not read the
//! store every time. Only existence is remembered, never a refusal, and only for a short time:
//! an account deleted on another process stops authenticating within the TTL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::domain::UserId;

/// Beyond this many entries the expired ones are dropped, and all of them if that is not enough.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone)]
pub(crate) struct KnownAccounts {
    ttl: Duration,
    seen: Arc<Mutex<HashMap<UserId, Instant>>>,
}

impl KnownAccounts {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn contains(&self, user: UserId) -> bool {
        self.seen
            .lock()
            .get(&user)
            .is_some_and(|until| *until > Instant::now())
    }

    pub(crate) fn insert(&self, user: UserId) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, until| *until > now);
            if seen.len() >= MAX_ENTRIES {
                seen.clear();
            }
        }
        seen.insert(user, now + self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_the_ttl_only_and_nothing_with_zero() {
        let u = UserId::new();
        let off = KnownAccounts::new(Duration::ZERO);
        off.insert(u);
        assert!(!off.contains(u));
        let on = KnownAccounts::new(Duration::from_millis(200));
        on.insert(u);
        assert!(on.contains(u));
        assert!(!on.contains(UserId::new()));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!on.contains(u));
    }
}
