//! Membership commands: joining, join requests (withdraw, approve, reject), removal and leaving.

use super::*;

// -------------------------------------------------------------------------------------------
// Membership commands
// -------------------------------------------------------------------------------------------

pub async fn join_open_group_adds_a_member(s: DynStore) {
    let owner = user(&s, "opener").await;
    let u = user(&s, "newcomer").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    let now = domain::now();
    let done = ok(exec_at(&s, g.id, &u, Command::Join, now).await);
    assert_eq!(done.outcome, Outcome::Member);
    assert!(done.effects.contains(&Effect::AddMember {
        user: u.id,
        role: Role::Member
    }));
    assert_eq!(
        done.group.as_ref().unwrap().member_count,
        2,
        "Executed.group is after the change"
    );
    assert!(done.former_members.is_empty());
    assert_eq!(s.group(g.id).await.unwrap().unwrap().member_count, 2);
    let m = members(&s, g.id)
        .await
        .into_iter()
        .find(|m| m.user_id == u.id)
        .expect("member");
    assert_eq!(m.role, Role::Member);
    assert_eq!(m.username, "newcomer");
    assert_eq!(m.joined_at, now, "joined_at is the command's time");
    assert_eq!(relation(&s, g.id, &u).await.role, Some(Role::Member));
    assert_consistent(&s, g.id).await;
}

pub async fn join_private_group_creates_a_pending_request(s: DynStore) {
    let owner = user(&s, "closer").await;
    let u = user(&s, "asker").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    let now = domain::now();
    let done = ok(exec_at(&s, g.id, &u, Command::Join, now).await);
    assert_eq!(done.outcome, Outcome::Pending);
    assert_eq!(s.group(g.id).await.unwrap().unwrap().member_count, 1);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id]));
    let reqs = s.join_requests(g.id, limit(10), None).await.unwrap().items;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].user_id, u.id);
    assert_eq!(reqs[0].username, "asker");
    assert_eq!(reqs[0].requested_at, now);
    let rel = relation(&s, g.id, &u).await;
    assert!(rel.pending && rel.role.is_none());
    assert_consistent(&s, g.id).await;
}

pub async fn join_refusals_have_the_right_codes(s: DynStore) {
    let owner = user(&s, "strict").await;
    let u = user(&s, "eager").await;
    let open = group(&s, &owner, Visibility::Open, 10).await;
    let private = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, open.id, &u, Command::Join).await);
    refused(exec(&s, open.id, &u, Command::Join).await, "already_member");
    refused(
        exec(&s, open.id, &owner, Command::Join).await,
        "already_member",
    );
    ok(exec(&s, private.id, &u, Command::Join).await);
    refused(
        exec(&s, private.id, &u, Command::Join).await,
        "request_pending",
    );
    assert_eq!(
        request_ids(&s, private.id).await.len(),
        1,
        "one request, not two"
    );

    let full = group(&s, &owner, Visibility::Open, 2).await;
    ok(exec(&s, full.id, &u, Command::Join).await);
    let late = user(&s, "late").await;
    refused(exec(&s, full.id, &late, Command::Join).await, "group_full");
    let full_private = group(&s, &owner, Visibility::Private, 2).await;
    ok(exec(&s, full_private.id, &u, Command::Join).await);
    ok(exec(
        &s,
        full_private.id,
        &owner,
        Command::Approve { target: u.id },
    )
    .await);
    refused(
        exec(&s, full_private.id, &late, Command::Join).await,
        "group_full",
    );
    assert!(request_ids(&s, full_private.id).await.is_empty());
    assert_eq!(s.group(full.id).await.unwrap().unwrap().member_count, 2);
    assert_consistent(&s, full.id).await;
    assert_consistent(&s, open.id).await;
}

pub async fn withdraw_request_removes_it(s: DynStore) {
    let owner = user(&s, "wowner").await;
    let u = user(&s, "undecided").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &u, Command::Join).await);
    let done = ok(exec(&s, g.id, &u, Command::WithdrawRequest).await);
    assert_eq!(done.outcome, Outcome::Done);
    assert!(request_ids(&s, g.id).await.is_empty());
    assert_eq!(
        relation(&s, g.id, &u).await,
        Relation::default(),
        "no cooldown for withdrawing"
    );
    refused(
        exec(&s, g.id, &u, Command::WithdrawRequest).await,
        "not_found",
    );
    // Can ask again at once.
    assert_eq!(
        ok(exec(&s, g.id, &u, Command::Join).await).outcome,
        Outcome::Pending
    );
}

