use crate::common::{TestApp, assert_problem};
use serde_json::json;

#[tokio::test]
async fn register_login_create_send_read() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let g = app.group(&alice, "private").await;
    app.send(&g, &alice, "hello").await;
    let (s, page) = app
        .get(&format!("/groups/{g}/messages"), &alice.token)
        .await;
    assert_eq!(s, 200);
    assert_eq!(page["items"][0]["content"], "hello");
    assert_eq!(page["items"][0]["seq"], 1);
    assert_problem(
        &app.post("/groups", "bad-token", json!({})).await,
        401,
        "unauthenticated",
    );
}

#[tokio::test]
async fn wrong_method_and_unknown_path_are_problems() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let got = app
        .call(
            reqwest::Method::PUT,
            "/groups",
            Some(&alice.token),
            Some(json!({})),
        )
        .await;
    assert_problem(&got, 405, "method_not_allowed");
    let got = app.get("/no-such-thing", &alice.token).await;
    assert_problem(&got, 404, "not_found");
}

/// Behind a trusted ingress the login limit per address keys on the hop the ingress appended;
/// a client cannot dodge it by forging earlier `X-Forwarded-For` entries.
#[tokio::test]
async fn forged_forwarded_for_entries_do_not_dodge_the_address_limit() {
    let app = TestApp::spawn_with(&[
        ("CONCLAVE_TRUST_FORWARDED_FOR", "true"),
        ("CONCLAVE_LOGIN_MAX_PER_ADDRESS", "2"),
    ])
    .await;
    let login = |xff: &'static str, n: u32| {
        let req = app
            .client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"username": format!("nobody{n}"), "password": "whatever-password"}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(login("1.1.1.1, 203.0.113.7", 1).await, 401);
    assert_eq!(login("2.2.2.2, 203.0.113.7", 2).await, 401);
    assert_eq!(
        login("3.3.3.3, 203.0.113.7", 3).await,
        429,
        "same last hop, same budget"
    );
    assert_eq!(
        login("1.1.1.1, 198.51.100.9", 4).await,
        401,
        "another client has its own budget"
    );
}
