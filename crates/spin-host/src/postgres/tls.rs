//! TLS for outbound PostgreSQL on rustls.
//!
//! Spin uses `postgres-native-tls` (OpenSSL on Linux) with certificate and host name
//! verification against the system trust store for every `sslmode` except `disable`. This
//! connector does the same with rustls 0.22 (already in the tree through wasmtime-wasi-http,
//! no C dependency): it trusts the system bundle (`SSL_CERT_FILE`, or the usual distribution
//! paths) plus the Mozilla roots of `webpki-roots`, verifies the server's name or IP
//! address, and offers `tls-server-end-point` channel binding as native-tls does, so SCRAM
//! authentication negotiates `SCRAM-SHA-256-PLUS` where the server offers it.
//!
//! Error texts differ from OpenSSL's. Against the local self-signed server this host says
//! `... error performing TLS handshake: invalid peer certificate: UnknownIssuer` where Spin
//! 4.0.2 said `... error performing TLS handshake: error:0A000086:SSL
//! routines:tls_post_process_server_certificate:certificate verify failed:...: (IP address
//! mismatch)`; both are `ConnectionFailed` from `open`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// Makes verifying rustls connections; cheap to clone (one shared client configuration).
#[derive(Clone)]
pub(crate) struct MakeRustlsConnect {
    config: Arc<rustls::ClientConfig>,
}

impl MakeRustlsConnect {
    pub(crate) fn new() -> Self {
        static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
        let config = CONFIG
            .get_or_init(|| {
                Arc::new(
                    rustls::ClientConfig::builder()
                        .with_root_certificates(root_store())
                        .with_no_client_auth(),
                )
            })
            .clone();
        Self { config }
    }
}

fn root_store() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // Where OpenSSL (and so native-tls) looks by default on common distributions.
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates = from_env
        .into_iter()
        .chain(BUNDLES.iter().map(std::path::PathBuf::from));
    for path in candidates {
        if let Ok(pem) = std::fs::read(&path) {
            let (certs, _) = parse_pem_certificates(&pem);
            roots.add_parsable_certificates(certs);
            break;
        }
    }
    // OpenSSL also looks certificates up by subject hash in its certificate directory
    // (`SSL_CERT_DIR`, else /etc/ssl/certs): files named `<8 hex digits>.<n>`. A
    // certificate trusted only that way (c_rehash'ed, not in the bundle) is trusted by
    // Spin, so here too.
    let dir = std::env::var_os("SSL_CERT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/etc/ssl/certs".into());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if is_subject_hash_name(&entry.file_name().to_string_lossy()) {
            if let Ok(pem) = std::fs::read(entry.path()) {
                roots.add_parsable_certificates(parse_pem_certificates(&pem).0);
            }
        }
    }
    roots
}

/// `5ad8a5d6.0`: the name OpenSSL's `c_rehash` gives a trusted certificate.
fn is_subject_hash_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((hash, n)) => {
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The `CERTIFICATE` blocks of a PEM file that parse, and how many did not.
fn parse_pem_certificates(pem: &[u8]) -> (Vec<rustls::pki_types::CertificateDer<'static>>, usize) {
    use rustls::pki_types::pem::PemObject as _;
    let mut certs = Vec::new();
    let mut bad = 0;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
        match cert {
            Ok(cert) => certs.push(cert),
            Err(_) => bad += 1,
        }
    }
    (certs, bad)
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        let server_name = ServerName::try_from(domain)?.to_owned();
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            server_name,
        })
    }
}

pub(crate) struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.connector.connect(self.server_name, stream).await?;
            Ok(RustlsStream(stream))
        })
    }
}

pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| tls_server_end_point(cert.as_ref()))
            .map(ChannelBinding::tls_server_end_point)
            .unwrap_or_else(ChannelBinding::none)
    }
}

