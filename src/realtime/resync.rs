//! Rooms put right after the cluster's fan-out may have missed membership events (a Redis
//! outage): a ban published while Redis was down never reached the other processes, so the banned
//! user's sockets there would stay in the group's room, and receive its messages again once Redis
//! is back. When the fan-out reconnects, every process re-reads the groups of the users whose
//! sockets it holds and moves the sockets: into the rooms of groups they joined meanwhile, out of
//! those they lost (telling them with `group:removed`, as the missed event would have). A process
//! that could not publish a user's event asks every process to re-read that user once Redis
//! answers it again (`fanout::Reread`), which also covers the processes that never lost Redis.
//! The managers' rooms (v1.1) are put right the same way, from the roles read then.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;

use super::fanout::Reread;
use super::session::SocketUser;
use super::{Fanout, group_of_managers_room, group_of_room, group_room, managers_room};
use crate::domain::{GroupId, UserId};
use crate::error::AppError;
use crate::events::RemovalReason;
use crate::groups::GroupService;

/// Runs for the process's life; does nothing on a standalone process (no fan-out to lose).
pub async fn run(io: SocketIo, groups: GroupService, fanout: Fanout) {
    loop {
        let who = fanout.events_lost().await;
        tracing::info!(
            ?who,
            "fan-out back after a loss: re-reading the groups of local sockets"
        );
        let everyone = who == Reread::Everyone;
        resync(&io, &groups, &fanout, who).await;
        if everyone {
            fanout.resynced();
        }
    }
}

async fn resync(io: &SocketIo, groups: &GroupService, fanout: &Fanout, who: Reread) {
    // `io.of` is `None` once the drain has closed the namespace.
    let Some(ns) = io.of("/") else { return };
    let mut by_user: HashMap<UserId, Vec<SocketRef>> = HashMap::new();
    for s in ns.sockets() {
        if let Some(u) = s.extensions.get::<SocketUser>() {
            let wanted = match &who {
                Reread::Everyone => true,
                Reread::Users(users) => users.contains(&u.id),
            };
            if wanted {
                by_user.entry(u.id).or_default().push(s);
            }
        }
    }
    for (user, sockets) in by_user {
        if let Err(e) = resync_user(groups, fanout, user, &sockets).await {
            tracing::warn!(error = %e, %user, "cannot re-read the groups of a user's sockets");
        }
    }
}

async fn resync_user(
    service: &GroupService,
    fanout: &Fanout,
    user: UserId,
    sockets: &[SocketRef],
) -> anyhow::Result<()> {
    let groups = service.ids_of_member(user).await?;
    for s in sockets {
        let joined = groups_of(s);
        let missing: Vec<GroupId> = groups
            .iter()
            .filter(|g| !joined.contains(g))
            .copied()
            .collect();
        if !missing.is_empty() {
            fanout.enter(s, &missing).await?;
        }
    }
    // Read again, as a connecting socket does: a removal committed after the first read, whose
    // event was applied before the joins above, must not leave the socket in the room.
    let now: HashSet<GroupId> = service.ids_of_member(user).await?.into_iter().collect();
    let mut reasons: HashMap<GroupId, RemovalReason> = HashMap::new();
    for s in sockets {
        for group in groups_of(s).into_iter().filter(|g| !now.contains(g)) {
            s.leave(group_room(group));
            // Looked up once per group, whatever the number of the user's sockets here.
            let reason = match reasons.get(&group) {
                Some(r) => *r,
                None => {
                    let r = removal_reason(service, group, user).await;
                    reasons.insert(group, r);
                    r
                }
            };
            let body = json!({"group_id": group, "reason": reason.as_str()});
            if let Err(e) = s.emit("group:removed", &body) {
                tracing::debug!(error = %e, "group:removed not sent to a socket");
            }
        }
    }
    if !reasons.is_empty() {
        tracing::info!(%user, groups = reasons.len(), "sockets taken out of groups lost while the fan-out was down");
    }
    // v1.1: the managers' rooms follow the roles read now (a missed role change).
    let managed: HashSet<GroupId> = service.ids_managed_by(user).await?.into_iter().collect();
    for s in sockets {
        let in_rooms: HashSet<GroupId> = s
            .rooms()
            .iter()
            .filter_map(|r| group_of_managers_room(r))
            .collect();
        for g in in_rooms.difference(&managed) {
            s.leave(managers_room(*g));
        }
        let missing: Vec<String> = managed
            .difference(&in_rooms)
            .map(|g| managers_room(*g))
            .collect();
        if !missing.is_empty() {
            s.join(missing);
        }
    }
    Ok(())
}

fn groups_of(s: &SocketRef) -> HashSet<GroupId> {
    s.rooms().iter().filter_map(|r| group_of_room(r)).collect()
}

/// Why the user is no longer a member, as the missed event would have said.
async fn removal_reason(groups: &GroupService, group: GroupId, user: UserId) -> RemovalReason {
    match groups.relation(group, user).await {
        Err(AppError::NotFound) => RemovalReason::Deleted,
        Ok((_, me)) if me.banned => RemovalReason::Banned,
        _ => RemovalReason::Removed,
    }
}
