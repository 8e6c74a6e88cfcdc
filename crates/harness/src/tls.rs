//! A throwaway certificate authority and a server certificate for `localhost` / `127.0.0.1`.
//!
//! rustls refuses a self-signed CA certificate used directly as a server certificate, so the
//! fixture is a small CA plus a leaf signed by it, as a real deployment would have.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// PEM files of a CA and a leaf certificate it signed.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA certificate (PEM) that clients must trust.
    pub ca_file: PathBuf,
    /// The server's certificate (PEM).
    pub cert_file: PathBuf,
    /// The server's private key (PEM).
    pub key_file: PathBuf,
}

impl TestCertificates {
    /// Generates a CA and a leaf for `localhost` and `127.0.0.1` into `dir`.
    pub fn generate(dir: &Path) -> Result<TestCertificates> {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Flagpost test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

        let leaf_key = KeyPair::generate().context("generating the server key")?;
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

        let certs = TestCertificates {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
        };
        std::fs::write(&certs.ca_file, ca.pem())?;
        std::fs::write(&certs.cert_file, leaf.pem())?;
        std::fs::write(&certs.key_file, leaf_key.serialize_pem())?;
        Ok(certs)
    }

    /// A TLS connector that trusts only this CA.
    pub fn connector(&self) -> Result<tokio_rustls::TlsConnector> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_file)? {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// The server name clients use for the fixture.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("valid name")
}
