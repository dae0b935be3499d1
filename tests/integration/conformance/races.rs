//! Concurrency: every change is atomic (docs/api.md, "Rules"), whatever the engine.

use super::*;

// -------------------------------------------------------------------------------------------
// Concurrency: every change is atomic (docs/api.md, "Rules"), whatever the engine.
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

/// The groups-per-user cap holds however many joins one user makes at once: it is checked
/// inside the transaction that adds the member, with the user locked.
pub async fn concurrent_joins_of_one_user_never_exceed_the_groups_per_user_cap(s: DynStore) {
    let owner = user(&s, "many_groups_owner").await;
    let cap = Policy {
        max_groups_per_user: 3,
        ..policy()
    };
    for round in 0..RACE_ROUNDS / 3 {
        let joiner = user(&s, &format!("joiner{round}")).await;
        let mut groups = Vec::new();
        for _ in 0..8 {
            groups.push(group(&s, &owner, Visibility::Open, 10).await.id);
        }
        let jobs: Vec<Job<AppResult<Executed>>> = groups
            .iter()
            .map(|g| {
                let (s, j, g) = (s.clone(), joiner.clone(), *g);
                Box::pin(
                    async move { s.execute(g, j.id, &Command::Join, domain::now(), cap).await },
                ) as Job<_>
            })
            .collect();
        let results = all_at_once(jobs).await;
        let joined = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(joined, 3, "round {round}");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(r.code(), "too_many_groups", "round {round}: {r}");
            assert_eq!(r.status(), 409);
        }
        assert_eq!(s.group_ids_of_user(joiner.id).await.unwrap().len(), 3);
        for g in &groups {
            assert_consistent(&s, *g).await;
        }
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
