//! A TCP proxy in front of a real dependency, so a test can take that dependency away (or make it
//! slow) for its own processes only, without touching the machine's shared server.
//!
//! - [`FaultProxy::down`] closes the listening port (new connections are refused, as when the
//!   server is stopped) and cuts every open connection, both ways.
//! - [`FaultProxy::up`] listens again on the same port.
//! - [`FaultProxy::delay`] holds every chunk of bytes for a while before passing it on, in both
//!   directions: a slow network or an overloaded server.
//! - [`FaultProxy::blackhole`] answers nothing while on, as when packets are dropped: new
//!   connections are accepted but not forwarded, and no byte goes either way on the open ones.
//!   Turned off, what was held goes through (as TCP retransmission would deliver it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct FaultProxy {
    pub port: u16,
    target: SocketAddr,
    delay: watch::Sender<Duration>,
    /// While true, nothing is forwarded (`blackhole`).
    blackholed: watch::Sender<bool>,
    /// Bumped by `down`: every connection task of an older generation ends.
    generation: watch::Sender<u64>,
    listener: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `target` (`host:port`).
    pub async fn start(target: &str) -> Arc<FaultProxy> {
        let target: SocketAddr = tokio::net::lookup_host(target)
            .await
            .expect("proxy target resolves")
            .next()
            .expect("proxy target has an address");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = Arc::new(FaultProxy {
            port,
            target,
            delay: watch::channel(Duration::ZERO).0,
            blackholed: watch::channel(false).0,
            generation: watch::channel(0).0,
            listener: Mutex::new(None),
            connections: Arc::default(),
        });
        proxy.up();
        proxy
    }

    /// `host:port` of the proxy, to put in a connection URL.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Listens (again) on the proxy's port.
    pub fn up(&self) {
        let mut slot = self.listener.lock().unwrap();
        if slot.is_some() {
            return;
        }
        // The port can stay taken for a moment: by the listener `down` aborted, until the
        // runtime drops its task, or by a client's own attempt to reach the closed port (a TCP
        // self-connect, when the kernel picks this very port as the client's ephemeral one;
        // seen once in CI). Both pass, so retry for a while.
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            match socket.bind(addr) {
                Ok(()) => break socket.listen(1024).unwrap(),
                Err(e) if std::time::Instant::now() >= deadline => {
                    panic!(
                        "the proxy port {} is still taken after 10 s: {e}",
                        self.port
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let (target, delay, generation, connections, blackholed) = (
            self.target,
            self.delay.subscribe(),
            self.generation.subscribe(),
            self.connections.clone(),
            self.blackholed.subscribe(),
        );
        *slot = Some(tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (delay, generation) = (delay.clone(), generation.clone());
                let blackholed = blackholed.clone();
                let task = tokio::spawn(async move {
                    let mut open = blackholed.clone();
                    let _ = open.wait_for(|b| !*b).await;
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = pipe(cr, sw, delay.clone(), blackholed.clone()) => {}
                        _ = pipe(sr, cw, delay, blackholed) => {}
                        _ = cut(generation) => {}
                    }
                });
                let mut conns = connections.lock().unwrap();
                conns.retain(|t| !t.is_finished());
                conns.push(task);
            }
        }));
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&self) {
        if let Some(l) = self.listener.lock().unwrap().take() {
            l.abort();
        }
        self.generation.send_modify(|g| *g += 1);
        for t in self.connections.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Holds every chunk for `d` before forwarding it (zero: no delay).
    pub fn delay(&self, d: Duration) {
        self.delay.send_replace(d);
    }

    /// On: forwards nothing, answers nothing (dropped packets). Off: passes on what it held.
    pub fn blackhole(&self, on: bool) {
        self.blackholed.send_replace(on);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.down();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: watch::Receiver<Duration>,
    mut blackholed: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let _ = blackholed.wait_for(|b| !*b).await;
        let d = *delay.borrow();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Resolves when `down` is called after this connection was opened.
async fn cut(mut generation: watch::Receiver<u64>) {
    let _ = generation.changed().await;
}
