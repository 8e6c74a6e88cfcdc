//! The API's IMAP operations (`flagpost_api::gateway::ImapGateway`), carried out with the
//! `imap` crate: LOGIN checks for staff sessions, and flag and ACL writes as the service
//! account, each ACL write followed by a re-read of the folder's ACL into the mirror.

use flagpost_api::gateway::{Expectation, FlagChange, FlagOutcome, GatewayError, ImapGateway};
use flagpost_domain::Rights;
use flagpost_imap::ImapSettings;
use flagpost_imap::ops::{Expect, LoginCheckError, StoreOutcome, WriteError, Writer};
use flagpost_store::PgPool;
use flagpost_store::folders::AclEntry;
use futures::future::BoxFuture;

/// The IMAP side of the API.
#[derive(Debug, Clone)]
pub struct ImapBackend {
    settings: ImapSettings,
    writer: Writer,
    pool: PgPool,
}

impl ImapBackend {
    /// Writes as `user`, checks logins against the same server.
    pub fn new(settings: ImapSettings, user: &str, password: &str, pool: PgPool) -> ImapBackend {
        ImapBackend {
            writer: Writer::new(settings.clone(), user, password),
            settings,
            pool,
        }
    }

    /// Re-reads a folder's ACL and the service account's rights into the mirror.
    async fn refresh_acl(&self, folder_id: i64, imap_name: &str) -> Result<(), GatewayError> {
        let entries: Vec<AclEntry> = self
            .writer
            .get_acl(imap_name)
            .await
            .map_err(write_error)?
            .into_iter()
            .map(|(identifier, rights)| AclEntry {
                identifier,
                rights: rights.to_string(),
            })
            .collect();
        let mine = self
            .writer
            .my_rights(imap_name)
            .await
            .map_err(write_error)?;
        flagpost_store::folders::replace_acl(
            &self.pool,
            folder_id,
            Some(&entries),
            &mine.to_string(),
        )
        .await
        .map_err(|e| GatewayError::Unavailable(format!("database: {e}")))?;
        Ok(())
    }
}

fn write_error(e: WriteError) -> GatewayError {
    match e {
        WriteError::InvalidArgument(d) => GatewayError::InvalidArgument(d),
        WriteError::Rejected { text, .. } => {
            GatewayError::InvalidArgument(format!("the IMAP server rejected the value: {text}"))
        }
        WriteError::Refused { code, .. }
            if code
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("NONEXISTENT")) =>
        {
            GatewayError::Gone
        }
        WriteError::UidValidityChanged { .. } => GatewayError::Gone,
        e @ (WriteError::Refused { .. } | WriteError::NotPermitted { .. }) => {
            GatewayError::Refused(e.to_string())
        }
        e => GatewayError::Unavailable(e.to_string()),
    }
}

impl ImapGateway for ImapBackend {
    fn verify_login<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(async move {
            flagpost_imap::ops::verify_login(&self.settings, username, password)
                .await
                .map_err(|e| match e {
                    LoginCheckError::BadCredentials(_) => GatewayError::BadCredentials,
                    LoginCheckError::InvalidInput => GatewayError::InvalidArgument(e.to_string()),
                    e => GatewayError::Unavailable(e.to_string()),
                })
        })
    }

    fn store_flags<'a>(
        &'a self,
        change: FlagChange<'a>,
    ) -> BoxFuture<'a, Result<FlagOutcome, GatewayError>> {
        Box::pin(async move {
            let expect = change.expect.map(|e| match e {
                Expectation::ModSeq(m) => Expect::ModSeq(m),
                Expectation::Flags(f) => Expect::Flags(f),
            });
            let outcome = self
                .writer
                .store_flags(
                    change.imap_name,
                    change.uidvalidity,
                    change.uid,
                    &change.add,
                    &change.remove,
                    expect,
                )
                .await;
            match outcome {
                Ok(StoreOutcome::Stored { flags, modseq }) => {
                    Ok(FlagOutcome::Stored { flags, modseq })
                }
                Ok(StoreOutcome::Conflict { .. }) | Err(WriteError::ModSeqUnsupported { .. }) => {
                    Ok(FlagOutcome::Conflict)
                }
                Ok(StoreOutcome::Gone) => Ok(FlagOutcome::Gone),
                Err(e) => Err(write_error(e)),
            }
        })
    }

    fn grantable_rights<'a>(
        &'a self,
        imap_name: &'a str,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(async move {
            // LISTRIGHTS names the identifier, not the entry: a negative entry `-name` can
            // hold what `name` could be granted.
            let who = identifier.strip_prefix('-').unwrap_or(identifier);
            let listed = self
                .writer
                .list_rights(imap_name, who)
                .await
                .map_err(write_error)?;
            let offered: Rights = listed.required.union(listed.optional);
            Ok(offered.to_string())
        })
    }

    fn set_acl<'a>(
        &'a self,
        folder_id: i64,
        imap_name: &'a str,
        identifier: &'a str,
        rights: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            self.writer
                .set_acl(imap_name, identifier, rights)
                .await
                .map_err(write_error)?;
            self.refresh_acl(folder_id, imap_name).await
        })
    }

    fn delete_acl<'a>(
        &'a self,
        folder_id: i64,
        imap_name: &'a str,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            self.writer
                .delete_acl(imap_name, identifier)
                .await
                .map_err(write_error)?;
            self.refresh_acl(folder_id, imap_name).await
        })
    }
}
