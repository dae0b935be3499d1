//! Bans, unbans, ownership transfer, group deletion, and commands naming what does not exist.

use super::*;

pub async fn ban_removes_membership_and_pending_request(s: DynStore) {
    let owner = user(&s, "judge").await;
    let m = user(&s, "troll").await;
    let p = user(&s, "lurker").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &m, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: m.id }).await);
    ok(exec(&s, g.id, &p, Command::Join).await);

    let t = domain::now();
    let done = ok(exec_at(&s, g.id, &owner, Command::Ban { target: m.id }, t).await);
    assert_eq!(done.group.unwrap().member_count, 1);
    ok(exec_at(&s, g.id, &owner, Command::Ban { target: p.id }, t).await);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id]));
    assert!(request_ids(&s, g.id).await.is_empty());
    let bans = s.bans(g.id, limit(10), None).await.unwrap().items;
    assert_eq!(bans.len(), 2);
    for b in &bans {
        assert_eq!(b.banned_by, owner.id);
        assert_eq!(b.banned_at, t);
    }
    let troll = bans.iter().find(|b| b.user_id == m.id).expect("ban listed");
    assert_eq!(troll.username, "troll");
    for u in [&m, &p] {
        let rel = relation(&s, g.id, u).await;
        assert!(rel.banned && rel.role.is_none() && !rel.pending);
        refused(exec(&s, g.id, u, Command::Join).await, "banned");
    }
    assert_consistent(&s, g.id).await;
}

pub async fn ban_of_a_stranger_and_repeated_ban_succeed(s: DynStore) {
    let owner = user(&s, "preempt").await;
    let u = user(&s, "future_troll").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &owner, Command::Ban { target: u.id }).await);
    ok(exec(&s, g.id, &owner, Command::Ban { target: u.id }).await);
    assert_eq!(ban_ids(&s, g.id).await, BTreeSet::from([u.id]));
    assert_eq!(
        s.bans(g.id, limit(10), None).await.unwrap().items.len(),
        1,
        "one ban row"
    );
    refused(exec(&s, g.id, &u, Command::Join).await, "banned");
    assert_eq!(s.group(g.id).await.unwrap().unwrap().member_count, 1);
    assert_consistent(&s, g.id).await;
}

pub async fn ban_refusals_have_the_right_codes(s: DynStore) {
    let owner = user(&s, "bowner").await;
    let a = user(&s, "bmem").await;
    let b = user(&s, "bvictim").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &a, Command::Join).await);
    ok(exec(&s, g.id, &b, Command::Join).await);
    refused(
        exec(&s, g.id, &a, Command::Ban { target: b.id }).await,
        "forbidden",
    );
    refused(
        exec(&s, g.id, &owner, Command::Ban { target: owner.id }).await,
        "forbidden",
    );
    refused(
        exec(&s, g.id, &a, Command::Unban { target: b.id }).await,
        "forbidden",
    );
    refused(
        exec(&s, g.id, &owner, Command::Unban { target: b.id }).await,
        "not_found",
    );
    assert!(ban_ids(&s, g.id).await.is_empty());
    assert_eq!(member_ids(&s, g.id).await.len(), 3);
    assert_consistent(&s, g.id).await;
}

pub async fn unban_lifts_the_ban_and_starts_a_cooldown_in_private_groups(s: DynStore) {
    let owner = user(&s, "pardoner").await;
    let u = user(&s, "pardoned").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &owner, Command::Ban { target: u.id }).await);
    let t = domain::now();
    let done = ok(exec_at(&s, g.id, &owner, Command::Unban { target: u.id }, t).await);
    assert_eq!(done.outcome, Outcome::Done);
    assert!(ban_ids(&s, g.id).await.is_empty());
    let rel = relation(&s, g.id, &u).await;
    assert!(!rel.banned);
    assert_eq!(rel.cooldown_until, Some(t + COOLDOWN));
    refused(
        exec_at(&s, g.id, &u, Command::Join, t + secs(5)).await,
        "cooldown_active",
    );
    refused(
        exec(&s, g.id, &owner, Command::Unban { target: u.id }).await,
        "not_found",
    );
    assert_eq!(
        ok(exec_at(&s, g.id, &u, Command::Join, t + COOLDOWN).await).outcome,
        Outcome::Pending,
        "the cooldown ends at its instant"
    );
}

