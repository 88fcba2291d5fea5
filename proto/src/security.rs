//! What every gRPC call carries besides its message: a bearer token in the
//! `authorization` metadata, and optionally TLS (rustls), mutual when the
//! coordinator asks for client certificates. Both ends of the contract are
//! here so that the header, its scheme and the error texts exist once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic::{Request, Status};

/// The environment variable that may hold the token itself.
pub const TOKEN_ENV: &str = "STAMPEDE_TOKEN";

/// Why a token, a TLS file or a coordinator URL cannot be used; each says
/// which file or flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("the token is empty")]
    EmptyToken,
    #[error("the token must be printable ASCII without spaces")]
    UnprintableToken,
    /// A token that came from `from` (a file, or the variable).
    #[error("{from}: {error}")]
    BadToken { from: String, error: Box<SecurityError> },
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("`{url}` is not a valid URL ({message}); write it like http://127.0.0.1:7700")]
    BadUrl { url: String, message: String },
    /// Flags that must be given together.
    #[error("{0}")]
    Flags(&'static str),
    #[error("TLS set-up failed: {0}")]
    Setup(String),
}

/// A shared secret. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// A token from text; surrounding white space (a file's last newline) is
    /// not part of it.
    pub fn new(text: &str) -> Result<Self, SecurityError> {
        let token = text.trim();
        if token.is_empty() {
            return Err(SecurityError::EmptyToken);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SecurityError::UnprintableToken);
        }
        Ok(Self(token.into()))
    }

    /// The token from `file` if given, else from `STAMPEDE_TOKEN`, else none.
    pub fn resolve(file: Option<&Path>) -> Result<Option<Self>, SecurityError> {
        let bad = |from: String| move |error| SecurityError::BadToken { from, error: Box::new(error) };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| SecurityError::Read {
                what: "token file",
                path: path.to_path_buf(),
                source,
            })?;
            return Self::new(&text).map(Some).map_err(bad(path.display().to_string()));
        }
        match std::env::var(TOKEN_ENV) {
            Ok(text) => Self::new(&text).map(Some).map_err(bad(TOKEN_ENV.to_string())),
            Err(_) => Ok(None),
        }
    }

    /// A fresh random token (for the in-process coordinator of `stampede run`).
    pub fn random() -> Self {
        use rand::Rng;
        let bytes: [u8; 24] = rand::rng().random();
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into())
    }

    fn header(&self) -> Option<MetadataValue<Ascii>> {
        format!("Bearer {}", self.0).parse().ok()
    }
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Server side: every call must carry `authorization: Bearer <token>`
/// when the coordinator has a token.
#[derive(Clone, Debug)]
pub struct TokenCheck(Option<Token>);

impl TokenCheck {
    pub fn new(token: Option<Token>) -> Self {
        Self(token)
    }
}

impl TokenCheck {
    /// Whether calls must carry a token.
    pub fn required(&self) -> bool {
        self.0.is_some()
    }

    /// Checks an `authorization` header value (`Bearer TOKEN`); the error
    /// says what to do.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> Result<(), &'static str> {
        let Some(expected) = &self.0 else { return Ok(()) };
        let Some(given) = authorization else {
            return Err("this coordinator requires a token: pass --token-file FILE or set STAMPEDE_TOKEN");
        };
        let given = given.strip_prefix(b"Bearer ").unwrap_or_default();
        if same_secret(given, expected.0.as_bytes()) {
            Ok(())
        } else {
            Err("the token was not accepted: use the coordinator's token")
        }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").map(|value| value.as_bytes());
        self.accepts(header).map_err(Status::unauthenticated)?;
        Ok(request)
    }
}

/// Client side: adds the bearer token (if any) to every call.
#[derive(Clone, Debug, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the token.
pub type AuthChannel = InterceptedService<Channel, BearerToken>;

/// PEM files for TLS on the client side.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsFiles {
    /// CA that signed the coordinator's certificate (default: none, so the
    /// URL must then be `http://`).
    pub ca: Option<PathBuf>,
    /// Client certificate and key, for a coordinator that requires them.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// How a client (agent or CLI) reaches the coordinator.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    pub token: Option<Token>,
    pub tls: ClientTlsFiles,
}

fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read { what, path: path.to_path_buf(), source })
}

fn pem(path: &Path, message: String) -> SecurityError {
    SecurityError::Pem { path: path.to_path_buf(), message }
}

