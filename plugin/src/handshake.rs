//! go-plugin's handshake with Terraform: cookie and protocol checks, the listener (unix socket
//! or TCP), AutoMTLS against the host's P-521 client certificate, the stdout line, and `-debug`.

use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use base64::Engine as _;
use p521::ecdsa::signature::hazmat::PrehashVerifier;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, PrivatePkcs8KeyDer,
    SignatureVerificationAlgorithm, UnixTime, alg_id,
};
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::Provider;
use crate::error::{Error, Result};
use crate::server;

/// Environment variable and value Terraform sets so that a plugin knows it was started by Terraform.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// The value of [`MAGIC_COOKIE_KEY`] for Terraform providers (a fixed, public value).
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own protocol version: the first field of the handshake line.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The Terraform plugin protocol this crate speaks (tfplugin6).
pub const PROTOCOL_VERSION: u32 = 6;

/// How long a connecting client may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After go-plugin's Shutdown call, how long connections may take to close before we exit anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The go-plugin environment Terraform sets for the plugin. Empty variables count as unset.
///
/// ```
/// use tfplugin::handshake::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, PluginEnv, check_cookie};
///
/// let env = PluginEnv::from_lookup("ECHO_PLUGIN_NETWORK", |key| match key {
///     MAGIC_COOKIE_KEY => Some(MAGIC_COOKIE_VALUE.to_string()),
///     "PLUGIN_PROTOCOL_VERSIONS" => Some("5,6".to_string()),
///     _ => None,
/// });
/// assert!(check_cookie(&env).is_ok());
/// assert_eq!(env.protocol_versions.as_deref(), Some("5,6"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct PluginEnv {
    /// `TF_PLUGIN_MAGIC_COOKIE`: proves that Terraform started the process.
    pub magic_cookie: Option<String>,
    /// `PLUGIN_PROTOCOL_VERSIONS`: the protocol versions the host speaks, comma-separated.
    pub protocol_versions: Option<String>,
    /// `PLUGIN_MIN_PORT`: the lowest TCP port the plugin may listen on.
    pub min_port: Option<String>,
    /// `PLUGIN_MAX_PORT`: the highest TCP port the plugin may listen on.
    pub max_port: Option<String>,
    /// `PLUGIN_UNIX_SOCKET_DIR`: where to create the unix socket.
    pub unix_socket_dir: Option<PathBuf>,
    /// PEM of the host's certificate; its presence turns on AutoMTLS.
    pub client_cert: Option<String>,
    /// The value of [`network_variable`](Self::network_variable): `unix` or `tcp`.
    pub network: Option<String>,
    /// The provider's own variable that forces the listener kind (not part of go-plugin).
    pub network_variable: String,
}

impl PluginEnv {
    /// Reads the process environment; `network_variable` names the provider's variable
    /// that forces the listener kind (e.g. `ECHO_PLUGIN_NETWORK`).
    pub fn from_process(network_variable: &str) -> Self {
        Self::from_lookup(network_variable, |key| std::env::var(key).ok())
    }

    /// Reads the environment through `get`, so tests need not touch the process environment.
    pub fn from_lookup(network_variable: &str, get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |key: &str| get(key).filter(|v| !v.is_empty());
        Self {
            magic_cookie: var(MAGIC_COOKIE_KEY),
            protocol_versions: var("PLUGIN_PROTOCOL_VERSIONS"),
            min_port: var("PLUGIN_MIN_PORT"),
            max_port: var("PLUGIN_MAX_PORT"),
            unix_socket_dir: var("PLUGIN_UNIX_SOCKET_DIR").map(PathBuf::from),
            client_cert: var("PLUGIN_CLIENT_CERT"),
            network: var(network_variable),
            network_variable: network_variable.to_string(),
        }
    }
}

/// Succeeds only when Terraform (or another go-plugin host speaking Terraform's handshake) started us.
pub fn check_cookie(env: &PluginEnv) -> Result<()> {
    match env.magic_cookie.as_deref() {
        Some(MAGIC_COOKIE_VALUE) => Ok(()),
        _ => Err(Error::NotLaunchedByTerraform),
    }
}

/// Picks protocol 6 from the comma-separated versions the host offers. A host that offers
/// nothing gets 6, as go-plugin falls back to the handshake's default version.
pub(crate) fn negotiate_protocol(env: &PluginEnv) -> Result<u32> {
    let Some(offered) = env.protocol_versions.as_deref() else {
        return Ok(PROTOCOL_VERSION);
    };
    // Entries that are not numbers are skipped, as go-plugin does.
    let supported = offered
        .split(',')
        .filter_map(|v| v.trim().parse::<u32>().ok())
        .any(|v| v == PROTOCOL_VERSION);
    if supported {
        Ok(PROTOCOL_VERSION)
    } else {
        Err(Error::UnsupportedProtocol(offered.to_string()))
    }
}

/// How Terraform connects to the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// A unix socket (go-plugin's default on Unix).
    Unix,
    /// TCP on 127.0.0.1.
    Tcp,
}

impl Network {
    /// `"unix"` or `"tcp"`, as go-plugin names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Unix => "unix",
            Network::Tcp => "tcp",
        }
    }

    /// `"unix"` or `"tcp"`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unix" => Some(Network::Unix),
            "tcp" => Some(Network::Tcp),
            _ => None,
        }
    }
}

