//! Read state: members' read markers, unread counts for `GET /groups/mine`, and the throttled
//! `message:read` event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::domain::{GroupId, UserId, can_read_members};
use crate::error::{AppError, AppResult};
use crate::events::EventSink;
use crate::ops::metrics as metric;
use crate::store::{GroupStore, MessageStore, ReadMark, ReadMarker, ReadState};

/// `message:read` goes out at most this often per member and group (the contract's "once a
/// second"); the latest marker of a window always goes out at its end.
const READ_EVENT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ReadService {
    groups: Arc<dyn GroupStore>,
    log: Arc<dyn MessageStore>,
    throttle: Throttle,
}

impl ReadService {
    pub fn new(
        groups: Arc<dyn GroupStore>,
        log: Arc<dyn MessageStore>,
        events: Arc<dyn EventSink>,
    ) -> Self {
        Self {
            groups,
            log,
            throttle: Throttle::new(events, READ_EVENT_INTERVAL),
        }
    }

    /// `PUT /groups/{id}/read`: moves the caller's marker forward to `seq`; a backward or equal
    /// one changes nothing, one beyond the group's last `seq` is `validation_failed`.
    pub async fn mark_read(&self, user: UserId, group: GroupId, seq: u64) -> AppResult<()> {
        self.member(user, group).await?;
        match self.log.mark_read(group, user, seq).await? {
            ReadMark::Moved => {
                metrics::counter!(metric::READ_MARKERS_MOVED).increment(1);
                self.throttle.moved(group, user, seq);
                Ok(())
            }
            ReadMark::NotForward => Ok(()),
            ReadMark::BeyondLast => {
                Err(AppError::field("seq", "is beyond the group's last message"))
            }
            // Left or removed between the check and the write.
            ReadMark::NotMember => Err(AppError::NotFound),
        }
    }

    /// `GET /groups/{id}/reads`: every member's marker (members only).
    pub async fn markers(&self, user: UserId, group: GroupId) -> AppResult<Vec<ReadMarker>> {
        self.member(user, group).await?;
        self.log.read_markers(group).await
    }

    /// The caller's read state in each of `groups` (a page of `GET /groups/mine`).
    pub async fn states(
        &self,
        user: UserId,
        groups: &[GroupId],
    ) -> AppResult<HashMap<GroupId, ReadState>> {
        let states = self.log.read_states(user, groups).await?;
        Ok(states.into_iter().map(|s| (s.group_id, s)).collect())
    }

    async fn member(&self, user: UserId, group: GroupId) -> AppResult<()> {
        let (g, me) = self
            .groups
            .access(group, user)
            .await?
            .ok_or(AppError::NotFound)?;
        can_read_members(g.visibility, &me)?;
        Ok(())
    }
}

/// Per (group, member): at most one `message:read` per interval, on the leading edge and then on
/// the trailing edge with the latest marker, so the last move always arrives. Per process: a
/// member moving their marker through two processes at once may be reported by both.
#[derive(Clone)]
struct Throttle {
    events: Arc<dyn EventSink>,
    interval: Duration,
    open: Arc<Mutex<Windows>>,
}

/// Open windows by (group, member), each with the marker waiting for its end, if any.
type Windows = HashMap<(GroupId, UserId), Option<u64>>;

impl Throttle {
    fn new(events: Arc<dyn EventSink>, interval: Duration) -> Self {
        Self {
            events,
            interval,
            open: Arc::default(),
        }
    }

    fn moved(&self, group: GroupId, user: UserId, seq: u64) {
        let key = (group, user);
        {
            let mut open = self.open.lock();
            if let Some(pending) = open.get_mut(&key) {
                // Markers only move forward, but two requests may finish out of order.
                *pending = Some(pending.map_or(seq, |p| p.max(seq)));
                return;
            }
            open.insert(key, None);
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.events.read_moved(group, user, seq).await;
            let mut sent = seq;
            loop {
                tokio::time::sleep(this.interval).await;
                let next = {
                    let mut open = this.open.lock();
                    match open.get_mut(&key).and_then(Option::take) {
                        Some(s) if s > sent => Some(s),
                        _ => {
                            open.remove(&key);
                            None
                        }
                    }
                };
                let Some(seq) = next else { break };
                this.events.read_moved(group, user, seq).await;
                sent = seq;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{GroupEvent, Unpublished};
    use crate::store::StoredMessage;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<u64>>);

    #[async_trait::async_trait]
    impl EventSink for Recorder {
        async fn group_events(&self, _: Vec<GroupEvent>) -> Result<(), Unpublished> {
            Ok(())
        }
        async fn messages_stored(&self, _: &[StoredMessage]) {}
        async fn read_moved(&self, _: GroupId, _: UserId, seq: u64) {
            self.0.lock().push(seq);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_sends_the_first_and_the_latest_marker_once_a_window() {
        let rec = Arc::new(Recorder::default());
        let t = Throttle::new(rec.clone(), Duration::from_secs(1));
        let (g, u) = (GroupId::new(), UserId::new());
        for seq in 1..=5 {
            t.moved(g, u, seq);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*rec.0.lock(), [1]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            *rec.0.lock(),
            [1, 5],
            "the latest arrives at the window's end"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(*rec.0.lock(), [1, 5], "nothing more without moves");
        assert!(t.open.lock().is_empty(), "the window closed");
        t.moved(g, u, 6);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*rec.0.lock(), [1, 5, 6], "a new window opens at once");
    }
}
