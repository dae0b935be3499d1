//! Housekeeping: purging what has aged out, preparing the schema, and what the re-encryption
//! job uses (scanning every message, compare-and-set of an envelope).

use super::*;

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
