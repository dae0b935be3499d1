//! The storage conformance suite: what every [`Store`] engine must do, written from the trait's
//! doc comments (src/store/mod.rs) and API.md, not from one engine. Each behaviour is a
//! `pub async fn` taking a fresh, empty store; [`conformance_suite!`] turns them into one
//! `#[tokio::test]` each for an engine:
//!
//! ```ignore
//! mod conformance;
//! conformance_suite!(my_factory());
//! ```
//!
//! `my_factory()` is evaluated once per test and must be a future resolving to
//! `(Arc<dyn Store>, guard)`: a fresh, empty store, and anything that must outlive the test
//! (a temp dir, a database handle to drop afterwards; `()` if nothing).
//!
//! Timestamps are millisecond-aligned (`domain::now()`), the precision every store keeps, so
//! records read back compare equal to those written.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use conclave::audit::{AuditEvent, AuditKind};
use conclave::domain::{
    self, Command, Cursor, Effect, GroupId, Limit, MessageId, Outcome, Relation, Role, UserId,
    Username, Visibility,
};
use conclave::error::{AppError, AppResult};
use conclave::store::NewAccount;
use conclave::store::{
    Appended, Executed, GroupFilter, GroupRecord, HistoryQuery, NewMessage, Page, Policy, Purged,
    RefreshTokenRecord, Rotation, Store, StoredMessage, TokenHash, UserRecord,
};
use time::OffsetDateTime;

pub type DynStore = Arc<dyn Store>;

/// Expands to one `#[tokio::test]` per behaviour of this suite, each on a fresh store from
/// `$factory` (a future resolving to `(Arc<dyn Store>, guard)`; the guard lives until the
/// test ends).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@tests $factory;
            ping_answers,
            users_are_created_and_found_by_id_and_by_name_ignoring_case,
            duplicate_username_ignoring_case_is_username_taken,
            refresh_token_rotates_once,
            rotated_token_joins_the_presented_tokens_family,
            concurrent_rotations_of_one_token_rotate_it_once,
            replaying_a_spent_refresh_token_revokes_the_whole_family,
            expired_or_unknown_refresh_token_is_invalid,
            revoke_refresh_family_revokes_only_that_family,
            purge_expired_removes_only_what_has_aged_out,
            prepared_schema_is_ready_and_preparing_again_is_harmless,
            create_group_makes_the_owner_its_first_member,
            unknown_group_is_absent_everywhere,
            access_decides_exactly_as_the_full_relation_does,
            list_groups_filters_by_query_ignoring_case_and_by_visibility,
            list_groups_query_matches_wildcard_characters_literally,
            list_groups_pages_return_each_group_once,
            list_groups_paging_survives_inserts_between_pages,
            groups_of_user_lists_memberships_with_roles_in_pages,
            group_ids_of_user_follows_membership,
            join_open_group_adds_a_member,
            join_private_group_creates_a_pending_request,
            join_refusals_have_the_right_codes,
            withdraw_request_removes_it,
            approve_adds_the_requester_as_member,
            approve_refusals_have_the_right_codes,
            approve_into_a_full_group_is_refused_and_keeps_the_request,
            reject_removes_the_request_only,
            remove_member_from_private_group_sets_a_cooldown,
            remove_member_from_open_group_sets_no_cooldown,
            remove_refusals_have_the_right_codes,
            leave_private_group_sets_a_cooldown_that_ends,
            owner_cannot_leave_while_others_remain,
            sole_owner_leaving_deletes_the_group_and_its_messages,
            ban_removes_membership_and_pending_request,
            ban_of_a_stranger_and_repeated_ban_succeed,
            ban_refusals_have_the_right_codes,
            unban_lifts_the_ban_and_starts_a_cooldown_in_private_groups,
            unban_in_open_group_allows_joining_at_once,
            transfer_ownership_swaps_roles_and_owner,
            transfer_ownership_refusals_have_the_right_codes,
            delete_group_removes_everything_and_returns_former_members,
            commands_naming_a_user_that_does_not_exist_are_not_found,
            commands_on_a_missing_group_are_not_found,
            members_page_once_each_even_with_equal_join_times,
            join_requests_page_once_each_even_with_equal_times,
            bans_page_once_each_even_with_equal_times,
            append_assigns_contiguous_seq_per_group_independently,
            one_batch_over_many_groups_gets_each_its_own_seqs,
            append_returns_stored_messages_in_batch_order_with_all_fields,
            duplicate_message_id_is_not_stored_again_and_consumes_no_seq,
            duplicate_within_one_batch_is_stored_once,
            duplicate_client_msg_id_from_same_sender_is_not_stored_again,
            same_client_msg_id_from_other_sender_or_group_is_a_new_message,
            message_id_for_client_id_finds_only_that_senders_message,
            append_to_a_missing_group_is_group_gone,
            history_reads_forwards_after_seq,
            history_reads_backwards_before_seq_and_returns_ascending,
            history_without_bounds_returns_the_newest_page,
            history_is_per_group,
            history_positions_beyond_i64_do_not_wrap,
            envelope_bytes_come_back_byte_identical,
            concurrent_approvals_never_overfill,
            concurrent_joins_never_overfill,
            ban_racing_join_and_approve_never_leaves_a_banned_member,
            transfer_racing_leaves_keeps_exactly_one_owner,
            concurrent_appends_get_contiguous_seq,
            concurrent_appends_of_one_client_msg_id_store_it_once,
            retries_carrying_the_id_derived_from_the_client_key_are_stored_once,
            scan_messages_pages_every_group_once_in_order,
            replace_envelope_is_compare_and_set,
            audit_events_are_listed_per_group_oldest_first_with_all_fields,
            audit_listing_pages_once_each_even_with_equal_times,
            audit_batch_written_twice_is_stored_once,
        );
    };
    (@tests $factory:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $factory.await;
                $crate::conformance::$name(store).await;
            }
        )+
    };
}

// -------------------------------------------------------------------------------------------
// Fixtures
// -------------------------------------------------------------------------------------------

const COOLDOWN: Duration = Duration::from_secs(48 * 3600);

fn policy() -> Policy {
    Policy {
        rejoin_cooldown: COOLDOWN,
    }
}

fn limit(n: u32) -> Limit {
    Limit::new_clamped(n)
}

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

/// A user record with a unique-enough name (the store is fresh, so `name` need only be unique
/// within the test).
fn user_record(name: &str) -> UserRecord {
    UserRecord {
        id: UserId::new(),
        username: Username::parse(name).expect("valid test username"),
        password_hash: format!("$argon2id$v=19$m=64,t=1,p=1$fake${name}"),
        created_at: domain::now(),
    }
}

async fn user(s: &DynStore, name: &str) -> UserRecord {
    let u = user_record(name);
    assert_eq!(
        s.create_user(&u).await.expect("create user"),
        NewAccount::Created
    );
    u
}

fn group_record(owner: &UserRecord, name: &str, vis: Visibility, max: u32) -> GroupRecord {
    GroupRecord {
        id: GroupId::new(),
        name: name.to_owned(),
        description: format!("about {name}"),
        visibility: vis,
        owner_id: owner.id,
        member_count: 1,
        max_members: max,
        created_at: domain::now(),
    }
}

async fn group(s: &DynStore, owner: &UserRecord, vis: Visibility, max: u32) -> GroupRecord {
    let g = group_record(owner, &format!("group of {}", owner.username), vis, max);
    s.create_group(&g).await.expect("create group");
    g
}

async fn exec(s: &DynStore, g: GroupId, actor: &UserRecord, cmd: Command) -> AppResult<Executed> {
    exec_at(s, g, actor, cmd, domain::now()).await
}

async fn exec_at(
    s: &DynStore,
    g: GroupId,
    actor: &UserRecord,
    cmd: Command,
    now: OffsetDateTime,
) -> AppResult<Executed> {
    s.execute(g, actor.id, &cmd, now, policy()).await
}

#[track_caller]
fn ok(r: AppResult<Executed>) -> Executed {
    match r {
        Ok(e) => e,
        Err(e) => panic!("command refused with {} ({e})", e.code()),
    }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: AppResult<T>, code: &str) -> AppError {
    match r {
        Ok(v) => panic!("expected {code}, but it succeeded: {v:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "wrong refusal: {e:?}");
            e
        }
    }
}

/// Every item of a listing, page by page, checking each page's size and that the listing ends.
async fn all_pages<T, F, Fut>(page_size: u32, mut fetch: F) -> Vec<T>
where
    F: FnMut(Option<Cursor>) -> Fut,
    Fut: Future<Output = AppResult<Page<T>>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = fetch(cursor.take()).await.expect("page");
        assert!(
            page.items.len() <= page_size as usize,
            "a page holds at most `limit` items"
        );
        let n = page.items.len();
        out.extend(page.items);
        match page.next {
            Some(c) => {
                assert!(n > 0, "a page with a next cursor must not be empty");
                cursor = Some(c);
            }
            None => return out,
        }
    }
    panic!("listing never ended");
}

async fn members(s: &DynStore, g: GroupId) -> Vec<conclave::store::MemberRecord> {
    let s = s.clone();
    all_pages(100, move |c| {
        let s = s.clone();
        async move { s.members(g, limit(100), c.as_ref()).await }
    })
    .await
}

async fn member_ids(s: &DynStore, g: GroupId) -> BTreeSet<UserId> {
    members(s, g).await.into_iter().map(|m| m.user_id).collect()
}

