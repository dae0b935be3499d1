//! This machine's ceiling for the fan-out benchmark: a websocket room broadcaster on tokio with
//! no framework, speaking just enough Engine.IO v4 / Socket.IO v5 for `loadtest/bench` (and the
//! k6 module) to drive it like Conclave:
//!
//! - any path; the server opens with `0{...}`, answers `40{auth}` with `40{"sid":..}` and joins
//!   the rooms listed in `auth.groups` (no auth check);
//! - `42<id>["message:send",{group_id,content,client_msg_id?}]` is acked `43<id>[{"ok":true,"id":..}]`
//!   and broadcast as `42["message:new",{id,group_id,seq,sender_id,content,sent_at,client_msg_id}]`
//!   to every socket of the room (the sender too), serialized once;
//! - pings `2` every 25 s, expects `3` (not enforced).
//!
//! Env: PORT (3001), HOST (127.0.0.1).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

type Tx = mpsc::UnboundedSender<Utf8Bytes>;

#[derive(Default)]
struct Room {
    members: Vec<(u64, Tx)>,
    seq: u64,
}

#[derive(Default)]
struct Hub {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: AtomicU64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3001".into());
    let listener = TcpListener::bind(format!("{host}:{port}")).await?;
    println!("bare-tokio listening on {}", listener.local_addr()?);
    let hub = Arc::new(Hub::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let hub = hub.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            if let Err(e) = serve(hub, stream).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

async fn serve(hub: Arc<Hub>, stream: TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    // Small buffers: an idle socket should cost little, as in the servers compared with it.
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(cfg)).await?;
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    ws.send(Message::text(format!(
        r#"0{{"sid":"b{id}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
    )))
    .await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let mut joined: Vec<String> = Vec::new();
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(25),
        Duration::from_secs(25),
    );
    let res = loop {
        tokio::select! {
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => break Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break Err(e.into()),
                };
                if let Some(reply) = handle(&hub, id, &tx, &mut joined, &text) {
                    ws.send(Message::text(reply)).await?;
                }
            }
            Some(out) = rx.recv() => {
                ws.feed(Message::Text(out)).await?;
                while let Ok(more) = rx.try_recv() {
                    ws.feed(Message::Text(more)).await?;
                }
                ws.flush().await?;
            }
            _ = ping.tick() => ws.send(Message::text("2")).await?,
        }
    };
    let mut rooms = hub.rooms.lock().unwrap();
    for r in joined {
        if let Some(room) = rooms.get_mut(&r) {
            room.members.retain(|(m, _)| *m != id);
            if room.members.is_empty() {
                rooms.remove(&r);
            }
        }
    }
    res
}

/// One inbound text frame; returns a direct reply.
fn handle(hub: &Hub, id: u64, tx: &Tx, joined: &mut Vec<String>, text: &str) -> Option<String> {
    if let Some(auth) = text.strip_prefix("40") {
        let auth: Value = serde_json::from_str(auth).unwrap_or(Value::Null);
        let groups = auth["groups"].as_array().cloned().unwrap_or_default();
        let mut rooms = hub.rooms.lock().unwrap();
        for g in groups.iter().filter_map(Value::as_str) {
            rooms
                .entry(g.to_owned())
                .or_default()
                .members
                .push((id, tx.clone()));
            joined.push(g.to_owned());
        }
        return Some(format!(r#"40{{"sid":"s{id}"}}"#));
    }
    let rest = text.strip_prefix("42")?;
    let split = rest.find('[')?;
    let (ack, body) = rest.split_at(split);
    let ev: Value = serde_json::from_str(body).ok()?;
    if ev[0] != "message:send" {
        return None;
    }
    let p = &ev[1];
    let group = p["group_id"].as_str()?;
    let msg_id = format!("m{id}-{}", hub.next_id.fetch_add(1, Ordering::Relaxed));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    {
        let mut rooms = hub.rooms.lock().unwrap();
        if let Some(room) = rooms.get_mut(group) {
            room.seq += 1;
            let frame = format!(
                "42{}",
                json!(["message:new", {
                    "id": msg_id, "group_id": group, "seq": room.seq, "sender_id": format!("u{id}"),
                    "content": p["content"], "sent_at": now.as_millis() as u64,
                    "client_msg_id": p["client_msg_id"],
                }])
            );
            // Serialized once; every recipient shares the same bytes.
            let frame = Utf8Bytes::from(frame);
            for (_, m) in &room.members {
                let _ = m.send(frame.clone());
            }
        }
    }
    (!ack.is_empty()).then(|| format!(r#"43{ack}[{{"ok":true,"id":"{msg_id}"}}]"#))
}
