//! Read markers and unread counts.

use conclave::store::{EntryAction, ReadMark, ReadState};

use super::*;

async fn state(s: &DynStore, u: &UserRecord, g: GroupId) -> ReadState {
    let got = s.read_states(u.id, &[g]).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    got[0]
}

async fn say(s: &DynStore, g: GroupId, u: &UserRecord, n: usize) -> Vec<StoredMessage> {
    let batch: Vec<_> = (0..n).map(|_| message(g, u, b"hi", None)).collect();
    let out = s.append_messages(&batch).await.unwrap();
    out.iter().map(|a| stored(a).clone()).collect()
}

pub async fn a_members_marker_starts_at_the_last_seq_and_moves_only_forward(s: DynStore) {
    let owner = user(&s, "owner").await;
    let late = user(&s, "late").await;
    let stranger = user(&s, "stranger").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    assert_eq!(
        state(&s, &owner, g.id).await.last_read_seq,
        0,
        "an empty group"
    );
    say(&s, g.id, &owner, 3).await;
    ok(exec(&s, g.id, &late, Command::Join).await);
    let st = state(&s, &late, g.id).await;
    assert_eq!((st.last_seq, st.last_read_seq, st.unread_count), (3, 3, 0));

    say(&s, g.id, &owner, 2).await;
    assert_eq!(state(&s, &late, g.id).await.unread_count, 2);
    assert_eq!(
        s.mark_read(g.id, late.id, 4).await.unwrap(),
        ReadMark::Moved
    );
    assert_eq!(
        s.mark_read(g.id, late.id, 2).await.unwrap(),
        ReadMark::NotForward
    );
    assert_eq!(
        s.mark_read(g.id, late.id, 4).await.unwrap(),
        ReadMark::NotForward
    );
    assert_eq!(
        s.mark_read(g.id, late.id, 6).await.unwrap(),
        ReadMark::BeyondLast
    );
    assert_eq!(
        s.mark_read(g.id, stranger.id, 1).await.unwrap(),
        ReadMark::NotMember
    );
    assert_eq!(
        s.mark_read(GroupId::new(), late.id, 1).await.unwrap(),
        ReadMark::NotMember
    );
    let st = state(&s, &late, g.id).await;
    assert_eq!((st.last_seq, st.last_read_seq, st.unread_count), (5, 4, 1));
    assert!(
        s.read_states(stranger.id, &[g.id])
            .await
            .unwrap()
            .is_empty()
    );

    let markers = s.read_markers(g.id).await.unwrap();
    let mut want = vec![(owner.id, 5), (late.id, 4)];
    want.sort();
    let got: Vec<_> = markers
        .iter()
        .map(|m| (m.user_id, m.last_read_seq))
        .collect();
    assert_eq!(
        got, want,
        "every member, the sender's marker at its last message"
    );
}

/// Only others' `text` entries that are not deleted count; sending a message (not an edit or
/// a deletion) moves the sender's marker to it.
pub async fn unread_counts_others_live_messages_after_the_marker(s: DynStore) {
    let owner = user(&s, "owner").await;
    let reader = user(&s, "reader").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &reader, Command::Join).await);
    let theirs = say(&s, g.id, &owner, 3).await;
    let edit = NewMessage {
        action: EntryAction::Edit {
            target: theirs[0].id,
            current: b"e".to_vec(),
        },
        ..message(g.id, &owner, b"e", None)
    };
    let delete = NewMessage {
        action: EntryAction::Delete {
            target: theirs[1].id,
        },
        ..message(g.id, &owner, b"", None)
    };
    s.append_messages(&[edit, delete]).await.unwrap();
    let st = state(&s, &reader, g.id).await;
    assert_eq!(
        (st.last_seq, st.unread_count),
        (5, 2),
        "two live messages; no edit, delete"
    );
    assert_eq!(
        state(&s, &owner, g.id).await.last_read_seq,
        3,
        "an edit moves no marker"
    );

    // The reader answers: their marker moves to their message, past the owner's.
    let mine = say(&s, g.id, &reader, 1).await;
    let st = state(&s, &reader, g.id).await;
    assert_eq!((st.last_read_seq, st.unread_count), (mine[0].seq, 0));
    assert_eq!(state(&s, &owner, g.id).await.unread_count, 1);
}

pub async fn unread_counts_stop_at_the_cap(s: DynStore) {
    let owner = user(&s, "owner").await;
    let reader = user(&s, "reader").await;
    let g = group(&s, &owner, Visibility::Open, 10).await;
    ok(exec(&s, g.id, &reader, Command::Join).await);
    for _ in 0..3 {
        say(&s, g.id, &owner, 350).await;
    }
    let st = state(&s, &reader, g.id).await;
    assert_eq!((st.last_seq, st.unread_count), (1050, 1000));
    assert_eq!(
        s.mark_read(g.id, reader.id, 100).await.unwrap(),
        ReadMark::Moved
    );
    assert_eq!(state(&s, &reader, g.id).await.unread_count, 950);
}