async fn request_ids(s: &DynStore, g: GroupId) -> BTreeSet<UserId> {
    let s = s.clone();
    all_pages(100, move |c| {
        let s = s.clone();
        async move { s.join_requests(g, limit(100), c.as_ref()).await }
    })
    .await
    .into_iter()
    .map(|r| r.user_id)
    .collect()
}

async fn ban_ids(s: &DynStore, g: GroupId) -> BTreeSet<UserId> {
    let s = s.clone();
    all_pages(100, move |c| {
        let s = s.clone();
        async move { s.bans(g, limit(100), c.as_ref()).await }
    })
    .await
    .into_iter()
    .map(|b| b.user_id)
    .collect()
}

async fn relation(s: &DynStore, g: GroupId, u: &UserRecord) -> Relation {
    s.relation(g, u.id)
        .await
        .expect("relation")
        .expect("group exists")
        .1
}

/// The invariants API.md promises after every change: `member_count` is the member list's
/// length, exactly one owner and it is `owner_id`, no banned member, no member with a pending
/// request.
async fn assert_consistent(s: &DynStore, g: GroupId) {
    let group = s.group(g).await.unwrap().expect("group exists");
    let ms = members(s, g).await;
    assert_eq!(
        group.member_count as usize,
        ms.len(),
        "member_count equals the member list"
    );
    assert!(
        group.member_count <= group.max_members,
        "never more members than max_members"
    );
    let owners: Vec<_> = ms.iter().filter(|m| m.role == Role::Owner).collect();
    assert_eq!(owners.len(), 1, "exactly one owner: {ms:?}");
    assert_eq!(
        owners[0].user_id, group.owner_id,
        "the owner member is owner_id"
    );
    let bans = ban_ids(s, g).await;
    let reqs = request_ids(s, g).await;
    for m in &ms {
        assert!(!bans.contains(&m.user_id), "a banned member is inside");
        assert!(
            !reqs.contains(&m.user_id),
            "a member still has a pending request"
        );
    }
}

fn message(g: GroupId, sender: &UserRecord, body: &[u8], cmid: Option<&str>) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        group_id: g,
        sender_id: sender.id,
        envelope: body.to_vec(),
        sent_at: domain::now(),
        client_msg_id: cmid.map(str::to_owned),
    }
}

#[track_caller]
fn stored(a: &Appended) -> &StoredMessage {
    match a {
        Appended::Stored(m) => m,
        other => panic!("expected Stored, got {other:?}"),
    }
}

#[track_caller]
fn duplicate(a: &Appended) -> &StoredMessage {
    match a {
        Appended::Duplicate(m) => m,
        other => panic!("expected Duplicate, got {other:?}"),
    }
}

async fn append_one(s: &DynStore, m: NewMessage) -> Appended {
    let mut out = s.append_messages(&[m]).await.expect("append");
    assert_eq!(out.len(), 1, "one result per message");
    out.pop().unwrap()
}

async fn history(
    s: &DynStore,
    g: GroupId,
    after: Option<u64>,
    before: Option<u64>,
    n: u32,
) -> Vec<u64> {
    s.messages(
        g,
        &HistoryQuery {
            after_seq: after,
            before_seq: before,
            limit: n,
        },
    )
    .await
    .expect("history")
    .into_iter()
    .map(|m| m.seq)
    .collect()
}

/// A group with `n` messages (seq 1..=n) from its owner.
async fn group_with_messages(
    s: &DynStore,
    n: u64,
) -> (UserRecord, GroupRecord, Vec<StoredMessage>) {
    let owner = user(s, "historian").await;
    let g = group(s, &owner, Visibility::Open, 10).await;
    let batch: Vec<_> = (0..n)
        .map(|i| message(g.id, &owner, format!("m{i}").as_bytes(), None))
        .collect();
    let out = s.append_messages(&batch).await.unwrap();
    let msgs: Vec<_> = out.iter().map(|a| stored(a).clone()).collect();
    (owner, g, msgs)
}

