//! Messages: appending (seq, batches, duplicates, client ids) and reading history.

use super::*;

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

/// Membership is checked where a message is stored: a sender banned, removed or gone since the
/// send was accepted (on whichever process) gets nothing stored and consumes no `seq`; their
/// messages stored before stay, and a retry of one of those still finds it. Within one batch,
/// members' messages around a refused one are stored.
pub async fn append_from_a_sender_who_is_no_longer_a_member_is_refused(s: DynStore) {
    let owner = user(&s, "moderator").await;
    let g = group(&s, &owner, Visibility::Private, 10).await;
    let mut gone = Vec::new();
    for name in ["banned", "removed", "leaver"] {
        let u = user(&s, name).await;
        ok(exec(&s, g.id, &u, Command::Join).await);
        ok(exec(&s, g.id, &owner, Command::Approve { target: u.id }).await);
        gone.push(u);
    }
    let earlier = message(g.id, &gone[0], b"while a member", Some("e"));
    assert_eq!(stored(&append_one(&s, earlier.clone()).await).seq, 1);
    ok(exec(&s, g.id, &owner, Command::Ban { target: gone[0].id }).await);
    ok(exec(&s, g.id, &owner, Command::Remove { target: gone[1].id }).await);
    ok(exec(&s, g.id, &gone[2], Command::Leave).await);
    let stranger = user(&s, "stranger").await;

    let mut batch = vec![message(g.id, &owner, b"first", None)];
    for u in gone.iter().chain([&stranger]) {
        batch.push(message(g.id, u, b"too late", Some("late")));
    }
    batch.push(message(g.id, &owner, b"second", None));
    // A retry of the banned user's earlier message: still the stored one.
    batch.push(earlier.clone());
    let out = s.append_messages(&batch).await.unwrap();
    assert_eq!(stored(&out[0]).seq, 2);
    for r in &out[1..5] {
        assert_eq!(*r, Appended::NotMember);
        assert_eq!(r.message(), None);
    }
    assert_eq!(stored(&out[5]).seq, 3, "a refused message consumes no seq");
    assert_eq!(duplicate(&out[6]).id, earlier.id);
    assert_eq!(history(&s, g.id, Some(0), None, 10).await, vec![1, 2, 3]);
    assert_eq!(
        s.message_id_for_client_id(g.id, gone[0].id, "late")
            .await
            .unwrap(),
        None
    );
    // Back in the group (after the private group's cooldown), the same user can send again.
    let later = domain::now() + COOLDOWN + secs(1);
    ok(exec_at(&s, g.id, &gone[2], Command::Join, later).await);
    ok(exec_at(
        &s,
        g.id,
        &owner,
        Command::Approve { target: gone[2].id },
        later,
    )
    .await);
    let again = append_one(&s, message(g.id, &gone[2], b"back", None)).await;
    assert_eq!(stored(&again).seq, 4);
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
