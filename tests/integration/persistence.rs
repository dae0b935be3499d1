//! The standalone engine "must still lose nothing across a restart" (docs/architecture.md), and content is
//! "stored only encrypted" (docs/api.md). These tests stop and restart the real server on the same
//! data directory, and look at the raw files it leaves behind.

use std::path::Path;

use crate::common::{TestApp, TestUser, assert_problem, unique};
use conclave::crypto::Keyring;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn group_with(app: &TestApp, owner: &TestUser, name: &str, visibility: &str) -> String {
    let (s, g) = app
        .post(
            "/groups",
            &owner.token,
            json!({"name": name, "visibility": visibility}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    g["id"].as_str().unwrap().to_owned()
}

async fn ok_get(app: &TestApp, path: &str, token: &str) -> Value {
    let (s, b) = app.get(path, token).await;
    assert_eq!(s, StatusCode::OK, "GET {path}: {b}");
    b
}

async fn history(app: &TestApp, g: &str, reader: &TestUser) -> Vec<Value> {
    ok_get(
        app,
        &format!("/groups/{g}/messages?after_seq=0&limit=100"),
        &reader.token,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn contents(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every file under `dir` with its bytes. SQLite deletes its `-wal` and `-shm` files when the
/// last connection closes, which can happen just after the server has stopped: when a listed
/// file is gone by the time it is read, the directory is listed and read again.
fn read_files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    for _ in 0..50 {
        let read: std::io::Result<Vec<_>> = files_under(dir)
            .into_iter()
            .map(|f| std::fs::read(&f).map(|bytes| (f, bytes)))
            .collect();
        match read {
            Ok(files) => return files,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("reading {}: {e}", dir.display()),
        }
    }
    panic!("files under {} kept disappearing", dir.display());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Message envelopes as stored, by seq, read straight from the database file.
fn envelopes(app: &TestApp, g: &str) -> Vec<(i64, String, Vec<u8>)> {
    let db = rusqlite::Connection::open(app.db_path()).unwrap();
    let mut st = db
        .prepare("SELECT seq, id, envelope FROM messages WHERE group_id = ?1 ORDER BY seq")
        .unwrap();
    st.query_map([g], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn set_envelope(app: &TestApp, message_id: &str, envelope: &[u8]) {
    let db = rusqlite::Connection::open(app.db_path()).unwrap();
    let n = db
        .execute(
            "UPDATE messages SET envelope = ?1 WHERE id = ?2",
            rusqlite::params![envelope, message_id],
        )
        .unwrap();
    assert_eq!(n, 1, "the message row exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_nothing() {
    let mut app = TestApp::spawn().await;
    let alice = app.user().await; // owner
    let bob = app.user().await; // member
    let carol = app.user().await; // pending request
    let dave = app.user().await; // banned
    let erin = app.user().await; // removed: cooldown
    let g = group_with(&app, &alice, &unique("Persistent "), "private").await;
    let open = group_with(&app, &bob, &unique("Open "), "open").await;
    app.add_member(&g, &alice, &bob).await;
    app.add_member(&g, &alice, &erin).await;
    app.add_member(&open, &bob, &alice).await;
    let (s, _) = app
        .post(&format!("/groups/{g}/join"), &carol.token, json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, b) = app
        .post(
            &format!("/groups/{g}/bans"),
            &alice.token,
            json!({"user_id": dave.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .delete(&format!("/groups/{g}/members/{}", erin.id), &alice.token)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    app.send(&g, &alice, "first words").await;
    app.send(&g, &bob, "second words").await;
    let (s, sent) = app
        .post(
            &format!("/groups/{g}/messages"),
            &bob.token,
            json!({"content": "idempotent", "client_msg_id": "bob-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    app.send(&open, &bob, "in the open").await;

    let group_before = ok_get(&app, &format!("/groups/{g}"), &alice.token).await;
    let members_before = ok_get(&app, &format!("/groups/{g}/members"), &alice.token).await;
    let requests_before = ok_get(&app, &format!("/groups/{g}/join-requests"), &alice.token).await;
    let bans_before = ok_get(&app, &format!("/groups/{g}/bans"), &alice.token).await;
    let mine_before = ok_get(&app, "/groups/mine", &bob.token).await;
    let history_before = history(&app, &g, &bob).await;
    assert_eq!(history_before.len(), 3);

    app.restart().await;

    // Accounts: log in with the password; the old access token (signed with the secret kept in
    // the data dir) and the old refresh token still work.
    let (s, b) = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": alice.username, "password": alice.password})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "login after restart: {b}");
    let me = ok_get(&app, "/users/me", &bob.token).await;
    assert_eq!(me["id"], bob.id.as_str());
    let (s, b) = app
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": carol.refresh})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "refresh after restart: {b}");
    // Wrong passwords are still wrong.
    let bad = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": alice.username, "password": "not-the-password"})),
        )
        .await;
    assert_problem(&bad, 401, "invalid_credentials");

    // Groups and everything around them.
    assert_eq!(
        ok_get(&app, &format!("/groups/{g}"), &alice.token).await,
        group_before
    );
    assert_eq!(
        ok_get(&app, &format!("/groups/{g}/members"), &alice.token).await,
        members_before
    );
    assert_eq!(
        ok_get(&app, &format!("/groups/{g}/join-requests"), &alice.token).await,
        requests_before
    );
    assert_eq!(
        ok_get(&app, &format!("/groups/{g}/bans"), &alice.token).await,
        bans_before
    );
    assert_eq!(ok_get(&app, "/groups/mine", &bob.token).await, mine_before);
    assert_eq!(requests_before["items"][0]["user_id"], carol.id.as_str());
    assert_eq!(bans_before["items"][0]["user_id"], dave.id.as_str());
    assert_eq!(group_before["member_count"], 2);

    // The rules still bite: the ban, the pending request, the cooldown.
    assert_problem(
        &app.post(&format!("/groups/{g}/join"), &dave.token, json!({}))
            .await,
        403,
        "banned",
    );
    assert_problem(
        &app.post(&format!("/groups/{g}/join"), &carol.token, json!({}))
            .await,
        409,
        "request_pending",
    );
    let cooled = app
        .post(&format!("/groups/{g}/join"), &erin.token, json!({}))
        .await;
    assert_problem(&cooled, 403, "cooldown_active");
    assert!(cooled.1["retry_after"].as_u64().unwrap() > 47 * 3600);
    assert_problem(
        &app.post(&format!("/groups/{g}/leave"), &alice.token, json!({}))
            .await,
        409,
        "owner_must_transfer",
    );

    // Messages are all there, readable, and seq continues.
    assert_eq!(history(&app, &g, &bob).await, history_before);
    assert_eq!(
        contents(&history_before),
        ["first words", "second words", "idempotent"]
    );
    let (s, again) = app
        .post(
            &format!("/groups/{g}/messages"),
            &bob.token,
            json!({"content": "idempotent", "client_msg_id": "bob-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(
        again["id"], sent["id"],
        "the idempotency key outlives the restart"
    );
    app.send(&g, &alice, "after the restart").await;
    let after = history(&app, &g, &bob).await;
    assert_eq!(
        after
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(after[3]["content"], "after the restart");
    app.send(&open, &alice, "open again").await;
    let open_msgs = history(&app, &open, &bob).await;
    assert_eq!(contents(&open_msgs), ["in the open", "open again"]);
    assert_eq!(open_msgs[1]["seq"], 2);

    // And a second restart after writing on the first still holds it all.
    app.restart().await;
    assert_eq!(history(&app, &g, &alice).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_plaintext_never_reaches_the_disk() {
    let mut app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let group_name = unique("Findable group name ");
    let g = group_with(&app, &alice, &group_name, "open").await;
    app.add_member(&g, &alice, &bob).await;
    let secrets: Vec<String> = vec![
        format!("zebra-quartz-{}", unique("s")),
        format!("the launch code is {}", unique("c")),
        format!("{}{}", "long secret paragraph ".repeat(150), unique("l")),
        format!("ünïcödé sécret {} ✓", unique("u")),
    ];
    for (i, text) in secrets.iter().enumerate() {
        let who = if i % 2 == 0 { &alice } else { &bob };
        app.send(&g, who, text).await;
    }
    assert_eq!(
        contents(&history(&app, &g, &alice).await),
        secrets,
        "the server does have them"
    );
    app.stop().await;

    let files = read_files_under(app.data_dir.path());
    assert!(
        files.iter().any(|(f, _)| f.ends_with("conclave.db")),
        "{:?}",
        files.iter().map(|(f, _)| f).collect::<Vec<_>>()
    );
    let mut name_seen = false;
    for (f, bytes) in &files {
        name_seen |= contains(bytes, group_name.as_bytes());
        for text in &secrets {
            // A distinctive slice is enough: no 16 consecutive bytes of any message may appear.
            let b = text.as_bytes();
            for probe in [&b[..16], &b[b.len() - 16..]] {
                assert!(
                    !contains(bytes, probe),
                    "{} holds message plaintext {:?}",
                    f.display(),
                    String::from_utf8_lossy(probe)
                );
            }
        }
    }
    // The scan does see what is stored in clear (group names are public metadata).
    assert!(
        name_seen,
        "the scan found the group name nowhere, so it proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_envelope_is_an_error_never_wrong_content() {
    let mut app = TestApp::spawn().await;
    let alice = app.user().await;
    // One group per kind of damage, one message in each, plus an untouched group.
    let kinds = ["version", "key id", "iv", "ciphertext", "mac", "swapped"];
    let mut groups = Vec::new();
    for kind in kinds {
        let g = group_with(&app, &alice, &unique(&format!("tamper {kind} ")), "private").await;
        app.send(
            &g,
            &alice,
            &format!("original content for {kind}, long enough to span blocks"),
        )
        .await;
        groups.push(g);
    }
    let swapped = groups[5].clone();
    app.send(&swapped, &alice, "a second message in the swapped group")
        .await;
    let untouched = group_with(&app, &alice, &unique("untouched "), "private").await;
    app.send(&untouched, &alice, "still fine").await;
    app.stop().await;

    for (kind, g) in kinds.iter().zip(&groups) {
        let rows = envelopes(&app, g);
        let (_, id, env) = rows[0].clone();
        let key_id = Keyring::envelope_key_id(&env).unwrap().to_owned();
        let header = 2 + key_id.len();
        let mut bad = env.clone();
        match *kind {
            "version" => bad[0] ^= 0x01,
            "key id" => bad[2] ^= 0x01,
            "iv" => bad[header + 5] ^= 0x80,
            "ciphertext" => bad[header + 16 + 3] ^= 0x01,
            "mac" => *bad.last_mut().unwrap() ^= 0x01,
            "swapped" => {
                // The second message's (valid) envelope moved onto the first message.
                bad = rows[1].2.clone();
            }
            _ => unreachable!(),
        }
        assert_ne!(bad, env);
        set_envelope(&app, &id, &bad);
    }

    app.restart().await;
    for (kind, g) in kinds.iter().zip(&groups) {
        let got = app
            .get(&format!("/groups/{g}/messages"), &alice.token)
            .await;
        assert_problem(&got, 500, "internal_error");
        let text = got.1.to_string();
        assert!(
            !text.contains("original content") && !text.contains("second message"),
            "{kind}: {text}"
        );
    }
    let ok = history(&app, &untouched, &alice).await;
    assert_eq!(contents(&ok), ["still fine"]);
    // The server still works: new messages in a damaged group are sealed and read fine.
    let g = &groups[3];
    app.send(g, &alice, "fresh").await;
    let fresh = ok_get(
        &app,
        &format!("/groups/{g}/messages?after_seq=1"),
        &alice.token,
    )
    .await;
    assert_eq!(fresh["items"][0]["content"], "fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_keyring_reads_old_messages_and_seals_new_ones_with_the_new_key() {
    let mut app = TestApp::spawn().await;
    let alice = app.user().await;
    let g = group_with(&app, &alice, &unique("rotation "), "private").await;
    app.send(&g, &alice, "sealed with the first key").await;
    app.send(&g, &alice, "also the first key").await;
    app.stop().await;

    let old_spec =
        std::fs::read_to_string(app.data_dir.path().join("secrets").join("encryption_keys"))
            .expect("a standalone server keeps its generated keyring in the data dir");
    let old_spec = old_spec.trim().to_owned();
    assert!(old_spec.starts_with("k1:"), "{old_spec}");
    for (_, _, env) in envelopes(&app, &g) {
        assert_eq!(Keyring::envelope_key_id(&env).unwrap(), "k1");
    }
    let new_spec = Keyring::generate_spec("k2");
    app.restart_with(&[(
        "CONCLAVE_ENCRYPTION_KEYS",
        &format!("{new_spec},{old_spec}"),
    )])
    .await;

    assert_eq!(
        contents(&history(&app, &g, &alice).await),
        ["sealed with the first key", "also the first key"]
    );
    app.send(&g, &alice, "sealed with the second key").await;
    app.stop().await;
    let keys: Vec<_> = envelopes(&app, &g)
        .iter()
        .map(|(seq, _, env)| (*seq, Keyring::envelope_key_id(env).unwrap().to_owned()))
        .collect();
    assert_eq!(
        keys,
        [
            (1, "k1".to_owned()),
            (2, "k1".to_owned()),
            (3, "k2".to_owned())
        ]
    );

    app.restart().await;
    assert_eq!(
        contents(&history(&app, &g, &alice).await),
        [
            "sealed with the first key",
            "also the first key",
            "sealed with the second key"
        ]
    );

    // Without the old key, the old messages cannot be read (so it really was needed) and the
    // server says so instead of returning something else.
    app.restart_with(&[("CONCLAVE_ENCRYPTION_KEYS", new_spec.as_str())])
        .await;
    assert_problem(
        &app.get(&format!("/groups/{g}/messages"), &alice.token)
            .await,
        500,
        "internal_error",
    );
    let newest = ok_get(
        &app,
        &format!("/groups/{g}/messages?after_seq=2"),
        &alice.token,
    )
    .await;
    assert_eq!(newest["items"][0]["content"], "sealed with the second key");
}

/// The rotation procedure of SECURITY.md end to end: add a key in front, run the re-encryption
/// job (beside the running server), and the old key can go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reencrypt_job_moves_old_messages_so_the_old_key_can_be_removed() {
    let mut app = TestApp::spawn().await;
    let alice = app.user().await;
    let g = group_with(&app, &alice, &unique("rekey "), "private").await;
    let other = group_with(&app, &alice, &unique("rekey other "), "open").await;
    for i in 0..7 {
        app.send(&g, &alice, &format!("old key {i}")).await;
    }
    app.send(&other, &alice, "old key elsewhere").await;
    app.stop().await;
    let old_spec =
        std::fs::read_to_string(app.data_dir.path().join("secrets").join("encryption_keys"))
            .unwrap();
    let new_spec = Keyring::generate_spec("k2");
    let both = format!("{new_spec},{}", old_spec.trim());
    app.restart_with(&[("CONCLAVE_ENCRYPTION_KEYS", both.as_str())])
        .await;
    app.send(&g, &alice, "new key").await;
    let before = history(&app, &g, &alice).await;

    // Small batches, so the job pages through both groups.
    let out = app.run_cli(&["reencrypt", "--batch", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(
        (&report["scanned"], &report["rewritten"], &report["current"]),
        (&json!(9), &json!(8), &json!(1)),
        "{report}"
    );
    // A second run finds nothing left to do.
    let again: Value = serde_json::from_slice(&app.run_cli(&["reencrypt"]).stdout).unwrap();
    assert_eq!(
        (&again["rewritten"], &again["current"]),
        (&json!(0), &json!(9))
    );

    assert_eq!(
        history(&app, &g, &alice).await,
        before,
        "same content, ids and seq"
    );
    app.stop().await;
    for gid in [&g, &other] {
        for (_, _, env) in envelopes(&app, gid) {
            assert_eq!(Keyring::envelope_key_id(&env).unwrap(), "k2");
        }
    }
    // Only the new key now: everything is still readable.
    app.restart_with(&[("CONCLAVE_ENCRYPTION_KEYS", new_spec.as_str())])
        .await;
    assert_eq!(history(&app, &g, &alice).await, before);
    assert_eq!(
        contents(&history(&app, &other, &alice).await),
        ["old key elsewhere"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_accepted_while_the_server_stops_are_all_kept() {
    let mut app = TestApp::spawn().await;
    let alice = app.user().await;
    let g = group_with(&app, &alice, &unique("draining "), "open").await;
    app.send(&g, &alice, "before").await;

    // Many senders in flight when the stop begins; some get in, some are turned away.
    let url = app.url(&format!("/groups/{g}/messages"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (client, url, token) = (app.client.clone(), url.clone(), alice.token.clone());
        tasks.spawn(async move {
            let res = client
                .post(&url)
                .bearer_auth(&token)
                .json(
                    &json!({"content": format!("in flight {i}"), "client_msg_id": format!("f{i}")}),
                )
                .send()
                .await;
            match res {
                Ok(r) if r.status() == StatusCode::ACCEPTED => {
                    let b: Value = r.json().await.unwrap();
                    Some((i, b["id"].as_str().unwrap().to_owned()))
                }
                Ok(r) => {
                    let s = r.status();
                    assert!(s.is_server_error(), "message {i}: refused with {s}");
                    None
                }
                Err(_) => None, // the connection was closed: not accepted
            }
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.stop().await;
    let accepted: Vec<(usize, String)> = tasks.join_all().await.into_iter().flatten().collect();

    app.restart().await;
    let msgs = history(&app, &g, &alice).await;
    let seqs: Vec<_> = msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=msgs.len() as u64).collect::<Vec<_>>(),
        "seq stays contiguous"
    );
    for (i, id) in &accepted {
        let m = msgs.iter().find(|m| m["id"] == id.as_str());
        let m = m.unwrap_or_else(|| {
            panic!("message {i} was accepted ({id}) but is gone after the restart")
        });
        assert_eq!(m["content"], format!("in flight {i}"));
    }
    // Whatever was not accepted can be retried safely with its client_msg_id.
    for i in 0..60 {
        let (s, b) = app
            .post(
                &format!("/groups/{g}/messages"),
                &alice.token,
                json!({"content": format!("in flight {i}"), "client_msg_id": format!("f{i}")}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        if let Some((_, id)) = accepted.iter().find(|(k, _)| *k == i) {
            assert_eq!(
                b["id"],
                id.as_str(),
                "a retry of an accepted message keeps its id"
            );
        }
    }
    let msgs = history(&app, &g, &alice).await;
    assert_eq!(msgs.len(), 61, "each message once");
}