pub async fn unban_in_open_group_allows_joining_at_once(s: DynStore) {
    let owner = user(&s, "opardoner").await;
    let u = user(&s, "opardoned").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &u, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Ban { target: u.id }).await);
    ok(exec(&s, g.id, &owner, Command::Unban { target: u.id }).await);
    assert_eq!(
        ok(exec(&s, g.id, &u, Command::Join).await).outcome,
        Outcome::Member
    );
    assert_consistent(&s, g.id).await;
}

pub async fn transfer_ownership_swaps_roles_and_owner(s: DynStore) {
    let owner = user(&s, "abdicator").await;
    let heir = user(&s, "heir").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &heir, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: heir.id }).await);
    let done = ok(exec(
        &s,
        g.id,
        &owner,
        Command::TransferOwnership { target: heir.id },
    )
    .await);
    assert_eq!(done.outcome, Outcome::Done);
    let after = done.group.expect("group still exists");
    assert_eq!(after.owner_id, heir.id);
    assert_eq!(after.member_count, 2);
    assert_eq!(s.group(g.id).await.unwrap().unwrap().owner_id, heir.id);
    assert_eq!(relation(&s, g.id, &heir).await.role, Some(Role::Owner));
    assert_eq!(
        relation(&s, g.id, &owner).await.role,
        Some(Role::Member),
        "the old owner stays"
    );
    assert_consistent(&s, g.id).await;
    // The new owner rules; the old one can now leave.
    refused(
        exec(&s, g.id, &owner, Command::Ban { target: heir.id }).await,
        "forbidden",
    );
    refused(
        exec(&s, g.id, &heir, Command::Leave).await,
        "owner_must_transfer",
    );
    ok(exec(&s, g.id, &owner, Command::Leave).await);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([heir.id]));
    assert_consistent(&s, g.id).await;
}

pub async fn transfer_ownership_refusals_have_the_right_codes(s: DynStore) {
    let owner = user(&s, "towner").await;
    let m = user(&s, "tmember").await;
    let stranger = user(&s, "tstranger").await;
    let pending = user(&s, "tpending").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &m, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: m.id }).await);
    ok(exec(&s, g.id, &pending, Command::Join).await);
    refused(
        exec(&s, g.id, &m, Command::TransferOwnership { target: m.id }).await,
        "forbidden",
    );
    refused(
        exec(
            &s,
            g.id,
            &owner,
            Command::TransferOwnership { target: owner.id },
        )
        .await,
        "validation_failed",
    );
    refused(
        exec(
            &s,
            g.id,
            &owner,
            Command::TransferOwnership {
                target: stranger.id,
            },
        )
        .await,
        "validation_failed",
    );
    refused(
        exec(
            &s,
            g.id,
            &owner,
            Command::TransferOwnership { target: pending.id },
        )
        .await,
        "validation_failed",
    );
    assert_eq!(s.group(g.id).await.unwrap().unwrap().owner_id, owner.id);
    assert_consistent(&s, g.id).await;
}

