//! The storage conformance suite: what every [`Store`] engine must do, written from the trait's
//! doc comments (src/store/mod.rs) and docs/api.md, not from one engine. Each behaviour is a
//! `pub async fn` taking a fresh, empty store; [`conformance_suite!`] turns them into one
//! `#[tokio::test]` each for an engine:
//!
//! ```ignore
//! // a module of the tests/integration binary, whose main.rs has `mod conformance;`
//! crate::conformance_suite!(my_factory());
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
use conclave::store::{
    Appended, Executed, GroupFilter, GroupRecord, HistoryQuery, NewAccount, NewMessage, Page,
    Policy, Purged, RefreshTokenRecord, Rotation, Store, StoredMessage, TokenHash, UserRecord,
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
            append_from_a_sender_who_is_no_longer_a_member_is_refused,
            history_reads_forwards_after_seq,
            history_reads_backwards_before_seq_and_returns_ascending,
            history_without_bounds_returns_the_newest_page,
            history_is_per_group,
            history_positions_beyond_i64_do_not_wrap,
            envelope_bytes_come_back_byte_identical,
            concurrent_approvals_never_overfill,
            concurrent_joins_never_overfill,
            concurrent_joins_of_one_user_never_exceed_the_groups_per_user_cap,
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
            roles_are_stored_and_moderators_manage_only_plain_members,
            invitations_are_listed_and_accepting_joins_and_consumes_the_request,
            invitation_rules_apply_at_acceptance_and_a_ban_removes_the_invitation,
            invitation_listings_page_once_each_even_with_equal_times,
            deleting_a_group_removes_its_invitations,
            update_settings_changes_the_group_and_respects_the_member_count,
            an_edit_is_an_entry_with_its_own_seq_and_replaces_the_content,
            a_deletion_erases_the_message_and_every_edit_of_it,
            changes_without_a_live_target_are_target_gone,
            changes_apply_in_batch_order_to_targets_of_the_same_batch,
            changes_by_former_members_are_refused_and_redeliveries_are_duplicates,
            an_edit_racing_a_deletion_leaves_no_content,
            a_members_marker_starts_at_the_last_seq_and_moves_only_forward,
            unread_counts_others_live_messages_after_the_marker,
            unread_counts_stop_at_the_cap,
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
        max_groups_per_user: 1_000,
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

/// The invariants docs/api.md promises after every change: `member_count` is the member list's
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
        action: Default::default(),
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

/// `n` users named `<prefix><i>`.
async fn crowd(s: &DynStore, prefix: &str, n: usize) -> Vec<UserRecord> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(user(s, &format!("{prefix}{i}")).await);
    }
    out
}

// The behaviours, by topic; the macro above names each one as `conformance::<name>`.
mod accounts;
mod audit;
mod entries;
mod groups;
mod maintenance;
mod manage;
mod membership;
mod messages;
mod moderation;
mod races;
mod reads;

pub use accounts::*;
pub use audit::*;
pub use entries::*;
pub use groups::*;
pub use maintenance::*;
pub use manage::*;
pub use membership::*;
pub use messages::*;
pub use moderation::*;
pub use races::*;
pub use reads::*;
