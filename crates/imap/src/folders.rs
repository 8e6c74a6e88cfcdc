//! Folder discovery (LIST with the configured patterns) and the service account's own rights.

use flagpost_domain::{Rights, decode_mailbox_name, encode_mailbox_name};
use imap_proto::{MailboxDatum, MailboxListData, NameAttribute, Response};

use crate::command::{quote, run, run_raw};
use crate::connect::{ConnectError, Session};

/// One mailbox that LIST returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFolder {
    /// The name as sent on the wire (modified UTF-7).
    pub imap_name: String,
    /// The readable name (falls back to the raw name if it does not decode).
    pub name: String,
    /// The hierarchy delimiter.
    pub delimiter: Option<String>,
}

/// Runs `LIST "" <pattern>` for each pattern (UTF-8; `*` and `%` wildcards) and returns the
/// selectable mailboxes, each once, in the order first seen.
pub async fn list_folders(
    session: &mut Session,
    patterns: &[String],
) -> Result<Vec<ListedFolder>, ConnectError> {
    let mut out: Vec<ListedFolder> = Vec::new();
    for pattern in patterns {
        let arg = quote(&encode_mailbox_name(pattern))
            .map_err(|e| ConnectError::Protocol(format!("folder pattern {pattern:?}: {e}")))?;
        run_raw(session, &format!("LIST \"\" {arg}"), |d, raw| {
            let Response::MailboxData(MailboxDatum::List(MailboxListData {
                name_attributes,
                delimiter,
                name,
            })) = d
            else {
                return;
            };
            let unselectable = name_attributes
                .iter()
                .any(|a| matches!(a, NameAttribute::NoSelect) || is_nonexistent(a));
            if unselectable || out.iter().any(|f| f.imap_name == *name) {
                return;
            }
            let name = crate::fetch::unescape_in_str(Some(raw), name);
            if out.iter().any(|f| f.imap_name == name) {
                return;
            }
            out.push(ListedFolder {
                name: decode_mailbox_name(&name).unwrap_or_else(|_| name.clone()),
                imap_name: name,
                delimiter: delimiter.as_deref().map(str::to_owned),
            });
        })
        .await?;
    }
    Ok(out)
}

/// `MYRIGHTS` (RFC 4314 §3.5): the logged-in user's rights on `imap_name`.
pub async fn my_rights(session: &mut Session, imap_name: &str) -> Result<Rights, ConnectError> {
    let arg = quote(imap_name).map_err(|e| ConnectError::Protocol(e.to_string()))?;
    let mut rights = None;
    run(session, &format!("MYRIGHTS {arg}"), |d| {
        if let Response::MyRights(r) = d {
            rights = Some(rights_of(&r.rights));
        }
    })
    .await?;
    rights
        .ok_or_else(|| ConnectError::Protocol(format!("MYRIGHTS {imap_name:?} returned no rights")))
}

/// The rights of a MYRIGHTS or ACL response, parsed as [`Rights::from_server`] does.
pub(crate) fn rights_of(rights: &[imap_proto::rfc4314::AclRight]) -> Rights {
    let letters: String = rights.iter().map(|r| right_letter(*r)).collect();
    Rights::from_server(&letters)
}

fn right_letter(r: imap_proto::rfc4314::AclRight) -> char {
    use imap_proto::rfc4314::AclRight as R;
    match r {
        R::Lookup => 'l',
        R::Read => 'r',
        R::Seen => 's',
        R::Write => 'w',
        R::Insert => 'i',
        R::Post => 'p',
        R::CreateMailbox => 'k',
        R::DeleteMailbox => 'x',
        R::DeleteMessage => 't',
        R::Expunge => 'e',
        R::Administer => 'a',
        R::Annotation => 'n',
        R::OldCreate => 'c',
        R::OldDelete => 'd',
        R::Custom(c) => c,
    }
}

/// `\NonExistent` (RFC 5258) arrives as an extension attribute.
fn is_nonexistent(a: &NameAttribute<'_>) -> bool {
    matches!(a, NameAttribute::Extension(e) if e.eq_ignore_ascii_case("\\NonExistent"))
}

/// `GETACL` (RFC 4314 §3.3): the folder's ACL as (identifier, rights) pairs, rights in canonical
/// order. Needs the `a` right.
pub async fn get_acl(
    session: &mut Session,
    imap_name: &str,
) -> Result<Vec<(String, Rights)>, ConnectError> {
    let arg = quote(imap_name).map_err(|e| ConnectError::Protocol(e.to_string()))?;
    let mut entries = Vec::new();
    run_raw(session, &format!("GETACL {arg}"), |d, raw| {
        if let Response::Acl(acl) = d {
            for e in &acl.acls {
                entries.push((
                    crate::fetch::unescape_in_str(Some(raw), &e.identifier),
                    rights_of(&e.rights),
                ));
            }
        }
    })
    .await?;
    Ok(entries)
}
