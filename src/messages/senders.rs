//! Who may send to which group, remembered for a few seconds, so the send path asks the store
//! only when it does not know: otherwise every message costs two store reads before it is even
//! queued, the largest share of the store's work under a steady chat.
//!
//! Only "may send" is remembered, never a refusal, so a newcomer can send at once. A member who
//! loses access (leaves, is removed or banned, or the group is deleted) is forgotten when that
//! membership event reaches this process: before the command's reply on the process that ran it,
//! and elsewhere when the fan-out delivers it (the same frame that takes their sockets out of the
//! room). Events can be lost while the fan-out's Redis connection is down, so everything is
//! forgotten when a loss is noticed, and `ttl` bounds what a lost event can leave behind.
//!
//! A store read that raced with a forget is not remembered (`epoch`): a send that read the
//! membership just before a ban cannot put it back after the ban has been forgotten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::domain::{GroupId, UserId};
use crate::events::{GroupEvent, MembershipWatcher};

/// Beyond this many entries the expired ones are dropped, and if that is not enough, all of them
/// (a few MB at most; an active sender is simply read again).
const MAX_ENTRIES: usize = 100_000;

/// Cheap to clone; every clone shares one memory. With a zero `ttl` nothing is remembered.
#[derive(Clone)]
pub struct SenderCache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    ttl: Duration,
    /// Bumped by every forget, under the lock.
    epoch: AtomicU64,
    entries: Mutex<HashMap<(GroupId, UserId), Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    member_count: u32,
    until: Instant,
}

/// Taken before a store read; [`SenderCache::remember`] drops the answer if anything was forgotten
/// since.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

impl SenderCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: (!ttl.is_zero()).then(|| {
                Arc::new(Inner {
                    ttl,
                    epoch: AtomicU64::new(0),
                    entries: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// The group's member count as last read, if `user` may send to `group`.
    pub fn get(&self, group: GroupId, user: UserId) -> Option<u32> {
        let inner = self.inner.as_ref()?;
        let e = *inner.lock().get(&(group, user))?;
        (Instant::now() < e.until).then_some(e.member_count)
    }

    pub fn ticket(&self) -> Ticket {
        Ticket(
            self.inner
                .as_ref()
                .map_or(0, |i| i.epoch.load(Ordering::Acquire)),
        )
    }

    /// Remembers that `user` may send to `group`, as read from the store after `ticket`.
    pub fn remember(&self, ticket: Ticket, group: GroupId, user: UserId, member_count: u32) {
        let Some(inner) = &self.inner else { return };
        let now = Instant::now();
        let mut entries = inner.lock();
        if inner.epoch.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let until = now + inner.ttl;
        entries.insert(
            (group, user),
            Entry {
                member_count,
                until,
            },
        );
    }

    /// `user` may no longer send to `group` (or may not: forgetting is always safe).
    pub fn forget(&self, group: GroupId, user: UserId) {
        let Some(inner) = &self.inner else { return };
        let mut entries = inner.lock();
        inner.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(&(group, user));
    }

    /// Forgets the member who lost access to a group through `ev` (left, removed, banned, or the
    /// group deleted), if any.
    pub fn forget_event(&self, ev: &GroupEvent) {
        if let Some((group, user)) = ev.lost_access() {
            self.forget(group, user);
        }
    }

    /// Membership events may have been missed.
    pub fn forget_all(&self) {
        let Some(inner) = &self.inner else { return };
        let mut entries = inner.lock();
        inner.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<(GroupId, UserId), Entry>> {
        // The map holds no invariant a panicking holder could break halfway.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MembershipWatcher for SenderCache {
    fn event(&self, ev: &GroupEvent) {
        self.forget_event(ev);
    }

    fn events_lost(&self) {
        self.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (GroupId, UserId) {
        (GroupId::new(), UserId::new())
    }

    #[test]
    fn remembers_a_sender_until_forgotten() {
        let s = SenderCache::new(Duration::from_secs(60));
        let (g, u) = pair();
        assert_eq!(s.get(g, u), None);
        s.remember(s.ticket(), g, u, 7);
        assert_eq!(s.get(g, u), Some(7));
        assert_eq!(s.get(g, UserId::new()), None, "another user of the group");
        assert_eq!(s.get(GroupId::new(), u), None, "another group of the user");
        s.forget(g, u);
        assert_eq!(s.get(g, u), None);
    }

    #[test]
    fn a_read_that_raced_with_a_forget_is_not_remembered() {
        let s = SenderCache::new(Duration::from_secs(60));
        let (g, u) = pair();
        let before_the_ban = s.ticket();
        // The ban commits and its event arrives while the send's store read is in flight.
        s.forget(g, u);
        s.remember(before_the_ban, g, u, 3);
        assert_eq!(s.get(g, u), None);
        // A read begun after the forget saw the ban's outcome, so it may be remembered.
        s.remember(s.ticket(), g, u, 3);
        assert_eq!(s.get(g, u), Some(3));
    }

    #[test]
    fn forget_all_drops_every_entry_and_reads_in_flight() {
        let s = SenderCache::new(Duration::from_secs(60));
        let (a, b) = (pair(), pair());
        s.remember(s.ticket(), a.0, a.1, 1);
        let in_flight = s.ticket();
        s.forget_all();
        s.remember(in_flight, b.0, b.1, 1);
        assert_eq!((s.get(a.0, a.1), s.get(b.0, b.1)), (None, None));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let s = SenderCache::new(Duration::from_millis(1));
        let (g, u) = pair();
        s.remember(s.ticket(), g, u, 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.get(g, u), None);
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let s = SenderCache::new(Duration::ZERO);
        let (g, u) = pair();
        s.remember(s.ticket(), g, u, 1);
        assert_eq!(s.get(g, u), None);
    }

    #[test]
    fn a_full_memory_makes_room() {
        let s = SenderCache::new(Duration::from_secs(60));
        for _ in 0..MAX_ENTRIES {
            let (g, u) = pair();
            s.remember(s.ticket(), g, u, 1);
        }
        let (g, u) = pair();
        s.remember(s.ticket(), g, u, 1);
        assert_eq!(s.get(g, u), Some(1));
        let len = s.inner.as_ref().unwrap().lock().len();
        assert!(len <= MAX_ENTRIES, "{len} entries");
    }
}