/// The listener kind: the provider's network variable when set, else a unix socket like
/// go-plugin on Unix.
pub(crate) fn choose_network(env: &PluginEnv) -> Result<Network> {
    match env.network.as_deref() {
        None => Ok(if cfg!(unix) {
            Network::Unix
        } else {
            Network::Tcp
        }),
        Some(s) => Network::parse(s).ok_or_else(|| {
            Error::Environment(format!(
                "{} must be \"unix\" or \"tcp\", not {s:?}",
                env.network_variable
            ))
        }),
    }
}

/// The TCP ports go-plugin allows; both bounds unset means "any free port".
pub(crate) fn port_range(env: &PluginEnv) -> Result<RangeInclusive<u16>> {
    let parse = |name: &str, v: Option<&str>| -> Result<u16, Error> {
        match v {
            None => Ok(0),
            Some(s) => s.trim().parse::<u16>().map_err(|_| {
                Error::Environment(format!("{name} must be a port number, not {s:?}"))
            }),
        }
    };
    let min = parse("PLUGIN_MIN_PORT", env.min_port.as_deref())?;
    let max = parse("PLUGIN_MAX_PORT", env.max_port.as_deref())?;
    if min > max {
        return Err(Error::Environment(format!(
            "PLUGIN_MIN_PORT ({min}) is greater than PLUGIN_MAX_PORT ({max})"
        )));
    }
    Ok(min..=max)
}

/// Binds the listener the environment asks for. When nobody chose the network and a unix socket
/// cannot be created (no writable socket directory, a path over the socket-name limit), falls
/// back to TCP, which go-plugin's host accepts just as well.
pub(crate) fn listen(env: &PluginEnv) -> Result<PluginListener> {
    let network = choose_network(env)?;
    match PluginListener::bind(env, network) {
        Err(e) if network == Network::Unix && env.network.is_none() => {
            tracing::warn!(error = %e, "no unix socket available; listening on TCP instead");
            PluginListener::bind(env, Network::Tcp)
        }
        result => result,
    }
}

/// The line go-plugin's host reads from the plugin's stdout:
/// `CORE|APP|network|address|grpc|cert`, the certificate as unpadded standard base64 DER.
pub fn handshake_line(network: Network, address: &str, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!(
        "{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|{}|{address}|grpc|{cert}",
        network.as_str()
    )
}

/// The `TF_REATTACH_PROVIDERS` value that points Terraform at an already running provider.
pub fn reattach_json(provider_address: &str, network: Network, address: &str, pid: u32) -> String {
    let config = serde_json::json!({
        provider_address: {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": pid,
            "Test": true,
            "Addr": { "Network": network.as_str(), "String": address },
        }
    });
    config.to_string()
}

// ---------------------------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------------------------

/// Where Terraform connects. A unix socket file is removed when the listener is dropped.
pub(crate) struct PluginListener {
    inner: ListenerKind,
    address: String,
}

enum ListenerKind {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix {
        listener: tokio::net::UnixListener,
        // Held for its Drop, which removes the socket file.
        _socket: SocketFile,
    },
}

#[cfg(unix)]
struct SocketFile(PathBuf);

#[cfg(unix)]
impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl PluginListener {
    /// Binds 127.0.0.1 on the first free port of `ports` (port 0 lets the OS choose).
    /// Must be called within a tokio runtime.
    pub(crate) fn bind_tcp(ports: RangeInclusive<u16>) -> Result<Self> {
        let mut last_err = None;
        for port in ports {
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => {
                    let address = listener.local_addr().map_err(Error::Listen)?.to_string();
                    listener.set_nonblocking(true).map_err(Error::Listen)?;
                    let listener =
                        tokio::net::TcpListener::from_std(listener).map_err(Error::Listen)?;
                    return Ok(Self {
                        inner: ListenerKind::Tcp(listener),
                        address,
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(Error::Listen(last_err.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, "empty port range")
        })))
    }

    /// Creates a fresh socket in `dir` (the system temp directory when `None`).
    /// Must be called within a tokio runtime.
    #[cfg(unix)]
    pub(crate) fn bind_unix(dir: Option<&Path>) -> Result<Self> {
        let dir = dir
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let pid = std::process::id();
        let mut last_err = None;
        for attempt in 0..64u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let path = dir.join(format!("tfplugin-{pid}-{nanos:x}-{attempt}"));
            match tokio::net::UnixListener::bind(&path) {
                Ok(listener) => {
                    let address = path.to_string_lossy().into_owned();
                    return Ok(Self {
                        inner: ListenerKind::Unix {
                            listener,
                            _socket: SocketFile(path),
                        },
                        address,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
                Err(e) => return Err(Error::Listen(e)),
            }
        }
        Err(Error::Listen(last_err.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::AddrInUse, "no free socket name")
        })))
    }

    /// Binds what `network` asks for, with go-plugin's environment (port range, socket dir).
    pub(crate) fn bind(env: &PluginEnv, network: Network) -> Result<Self> {
        match network {
            Network::Tcp => Self::bind_tcp(port_range(env)?),
            #[cfg(unix)]
            Network::Unix => Self::bind_unix(env.unix_socket_dir.as_deref()),
            #[cfg(not(unix))]
            Network::Unix => Err(Error::Environment(
                "unix sockets are not available here".into(),
            )),
        }
    }

    pub(crate) fn network(&self) -> Network {
        match self.inner {
            ListenerKind::Tcp(_) => Network::Tcp,
            #[cfg(unix)]
            ListenerKind::Unix { .. } => Network::Unix,
        }
    }

    /// `host:port` for TCP, the socket path for unix.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    async fn accept(&self) -> io::Result<Conn> {
        match &self.inner {
            ListenerKind::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                // gRPC is chatty with small frames; Nagle only adds latency here.
                let _ = stream.set_nodelay(true);
                Ok(Conn::new(stream))
            }
            #[cfg(unix)]
            ListenerKind::Unix { listener, .. } => {
                let (stream, _) = listener.accept().await?;
                Ok(Conn::new(stream))
            }
        }
    }
}

