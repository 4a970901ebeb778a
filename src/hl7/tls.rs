//! TLS for MLLP (docs/hl7.md, "TLS"): the listener's rustls configuration from PEM
//! files, optionally asking every interface engine for a client certificate signed by
//! a configured CA (MLLP itself has no authentication), and the sender's.
//! ring is the only crypto provider, as for the notification client.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("{} holds no PEM private key", path.display()))
}

fn roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store
            .add(c)
            .with_context(|| format!("a certificate in {} is not a usable CA", path.display()))?;
    }
    Ok(store)
}

/// The listener's TLS: its certificate chain and key; with `client_ca`, only clients
/// presenting a certificate that CA signed get past the handshake.
pub fn server_config(
    cert: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .with_context(|| format!("client certificate verification with {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs(cert)?, key(key_file)?)
        .with_context(|| {
            format!(
                "{} and {} do not make a certificate and its key",
                cert.display(),
                key_file.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// The sender's TLS: trusts the CA in `ca`; presents `identity` (certificate, key)
/// when given.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots(ca)?);
    let config = match identity {
        Some((cert, key_file)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_file)?)
            .context("the client certificate and key")?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name the listener's certificate must carry for `addr` (`HOST:PORT`).
pub fn server_name(addr: &str) -> anyhow::Result<ServerName<'static>> {
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .with_context(|| format!("'{host}' is not a host name or address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/tls")
            .join(name)
    }

    #[test]
    fn the_fixtures_make_server_and_client_configurations() {
        let ca = fixture("client-ca.pem");
        server_config(&fixture("server.pem"), &fixture("server.key"), Some(&ca)).unwrap();
        client_config(
            &fixture("ca.pem"),
            Some((&fixture("client.pem"), &fixture("client.key"))),
        )
        .unwrap();
    }

    #[test]
    fn bad_files_are_named() {
        let e = server_config(&fixture("server.key"), &fixture("server.key"), None).unwrap_err();
        assert!(format!("{e:#}").contains("server.key"), "{e:#}");
        let e = server_config(&fixture("server.pem"), &fixture("missing.key"), None).unwrap_err();
        assert!(format!("{e:#}").contains("missing.key"), "{e:#}");
        // A key that is not the certificate's.
        let e = server_config(&fixture("server.pem"), &fixture("client.key"), None).unwrap_err();
        assert!(format!("{e:#}").contains("do not make"), "{e:#}");
    }

    #[test]
    fn server_names_from_addresses() {
        assert!(server_name("127.0.0.1:2575").is_ok());
        assert!(server_name("localhost:2575").is_ok());
        assert!(server_name("[::1]:2575").is_ok());
        assert!(server_name("bad host:1").is_err());
    }
}
