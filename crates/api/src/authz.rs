//! Authorisation: what a principal may see and do in each folder, from the mirrored ACL.
//!
//! Contract §2: without `l` and `r` a folder and everything in it is absent (404); with them
//! but without the right an action needs, 403. Service admins may read every folder and
//! manage ACLs; their flag changes still need their own `w`/`s`. Integration tokens are
//! further limited by their scopes. Every handler, the change feed and the live stream decide
//! through [`Access`].

use std::collections::HashMap;
use std::sync::Arc;

use flagpost_domain::acl::AclDialect;
use flagpost_domain::{Right, Rights};
use flagpost_store::api::FolderAcl;

use crate::auth::Principal;
use crate::error::ApiError;

/// The mirrored ACLs of every folder, as one immutable snapshot.
#[derive(Debug, Clone, Default)]
pub struct Access {
    folders: HashMap<i64, FolderAcl>,
    service_user: Arc<str>,
    /// Whose ACL rules the server follows (from its `ID`).
    dialect: AclDialect,
}

impl Access {
    /// A snapshot of `folders`, where `service_user` is the account that watches them, on a
    /// server whose ACL rules are `dialect`'s.
    pub fn new(folders: Vec<FolderAcl>, service_user: Arc<str>, dialect: AclDialect) -> Access {
        Access {
            folders: folders.into_iter().map(|f| (f.folder_id, f)).collect(),
            service_user,
            dialect,
        }
    }

    /// The rights the IMAP server grants `username` on the folder, as far as the mirror can
    /// tell; less, never more, where it cannot.
    pub fn imap_rights(&self, username: &str, folder_id: i64) -> Rights {
        let Some(f) = self.folders.get(&folder_id) else {
            return Rights::NONE;
        };
        if username == &*self.service_user {
            // The service account's own MYRIGHTS is the server's exact answer.
            return f
                .service_rights
                .as_deref()
                .map(Rights::from_server)
                .unwrap_or(Rights::NONE);
        }
        if !f.acl_known {
            // Without `a` the service account cannot read the ACL: nothing is known of other
            // users' rights, so nothing is granted.
            return Rights::NONE;
        }
        let entries: Vec<flagpost_domain::acl::AclEntry> = f
            .entries
            .iter()
            .map(|e| flagpost_domain::acl::AclEntry::from_server(e.identifier.as_str(), &e.rights))
            .collect();
        // The mirror reads ACLs as the service account, and Dovecot 2.3 lists the `owner`
        // entry under the reader's name when the reader has no entry of its own: the context
        // keeps that entry from granting anyone else, as it might be the (unknown) owner's.
        // An entry under that name whose rights are exactly the service account's MYRIGHTS is
        // its own entry, though (the usual set-up: an admin granted it `l r a`), and it is
        // read as such; otherwise it would cap everyone's rights at the service account's.
        let mut own = f
            .entries
            .iter()
            .filter(|e| e.identifier == *self.service_user);
        let own_entry = match (own.next(), own.next(), f.service_rights.as_deref()) {
            (Some(e), None, Some(mine)) => {
                Rights::from_server(&e.rights) == Rights::from_server(mine)
            }
            _ => false,
        };
        let context = flagpost_domain::acl::AclContext {
            owner: None,
            reader: (!own_entry).then_some(&*self.service_user),
            dialect: self.dialect,
        };
        flagpost_domain::acl::effective_rights_with(&entries, username, &context)
    }

    /// Whether the principal may see the folder and read what is in it (also for removed
    /// folders, whose past events stay readable by the same rules).
    pub fn can_read(&self, p: &Principal, folder_id: i64) -> bool {
        if !p.scopes.read || !self.folders.contains_key(&folder_id) {
            return false;
        }
        if p.admin {
            return true;
        }
        let r = self.imap_rights(p.rights_name(), folder_id);
        r.contains(Right::Lookup) && r.contains(Right::Read)
    }

    /// Watched (not removed) folders the principal may read.
    pub fn readable_folders(&self, p: &Principal) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .folders
            .values()
            .filter(|f| !f.removed && self.can_read(p, f.folder_id))
            .map(|f| f.folder_id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Folders, removed ones included, whose events the principal may read.
    pub fn readable_events_folders(&self, p: &Principal) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .folders
            .keys()
            .copied()
            .filter(|id| self.can_read(p, *id))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// 404 unless the folder is watched and readable by the principal.
    pub fn require_read(&self, p: &Principal, folder_id: i64) -> Result<(), ApiError> {
        p.need_scope(p.scopes.read, "read")?;
        match self.folders.get(&folder_id) {
            Some(f) if !f.removed && self.can_read(p, folder_id) => Ok(()),
            _ => Err(not_found("folder")),
        }
    }

    /// 404 unless readable, then 403 unless the principal's own IMAP rights hold every one of
    /// `rights` (flag changes: `w`, `s`).
    pub fn require_rights(
        &self,
        p: &Principal,
        folder_id: i64,
        rights: &[Right],
    ) -> Result<(), ApiError> {
        self.require_read(p, folder_id)?;
        let have = self.imap_rights(p.rights_name(), folder_id);
        if let Some(missing) = rights.iter().find(|r| !have.contains(**r)) {
            return Err(ApiError::Forbidden(format!(
                "you lack the {:?} right on this folder (your rights: {:?})",
                missing.letter().to_string(),
                have.to_string()
            )));
        }
        Ok(())
    }

    /// 404 unless readable, then 403 unless the principal holds `a` (or is a service admin)
    /// and, for tokens, the `acl` scope.
    pub fn require_admin_of(&self, p: &Principal, folder_id: i64) -> Result<(), ApiError> {
        p.need_scope(p.scopes.acl, "acl")?;
        self.require_read(p, folder_id)?;
        if p.admin
            || self
                .imap_rights(p.rights_name(), folder_id)
                .contains(Right::Administer)
        {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "you lack the \"a\" right on this folder".into(),
            ))
        }
    }

    /// The rights string shown as `my_rights`.
    pub fn my_rights(&self, p: &Principal, folder_id: i64) -> String {
        self.imap_rights(p.rights_name(), folder_id).to_string()
    }
}

/// The 404 every absent or invisible thing answers, alike.
pub fn not_found(what: &str) -> ApiError {
    ApiError::NotFound(format!("no such {what}"))
}
