//! What tests need of a private IMAP server, whichever implementation runs it ([`crate::Dovecot`],
//! [`crate::Cyrus`]): where it listens, the CA that signed its certificate, its users, and a
//! logged-in client.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Result, anyhow};

use crate::imap_client::ImapClient;
use crate::tls::TestCertificates;

/// The users a fixture created and their passwords.
#[derive(Debug, Default)]
pub struct Accounts(Mutex<BTreeMap<String, String>>);

impl Accounts {
    /// Records `name`'s password; returns every account afterwards, by name.
    pub fn insert(&self, name: &str, password: &str) -> BTreeMap<String, String> {
        let mut users = self.0.lock().expect("accounts lock");
        users.insert(name.to_owned(), password.to_owned());
        users.clone()
    }

    /// The password of `user`.
    pub fn password(&self, user: &str) -> Result<String> {
        self.0
            .lock()
            .expect("accounts lock")
            .get(user)
            .cloned()
            .ok_or_else(|| anyhow!("no fixture user {user:?}"))
    }
}

/// A private IMAP server of the harness, as its clients reach it.
pub trait ImapFixture: Sync {
    /// The implicit-TLS IMAP port.
    fn imaps_port(&self) -> u16;

    /// The fixture's certificates.
    fn certificates(&self) -> &TestCertificates;

    /// The fixture's users.
    fn accounts(&self) -> &Accounts;

    /// The host clients connect to.
    fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The CA (PEM) that signed the server's certificate.
    fn ca_file(&self) -> &Path {
        &self.certificates().ca_file
    }

    /// The password the fixture gave `user`.
    fn password(&self, user: &str) -> Result<String> {
        self.accounts().password(user)
    }

    /// A raw IMAP client logged in as `user` over implicit TLS.
    fn client(&self, user: &str) -> impl Future<Output = Result<ImapClient>> + Send {
        async move {
            let mut c = ImapClient::connect_tls(self.imaps_port(), self.certificates()).await?;
            c.login(user, &self.password(user)?).await?;
            Ok(c)
        }
    }
}