/// One accepted connection, plain or TLS, over TCP or a unix socket.
pub(crate) struct Conn(Box<dyn Io>);

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

impl Conn {
    fn new(io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) -> Self {
        Conn(Box::new(io))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Accepts connections until `shutdown`, completing TLS handshakes (when `tls` is set) off the
/// accept loop so that one slow client cannot hold up the next. Failed handshakes are logged
/// and dropped; they never stop the server.
pub(crate) fn incoming(
    listener: PluginListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> (ReceiverStream<io::Result<Conn>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<io::Result<Conn>>(16);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let conn = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    // Typically out of file descriptors: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match &acceptor {
                None => {
                    if tx.send(Ok(conn)).await.is_err() {
                        break;
                    }
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(conn))
                            .await
                        {
                            Ok(Ok(stream)) => {
                                let _ = tx.send(Ok(Conn::new(stream))).await;
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "TLS handshake with a client failed")
                            }
                            Err(_) => tracing::warn!("TLS handshake with a client timed out"),
                        }
                    });
                }
            }
        }
        // Dropping the listener here removes a unix socket file.
        drop(listener);
    });
    (ReceiverStream::new(rx), task)
}

// ---------------------------------------------------------------------------------------------
// AutoMTLS
// ---------------------------------------------------------------------------------------------

/// The server side of go-plugin's AutoMTLS: our fresh certificate and a TLS configuration that
/// accepts exactly the host's certificate.
pub(crate) struct AutoMtls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// DER of our certificate; the host pins it from the handshake line.
    pub(crate) server_cert: CertificateDer<'static>,
}

/// Builds the TLS configuration from `PLUGIN_CLIENT_CERT`. The host checks our certificate
/// against the handshake line and the name "localhost"; we require the host's certificate.
pub(crate) fn auto_mtls(client_cert_pem: &str) -> Result<AutoMtls> {
    let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|e| Error::Tls(format!("PLUGIN_CLIENT_CERT is not a PEM certificate: {e}")))?;

    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .map_err(|e| Error::Tls(format!("certificate parameters: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let key =
        rcgen::KeyPair::generate().map_err(|e| Error::Tls(format!("generating a key: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Tls(format!("self-signing: {e}")))?;
    let server_cert = cert.der().clone();
    let server_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = ExactClientCert::new(client_cert, provider.signature_verification_algorithms);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![server_cert.clone()], server_key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    // grpc-go refuses TLS connections that do not negotiate h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(AutoMtls {
        config: Arc::new(config),
        server_cert,
    })
}

/// Requires the client to present exactly one known certificate (go-plugin's AutoMTLS pins
/// certificates rather than building chains) and checks its handshake signatures, including
/// the ECDSA P-521 ones go-plugin's client makes and ring cannot verify.
#[derive(Debug)]
pub(crate) struct ExactClientCert {
    expected: CertificateDer<'static>,
    fallback: WebPkiSupportedAlgorithms,
}

impl ExactClientCert {
    /// `fallback` verifies signatures from keys other than P-521 (normally ring's algorithms).
    pub(crate) fn new(
        expected: CertificateDer<'static>,
        fallback: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self { expected, fallback }
    }

    fn check_pinned(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if cert.as_ref() == self.expected.as_ref() {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

impl ClientCertVerifier for ExactClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: Go's client then offers its only certificate.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check_pinned(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_pinned(cert)?;
        // In TLS 1.2 an ECDSA scheme does not fix the curve, so a P-521 key may sign with any
        // of the ECDSA hashes; try ours first, then the other keys' algorithms.
        let ours = rustls::crypto::verify_tls12_signature(message, cert, dss, &P521_TLS12);
        if ours.is_ok() || !self.fallback.supported_schemes().contains(&dss.scheme) {
            return ours;
        }
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.fallback)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_pinned(cert)?;
        if dss.scheme == SignatureScheme::ECDSA_NISTP521_SHA512 {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &P521_TLS13)
        } else {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.fallback)
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut schemes = vec![SignatureScheme::ECDSA_NISTP521_SHA512];
        for scheme in self.fallback.supported_schemes() {
            if !schemes.contains(&scheme) {
                schemes.push(scheme);
            }
        }
        schemes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

/// ECDSA over NIST P-521 (RustCrypto's `p521`), with the message hashed by `hash`.
#[derive(Debug)]
pub(crate) struct EcdsaP521 {
    hash: HashAlg,
}

/// ECDSA P-521 with SHA-512: TLS 1.3's `ecdsa_secp521r1_sha512`, go-plugin's client signature.
pub(crate) static ECDSA_P521_SHA512: EcdsaP521 = EcdsaP521 {
    hash: HashAlg::Sha512,
};
/// P-521 keys signing with shorter hashes, possible only in TLS 1.2.
pub(crate) static ECDSA_P521_SHA384: EcdsaP521 = EcdsaP521 {
    hash: HashAlg::Sha384,
};
pub(crate) static ECDSA_P521_SHA256: EcdsaP521 = EcdsaP521 {
    hash: HashAlg::Sha256,
};

static P521_TLS13: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&ECDSA_P521_SHA512],
    mapping: &[(
        SignatureScheme::ECDSA_NISTP521_SHA512,
        &[&ECDSA_P521_SHA512],
    )],
};

static P521_TLS12: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&ECDSA_P521_SHA512, &ECDSA_P521_SHA384, &ECDSA_P521_SHA256],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP521_SHA512,
            &[&ECDSA_P521_SHA512],
        ),
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[&ECDSA_P521_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[&ECDSA_P521_SHA256],
        ),
    ],
};

