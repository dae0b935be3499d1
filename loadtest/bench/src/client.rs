//! One Socket.IO client over websocket: connect with auth, answer pings, send `message:send`
//! at a fixed rate while the phase says so, and record every `message:new` of this run.
//!
//! The message content is `lt <micros since start> <sender index> <n>`: plain ASCII, so a
//! delivery is read by a substring search instead of a JSON parse (the generator shares the
//! machine with the server; its own CPU should stay small).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::net;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Phase {
    /// Connected, nobody sends.
    Idle,
    Send,
    /// Senders stop; deliveries still count.
    Drain,
    Stop,
}

/// What all clients share.
pub struct Shared {
    pub t0: Instant,
    /// Messages acknowledged `ok` per client index minus `first` (only senders send).
    pub sent_ok: Vec<AtomicU32>,
    /// The first client index of this process.
    pub first: usize,
    pub send_errors: AtomicU64,
    /// Connected now.
    pub connected: AtomicUsize,
    /// Clients done connecting, successfully or not.
    pub settled: AtomicUsize,
    pub connect_failed: AtomicUsize,
    /// Unique deliveries so far (to see when the last ones have arrived).
    pub delivered: AtomicU64,
    /// Connections closed by the server (or broken) before the end.
    pub dropped: AtomicU64,
    pub errors_printed: AtomicU32,
}

impl Shared {
    fn report(&self, what: impl std::fmt::Display) {
        if self.errors_printed.fetch_add(1, Ordering::Relaxed) < 10 {
            eprintln!("bench: {what}");
        }
    }
}

pub struct Spec {
    pub idx: u32,
    pub target: SocketAddr,
    pub source: IpAddr,
    /// JSON of the CONNECT auth.
    pub auth: String,
    pub group: Arc<str>,
    /// `Some(period)` for a sender.
    pub send_every: Option<Duration>,
    /// Name each message with a `client_msg_id` (as real clients do, for retries).
    pub client_msg_id: bool,
}

/// Unique deliveries from one sender, by its message number.
#[derive(Default)]
pub struct Seen {
    pub sender: u32,
    pub count: u32,
    bits: Vec<u64>,
}

#[derive(Default)]
pub struct Outcome {
    pub connect_us: Option<u32>,
    pub latencies_us: Vec<u32>,
    pub seen: Vec<Seen>,
    pub dups: u64,
    /// Held until the end (not dropped).
    pub held: bool,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

pub async fn run(
    spec: Spec,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    permit: OwnedSemaphorePermit,
) -> Outcome {
    let mut out = Outcome::default();
    let started = Instant::now();
    let ws = tokio::time::timeout(Duration::from_secs(30), connect(&spec)).await;
    drop(permit);
    let mut ws = match ws {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            shared.connect_failed.fetch_add(1, Ordering::Relaxed);
            shared.settled.fetch_add(1, Ordering::Relaxed);
            shared.report(format_args!("client {}: {e}", spec.idx));
            return out;
        }
        Err(_) => {
            shared.connect_failed.fetch_add(1, Ordering::Relaxed);
            shared.settled.fetch_add(1, Ordering::Relaxed);
            shared.report(format_args!("client {}: connect timed out", spec.idx));
            return out;
        }
    };
    out.connect_us = Some(started.elapsed().as_micros() as u32);
    shared.connected.fetch_add(1, Ordering::Relaxed);
    shared.settled.fetch_add(1, Ordering::Relaxed);

