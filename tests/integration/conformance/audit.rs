//! The audit trail: events per group, oldest first, paged, written once.

use super::*;

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
