//! The `/api/v1` handlers, one module per resource.

pub mod acl;
pub mod events;
pub mod folders;
pub mod messages;
pub mod session;
pub mod tokens;
pub mod webhooks;
