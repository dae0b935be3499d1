//! What every HTTP answer says about itself: request ids a client cannot forge into the logs,
//! headers that keep tokens out of caches and content out of MIME sniffing, and the token
//! scheme read as the RFCs say.

use reqwest::Client;
use serde_json::json;

use crate::common::{TestApp, unique};

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