impl SignatureVerificationAlgorithm for EcdsaP521 {
    /// `public_key` is the SEC1 point from the certificate; `signature` is DER, as in TLS.
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        let digest = match self.hash {
            HashAlg::Sha256 => sha2::Sha256::digest(message).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(message).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(message).to_vec(),
        };
        key.verify_prehash(&digest, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        match self.hash {
            HashAlg::Sha256 => alg_id::ECDSA_SHA256,
            HashAlg::Sha384 => alg_id::ECDSA_SHA384,
            HashAlg::Sha512 => alg_id::ECDSA_SHA512,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

/// Serves `provider` the way Terraform expects when it starts the binary: checks the handshake
/// environment, listens, prints the handshake line on stdout (the only stdout output ever), and
/// serves until go-plugin's Shutdown call.
pub async fn serve_managed(provider: Arc<dyn Provider>, env: &PluginEnv) -> Result<()> {
    check_cookie(env)?;
    negotiate_protocol(env)?;
    let listener = listen(env)?;
    let tls = env.client_cert.as_deref().map(auto_mtls).transpose()?;
    let line = handshake_line(
        listener.network(),
        listener.address(),
        tls.as_ref().map(|t| t.server_cert.as_ref()),
    );
    tracing::debug!(
        network = listener.network().as_str(),
        address = listener.address(),
        tls = tls.is_some(),
        "plugin listening"
    );

    ignore_interrupts();
    let shutdown = CancellationToken::new();
    let (conns, accept_task) = incoming(listener, tls.map(|t| t.config), shutdown.clone());

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|_| stdout.flush())
        .map_err(Error::Stdout)?;
    drop(stdout);

    let result = serve_until_shutdown(provider, conns, shutdown).await;
    accept_task.abort();
    result
}

/// Runs the gRPC server until `shutdown`, then allows [`SHUTDOWN_GRACE`] for connections to
/// close; the host kills plugins that linger anyway.
async fn serve_until_shutdown(
    provider: Arc<dyn Provider>,
    conns: ReceiverStream<io::Result<Conn>>,
    shutdown: CancellationToken,
) -> Result<()> {
    let serve = server::serve(provider, conns, shutdown.clone());
    tokio::pin!(serve);
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = &mut serve => result.map_err(Error::from),
        _ = grace => {
            tracing::debug!("connections still open after shutdown; exiting anyway");
            Ok(())
        }
    }
}

/// Terraform forwards Ctrl-C as StopProvider; the terminal also sends SIGINT to the whole
/// process group, and dying on it would abandon an apply halfway. go-plugin plugins ignore it too.
fn ignore_interrupts() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::interrupt()) {
            Ok(mut interrupts) => {
                tokio::spawn(async move {
                    while interrupts.recv().await.is_some() {
                        tracing::trace!("ignoring SIGINT; Terraform sends StopProvider instead");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "could not install the SIGINT handler"),
        }
    }
}

/// A provider served in plaintext for `TF_REATTACH_PROVIDERS`: `-debug`, and tests that host
/// the provider in-process.
///
/// ```no_run
/// # async fn demo(provider: std::sync::Arc<dyn tfplugin::Provider>) -> tfplugin::Result<()> {
/// use tfplugin::handshake::{DebugServer, Network};
///
/// let server = DebugServer::start("registry.terraform.io/example/echo", provider, Network::Tcp).await?;
/// println!("TF_REATTACH_PROVIDERS='{}'", server.reattach_json());
/// // ... run terraform with that variable set, then:
/// server.shutdown();
/// server.wait().await
/// # }
/// ```
pub struct DebugServer {
    provider_address: String,
    network: Network,
    address: String,
    shutdown: CancellationToken,
    task: JoinHandle<Result<()>>,
}

impl DebugServer {
    /// Starts serving on 127.0.0.1 (TCP, any free port) or a unix socket in the temp directory.
    /// `provider_address` is the address Terraform knows the provider by, e.g.
    /// `registry.terraform.io/example/echo`. Must be called within a tokio runtime.
    pub async fn start(
        provider_address: impl Into<String>,
        provider: Arc<dyn Provider>,
        network: Network,
    ) -> Result<Self> {
        let listener = match network {
            Network::Tcp => PluginListener::bind_tcp(0..=0)?,
            #[cfg(unix)]
            Network::Unix => PluginListener::bind_unix(None)?,
            #[cfg(not(unix))]
            Network::Unix => {
                return Err(Error::Environment(
                    "unix sockets are not available here".into(),
                ));
            }
        };
        let address = listener.address().to_string();
        let shutdown = CancellationToken::new();
        let (conns, accept_task) = incoming(listener, None, shutdown.clone());
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let result = serve_until_shutdown(provider, conns, shutdown).await;
                accept_task.abort();
                result
            }
        });
        Ok(Self {
            provider_address: provider_address.into(),
            network,
            address,
            shutdown,
            task,
        })
    }

    /// The listener kind.
    pub fn network(&self) -> Network {
        self.network
    }

    /// `127.0.0.1:port` for TCP, the socket path for unix.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The `TF_REATTACH_PROVIDERS` value for this server (pid of the current process).
    pub fn reattach_json(&self) -> String {
        reattach_json(
            &self.provider_address,
            self.network,
            &self.address,
            std::process::id(),
        )
    }

    /// Cancelled when the server stops, whoever stopped it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting calls; [`wait`](Self::wait) returns once connections have closed.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the server has stopped (after [`DebugServer::shutdown`] or go-plugin's Shutdown).
    pub async fn wait(self) -> Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Listen(io::Error::other(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NETWORK_ENV: &str = "EXAMPLE_PLUGIN_NETWORK";

    fn env(vars: &[(&str, &str)]) -> PluginEnv {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PluginEnv::from_lookup(NETWORK_ENV, |k| map.get(k).cloned())
    }

    #[test]
    fn cookie_must_match_exactly() {
        assert!(check_cookie(&env(&[(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)])).is_ok());
        assert!(matches!(
            check_cookie(&env(&[])),
            Err(Error::NotLaunchedByTerraform)
        ));
        assert!(matches!(
            check_cookie(&env(&[(MAGIC_COOKIE_KEY, "d602bf8f")])),
            Err(Error::NotLaunchedByTerraform)
        ));
        assert!(matches!(
            check_cookie(&env(&[(MAGIC_COOKIE_KEY, "")])),
            Err(Error::NotLaunchedByTerraform)
        ));
    }

    #[test]
    fn negotiates_protocol_six_only() {
        assert_eq!(
            negotiate_protocol(&env(&[("PLUGIN_PROTOCOL_VERSIONS", "5,6")])).unwrap(),
            6
        );
        assert_eq!(
            negotiate_protocol(&env(&[("PLUGIN_PROTOCOL_VERSIONS", "6")])).unwrap(),
            6
        );
        assert_eq!(
            negotiate_protocol(&env(&[("PLUGIN_PROTOCOL_VERSIONS", "x, 6 ,7")])).unwrap(),
            6
        );
        assert_eq!(negotiate_protocol(&env(&[])).unwrap(), 6);
        match negotiate_protocol(&env(&[("PLUGIN_PROTOCOL_VERSIONS", "4,5")])) {
            Err(Error::UnsupportedProtocol(offered)) => assert_eq!(offered, "4,5"),
            other => panic!("expected UnsupportedProtocol, got {other:?}"),
        }
        assert!(negotiate_protocol(&env(&[("PLUGIN_PROTOCOL_VERSIONS", "60")])).is_err());
    }

    #[test]
    fn handshake_line_has_six_fields_and_unpadded_base64() {
        // 4 bytes encode to 6 base64 characters plus "==" padding in padded form.
        let der = [0x30u8, 0x82, 0x01, 0xff];
        let line = handshake_line(Network::Unix, "/tmp/plugin123", Some(&der));
        assert_eq!(line, "1|6|unix|/tmp/plugin123|grpc|MIIB/w");
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 6);
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(fields[5])
            .unwrap();
        assert_eq!(decoded, der);

        assert_eq!(
            handshake_line(Network::Tcp, "127.0.0.1:10001", None),
            "1|6|tcp|127.0.0.1:10001|grpc|"
        );
    }

    #[test]
    fn reattach_json_names_the_provider_and_address() {
        let json = reattach_json(
            "registry.terraform.io/example/echo",
            Network::Tcp,
            "127.0.0.1:4000",
            42,
        );
        assert_eq!(
            json,
            r#"{"registry.terraform.io/example/echo":{"Protocol":"grpc","ProtocolVersion":6,"Pid":42,"Test":true,"Addr":{"Network":"tcp","String":"127.0.0.1:4000"}}}"#
        );
    }

    #[test]
    fn port_range_follows_go_plugin() {
        assert_eq!(port_range(&env(&[])).unwrap(), 0..=0);
        assert_eq!(
            port_range(&env(&[
                ("PLUGIN_MIN_PORT", "10000"),
                ("PLUGIN_MAX_PORT", "25000")
            ]))
            .unwrap(),
            10000..=25000
        );
        assert!(port_range(&env(&[("PLUGIN_MIN_PORT", "3"), ("PLUGIN_MAX_PORT", "2")])).is_err());
        assert!(port_range(&env(&[("PLUGIN_MIN_PORT", "abc")])).is_err());
    }

    #[test]
    fn network_defaults_to_unix_and_can_be_forced() {
        assert_eq!(choose_network(&env(&[])).unwrap(), Network::Unix);
        assert_eq!(
            choose_network(&env(&[(NETWORK_ENV, "TCP")])).unwrap(),
            Network::Tcp
        );
        assert!(choose_network(&env(&[(NETWORK_ENV, "udp")])).is_err());
    }

    #[tokio::test]
    async fn tcp_listener_uses_the_port_range() {
        let first = PluginListener::bind_tcp(0..=0).unwrap();
        let port: u16 = first.address().rsplit(':').next().unwrap().parse().unwrap();
        // The taken port is skipped in favour of the next free one in range.
        let second = PluginListener::bind_tcp(port..=port.saturating_add(20)).unwrap();
        assert_ne!(second.address(), first.address());
        assert!(second.address().starts_with("127.0.0.1:"));
        assert!(PluginListener::bind_tcp(port..=port).is_err());
    }

    #[tokio::test]
    async fn falls_back_to_tcp_only_when_the_network_was_not_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("does-not-exist");
        let missing = missing.to_str().unwrap();

        let listener = listen(&env(&[("PLUGIN_UNIX_SOCKET_DIR", missing)])).unwrap();
        assert_eq!(listener.network(), Network::Tcp);
        assert!(listener.address().starts_with("127.0.0.1:"));

        let forced = listen(&env(&[
            ("PLUGIN_UNIX_SOCKET_DIR", missing),
            (NETWORK_ENV, "unix"),
        ]));
        assert!(matches!(forced, Err(Error::Listen(_))));

        let dir_ok = dir.path().to_str().unwrap();
        let listener = listen(&env(&[("PLUGIN_UNIX_SOCKET_DIR", dir_ok)])).unwrap();
        assert_eq!(listener.network(), Network::Unix);
    }

    #[tokio::test]
    async fn unix_socket_is_created_in_dir_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let listener = PluginListener::bind_unix(Some(dir.path())).unwrap();
        let path = PathBuf::from(listener.address());
        assert_eq!(path.parent(), Some(dir.path()));
        assert!(path.exists());
        assert_eq!(listener.network(), Network::Unix);
        drop(listener);
        assert!(!path.exists());
    }

    // ---- P-521 -----------------------------------------------------------------------------

    /// A P-521 certificate like go-plugin's client certificate (generated once with openssl).
    const P521_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICZTCCAcegAwIBAgIUUXZfcTJiAS+OBJAVtpbebTUjny8wCgYIKoZIzj0EAwIw
