//! Flagpost's IMAP side: connections over verified TLS (implicit or STARTTLS), the raw
//! commands async-imap lacks (RFC 4314 ACL, `CAPABILITY` in server order), argument quoting that
//! cannot be turned into a second command, and folder discovery.

pub mod command;
pub mod conn;
pub mod connect;
pub mod fetch;
pub mod folders;
pub mod mirror;
pub mod ops;
pub mod sync;
pub mod watch;

pub use command::{ImapArgError, quote};
pub use connect::{ConnectError, ImapSettings, Session, TlsMode, login};
pub use folders::{ListedFolder, get_acl, list_folders, my_rights};