pub async fn approve_adds_the_requester_as_member(s: DynStore) {
    let owner = user(&s, "approver").await;
    let u = user(&s, "hopeful").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &u, Command::Join).await);
    let done = ok(exec(&s, g.id, &owner, Command::Approve { target: u.id }).await);
    assert_eq!(done.outcome, Outcome::Member);
    assert_eq!(done.group.unwrap().member_count, 2);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id, u.id]));
    assert!(request_ids(&s, g.id).await.is_empty());
    let rel = relation(&s, g.id, &u).await;
    assert_eq!(rel.role, Some(Role::Member));
    assert!(!rel.pending);
    assert_consistent(&s, g.id).await;
}

pub async fn approve_refusals_have_the_right_codes(s: DynStore) {
    let owner = user(&s, "gate").await;
    let member = user(&s, "insider").await;
    let u = user(&s, "knocker").await;
    let stranger = user(&s, "stranger").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &member, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: member.id }).await);
    ok(exec(&s, g.id, &u, Command::Join).await);
    refused(
        exec(&s, g.id, &member, Command::Approve { target: u.id }).await,
        "forbidden",
    );
    refused(
        exec(&s, g.id, &u, Command::Approve { target: u.id }).await,
        "forbidden",
    );
    refused(
        exec(
            &s,
            g.id,
            &owner,
            Command::Approve {
                target: stranger.id,
            },
        )
        .await,
        "not_found",
    );
    refused(
        exec(&s, g.id, &owner, Command::Approve { target: member.id }).await,
        "not_found",
    );
    refused(
        exec(&s, g.id, &member, Command::Reject { target: u.id }).await,
        "forbidden",
    );
    // The request survived all of that.
    assert_eq!(request_ids(&s, g.id).await, BTreeSet::from([u.id]));
    assert_eq!(s.group(g.id).await.unwrap().unwrap().member_count, 2);
    assert_consistent(&s, g.id).await;
}

pub async fn approve_into_a_full_group_is_refused_and_keeps_the_request(s: DynStore) {
    let owner = user(&s, "bouncer").await;
    let a = user(&s, "first").await;
    let b = user(&s, "second").await;
    let g = group(&s, &owner, Visibility::Private, 2).await;
    ok(exec(&s, g.id, &a, Command::Join).await);
    ok(exec(&s, g.id, &b, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: a.id }).await);
    refused(
        exec(&s, g.id, &owner, Command::Approve { target: b.id }).await,
        "group_full",
    );
    assert_eq!(request_ids(&s, g.id).await, BTreeSet::from([b.id]));
    assert_eq!(s.group(g.id).await.unwrap().unwrap().member_count, 2);
    // Room appears: now it works.
    ok(exec(&s, g.id, &owner, Command::Remove { target: a.id }).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: b.id }).await);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id, b.id]));
    assert_consistent(&s, g.id).await;
}

pub async fn reject_removes_the_request_only(s: DynStore) {
    let owner = user(&s, "rejecter").await;
    let u = user(&s, "rejected").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &u, Command::Join).await);
    let done = ok(exec(&s, g.id, &owner, Command::Reject { target: u.id }).await);
    assert_eq!(done.outcome, Outcome::Done);
    assert!(request_ids(&s, g.id).await.is_empty());
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id]));
    refused(
        exec(&s, g.id, &owner, Command::Reject { target: u.id }).await,
        "not_found",
    );
    // A rejected user may ask again (no cooldown: they were never a member).
    assert_eq!(
        ok(exec(&s, g.id, &u, Command::Join).await).outcome,
        Outcome::Pending
    );
}

pub async fn remove_member_from_private_group_sets_a_cooldown(s: DynStore) {
    let owner = user(&s, "remover").await;
    let u = user(&s, "removed").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &u, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: u.id }).await);
    let t = domain::now();
    let done = ok(exec_at(&s, g.id, &owner, Command::Remove { target: u.id }, t).await);
    assert_eq!(done.group.unwrap().member_count, 1);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id]));
    let rel = relation(&s, g.id, &u).await;
    assert_eq!(rel.role, None);
    assert_eq!(rel.cooldown_until, Some(t + COOLDOWN));
    let e = refused(
        exec_at(&s, g.id, &u, Command::Join, t + secs(60)).await,
        "cooldown_active",
    );
    let wait = e.retry_after().expect("retry_after").as_secs();
    assert!(wait > 47 * 3600 && wait <= 48 * 3600, "retry_after {wait}s");
    assert!(request_ids(&s, g.id).await.is_empty());
    assert_consistent(&s, g.id).await;
}

