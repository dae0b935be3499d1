//! Edits and deletions: entries of the log with their own `seq`, applied to their target in
//! the append transaction; a deletion erases content (the envelopes), it does not hide it.

use conclave::domain::EntryKind;
use conclave::store::EntryAction;

use super::*;

fn edit(g: GroupId, by: &UserRecord, target: MessageId, body: &[u8]) -> NewMessage {
    NewMessage {
        action: EntryAction::Edit {
            target,
            current: [b"current:", body].concat(),
        },
        ..message(g, by, body, None)
    }
}

fn delete(g: GroupId, by: &UserRecord, target: MessageId) -> NewMessage {
    NewMessage {
        action: EntryAction::Delete { target },
        ..message(g, by, b"", None)
    }
}

async fn entry(s: &DynStore, g: GroupId, id: MessageId) -> StoredMessage {
    s.entry(g, id).await.unwrap().expect("entry stored")
}

/// A group with a member besides its owner.
async fn pair(s: &DynStore) -> (UserRecord, UserRecord, GroupRecord) {
    let owner = user(s, "owner").await;
    let other = user(s, "other").await;
    let g = group(s, &owner, Visibility::Open, 10).await;
    ok(exec(s, g.id, &other, Command::Join).await);
    (owner, other, g)
}

pub async fn an_edit_is_an_entry_with_its_own_seq_and_replaces_the_content(s: DynStore) {
    let (owner, _, g) = pair(&s).await;
    let text = stored(&append_one(&s, message(g.id, &owner, b"v1", None)).await).clone();
    assert_eq!(text.kind, EntryKind::Text);
    assert_eq!(
        (text.target_id, text.edited_at, text.deleted_at),
        (None, None, None)
    );
    let e = edit(g.id, &owner, text.id, b"v2");
    let got = stored(&append_one(&s, e.clone()).await).clone();
    assert_eq!(got.seq, 2);
    assert_eq!(got.kind, EntryKind::Edit);
    assert_eq!(got.target_id, Some(text.id));
    assert_eq!(got.envelope, b"v2", "the edit keeps its own envelope");

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
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        all[0].envelope, b"current:v2",
        "the message shows its current content"
    );
    assert_eq!(all[0].edited_at, Some(e.sent_at));
    assert_eq!(all[1], got);
    assert_eq!(entry(&s, g.id, text.id).await, all[0]);
    assert_eq!(
        s.entry(GroupId::new(), text.id).await.unwrap(),
        None,
        "per group"
    );
}

pub async fn a_deletion_erases_the_message_and_every_edit_of_it(s: DynStore) {
    let (owner, other, g) = pair(&s).await;
    let text = stored(&append_one(&s, message(g.id, &other, b"secret", None)).await).clone();
    let keep = stored(&append_one(&s, message(g.id, &other, b"kept", None)).await).clone();
    let e1 = stored(&append_one(&s, edit(g.id, &other, text.id, b"secret2")).await).id;
    let e2 = stored(&append_one(&s, edit(g.id, &other, text.id, b"secret3")).await).id;
    // The owner deletes someone else's message (who may is the service's rule).
    let d = delete(g.id, &owner, text.id);
    let del = stored(&append_one(&s, d.clone()).await).clone();
    assert_eq!(
        (del.seq, del.kind, del.target_id),
        (5, EntryKind::Delete, Some(text.id))
    );
    let t = entry(&s, g.id, text.id).await;
    assert!(t.envelope.is_empty(), "the message's content is gone");
    assert_eq!(t.deleted_at, Some(d.sent_at));
    assert!(entry(&s, g.id, e1).await.envelope.is_empty());
    assert!(entry(&s, g.id, e2).await.envelope.is_empty());
    assert!(entry(&s, g.id, del.id).await.envelope.is_empty());
    assert_eq!(
        entry(&s, g.id, keep.id).await.envelope,
        b"kept",
        "others untouched"
    );
    // Nothing of it is left for a scan (the re-encryption job reads everything) either.
    let scanned = s.scan_messages(None, 100).await.unwrap();
    let with_secret = scanned
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.envelope).contains("secret"))
        .count();
    assert_eq!(with_secret, 0);
}

