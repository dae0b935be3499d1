//! How events reach the sockets of a group's members.
//!
//! Standalone, [`Fanout`] emits to this process's rooms. In the cluster every group has a Redis
//! channel, `<prefix>fanout:g:<group id>`, subscribed by exactly the processes that hold a
//! socket of one of its members; membership changes go on `<prefix>fanout:members`, which every
//! process subscribes. So a process holding no member of a group receives none of its traffic,
//! and the cost of a message grows with the processes that deliver it, not with the size of the
//! cluster. socketioxide's Redis adapter, used before, sent every broadcast to every process
//! (BENCHMARKS.md, "Scale-out").
//!
//! Order: one connection reads both kinds of channel and one task applies what it reads, in the
//! order Redis published it. A removal published before a message is applied before it on every
//! process, so a removed user's sockets are out of the room before anything later reaches it.
//!
//! The one window: a process subscribes a group's channel when the membership event that needs
//! it arrives, so a message published in the instant between a join and that subscription (well
//! under a millisecond, unless the process is overloaded) misses the newcomer's sockets there.
//! Like any live delivery lost, it shows as a gap in `seq` and `group:sync` fills it.
//!
//! Failure: the connection reconnects and re-subscribes every channel by itself, and a heartbeat
//! makes it notice a dead server within a second. While the heartbeat finds Redis down (refusing,
//! or silent past `PING_TIMEOUT`), publishing is not even tried: a blackholed Redis costs no
//! request its timeout (a circuit breaker, logged when it opens and closes). What was published
//! meanwhile is lost to live sockets (counted); clients notice the gap in `seq` and catch up
//! with `group:sync`.
//! Membership events lost that way are made good by `realtime::resync`, which
//! [`Fanout::events_lost`] wakes once the connection is back. An event the process that ran the
//! command could not publish is applied to its own sockets at once, and once Redis answers it
//! again it publishes a re-read of that user on the membership channel (`RereadFrame`), for the
//! processes that never lost Redis and so would not re-read anything by themselves.
//!
//! Losses of access (bans, removals, deletions, leaves) must reach every process, or the removed user's sockets
//! elsewhere go on receiving the group: a command that would make one is refused (503, nothing
//! changed) while the fan-out is down, and one whose event cannot be published within
//! `CONCLAVE_FANOUT_PUBLISH_DEADLINE` answers 503 although stored (a retry is safe, and succeeds
//! once the fan-out has carried it).

mod frames;
mod lost;
mod notices;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, FromRedisValue, PushInfo, PushKind};
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::operators::BroadcastOperators;
use tokio::sync::{Mutex, MutexGuard, mpsc};
use tokio_util::sync::CancellationToken;

use super::{group_room, user_room};
use crate::domain::{GroupId, MessageView, UserId};
use crate::events::{Broadcast, GroupEvent, MembershipWatcher, Unpublished};
use crate::ops::metrics as metric;
use frames::{decode_group_frame, encode_group_frame};
pub use lost::Reread;
use lost::{Lost, RereadFrame};

/// Frames read from Redis but not yet applied; beyond this they are dropped (and counted)
/// rather than grow memory while the process cannot keep up.
const INBOUND_BUFFER: usize = 4096;
/// Groups whose last delivered `seq` the reader remembers (to drop late frames).
const LAST_SEQ_GROUPS: usize = 100_000;
/// How often channels of groups with no local socket left are unsubscribed.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// A heartbeat PING unanswered for this long counts as Redis down (a silent network otherwise
/// holds a command for the connection's 2 s response timeout).
const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// One attempt to publish a membership event.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(300);

/// An event emitted to a group room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupEmit {
    MessageNew,
    /// A member is typing; not sent to the typist's own sockets.
    Typing {
        from: UserId,
    },
    /// A member's read marker moved; not sent to that member's own sockets.
    Read {
        from: UserId,
    },
}

impl GroupEmit {
    fn name(self) -> &'static str {
        match self {
            GroupEmit::MessageNew => "message:new",
            GroupEmit::Typing { .. } => "typing",
            GroupEmit::Read { .. } => "message:read",
        }
    }
}

