//! Slow and silent connections (slowloris) and descriptor exhaustion, against the real binary.
//!
//! What a user must see: a connection that never finishes its request headers, or sits idle,
//! is closed by the server; one address cannot hold every connection; and when strangers open
//! more connections than the process has descriptors for, clients that are already connected
//! keep being served and the server is normal again as soon as the flood's connections close.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::ChildServer;

fn addr(server: &ChildServer) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("base is host:port")
}

/// A connection from `from` (any 127.x.y.z address is the loopback on Linux).
async fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    socket.connect(to).await
}

/// Whether the server closes `conn` (EOF or reset) within `wait`, reading whatever it sends.
async fn closed_by_server(conn: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// One `GET /healthz` on an open keep-alive connection: the status line's code.
async fn get_healthz(conn: &mut TcpStream) -> Option<u16> {
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    // The body is small and follows at once; read what is there so the connection is clean.
    let _ = tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await;
    std::str::from_utf8(&got).ok()?.get(9..12)?.parse().ok()
}

/// A fresh connection's `GET /healthz` from `from`.
async fn healthz_from(from: &str, to: SocketAddr) -> Option<u16> {
    let mut c = connect_from(from, to).await.ok()?;
    get_healthz(&mut c).await
}

#[tokio::test]
async fn unfinished_headers_and_idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path(), &[("CONCLAVE_HEADER_READ_TIMEOUT", "1s")]).await;
    let to = addr(&server);

    // Half a request, then nothing: the headers never end.
    let mut slow = connect_from("127.0.0.1", to).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();
    // A whole request answered, then silence on the kept-alive connection.
    let mut idle = connect_from("127.0.0.1", to).await.unwrap();
    assert_eq!(get_healthz(&mut idle).await, Some(200));
    // Connected, and never a byte.
    let mut silent = connect_from("127.0.0.1", to).await.unwrap();

    for (what, conn) in [
        ("unfinished headers", &mut slow),
        ("idle keep-alive", &mut idle),
        ("silent", &mut silent),
    ] {
        assert!(
            closed_by_server(conn, Duration::from_secs(20)).await,
            "a {what} connection is still open"
        );
    }
    assert_eq!(healthz_from("127.0.0.1", to).await, Some(200));
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(
        dir.path(),
        &[
            ("CONCLAVE_MAX_CONNECTIONS_PER_ADDRESS", "10"),
            ("CONCLAVE_HEADER_READ_TIMEOUT", "30s"),
        ],
    )
    .await;
    let to = addr(&server);
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(connect_from("127.0.0.2", to).await.unwrap());
    }
    // The flooding address keeps at most its share; the others are closed at once.
    let mut open = 0;
    for c in &mut flood {
        if !closed_by_server(c, Duration::from_millis(300)).await {
            open += 1;
        }
    }
    assert_eq!(open, 10, "connections 127.0.0.2 kept open");
    assert_eq!(healthz_from("127.0.0.2", to).await, None, "over its cap");
    // Everyone else is served meanwhile.
    assert_eq!(healthz_from("127.0.0.1", to).await, Some(200));
    drop(flood);
    let until = Instant::now() + Duration::from_secs(10);
    while healthz_from("127.0.0.2", to).await != Some(200) {
        assert!(
            Instant::now() < until,
            "127.0.0.2 is not served again once its connections closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The process may open 320 descriptors; strangers from many addresses open 400 silent
/// connections. The cap, kept below the descriptor limit, refuses what is over it, so the
/// process never runs out: a client connected before the flood is served throughout, and
/// once the flood's connections time out anyone is served again.
#[tokio::test]
async fn a_connection_flood_leaves_connected_clients_served_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start_with_descriptors(
        dir.path(),
        &[("CONCLAVE_HEADER_READ_TIMEOUT", "30s")],
        Some(320),
    )
    .await;
    let to = addr(&server);
    let mut regular = connect_from("127.0.0.1", to).await.unwrap();
    assert_eq!(get_healthz(&mut regular).await, Some(200));

    let mut flood = Vec::new();
    for i in 0..400 {
        let from = format!("127.0.1.{}", 1 + i % 200);
        if let Ok(c) = connect_from(&from, to).await {
            flood.push(c);
        }
    }
    assert_eq!(
        get_healthz(&mut regular).await,
        Some(200),
        "the connected client is served during the flood"
    );
    drop(flood);
    let until = Instant::now() + Duration::from_secs(20);
    while healthz_from("127.0.0.1", to).await != Some(200) {
        assert!(Instant::now() < until, "not served again after the flood");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = server.log();
    assert!(
        !log.contains("Too many open files"),
        "the process ran out of descriptors:\n{log}"
    );
}