    let mut ticker: Option<Interval> = None;
    let mut n: u32 = 0;
    let mut ack: u64 = 0;
    let mut ended_by_us = false;
    loop {
        tokio::select! {
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if text.as_str() == "2" {
                    if ws.send(Message::text("3")).await.is_err() {
                        break;
                    }
                } else if let Some(rest) = text.strip_prefix("42[\"message:new\"") {
                    on_message(&shared, &mut out, rest);
                } else if let Some(rest) = text.strip_prefix("43") {
                    if rest.contains("\"ok\":true") {
                        shared.sent_ok[spec.idx as usize - shared.first].fetch_add(1, Ordering::Relaxed);
                    } else {
                        shared.send_errors.fetch_add(1, Ordering::Relaxed);
                        shared.report(format_args!("client {}: refused: {rest:.200}", spec.idx));
                    }
                } else if text.starts_with('1') || text.starts_with("41") {
                    break;
                }
            }
            changed = phase.changed() => {
                let p = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Stop };
                match (p, spec.send_every) {
                    (Phase::Send, Some(every)) => {
                        // Spread the senders' ticks over the period.
                        let offset = every.mul_f64((spec.idx as f64 * 0.618_034) % 1.0);
                        let mut t = tokio::time::interval_at(Instant::now() + offset, every);
                        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                        ticker = Some(t);
                    }
                    (Phase::Stop, _) => { ended_by_us = true; break; }
                    (Phase::Drain, _) => ticker = None,
                    _ => {}
                }
            }
            _ = tick(&mut ticker) => {
                let t = shared.t0.elapsed().as_micros();
                let cmid = if spec.client_msg_id {
                    format!(r#","client_msg_id":"b{}-{n}""#, spec.idx)
                } else {
                    String::new()
                };
                let frame = format!(
                    r#"42{ack}["message:send",{{"group_id":"{}","content":"lt {t} {} {n}"{cmid}}}]"#,
                    spec.group, spec.idx
                );
                ack += 1;
                n += 1;
                if ws.send(Message::text(frame)).await.is_err() {
                    break;
                }
            }
        }
    }
    if ended_by_us {
        out.held = true;
        let _ = ws.send(Message::text("41")).await;
        let _ = ws.close(None).await;
    } else {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        shared.report(format_args!("client {}: closed by the server", spec.idx));
    }
    shared.connected.fetch_sub(1, Ordering::Relaxed);
    out
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn connect(spec: &Spec) -> Result<Ws, String> {
    let stream = net::connect_from(spec.source, spec.target)
        .await
        .map_err(|e| format!("tcp: {e}"))?;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", spec.target);
    // Small buffers: the generator holds as many sockets as the server.
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(cfg))
        .await
        .map_err(|e| format!("websocket: {e}"))?;
    loop {
        let Some(Ok(m)) = ws.next().await else {
            return Err("closed during handshake".into());
        };
        let Message::Text(t) = m else { continue };
        if t.starts_with("40") {
            return Ok(ws);
        } else if let Some(err) = t.strip_prefix("44") {
            return Err(format!("connect_error {err}"));
        } else if t.starts_with('0') {
            ws.send(Message::text(format!("40{}", spec.auth)))
                .await
                .map_err(|e| e.to_string())?;
        } else if t.as_str() == "2" {
            let _ = ws.send(Message::text("3")).await;
        }
    }
}

/// `rest` follows `42["message:new"`; finds `"content":"lt <t> <sender> <n>"`.
fn on_message(shared: &Shared, out: &mut Outcome, rest: &str) {
    const KEY: &str = "\"content\":\"lt ";
    let Some(at) = rest.find(KEY) else { return };
    let body = &rest[at + KEY.len()..];
    let Some(end) = body.find('"') else { return };
    let mut it = body[..end].split(' ').map(|x| x.parse::<u64>().ok());
    let (Some(Some(t)), Some(Some(from)), Some(Some(n))) = (it.next(), it.next(), it.next()) else {
        return;
    };
    let now = shared.t0.elapsed().as_micros() as u64;
    let (from, n) = (from as u32, n as usize);
    let seen = match out.seen.iter_mut().position(|s| s.sender == from) {
        Some(i) => &mut out.seen[i],
        None => {
            out.seen.push(Seen {
                sender: from,
                ..Seen::default()
            });
            out.seen.last_mut().expect("just pushed")
        }
    };
    let (word, bit) = (n / 64, 1u64 << (n % 64));
    if seen.bits.len() <= word {
        seen.bits.resize(word + 1, 0);
    }
    if seen.bits[word] & bit != 0 {
        out.dups += 1;
        return;
    }
    seen.bits[word] |= bit;
    seen.count += 1;
    shared.delivered.fetch_add(1, Ordering::Relaxed);
    out.latencies_us
        .push(now.saturating_sub(t).min(u32::MAX as u64) as u32);
}