pub async fn delete_group_removes_everything_and_returns_former_members(s: DynStore) {
    let owner = user(&s, "destroyer").await;
    let a = user(&s, "d_a").await;
    let b = user(&s, "d_b").await;
    let p = user(&s, "d_p").await;
    let banned = user(&s, "dbanned").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    let keep = group(&s, &owner, Visibility::Private, 10).await;
    for u in [&a, &b] {
        ok(exec(&s, g.id, u, Command::Join).await);
        ok(exec(&s, g.id, &owner, Command::Approve { target: u.id }).await);
    }
    ok(exec(&s, g.id, &p, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Ban { target: banned.id }).await);
    ok(exec(&s, g.id, &owner, Command::Remove { target: b.id }).await); // leaves a cooldown
    refused(exec(&s, g.id, &b, Command::Join).await, "cooldown_active");
    append_one(&s, message(g.id, &a, b"doomed", Some("x"))).await;
    append_one(&s, message(keep.id, &owner, b"safe", None)).await;

    refused(exec(&s, g.id, &a, Command::Delete).await, "forbidden");
    let done = ok(exec(&s, g.id, &owner, Command::Delete).await);
    assert_eq!(done.outcome, Outcome::GroupDeleted);
    assert!(done.group.is_none());
    let former: BTreeSet<_> = done.former_members.iter().copied().collect();
    assert_eq!(former, BTreeSet::from([owner.id, a.id]));
    assert_eq!(done.former_members.len(), 2);

    assert_eq!(s.group(g.id).await.unwrap(), None);
    assert!(s.relation(g.id, banned.id).await.unwrap().is_none());
    assert!(
        s.members(g.id, limit(10), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.join_requests(g.id, limit(10), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.bans(g.id, limit(10), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(history(&s, g.id, None, None, 100).await.is_empty());
    assert!(history(&s, g.id, Some(0), None, 100).await.is_empty());
    let listed: Vec<_> = s
        .list_groups(&GroupFilter::default(), limit(100), None)
        .await
        .unwrap()
        .items;
    assert_eq!(
        listed.iter().map(|g| g.id).collect::<Vec<_>>(),
        vec![keep.id]
    );
    assert_eq!(
        s.group_ids_of_user(a.id).await.unwrap(),
        Vec::<GroupId>::new()
    );
    assert_eq!(s.group_ids_of_user(owner.id).await.unwrap(), vec![keep.id]);
    refused(exec(&s, g.id, &owner, Command::Delete).await, "not_found");
    refused(exec(&s, g.id, &p, Command::Join).await, "not_found");
    // The other group is untouched.
    assert_eq!(history(&s, keep.id, None, None, 10).await, vec![1]);

    // Nothing of the old group lingers under its id: were it created again, it would start
    // empty (no ban, request or cooldown rows, no messages, seq from 1).
    let again = GroupRecord {
        created_at: domain::now(),
        ..g.clone()
    };
    s.create_group(&again).await.unwrap();
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id]));
    for u in [&a, &b, &p, &banned] {
        assert_eq!(relation(&s, g.id, u).await, Relation::default());
    }
    assert!(history(&s, g.id, Some(0), None, 100).await.is_empty());
    assert_eq!(
        s.message_id_for_client_id(g.id, a.id, "x").await.unwrap(),
        None
    );
    let fresh = stored(&append_one(&s, message(g.id, &owner, b"new era", None)).await).clone();
    let all = s
        .messages(
            g.id,
            &HistoryQuery {
                after_seq: None,
                before_seq: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(all, vec![fresh], "no message of the deleted group is left");
}

pub async fn commands_naming_a_user_that_does_not_exist_are_not_found(s: DynStore) {
    let owner = user(&s, "ghostbuster").await;
    let m = user(&s, "realone").await;
    let ghost = UserId::new();
    for vis in [Visibility::Open, Visibility::Private] {
        let g = group(&s, &owner, vis, 10).await;
        ok(exec(&s, g.id, &m, Command::Join).await);
        for cmd in [
            Command::Approve { target: ghost },
            Command::Reject { target: ghost },
            Command::Remove { target: ghost },
            Command::Ban { target: ghost },
            Command::Unban { target: ghost },
            Command::TransferOwnership { target: ghost },
        ] {
            refused(exec(&s, g.id, &owner, cmd.clone()).await, "not_found");
        }
        assert!(
            ban_ids(&s, g.id).await.is_empty(),
            "no ban row for a user that does not exist"
        );
        assert_eq!(s.group(g.id).await.unwrap().unwrap().owner_id, owner.id);
        assert_consistent(&s, g.id).await;
    }
}

pub async fn commands_on_a_missing_group_are_not_found(s: DynStore) {
    let u = user(&s, "lost").await;
    let v = user(&s, "lost2").await;
    let nowhere = GroupId::new();
    for cmd in [
        Command::Join,
        Command::WithdrawRequest,
        Command::Leave,
        Command::Delete,
        Command::Approve { target: v.id },
        Command::Ban { target: v.id },
        Command::TransferOwnership { target: v.id },
    ] {
        refused(exec(&s, nowhere, &u, cmd).await, "not_found");
    }
    assert!(s.group_ids_of_user(u.id).await.unwrap().is_empty());
}
