//! Users and their refresh tokens: creation, lookup, rotation, replay and revocation.

use super::*;

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