/// Delivers group events to sockets, in this process or through Redis; cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    io: SocketIo,
    redis: Option<Arc<Channels>>,
    /// Forgets the members who lose access, here and (through the membership channel) on every
    /// process.
    watcher: Arc<dyn MembershipWatcher>,
    /// How long a removal's publication is retried before its command answers 503.
    publish_deadline: Duration,
}

impl Fanout {
    /// Standalone: rooms live in this process.
    pub fn local(io: SocketIo, watcher: Arc<dyn MembershipWatcher>) -> Self {
        Self {
            io,
            redis: None,
            watcher,
            publish_deadline: Duration::ZERO,
        }
    }

    /// Cluster: per-group Redis channels. Connects (`client` must ask for RESP3, which pub/sub on
    /// a multiplexed connection needs), subscribes the membership channel and starts the
    /// reader, the heartbeat and the sweep, which end with `stop`.
    pub async fn redis(
        io: SocketIo,
        client: redis::Client,
        prefix: &str,
        stop: CancellationToken,
        watcher: Arc<dyn MembershipWatcher>,
        publish_deadline: Duration,
    ) -> Result<Self, redis::RedisError> {
        let channels = Channels::connect(client, prefix, io.clone(), stop, watcher.clone()).await?;
        Ok(Self {
            io,
            redis: Some(channels),
            watcher,
            publish_deadline,
        })
    }

    /// Puts a newly connected socket in its groups' rooms, once this process receives their
    /// traffic. Fails only when Redis cannot be reached (the connection is then refused, and the
    /// client retries).
    pub async fn enter(&self, s: &SocketRef, groups: &[GroupId]) -> Result<(), redis::RedisError> {
        // Held until the socket is in the rooms, so the sweep cannot unsubscribe a channel
        // between the two.
        let _subscribed = match &self.redis {
            Some(ch) => Some(ch.subscribed(groups).await?),
            None => None,
        };
        s.join(groups.iter().map(|g| group_room(*g)).collect::<Vec<_>>());
        Ok(())
    }

    /// Emits `payload` as `what` to the sockets of the group's members, wherever they are.
    pub async fn to_group(&self, group: GroupId, what: GroupEmit, payload: &impl Serialize) {
        self.to_groups(&[(group, what, payload)]).await;
    }

    /// [`Self::to_group`] for several events, in order (one round trip to Redis).
    pub async fn to_groups<T: Serialize>(&self, events: &[(GroupId, GroupEmit, T)]) {
        for (_, what, _) in events {
            metrics::counter!(metric::SOCKET_EVENTS_OUT, "event" => what.name()).increment(1);
        }
        match &self.redis {
            None => {
                for (group, what, payload) in events {
                    emit_local(&self.io, *group, *what, payload).await;
                }
            }
            Some(ch) => ch.publish_group(events).await,
        }
    }

    /// Moves sockets between rooms and tells them, on every process. A removal is retried for
    /// the publish deadline; `Err` if it still did not go out.
    pub async fn group_event(&self, ev: GroupEvent) -> Result<(), Unpublished> {
        // Here at once, whether or not the event reaches Redis.
        self.watcher.event(&ev);
        let Some(ch) = &self.redis else {
            apply(&self.io, ev, None).await;
            return Ok(());
        };
        // A loss of access (removal, ban, deletion, leave) must reach every process.
        let removal = ev.lost_access().is_some();
        let deadline = if removal {
            self.publish_deadline
        } else {
            Duration::ZERO
        };
        if ch.publish_members_within(&ev, deadline).await {
            return Ok(());
        }
        // At least this process's sockets now; once Redis answers again, every process
        // re-reads this user's groups (`Lost::unpublished`).
        ch.lost.unpublished(&ev);
        apply(&self.io, ev, Some(ch)).await;
        if removal { Err(Unpublished) } else { Ok(()) }
    }

