//! v1.1: moderators, invitations and group settings (docs/api.md "Roles", "Invitations",
//! "Group settings"), on every engine.

use super::*;
use conclave::domain::GroupPatch;
use conclave::store::InvitationRecord;

async fn invitations_of_group(s: &DynStore, g: GroupId) -> Vec<InvitationRecord> {
    let s = s.clone();
    all_pages(2, move |c| {
        let s = s.clone();
        async move { s.group_invitations(g, limit(2), c.as_ref()).await }
    })
    .await
}

async fn invitations_of_user(s: &DynStore, u: UserId) -> Vec<(GroupRecord, InvitationRecord)> {
    let s = s.clone();
    all_pages(2, move |c| {
        let s = s.clone();
        async move { s.invitations_of_user(u, limit(2), c.as_ref()).await }
    })
    .await
}

fn make(role: Role, target: &UserRecord) -> Command {
    Command::SetRole {
        target: target.id,
        role,
    }
}

pub async fn roles_are_stored_and_moderators_manage_only_plain_members(s: DynStore) {
    let owner = user(&s, "chief").await;
    let [m1, m2, plain, asker] = [
        user(&s, "deputy1").await,
        user(&s, "deputy2").await,
        user(&s, "plain").await,
        user(&s, "asker").await,
    ];
    let g = group(&s, &owner, Visibility::Private, 10).await;
    for u in [&m1, &m2, &plain] {
        ok(exec(&s, g.id, u, Command::Join).await);
        ok(exec(&s, g.id, &owner, Command::Approve { target: u.id }).await);
    }
    refused(
        exec(&s, g.id, &m1, make(Role::Moderator, &m2)).await,
        "forbidden",
    );
    ok(exec(&s, g.id, &owner, make(Role::Moderator, &m1)).await);
    ok(exec(&s, g.id, &owner, make(Role::Moderator, &m2)).await);
    let m = s.member(g.id, m1.id).await.unwrap().expect("a member");
    assert_eq!((m.role, m.username.as_str()), (Role::Moderator, "deputy1"));
    assert_eq!(relation(&s, g.id, &m1).await.role, Some(Role::Moderator));
    let mine = s.groups_of_user(m1.id, limit(10), None).await.unwrap();
    assert_eq!(mine.items[0].1.role, Role::Moderator);
    assert!(s.member(g.id, asker.id).await.unwrap().is_none());

    // A moderator approves, and bans a plain member; never the owner or another moderator.
    ok(exec(&s, g.id, &asker, Command::Join).await);
    ok(exec(&s, g.id, &m1, Command::Approve { target: asker.id }).await);
    for target in [&owner, &m2] {
        refused(
            exec(&s, g.id, &m1, Command::Ban { target: target.id }).await,
            "forbidden",
        );
        refused(
            exec(&s, g.id, &m1, Command::Remove { target: target.id }).await,
            "forbidden",
        );
    }
    ok(exec(&s, g.id, &m1, Command::Ban { target: plain.id }).await);
    let ban = &s.bans(g.id, limit(10), None).await.unwrap().items[0];
    assert_eq!((ban.user_id, ban.banned_by), (plain.id, m1.id));
    ok(exec(&s, g.id, &m1, Command::Unban { target: plain.id }).await);
    ok(exec(&s, g.id, &m1, Command::Remove { target: asker.id }).await);

    // The owner's role changes only by transfer; a moderator made owner, the old owner a member.
    refused(
        exec(&s, g.id, &owner, make(Role::Member, &owner)).await,
        "validation_failed",
    );
    refused(
        exec(&s, g.id, &owner, make(Role::Owner, &m1)).await,
        "validation_failed",
    );
    refused(
        exec(&s, g.id, &owner, make(Role::Moderator, &asker)).await,
        "not_found",
    );
    ok(exec(&s, g.id, &owner, make(Role::Member, &m2)).await);
    assert_eq!(relation(&s, g.id, &m2).await.role, Some(Role::Member));
    ok(exec(
        &s,
        g.id,
        &owner,
        Command::TransferOwnership { target: m1.id },
    )
    .await);
    assert_eq!(relation(&s, g.id, &m1).await.role, Some(Role::Owner));
    assert_eq!(relation(&s, g.id, &owner).await.role, Some(Role::Member));
    assert_consistent(&s, g.id).await;
}

