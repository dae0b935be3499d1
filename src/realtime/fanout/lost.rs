//! What the fan-out may have missed while Redis was unreachable, and whom to re-read for it
//! (`realtime::resync`): everyone on this process after its own loss, the users other processes
//! could not publish events of, and the users of events this process could not publish.

use std::sync::Arc;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::domain::UserId;
use crate::events::GroupEvent;
use crate::events::MembershipWatcher;

/// Users whose membership events could not be published, kept to be re-read by every process
/// once Redis answers again; beyond this many, every process re-reads everyone instead.
const UNPUBLISHED_USERS: usize = 4096;

/// Whose rooms to re-read after membership events were missed.
#[derive(Debug, PartialEq, Eq)]
pub enum Reread {
    Everyone,
    Users(Vec<UserId>),
}

/// What may have been missed, and what to ask the other processes to re-read.
pub(super) struct Lost {
    /// Set when this process may have missed membership events; the heartbeat's next answered
    /// PING turns it into a re-read of everyone.
    pub(super) missed: AtomicBool,
    /// Set with `missed`, cleared once every local socket's rooms have been re-read since: until
    /// then group traffic is not delivered here, since a socket that should have left a room
    /// (a removal this process missed) is still in it.
    pub(super) quarantined: AtomicBool,
    state: Mutex<LostState>,
    pub(super) back: Notify,
    /// Forgets every remembered sender whenever events may have been missed; the reader also
    /// makes it forget the members who lose access.
    pub(super) watcher: Arc<dyn MembershipWatcher>,
}

#[derive(Default)]
pub(super) struct LostState {
    pub(super) everyone: bool,
    /// Re-reads asked by other processes (their events we never received).
    pub(super) users: HashSet<UserId>,
    /// Users of events this process could not publish.
    pub(super) unpublished: HashSet<UserId>,
    /// More than `UNPUBLISHED_USERS`: every process re-reads everyone.
    pub(super) unpublished_overflow: bool,
}

impl Lost {
    pub(super) fn new(watcher: Arc<dyn MembershipWatcher>) -> Self {
        Self {
            missed: AtomicBool::new(false),
            quarantined: AtomicBool::new(false),
            state: Mutex::default(),
            back: Notify::new(),
            watcher,
        }
    }

    /// Membership events may have been missed: trust no remembered sender, and re-read everyone
    /// once Redis answers again.
    pub(super) fn mark(&self) {
        self.watcher.events_lost();
        self.quarantined.store(true, Ordering::SeqCst);
        self.missed.store(true, Ordering::SeqCst);
    }

    /// Every local socket's rooms were re-read: group traffic may be delivered again, unless a
    /// new loss happened meanwhile (its own re-read of everyone is still to come).
    pub(super) fn resynced(&self) {
        if !self.missed.load(Ordering::SeqCst) && !self.state().everyone {
            self.quarantined.store(false, Ordering::SeqCst);
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, LostState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn unpublished(&self, ev: &GroupEvent) {
        let Some(user) = ev.user() else { return };
        let mut st = self.state();
        if st.unpublished.len() < UNPUBLISHED_USERS {
            st.unpublished.insert(user);
        } else {
            st.unpublished_overflow = true;
        }
    }

    pub(super) fn wake(&self, f: impl FnOnce(&mut LostState)) {
        f(&mut self.state());
        self.back.notify_one();
    }

    pub(super) fn take(&self) -> Option<Reread> {
        let mut st = self.state();
        if std::mem::take(&mut st.everyone) {
            st.users.clear();
            return Some(Reread::Everyone);
        }
        if st.users.is_empty() {
            return None;
        }
        Some(Reread::Users(st.users.drain().collect()))
    }
}

/// The membership channel's other frame: a process that could not publish a user's membership
/// events asks every process to re-read that user's groups (`None`: everyone's). An enum, so
/// that serde checks the `kind`.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum RereadFrame {
    Reread { user: Option<UserId> },
}
