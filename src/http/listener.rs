//! Accepting connections, with the limits `axum::serve` does not have: a header-read timeout
//! (which also closes keep-alive connections left idle), a cap on open connections kept below
//! the process's descriptor limit, and a cap per client address. Without them, a few hundred
//! silent or slow connections (slowloris) held the server's descriptors for as long as they
//! liked, and once descriptors ran out normal requests failed for as long as the flood lasted.
//!
//! A connection over a cap is closed at once, before any byte is read: the cheapest answer for
//! a flood, and an honest one for a client, which sees a refused connection and retries.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use crate::ops::metrics as metric;

/// Descriptors kept back from the connection cap when it is derived from the process limit:
/// the store, the broker, Redis, log files and the blocking pool need theirs even when clients
/// have taken every connection they may.
pub const DESCRIPTOR_HEADROOM: u64 = 256;

/// The connection limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at once (HTTP, long-polling and WebSocket alike).
    pub max_connections: usize,
    /// Open connections at once from one client address; `None` behind a trusted proxy,
    /// where every connection comes from the proxy.
    pub max_per_address: Option<usize>,
    /// A request's headers must arrive within this; the timer also runs while a keep-alive
    /// connection waits for its next request, so it is the idle limit too.
    pub header_read_timeout: Duration,
}

/// Serves `app` on `listener` until `signal` resolves, then lets each connection finish its
/// request in hand (like `axum::serve(..).with_graceful_shutdown`) and returns once all have
/// closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        signal.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    let gate = Gate::new(limits);
    let mut accept_errors = ErrorLog::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = signal_tx.closed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, typically: waiting lets connections close; spinning would
                // only burn the CPU they need, and one line per failure would flood the log.
                accept_errors.note(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(ticket) = gate.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        spawn_connection(
            stream,
            peer,
            app.clone(),
            limits,
            ticket,
            signal_tx.clone(),
            close_rx.clone(),
        );
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    ticket: Ticket,
    signal: watch::Sender<()>,
    close_rx: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let service = app.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.map(Body::new)
    });
    let service = TowerToHyperService::new(service);
    tokio::spawn(async move {
        let _ticket = ticket;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        let mut stopping = std::pin::pin!(signal.closed());
        let mut told = false;
        loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    break;
                }
                _ = &mut stopping, if !told => {
                    told = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        drop(close_rx);
    });
}

/// Open connections per client address.
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Counts open connections, in all and per address, and refuses those over the caps.
struct Gate {
    all: Arc<Semaphore>,
    per_address: Option<(usize, PerAddress)>,
}

/// An admitted connection's place, given back when it closes.
struct Ticket {
    _permit: OwnedSemaphorePermit,
    address: Option<(IpAddr, PerAddress)>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        metrics::gauge!(metric::HTTP_CONNECTIONS).decrement(1.0);
        if let Some((ip, counts)) = &self.address {
            let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = counts.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(ip);
                }
            }
        }
    }
}

impl Gate {
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            all: Arc::new(Semaphore::new(limits.max_connections)),
            per_address: limits.max_per_address.map(|n| (n, Arc::default())),
        }
    }

    fn admit(&self, ip: IpAddr) -> Option<Ticket> {
        let Ok(permit) = self.all.clone().try_acquire_owned() else {
            metrics::counter!(metric::CONNECTIONS_REFUSED, "cap" => "total").increment(1);
            return None;
        };
        let address = match &self.per_address {
            None => None,
            Some((max, counts)) => {
                let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                let n = c.entry(ip).or_insert(0);
                if *n >= *max {
                    metrics::counter!(metric::CONNECTIONS_REFUSED, "cap" => "per_address")
                        .increment(1);
                    return None;
                }
                *n += 1;
                Some((ip, counts.clone()))
            }
        };
        metrics::gauge!(metric::HTTP_CONNECTIONS).increment(1.0);
        Some(Ticket {
            _permit: permit,
            address,
        })
    }
}

/// Logs accept failures once, then a summary at most every 10 s while they go on.
#[derive(Default)]
struct ErrorLog {
    since: Option<Instant>,
    count: u64,
}

impl ErrorLog {
    fn note(&mut self, e: &std::io::Error) {
        metrics::counter!(metric::CONNECTIONS_REFUSED, "cap" => "accept_error").increment(1);
        self.count += 1;
        match self.since {
            Some(t) if t.elapsed() < Duration::from_secs(10) => {}
            _ => {
                tracing::warn!(error = %e, failures = self.count, "cannot accept connections (out of descriptors?); retrying");
                self.since = Some(Instant::now());
                self.count = 0;
            }
        }
    }
}

/// The connection cap for a setting of `0` (automatic): the process's descriptor limit, raised
/// to its hard limit first where the system allows, less [`DESCRIPTOR_HEADROOM`].
pub fn automatic_max_connections() -> usize {
    let limit = raise_descriptor_limit();
    limit.saturating_sub(DESCRIPTOR_HEADROOM).max(64) as usize
}

/// Raises the soft descriptor limit to the hard one (a server's usual first step: the soft
/// limit is often 1,024 while the hard one is far higher); returns the limit now in force.
fn raise_descriptor_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: Option<usize>) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_per_address: per,
            header_read_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_gate_counts_per_address_and_in_all_and_gives_places_back() {
        let gate = Gate::new(limits(3, Some(2)));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = gate.admit(a).expect("first from a");
        let a2 = gate.admit(a).expect("second from a");
        assert!(gate.admit(a).is_none(), "a third from a is over its cap");
        let b1 = gate.admit(b).expect("b has its own count");
        assert!(gate.admit(b).is_none(), "the total cap is reached");
        drop(a1);
        let a3 = gate.admit(a).expect("a closed one: a's place is back");
        drop((a2, a3, b1));
        assert_eq!(gate.all.available_permits(), 3);
        assert!(
            gate.per_address
                .as_ref()
                .unwrap()
                .1
                .lock()
                .unwrap()
                .is_empty(),
            "no address is remembered once its connections closed"
        );
    }

    #[test]
    fn without_a_per_address_cap_only_the_total_counts() {
        let gate = Gate::new(limits(2, None));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _t = (gate.admit(ip).unwrap(), gate.admit(ip).unwrap());
        assert!(gate.admit(ip).is_none());
    }
}
