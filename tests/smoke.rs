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