/// RFC 5929 `tls-server-end-point`: the certificate's hash with the hash function of its
/// signature algorithm, SHA-256 for MD5 and SHA-1; none for other algorithms (as OpenSSL).
fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    enum Hash {
        Sha224,
        Sha256,
        Sha384,
        Sha512,
    }
    let oid = signature_algorithm_oid(cert_der)?;
    // 1.2.840.113549.1.1.x (RSA PKCS#1) and 1.2.840.10045.4.x (ECDSA)
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    let hash = if let Some(last) = oid.strip_prefix(RSA) {
        match last {
            [0x04] | [0x05] | [0x0b] => Hash::Sha256, // md5, sha1, sha256
            [0x0e] => Hash::Sha224,
            [0x0c] => Hash::Sha384,
            [0x0d] => Hash::Sha512,
            _ => return None,
        }
    } else if oid == ECDSA_SHA1 {
        Hash::Sha256
    } else if let Some(last) = oid.strip_prefix(ECDSA_SHA2) {
        match last {
            [0x01] => Hash::Sha224,
            [0x02] => Hash::Sha256,
            [0x03] => Hash::Sha384,
            [0x04] => Hash::Sha512,
            _ => return None,
        }
    } else {
        return None;
    };
    Some(match hash {
        Hash::Sha224 => sha2::Sha224::digest(cert_der).to_vec(),
        Hash::Sha256 => sha2::Sha256::digest(cert_der).to_vec(),
        Hash::Sha384 => sha2::Sha384::digest(cert_der).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(cert_der).to_vec(),
    })
}

/// Reads one DER TLV: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let len = input[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        input = &input[n..];
        len
    };
    if input.len() < len {
        return None;
    }
    Some((tag, &input[..len], &input[len..]))
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, ... }`
/// → the OID (contents octets) of `signatureAlgorithm`.
fn signature_algorithm_oid(cert_der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (tag, cert, _) = der_tlv(cert_der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _tbs, rest) = der_tlv(cert)?;
    let (tag, alg, _) = der_tlv(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, oid, _) = der_tlv(alg)?;
    (tag == OID).then_some(oid)
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_subject_hash_names_are_read_from_the_certificate_directory() {
        assert!(super::is_subject_hash_name("5ad8a5d6.0"));
        assert!(super::is_subject_hash_name("ABCDEF01.12"));
        assert!(!super::is_subject_hash_name("ca-certificates.crt"));
        assert!(!super::is_subject_hash_name("5ad8a5d6"));
        assert!(!super::is_subject_hash_name("5ad8a5d.0"));
        assert!(!super::is_subject_hash_name("5ad8a5d6.x"));
    }

    use super::*;

    /// A minimal certificate-shaped DER value with the given signature algorithm OID.
    fn fake_cert(oid: &[u8]) -> Vec<u8> {
        let tbs = [0x30, 0x03, 0x02, 0x01, 0x01];
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        alg.extend_from_slice(&[0x05, 0x00]);
        let mut alg_seq = vec![0x30, alg.len() as u8];
        alg_seq.extend(alg);
        let sig = [0x03, 0x02, 0x00, 0xff];
        let mut body = tbs.to_vec();
        body.extend(alg_seq);
        body.extend_from_slice(&sig);
        let mut cert = vec![0x30, 0x81, body.len() as u8];
        cert.extend(body);
        cert
    }

    #[test]
    fn end_point_hash_follows_signature_algorithm() {
        let sha256_rsa = fake_cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]);
        assert_eq!(tls_server_end_point(&sha256_rsa).unwrap().len(), 32);
        let sha1_rsa = fake_cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        assert_eq!(
            tls_server_end_point(&sha1_rsa).unwrap(),
            sha2::Sha256::digest(&sha1_rsa).to_vec()
        );
        let ecdsa384 = fake_cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        assert_eq!(tls_server_end_point(&ecdsa384).unwrap().len(), 48);
        let rsa512 = fake_cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]);
        assert_eq!(tls_server_end_point(&rsa512).unwrap().len(), 64);
        let ed25519 = fake_cert(&[0x2b, 0x65, 0x70]);
        assert!(tls_server_end_point(&ed25519).is_none());
        assert!(tls_server_end_point(&[0x30, 0x05, 0x01]).is_none());
    }

    #[test]
    fn pem_bundle_parsing() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n\
                   -----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n\
                   -----BEGIN CERTIFICATE-----\nBAU=\n-----END CERTIFICATE-----\n";
        let (certs, bad) = parse_pem_certificates(pem.as_bytes());
        assert_eq!(bad, 0);
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].as_ref(), &[0, 1, 2, 3]);
        assert_eq!(certs[1].as_ref(), &[4, 5]);
    }
}