pub async fn invitations_are_listed_and_accepting_joins_and_consumes_the_request(s: DynStore) {
    let owner = user(&s, "host").await;
    let moderator = user(&s, "usher").await;
    let guest = user(&s, "guest").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    let other = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &moderator, Command::Join).await);
    ok(exec(
        &s,
        g.id,
        &owner,
        Command::Approve {
            target: moderator.id,
        },
    )
    .await);
    ok(exec(&s, g.id, &owner, make(Role::Moderator, &moderator)).await);
    ok(exec(&s, g.id, &guest, Command::Join).await);

    let t = domain::now();
    let invite = Command::Invite { target: guest.id };
    let done = ok(exec_at(&s, g.id, &moderator, invite.clone(), t).await);
    assert_eq!(done.at, t);
    ok(exec_at(&s, other.id, &owner, invite.clone(), t + secs(1)).await);
    refused(
        exec(&s, g.id, &owner, invite.clone()).await,
        "invitation_pending",
    );
    assert!(relation(&s, g.id, &guest).await.invited);
    let listed = invitations_of_group(&s, g.id).await;
    let want = InvitationRecord {
        group_id: g.id,
        user_id: guest.id,
        username: "guest".into(),
        invited_by: moderator.id,
        invited_at: t,
    };
    assert_eq!(listed, vec![want.clone()]);
    let mine = invitations_of_user(&s, guest.id).await;
    assert_eq!(mine.len(), 2, "both invitations, oldest first");
    assert_eq!(mine[0].0.id, g.id);
    assert_eq!(mine[0].0.name, g.name);
    assert_eq!(mine[0].1, want);
    assert_eq!(mine[1].0.id, other.id);

    let done = ok(exec(&s, g.id, &guest, Command::AcceptInvitation).await);
    assert_eq!(done.outcome, Outcome::Member);
    assert!(member_ids(&s, g.id).await.contains(&guest.id));
    assert!(request_ids(&s, g.id).await.is_empty(), "request consumed");
    assert!(invitations_of_group(&s, g.id).await.is_empty());
    assert_eq!(invitations_of_user(&s, guest.id).await.len(), 1);
    refused(
        exec(&s, g.id, &guest, Command::AcceptInvitation).await,
        "not_found",
    );
    refused(exec(&s, g.id, &owner, invite).await, "already_member");
    // Joining the open group answers the invitation there too.
    ok(exec(&s, other.id, &guest, Command::Join).await);
    assert!(invitations_of_user(&s, guest.id).await.is_empty());
    assert_consistent(&s, g.id).await;
}

pub async fn invitation_rules_apply_at_acceptance_and_a_ban_removes_the_invitation(s: DynStore) {
    let owner = user(&s, "gate").await;
    let [left, late, banned, nobody] = [
        user(&s, "leaver").await,
        user(&s, "latecomer").await,
        user(&s, "banned").await,
        user(&s, "nobody").await,
    ];
    let g = group(&s, &owner, Visibility::Private, 2).await;
    let t0 = domain::now();
    ok(exec_at(&s, g.id, &left, Command::Join, t0).await);
    ok(exec_at(&s, g.id, &owner, Command::Approve { target: left.id }, t0).await);
    ok(exec_at(&s, g.id, &left, Command::Leave, t0).await);

    // Cooldown: the invitation is made, refused at acceptance, and kept.
    ok(exec_at(&s, g.id, &owner, Command::Invite { target: left.id }, t0).await);
    refused(
        exec_at(&s, g.id, &left, Command::AcceptInvitation, t0 + secs(60)).await,
        "cooldown_active",
    );
    assert!(relation(&s, g.id, &left).await.invited);

    // Full: group_full at acceptance, invitation kept.
    ok(exec(&s, g.id, &owner, Command::Invite { target: late.id }).await);
    let after_cooldown = t0 + time::Duration::try_from(COOLDOWN).unwrap() + secs(1);
    ok(exec_at(&s, g.id, &left, Command::AcceptInvitation, after_cooldown).await);
    refused(
        exec(&s, g.id, &late, Command::AcceptInvitation).await,
        "group_full",
    );
    assert!(relation(&s, g.id, &late).await.invited);

    // A ban removes the invitation; a banned user cannot be invited.
    ok(exec(&s, g.id, &owner, Command::Invite { target: banned.id }).await);
    ok(exec(&s, g.id, &owner, Command::Ban { target: banned.id }).await);
    let rel = relation(&s, g.id, &banned).await;
    assert!(rel.banned && !rel.invited);
    refused(
        exec(&s, g.id, &owner, Command::Invite { target: banned.id }).await,
        "banned",
    );

    // Declining and revoking; others may do neither.
    refused(
        exec(
            &s,
            g.id,
            &left,
            Command::CancelInvitation { target: late.id },
        )
        .await,
        "forbidden",
    );
    ok(exec(
        &s,
        g.id,
        &late,
        Command::CancelInvitation { target: late.id },
    )
    .await);
    refused(
        exec(
            &s,
            g.id,
            &owner,
            Command::CancelInvitation { target: late.id },
        )
        .await,
        "not_found",
    );
    ok(exec(&s, g.id, &owner, Command::Invite { target: nobody.id }).await);
    ok(exec(
        &s,
        g.id,
        &owner,
        Command::CancelInvitation { target: nobody.id },
    )
    .await);
    assert!(invitations_of_group(&s, g.id).await.is_empty());
    refused(
        exec(
            &s,
            g.id,
            &owner,
            Command::Invite {
                target: UserId::new(),
            },
        )
        .await,
        "not_found",
    );
    assert_consistent(&s, g.id).await;
}