/// Only live `text` entries are targets: an unknown id, an id of another group, an edit or
/// delete entry, a deleted message (also deleted earlier in the same batch). Someone else's
/// message cannot be edited. Nothing is stored and no `seq` is used.
pub async fn changes_without_a_live_target_are_target_gone(s: DynStore) {
    let (owner, other, g) = pair(&s).await;
    let elsewhere = group(&s, &owner, Visibility::Open, 10).await;
    let foreign = stored(&append_one(&s, message(elsewhere.id, &owner, b"x", None)).await).id;
    let text = stored(&append_one(&s, message(g.id, &owner, b"t", None)).await).id;
    let e = stored(&append_one(&s, edit(g.id, &owner, text, b"t2")).await).id;
    let batch = vec![
        edit(g.id, &owner, MessageId::new(), b"?"),
        delete(g.id, &owner, foreign),
        edit(g.id, &owner, e, b"edit of an edit"),
        edit(g.id, &other, text, b"not mine"),
        delete(g.id, &owner, text),
        edit(g.id, &owner, text, b"too late"),
        delete(g.id, &owner, text),
    ];
    let out = s.append_messages(&batch).await.unwrap();
    assert_eq!(stored(&out[4]).seq, 3);
    for i in [0, 1, 2, 3, 5, 6] {
        assert_eq!(out[i], Appended::TargetGone, "entry {i}");
    }
    assert_eq!(history(&s, g.id, Some(0), None, 10).await, [1, 2, 3]);
    let later = append_one(&s, edit(g.id, &owner, text, b"later")).await;
    assert_eq!(later, Appended::TargetGone);
}

/// A target stored earlier in the same batch can be edited and deleted there, in order.
pub async fn changes_apply_in_batch_order_to_targets_of_the_same_batch(s: DynStore) {
    let (owner, _, g) = pair(&s).await;
    let a = message(g.id, &owner, b"a", None);
    let b = message(g.id, &owner, b"b", None);
    let batch = vec![
        a.clone(),
        b.clone(),
        edit(g.id, &owner, a.id, b"a2"),
        edit(g.id, &owner, b.id, b"b2"),
        delete(g.id, &owner, b.id),
        edit(g.id, &owner, a.id, b"a3"),
    ];
    let out = s.append_messages(&batch).await.unwrap();
    let seqs: Vec<_> = out.iter().map(|r| stored(r).seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert_eq!(entry(&s, g.id, a.id).await.envelope, b"current:a3");
    let gone = entry(&s, g.id, b.id).await;
    assert!(gone.envelope.is_empty() && gone.deleted_at.is_some());
    assert!(entry(&s, g.id, batch[3].id).await.envelope.is_empty());
    assert_eq!(entry(&s, g.id, batch[2].id).await.envelope, b"a2");
}

/// Membership is checked where changes are stored, as for messages; a redelivered change is a
/// duplicate, applied once.
pub async fn changes_by_former_members_are_refused_and_redeliveries_are_duplicates(s: DynStore) {
    let (owner, other, g) = pair(&s).await;
    let mine = stored(&append_one(&s, message(g.id, &other, b"m", None)).await).id;
    let e = edit(g.id, &other, mine, b"m2");
    stored(&append_one(&s, e.clone()).await);
    let e_again = append_one(&s, e.clone()).await;
    assert_eq!(duplicate(&e_again).seq, 2);
    ok(exec(&s, g.id, &owner, Command::Remove { target: other.id }).await);
    assert_eq!(
        append_one(&s, edit(g.id, &other, mine, b"m3")).await,
        Appended::NotMember
    );
    assert_eq!(
        append_one(&s, delete(g.id, &other, mine)).await,
        Appended::NotMember
    );
    assert_eq!(entry(&s, g.id, mine).await.envelope, b"current:m2");
    let d = delete(g.id, &owner, mine);
    assert_eq!(stored(&append_one(&s, d.clone()).await).seq, 3);
    assert_eq!(duplicate(&append_one(&s, d).await).seq, 3);
    assert_eq!(history(&s, g.id, Some(0), None, 10).await, [1, 2, 3]);
}

/// An edit racing the deletion of its message (two writers, as two processes would be) never
/// leaves content behind: either the edit came first and was erased with the message, or it
/// came after and was refused.
pub async fn an_edit_racing_a_deletion_leaves_no_content(s: DynStore) {
    let (owner, _, g) = pair(&s).await;
    for round in 0..5 {
        let text = stored(&append_one(&s, message(g.id, &owner, b"racy", None)).await).id;
        let (s1, s2) = (s.clone(), s.clone());
        let (o1, o2) = (owner.clone(), owner.clone());
        let editing = tokio::spawn(async move {
            s1.append_messages(&[edit(g.id, &o1, text, b"late words")])
                .await
                .unwrap()
        });
        let deleting = tokio::spawn(async move {
            s2.append_messages(&[delete(g.id, &o2, text)])
                .await
                .unwrap()
        });
        let (e, d) = (editing.await.unwrap(), deleting.await.unwrap());
        assert!(matches!(d[0], Appended::Stored(_)), "round {round}: {d:?}");
        assert!(
            matches!(e[0], Appended::Stored(_) | Appended::TargetGone),
            "round {round}: {e:?}"
        );
        let all = s
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
        for m in all
            .iter()
            .filter(|m| m.id == text || m.target_id == Some(text))
        {
            assert!(
                m.envelope.is_empty(),
                "round {round}: content left in {m:?}"
            );
        }
    }
}
