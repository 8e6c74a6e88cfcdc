//! The OpenAPI 3.1 document, generated from the handlers' annotations. `openapi/openapi.json`
//! holds the same bytes; a test fails when they drift apart.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{acl, events, folders, messages, session, tokens, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Flagpost",
        description = "A live, shared view of IMAP support mailboxes: every message's answered / flagged / pending state and every folder's ACL, mirrored from the IMAP server and authorised by it. The API never shows or allows more than the IMAP server would for the caller.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        session::login, session::logout, session::me,
        folders::list, folders::get,
        acl::get, acl::put, acl::delete,
        messages::list, messages::get, messages::patch,
        events::list, events::stream,
        tokens::create, tokens::list, tokens::revoke,
        webhooks::create, webhooks::list, webhooks::get, webhooks::patch, webhooks::delete,
        webhooks::deliveries, webhooks::replay, webhooks::ping,
    ),
    components(schemas(crate::error::Problem, crate::hub::EventOut)),
    modifiers(&Security),
    security(("bearer" = []), ("cookie" = [])),
    tags(
        (name = "session", description = "Staff login with IMAP credentials"),
        (name = "folders", description = "Watched folders the caller can read"),
        (name = "messages", description = "Messages and their flags"),
        (name = "acl", description = "Folder ACLs (RFC 4314), written through to the IMAP server"),
        (name = "events", description = "The change feed and its live stream"),
        (name = "tokens", description = "Integration tokens (service admins)"),
        (name = "webhooks", description = "Signed, ordered, retried event delivery (service admins; Standard Webhooks)"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /api/v1/session, or an integration token (fpt_…)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "flagpost_session",
                "Set by POST /api/v1/session (HttpOnly, SameSite=Lax)",
            ))),
        );
    }
}

/// The document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as pretty JSON with a final newline: the bytes of `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let mut s = serde_json::to_string_pretty(&openapi()).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openapi/openapi.json` must be what the code generates. Regenerate it with
    /// `cargo run -p flagpost -- openapi > openapi/openapi.json` (or run this test with
    /// `UPDATE_OPENAPI=1`).
    #[test]
    fn committed_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
        let generated = openapi_json();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write openapi.json");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p flagpost-api openapi` \
             (or `flagpost openapi > openapi/openapi.json`) and commit it"
        );
    }

    #[test]
    fn document_is_openapi_3_1_and_covers_every_api_route() {
        let v: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
        for p in [
            "/api/v1/session",
            "/api/v1/me",
            "/api/v1/folders",
            "/api/v1/folders/{id}",
            "/api/v1/folders/{id}/acl",
            "/api/v1/folders/{id}/acl/{identifier}",
            "/api/v1/messages",
            "/api/v1/messages/{id}",
            "/api/v1/events",
            "/api/v1/events/stream",
            "/api/v1/tokens",
            "/api/v1/tokens/{id}",
        ] {
            assert!(v["paths"][p].is_object(), "{p} missing from the document");
        }
    }
}
