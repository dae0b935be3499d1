//! A circuit breaker for a dependency that has a fallback: after a failure, callers use the
//! fallback at once for a while instead of each waiting for the dependency to time out, and one
//! background probe at a time decides when to trust the dependency again. State changes are
//! logged (and only they), so an outage costs two log lines, not one per request.
//!
//! Self-contained (nothing from the crate) so any client of a dependency can use it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What a caller should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Call {
    /// Use the dependency (and report the outcome with [`Breaker::succeeded`] or
    /// [`Breaker::failed`]).
    Try,
    /// Use the fallback.
    Skip,
    /// Use the fallback, and probe the dependency in the background: this caller was chosen to
    /// (report the probe's outcome with [`Breaker::succeeded`] or [`Breaker::failed`]).
    SkipAndProbe,
}

#[derive(Debug)]
enum State {
    Closed,
    /// Failed; no probe before `retry_at`.
    Open {
        retry_at: Instant,
    },
    /// One probe is out.
    Probing,
}

#[derive(Clone)]
pub struct Breaker {
    name: &'static str,
    /// How long the fallback is used after a failure before the next probe.
    open_for: Duration,
    state: Arc<Mutex<State>>,
}

impl Breaker {
    /// `name` is the dependency's, for the log lines.
    pub fn new(name: &'static str, open_for: Duration) -> Self {
        Self {
            name,
            open_for,
            state: Arc::new(Mutex::new(State::Closed)),
        }
    }

    pub fn call(&self) -> Call {
        self.call_at(Instant::now())
    }

    fn call_at(&self, now: Instant) -> Call {
        let mut state = self.state.lock();
        match *state {
            State::Closed => Call::Try,
            State::Open { retry_at } if now >= retry_at => {
                *state = State::Probing;
                Call::SkipAndProbe
            }
            State::Open { .. } | State::Probing => Call::Skip,
        }
    }

    /// Whether callers use the dependency (false while it is failing).
    pub fn is_closed(&self) -> bool {
        matches!(*self.state.lock(), State::Closed)
    }

    /// The dependency answered: use it again.
    pub fn succeeded(&self) {
        let was = std::mem::replace(&mut *self.state.lock(), State::Closed);
        if !matches!(was, State::Closed) {
            tracing::info!(
                dependency = self.name,
                "dependency answers again; no longer using the fallback"
            );
        }
    }

    /// The dependency failed (or did not answer in time): use the fallback for a while.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.failed_at(error, Instant::now());
    }

    fn failed_at(&self, error: &dyn std::fmt::Display, now: Instant) {
        let retry_at = now + self.open_for;
        let was = std::mem::replace(&mut *self.state.lock(), State::Open { retry_at });
        if matches!(was, State::Closed) {
            tracing::warn!(
                dependency = self.name,
                error = %error,
                retry_in_ms = self.open_for.as_millis() as u64,
                "dependency failed; using the fallback and probing it in the background"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_opens_it_and_one_probe_at_a_time_closes_it() {
        let b = Breaker::new("test", Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(b.call_at(t0), Call::Try);
        b.failed_at(&"boom", t0);
        assert!(!b.is_closed());
        assert_eq!(b.call_at(t0), Call::Skip);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(b.call_at(later), Call::SkipAndProbe);
        assert_eq!(b.call_at(later), Call::Skip, "one probe at a time");
        b.failed_at(&"still", later);
        assert_eq!(b.call_at(later), Call::Skip, "the probe failed: wait again");
        let after = later + Duration::from_secs(1);
        assert_eq!(b.call_at(after), Call::SkipAndProbe);
        b.succeeded();
        assert!(b.is_closed());
        assert_eq!(b.call_at(after), Call::Try);
    }
}