impl ClientSecurity {
    /// The endpoint for `url` with TLS set up when the URL is `https://` or
    /// a CA is given.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, SecurityError> {
        let https = url.starts_with("https://");
        let url = match (&self.tls.ca, url.strip_prefix("http://")) {
            (Some(_), Some(rest)) => format!("https://{rest}"),
            _ => url.to_string(),
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| SecurityError::BadUrl { url: url.clone(), message: e.to_string() })?
            .connect_timeout(Duration::from_secs(5));
        if https || self.tls.ca.is_some() {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.tls.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read_pem(ca, "CA certificate")?));
            }
            match (&self.tls.cert, &self.tls.key) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(Identity::from_pem(
                        read_pem(cert, "client certificate")?,
                        read_pem(key, "client key")?,
                    ));
                }
                (None, None) => {}
                _ => return Err(SecurityError::Flags("--tls-cert and --tls-key go together")),
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| SecurityError::Setup(e.to_string()))?;
        }
        Ok(endpoint)
    }

    /// Wraps a connected channel so that its calls carry the token.
    pub fn authorize(&self, channel: Channel) -> AuthChannel {
        InterceptedService::new(channel, BearerToken(self.token.as_ref().and_then(Token::header)))
    }
}

/// The coordinator's side: its token and TLS files.
#[derive(Debug, Clone, Default)]
pub struct ServerSecurity {
    pub token: Option<Token>,
    /// Certificate and key to serve TLS with.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CA for client certificates: with it, TLS is mutual and a client
    /// without a certificate signed by it cannot connect.
    pub client_ca: Option<PathBuf>,
}

impl ServerSecurity {
    /// The same certificate, key and client CA as a rustls configuration,
    /// for the coordinator's HTTP port; none without TLS.
    pub fn rustls(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, SecurityError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        if self.tls()?.is_none() {
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else { return Ok(None) };
        let certs = CertificateDer::pem_slice_iter(&read_pem(cert, "certificate")?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(cert, format!("no PEM certificate ({e})")))?;
        let key = PrivateKeyDer::from_pem_slice(&read_pem(key, "key")?)
            .map_err(|e| pem(key, format!("no PEM private key ({e})")))?;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SecurityError::Setup(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&read_pem(ca, "client CA certificate")?) {
                    let cert = cert.map_err(|e| pem(ca, format!("no PEM certificate ({e})")))?;
                    roots.add(cert).map_err(|e| pem(ca, e.to_string()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| pem(ca, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| SecurityError::Setup(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(std::sync::Arc::new(config)))
    }

    /// The TLS configuration, or none for plain HTTP/2.
    pub fn tls(&self) -> Result<Option<ServerTlsConfig>, SecurityError> {
        let (cert, key) = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) if self.client_ca.is_some() => {
                return Err(SecurityError::Flags("--tls-client-ca needs --tls-cert and --tls-key"));
            }
            (None, None) => return Ok(None),
            _ => return Err(SecurityError::Flags("--tls-cert and --tls-key go together")),
        };
        let mut tls =
            ServerTlsConfig::new().identity(Identity::from_pem(read_pem(cert, "certificate")?, read_pem(key, "key")?));
        if let Some(ca) = &self.client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(read_pem(ca, "client CA certificate")?));
        }
        Ok(Some(tls))
    }

    pub fn token_check(&self) -> TokenCheck {
        TokenCheck::new(self.token.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(check: &mut TokenCheck, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut request = Request::new(());
        if let Some(value) = header {
            request.metadata_mut().insert("authorization", value.parse().expect("ascii"));
        }
        check.call(request).map(|_| ()).map_err(|s| s.code())
    }

    #[test]
    fn only_the_exact_token_passes() {
        let mut check = TokenCheck::new(Some(Token::new("s3cret-token\n").expect("token")));
        assert_eq!(call(&mut check, Some("Bearer s3cret-token")), Ok(()));
        assert_eq!(call(&mut check, None), Err(tonic::Code::Unauthenticated));
        assert_eq!(call(&mut check, Some("Bearer s3cret-toke")), Err(tonic::Code::Unauthenticated));
        assert_eq!(call(&mut check, Some("Bearer s3cret-tokenX")), Err(tonic::Code::Unauthenticated));
        assert_eq!(call(&mut check, Some("s3cret-token")), Err(tonic::Code::Unauthenticated));
        assert_eq!(call(&mut TokenCheck::new(None), None), Ok(()));
    }

    #[test]
    fn a_token_is_never_printed_and_must_be_usable() {
        let token = Token::new("abc").expect("token");
        assert_eq!(format!("{token:?}"), "Token(***)");
        assert!(Token::new("  \n").is_err());
        assert!(Token::new("two words").is_err());
        let mut bearer = BearerToken(token.header());
        let request = bearer.call(Request::new(())).expect("call");
        assert_eq!(request.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer abc"));
        assert_ne!(Token::random(), Token::random());
    }
}
