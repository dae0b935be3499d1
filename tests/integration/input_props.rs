//! Property tests over every parser that untrusted input reaches: the validated domain types,
//! the encryption keyring spec and the envelope decoder. Each must answer every input with a
//! value or an error (never a panic), and what it accepts must satisfy its contract.
//!
//! CI runs the default number of cases (256 per property); a longer hunt:
//! `PROPTEST_CASES=200000 cargo test --release --test integration input_props::`.

use std::collections::HashSet;

use conclave::crypto::{EnvelopeError, Keyring};
use conclave::domain::text::refused_char;
use conclave::domain::{
    ClientMsgId, Content, Cursor, Description, GroupId, GroupName, Limit, MaxMembers, MessageId,
    Password, UserId, Username, Visibility,
};
use proptest::prelude::*;

const K1: &str = "000102030405060708090a0b0c0d0e0f";
const K2: &str = "f0e0d0c0b0a090807060504030201000";

fn ring(spec: &str) -> Keyring {
    Keyring::parse(spec).expect("test keyring")
}

/// Text that is mostly near the edges of the rules: ASCII, separators, controls, wide chars.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[a-zA-Z0-9_.\\-]{0,40}",
        prop::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect()),
        (0..max + 8).prop_map(|n| "é".repeat(n)),
        (0..max + 8).prop_map(|n| " ".repeat(n)),
    ]
}

