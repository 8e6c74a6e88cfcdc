//! `GET /folders`, `GET /folders/{id}`.

use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Principal;
use crate::authz::{Access, not_found};
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Params, parse_id};

/// Message counts of a folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct Counts {
    /// pending + answered.
    pub total: i64,
    /// Neither `\Answered` nor `\Deleted`.
    pub pending: i64,
    /// `\Answered`, not `\Deleted`.
    pub answered: i64,
    /// `\Flagged` among messages not deleted.
    pub flagged: i64,
    /// `\Deleted`, not yet expunged.
    pub deleted: i64,
}

/// Sync state of a folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOut {
    /// `live` (IDLE), `polling`, `connecting`, `error`.
    #[schema(example = "live")]
    pub state: String,
    /// Last completed sync.
    pub last_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the state is `error`.
    pub error: Option<String>,
}

/// A watched folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderOut {
    /// Opaque id.
    pub id: String,
    /// Readable UTF-8 name.
    pub name: String,
    /// The name as sent on the wire (modified UTF-7).
    pub imap_name: String,
    /// Message counts.
    pub counts: Counts,
    /// The caller's RFC 4314 rights, in the order `lrswipkxtea`.
    #[schema(example = "lrsw")]
    pub my_rights: String,
    /// Sync state.
    pub sync: SyncOut,
}

/// Folders the caller can read.
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderList {
    /// By name.
    pub folders: Vec<FolderOut>,
}

pub(crate) fn render(
    v: flagpost_store::api::FolderView,
    access: &Access,
    p: &Principal,
) -> FolderOut {
    FolderOut {
        my_rights: access.my_rights(p, v.id),
        id: v.id.to_string(),
        name: v.name,
        imap_name: v.imap_name,
        counts: Counts {
            total: v.total,
            pending: v.pending,
            answered: v.answered,
            flagged: v.flagged,
            deleted: v.deleted,
        },
        sync: SyncOut {
            state: v.sync_state,
            last_synced_at: v.last_synced_at,
            error: v.sync_error,
        },
    }
}

/// Folders the caller can read, with counts, rights and sync state.
#[utoipa::path(get, path = "/api/v1/folders", operation_id = "listFolders", tag = "folders",
    responses(
        (status = 200, description = "Readable folders", body = FolderList),
        (status = 400, description = "Unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks the read scope", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<FolderList>> {
    params.only(&[])?;
    principal.need_scope(principal.scopes.read, "read")?;
    let access = state.access().await?;
    let ids = access.readable_folders(&principal);
    let views = flagpost_store::api::folder_views(&state.pool, &ids).await?;
    Ok(ApiJson(FolderList {
        folders: views
            .into_iter()
            .map(|v| render(v, &access, &principal))
            .collect(),
    }))
}

/// One folder.
#[utoipa::path(get, path = "/api/v1/folders/{id}", operation_id = "getFolder", tag = "folders",
    params(("id" = String, Path, description = "Folder id")),
    responses(
        (status = 200, description = "The folder", body = FolderOut),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such folder, or not readable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<FolderOut>> {
    params.only(&[])?;
    principal.need_scope(principal.scopes.read, "read")?;
    let id = parse_id(&id).ok_or_else(|| not_found("folder"))?;
    let access = state.access().await?;
    access.require_read(&principal, id)?;
    let view = flagpost_store::api::folder_views(&state.pool, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| not_found("folder"))?;
    Ok(ApiJson(render(view, &access, &principal)))
}