    /// Whether a removal made now would reach every process: Redis answers, and no earlier
    /// event is still waiting to be carried (a repeated ban succeeds only once the first one's
    /// re-read went out).
    pub async fn removals_deliverable(&self) -> bool {
        let Some(ch) = &self.redis else {
            return true;
        };
        if !ch.up.load(Ordering::SeqCst) {
            return false;
        }
        ch.publish_rereads().await;
        let st = ch.lost.state();
        st.unpublished.is_empty() && !st.unpublished_overflow
    }

    /// Every local socket's rooms have been re-read after a loss (`Reread::Everyone`): group
    /// traffic is delivered here again.
    pub fn resynced(&self) {
        if let Some(ch) = &self.redis {
            ch.lost.resynced();
            tracing::info!("rooms re-read after the loss: group traffic is delivered again");
        }
    }

    /// Waits until membership events may have been missed and the fan-out works again: who
    /// must have their sockets' rooms re-read. Never resolves on a standalone process.
    pub async fn events_lost(&self) -> Reread {
        let Some(ch) = &self.redis else {
            return std::future::pending().await;
        };
        loop {
            if let Some(r) = ch.lost.take() {
                return r;
            }
            ch.lost.back.notified().await;
        }
    }
}

#[async_trait::async_trait]
impl Broadcast for Fanout {
    async fn messages(&self, views: &[MessageView]) {
        let events: Vec<_> = views
            .iter()
            .map(|v| (v.group_id, GroupEmit::MessageNew, v))
            .collect();
        self.to_groups(&events).await;
    }

    async fn group_event(&self, event: GroupEvent) -> Result<(), Unpublished> {
        Fanout::group_event(self, event).await
    }

    async fn removals_deliverable(&self) -> bool {
        Fanout::removals_deliverable(self).await
    }

    async fn read_moved(&self, group: GroupId, user: UserId, seq: u64) {
        let payload = serde_json::json!({"group_id": group, "user_id": user, "seq": seq});
        self.to_group(group, GroupEmit::Read { from: user }, &payload)
            .await;
    }
}

/// Counts what a broadcast could not hand to a socket (full buffer or closed).
fn count_drops(res: Result<(), socketioxide::BroadcastError>, event: &'static str) {
    match res {
        Ok(()) => {}
        Err(socketioxide::BroadcastError::Socket(errs)) => {
            metrics::counter!(metric::SOCKET_DROPPED, "event" => event)
                .increment(errs.len() as u64);
        }
        Err(e) => tracing::warn!(error = %e, event, "broadcast failed"),
    }
}

/// A room of this process's sockets, or none once the drain's `io.close()` has removed the
/// namespace (where `SocketIo::local` would panic).
fn room(io: &SocketIo, room: String) -> Option<BroadcastOperators> {
    io.of("/").map(|ns| ns.local().to(room))
}

fn has_sockets(io: &SocketIo, r: String) -> bool {
    room(io, r).is_some_and(|to| !to.sockets().is_empty())
}

/// Emits to this process's sockets of the group (serialized once for all of them).
async fn emit_local<T: Serialize + ?Sized>(
    io: &SocketIo,
    group: GroupId,
    what: GroupEmit,
    payload: &T,
) {
    let Some(to) = room(io, group_room(group)) else {
        return;
    };
    let to = match what {
        GroupEmit::MessageNew => to,
        GroupEmit::Typing { from } | GroupEmit::Read { from } => to.except(user_room(from)),
    };
    count_drops(to.emit(what.name(), payload).await, what.name());
}

async fn emit_room(io: &SocketIo, r: String, event: &'static str, payload: Value) {
    if let Some(to) = room(io, r) {
        count_drops(to.emit(event, &payload).await, event);
    }
}

