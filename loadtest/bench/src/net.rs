//! Sockets from spread source addresses, and the few REST calls the Conclave setup needs.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The source address of client `k`: 127.0.0.`base`.. spread over `sources` addresses, so
/// that tens of thousands of connections (and the REST setup's short-lived ones) do not run out
/// of ephemeral ports on one address.
pub fn source(k: usize, base: u8, sources: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        base + (k % sources as usize) as u8,
    ))
}

pub async fn connect_from(source: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(source, 0))?;
    let s = sock.connect(target).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One HTTP/1.1 request on its own connection (`Connection: close`): status and JSON body.
pub async fn request(
    source: IpAddr,
    target: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> io::Result<(u16, Value)> {
    let mut s = connect_from(source, target).await?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{auth}\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let bad = || io::Error::other(format!("bad response to {method} {path}: {text:.200}"));
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(io::Error::other("chunked responses are not supported"));
    }
    let json = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(|_| bad())?
    };
    Ok((status, json))
}