proptest! {
    #[test]
    fn usernames(raw in text(40)) {
        if let Ok(u) = Username::parse(&raw) {
            prop_assert_eq!(u.as_str(), raw.as_str());
            prop_assert!((3..=32).contains(&raw.len()));
            prop_assert!(raw.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
            prop_assert_eq!(u.canonical(), raw.to_ascii_lowercase());
        }
    }

    #[test]
    fn passwords(raw in text(140)) {
        let n = raw.chars().count();
        match Password::parse(&raw) {
            Ok(p) => {
                prop_assert!((8..=128).contains(&n), "{n} chars accepted");
                // Never printed.
                prop_assert_eq!(format!("{p:?}"), "Password(***)");
            }
            Err(e) => {
                prop_assert!(!(8..=128).contains(&n));
                prop_assert_eq!(e.field, "password");
            }
        }
    }

    #[test]
    fn group_names(raw in text(120)) {
        if let Ok(n) = GroupName::parse(&raw) {
            let len = n.as_str().chars().count();
            prop_assert!((1..=100).contains(&len));
            prop_assert_eq!(n.as_str(), raw.trim());
            prop_assert!(!n.as_str().chars().any(char::is_control));
            prop_assert_eq!(refused_char(n.as_str(), false), None);
        }
    }

    #[test]
    fn descriptions(raw in text(1100)) {
        match Description::parse(&raw) {
            Ok(d) => {
                prop_assert!(d.as_str().chars().count() <= 1000);
                prop_assert_eq!(refused_char(d.as_str(), true), None);
            }
            Err(e) => {
                prop_assert_eq!(e.field, "description");
                prop_assert!(raw.chars().count() > 1000 || refused_char(&raw, true).is_some());
            }
        }
    }

    #[test]
    fn max_members(raw in any::<i64>(), limit in 2u32..2_000_000) {
        match MaxMembers::parse(raw, limit) {
            Ok(m) => prop_assert!((2..=limit).contains(&m.get()) && i64::from(m.get()) == raw),
            Err(_) => prop_assert!(raw < 2 || raw > i64::from(limit)),
        }
    }

    #[test]
    fn visibility(raw in text(12)) {
        match Visibility::parse(&raw) {
            Ok(v) => prop_assert_eq!(v.as_str(), raw.as_str()),
            Err(_) => prop_assert!(raw != "open" && raw != "private"),
        }
    }

    #[test]
    fn contents(raw in prop_oneof![text(4200), (4090usize..4200).prop_map(|n| "ü".repeat(n))]) {
        match Content::parse(raw.clone()) {
            Ok(c) => {
                prop_assert!(c.as_str().chars().count() <= 4096);
                prop_assert!(!c.as_str().trim().is_empty());
                prop_assert_eq!(refused_char(c.as_str(), true), None);
                prop_assert_eq!(c.into_string(), raw);
            }
            Err(e) => prop_assert_eq!(e.field, "content"),
        }
    }

    #[test]
    fn client_msg_ids(raw in text(70)) {
        if let Ok(id) = ClientMsgId::parse(&raw) {
            prop_assert!((1..=64).contains(&id.as_str().len()));
            prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn limits(raw in prop::option::of(any::<i64>())) {
        match Limit::parse(raw) {
            Ok(l) => prop_assert!((1..=100).contains(&l.get())),
            Err(e) => prop_assert_eq!(e.field, "limit"),
        }
    }

    #[test]
    fn cursors(raw in text(600), key in ".{0,80}") {
        let _ = Cursor::decode(&raw);
        // What the server issues comes back unchanged.
        let c = Cursor::from_key(&key);
        let back = Cursor::decode(&c.encode()).unwrap();
        prop_assert_eq!(back.key(), key.as_str());
    }

    #[test]
    fn ids(raw in prop_oneof![text(40), "[0-9a-fA-F-]{30,40}"]) {
        let a = raw.parse::<UserId>().map(|u| u.to_string());
        let b = raw.parse::<GroupId>().map(|u| u.to_string());
        let c = raw.parse::<MessageId>().map(|u| u.to_string());
        prop_assert_eq!(a.is_ok(), b.is_ok());
        prop_assert_eq!(b.is_ok(), c.is_ok());
    }

    /// A spec that does not parse never echoes its key material in the error.
    #[test]
    fn keyring_specs(raw in prop_oneof![
        text(100),
        "[a-z0-9:, ]{0,80}",
        ("[a-z0-9_-]{0,34}", "[0-9a-fA-Fg-z]{30,34}").prop_map(|(id, key)| format!("{id}:{key}")),
    ]) {
        match Keyring::parse(&raw) {
            Ok(kr) => prop_assert!(!kr.active_key_id().is_empty()),
            Err(e) => {
                let msg = e.to_string();
                // Key ids may be named (they are not secret); the keys never.
                let keys = raw.split(',').filter_map(|e| e.split_once(':')).map(|(_, k)| k.trim());
                for key in keys.filter(|k| k.len() >= 8) {
                    prop_assert!(!msg.contains(key), "{msg:?} echoes {key:?}");
                }
            }
        }
    }
}

// ---- envelope decoder ------------------------------------------------------------------------

/// Offsets in a sealed envelope with key id `k1`: version, id length, id, IV, ciphertext, MAC.
const IV_AT: usize = 4;
const MAC_LEN: usize = 32;

fn envelope_errors_are_structured(e: &EnvelopeError) -> bool {
    matches!(
        e,
        EnvelopeError::Truncated
            | EnvelopeError::UnsupportedVersion(_)
            | EnvelopeError::MalformedKeyId
            | EnvelopeError::MalformedCiphertext
            | EnvelopeError::UnknownKeyId(_)
            | EnvelopeError::Authentication
    )
}

proptest! {
    /// Any change to a sealed envelope (flipped bits, truncation, extension, a spliced
    /// neighbour) fails to open: never a panic, never a plaintext, never a padding error
    /// (the MAC is checked first, so padding is never an oracle).
    #[test]
    fn tampered_envelopes_never_open(
        pt in prop::collection::vec(any::<u8>(), 0..200),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
        extra in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let kr = ring(&format!("k1:{K1}"));
        let env = kr.seal(&pt, b"aad");
        let mut bad = env.clone();
        for (at, xor) in &edits {
            let i = at.index(bad.len());
            bad[i] ^= xor;
        }
        if let Some(c) = cut {
            bad.truncate(c.index(bad.len()));
        }
        bad.extend_from_slice(&extra);
        if bad != env {
            let e = kr.open(&bad, b"aad").unwrap_err();
            prop_assert!(envelope_errors_are_structured(&e), "{e:?}");
        }
        // Untouched, it opens to exactly what was sealed, and only with its own aad.
        prop_assert_eq!(kr.open(&env, b"aad").unwrap(), pt);
        prop_assert_eq!(kr.open(&env, b"aae").unwrap_err(), EnvelopeError::Authentication);
    }

    /// An envelope relabelled with another key id of the same keyring (the id is under the MAC)
    /// or moved to another message (other aad) does not open.
    #[test]
    fn relabelled_or_moved_envelopes_never_open(
        pt in prop::collection::vec(any::<u8>(), 0..100),
        aad in prop::collection::vec(any::<u8>(), 0..32),
        other_aad in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let kr = ring(&format!("k1:{K1},k2:{K2}"));
        let env = kr.seal(&pt, &aad);
        prop_assert_eq!(Keyring::envelope_key_id(&env).unwrap(), "k1");
        let mut relabelled = env.clone();
        relabelled[3] = b'2';
        prop_assert_eq!(kr.open(&relabelled, &aad).unwrap_err(), EnvelopeError::Authentication);
        if other_aad != aad {
            prop_assert_eq!(kr.open(&env, &other_aad).unwrap_err(), EnvelopeError::Authentication);
        }
        // A keyring without k1 names the missing key instead of guessing.
        let rotated_away = ring(&format!("k2:{K2}"));
        prop_assert_eq!(
            rotated_away.open(&env, &aad).unwrap_err(),
            EnvelopeError::UnknownKeyId("k1".into())
        );
    }

    #[test]
    fn arbitrary_bytes_never_open(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let kr = ring(&format!("k1:{K1}"));
        let e = kr.open(&bytes, b"").unwrap_err();
        prop_assert!(envelope_errors_are_structured(&e), "{e:?}");
        let _ = Keyring::envelope_key_id(&bytes);
    }
}

/// Random IVs must never repeat: many seals, from several threads and several keyrings built
/// from the same spec (as every pod of a cluster does), of the same plaintext.
#[test]
fn ivs_are_never_reused_across_threads_and_keyrings() {
    const THREADS: usize = 4;
    const EACH: usize = 25_000;
    let spec = format!("k1:{K1}");
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let kr = ring(&spec);
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|_| {
                        let env = kr.seal(b"the same plaintext", b"the same aad");
                        <[u8; 16]>::try_from(&env[IV_AT..IV_AT + 16]).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = HashSet::with_capacity(THREADS * EACH);
    for h in handles {
        for iv in h.join().unwrap() {
            assert!(seen.insert(iv), "IV {iv:02x?} used twice");
        }
    }
    assert_eq!(seen.len(), THREADS * EACH);
    // And the envelopes are as long as the layout says.
    let env = ring(&spec).seal(&[0u8; 20], b"");
    assert_eq!(env.len(), IV_AT + 16 + 32 + MAC_LEN);
}
