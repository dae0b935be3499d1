//! The OpenAPI document's frame; the paths come from the handlers' `#[utoipa::path]`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
        (name = "moderation", description = "Bans and ownership"),
        (name = "messages", description = "Sending and history"),
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
