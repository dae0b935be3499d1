//! What every HTTP answer says about itself: request ids a client cannot forge into the logs,
//! headers that keep tokens out of caches and content out of MIME sniffing, and the token
//! scheme read as the RFCs say.

use std::time::Duration;

use reqwest::Client;
use serde_json::json;

use crate::common::{ChildServer, TestApp, unique};

#[tokio::test]
async fn only_well_formed_request_ids_are_kept() {
    let app = TestApp::spawn().await;
    let client = Client::new();
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let good = "req-42.A_b";
    let r = client
        .get(app.url("/healthz"))
        .header("x-request-id", good)
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r).as_deref(), Some(good));
    for forged in [
        "abc def=\"1\" user_id=x",
        "a\"b",
        &"x".repeat(65),
        "id;drop",
    ] {
        let r = client
            .get(app.url("/healthz"))
            .header("x-request-id", forged)
            .send()
            .await
            .unwrap();
        let id = id_of(&r).expect("a request id is always given");
        assert_ne!(id, forged);
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "a fresh id replaces {forged:?}: {id}"
        );
    }
}

#[tokio::test]
async fn token_answers_are_not_stored_and_nothing_is_sniffed() {
    let app = TestApp::spawn().await;
    let client = Client::new();
    let creds = json!({"username": unique("nc"), "password": "a long enough password"});
    for path in ["/auth/register", "/auth/login"] {
        let r = client
            .post(app.url(path))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let refused = client
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": "never-issued"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let docs = client.get(app.url("/api-docs/")).send().await.unwrap();
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = Client::new()
            .get(app.url("/users/me"))
            .header("authorization", format!("{scheme} {}", u.token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let r = Client::new()
        .get(app.url("/users/me"))
        .header("authorization", format!("Basic {}", u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Sends `head` (and what follows it) on a raw connection and returns everything the server
/// answers until it closes the connection or goes quiet for 30 s.
async fn raw_exchange(base: &str, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A client that announces a body and then stops sending it is the client's fault: 408
/// `request_timeout`, not a 503 and a warning about a dependency that feed the 5xx alerts.
#[tokio::test]
async fn a_body_that_never_arrives_is_a_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let p = ChildServer::start(
        dir.path(),
        &[
            ("CONCLAVE_REQUEST_TIMEOUT", "1s"),
            ("CONCLAVE_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let head = "POST /api/v1/auth/login HTTP/1.1\r\nHost: conclave\r\n\
                Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"username\":";
    let answer = raw_exchange(&p.base, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    // A complete request still gets its answer on the same server.
    let r = Client::new()
        .get(format!("{}/healthz", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = p.log();
    assert!(!log.contains("dependency unavailable"), "{log}");
    assert!(
        !log.contains(r#""level":"WARN""#) && !log.contains(r#""level":"ERROR""#),
        "{log}"
    );
}

/// Content-Length and Transfer-Encoding together are the request-smuggling shape (RFC 9112
/// 6.1): the body is read by Transfer-Encoding alone and the connection is closed after the
/// answer, so bytes a front proxy counted differently can never become a second request here.
#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let app = TestApp::spawn().await;
    let smuggled = "GET /api/v1/users/me HTTP/1.1\r\nHost: conclave\r\n\r\n";
    let body = "{\"refresh_token\":\"x\"}";
    let request = format!(
        "POST /api/v1/auth/logout HTTP/1.1\r\nHost: conclave\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n{smuggled}",
        body.len() + 7 + smuggled.len(),
        body.len(),
    );
    let answer = raw_exchange(&app.base, request.as_bytes()).await;
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "one answer only: {answer}"
    );
    assert!(!answer.contains("unauthenticated"), "{answer}");
}