/// Applies a membership change to this process's sockets; with `channels`, first subscribes
/// the group's channel if a socket of the user is here.
async fn apply(io: &SocketIo, ev: GroupEvent, channels: Option<&Channels>) {
    match ev {
        GroupEvent::MemberJoined { group, user } => {
            // Join first, so the newcomer's sockets see their own join and all after it.
            match channels {
                Some(ch) if has_sockets(io, user_room(user)) => {
                    match ch.subscribed(&[group]).await {
                        Ok(_subscribed) => join(io, user, group).await,
                        // Its sockets stay out of the room; they see the group at their next
                        // connect (the same as missing this event during an outage).
                        Err(e) => tracing::warn!(error = %e, "cannot subscribe a group channel"),
                    }
                }
                Some(_) => {}
                None => join(io, user, group).await,
            }
            let body = json!({"group_id": group, "user_id": user});
            emit_room(io, group_room(group), "group:member_joined", body).await;
        }
        GroupEvent::MemberLeft { group, user } => {
            leave(io, user, group).await;
            let body = json!({"group_id": group, "user_id": user});
            emit_room(io, group_room(group), "group:member_left", body).await;
        }
        GroupEvent::Removed {
            group,
            user,
            reason,
        } => {
            // Out of the room before anything else can be broadcast to it.
            leave(io, user, group).await;
            let body = json!({"group_id": group, "reason": reason.as_str()});
            emit_room(io, user_room(user), "group:removed", body).await;
        }
        other => notices::apply(io, other).await,
    }
}

async fn join(io: &SocketIo, user: UserId, group: GroupId) {
    if let Some(to) = room(io, user_room(user))
        && let Err(e) = to.join(group_room(group)).await
    {
        tracing::warn!(error = %e, "joining sockets to a room failed");
    }
}

async fn leave(io: &SocketIo, user: UserId, group: GroupId) {
    notices::leave_managers(io, user, group).await;
    if let Some(to) = room(io, user_room(user))
        && let Err(e) = to.leave(group_room(group)).await
    {
        tracing::warn!(error = %e, "removing sockets from a room failed");
    }
}

/// The Redis side: one connection (publishing and subscribed), the set of group channels this
/// process subscribes, and the reader.
struct Channels {
    conn: ConnectionManager,
    members_chan: String,
    group_prefix: String,
    /// Also holds the send cache, which the reader makes forget.
    lost: Arc<Lost>,
    /// Groups whose channel is subscribed. Locked across a subscription and the room joins
    /// that need it, and across the sweep's check-and-unsubscribe.
    subscribed: Mutex<HashSet<GroupId>>,
    /// The breaker: false from a failed command or PING until the heartbeat's next answered
    /// PING. While false, nothing is published (it would only wait for a timeout).
    up: Arc<AtomicBool>,
}

impl Channels {
    async fn connect(
        client: redis::Client,
        prefix: &str,
        io: SocketIo,
        stop: CancellationToken,
        watcher: Arc<dyn MembershipWatcher>,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let (tx, rx) = mpsc::channel::<(String, Vec<u8>)>(INBOUND_BUFFER);
        let members_chan = format!("{prefix}fanout:members");
        let lost = Arc::new(Lost::new(watcher));
        let up = Arc::new(AtomicBool::new(true));
        let on_loss = (members_chan.clone(), lost.clone(), up.clone());
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_automatic_resubscription()
            .set_push_sender(move |msg: PushInfo| {
                on_push(msg, &tx, &on_loss);
                Ok::<(), std::convert::Infallible>(())
            });
        let mut conn = ConnectionManager::new_with_config(client, config).await?;
        conn.subscribe(members_chan.as_str()).await?;
        let ch = Arc::new(Self {
            conn,
            members_chan,
            group_prefix: format!("{prefix}fanout:g:"),
            lost,
            subscribed: Mutex::new(HashSet::new()),
            up,
        });
        tokio::spawn(read(ch.clone(), io.clone(), rx, stop.clone()));
        tokio::spawn(heartbeat(ch.clone(), stop.clone()));
        tokio::spawn(sweep(ch.clone(), io, stop));
        Ok(ch)
    }

    /// Opens or closes the breaker; logged only when its state changes.
    fn set_up(&self, now_up: bool) {
        set_up(&self.up, now_up);
    }

