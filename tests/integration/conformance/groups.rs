//! Groups: creation, lookup, access, listings and their paging, a user's groups, and the
//! member, join-request and ban listings.

use super::*;

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
// Member, request and ban listings
// -------------------------------------------------------------------------------------------

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