KDESMBAGA1UECgwJSGFzaGlDb3JwMRIwEAYDVQQDDAlsb2NhbGhvc3QwIBcNMjYx
MTIxMDMyNzA4WhgPMjEyNjEwMjgwMzI3MDhaMCgxEjAQBgNVBAoMCUhhc2hpQ29y
cDESMBAGA1UEAwwJbG9jYWxob3N0MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQA
8GLFu2UVjz31Q7KcWMCeuN/W/pdL9y/7q7WiJPklTJrmtOAhzXZEB8AAXgYDw9o9
HLnqSX3ZaKG6iSLG3q2k/XEAsn2uoHPdDusyqVJtwoPxj1b5uoDoShEpZLg0Pefz
lMOcU/HORr8raO9OfB87LU9OxpvHrfoExtdd5gfVQeeo+sCjgYkwgYYwHQYDVR0O
BBYEFPzLQNXP1CTIdEGEqLKDD3BXNAEKMB8GA1UdIwQYMBaAFPzLQNXP1CTIdEGE
qLKDD3BXNAEKMA8GA1UdEwEB/wQFMAMBAf8wFAYDVR0RBA0wC4IJbG9jYWxob3N0
MB0GA1UdJQQWMBQGCCsGAQUFBwMCBggrBgEFBQcDATAKBggqhkjOPQQDAgOBiwAw
gYcCQUGK91dXnwqwhJHhB6SOOv4eS/L27NID8bJes3jUhZyuIFYx8e2eco42MqAx
bmKPHL71dqMqT6bHkPWXD2dGORHWAkIBNjmzjQhDm2kMyNimFz6e+EFVzvSoTVNN
PGiWnfja5mx5EWoP/97zIXPRP0ZADXcilHmXmyh6I7WX8HE4op+jefM=
-----END CERTIFICATE-----
";
    /// The private scalar of `P521_CERT_PEM`'s key.
    const P521_KEY_HEX: &str = "00f75bed8884303c1d46da0b48b27e4764bc4a0b718f48106caa4a0bcd61f60be4552c3df0c6f79b7d27309eec43e11d5d6167ed061f3bee5fe31fda2a0959ce300f";

    /// Another valid P-521 certificate and key: a client that is not the pinned host.
    const OTHER_P521_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICRTCCAaagAwIBAgIUS30rOpV1BMYh5yA8a2H/gqPhrl4wCgYIKoZIzj0EAwIw