    fn group_chan(&self, g: GroupId) -> String {
        format!("{}{g}", self.group_prefix)
    }

    /// Subscribes the channels of `groups` not subscribed yet; the guard keeps them so.
    async fn subscribed(
        &self,
        groups: &[GroupId],
    ) -> Result<MutexGuard<'_, HashSet<GroupId>>, redis::RedisError> {
        let mut subs = self.subscribed.lock().await;
        let missing: Vec<GroupId> = groups
            .iter()
            .filter(|g| !subs.contains(*g))
            .copied()
            .collect();
        if !missing.is_empty() {
            let chans: Vec<String> = missing.iter().map(|g| self.group_chan(*g)).collect();
            self.conn.clone().subscribe(chans).await?;
            subs.extend(missing);
            metrics::gauge!(metric::FANOUT_GROUP_CHANNELS).set(subs.len() as f64);
        }
        Ok(subs)
    }

    async fn publish_group<T: Serialize>(&self, events: &[(GroupId, GroupEmit, T)]) {
        if !self.up.load(Ordering::SeqCst) {
            metrics::counter!(metric::SOCKET_DROPPED, "event" => "fanout_publish")
                .increment(events.len() as u64);
            return;
        }
        let mut pipe = redis::pipe();
        for (group, what, payload) in events {
            if let Some(frame) = encode_group_frame(*what, payload) {
                pipe.publish(self.group_chan(*group), frame).ignore();
            }
        }
        if let Err(e) = pipe.exec_async(&mut self.conn.clone()).await {
            metrics::counter!(metric::SOCKET_DROPPED, "event" => "fanout_publish")
                .increment(events.len() as u64);
            tracing::debug!(error = %e, "group events not published; clients catch up by seq");
            self.set_up(false);
        }
    }

    /// Asks every process (this one included) to re-read the users whose events could not be
    /// published; kept for the next heartbeat if Redis refuses again.
    async fn publish_rereads(&self) {
        let (users, overflow) = {
            let mut st = self.lost.state();
            if st.unpublished.is_empty() && !st.unpublished_overflow {
                return;
            }
            (
                std::mem::take(&mut st.unpublished),
                std::mem::take(&mut st.unpublished_overflow),
            )
        };
        let frames: Vec<RereadFrame> = if overflow {
            vec![RereadFrame::Reread { user: None }]
        } else {
            users
                .iter()
                .map(|u| RereadFrame::Reread { user: Some(*u) })
                .collect()
        };
        let mut pipe = redis::pipe();
        for f in &frames {
            match serde_json::to_vec(f) {
                Ok(bytes) => {
                    pipe.publish(&self.members_chan, bytes).ignore();
                }
                Err(e) => tracing::error!(error = %e, "cannot serialize a re-read frame"),
            }
        }
        let sent = tokio::time::timeout(PUBLISH_TIMEOUT, pipe.exec_async(&mut self.conn.clone()))
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            });
        if let Err(e) = sent {
            tracing::warn!(error = %e, "re-read requests not published; retried next heartbeat");
            let mut st = self.lost.state();
            st.unpublished.extend(users);
            st.unpublished_overflow |= overflow;
        } else {
            tracing::info!(
                users = users.len(),
                everyone = overflow,
                "asked every process to re-read users whose membership events were not published"
            );
        }
    }

    /// Whether the event went out, trying until `deadline` has passed (at least once, unless
    /// the breaker is open).
    async fn publish_members_within(&self, ev: &GroupEvent, deadline: Duration) -> bool {
        let frame = match serde_json::to_vec(ev) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a membership event");
                return false;
            }
        };
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            if self.up.load(Ordering::SeqCst) {
                let mut conn = self.conn.clone();
                let publish = conn.publish::<_, _, ()>(&self.members_chan, &frame);
                match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
                    Ok(Ok(())) => return true,
                    Ok(Err(e)) => tracing::debug!(error = %e, "membership event not published"),
                    Err(_) => tracing::debug!("membership event not published in time"),
                }
                // What was in flight to us may be lost too.
                self.lost.mark();
                self.set_up(false);
            }
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                metrics::counter!(metric::SOCKET_DROPPED, "event" => "fanout_publish").increment(1);
                return false;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(400));
        }
    }
}

