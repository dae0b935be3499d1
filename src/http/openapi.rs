//! The OpenAPI document's frame; the paths come from the handlers' `#[utoipa::path]`.

use utoipa::openapi::link::Link;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conclave API",
        description = "Secure group messaging: accounts, open and private groups, join requests, bans, \
                       ownership transfer, messages encrypted at rest. Errors are `application/problem+json` \
                       with a stable `code`. Real-time delivery is Socket.IO at `/socket.io/`.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "users", description = "The caller"),
        (name = "groups", description = "Groups"),
        (name = "membership", description = "Joining, requests, members, leaving"),
        (name = "moderation", description = "Bans, roles and ownership"),
        (name = "invitations", description = "Invitations, accepted or declined by the invitee"),
        (name = "messages", description = "Sending, history, edits and deletions, read state"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Answers any API operation can give, added where its own annotation does not list them: a
/// JSON body can be malformed (400), too large (413) or too slow to arrive (408), a protected call can lack a valid token
/// (401), and every call can meet the request deadline or a dependency being down (503).
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                if op.request_body.is_some() {
                    add_problem(
                        op,
                        "400",
                        "`malformed_request`: not JSON, or not `application/json`",
                    );
                    add_problem(op, "413", "`payload_too_large`");
                    add_problem(
                        op,
                        "408",
                        "`request_timeout`: the body did not arrive within the request deadline",
                    );
                }
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add_problem(op, "401", "`unauthenticated`");
                }
                add_problem(
                    op,
                    "503",
                    "`unavailable`: a dependency is down or the request deadline passed",
                );
            }
        }
    }
}

fn add_problem(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
                .into()
        });
}

const GROUP: &str = "/api/v1/groups/{id}";

/// What a client does with a group it has just created, as OpenAPI links: the fuzzer's stateful
/// phase follows them, so `{id}` operations meet real groups instead of mostly 404s.
const AFTER_CREATE: &[(&str, &str, &str)] = &[
    ("GetGroup", "", "get"),
    ("Members", "/members", "get"),
    ("JoinRequests", "/join-requests", "get"),
    ("Bans", "/bans", "get"),
    ("Audit", "/audit", "get"),
    ("SendMessage", "/messages", "post"),
    ("History", "/messages", "get"),
    ("MarkRead", "/read", "put"),
    ("Reads", "/reads", "get"),
    ("Join", "/join", "post"),
    ("Leave", "/leave", "post"),
    ("DeleteGroup", "", "delete"),
];

pub struct StatefulLinks;

impl Modify for StatefulLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let paths = &mut openapi.paths.paths;
        let known: Vec<(String, String)> = AFTER_CREATE
            .iter()
            .filter(|(_, suffix, method)| {
                paths
                    .get(&format!("{GROUP}{suffix}"))
                    .is_some_and(|item| operation(item, method).is_some())
            })
            .map(|(name, suffix, method)| {
                // A JSON pointer to the operation: "/" in the path is escaped as "~1".
                let pointer = format!("{GROUP}{suffix}").replace('/', "~1");
                ((*name).to_owned(), format!("#/paths/{pointer}/{method}"))
            })
            .collect();
        let created = paths
            .get_mut("/api/v1/groups")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.responses.responses.get_mut("201"));
        if let Some(RefOr::T(response)) = created {
            for (name, op_ref) in known {
                let link = Link::builder()
                    .operation_ref(op_ref)
                    .parameter("id", "$response.body#/id")
                    .description("The group just created")
                    .build();
                response.links.insert(name, RefOr::T(link));
            }
        }
    }
}

fn operation<'a>(item: &'a utoipa::openapi::PathItem, method: &str) -> Option<&'a Operation> {
    match method {
        "get" => item.get.as_ref(),
        "post" => item.post.as_ref(),
        "delete" => item.delete.as_ref(),
        _ => None,
    }
}
