//! The HTTP surface: routes under `/api/v1`, operations endpoints at the root, the OpenAPI
//! document and Swagger UI, the web client (`crate::web`) at `/`, and the middleware every
//! request passes through.

pub mod admin;
pub mod dto;
pub mod extract;
pub mod listener;
pub mod openapi;
pub mod problem;
pub mod routes;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::HttpBody;
use axum::extract::State;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::AppError;
use crate::ops::metrics::track_http;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The API routes and the OpenAPI document describing exactly them.
pub fn api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use routes::{auth, groups, manage, messages, ops, users};
    let v1 = OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(users::me))
        .routes(routes!(groups::create, groups::list))
        .routes(routes!(groups::mine))
        .routes(routes!(groups::get, groups::delete, manage::update))
        .routes(routes!(groups::join))
        .routes(routes!(groups::withdraw))
        .routes(routes!(groups::join_requests))
        .routes(routes!(groups::approve))
        .routes(routes!(groups::reject))
        .routes(routes!(groups::members))
        .routes(routes!(groups::remove_member))
        .routes(routes!(groups::leave))
        .routes(routes!(groups::ban, groups::bans))
        .routes(routes!(groups::unban))
        .routes(routes!(groups::transfer))
        .routes(routes!(groups::audit))
        .routes(routes!(manage::set_role))
        .routes(routes!(manage::invite, manage::invitations))
        .routes(routes!(manage::accept))
        .routes(routes!(manage::cancel))
        .routes(routes!(manage::my_invitations))
        .routes(routes!(messages::send, messages::history))
        .routes(routes!(messages::edit, messages::delete))
        .routes(routes!(messages::mark_read))
        .routes(routes!(messages::reads))
        .layer(DefaultBodyLimit::max(state.http.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            (state.http.request_timeout, state.http.max_body_bytes),
            deadline,
        ));
    let ops_routes = OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz));
    // With an admin listener, `/metrics` is served there only (`http::admin`).
    let ops_routes = if state.http.admin_listener {
        ops_routes
    } else {
        ops_routes.routes(routes!(ops::metrics))
    };
    let (router, mut openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(ops_routes)
        .split_for_parts();
    utoipa::Modify::modify(&openapi::CommonResponses, &mut openapi);
    utoipa::Modify::modify(&openapi::StatefulLinks, &mut openapi);
    (
        router.route_layer(axum::middleware::from_fn(track_http)),
        openapi,
    )
}

pub fn router(state: AppState) -> Router {
    let (api, openapi) = api(&state);
    api.merge(SwaggerUi::new("/api-docs").url("/api-docs/openapi.json", openapi))
        .merge(crate::web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(response_headers))
                .layer(axum::middleware::from_fn(untrusted_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path(), route = tracing::field::Empty, user_id = tracing::field::Empty)
                        })
                        .on_request(())
                        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros))
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CompressionLayer::new().gzip(true)),
        )
}

/// A client's `X-Request-Id` is kept only if it looks like an id (`[A-Za-z0-9._-]{1,64}`);
/// anything else is dropped, and a fresh id is made, so a forged value can never read as extra
/// fields in the logs.
async fn untrusted_request_id(mut req: Request, next: Next) -> Response {
    let acceptable = |v: &[u8]| {
        (1..=64).contains(&v.len())
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let headers = req.headers_mut();
    if headers
        .get_all(&REQUEST_ID)
        .iter()
        .any(|v| !acceptable(v.as_bytes()))
        || headers.get_all(&REQUEST_ID).iter().count() > 1
    {
        headers.remove(&REQUEST_ID);
    }
    next.run(req).await
}

/// Headers every answer carries: `nosniff` everywhere (the web client's own routes set their
/// stricter policy themselves), `no-store` on everything under `/auth` (tokens must not be
/// cached, RFC 6749 5.1), and a Content-Security-Policy for Swagger UI.
async fn response_headers(req: Request, next: Next) -> Response {
    use axum::http::{HeaderValue, header};
    let path = req.uri().path();
    let docs = path.starts_with("/api-docs");
    let tokens = path.starts_with("/api/v1/auth/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if tokens {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    if docs {
        // Swagger UI's page configures itself with an inline script and inline styles.
        h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ));
    }
    res
}

async fn not_found() -> Response {
    AppError::NotFound.into_response()
}

async fn method_not_allowed() -> Response {
    AppError::MethodNotAllowed.into_response()
}

/// The REST deadline. A request not answered in time gets 408 `request_timeout` when its
/// handler is waiting for body bytes that have not come (the client is slow, not us: no
/// dependency warning, no 5xx), and 503 `unavailable` otherwise (the work behind it is slow);
/// never a hang.
///
/// The body is read whole before the handler runs (at most `max_body` bytes: 413 above). A
/// handler that takes no body would otherwise leave one that arrives after the request's head
/// unread, and hyper then closes the connection after answering: a client that sent its next
/// request on it (python `requests` sends a body apart from its head) got the connection closed
/// without an answer.
async fn deadline(
    State((limit, max_body)): State<(std::time::Duration, usize)>,
    req: Request,
    next: Next,
) -> Response {
    let body = Arc::new(AtomicU8::new(BODY_MOVING));
    let req = req.map(|inner| {
        axum::body::Body::new(Watched {
            inner,
            state: body.clone(),
        })
    });
    let answer = async move {
        let (parts, unread) = req.into_parts();
        let bytes = match axum::body::to_bytes(unread, max_body).await {
            Ok(b) => b,
            Err(e) if is_length_limit(&e) => return AppError::PayloadTooLarge.into_response(),
            Err(_) => {
                return AppError::Malformed("the request body could not be read".into())
                    .into_response();
            }
        };
        next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await
    };
    match tokio::time::timeout(limit, answer).await {
        Ok(res) => res,
        Err(_) if body.load(Ordering::Relaxed) == BODY_AWAITED => {
            tracing::debug!("request body not received within the deadline");
            AppError::RequestTimeout.into_response()
        }
        Err(_) => AppError::Unavailable("request deadline exceeded".into()).into_response(),
    }
}

/// Whether reading a body failed on the size limit (rather than the connection).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Where a request body stands: not waited on (unread, or read up to what has arrived), waited
/// on for bytes that have not arrived, or complete.
const BODY_MOVING: u8 = 0;
const BODY_AWAITED: u8 = 1;
const BODY_DONE: u8 = 2;

/// A request body that notes whether its reader is waiting on the client.
struct Watched {
    inner: axum::body::Body,
    state: Arc<AtomicU8>,
}

impl HttpBody for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let state = match &polled {
            Poll::Pending => BODY_AWAITED,
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => BODY_DONE,
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => BODY_DONE,
            Poll::Ready(Some(Ok(_))) => BODY_MOVING,
        };
        self.state.store(state, Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