/// Runs in the connection's reader: hands published frames to [`read`], never blocking it. A
/// membership frame dropped or the connection lost is a membership event missed (`Lost::mark`).
fn on_push(
    msg: PushInfo,
    tx: &mpsc::Sender<(String, Vec<u8>)>,
    (members_chan, lost, up): &(String, Arc<Lost>, Arc<AtomicBool>),
) {
    match msg.kind {
        PushKind::Message | PushKind::SMessage if msg.data.len() >= 2 => {
            let mut it = msg.data.into_iter();
            let (Some(chan), Some(data)) = (it.next(), it.next()) else {
                return;
            };
            let (Ok(chan), Ok(data)) = (
                String::from_redis_value(chan),
                Vec::<u8>::from_redis_value(data),
            ) else {
                return;
            };
            if let Err(e) = tx.try_send((chan, data)) {
                metrics::counter!(metric::SOCKET_DROPPED, "event" => "adapter_inbound")
                    .increment(1);
                if e.into_inner().0 == *members_chan {
                    lost.mark();
                }
            }
        }
        PushKind::Disconnection => {
            lost.mark();
            set_up(up, false);
            metrics::counter!(metric::ADAPTER_RECONNECTS).increment(1);
            tracing::warn!("Redis fan-out connection lost; it reconnects and re-subscribes");
        }
        _ => {}
    }
}

/// Applies frames in the order Redis delivered them.
///
/// Two kinds of group frame are not delivered, since a client fills the gap with `group:sync`
/// and would otherwise see something wrong: any, while the process is quarantined after a loss
/// (a socket whose removal it missed is still in the room until the re-read), and a message
/// whose `seq` is not above the last one delivered here for its group (a process that published
/// late, after a pause or an outage, while another carried the group on).
async fn read(
    ch: Arc<Channels>,
    io: SocketIo,
    mut rx: mpsc::Receiver<(String, Vec<u8>)>,
    stop: CancellationToken,
) {
    let mut last_seq: HashMap<GroupId, u64> = HashMap::new();
    loop {
        let (chan, data) = tokio::select! {
            _ = stop.cancelled() => return,
            item = rx.recv() => match item {
                Some(item) => item,
                None => return,
            },
        };
        if chan == ch.members_chan {
            metrics::counter!(metric::FANOUT_FRAMES_IN, "channel" => "members").increment(1);
            match serde_json::from_slice::<GroupEvent>(&data) {
                Ok(ev) => {
                    ch.lost.watcher.event(&ev);
                    apply(&io, ev, Some(&ch)).await
                }
                Err(_) if let Ok(RereadFrame::Reread { user }) = serde_json::from_slice(&data) => {
                    // Whatever that user lost, this process never heard of it.
                    ch.lost.watcher.events_lost();
                    ch.lost.wake(|st| match user {
                        Some(u) => {
                            st.users.insert(u);
                        }
                        None => st.everyone = true,
                    });
                }
                Err(e) => {
                    ch.lost.mark();
                    tracing::warn!(error = %e, "unreadable membership frame")
                }
            }
        } else if let Some(group) = chan
            .strip_prefix(ch.group_prefix.as_str())
            .and_then(|g| g.parse::<GroupId>().ok())
        {
            metrics::counter!(metric::FANOUT_FRAMES_IN, "channel" => "group").increment(1);
            let Some((what, payload)) = decode_group_frame(&data) else {
                tracing::warn!(%chan, "unreadable group frame");
                continue;
            };
            if ch.lost.quarantined.load(Ordering::SeqCst) {
                metrics::counter!(metric::SOCKET_DROPPED, "event" => "fanout_quarantine")
                    .increment(1);
                continue;
            }
            if what == GroupEmit::MessageNew
                && let Some(seq) = payload.get("seq").and_then(Value::as_u64)
            {
                if last_seq.len() > LAST_SEQ_GROUPS {
                    // Bounded memory; forgetting only lets one late frame through.
                    last_seq.clear();
                }
                let last = last_seq.entry(group).or_insert(0);
                if seq <= *last {
                    metrics::counter!(metric::SOCKET_DROPPED, "event" => "fanout_late")
                        .increment(1);
                    continue;
                }
                *last = seq;
            }
            emit_local(&io, group, what, &payload).await;
        }
    }
}