pub async fn remove_member_from_open_group_sets_no_cooldown(s: DynStore) {
    let owner = user(&s, "oremover").await;
    let u = user(&s, "boomerang").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &u, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Remove { target: u.id }).await);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id]));
    assert_eq!(s.group(g.id).await.unwrap().unwrap().member_count, 1);
    assert_eq!(
        ok(exec(&s, g.id, &u, Command::Join).await).outcome,
        Outcome::Member
    );
    assert_consistent(&s, g.id).await;
}

pub async fn remove_refusals_have_the_right_codes(s: DynStore) {
    let owner = user(&s, "rowner").await;
    let a = user(&s, "amember").await;
    let b = user(&s, "bmember").await;
    let stranger = user(&s, "rstranger").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &a, Command::Join).await);
    ok(exec(&s, g.id, &b, Command::Join).await);
    refused(
        exec(&s, g.id, &a, Command::Remove { target: b.id }).await,
        "forbidden",
    );
    refused(
        exec(&s, g.id, &owner, Command::Remove { target: owner.id }).await,
        "forbidden",
    );
    refused(
        exec(
            &s,
            g.id,
            &owner,
            Command::Remove {
                target: stranger.id,
            },
        )
        .await,
        "not_found",
    );
    assert_eq!(
        member_ids(&s, g.id).await,
        BTreeSet::from([owner.id, a.id, b.id])
    );
    assert_consistent(&s, g.id).await;
}

pub async fn leave_private_group_sets_a_cooldown_that_ends(s: DynStore) {
    let owner = user(&s, "lowner").await;
    let u = user(&s, "quitter").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &u, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: u.id }).await);
    let t = domain::now();
    let done = ok(exec_at(&s, g.id, &u, Command::Leave, t).await);
    assert_eq!(done.outcome, Outcome::Done);
    assert_eq!(done.group.unwrap().member_count, 1);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id]));
    refused(exec_at(&s, g.id, &u, Command::Leave, t).await, "not_found");

    let e = refused(
        exec_at(&s, g.id, &u, Command::Join, t + COOLDOWN - secs(90)).await,
        "cooldown_active",
    );
    let wait = e.retry_after().unwrap().as_secs();
    assert!(
        (90..=91).contains(&wait),
        "retry_after {wait}s, 90 expected"
    );
    assert!(request_ids(&s, g.id).await.is_empty());
    // Once the cooldown is over the user may ask again.
    let done = ok(exec_at(&s, g.id, &u, Command::Join, t + COOLDOWN + secs(1)).await);
    assert_eq!(done.outcome, Outcome::Pending);
    assert_consistent(&s, g.id).await;
}

pub async fn owner_cannot_leave_while_others_remain(s: DynStore) {
    let owner = user(&s, "captain").await;
    let u = user(&s, "crew").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &u, Command::Join).await);
    refused(
        exec(&s, g.id, &owner, Command::Leave).await,
        "owner_must_transfer",
    );
    assert_eq!(s.group(g.id).await.unwrap().unwrap().owner_id, owner.id);
    assert_eq!(member_ids(&s, g.id).await, BTreeSet::from([owner.id, u.id]));
    assert_consistent(&s, g.id).await;
}

pub async fn sole_owner_leaving_deletes_the_group_and_its_messages(s: DynStore) {
    let owner = user(&s, "hermit").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    append_one(&s, message(g.id, &owner, b"last words", Some("c1"))).await;
    let done = ok(exec(&s, g.id, &owner, Command::Leave).await);
    assert_eq!(done.outcome, Outcome::GroupDeleted);
    assert!(done.group.is_none());
    assert_eq!(done.former_members, vec![owner.id]);
    assert_eq!(s.group(g.id).await.unwrap(), None);
    assert!(s.group_ids_of_user(owner.id).await.unwrap().is_empty());
    assert!(history(&s, g.id, None, None, 100).await.is_empty());
    assert_eq!(
        s.message_id_for_client_id(g.id, owner.id, "c1")
            .await
            .unwrap(),
        None
    );
}
