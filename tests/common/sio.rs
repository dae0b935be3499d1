//! A small Socket.IO v5 / Engine.IO v4 client over the websocket transport, for tests and the
//! load generator. It speaks the wire format directly:
//!
//! - Engine.IO: `0{open}` from the server, pings `2` answered with `3`, `1` close, `4<payload>`
//!   carries a Socket.IO packet (one packet per websocket frame; no polling, no binary).
//! - Socket.IO on namespace `/`: `0{auth}` CONNECT, answered by `0{"sid":..}` or by
//!   CONNECT_ERROR `4{"message":..}`; `2[name,data]` EVENT, `2<id>[name,data]` EVENT wanting an
//!   ACK, `3<id>[data]` ACK, `1` DISCONNECT.
//!
//! A background task reads frames: acks go to whoever awaits them, events into a channel that
//! [`SioClient::next_event`] reads (events of other names are kept, in order, for later).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;

/// How long [`SioClient::emit_with_ack`] and the connect steps wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SioError {
    /// The server refused the namespace connection: `connect_error` with this message.
    Refused(String),
    /// The websocket could not be opened or broke.
    Transport(String),
    /// The server said something this client does not understand.
    Protocol(String),
    /// No answer in time.
    Timeout,
    /// The connection is closed (by either side).
    Closed,
}

impl std::fmt::Display for SioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SioError::Refused(m) => write!(f, "connect_error: {m}"),
            SioError::Transport(m) => write!(f, "transport: {m}"),
            SioError::Protocol(m) => write!(f, "protocol: {m}"),
            SioError::Timeout => f.write_str("timed out"),
            SioError::Closed => f.write_str("connection closed"),
        }
    }
}

impl std::error::Error for SioError {}

/// How the server ended the connection; the official clients reconnect by themselves after
/// a transport close, but not after a Socket.IO DISCONNECT ("io server disconnect").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// The websocket (or the Engine.IO session) was closed.
    Transport,
    /// A Socket.IO DISCONNECT packet (`41`): "io server disconnect", no automatic reconnect.
    ServerDisconnect,
}

/// Answers to the namespace CONNECT.
enum Control {
    Connected(Value),
    Refused(String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct SioClient {
    /// The Engine.IO session id (from the open packet).
    pub engine_sid: String,
    /// The Socket.IO socket id, once connected to the namespace.
    pub sid: Option<String>,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_ack: AtomicU64,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    kept: VecDeque<(String, Value)>,
    control: mpsc::UnboundedReceiver<Control>,
    closed: watch::Receiver<bool>,
    close_kind: Arc<Mutex<Option<CloseKind>>>,
    tasks: [JoinHandle<()>; 2],
}

/// `http://host:port` (or `ws://`) to the Socket.IO websocket endpoint.
pub fn ws_url(base: &str) -> String {
    let host = base
        .trim_end_matches('/')
        .trim_start_matches("http://")
        .trim_start_matches("ws://");
    format!("ws://{host}/socket.io/?EIO=4&transport=websocket")
}

impl SioClient {
    /// Opens the connection and joins namespace `/` with `auth: {token}`.
    pub async fn connect(base: &str, token: &str) -> Result<SioClient, SioError> {
        Self::connect_auth(base, Some(json!({ "token": token }))).await
    }

    /// Opens the connection and joins namespace `/` with this auth payload (none: `40`).
    pub async fn connect_auth(base: &str, auth: Option<Value>) -> Result<SioClient, SioError> {
        let mut c = Self::open(base).await?;
        c.join(auth).await?;
        Ok(c)
    }

    /// Opens the Engine.IO connection only (no namespace yet).
    pub async fn open(base: &str) -> Result<SioClient, SioError> {
        let (ws, _) = timeout(
            DEFAULT_TIMEOUT,
            tokio_tungstenite::connect_async(ws_url(base)),
        )
        .await
        .map_err(|_| SioError::Timeout)?
        .map_err(|e| SioError::Transport(e.to_string()))?;
        let (mut sink, mut stream) = ws.split();
        let open = loop {
            match timeout(DEFAULT_TIMEOUT, stream.next()).await {
                Err(_) => return Err(SioError::Timeout),
                Ok(None) => return Err(SioError::Closed),
                Ok(Some(Err(e))) => return Err(SioError::Transport(e.to_string())),
                Ok(Some(Ok(Message::Text(t)))) => break t.as_str().to_owned(),
                Ok(Some(Ok(_))) => continue,
            }
        };
        let engine_sid = open
            .strip_prefix('0')
            .and_then(|j| serde_json::from_str::<Value>(j).ok())
            .and_then(|v| v["sid"].as_str().map(str::to_owned))
            .ok_or_else(|| SioError::Protocol(format!("expected an open packet, got {open:?}")))?;

        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let last = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || last {
                    break;
                }
            }
            let _ = sink.close().await;
        });

