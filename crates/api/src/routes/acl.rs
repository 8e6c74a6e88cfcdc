//! `GET /folders/{id}/acl`, `PUT` and `DELETE /folders/{id}/acl/{identifier}`: ACL
//! administration written through to the IMAP server (RFC 4314), then re-read into the mirror.

use axum::extract::{Path, State};
use flagpost_domain::Rights;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Principal;
use crate::authz::not_found;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Params, parse_id};
use crate::gateway::GatewayError;

/// One ACL entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AclEntryOut {
    /// A user name, `anyone`, `authenticated`, a server-specific group, or `-name` for a
    /// negative entry.
    pub identifier: String,
    /// Rights in the order `lrswipkxtea`.
    pub rights: String,
}

/// A folder's ACL.
#[derive(Debug, Serialize, ToSchema)]
pub struct AclOut {
    /// Entries by identifier.
    pub entries: Vec<AclEntryOut>,
    /// The caller's rights.
    pub my_rights: String,
}

/// New rights for an identifier.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AclPut {
    /// RFC 4314 letters, each one the server offers for this identifier.
    #[schema(example = "lrs")]
    pub rights: String,
}

fn valid_identifier(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id == "-" || id.len() > 255 {
        return Err(ApiError::BadRequest(
            "the identifier must be 1 to 255 bytes".into(),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "the identifier must not contain control characters (CR, LF, NUL, …)".into(),
        ));
    }
    Ok(())
}

fn gateway_error(e: GatewayError) -> ApiError {
    match e {
        GatewayError::InvalidArgument(d) => ApiError::BadRequest(d),
        GatewayError::Refused(d) => ApiError::Forbidden(format!("the IMAP server refused: {d}")),
        GatewayError::Gone => not_found("folder"),
        GatewayError::BadCredentials | GatewayError::Unavailable(_) => {
            tracing::warn!(error = %e, "ACL change: IMAP server unavailable");
            ApiError::Unavailable("the IMAP server is unavailable; nothing was changed".into())
        }
    }
}

async fn folder_for_acl(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<flagpost_store::folders::FolderRow> {
    let id = parse_id(id).ok_or_else(|| not_found("folder"))?;
    let access = state.access().await?;
    access.require_admin_of(principal, id)?;
    let folder = flagpost_store::folders::folder(&state.pool, id)
        .await?
        .filter(|f| f.removed_at.is_none())
        .ok_or_else(|| not_found("folder"))?;
    if !folder.acl_known {
        return Err(ApiError::Conflict(
            "this folder's ACL is not mirrored: the service account lacks the \"a\" right".into(),
        ));
    }
    Ok(folder)
}

async fn acl_out(state: &AppState, principal: &Principal, folder_id: i64) -> ApiResult<AclOut> {
    let access = state.refresh_access().await?;
    let entries = flagpost_store::folders::acl(&state.pool, folder_id).await?;
    Ok(AclOut {
        entries: entries
            .into_iter()
            .map(|e| AclEntryOut {
                identifier: e.identifier,
                rights: Rights::from_server(&e.rights).to_string(),
            })
            .collect(),
        my_rights: access.my_rights(principal, folder_id),
    })
}

/// The folder's ACL (needs `a`).
#[utoipa::path(get, path = "/api/v1/folders/{id}/acl", operation_id = "getAcl", tag = "acl",
    params(("id" = String, Path, description = "Folder id")),
    responses(
        (status = 200, description = "The ACL", body = AclOut),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacking `a`, or the acl scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such folder, or not readable", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The ACL is not mirrored (the service account lacks `a`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<AclOut>> {
    params.only(&[])?;
    let folder = folder_for_acl(&state, &principal, &id).await?;
    Ok(ApiJson(acl_out(&state, &principal, folder.id).await?))
}

/// Sets (replaces) an identifier's rights with SETACL on the IMAP server (needs `a`).
#[utoipa::path(put, path = "/api/v1/folders/{id}/acl/{identifier}", operation_id = "putAclEntry", tag = "acl",
    params(
        ("id" = String, Path, description = "Folder id"),
        ("identifier" = String, Path, description = "User name, `anyone`, `authenticated`, or `-name` for a negative entry"),
    ),
    request_body = AclPut,
    responses(
        (status = 200, description = "The ACL after the change, as the server reports it", body = AclOut),
        (status = 400, description = "Invalid identifier or a right the server does not offer", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacking `a`, or the acl scope, or the server refused", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such folder, or not readable", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The ACL is not mirrored", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The IMAP server is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(
    State(state): State<AppState>,
    Path((id, identifier)): Path<(String, String)>,
    params: Params,
    principal: Principal,
    ApiJson(body): ApiJson<AclPut>,
) -> ApiResult<ApiJson<AclOut>> {
    params.only(&[])?;
    let folder = folder_for_acl(&state, &principal, &id).await?;
    valid_identifier(&identifier)?;
    let wanted =
        Rights::parse_strict(&body.rights).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let grantable = state
        .gateway
        .grantable_rights(&folder.imap_name, &identifier)
        .await
        .map_err(gateway_error)?;
    let grantable = Rights::from_server(&grantable);
    let refused = wanted.minus(grantable);
    if !refused.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "the IMAP server does not offer {:?} for this identifier (it offers {:?})",
            refused.to_string(),
            grantable.to_string()
        )));
    }
    state
        .gateway
        .set_acl(
            folder.id,
            &folder.imap_name,
            &identifier,
            &wanted.to_string(),
        )
        .await
        .map_err(gateway_error)?;
    Ok(ApiJson(acl_out(&state, &principal, folder.id).await?))
}

/// Removes an identifier's entry with DELETEACL on the IMAP server (needs `a`). Idempotent:
/// removing an entry that is not there changes nothing and answers the same.
#[utoipa::path(delete, path = "/api/v1/folders/{id}/acl/{identifier}", operation_id = "deleteAclEntry", tag = "acl",
    params(
        ("id" = String, Path, description = "Folder id"),
        ("identifier" = String, Path, description = "The entry's identifier (`-name` for a negative entry)"),
    ),
    responses(
        (status = 200, description = "The ACL after the change", body = AclOut),
        (status = 400, description = "Invalid identifier", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacking `a`, or the acl scope, or the server refused", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such folder, or not readable", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The ACL is not mirrored", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The IMAP server is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path((id, identifier)): Path<(String, String)>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<AclOut>> {
    params.only(&[])?;
    let folder = folder_for_acl(&state, &principal, &id).await?;
    valid_identifier(&identifier)?;
    state
        .gateway
        .delete_acl(folder.id, &folder.imap_name, &identifier)
        .await
        .map_err(gateway_error)?;
    Ok(ApiJson(acl_out(&state, &principal, folder.id).await?))
}