pub async fn invitation_listings_page_once_each_even_with_equal_times(s: DynStore) {
    let owner = user(&s, "pager").await;
    let guests = crowd(&s, "invitee", 5).await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    let t = domain::now();
    for u in &guests {
        ok(exec_at(&s, g.id, &owner, Command::Invite { target: u.id }, t).await);
    }
    let got: Vec<UserId> = invitations_of_group(&s, g.id)
        .await
        .into_iter()
        .map(|i| i.user_id)
        .collect();
    let distinct: HashSet<_> = got.iter().collect();
    assert_eq!((got.len(), distinct.len()), (5, 5));

    let mut groups = Vec::new();
    for _ in 0..5 {
        let h = group(&s, &owner, Visibility::Private, 10).await;
        ok(exec_at(
            &s,
            h.id,
            &owner,
            Command::Invite {
                target: guests[0].id,
            },
            t,
        )
        .await);
        groups.push(h.id);
    }
    let mine: BTreeSet<GroupId> = invitations_of_user(&s, guests[0].id)
        .await
        .into_iter()
        .map(|(g, _)| g.id)
        .collect();
    assert_eq!(mine.len(), 6);
    assert!(groups.iter().all(|g| mine.contains(g)));
}

pub async fn deleting_a_group_removes_its_invitations(s: DynStore) {
    let owner = user(&s, "closer").await;
    let guest = user(&s, "stood_up").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &owner, Command::Invite { target: guest.id }).await);
    ok(exec(&s, g.id, &owner, Command::Delete).await);
    assert!(invitations_of_user(&s, guest.id).await.is_empty());
}

pub async fn update_settings_changes_the_group_and_respects_the_member_count(s: DynStore) {
    let owner = user(&s, "keeper").await;
    let [moderator, plain] = [user(&s, "warden").await, user(&s, "visitor").await];
    let g = group(&s, &owner, Visibility::Private, 10).await;
    for u in [&moderator, &plain] {
        ok(exec(&s, g.id, u, Command::Join).await);
        ok(exec(&s, g.id, &owner, Command::Approve { target: u.id }).await);
    }
    ok(exec(&s, g.id, &owner, make(Role::Moderator, &moderator)).await);
    let rename = GroupPatch {
        name: Some("Renamed Lounge".into()),
        description: Some("new words".into()),
        ..GroupPatch::default()
    };
    refused(
        exec(&s, g.id, &plain, Command::UpdateSettings(rename.clone())).await,
        "forbidden",
    );
    let done = ok(exec(&s, g.id, &moderator, Command::UpdateSettings(rename)).await);
    let after = done.group.expect("group");
    assert_eq!(
        (after.name.as_str(), after.description.as_str()),
        ("Renamed Lounge", "new words")
    );
    let found = s
        .list_groups(
            &GroupFilter {
                query: Some("renamed lo".into()),
                visibility: None,
            },
            limit(10),
            None,
        )
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1, "the search finds the new name");

    let owner_fields = GroupPatch {
        visibility: Some(Visibility::Open),
        max_members: Some(3),
        ..GroupPatch::default()
    };
    refused(
        exec(
            &s,
            g.id,
            &moderator,
            Command::UpdateSettings(owner_fields.clone()),
        )
        .await,
        "forbidden",
    );
    let tight = GroupPatch {
        max_members: Some(2),
        ..GroupPatch::default()
    };
    refused(
        exec(&s, g.id, &owner, Command::UpdateSettings(tight)).await,
        "members_exceed_limit",
    );
    ok(exec(&s, g.id, &owner, Command::UpdateSettings(owner_fields)).await);
    let now = s.group(g.id).await.unwrap().unwrap();
    assert_eq!((now.visibility, now.max_members), (Visibility::Open, 3));
    assert_eq!(now.name, "Renamed Lounge");
    assert_eq!(now.member_count, 3);
    assert_consistent(&s, g.id).await;
}