KDESMBAGA1UECgwJSGFzaGlDb3JwMRIwEAYDVQQDDAlsb2NhbGhvc3QwIBcNMjYx
MTIxMDM1MTMyWhgPMjEyNjEwMjgwMzUxMzJaMCgxEjAQBgNVBAoMCUhhc2hpQ29y
cDESMBAGA1UEAwwJbG9jYWxob3N0MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQA
tv+S/7dHofKmHVUP3kA2ZfuxFehgQrwWORyuScvINPxzn6cS+OQzkMIY9L6QnmS9
FwALHbq6xa0ZBJ8AZeDPdgMAAzlyo8lTCSkDGDJ/q42rujJ2Fv8HKjFsL0u6BllI
AYO8K2/ul0ZjQ/0U24s18RPy4lBM9HyDHn/EkBF6IB3xs9ujaTBnMB0GA1UdDgQW
BBTCU64dUKUzfpOy3j8RSUhto0o+TDAfBgNVHSMEGDAWgBTCU64dUKUzfpOy3j8R
SUhto0o+TDAPBgNVHRMBAf8EBTADAQH/MBQGA1UdEQQNMAuCCWxvY2FsaG9zdDAK
BggqhkjOPQQDAgOBjAAwgYgCQgCqg7Xs6qdYfX2o6Vsam85c5kMPgi7VPcgsUt97
Bmtc3PC2zGNkwvvVhUZJI3RfA6M9fVamYhe36xuGbHwBJLrryQJCASVQhYKYfIdv
nLypMV7x2v+aaLu30fXEhRFg0P4fdGsqGwpUrRvEqYPF+L5qTPWRgS2dR2Q3BR1c
6sEvqJ+P5GTE
-----END CERTIFICATE-----
";
    /// The private scalar of `OTHER_P521_CERT_PEM`'s key.
    const OTHER_P521_KEY_HEX: &str = "018b9d16ff5772edac76502787a2c58ccc61e10c70755bc9b55fff8e2bf8a3c4f3a2cd50bdc10227a5da55224a6f67efb9223024f335e62ee2a2e53c353502ccd0ed";

    fn signing_key_from_hex(hex: &str) -> p521::ecdsa::SigningKey {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        p521::ecdsa::SigningKey::from_slice(&bytes).unwrap()
    }

    fn p521_signing_key() -> p521::ecdsa::SigningKey {
        signing_key_from_hex(P521_KEY_HEX)
    }

    /// A client identity: a certificate and the P-521 key it is presented with.
    fn identity(
        cert_pem: &str,
        key_hex: &str,
    ) -> (CertificateDer<'static>, p521::ecdsa::SigningKey) {
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        (cert, signing_key_from_hex(key_hex))
    }

    /// ECDSA P-521 over an already computed digest, DER-encoded, as go-plugin's client signs.
    fn sign_der(key: &p521::ecdsa::SigningKey, digest: &[u8]) -> Vec<u8> {
        use p521::ecdsa::signature::hazmat::PrehashSigner;
        let sig: p521::ecdsa::Signature = key.sign_prehash(digest).unwrap();
        sig.to_der().as_bytes().to_vec()
    }

    fn sec1_public_key(key: &p521::ecdsa::SigningKey) -> Vec<u8> {
        p521::ecdsa::VerifyingKey::from(key)
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn p521_sha512_verifies_real_signatures_and_rejects_others() {
        let key = p521_signing_key();
        let public = sec1_public_key(&key);
        let msg = b"TLS 1.3, client CertificateVerify";
        let sig = sign_der(&key, &sha2::Sha512::digest(msg));

        assert!(
            ECDSA_P521_SHA512
                .verify_signature(&public, msg, &sig)
                .is_ok()
        );
        // A different message, a tampered signature, or the wrong hash must all fail.
        assert!(
            ECDSA_P521_SHA512
                .verify_signature(&public, b"another message", &sig)
                .is_err()
        );
        let mut tampered = sig.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        assert!(
            ECDSA_P521_SHA512
                .verify_signature(&public, msg, &tampered)
                .is_err()
        );
        assert!(
            ECDSA_P521_SHA256
                .verify_signature(&public, msg, &sig)
                .is_err()
        );
        assert!(
            ECDSA_P521_SHA512
                .verify_signature(&public, msg, b"not DER")
                .is_err()
        );
        assert!(
            ECDSA_P521_SHA512
                .verify_signature(b"not a point", msg, &sig)
                .is_err()
        );

        assert_eq!(ECDSA_P521_SHA512.public_key_alg_id(), alg_id::ECDSA_P521);
        assert_eq!(ECDSA_P521_SHA512.signature_alg_id(), alg_id::ECDSA_SHA512);
    }

    fn ring_algorithms() -> WebPkiSupportedAlgorithms {
        rustls::crypto::ring::default_provider().signature_verification_algorithms
    }

    #[test]
    fn client_verifier_pins_the_certificate() {
        let expected = CertificateDer::from_pem_slice(P521_CERT_PEM.as_bytes()).unwrap();
        let verifier = ExactClientCert::new(expected.clone(), ring_algorithms());
        assert!(verifier.client_auth_mandatory());
        assert!(verifier.offer_client_auth());
        assert!(
            verifier
                .verify_client_cert(&expected, &[], UnixTime::now())
                .is_ok()
        );

        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        assert!(
            verifier
                .verify_client_cert(other.cert.der(), &[], UnixTime::now())
                .is_err()
        );
        assert_eq!(
            verifier.supported_verify_schemes()[0],
            SignatureScheme::ECDSA_NISTP521_SHA512
        );
    }

    // ---- Full TLS handshakes with a P-521 client, as go-plugin's host does ------------------

    /// A rustls client key that signs with P-521 through `p521` (ring cannot).
    struct P521ClientKey(Arc<p521::ecdsa::SigningKey>);

    impl std::fmt::Debug for P521ClientKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("P521ClientKey")
        }
    }

    struct P521Signer(Arc<p521::ecdsa::SigningKey>, SignatureScheme);

    impl std::fmt::Debug for P521Signer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "P521Signer({:?})", self.1)
        }
    }

    impl rustls::sign::SigningKey for P521ClientKey {
        fn choose_scheme(
            &self,
            offered: &[SignatureScheme],
        ) -> Option<Box<dyn rustls::sign::Signer>> {
            [
                SignatureScheme::ECDSA_NISTP521_SHA512,
                SignatureScheme::ECDSA_NISTP256_SHA256,
            ]
            .into_iter()
            .find(|s| offered.contains(s))
            .map(|s| Box::new(P521Signer(self.0.clone(), s)) as Box<dyn rustls::sign::Signer>)
        }
        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            rustls::SignatureAlgorithm::ECDSA
        }
    }

    impl rustls::sign::Signer for P521Signer {
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
            let digest = match self.1 {
                SignatureScheme::ECDSA_NISTP256_SHA256 => sha2::Sha256::digest(message).to_vec(),
                _ => sha2::Sha512::digest(message).to_vec(),
            };
            Ok(sign_der(&self.0, &digest))
        }
        fn scheme(&self) -> SignatureScheme {
            self.1
        }
    }

    #[derive(Debug)]
    struct FixedClientCert(Arc<rustls::sign::CertifiedKey>);

    impl rustls::client::ResolvesClientCert for FixedClientCert {
        fn resolve(
            &self,
            _hints: &[&[u8]],
            _schemes: &[SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
        fn has_certs(&self) -> bool {
            true
        }
    }

    /// Connects a rustls client that trusts only the server certificate from the handshake line
    /// (as go-plugin does) and presents `client_cert`, if any. Returns the negotiated ALPN on success.
    async fn connect(
        server: &AutoMtls,
        client_identity: Option<(CertificateDer<'static>, p521::ecdsa::SigningKey)>,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Result<Option<Vec<u8>>, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server.server_cert.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match client_identity {
            Some((cert, key)) => {
                let key = Arc::new(P521ClientKey(Arc::new(key)));
                let certified = Arc::new(rustls::sign::CertifiedKey::new(vec![cert], key));
                builder.with_client_cert_resolver(Arc::new(FixedClientCert(certified)))
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];

        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.config.clone());
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let server_side = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tls = acceptor
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            tls.write_all(&buf).await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        });
        let client_side = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tls = connector
                .connect(name, client_io)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            // In TLS 1.3 the server judges the client certificate after the client's handshake
            // completes, so a rejection shows up on this first read.
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            assert_eq!(&buf, b"ping");
            Ok::<_, String>(tls.get_ref().1.alpn_protocol().map(|p| p.to_vec()))
        };
        let client_result = client_side.await;
        let server_result = server_side.await.unwrap();
        server_result?;
        client_result
    }

    #[tokio::test]
    async fn mtls_accepts_the_pinned_p521_client_over_tls13_and_tls12() {
        let server = auto_mtls(P521_CERT_PEM).unwrap();
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let host = identity(P521_CERT_PEM, P521_KEY_HEX);
            let alpn = connect(&server, Some(host), version).await;
            assert_eq!(alpn, Ok(Some(b"h2".to_vec())), "{version:?}");
        }
    }

    #[tokio::test]
    async fn mtls_rejects_clients_without_the_pinned_certificate() {
        let server = auto_mtls(P521_CERT_PEM).unwrap();
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let result = connect(&server, None, version).await;
            assert!(
                result.is_err(),
                "a client without a certificate got in over {version:?}"
            );
        }
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            // A well-formed P-521 identity that signs correctly is still not the pinned host.
            let other = identity(OTHER_P521_CERT_PEM, OTHER_P521_KEY_HEX);
            let result = connect(&server, Some(other), version).await;
            assert!(
                result.is_err(),
                "an unpinned certificate got in over {version:?}"
            );
            // The pinned certificate without its key fails on the handshake signature.
            let forged = identity(P521_CERT_PEM, OTHER_P521_KEY_HEX);
            let result = connect(&server, Some(forged), version).await;
            assert!(
                result.is_err(),
                "a forged signature got in over {version:?}"
            );
        }
    }

    #[test]
    fn auto_mtls_rejects_a_bad_client_cert() {
        assert!(matches!(auto_mtls("not pem"), Err(Error::Tls(_))));
    }
}
