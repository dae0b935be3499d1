mod common;

use common::{TestApp, assert_problem};
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