        let pending: Pending = Arc::default();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let (ctl_tx, control) = mpsc::unbounded_channel();
        let (closed_tx, closed) = watch::channel(false);
        let close_kind: Arc<Mutex<Option<CloseKind>>> = Arc::default();
        let reader = {
            let out = out.clone();
            let pending = pending.clone();
            let close_kind = close_kind.clone();
            tokio::spawn(async move {
                let mut kind = CloseKind::Transport;
                while let Some(frame) = stream.next().await {
                    let text = match frame {
                        Ok(Message::Text(t)) => t,
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => continue,
                    };
                    let text = text.as_str();
                    // Engine.IO packet types: 2 ping, 1 close, 4 message (a Socket.IO packet).
                    let open = match text.as_bytes().first() {
                        Some(b'2') => out.send(Message::text(format!("3{}", &text[1..]))).is_ok(),
                        Some(b'1') => false,
                        Some(b'4') => {
                            let open = on_packet(&text[1..], &pending, &ev_tx, &ctl_tx);
                            if !open {
                                kind = CloseKind::ServerDisconnect;
                            }
                            open
                        }
                        _ => true,
                    };
                    if !open {
                        break;
                    }
                }
                *close_kind.lock().unwrap() = Some(kind);
                // Whoever still waits for an ack learns the connection is gone.
                pending.lock().unwrap().clear();
                let _ = closed_tx.send(true);
                let _ = out.send(Message::Close(None));
            })
        };
        Ok(SioClient {
            engine_sid,
            sid: None,
            out,
            pending,
            next_ack: AtomicU64::new(0),
            events,
            kept: VecDeque::new(),
            control,
            closed,
            close_kind,
            tasks: [reader, writer],
        })
    }

    /// Joins namespace `/`: `Ok(sid)`, or `Err(Refused(message))` on `connect_error`. After a
    /// refusal the Engine.IO connection stays open, as with the official clients.
    pub async fn join(&mut self, auth: Option<Value>) -> Result<String, SioError> {
        let packet = match auth {
            Some(a) => format!("40{a}"),
            None => "40".to_owned(),
        };
        self.send_raw(packet)?;
        match timeout(DEFAULT_TIMEOUT, self.control.recv()).await {
            Err(_) => Err(SioError::Timeout),
            Ok(None) => Err(SioError::Closed),
            Ok(Some(Control::Refused(m))) => Err(SioError::Refused(m)),
            Ok(Some(Control::Connected(v))) => {
                let sid = v["sid"].as_str().unwrap_or_default().to_owned();
                self.sid = Some(sid.clone());
                Ok(sid)
            }
        }
    }

    /// Sends a raw Engine.IO packet (text frame), e.g. `42["x",{}]`.
    pub fn send_raw(&self, packet: impl Into<String>) -> Result<(), SioError> {
        self.out
            .send(Message::text(packet.into()))
            .map_err(|_| SioError::Closed)
    }

    /// Emits an event without asking for an acknowledgement.
    pub fn emit(&self, event: &str, data: Value) -> Result<(), SioError> {
        self.send_raw(format!("42{}", json!([event, data])))
    }

    /// Emits an event and waits for its acknowledgement (the first ack argument).
    pub async fn try_emit_with_ack(
        &self,
        event: &str,
        data: Value,
        wait: Duration,
    ) -> Result<Value, SioError> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        if *self.closed.borrow() {
            self.pending.lock().unwrap().remove(&id);
            return Err(SioError::Closed);
        }
        self.send_raw(format!("42{id}{}", json!([event, data])))?;
        match timeout(wait, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(SioError::Closed),
            Err(_) => {
                self.pending.lock().unwrap().remove(&id);
                Err(SioError::Timeout)
            }
        }
    }

    /// [`Self::try_emit_with_ack`] with the default timeout; panics without an answer.
    #[track_caller]
    pub fn emit_with_ack(
        &self,
        event: &str,
        data: Value,
    ) -> impl Future<Output = Value> + Send + '_ {
        let at = std::panic::Location::caller();
        let event = event.to_owned();
        async move {
            match self.try_emit_with_ack(&event, data, DEFAULT_TIMEOUT).await {
                Ok(v) => v,
                Err(e) => panic!("{at}: no ack for {event}: {e}"),
            }
        }
    }

    /// The next event with this name within `wait`; events of other names are kept for later.
    pub async fn next_event(&mut self, name: &str, wait: Duration) -> Option<Value> {
        if let Some(i) = self.kept.iter().position(|(n, _)| n == name) {
            return self.kept.remove(i).map(|(_, v)| v);
        }
        let deadline = Instant::now() + wait;
        loop {
            match timeout_at(deadline, self.events.recv()).await {
                Ok(Some((n, v))) if n == name => return Some(v),
                Ok(Some(other)) => self.kept.push_back(other),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next event of any name within `wait`.
    pub async fn next_any(&mut self, wait: Duration) -> Option<(String, Value)> {
        if let Some(e) = self.kept.pop_front() {
            return Some(e);
        }
        timeout(wait, self.events.recv()).await.ok().flatten()
    }

    /// Every event received so far (kept or queued), without waiting, in arrival order.
    pub fn drain(&mut self) -> Vec<(String, Value)> {
        let mut all: Vec<_> = self.kept.drain(..).collect();
        while let Ok(e) = self.events.try_recv() {
            all.push(e);
        }
        all
    }

    /// Panics if an event with this name arrives within `within` (other events are kept).
    #[track_caller]
    pub fn expect_no_event(
        &mut self,
        name: &str,
        within: Duration,
    ) -> impl Future<Output = ()> + Send + '_ {
        let at = std::panic::Location::caller();
        let name = name.to_owned();
        async move {
            if let Some(v) = self.next_event(&name, within).await {
                panic!("{at}: unexpected {name}: {v}");
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// How the connection ended (`None` while open).
    pub fn close_kind(&self) -> Option<CloseKind> {
        *self.close_kind.lock().unwrap()
    }

    /// Waits until the server closes the connection; false if it is still open after `wait`.
    pub async fn wait_closed(&mut self, wait: Duration) -> bool {
        let mut closed = self.closed.clone();
        timeout(wait, closed.wait_for(|c| *c)).await.is_ok()
    }

    /// Leaves the namespace and closes the websocket.
    pub async fn close(mut self) {
        let _ = self.send_raw("41");
        let _ = self.out.send(Message::Close(None));
        // The writer ends once the close frame is out; dropping `self` stops the reader.
        let _ = timeout(Duration::from_secs(2), &mut self.tasks[1]).await;
    }
}

impl Drop for SioClient {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Handles one Socket.IO packet; false when the server ended the session.
fn on_packet(
    p: &str,
    pending: &Pending,
    events: &mpsc::UnboundedSender<(String, Value)>,
    control: &mpsc::UnboundedSender<Control>,
) -> bool {
    let Some(kind) = p.as_bytes().first().copied() else {
        return true;
    };
    let mut rest = &p[1..];
    // Namespace other than `/`: `/<nsp>,`. This client lives on `/` only.
    if rest.starts_with('/') {
        rest = rest.split_once(',').map_or("", |(_, r)| r);
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack_id = rest[..digits].parse::<u64>().ok();
    let body = &rest[digits..];
    match kind {
        b'0' => {
            let v = serde_json::from_str(body).unwrap_or(Value::Null);
            let _ = control.send(Control::Connected(v));
        }
        b'1' => return false,
        b'2' => {
            if let Ok(Value::Array(mut args)) = serde_json::from_str::<Value>(body)
                && let Some(Value::String(name)) = args.first().cloned()
            {
                let data = if args.len() > 1 {
                    args.swap_remove(1)
                } else {
                    Value::Null
                };
                let _ = events.send((name, data));
            }
        }
        b'3' => {
            let data = match serde_json::from_str::<Value>(body) {
                Ok(Value::Array(mut a)) if !a.is_empty() => a.swap_remove(0),
                _ => Value::Null,
            };
            if let Some(tx) = ack_id.and_then(|id| pending.lock().unwrap().remove(&id)) {
                let _ = tx.send(data);
            }
        }
        b'4' => {
            let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let msg = v["message"].as_str().unwrap_or_default().to_owned();
            let _ = control.send(Control::Refused(msg));
        }
        _ => {}
    }
    true
}