fn set_up(up: &AtomicBool, now_up: bool) {
    if up.swap(now_up, Ordering::SeqCst) != now_up {
        if now_up {
            tracing::info!("Redis fan-out answers again: publishing resumes");
        } else {
            tracing::warn!(
                "Redis fan-out unreachable: live events are not published (clients catch up by seq) and removals are refused until it answers"
            );
        }
    }
}

/// A PING a second: a command is what makes the manager notice a dead connection and rebuild it
/// (re-subscribing every channel), and the PING's answer is what closes the breaker again. The
/// first PING answered after a loss wakes `events_lost`.
async fn heartbeat(ch: Arc<Channels>, stop: CancellationToken) {
    let mut conn = ch.conn.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ping = redis::cmd("PING");
        let pong = tokio::time::timeout(PING_TIMEOUT, ping.query_async::<String>(&mut conn)).await;
        if !matches!(pong, Ok(Ok(_))) {
            if ch.up.load(Ordering::SeqCst) {
                ch.lost.mark();
            }
            ch.set_up(false);
            continue;
        }
        ch.set_up(true);
        ch.publish_rereads().await;
        if ch.lost.missed.swap(false, Ordering::SeqCst) {
            ch.lost.wake(|st| st.everyone = true);
        }
    }
}

/// Unsubscribes the channels of groups none of whose members has a socket here any more.
async fn sweep(ch: Arc<Channels>, io: SocketIo, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut subs = ch.subscribed.lock().await;
        let idle: Vec<GroupId> = subs
            .iter()
            .filter(|g| !has_sockets(&io, group_room(**g)))
            .copied()
            .collect();
        if idle.is_empty() {
            continue;
        }
        let chans: Vec<String> = idle.iter().map(|g| ch.group_chan(*g)).collect();
        match ch.conn.clone().unsubscribe(chans).await {
            Ok(()) => {
                for g in &idle {
                    subs.remove(g);
                }
                metrics::gauge!(metric::FANOUT_GROUP_CHANNELS).set(subs.len() as f64);
            }
            Err(e) => tracing::warn!(error = %e, "cannot unsubscribe idle group channels"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RemovalReason;

    #[test]
    fn reread_frames_are_told_apart_from_membership_events() {
        let user = UserId::new();
        for frame in [
            RereadFrame::Reread { user: Some(user) },
            RereadFrame::Reread { user: None },
        ] {
            let bytes = serde_json::to_vec(&frame).unwrap();
            assert!(serde_json::from_slice::<GroupEvent>(&bytes).is_err());
            assert_eq!(
                serde_json::from_slice::<RereadFrame>(&bytes).unwrap(),
                frame
            );
        }
        let ev = GroupEvent::MemberLeft {
            group: GroupId::new(),
            user,
        };
        let bytes = serde_json::to_vec(&ev).unwrap();
        assert!(serde_json::from_slice::<RereadFrame>(&bytes).is_err());
    }

    #[test]
    fn membership_frames_round_trip() {
        let (group, user) = (GroupId::new(), UserId::new());
        for ev in [
            GroupEvent::MemberJoined { group, user },
            GroupEvent::MemberLeft { group, user },
            GroupEvent::Removed {
                group,
                user,
                reason: RemovalReason::Banned,
            },
        ] {
            let bytes = serde_json::to_vec(&ev).unwrap();
            assert_eq!(serde_json::from_slice::<GroupEvent>(&bytes).unwrap(), ev);
        }
    }
}
