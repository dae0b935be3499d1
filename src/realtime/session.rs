//! Who a socket belongs to, and how long that holds: set once at connect, read by every event
//! handler and by the resync, and swept when the access token expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use super::rate::Bucket;
use crate::domain::UserId;
use crate::ops::metrics as metric;

/// Set in a socket's extensions once it has authenticated.
#[derive(Clone)]
pub(crate) struct SocketUser {
    pub(crate) id: UserId,
    /// Access token expiry (unix seconds).
    pub(crate) exp: i64,
    /// The socket's own event budget.
    pub(crate) bucket: Arc<Bucket>,
}

impl SocketUser {
    pub(crate) fn new(id: UserId, exp: i64, events_per_sec: u32) -> Self {
        let rate = f64::from(events_per_sec);
        Self {
            id,
            exp,
            bucket: Arc::new(Bucket::new(rate, rate * 2.0)),
        }
    }

    pub(crate) fn expired(&self, now: i64) -> bool {
        self.exp <= now
    }
}

/// Disconnects sockets whose access token has expired, every few seconds, until shutdown.
pub fn spawn_expiry_sweep(io: SocketIo, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            // `io.sockets()` panics once `io.close()` (the drain) has removed the namespace.
            let Some(ns) = io.of("/") else { return };
            for s in ns.sockets() {
                if s.extensions
                    .get::<SocketUser>()
                    .is_some_and(|u| u.expired(now))
                {
                    metrics::counter!(metric::SOCKET_EXPIRED).increment(1);
                    let _ = s.disconnect();
                }
            }
        }
    });
}

/// The live sockets of each user on this process, held under a cap so one account cannot pile
/// up connections (each holds buffers and room memberships).
pub(crate) struct SocketsPerUser {
    max: u32,
    counts: parking_lot::Mutex<std::collections::HashMap<UserId, u32>>,
}

impl SocketsPerUser {
    pub(crate) fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: Default::default(),
        })
    }

    /// A slot for one more socket of `user`, unless that would pass the cap.
    pub(crate) fn try_enter(self: &Arc<Self>, user: UserId) -> Option<SocketSlot> {
        let mut counts = self.counts.lock();
        let n = counts.entry(user).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            owner: self.clone(),
            user,
            held: AtomicBool::new(true),
        })
    }

    fn leave(&self, user: UserId) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&user) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&user);
            }
        }
    }
}

/// One socket's place under its user's cap: given back at disconnect, or at the latest when
/// the socket itself is dropped (a socket that never reaches its disconnect handler, such as
/// one whose transport closed while it was being set up, still frees its place).
pub(crate) struct SocketSlot {
    owner: Arc<SocketsPerUser>,
    user: UserId,
    held: AtomicBool,
}

impl SocketSlot {
    pub(crate) fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.owner.leave(self.user);
        }
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.release();
    }
}
