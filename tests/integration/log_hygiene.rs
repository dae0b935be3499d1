//! Secrets never reach the logs. The real binary runs a full workload at `RUST_LOG=debug`
//! (accounts, logins good and bad, refresh, logout, groups, join requests, bans, messages over
//! HTTP and Socket.IO, forged tokens, a restart with a rotated keyring), and its whole output is
//! searched for every secret it handled, in every encoding it could appear in: the JWT secrets,
//! the encryption keys (hex either case, base64 either alphabet), passwords, access and refresh
//! tokens (and their signatures), and message plaintext.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TestApp;
use crate::common::sio::{SioClient, SioError};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use reqwest::Method;
use serde_json::json;

/// Starts the binary at debug level, appending its output to `log`.
fn start(data: &Path, log: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONCLAVE_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("CONCLAVE_DATA_DIR", data)
        .env("CONCLAVE_ARGON2_MEMORY_KIB", "64")
        .env("CONCLAVE_ARGON2_ITERATIONS", "1")
        .env("CONCLAVE_SHUTDOWN_GRACE", "1s")
        .env("CONCLAVE_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("conclave starts")
}

async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server not ready at {base}");
}

/// SIGTERM, and wait for the graceful exit (so everything buffered is logged).
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the server did not stop on SIGTERM");
}

/// Every form in which these key bytes could show up.
fn encodings(bytes: &[u8]) -> Vec<String> {
    vec![
        hex::encode(bytes),
        hex::encode_upper(bytes),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        format!("{bytes:?}"),
    ]
}

/// The keys of a keyring spec `id:hex,...`, in every encoding.
fn keyring_secrets(spec: &str) -> Vec<String> {
    spec.split(',')
        .flat_map(|e| {
            let hex_key = e.split_once(':').unwrap().1.trim();
            encodings(&hex::decode(hex_key).unwrap())
        })
        .collect()
}

/// Everything one user's session exposes to the server: password and tokens.
fn user_secrets(u: &common::TestUser) -> Vec<String> {
    let mut s = vec![u.password.clone(), u.token.clone(), u.refresh.clone()];
    s.push(u.token.split('.').nth(2).unwrap().to_owned());
    s
}

#[tokio::test]
async fn no_secret_reaches_the_logs_at_debug_level() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let port = crate::common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut secrets: Vec<String> = Vec::new();

    // Run 1: the standalone default, secrets generated into the data directory.
    let child = start(data.path(), &log, port, &[]);
    wait_ready(&base).await;
    let app = TestApp::attach(&base);
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let (s, _) = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": alice.username, "password": "a wrong password 123"})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, rotated) = app
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": carol.refresh})),
        )
        .await;
    assert_eq!(s, 200);
    let carol_refreshed = common::TestUser {
        token: rotated["access_token"].as_str().unwrap().to_owned(),
        refresh: rotated["refresh_token"].as_str().unwrap().to_owned(),
        ..carol.clone()
    };
    // Reuse of the spent token (revokes the family), then logout.
    let (s, _) = app
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": carol.refresh})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = app
        .call(
            Method::POST,
            "/auth/logout",
            None,
            Some(json!({"refresh_token": bob.refresh})),
        )
        .await;
    assert_eq!(s, 204);

    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;
    let mut contents = Vec::new();
    for i in 0..5 {
        let c = format!("plaintext canary over http {i} {}", uuid_like());
        app.send(&g, &alice, &c).await;
        contents.push(c);
    }
    let a = SioClient::connect(&base, &alice.token).await.unwrap();
    let mut b = SioClient::connect(&base, &bob.token).await.unwrap();
    let c = format!("plaintext canary over socket {}", uuid_like());
    let ack = a
        .emit_with_ack("message:send", json!({"group_id": g, "content": c}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    contents.push(c);
    assert!(
        b.next_event("message:new", Duration::from_secs(10))
            .await
            .is_some()
    );
    a.emit("typing", json!({"group_id": g})).unwrap();
    let ack = b
        .emit_with_ack("group:sync", json!({"group_id": g, "after_seq": 0}))
        .await;
    assert_eq!(ack["ok"], true);
    let (s, _) = app.get(&format!("/groups/{g}/messages"), &bob.token).await;
    assert_eq!(s, 200);
    // Forged tokens over both transports: the refusal reason is logged, the token is not.
    let forged = format!("{}x", alice.token);
    let (s, _) = app.get("/users/me", &forged).await;
    assert_eq!(s, 401);
    assert!(matches!(
        SioClient::connect(&base, &forged).await,
        Err(SioError::Refused(_))
    ));
    secrets.push(forged);
    let (s, _) = app
        .post(
            &format!("/groups/{g}/bans"),
            &alice.token,
            json!({"user_id": bob.id}),
        )
        .await;
    assert_eq!(s, 201);
    a.close().await;
    b.close().await;
    stop(child);

    let read = |name: &str| {
        std::fs::read_to_string(data.path().join("secrets").join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let generated_jwt = read("jwt_secret");
    let generated_keys = read("encryption_keys");
    secrets.push(generated_jwt.clone());
    secrets.extend(keyring_secrets(&generated_keys));
    for u in [&alice, &bob, &carol, &carol_refreshed] {
        secrets.extend(user_secrets(u));
    }

    // Run 2: secrets from the environment, the keyring rotated to a new active key.
    let jwt = "log-hygiene-jwt-secret-0123456789abcdef";
    let new_key = "8899aabbccddeeff0011223344556677";
    let keys = format!("k2:{new_key},{generated_keys}");
    let child = start(
        data.path(),
        &log,
        port,
        &[
            ("CONCLAVE_JWT_SECRET", jwt),
            ("CONCLAVE_ENCRYPTION_KEYS", &keys),
        ],
    );
    wait_ready(&base).await;
    let (s, tok) = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": alice.username, "password": alice.password})),
        )
        .await;
    assert_eq!(s, 200);
    let alice2 = common::TestUser {
        token: tok["access_token"].as_str().unwrap().to_owned(),
        refresh: tok["refresh_token"].as_str().unwrap().to_owned(),
        ..alice.clone()
    };
    // Old messages (key k1) still read; new ones are sealed with k2.
    let (s, page) = app
        .get(&format!("/groups/{g}/messages"), &alice2.token)
        .await;
    assert_eq!(s, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), contents.len());
    let c = format!("plaintext canary after rotation {}", uuid_like());
    app.send(&g, &alice2, &c).await;
    contents.push(c);
    stop(child);

    secrets.push(jwt.to_owned());
    secrets.extend(keyring_secrets(&keys));
    secrets.extend(user_secrets(&alice2));
    secrets.extend(contents);

    let text = std::fs::read_to_string(&log).unwrap();
    // The run was really logged at debug level, requests included.
    assert!(
        text.contains("\"level\":\"DEBUG\""),
        "no debug lines logged"
    );
    assert!(text.contains("/api/v1/auth/login"), "requests not logged");
    let leaks: Vec<_> = secrets
        .iter()
        .filter(|s| s.len() >= 8 && text.contains(s.as_str()))
        .map(|s| {
            let line = text.lines().find(|l| l.contains(s.as_str())).unwrap();
            format!("{s:?} in: {}", &line[..line.len().min(400)])
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "{} secrets in the log ({} lines searched):\n{}",
        leaks.len(),
        text.lines().count(),
        leaks.join("\n")
    );
}

/// Unique enough to find in a log.
fn uuid_like() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
