//! Git's smart HTTP protocol for libgit2, over the provider's own hyper + rustls stack: no
//! OpenSSL, the provider's CA settings, and credentials that never reach a log.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Instant;

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::credentials::{Chosen, Credentials};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// What one preview's HTTP requests use: the client, the credentials, the deadline, and the
/// runtime the requests run on (the preview itself runs on a blocking thread).
pub struct HttpContext {
    client: Client<Https, Full<Bytes>>,
    credentials: Credentials,
    deadline: Instant,
    runtime: tokio::runtime::Handle,
    /// The last failure, told in full (libgit2 shortens the messages it passes on).
    pub last_error: Mutex<Option<String>>,
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Arc<HttpContext>>> = const { std::cell::RefCell::new(None) };
}

impl HttpContext {
    pub fn new(
        ca_pem: Option<&[u8]>,
        credentials: Credentials,
        deadline: Instant,
        runtime: tokio::runtime::Handle,
    ) -> Result<HttpContext, String> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system certificate rustls cannot use is skipped, as curl would.
            let _ = roots.add(cert);
        }
        if let Some(pem) = ca_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| format!("the CA file holds no usable certificate: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the CA file holds a certificate rustls rejects: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err("the CA file holds no PEM certificate".into());
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpContext {
            client: Client::builder(TokioExecutor::new()).build(connector),
            credentials,
            deadline,
            runtime,
            last_error: Mutex::new(None),
        })
    }

    /// Runs `f` with this context serving the `https://` and `http://` remotes libgit2 opens
    /// on this thread.
    pub fn serve<T>(self: &Arc<Self>, f: impl FnOnce() -> T) -> T {
        register();
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        let out = f();
        CURRENT.with(|c| *c.borrow_mut() = None);
        out
    }

    fn fail(&self, message: String) -> std::io::Error {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message.clone());
        std::io::Error::other(message)
    }

    /// One request for repository `repo` (its remote URL) with the credentials its sources
    /// give; a refusal of anonymous access asks the credential helper, then tries once more.
    fn request(
        &self,
        repo: &str,
        url: &str,
        post: Option<Vec<u8>>,
        service: &str,
    ) -> std::io::Result<Vec<u8>> {
        let shown = crate::kargo::redact_userinfo(url);
        let mut chosen = self
            .credentials
            .configured(repo)
            .or_else(|| self.credentials.helper_said(repo));
        let mut asked_helper = chosen.is_some();
        loop {
            let (status, body) = self.send(url, &shown, post.clone(), service, chosen.as_ref())?;
            if status == 401 && !asked_helper {
                asked_helper = true;
                let remaining = self
                    .deadline
                    .saturating_duration_since(Instant::now())
                    .min(HELPER_TIMEOUT);
                if let Some(c) = self.credentials.from_helper(repo, remaining, &self.runtime) {
                    chosen = Some(c);
                    continue;
                }
            }
            let source = match &chosen {
                Some(c) => c.describe(),
                None => self.credentials.describe_none(repo),
            };
            return match status {
                200 => Ok(body),
                401 | 403 => Err(self.fail(format!(
                    "{shown} refused access (HTTP {status}) with {source}"
                ))),
                404 => Err(self.fail(format!("{shown}: repository not found (HTTP 404)"))),
                code => Err(self.fail(format!("{shown} answered HTTP {code}"))),
            };
        }
    }

    /// Sends one request; the status and body of the answer.
    fn send(
        &self,
        url: &str,
        shown: &str,
        post: Option<Vec<u8>>,
        service: &str,
        credential: Option<&Chosen>,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        use base64::Engine as _;
        let mut builder = hyper::Request::builder()
            .uri(url)
            .header(
                "user-agent",
                concat!(
                    "git/2.0 (terraform-provider-kargo/",
                    env!("CARGO_PKG_VERSION"),
                    ")"
                ),
            )
            .header("git-protocol", "version=0");
        if let Some(c) = credential {
            let token = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                c.username,
                c.password.expose()
            ));
            builder = builder.header("authorization", format!("Basic {token}"));
        }
        let request = match post {
            Some(body) => builder
                .method("POST")
                .header("content-type", format!("application/x-{service}-request"))
                .header("accept", format!("application/x-{service}-result"))
                .body(Full::new(Bytes::from(body))),
            None => builder.method("GET").body(Full::new(Bytes::new())),
        }
        .map_err(|e| self.fail(format!("invalid Git URL {shown}: {e}")))?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let client = self.client.clone();
        let result = self.runtime.block_on(async move {
            tokio::time::timeout(remaining, async move {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| crate::kargo::chain_text(&e))?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok::<_, String>((status, body))
            })
            .await
        });
        match result {
            Err(_) => Err(self.fail(format!(
                "fetching {shown} did not finish within promotion_preview.timeout"
            ))),
            Ok(Err(e)) => Err(self.fail(format!("{shown} is unreachable: {e}"))),
            Ok(Ok((status, body))) => Ok((status.as_u16(), body.to_vec())),
        }
    }
}

/// How long the Git credential helper may take to answer.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn register() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        for scheme in ["https", "http"] {
            // SAFETY: registration happens once, before any transport of these schemes is
            // created (the Once orders it before every use).
            let registered = unsafe {
                git2::transport::register(scheme, |remote| {
                    Transport::smart(remote, true, HttpSubtransport)
                })
            };
            if let Err(e) = registered {
                tracing::error!(error = %e, scheme, "cannot register the Git HTTP transport");
            }
        }
    });
}

struct HttpSubtransport;

impl SmartSubtransport for HttpSubtransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let context = CURRENT.with(|c| c.borrow().clone()).ok_or_else(|| {
            git2::Error::from_str("Git over HTTP is only used by the promotion preview")
        })?;
        let base = url.trim_end_matches('/');
        let (url, post) = match action {
            Service::UploadPackLs => (format!("{base}/info/refs?service=git-upload-pack"), false),
            Service::UploadPack => (format!("{base}/git-upload-pack"), true),
            Service::ReceivePackLs | Service::ReceivePack => {
                return Err(git2::Error::from_str("the promotion preview never pushes"));
            }
        };
        Ok(Box::new(HttpStream {
            context,
            repo: base.to_string(),
            url,
            post,
            sent: Vec::new(),
            answer: None,
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

struct HttpStream {
    context: Arc<HttpContext>,
    /// The remote's URL, which credentials are chosen for.
    repo: String,
    url: String,
    post: bool,
    sent: Vec<u8>,
    answer: Option<std::io::Cursor<Vec<u8>>>,
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.answer.is_none() {
            let body = self.post.then(|| std::mem::take(&mut self.sent));
            let bytes = self
                .context
                .request(&self.repo, &self.url, body, "git-upload-pack")?;
            self.answer = Some(std::io::Cursor::new(bytes));
        }
        match &mut self.answer {
            Some(a) => a.read(buf),
            None => Ok(0),
        }
    }
}

impl Write for HttpStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sent.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
