//! Real time over Socket.IO against the real server, with the wire-level client in
//! `common::sio`: token expiry on live sockets (bad tokens at connect: tests/integration/tokens.rs),
//! delivery and its shape, order, catch-up, errors in acks, rate limits, typing, and
//! membership changes on live sockets.
//!
//! Negative checks ("this socket receives nothing") use barriers rather than sleeps where they
//! can: the server emits one broadcast to every socket of a room at once, so once a member has
//! received a message, a round trip on another socket (an ack) flushes anything that socket would
//! have been sent before it.

use std::time::Duration;

use crate::common::sio::{SioClient, SioError};
use crate::common::{TestApp, TestUser};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "realtime-tests-secret-0123456789abcdef";

async fn app() -> TestApp {
    TestApp::spawn_with(&[("CONCLAVE_JWT_SECRET", SECRET)]).await
}

async fn ws(app: &TestApp, user: &TestUser) -> SioClient {
    SioClient::connect(&app.base, &user.token)
        .await
        .unwrap_or_else(|e| panic!("socket for {}: {e}", user.username))
}

/// Sends over the socket; returns the id from the ack.
async fn ws_send(c: &SioClient, group: &str, content: &str) -> String {
    let ack = c
        .emit_with_ack(
            "message:send",
            json!({"group_id": group, "content": content}),
        )
        .await;
    assert_eq!(ack["ok"], true, "send refused: {ack}");
    ack["id"].as_str().expect("id in ack").to_owned()
}

/// A round trip on this socket: anything the server queued for it before is now received.
async fn barrier(c: &SioClient) {
    let ack = c
        .emit_with_ack(
            "group:sync",
            json!({"group_id": "00000000-0000-0000-0000-000000000000", "after_seq": 0}),
        )
        .await;
    assert_eq!(ack["ok"], false, "{ack}");
}

/// Waits for `message:new` with this id (skipping others); returns it.
async fn expect_message(c: &mut SioClient, id: &str) -> Value {
    loop {
        let m = c
            .next_event("message:new", WAIT)
            .await
            .unwrap_or_else(|| panic!("message {id} not delivered"));
        if m["id"] == id {
            return m;
        }
    }
}

/// Every `message:new` of this group received so far.
fn messages_of(c: &mut SioClient, group: &str) -> Vec<Value> {
    let events = c.drain();
    events
        .into_iter()
        .filter(|(n, m)| n == "message:new" && m["group_id"] == group)
        .map(|(_, m)| m)
        .collect()
}

async fn stored(app: &TestApp, group: &str, user: &TestUser) -> Vec<Value> {
    let (s, page) = app
        .get(&format!("/groups/{group}/messages?limit=100"), &user.token)
        .await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn error_code(ack: &Value) -> &str {
    assert_eq!(ack["ok"], false, "expected an error ack, got {ack}");
    assert!(ack["error"]["message"].is_string(), "{ack}");
    ack["error"]["code"].as_str().expect("error code")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

mod connection;
mod delivery;
mod events;
mod manage;
mod membership;
