//! Frees hyper's read buffer of every websocket connection.
//!
//! hyper parses a request's URI and header values as slices (`Bytes`) of the
//! connection's read buffer (8–16 KiB). engineioxide keeps the upgrade request's parts for the
//! whole life of the socket, so those slices keep the whole buffer alive: about 16 KiB per idle
//! socket (heaptrack, see docs/architecture.md, "Tools and versions"). This layer, put in front of the Socket.IO layer, rebuilds
//! requests to `/socket.io/` with owned copies of the URI, the header values and axum's
//! `OriginalUri` extension (a clone of the URI). The other extensions (where hyper's `OnUpgrade`
//! and axum's `ConnectInfo` live), the method, the version and the body are moved over
//! unchanged. Other requests pass through untouched.

use std::task::{Context, Poll};

use axum::extract::OriginalUri;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use tower::{Layer, Service};

/// Where the Socket.IO layer listens (socketioxide's default `req_path`).
const SOCKET_IO_PATH: &str = "/socket.io";

#[derive(Clone, Copy, Debug, Default)]
pub struct OwnedPartsLayer;

impl<S> Layer<S> for OwnedPartsLayer {
    type Service = OwnedParts<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OwnedParts { inner }
    }
}

#[derive(Clone, Debug)]
pub struct OwnedParts<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for OwnedParts<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let req = if req.uri().path().starts_with(SOCKET_IO_PATH) {
            owned(req)
        } else {
            req
        };
        self.inner.call(req)
    }
}

/// The same request, its URI and header values copied out of the connection's buffer.
pub fn owned<B>(req: Request<B>) -> Request<B> {
    let (mut parts, body) = req.into_parts();
    parts.uri = owned_uri(&parts.uri);
    // axum's router keeps a clone of the URI it was given in the extensions.
    if let Some(OriginalUri(original)) = parts.extensions.get_mut::<OriginalUri>() {
        *original = owned_uri(original);
    }
    parts.headers = owned_headers(&parts.headers);
    Request::from_parts(parts, body)
}

fn owned_uri(uri: &Uri) -> Uri {
    // `TryFrom<String>` takes the string's own allocation.
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // `from_bytes` copies (standard names are static, custom ones are copied too).
        let name =
            HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone());
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        out.append(name, copy);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_uri_and_headers_and_keeps_extensions() {
        #[derive(Clone, Debug, PartialEq)]
        struct Marker(u32);
        // A buffer standing for hyper's: the parts point into it.
        let buf =
            axum::body::Bytes::from_static(b"/socket.io/?EIO=4&transport=websocket dGhlIGtleQ==");
        let uri = Uri::from_maybe_shared(buf.slice(0..37)).unwrap();
        let key = HeaderValue::from_maybe_shared(buf.slice(38..)).unwrap();
        let mut req = Request::builder()
            .uri(uri)
            .header("sec-websocket-key", key)
            .header("x-a", "1")
            .header("x-a", "2")
            .body("body")
            .unwrap();
        req.extensions_mut().insert(Marker(7));
        let original = req.uri().clone();
        req.extensions_mut().insert(OriginalUri(original));
        let out = owned(req);
        assert_eq!(out.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(out.headers()["sec-websocket-key"], "dGhlIGtleQ==");
        let all: Vec<_> = out.headers().get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(out.extensions().get::<Marker>(), Some(&Marker(7)));
        assert_eq!(*out.body(), "body");
        // The copies do not point into the buffer.
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let key_ptr = out.headers()["sec-websocket-key"].as_bytes().as_ptr() as usize;
        assert!(!range.contains(&key_ptr));
        let path_ptr = out.uri().path().as_ptr() as usize;
        assert!(!range.contains(&path_ptr));
        let OriginalUri(original) = out.extensions().get::<OriginalUri>().unwrap();
        assert_eq!(original, "/socket.io/?EIO=4&transport=websocket");
        assert!(!range.contains(&(original.path().as_ptr() as usize)));
    }
}