fn token(user: &UserRecord, family: &str, expires_in: i64) -> RefreshTokenRecord {
    let mut h = [0u8; 32];
    let raw = uuid::Uuid::now_v7();
    h[..16].copy_from_slice(raw.as_bytes());
    h[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let now = domain::now();
    RefreshTokenRecord {
        hash: TokenHash(h),
        user_id: user.id,
        family_id: family.to_owned(),
        issued_at: now,
        expires_at: now + secs(expires_in),
    }
}

/// Rotating `t` (to a throwaway successor) says it is invalid.
async fn assert_invalid(s: &DynStore, u: &UserRecord, t: &RefreshTokenRecord) {
    let probe = token(u, "probe", 3600);
    let r = s
        .rotate_refresh_token(&t.hash, &probe, domain::now())
        .await
        .unwrap();
    assert_eq!(r, Rotation::Invalid);
}

// -------------------------------------------------------------------------------------------
// Users
// -------------------------------------------------------------------------------------------

pub async fn ping_answers(s: DynStore) {
    s.ping().await.expect("a fresh store answers ping");
}

pub async fn users_are_created_and_found_by_id_and_by_name_ignoring_case(s: DynStore) {
    let alice = user(&s, "Alice.Liddell").await;
    let bob = user(&s, "bob").await;
    assert_eq!(s.user_by_id(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_id(bob.id).await.unwrap(), Some(bob.clone()));
    for spelling in [
        "Alice.Liddell",
        "alice.liddell",
        "ALICE.LIDDELL",
        "aLiCe.LiDdElL",
    ] {
        let found = s
            .user_by_username(&Username::parse(spelling).unwrap())
            .await
            .unwrap();
        assert_eq!(found, Some(alice.clone()), "lookup by {spelling}");
    }
    // The name keeps the spelling it was registered with.
    assert_eq!(
        s.user_by_username(&Username::parse("ALICE.liddell").unwrap())
            .await
            .unwrap()
            .unwrap()
            .username
            .as_str(),
        "Alice.Liddell"
    );
    assert_eq!(
        s.user_by_username(&Username::parse("carol").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.user_by_id(UserId::new()).await.unwrap(), None);
}

pub async fn duplicate_username_ignoring_case_is_username_taken(s: DynStore) {
    let first = user(&s, "Dana").await;
    for spelling in ["Dana", "dana", "DANA"] {
        assert_eq!(
            s.create_user(&user_record(spelling)).await.unwrap(),
            NewAccount::UsernameTaken,
            "{spelling}"
        );
    }
    // The first account is untouched and the refused ones do not exist.
    assert_eq!(
        s.user_by_username(&Username::parse("dAnA").unwrap())
            .await
            .unwrap(),
        Some(first)
    );
    // Other names are still free.
    user(&s, "Danae").await;
}

// -------------------------------------------------------------------------------------------
// Refresh tokens
// -------------------------------------------------------------------------------------------

pub async fn refresh_token_rotates_once(s: DynStore) {
    let u = user(&s, "rotor").await;
    let t1 = token(&u, "fam-1", 3600);
    s.insert_refresh_token(&t1).await.unwrap();
    let t2 = token(&u, "ignored-by-store", 3600);
    assert_eq!(
        s.rotate_refresh_token(&t1.hash, &t2, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { user_id: u.id }
    );
    // The successor is live and rotates in turn.
    let t3 = token(&u, "x", 3600);
    assert_eq!(
        s.rotate_refresh_token(&t2.hash, &t3, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { user_id: u.id }
    );
}

pub async fn replaying_a_spent_refresh_token_revokes_the_whole_family(s: DynStore) {
    let u = user(&s, "victim").await;
    let t1 = token(&u, "fam-a", 3600);
    s.insert_refresh_token(&t1).await.unwrap();
    let t2 = token(&u, "fam-a", 3600);
    let t3 = token(&u, "fam-a", 3600);
    assert!(matches!(
        s.rotate_refresh_token(&t1.hash, &t2, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    assert!(matches!(
        s.rotate_refresh_token(&t2.hash, &t3, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    // Another login of the same user: a family of its own.
    let other = token(&u, "fam-b", 3600);
    s.insert_refresh_token(&other).await.unwrap();

    // The thief replays t1, which was spent.
    let t4 = token(&u, "fam-a", 3600);
    assert_eq!(
        s.rotate_refresh_token(&t1.hash, &t4, domain::now())
            .await
            .unwrap(),
        Rotation::ReuseDetected { user_id: u.id }
    );
    // The whole family is dead, including the newest token, and no successor was stored.
    assert_invalid(&s, &u, &t3).await;
    assert_invalid(&s, &u, &t2).await;
    assert_invalid(&s, &u, &t4).await;
    // Once revoked, replaying again is just invalid.
    assert_invalid(&s, &u, &t1).await;
    // The other login is unaffected.
    let next = token(&u, "fam-b", 3600);
    assert_eq!(
        s.rotate_refresh_token(&other.hash, &next, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { user_id: u.id }
    );
}

pub async fn expired_or_unknown_refresh_token_is_invalid(s: DynStore) {
    let u = user(&s, "sleepy").await;
    let expired = token(&u, "fam-old", -1);
    s.insert_refresh_token(&expired).await.unwrap();
    assert_invalid(&s, &u, &expired).await;

    // Valid now, expired when presented later.
    let t = token(&u, "fam-later", 60);
    s.insert_refresh_token(&t).await.unwrap();
    let next = token(&u, "fam-later", 60);
    assert_eq!(
        s.rotate_refresh_token(&t.hash, &next, domain::now() + secs(3600))
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // ... and presenting it late did not spend it.
    assert_eq!(
        s.rotate_refresh_token(&t.hash, &next, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { user_id: u.id }
    );

    let unknown = token(&u, "never-stored", 3600);
    assert_invalid(&s, &u, &unknown).await;
}

pub async fn revoke_refresh_family_revokes_only_that_family(s: DynStore) {
    let u = user(&s, "leaver").await;
    let a1 = token(&u, "fam-a", 3600);
    s.insert_refresh_token(&a1).await.unwrap();
    let a2 = token(&u, "fam-a", 3600);
    assert!(matches!(
        s.rotate_refresh_token(&a1.hash, &a2, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    let b1 = token(&u, "fam-b", 3600);
    s.insert_refresh_token(&b1).await.unwrap();

    // Logging out with the spent token still ends that login.
    assert!(s.revoke_refresh_family(&a1.hash).await.unwrap());
    assert_invalid(&s, &u, &a2).await;
    assert_invalid(&s, &u, &a1).await;

    let b2 = token(&u, "fam-b", 3600);
    assert_eq!(
        s.rotate_refresh_token(&b1.hash, &b2, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { user_id: u.id }
    );
    assert!(
        !s.revoke_refresh_family(&token(&u, "none", 1).hash)
            .await
            .unwrap()
    );
}

// -------------------------------------------------------------------------------------------
// Groups
// -------------------------------------------------------------------------------------------

pub async fn create_group_makes_the_owner_its_first_member(s: DynStore) {
    let owner = user(&s, "founder").await;
    let g = group_record(&owner, "Founders", Visibility::Private, 7);
    s.create_group(&g).await.unwrap();

    let got = s.group(g.id).await.unwrap().expect("group stored");
    assert_eq!(got, g);
    assert_eq!(got.member_count, 1);

    let ms = members(&s, g.id).await;
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].user_id, owner.id);
    assert_eq!(ms[0].username, "founder");
    assert_eq!(ms[0].role, Role::Owner);

    let (rg, rel) = s.relation(g.id, owner.id).await.unwrap().unwrap();
    assert_eq!(rg, g);
    assert_eq!(rel.role, Some(Role::Owner));
    assert!(!rel.pending && !rel.banned);

    let mine = s.groups_of_user(owner.id, limit(10), None).await.unwrap();
    assert_eq!(mine.items.len(), 1);
    assert_eq!(mine.items[0].0, g);
    assert_eq!(mine.items[0].1.role, Role::Owner);
    assert_eq!(s.group_ids_of_user(owner.id).await.unwrap(), vec![g.id]);
    assert_consistent(&s, g.id).await;
}

pub async fn unknown_group_is_absent_everywhere(s: DynStore) {
    let u = user(&s, "wanderer").await;
    let nowhere = GroupId::new();
    assert_eq!(s.group(nowhere).await.unwrap(), None);
    assert!(s.relation(nowhere, u.id).await.unwrap().is_none());
    assert!(
        s.members(nowhere, limit(10), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.messages(
            nowhere,
            &HistoryQuery {
                after_seq: None,
                before_seq: None,
                limit: 10
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    // A stranger to an existing group has no relation to it.
    let owner = user(&s, "keeper").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    assert_eq!(relation(&s, g.id, &u).await, Relation::default());
}

/// `access` (the hot paths' read) may leave out a member's pending/ban/cooldown records, but
/// every access decision must come out as it does from the full relation.
pub async fn access_decides_exactly_as_the_full_relation_does(s: DynStore) {
    let owner = user(&s, "gatekeeper").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    let member = user(&s, "insider").await;
    ok(exec(&s, g.id, &member, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: member.id }).await);
    let pending = user(&s, "asker").await;
    ok(exec(&s, g.id, &pending, Command::Join).await);
    let banned = user(&s, "outcast").await;
    ok(exec(&s, g.id, &banned, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: banned.id }).await);
    ok(exec(&s, g.id, &owner, Command::Ban { target: banned.id }).await);
    let former = user(&s, "leaver").await;
    ok(exec(&s, g.id, &former, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: former.id }).await);
    ok(exec(&s, g.id, &former, Command::Leave).await);
    let stranger = user(&s, "passerby").await;

    for u in [&owner, &member, &pending, &banned, &former, &stranger] {
        let (fg, full) = s.relation(g.id, u.id).await.unwrap().unwrap();
        let (ag, access) = s.access(g.id, u.id).await.unwrap().unwrap();
        assert_eq!(ag, fg, "{}", u.username);
        assert_eq!(access.role, full.role, "{}", u.username);
        if full.role.is_none() {
            assert_eq!(
                access, full,
                "a non-member's relation is complete: {}",
                u.username
            );
        }
        assert_eq!(
            domain::can_send(g.visibility, &access),
            domain::can_send(g.visibility, &full),
            "{}",
            u.username
        );
        assert_eq!(
            domain::can_read_messages(g.visibility, &access),
            domain::can_read_messages(g.visibility, &full),
            "{}",
            u.username
        );
    }
    assert!(domain::can_send(g.visibility, &relation(&s, g.id, &member).await).is_ok());
    assert!(domain::can_send(g.visibility, &relation(&s, g.id, &banned).await).is_err());
    assert!(s.access(GroupId::new(), member.id).await.unwrap().is_none());
}

pub async fn list_groups_filters_by_query_ignoring_case_and_by_visibility(s: DynStore) {
    let o = user(&s, "lister").await;
    let mk = |name: &str, vis| group_record(&o, name, vis, 10);
    let rust_open = mk("Rust Lovers", Visibility::Open);
    let rust_private = mk("the RUSTACEANS", Visibility::Private);
    let go_open = mk("Gophers", Visibility::Open);
    let go_private = mk("Secret gophers", Visibility::Private);
    for g in [&rust_open, &rust_private, &go_open, &go_private] {
        s.create_group(g).await.unwrap();
    }
    let ids =
        |p: Page<GroupRecord>| -> BTreeSet<GroupId> { p.items.into_iter().map(|g| g.id).collect() };
    let list = |q: Option<&str>, v: Option<Visibility>| {
        let s = s.clone();
        let f = GroupFilter {
            query: q.map(str::to_owned),
            visibility: v,
        };
        async move { s.list_groups(&f, limit(100), None).await.unwrap() }
    };

    assert_eq!(ids(list(None, None).await).len(), 4);
    assert_eq!(
        ids(list(Some("rust"), None).await),
        BTreeSet::from([rust_open.id, rust_private.id])
    );
    assert_eq!(
        ids(list(Some("RuSt"), None).await),
        BTreeSet::from([rust_open.id, rust_private.id])
    );
    assert_eq!(
        ids(list(Some("opher"), None).await),
        BTreeSet::from([go_open.id, go_private.id])
    );
    assert_eq!(
        ids(list(None, Some(Visibility::Private)).await),
        BTreeSet::from([rust_private.id, go_private.id])
    );
    assert_eq!(
        ids(list(None, Some(Visibility::Open)).await),
        BTreeSet::from([rust_open.id, go_open.id])
    );
    assert_eq!(
        ids(list(Some("GOPHER"), Some(Visibility::Open)).await),
        BTreeSet::from([go_open.id])
    );
    assert!(list(Some("python"), None).await.items.is_empty());
    // Whole records come back.
    let one = list(Some("lovers"), None).await;
    assert_eq!(one.items, vec![rust_open.clone()]);
}

pub async fn list_groups_query_matches_wildcard_characters_literally(s: DynStore) {
    let o = user(&s, "escaper").await;
    let pct = group_record(&o, "100% uptime", Visibility::Open, 10);
    let under = group_record(&o, "snake_case fans", Visibility::Open, 10);
    let plain = group_record(&o, "100 percent", Visibility::Open, 10);
    let dots = group_record(&o, "a.b (c) [d] ^$ * + ? {e} | \\ f", Visibility::Open, 10);
    for g in [&pct, &under, &plain, &dots] {
        s.create_group(g).await.unwrap();
    }
    let find = |q: &str| {
        let s = s.clone();
        let f = GroupFilter {
            query: Some(q.to_owned()),
            visibility: None,
        };
        async move {
            s.list_groups(&f, limit(100), None)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|g| g.id)
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(find("%").await, BTreeSet::from([pct.id]));
    assert_eq!(find("0% u").await, BTreeSet::from([pct.id]));
    assert_eq!(find("_").await, BTreeSet::from([under.id]));
    assert_eq!(find("e_c").await, BTreeSet::from([under.id]));
    assert_eq!(find(".").await, BTreeSet::from([dots.id]));
    assert_eq!(find("(c) [d] ^$ * + ?").await, BTreeSet::from([dots.id]));
    assert_eq!(find("| \\ f").await, BTreeSet::from([dots.id]));
    assert_eq!(find(".*").await, BTreeSet::new());
}

pub async fn list_groups_pages_return_each_group_once(s: DynStore) {
    let o = user(&s, "pager").await;
    let mut all = BTreeSet::new();
    let mut private = BTreeSet::new();
    for i in 0..11 {
        let vis = if i % 3 == 0 {
            Visibility::Private
        } else {
            Visibility::Open
        };
        let g = group_record(&o, &format!("paged group {i}"), vis, 10);
        s.create_group(&g).await.unwrap();
        all.insert(g.id);
        if vis == Visibility::Private {
            private.insert(g.id);
        }
    }
    for size in [1, 3, 4, 11, 50] {
        let filter = GroupFilter::default();
        let ss = s.clone();
        let got = all_pages(size, move |c| {
            let (s, f) = (ss.clone(), filter.clone());
            async move { s.list_groups(&f, limit(size), c.as_ref()).await }
        })
        .await;
        let ids: Vec<_> = got.iter().map(|g| g.id).collect();
        assert_eq!(ids.len(), all.len(), "page size {size}: each group once");
        assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), all);

        let filter = GroupFilter {
            query: Some("PAGED".into()),
            visibility: Some(Visibility::Private),
        };
        let ss = s.clone();
        let got = all_pages(size, move |c| {
            let (s, f) = (ss.clone(), filter.clone());
            async move { s.list_groups(&f, limit(size), c.as_ref()).await }
        })
        .await;
        let ids: Vec<_> = got.iter().map(|g| g.id).collect();
        assert_eq!(
            ids.len(),
            private.len(),
            "filtered, page size {size}: each group once"
        );
        assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), private);
    }
}

pub async fn list_groups_paging_survives_inserts_between_pages(s: DynStore) {
    let o = user(&s, "inserter").await;
    let mut before = BTreeSet::new();
    for i in 0..6 {
        let g = group_record(&o, &format!("g{i}"), Visibility::Open, 10);
        s.create_group(&g).await.unwrap();
        before.insert(g.id);
    }
    let f = GroupFilter::default();
    let first = s.list_groups(&f, limit(3), None).await.unwrap();
    assert_eq!(first.items.len(), 3);
    // Someone creates groups while the client pages.
    for i in 0..3 {
        s.create_group(&group_record(&o, &format!("late{i}"), Visibility::Open, 10))
            .await
            .unwrap();
    }
    let mut seen: Vec<GroupId> = first.items.iter().map(|g| g.id).collect();
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let p = s.list_groups(&f, limit(3), Some(&c)).await.unwrap();
        seen.extend(p.items.iter().map(|g| g.id));
        cursor = p.next;
        assert!(seen.len() < 100);
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no group twice");
    for id in &before {
        assert!(
            seen.contains(id),
            "a group that existed throughout was skipped"
        );
    }
}

pub async fn groups_of_user_lists_memberships_with_roles_in_pages(s: DynStore) {
    let me = user(&s, "joiner").await;
    let other = user(&s, "host").await;
    let mut owned = BTreeSet::new();
    let mut joined = BTreeSet::new();
    for _ in 0..3 {
        owned.insert(group(&s, &me, Visibility::Private, 10).await.id);
    }
    for _ in 0..4 {
        let g = group(&s, &other, Visibility::Open, 10).await;
        ok(exec(&s, g.id, &me, Command::Join).await);
        joined.insert(g.id);
    }
    // A group the user is not in, and one they only asked to join.
    group(&s, &other, Visibility::Open, 10).await;
    let pending = group(&s, &other, Visibility::Private, 10).await;
    assert_eq!(
        ok(exec(&s, pending.id, &me, Command::Join).await).outcome,
        Outcome::Pending
    );

    let ss = s.clone();
    let uid = me.id;
    let got = all_pages(2, move |c| {
        let s = ss.clone();
        async move { s.groups_of_user(uid, limit(2), c.as_ref()).await }
    })
    .await;
    assert_eq!(got.len(), 7, "each group once");
    for (g, m) in &got {
        assert_eq!(m.user_id, me.id);
        assert_eq!(m.username, "joiner");
        if owned.contains(&g.id) {
            assert_eq!(m.role, Role::Owner);
            assert_eq!(g.owner_id, me.id);
        } else {
            assert!(joined.contains(&g.id), "only the user's groups");
            assert_eq!(m.role, Role::Member);
            assert_eq!(g.member_count, 2, "the group record is current");
        }
    }
    let ids: BTreeSet<_> = got.iter().map(|(g, _)| g.id).collect();
    assert_eq!(ids, owned.union(&joined).copied().collect());
}

pub async fn group_ids_of_user_follows_membership(s: DynStore) {
    let me = user(&s, "roomy").await;
    let host = user(&s, "hoster").await;
    assert!(s.group_ids_of_user(me.id).await.unwrap().is_empty());
    let a = group(&s, &host, Visibility::Open, 10).await;
    let b = group(&s, &host, Visibility::Private, 10).await;
    let c = group(&s, &me, Visibility::Open, 10).await;
    ok(exec(&s, a.id, &me, Command::Join).await);
    ok(exec(&s, b.id, &me, Command::Join).await); // pending only
    let ids: BTreeSet<_> = s
        .group_ids_of_user(me.id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids, BTreeSet::from([a.id, c.id]));
    ok(exec(&s, b.id, &host, Command::Approve { target: me.id }).await);
    ok(exec(&s, a.id, &me, Command::Leave).await);
    let ids: BTreeSet<_> = s
        .group_ids_of_user(me.id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids, BTreeSet::from([b.id, c.id]));
}

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

pub async fn purge_expired_removes_only_what_has_aged_out(s: DynStore) {
    let owner = user(&s, "powner").await;
    let u = user(&s, "ptoken").await;
    let quitter = user(&s, "pquitter").await;
    // A refresh token good for an hour, one for three, and a cooldown ending in COOLDOWN.
    let short = token(&u, "fam-short", 3600);
    let long = token(&u, "fam-long", 3 * 3600);
    s.insert_refresh_token(&short).await.unwrap();
    s.insert_refresh_token(&long).await.unwrap();
    let g = group(&s, &owner, Visibility::Private, 10).await;
    ok(exec(&s, g.id, &quitter, Command::Join).await);
    ok(exec(&s, g.id, &owner, Command::Approve { target: quitter.id }).await);
    let t = domain::now();
    ok(exec_at(&s, g.id, &quitter, Command::Leave, t).await);

    // Now nothing has aged out.
    assert_eq!(
        s.purge_expired(domain::now()).await.unwrap(),
        Purged::default()
    );
    // Two hours on: the short token only (the cooldown lasts longer).
    let later = domain::now() + secs(2 * 3600);
    assert!(COOLDOWN > Duration::from_secs(2 * 3600));
    assert_eq!(
        s.purge_expired(later).await.unwrap(),
        Purged {
            refresh_tokens: 1,
            cooldowns: 0
        }
    );
    // The purged token is gone for good, the other one still rotates.
    let next = token(&u, "fam-short", 3600);
    assert_eq!(
        s.rotate_refresh_token(&short.hash, &next, domain::now())
            .await
            .unwrap(),
        Rotation::Invalid
    );
    let next = token(&u, "fam-long", 3600);
    assert_eq!(
        s.rotate_refresh_token(&long.hash, &next, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { user_id: u.id }
    );
    // After the cooldown: it is purged, and the rules still let the user ask again.
    let after = t + COOLDOWN + secs(1);
    assert_eq!(s.purge_expired(after).await.unwrap().cooldowns, 1);
    assert_eq!(s.purge_expired(after).await.unwrap().cooldowns, 0);
    let done = ok(exec_at(&s, g.id, &quitter, Command::Join, after).await);
    assert_eq!(done.outcome, Outcome::Pending);
    assert_consistent(&s, g.id).await;
}

pub async fn prepared_schema_is_ready_and_preparing_again_is_harmless(s: DynStore) {
    s.prepare_schema().await.unwrap();
    assert!(s.schema_ready().await.unwrap());
    s.prepare_schema().await.unwrap();
    assert!(s.schema_ready().await.unwrap());
    let a = user(&s, "Schema.User").await;
    assert_eq!(s.user_by_id(a.id).await.unwrap(), Some(a));
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

// -------------------------------------------------------------------------------------------
// Member, request and ban listings
// -------------------------------------------------------------------------------------------

async fn crowd(s: &DynStore, prefix: &str, n: usize) -> Vec<UserRecord> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(user(s, &format!("{prefix}{i}")).await);
    }
    out
}

pub async fn members_page_once_each_even_with_equal_join_times(s: DynStore) {
    let owner = user(&s, "popular").await;
    let g = group(&s, &owner, Visibility::Open, 100).await;
    let people = crowd(&s, "fan", 9).await;
    let t = domain::now();
    for u in &people {
        ok(exec_at(&s, g.id, u, Command::Join, t).await); // all at the same instant
    }
    let mut expected: BTreeSet<_> = people.iter().map(|u| u.id).collect();
    expected.insert(owner.id);
    for size in [1, 2, 3, 4, 10, 100] {
        let ss = s.clone();
        let got = all_pages(size, move |c| {
            let s = ss.clone();
            async move { s.members(g.id, limit(size), c.as_ref()).await }
        })
        .await;
        let ids: Vec<_> = got.iter().map(|m| m.user_id).collect();
        assert_eq!(ids.len(), 10, "page size {size}: each member once: {ids:?}");
        assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    }
    assert_consistent(&s, g.id).await;
}

pub async fn join_requests_page_once_each_even_with_equal_times(s: DynStore) {
    let owner = user(&s, "exclusive").await;
    let g = group(&s, &owner, Visibility::Private, 100).await;
    let people = crowd(&s, "asker", 7).await;
    let t = domain::now();
    for u in &people {
        ok(exec_at(&s, g.id, u, Command::Join, t).await);
    }
    let expected: BTreeSet<_> = people.iter().map(|u| u.id).collect();
    for size in [1, 2, 3, 7, 8] {
        let ss = s.clone();
        let got = all_pages(size, move |c| {
            let s = ss.clone();
            async move { s.join_requests(g.id, limit(size), c.as_ref()).await }
        })
        .await;
        let ids: Vec<_> = got.iter().map(|r| r.user_id).collect();
        assert_eq!(ids.len(), 7, "page size {size}: each request once");
        assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
        assert!(got.iter().all(|r| r.requested_at == t));
    }
}

pub async fn bans_page_once_each_even_with_equal_times(s: DynStore) {
    let owner = user(&s, "banhammer").await;
    let g = group(&s, &owner, Visibility::Open, 100).await;
    let people = crowd(&s, "spammer", 7).await;
    let t = domain::now();
    for u in &people {
        ok(exec_at(&s, g.id, &owner, Command::Ban { target: u.id }, t).await);
    }
    let expected: BTreeSet<_> = people.iter().map(|u| u.id).collect();
    for size in [1, 2, 3, 7, 8] {
        let ss = s.clone();
        let got = all_pages(size, move |c| {
            let s = ss.clone();
            async move { s.bans(g.id, limit(size), c.as_ref()).await }
        })
        .await;
        let ids: Vec<_> = got.iter().map(|b| b.user_id).collect();
        assert_eq!(ids.len(), 7, "page size {size}: each ban once");
        assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    }
}

// -------------------------------------------------------------------------------------------
// Messages
// -------------------------------------------------------------------------------------------

pub async fn append_assigns_contiguous_seq_per_group_independently(s: DynStore) {
    let u = user(&s, "chatty").await;
    let a = group(&s, &u, Visibility::Open, 10).await;
    let b = group(&s, &u, Visibility::Private, 10).await;
    // One batch interleaving two groups, then more batches.
    let batch: Vec<_> = (0..6)
        .map(|i| message(if i % 2 == 0 { a.id } else { b.id }, &u, b"x", None))
        .collect();
    let out = s.append_messages(&batch).await.unwrap();
    let seqs: Vec<_> = out.iter().map(|r| stored(r).seq).collect();
    assert_eq!(seqs, vec![1, 1, 2, 2, 3, 3]);
    let out = s
        .append_messages(&[message(b.id, &u, b"y", None)])
        .await
        .unwrap();
    assert_eq!(stored(&out[0]).seq, 4);
    let out = s
        .append_messages(&[message(a.id, &u, b"z", None), message(a.id, &u, b"w", None)])
        .await
        .unwrap();
    assert_eq!(stored(&out[0]).seq, 4);
    assert_eq!(stored(&out[1]).seq, 5);
    assert_eq!(
        history(&s, a.id, Some(0), None, 100).await,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        history(&s, b.id, Some(0), None, 100).await,
        vec![1, 2, 3, 4]
    );
    // A new group starts at 1 whatever the others hold.
    let c = group(&s, &u, Visibility::Open, 10).await;
    assert_eq!(
        stored(&append_one(&s, message(c.id, &u, b"first", None)).await).seq,
        1
    );
}

/// A busy writer's batch: many groups, some sharing a count of new messages, some not, with a
/// gone group among them; each group's seqs continue from what it held.
pub async fn one_batch_over_many_groups_gets_each_its_own_seqs(s: DynStore) {
    let u = user(&s, "busy").await;
    let mut groups = Vec::new();
    for _ in 0..6 {
        groups.push(group(&s, &u, Visibility::Open, 10).await.id);
    }
    // Groups 0 and 3 hold messages already.
    append_one(&s, message(groups[0], &u, b"earlier", None)).await;
    for _ in 0..3 {
        append_one(&s, message(groups[3], &u, b"earlier", None)).await;
    }
    let gone = group(&s, &u, Visibility::Open, 10).await;
    ok(exec(&s, gone.id, &u, Command::Delete).await);
    // New messages per group: 0 → 2, 1 → 1, 2 → 3, 3 → 2, 4 → 1, 5 → 3, gone → 2; interleaved.
    let counts = [2, 1, 3, 2, 1, 3];
    let mut batch = Vec::new();
    for round in 0..3 {
        for (i, g) in groups.iter().enumerate() {
            if round < counts[i] {
                batch.push(message(*g, &u, format!("{i}-{round}").as_bytes(), None));
            }
        }
        if round < 2 {
            batch.push(message(gone.id, &u, b"too late", None));
        }
    }
    let out = s.append_messages(&batch).await.unwrap();
    assert_eq!(out.len(), batch.len());
    for (m, r) in batch.iter().zip(&out) {
        if m.group_id == gone.id {
            assert_eq!(*r, Appended::GroupGone);
        } else {
            assert_eq!(stored(r).id, m.id);
        }
    }
    let held_before = [1, 0, 0, 3, 0, 0];
    for (i, g) in groups.iter().enumerate() {
        let seqs: Vec<u64> = batch
            .iter()
            .zip(&out)
            .filter(|(m, _)| m.group_id == *g)
            .map(|(_, r)| stored(r).seq)
            .collect();
        let want: Vec<u64> = (held_before[i] + 1..=held_before[i] + counts[i] as u64).collect();
        assert_eq!(seqs, want, "group {i}");
        assert_eq!(
            history(&s, *g, Some(0), None, 100).await,
            (1..=held_before[i] + counts[i] as u64).collect::<Vec<_>>(),
            "group {i}"
        );
    }
    // The next message of each continues after the batch.
    for (i, g) in groups.iter().enumerate() {
        let next = stored(&append_one(&s, message(*g, &u, b"after", None)).await).seq;
        assert_eq!(next, held_before[i] + counts[i] as u64 + 1, "group {i}");
    }
}

pub async fn append_returns_stored_messages_in_batch_order_with_all_fields(s: DynStore) {
    let u = user(&s, "precise").await;
    let g = group(&s, &u, Visibility::Open, 10).await;
    let batch = vec![
        message(g.id, &u, b"one", Some("cm-1")),
        message(g.id, &u, b"two", None),
    ];
    let out = s.append_messages(&batch).await.unwrap();
    assert_eq!(out.len(), 2);
    for (i, (new, res)) in batch.iter().zip(&out).enumerate() {
        let m = stored(res);
        assert_eq!(m.id, new.id);
        assert_eq!(m.group_id, g.id);
        assert_eq!(m.sender_id, u.id);
        assert_eq!(m.envelope, new.envelope);
        assert_eq!(m.sent_at, new.sent_at);
        assert_eq!(m.client_msg_id, new.client_msg_id);
        assert_eq!(m.seq, i as u64 + 1);
        assert_eq!(res.message(), Some(m));
    }
    let read = s
        .messages(
            g.id,
            &HistoryQuery {
                after_seq: Some(0),
                before_seq: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let expected: Vec<_> = out.iter().map(|r| stored(r).clone()).collect();
    assert_eq!(read, expected, "history returns what append stored");
    assert_eq!(
        s.append_messages(&[]).await.unwrap(),
        Vec::new(),
        "an empty batch is fine"
    );
}

pub async fn duplicate_message_id_is_not_stored_again_and_consumes_no_seq(s: DynStore) {
    let u = user(&s, "redeliverer").await;
    let g = group(&s, &u, Visibility::Open, 10).await;
    let m1 = message(g.id, &u, b"first", None);
    let m2 = message(g.id, &u, b"second", Some("k2"));
    let first = s.append_messages(&[m1.clone(), m2.clone()]).await.unwrap();
    // The broker redelivers the same batch, plus a fresh message.
    let m3 = message(g.id, &u, b"third", None);
    let again = s
        .append_messages(&[m1.clone(), m2.clone(), m3.clone()])
        .await
        .unwrap();
    assert_eq!(duplicate(&again[0]), stored(&first[0]));
    assert_eq!(duplicate(&again[1]), stored(&first[1]));
    assert_eq!(stored(&again[2]).seq, 3, "duplicates consume no seq");
    // Same id, different content: still the stored one, unchanged.
    let mut forged = m1.clone();
    forged.envelope = b"overwrite attempt".to_vec();
    forged.client_msg_id = Some("other".into());
    let d = append_one(&s, forged).await;
    assert_eq!(duplicate(&d).envelope, b"first");
    assert_eq!(duplicate(&d).seq, 1);
    assert_eq!(history(&s, g.id, Some(0), None, 100).await, vec![1, 2, 3]);
    assert_eq!(
        stored(&append_one(&s, message(g.id, &u, b"4", None)).await).seq,
        4
    );
}

pub async fn duplicate_within_one_batch_is_stored_once(s: DynStore) {
    let u = user(&s, "stutter").await;
    let g = group(&s, &u, Visibility::Open, 10).await;
    let m = message(g.id, &u, b"echo", None);
    let mut same_cmid = message(g.id, &u, b"retry", Some("c"));
    let mut same_cmid2 = message(g.id, &u, b"retry again", Some("c"));
    same_cmid.sent_at = m.sent_at;
    same_cmid2.sent_at = m.sent_at;
    let out = s
        .append_messages(&[m.clone(), m.clone(), same_cmid.clone(), same_cmid2])
        .await
        .unwrap();
    assert_eq!(stored(&out[0]).seq, 1);
    assert_eq!(duplicate(&out[1]), stored(&out[0]));
    assert_eq!(stored(&out[2]).seq, 2);
    assert_eq!(duplicate(&out[3]), stored(&out[2]));
    assert_eq!(history(&s, g.id, Some(0), None, 100).await, vec![1, 2]);
}

pub async fn duplicate_client_msg_id_from_same_sender_is_not_stored_again(s: DynStore) {
    let u = user(&s, "retrier").await;
    let g = group(&s, &u, Visibility::Open, 10).await;
    let original =
        stored(&append_one(&s, message(g.id, &u, b"hello", Some("abc-1"))).await).clone();
    // A retry: new id (the server stamped another), same client_msg_id.
    let retry = message(g.id, &u, b"hello (retry)", Some("abc-1"));
    let d = append_one(&s, retry).await;
    assert_eq!(duplicate(&d), &original);
    let next = stored(&append_one(&s, message(g.id, &u, b"next", Some("abc-2"))).await).clone();
    assert_eq!(next.seq, 2, "the retry consumed no seq");
    let all = s
        .messages(
            g.id,
            &HistoryQuery {
                after_seq: Some(0),
                before_seq: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(all, vec![original, next]);
}

pub async fn same_client_msg_id_from_other_sender_or_group_is_a_new_message(s: DynStore) {
    let a = user(&s, "sender_a").await;
    let b = user(&s, "sender_b").await;
    let g = group(&s, &a, Visibility::Open, 10).await;
    let h = group(&s, &a, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &b, Command::Join).await);
    let x = append_one(&s, message(g.id, &a, b"a says", Some("same"))).await;
    let y = append_one(&s, message(g.id, &b, b"b says", Some("same"))).await;
    let z = append_one(&s, message(h.id, &a, b"a elsewhere", Some("same"))).await;
    assert_eq!(stored(&x).seq, 1);
    assert_eq!(stored(&y).seq, 2);
    assert_eq!(stored(&z).seq, 1);
    assert_ne!(stored(&x).id, stored(&y).id);
    // Messages without client_msg_id never collide with each other.
    let n1 = append_one(&s, message(g.id, &a, b"n1", None)).await;
    let n2 = append_one(&s, message(g.id, &a, b"n2", None)).await;
    assert_eq!((stored(&n1).seq, stored(&n2).seq), (3, 4));
}

pub async fn message_id_for_client_id_finds_only_that_senders_message(s: DynStore) {
    let a = user(&s, "idem_a").await;
    let b = user(&s, "idem_b").await;
    let g = group(&s, &a, Visibility::Open, 10).await;
    let h = group(&s, &a, Visibility::Open, 10).await;
    assert_eq!(
        s.message_id_for_client_id(g.id, a.id, "k").await.unwrap(),
        None
    );
    let m = stored(&append_one(&s, message(g.id, &a, b"x", Some("k"))).await).clone();
    assert_eq!(
        s.message_id_for_client_id(g.id, a.id, "k").await.unwrap(),
        Some(m.id)
    );
    assert_eq!(
        s.message_id_for_client_id(g.id, b.id, "k").await.unwrap(),
        None
    );
    assert_eq!(
        s.message_id_for_client_id(h.id, a.id, "k").await.unwrap(),
        None
    );
    assert_eq!(
        s.message_id_for_client_id(g.id, a.id, "K").await.unwrap(),
        None,
        "keys are exact"
    );
    assert_eq!(
        s.message_id_for_client_id(g.id, a.id, "k2").await.unwrap(),
        None
    );
}

pub async fn append_to_a_missing_group_is_group_gone(s: DynStore) {
    let u = user(&s, "latecomer").await;
    let live = group(&s, &u, Visibility::Open, 10).await;
    let doomed = group(&s, &u, Visibility::Open, 10).await;
    append_one(&s, message(doomed.id, &u, b"before", None)).await;
    ok(exec(&s, doomed.id, &u, Command::Delete).await);
    let out = s
        .append_messages(&[
            message(live.id, &u, b"ok", None),
            message(doomed.id, &u, b"too late", Some("t")),
            message(GroupId::new(), &u, b"never existed", None),
            message(live.id, &u, b"ok too", None),
        ])
        .await
        .unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(stored(&out[0]).seq, 1);
    assert_eq!(out[1], Appended::GroupGone);
    assert_eq!(out[2], Appended::GroupGone);
    assert_eq!(out[1].message(), None);
    assert_eq!(stored(&out[3]).seq, 2);
    assert!(history(&s, doomed.id, Some(0), None, 10).await.is_empty());
    assert_eq!(
        s.message_id_for_client_id(doomed.id, u.id, "t")
            .await
            .unwrap(),
        None
    );
}

pub async fn history_reads_forwards_after_seq(s: DynStore) {
    let (_, g, _) = group_with_messages(&s, 10).await;
    assert_eq!(history(&s, g.id, Some(0), None, 4).await, vec![1, 2, 3, 4]);
    assert_eq!(history(&s, g.id, Some(3), None, 4).await, vec![4, 5, 6, 7]);
    assert_eq!(history(&s, g.id, Some(8), None, 4).await, vec![9, 10]);
    assert_eq!(
        history(&s, g.id, Some(10), None, 4).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        history(&s, g.id, Some(99), None, 4).await,
        Vec::<u64>::new()
    );
    // Both bounds: the window between them, from the start.
    assert_eq!(history(&s, g.id, Some(2), Some(6), 10).await, vec![3, 4, 5]);
    assert_eq!(history(&s, g.id, Some(2), Some(9), 2).await, vec![3, 4]);
}

pub async fn history_reads_backwards_before_seq_and_returns_ascending(s: DynStore) {
    let (_, g, _) = group_with_messages(&s, 10).await;
    assert_eq!(history(&s, g.id, None, Some(8), 3).await, vec![5, 6, 7]);
    assert_eq!(history(&s, g.id, None, Some(3), 5).await, vec![1, 2]);
    assert_eq!(history(&s, g.id, None, Some(1), 5).await, Vec::<u64>::new());
    assert_eq!(history(&s, g.id, None, Some(11), 2).await, vec![9, 10]);
    assert_eq!(
        history(&s, g.id, None, Some(1000), 100).await,
        (1..=10).collect::<Vec<_>>()
    );
}

pub async fn history_without_bounds_returns_the_newest_page(s: DynStore) {
    let (_, g, msgs) = group_with_messages(&s, 10).await;
    assert_eq!(history(&s, g.id, None, None, 3).await, vec![8, 9, 10]);
    assert_eq!(
        history(&s, g.id, None, None, 50).await,
        (1..=10).collect::<Vec<_>>()
    );
    let full = s
        .messages(
            g.id,
            &HistoryQuery {
                after_seq: None,
                before_seq: None,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(full, vec![msgs[9].clone()]);
}

pub async fn history_is_per_group(s: DynStore) {
    let u = user(&s, "multi").await;
    let a = group(&s, &u, Visibility::Open, 10).await;
    let b = group(&s, &u, Visibility::Open, 10).await;
    let empty = group(&s, &u, Visibility::Open, 10).await;
    for i in 0..5 {
        append_one(&s, message(a.id, &u, format!("a{i}").as_bytes(), None)).await;
        append_one(&s, message(b.id, &u, format!("b{i}").as_bytes(), None)).await;
    }
    let read = s
        .messages(
            a.id,
            &HistoryQuery {
                after_seq: Some(0),
                before_seq: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(read.len(), 5);
    for (i, m) in read.iter().enumerate() {
        assert_eq!(m.group_id, a.id);
        assert_eq!(m.envelope, format!("a{i}").as_bytes());
    }
    assert!(history(&s, empty.id, None, None, 10).await.is_empty());
    assert!(history(&s, empty.id, Some(0), None, 10).await.is_empty());
}

pub async fn envelope_bytes_come_back_byte_identical(s: DynStore) {
    let u = user(&s, "binary").await;
    let g = group(&s, &u, Visibility::Open, 10).await;
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let zeros = vec![0u8; 1024];
    let big: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let invalid_utf8 = vec![0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1];
    let bodies = [every_byte, zeros, big, invalid_utf8, vec![0x01]];
    let batch: Vec<_> = bodies
        .iter()
        .map(|b| message(g.id, &u, b, Some(&format!("b{}", b.len()))))
        .collect();
    let out = s.append_messages(&batch).await.unwrap();
    for (b, r) in bodies.iter().zip(&out) {
        assert_eq!(&stored(r).envelope, b);
    }
    let read = s
        .messages(
            g.id,
            &HistoryQuery {
                after_seq: Some(0),
                before_seq: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(read.len(), bodies.len());
    for (b, m) in bodies.iter().zip(&read) {
        assert!(
            &m.envelope == b,
            "envelope of seq {} changed in storage",
            m.seq
        );
    }
    // And as returned for a duplicate.
    let d = append_one(&s, batch[0].clone()).await;
    assert_eq!(&duplicate(&d).envelope, &bodies[0]);
}

pub async fn rotated_token_joins_the_presented_tokens_family(s: DynStore) {
    let u = user(&s, "heritage").await;
    let t1 = token(&u, "the-family", 3600);
    s.insert_refresh_token(&t1).await.unwrap();
    // The successor's own family_id is not what counts: the store keeps the presented one's.
    let t2 = token(&u, "some-other-family", 3600);
    assert!(matches!(
        s.rotate_refresh_token(&t1.hash, &t2, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    let unrelated = token(&u, "some-other-family", 3600);
    s.insert_refresh_token(&unrelated).await.unwrap();
    assert!(s.revoke_refresh_family(&t1.hash).await.unwrap());
    assert_invalid(&s, &u, &t2).await;
    // A token that merely carried the same family_id string as t2's record is not affected.
    let next = token(&u, "x", 3600);
    assert_eq!(
        s.rotate_refresh_token(&unrelated.hash, &next, domain::now())
            .await
            .unwrap(),
        Rotation::Rotated { user_id: u.id }
    );
}

// -------------------------------------------------------------------------------------------
// Concurrency: every change is atomic (API.md, "Rules"), whatever the engine.
// -------------------------------------------------------------------------------------------

const RACE_ROUNDS: usize = 12;

/// Runs every future on its own task at once; results in spawn order.
async fn all_at_once<T: Send + 'static>(
    futs: Vec<std::pin::Pin<Box<dyn Future<Output = T> + Send>>>,
) -> Vec<T> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

type Job<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Six copies of one message appended at once, each alone: every result, and the messages
/// among them that were newly stored.
async fn append_copies_at_once(
    s: &DynStore,
    copy: impl Fn() -> NewMessage,
) -> (Vec<Appended>, Vec<StoredMessage>) {
    let jobs: Vec<Job<Vec<Appended>>> = (0..6)
        .map(|_| {
            let (s, m) = (s.clone(), copy());
            Box::pin(async move { s.append_messages(&[m]).await.unwrap() }) as Job<_>
        })
        .collect();
    let results: Vec<Appended> = all_at_once(jobs).await.into_iter().flatten().collect();
    let fresh = results
        .iter()
        .filter_map(|r| match r {
            Appended::Stored(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    (results, fresh)
}

fn exec_job(
    s: &DynStore,
    g: GroupId,
    actor: &UserRecord,
    cmd: Command,
) -> Job<AppResult<Executed>> {
    let (s, actor) = (s.clone(), actor.clone());
    Box::pin(async move { exec(&s, g, &actor, cmd).await })
}

pub async fn concurrent_rotations_of_one_token_rotate_it_once(s: DynStore) {
    let u = user(&s, "racer").await;
    for round in 0..RACE_ROUNDS {
        let t = token(&u, &format!("fam-{round}"), 3600);
        s.insert_refresh_token(&t).await.unwrap();
        let nexts: Vec<_> = (0..6).map(|_| token(&u, "n", 3600)).collect();
        let jobs: Vec<Job<AppResult<Rotation>>> = nexts
            .iter()
            .map(|n| {
                let (s, h, n) = (s.clone(), t.hash.clone(), n.clone());
                Box::pin(async move { s.rotate_refresh_token(&h, &n, domain::now()).await })
                    as Job<_>
            })
            .collect();
        let results: Vec<_> = all_at_once(jobs)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let rotated = results
            .iter()
            .filter(|r| matches!(r, Rotation::Rotated { .. }))
            .count();
        assert_eq!(
            rotated, 1,
            "round {round}: one token, one successor: {results:?}"
        );
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Rotation::ReuseDetected { .. })),
            "round {round}: the other presentations are reuse: {results:?}"
        );
        // Reuse was detected, so the family is revoked, the one successor included.
        for n in &nexts {
            assert_invalid(&s, &u, n).await;
        }
    }
}

pub async fn concurrent_approvals_never_overfill(s: DynStore) {
    let owner = user(&s, "racing_owner").await;
    let people = crowd(&s, "applicant", 6).await;
    for round in 0..RACE_ROUNDS {
        let g = group(&s, &owner, Visibility::Private, 3).await;
        for u in &people {
            ok(exec(&s, g.id, u, Command::Join).await);
        }
        let jobs = people
            .iter()
            .map(|u| exec_job(&s, g.id, &owner, Command::Approve { target: u.id }))
            .collect();
        let results = all_at_once(jobs).await;
        let approved = results.iter().filter(|r| r.is_ok()).count();
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e.code(), "group_full", "round {round}");
            }
        }
        assert_eq!(approved, 2, "round {round}: room for two");
        assert_eq!(
            request_ids(&s, g.id).await.len(),
            4,
            "round {round}: the others still wait"
        );
        assert_consistent(&s, g.id).await;
    }
}

pub async fn concurrent_joins_never_overfill(s: DynStore) {
    let owner = user(&s, "open_racer").await;
    let people = crowd(&s, "rusher", 6).await;
    for round in 0..RACE_ROUNDS {
        let g = group(&s, &owner, Visibility::Open, 4).await;
        let jobs = people
            .iter()
            .map(|u| exec_job(&s, g.id, u, Command::Join))
            .collect();
        let results = all_at_once(jobs).await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            3,
            "round {round}"
        );
        assert_eq!(s.group(g.id).await.unwrap().unwrap().member_count, 4);
        assert_consistent(&s, g.id).await;
    }
}

pub async fn ban_racing_join_and_approve_never_leaves_a_banned_member(s: DynStore) {
    let owner = user(&s, "sheriff").await;
    let u = user(&s, "outlaw").await;
    for round in 0..RACE_ROUNDS {
        // Open group: the join races the ban.
        let g = group(&s, &owner, Visibility::Open, 10).await;
        let jobs = vec![
            exec_job(&s, g.id, &u, Command::Join),
            exec_job(&s, g.id, &owner, Command::Ban { target: u.id }),
        ];
        let results = all_at_once(jobs).await;
        assert!(results[1].is_ok(), "round {round}: the ban lands");
        let rel = relation(&s, g.id, &u).await;
        assert!(rel.banned && rel.role.is_none(), "round {round}: {rel:?}");
        assert_consistent(&s, g.id).await;

        // Private group: the approval races the ban.
        let g = group(&s, &owner, Visibility::Private, 10).await;
        ok(exec(&s, g.id, &u, Command::Join).await);
        let jobs = vec![
            exec_job(&s, g.id, &owner, Command::Approve { target: u.id }),
            exec_job(&s, g.id, &owner, Command::Ban { target: u.id }),
        ];
        let results = all_at_once(jobs).await;
        assert!(results[1].is_ok(), "round {round}: the ban lands");
        if let Err(e) = &results[0] {
            assert_eq!(e.code(), "not_found", "round {round}");
        }
        let rel = relation(&s, g.id, &u).await;
        assert!(
            rel.banned && rel.role.is_none() && !rel.pending,
            "round {round}: {rel:?}"
        );
        assert_consistent(&s, g.id).await;
    }
}

pub async fn transfer_racing_leaves_keeps_exactly_one_owner(s: DynStore) {
    let owner = user(&s, "old_king").await;
    let heir = user(&s, "prince").await;
    let bystander = user(&s, "subject").await;
    for round in 0..RACE_ROUNDS {
        let with_bystander = round % 2 == 0;
        let g = group(&s, &owner, Visibility::Open, 10).await;
        ok(exec(&s, g.id, &heir, Command::Join).await);
        if with_bystander {
            ok(exec(&s, g.id, &bystander, Command::Join).await);
        }
        let jobs = vec![
            exec_job(
                &s,
                g.id,
                &owner,
                Command::TransferOwnership { target: heir.id },
            ),
            exec_job(&s, g.id, &owner, Command::Leave),
            exec_job(&s, g.id, &heir, Command::Leave),
        ];
        let results = all_at_once(jobs).await;
        for r in &results {
            if let Err(e) = r {
                assert!(
                    [
                        "owner_must_transfer",
                        "not_found",
                        "forbidden",
                        "validation_failed"
                    ]
                    .contains(&e.code()),
                    "round {round}: {e:?}"
                );
            }
        }
        match s.group(g.id).await.unwrap() {
            Some(_) => assert_consistent(&s, g.id).await,
            None => {
                assert!(
                    !with_bystander,
                    "round {round}: deleted with a member inside"
                );
                assert!(
                    results[1].is_ok() && results[2].is_ok(),
                    "round {round}: deleted though not all left"
                );
            }
        }
    }
}

pub async fn concurrent_appends_get_contiguous_seq(s: DynStore) {
    let u = user(&s, "flooder").await;
    let g = group(&s, &u, Visibility::Open, 10).await;
    let h = group(&s, &u, Visibility::Open, 10).await;
    let mut jobs: Vec<Job<Vec<Appended>>> = Vec::new();
    let mut sent = BTreeSet::new();
    for i in 0..16 {
        let batch: Vec<_> = (0..5)
            .map(|k| {
                message(
                    if (i + k) % 3 == 0 { h.id } else { g.id },
                    &u,
                    format!("{i}-{k}").as_bytes(),
                    None,
                )
            })
            .collect();
        sent.extend(batch.iter().map(|m| m.id));
        let s = s.clone();
        jobs.push(Box::pin(
            async move { s.append_messages(&batch).await.unwrap() },
        ));
    }
    let results = all_at_once(jobs).await;
    let mut stored_ids = BTreeSet::new();
    for r in results.iter().flatten() {
        assert!(stored_ids.insert(stored(r).id));
    }
    assert_eq!(stored_ids, sent);
    for grp in [g.id, h.id] {
        let all = s
            .messages(
                grp,
                &HistoryQuery {
                    after_seq: Some(0),
                    before_seq: None,
                    limit: 100,
                },
            )
            .await
            .unwrap();
        let seqs: Vec<_> = all.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=all.len() as u64).collect::<Vec<_>>(),
            "seq 1..N, no gaps or repeats"
        );
    }
}

pub async fn concurrent_appends_of_one_client_msg_id_store_it_once(s: DynStore) {
    let u = user(&s, "double_clicker").await;
    let g = group(&s, &u, Visibility::Open, 10).await;
    for round in 0..RACE_ROUNDS {
        let cmid = format!("click-{round}");
        let (results, fresh) =
            append_copies_at_once(&s, || message(g.id, &u, b"once", Some(&cmid))).await;
        assert_eq!(fresh.len(), 1, "round {round}: stored once: {results:?}");
        let the_one = fresh[0].clone();
        assert_eq!(
            the_one.seq,
            round as u64 + 1,
            "round {round}: no seq consumed by the copies"
        );
        for r in &results {
            assert_eq!(
                r.message(),
                Some(&the_one),
                "round {round}: everyone gets the stored one"
            );
        }
    }
    let all = history(&s, g.id, Some(0), None, 100).await;
    assert_eq!(all, (1..=RACE_ROUNDS as u64).collect::<Vec<_>>());
}

/// What the send path hands the store: a client-keyed message's id is derived from the key, so
/// every retry carries the same id (the MongoDB engine then dedups by id alone). Stored once in
/// one batch, across batches and from concurrent appends; a retry consumes no seq.
pub async fn retries_carrying_the_id_derived_from_the_client_key_are_stored_once(s: DynStore) {
    let u = user(&s, "keyed_retrier").await;
    let g = group(&s, &u, Visibility::Open, 10).await;
    let keyed = |body: &[u8], cmid: &str| {
        let mut m = message(g.id, &u, body, Some(cmid));
        m.id = MessageId::for_client_key(g.id, u.id, cmid);
        m
    };
    let out = s
        .append_messages(&[keyed(b"first", "k1"), keyed(b"first (retry)", "k1")])
        .await
        .unwrap();
    let original = stored(&out[0]).clone();
    assert_eq!(original.seq, 1);
    assert_eq!(duplicate(&out[1]), &original);
    let later = append_one(&s, keyed(b"first (later retry)", "k1")).await;
    assert_eq!(duplicate(&later), &original);

    let (results, fresh) = append_copies_at_once(&s, || keyed(b"second", "k2")).await;
    assert_eq!(fresh.len(), 1, "stored once: {results:?}");
    assert_eq!(fresh[0].seq, 2, "no seq consumed by the retries");
    assert_eq!(history(&s, g.id, Some(0), None, 10).await, vec![1, 2]);
}

pub async fn history_positions_beyond_i64_do_not_wrap(s: DynStore) {
    let (_, g, _) = group_with_messages(&s, 5).await;
    for huge in [u64::MAX, i64::MAX as u64 + 1, i64::MAX as u64] {
        assert!(
            history(&s, g.id, Some(huge), None, 10).await.is_empty(),
            "nothing is after {huge}"
        );
        assert_eq!(
            history(&s, g.id, None, Some(huge), 2).await,
            vec![4, 5],
            "everything is before {huge}"
        );
        assert_eq!(history(&s, g.id, Some(3), Some(huge), 10).await, vec![4, 5]);
    }
}

// --- maintenance (the re-encryption job)

pub async fn scan_messages_pages_every_group_once_in_order(s: DynStore) {
    let owner = user(&s, "scanner").await;
    let mut expected = Vec::new();
    for (i, n) in [3u64, 0, 5, 1].into_iter().enumerate() {
        let g = group(&s, &owner, Visibility::Open, 10).await;
        let batch: Vec<_> = (0..n)
            .map(|k| message(g.id, &owner, format!("g{i}m{k}").as_bytes(), None))
            .collect();
        s.append_messages(&batch).await.unwrap();
        expected.extend((1..=n).map(|seq| (g.id.to_string(), seq)));
    }
    expected.sort();
    for page in [1u32, 2, 4, 100] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let got = s.scan_messages(after, page).await.expect("scan");
            assert!(got.len() <= page as usize, "a page holds at most its limit");
            let Some(last) = got.last() else { break };
            after = Some((last.group_id, last.seq));
            seen.extend(got.iter().map(|m| (m.group_id.to_string(), m.seq)));
        }
        assert_eq!(seen, expected, "pages of {page}");
    }
}

pub async fn replace_envelope_is_compare_and_set(s: DynStore) {
    let (owner, g, msgs) = group_with_messages(&s, 2).await;
    let m = &msgs[1];
    assert!(
        s.replace_envelope(g.id, m.seq, &m.envelope, b"second envelope")
            .await
            .unwrap()
    );
    // The envelope it read is gone now: a second writer holding the old one loses.
    assert!(
        !s.replace_envelope(g.id, m.seq, &m.envelope, b"stale writer")
            .await
            .unwrap()
    );
    assert!(
        !s.replace_envelope(g.id, 99, &m.envelope, b"no such message")
            .await
            .unwrap()
    );
    let all = s
        .messages(
            g.id,
            &HistoryQuery {
                after_seq: Some(0),
                before_seq: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].envelope, msgs[0].envelope,
        "the other message is untouched"
    );
    assert_eq!(all[1].envelope, b"second envelope");
    assert_eq!((all[1].id, all[1].sender_id), (m.id, owner.id));
}

// -------------------------------------------------------------------------------------------
// Audit trail
// -------------------------------------------------------------------------------------------

fn audit_event(kind: AuditKind, group: Option<GroupId>, at: OffsetDateTime) -> AuditEvent {
    let mut e = AuditEvent::new(kind)
        .actor(UserId::new())
        .target(Some(UserId::new()))
        .client(Some("203.0.113.7".parse().unwrap()));
    e.group = group;
    e.at = at;
    e
}

async fn audit_of(s: &DynStore, g: GroupId, size: u32) -> Vec<AuditEvent> {
    let s = s.clone();
    all_pages(size, move |c| {
        let s = s.clone();
        async move { s.audit_of_group(g, limit(size), c.as_ref()).await }
    })
    .await
}

pub async fn audit_events_are_listed_per_group_oldest_first_with_all_fields(s: DynStore) {
    let (a, b) = (GroupId::new(), GroupId::new());
    let t0 = domain::now();
    let kinds = [
        AuditKind::JoinApproved,
        AuditKind::MemberBanned,
        AuditKind::MemberUnbanned,
        AuditKind::OwnershipTransferred,
        AuditKind::GroupDeleted,
    ];
    // Written newest first across two batches, with other groups' and account events mixed in.
    let mut of_a: Vec<AuditEvent> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| audit_event(*k, Some(a), t0 + secs(i as i64)))
        .collect();
    let mut login = audit_event(AuditKind::LoginFailed, None, t0);
    login.actor = None;
    login.client = None;
    let other = audit_event(AuditKind::MemberRemoved, Some(b), t0);
    let mut batch1: Vec<AuditEvent> = of_a[2..].iter().rev().cloned().collect();
    batch1.push(login);
    let mut batch2: Vec<AuditEvent> = of_a[..2].iter().rev().cloned().collect();
    batch2.push(other.clone());
    s.append_audit(&batch1).await.expect("append audit");
    s.append_audit(&batch2).await.expect("append audit");
    s.append_audit(&[]).await.expect("an empty batch is fine");

    for size in [1, 2, 5, 100] {
        let got = audit_of(&s, a, size).await;
        assert_eq!(
            got, of_a,
            "page size {size}: group a's events, oldest first, all fields"
        );
    }
    assert_eq!(audit_of(&s, b, 10).await, vec![other]);
    assert!(audit_of(&s, GroupId::new(), 10).await.is_empty());
    // A missing optional field comes back missing.
    let mut bare = audit_event(AuditKind::JoinRejected, Some(a), t0 + secs(10));
    bare.target = None;
    bare.client = None;
    s.append_audit(std::slice::from_ref(&bare)).await.unwrap();
    of_a.push(bare);
    assert_eq!(audit_of(&s, a, 3).await, of_a);
}

pub async fn audit_listing_pages_once_each_even_with_equal_times(s: DynStore) {
    let g = GroupId::new();
    let t = domain::now();
    let events: Vec<AuditEvent> = (0..7)
        .map(|_| audit_event(AuditKind::MemberBanned, Some(g), t))
        .collect();
    s.append_audit(&events).await.unwrap();
    let mut by_id = events.clone();
    by_id.sort_by_key(|e| e.id);
    for size in [1, 2, 3, 7, 100] {
        let got = audit_of(&s, g, size).await;
        assert_eq!(got, by_id, "page size {size}: each event once, in id order");
    }
    let bogus = Cursor::from_key("not-a-key");
    refused(
        s.audit_of_group(g, limit(2), Some(&bogus)).await,
        "validation_failed",
    );
}

pub async fn audit_batch_written_twice_is_stored_once(s: DynStore) {
    let g = GroupId::new();
    let t = domain::now();
    let events: Vec<AuditEvent> = (0..3)
        .map(|i| audit_event(AuditKind::MemberRemoved, Some(g), t + secs(i)))
        .collect();
    s.append_audit(&events[..2]).await.unwrap();
    // A retry of a batch that was partly or wholly stored stores each event once.
    s.append_audit(&events).await.unwrap();
    assert_eq!(audit_of(&s, g, 10).await, events);
}
