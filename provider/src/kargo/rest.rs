//! Kargo's own API server (REST, `/v1beta1`) as a transport for [`super::KargoClient`]: one
//! `reqwest` client over rustls (HTTP/2 when the server offers it), a bearer token or the
//! admin password (logged in with, and logged in again when the token expires), Kargo's
//! routes for every read and write the provider makes, and `?watch=true` event streams.
//!
//! What the REST API cannot do that the Kubernetes API can is an
//! [`Error::NotOverApiServer`] naming it; resources say so at plan.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::error::{Error, Result};
use super::types::Kind;

/// Every route the provider calls, as `(method, path template, query parameters)`, in the
/// spelling of Kargo's `swagger.json`. `?watch=true` (with `resourceVersion`) on the routes
/// of [`WATCH_ROUTES`] is Kargo's event stream, which the swagger does not describe.
pub const ROUTES: &[(&str, &str, &[&str])] = &[
    ("POST", "/v1beta1/login", &[]),
    ("POST", "/v1beta1/resources", &[]),
    ("PUT", "/v1beta1/resources", &[]),
    ("DELETE", "/v1beta1/resources", &[]),
    ("GET", "/v1beta1/system/server-version", &[]),
    ("GET", "/v1beta1/projects", &[]),
    ("GET", "/v1beta1/projects/{project}", &[]),
    ("DELETE", "/v1beta1/projects/{project}", &[]),
    ("GET", "/v1beta1/projects/{project}/config", &[]),
    ("DELETE", "/v1beta1/projects/{project}/config", &[]),
    ("GET", "/v1beta1/projects/{project}/stages", &[]),
    ("GET", "/v1beta1/projects/{project}/stages/{stage}", &[]),
    ("DELETE", "/v1beta1/projects/{project}/stages/{stage}", &[]),
    (
        "POST",
        "/v1beta1/projects/{project}/stages/{stage}/promotions",
        &[],
    ),
    ("GET", "/v1beta1/projects/{project}/warehouses", &[]),
    (
        "GET",
        "/v1beta1/projects/{project}/warehouses/{warehouse}",
        &[],
    ),
    (
        "DELETE",
        "/v1beta1/projects/{project}/warehouses/{warehouse}",
        &[],
    ),
    ("GET", "/v1beta1/projects/{project}/freight", &[]),
    (
        "GET",
        "/v1beta1/projects/{project}/freight/{freight-name-or-alias}",
        &[],
    ),
    (
        "DELETE",
        "/v1beta1/projects/{project}/freight/{freight-name-or-alias}",
        &[],
    ),
    (
        "POST",
        "/v1beta1/projects/{project}/freight/{freight-name-or-alias}/approve",
        &["stage"],
    ),
    ("GET", "/v1beta1/projects/{project}/promotions", &["stage"]),
    (
        "GET",
        "/v1beta1/projects/{project}/promotions/{promotion}",
        &[],
    ),
    (
        "POST",
        "/v1beta1/projects/{project}/promotions/{promotion}/abort",
        &[],
    ),
    ("GET", "/v1beta1/projects/{project}/promotion-tasks", &[]),
    (
        "GET",
        "/v1beta1/projects/{project}/promotion-tasks/{promotion-task}",
        &[],
    ),
    ("GET", "/v1beta1/shared/cluster-promotion-tasks", &[]),
    (
        "GET",
        "/v1beta1/shared/cluster-promotion-tasks/{cluster-promotion-task}",
        &[],
    ),
];

/// The routes the provider watches with `?watch=true`.
pub const WATCH_ROUTES: &[&str] = &[
    "/v1beta1/projects/{project}/stages/{stage}",
    "/v1beta1/projects/{project}/warehouses/{warehouse}",
    "/v1beta1/projects/{project}/promotions/{promotion}",
    "/v1beta1/projects/{project}/freight",
];

/// How the provider authenticates to Kargo's API server.
#[derive(Clone, PartialEq, Eq)]
pub enum RestAuth {
    /// A token used as it is: a Kargo API token bound to a Kargo role, an OIDC ID token, or a
    /// Kubernetes service account token.
    Token(String),
    /// The admin account's password, exchanged for a token at `POST /v1beta1/login`.
    AdminPassword(String),
}

impl fmt::Debug for RestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestAuth::Token(_) => "Token(***)",
            RestAuth::AdminPassword(_) => "AdminPassword(***)",
        })
    }
}

/// Where Kargo's API server is and how to talk to it.
#[derive(Clone, Debug)]
pub struct RestConfig {
    /// The server's URL, with the base path it is served under, if any
    /// (`https://kargo.example.com` or `https://example.com/kargo`).
    pub url: String,
    pub auth: RestAuth,
    /// PEM CA certificates that replace the system's trust roots for this server.
    pub ca_pem: Option<String>,
    /// Skip verification of the server's certificate.
    pub insecure_skip_tls_verify: bool,
}

/// A token the admin login returned, with when it stops being accepted.
struct AdminToken {
    token: String,
    expires: Option<jiff::Timestamp>,
}

/// A token renewed this long before its `exp` claim, so a request never leaves with a token
/// about to expire.
const RENEW_BEFORE: i64 = 30;
/// How long one request (not a watch) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One answer: its status, its `Date` header and its body.
pub struct Answer {
    pub status: u16,
    /// The HTTP version the answer came over (HTTP/2 when the server offered it).
    pub version: reqwest::Version,
    pub date: Option<jiff::Timestamp>,
    pub body: bytes::Bytes,
}

/// The connection to one Kargo API server.
pub struct RestApi {
    http: reqwest::Client,
    base: String,
    host: String,
    auth: RestAuth,
    admin_token: Mutex<Option<AdminToken>>,
}

impl fmt::Debug for RestApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestApi")
            .field("host", &self.host)
            .field("auth", &self.auth)
            .finish()
    }
}

impl RestApi {
    /// Builds the client without contacting the server.
    pub fn new(config: RestConfig) -> Result<Arc<RestApi>> {
        let base = config.url.trim_end_matches('/').to_string();
        let host = super::redact_userinfo(&base);
        let tls = tls_config(config.ca_pem.as_deref(), config.insecure_skip_tls_verify)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(true)
            .build()
            .map_err(|e| Error::Config(format!("could not set up the HTTPS client: {e}")))?;
        Ok(Arc::new(RestApi {
            http,
            base,
            host,
            auth: config.auth,
            admin_token: Mutex::new(None),
        }))
    }

    /// The server's URL (without credentials).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The bearer token to send: the configured one, or the admin login's, logging in when
    /// there is none or it is about to expire.
    async fn token(&self, renew: bool) -> Result<String> {
        let password = match &self.auth {
            RestAuth::Token(token) => return Ok(token.clone()),
            RestAuth::AdminPassword(password) => password,
        };
        let mut cached = self.admin_token.lock().await;
        let now = jiff::Timestamp::now();
        if !renew
            && let Some(t) = cached.as_ref()
            && t.expires
                .is_none_or(|exp| exp.as_second() - RENEW_BEFORE > now.as_second())
        {
            return Ok(t.token.clone());
        }
        let answer = self
            .exchange(
                reqwest::Method::POST,
                "/v1beta1/login",
                None,
                Some(password),
            )
            .await
            .map_err(|e| self.transport_error(e, "the admin login"))?;
        if answer.status != 200 {
            let message = error_message(&answer.body);
            return Err(match answer.status {
                401 | 403 => Error::ApiServerUnauthorized {
                    host: self.host.clone(),
                    message: format!("the admin login was refused: {message}"),
                },
                _ => self.status_error(answer.status, &answer.body, "the admin login"),
            });
        }
        let token = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["idToken"].as_str().map(str::to_string))
            .ok_or_else(|| {
                Error::Other(format!(
                    "the admin login at {} answered without an idToken",
                    self.host
                ))
            })?;
        let expires = jwt_expiry(&token);
        tracing::debug!(host = %self.host, expires = ?expires.map(|t| t.to_string()), "logged in to Kargo's API server as admin");
        *cached = Some(AdminToken {
            token: token.clone(),
            expires,
        });
        Ok(token)
    }

    /// Whether an answer with `status` is sent again after a new login: a refused admin token
    /// (it expired), once. A configured token is used as it is.
    fn renews_after(&self, status: u16, renewed: bool) -> bool {
        status == 401 && !renewed && matches!(self.auth, RestAuth::AdminPassword(_))
    }

    /// Sends one request; the body is JSON (or, for `/resources`, a manifest as text).
    async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        bearer: Option<&str>,
    ) -> std::result::Result<Answer, reqwest::Error> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let response = req.send().await?;
        let status = response.status().as_u16();
        let version = response.version();
        let date = date_of(response.headers());
        let body = response.bytes().await?;
        Ok(Answer {
            status,
            version,
            date,
            body,
        })
    }

    /// Sends an authenticated request about `what`. An expired admin token is renewed and
    /// the request sent once more; a refused configured token is an error.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        what: &str,
    ) -> Result<Answer> {
        let started = std::time::Instant::now();
        let mut renewed = false;
        loop {
            let token = self.token(renewed).await?;
            let answer = self
                .exchange(method.clone(), path, body.clone(), Some(&token))
                .await
                .map_err(|e| self.transport_error(e, what))?;
            tracing::debug!(
                verb = %method,
                path,
                status = answer.status,
                version = ?answer.version,
                latency_ms = started.elapsed().as_millis() as u64,
                "Kargo API server request"
            );
            if self.renews_after(answer.status, renewed) {
                tracing::debug!("the admin token was refused; logging in again");
                renewed = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// [`RestApi::send`], with a failure status turned into a typed error.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        what: &str,
    ) -> Result<Answer> {
        let answer = self.send(method, path, body, what).await?;
        if answer.status >= 400 {
            return Err(self.status_error(answer.status, &answer.body, what));
        }
        Ok(answer)
    }

    /// Opens `?watch=true` on `path` and returns the response to read events from.
    pub async fn open_watch(&self, path: &str, what: &str) -> Result<reqwest::Response> {
        let mut renewed = false;
        loop {
            let token = self.token(renewed).await?;
            let sep = if path.contains('?') { '&' } else { '?' };
            let response = self
                .http
                .get(format!("{}{path}{sep}watch=true", self.base))
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| self.transport_error(e, what))?;
            let status = response.status().as_u16();
            if self.renews_after(status, renewed) {
                renewed = true;
                continue;
            }
            if status >= 400 {
                let body = response.bytes().await.unwrap_or_default();
                return Err(self.status_error(status, &body, what));
            }
            return Ok(response);
        }
    }

    pub fn transport_error(&self, err: reqwest::Error, what: &str) -> Error {
        let reason = super::chain_text(&err);
        if err.is_timeout() {
            return Error::ApiServerUnreachable {
                host: self.host.clone(),
                reason: format!("no answer about {what} in time ({reason})"),
            };
        }
        Error::ApiServerUnreachable {
            host: self.host.clone(),
            reason,
        }
    }

    /// A failure answer as a typed error: Kargo's `{"error": …}` body with the Kubernetes
    /// status code of what went wrong.
    pub fn status_error(&self, code: u16, body: &[u8], what: &str) -> Error {
        let message = error_message(body);
        if code == 401 {
            return Error::ApiServerUnauthorized {
                host: self.host.clone(),
                message,
            };
        }
        // Kargo says what is missing as `{"error": …}`; any other 404 (a page, a Kubernetes
        // Status) is from something else at this address: the route is not served here.
        let kargos = serde_json::from_slice::<Value>(body).is_ok_and(|v| v["error"].is_string());
        if code == 404 && (!kargos || message.contains("page not found")) {
            return Error::Other(format!(
                "Kargo's API server at {} does not serve the route for {what} ({message}). Check \
                 `api_server.url`, including the base path Kargo is served under; Kargo v1.9 or \
                 later serves the REST API the provider uses",
                self.host
            ));
        }
        let lower = message.to_ascii_lowercase();
        let reason = match code {
            400 => "BadRequest",
            403 => "Forbidden",
            404 => "NotFound",
            409 if lower.contains("already exists") => "AlreadyExists",
            409 => "Conflict",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        let status = kube::core::Status::failure(&message, reason).with_code(code);
        match Error::from_status(&status, what, &self.host) {
            // Kargo's 403 is about its roles, not Kubernetes RBAC.
            Error::Forbidden { what, message } => Error::ApiServerForbidden { what, message },
            other => other,
        }
    }
}

/// The message of a failure body: Kargo's `{"error": …}`, a Kubernetes Status's `message`,
/// or the text itself.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => v["error"]
            .as_str()
            .or_else(|| v["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            if text.is_empty() {
                "no message".to_string()
            } else {
                text
            }
        }
    }
}

fn date_of(headers: &reqwest::header::HeaderMap) -> Option<jiff::Timestamp> {
    headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(super::client::parse_http_date)
}

/// The `exp` claim of a JWT, read without verifying it (the server verifies; the provider
/// only wants to renew in time).
fn jwt_expiry(token: &str) -> Option<jiff::Timestamp> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    jiff::Timestamp::from_second(claims["exp"].as_i64()?).ok()
}

/// The rustls configuration: the given CA certificates (or the system's), HTTP/2 and
/// HTTP/1.1 offered by ALPN.
fn tls_config(ca_pem: Option<&str>, insecure: bool) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| {
                        Error::Config(format!("api_server.ca_certificate is not PEM: {e}"))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::Config(format!(
                            "api_server.ca_certificate holds a certificate rustls rejects: {e}"
                        ))
                    })?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system certificate rustls cannot use is skipped.
                    let _ = roots.add(cert);
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// `insecure_skip_tls_verify`: any certificate is accepted; signatures are still checked so
/// the handshake is with the holder of the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The path of one object, or `None` for a kind Kargo's API server does not serve.
pub fn object_path(kind: Kind, namespace: Option<&str>, name: &str) -> Option<String> {
    let ns = namespace.unwrap_or_default();
    Some(match kind {
        Kind::Project => format!("/v1beta1/projects/{name}"),
        Kind::ProjectConfig => format!("/v1beta1/projects/{ns}/config"),
        Kind::Warehouse => format!("/v1beta1/projects/{ns}/warehouses/{name}"),
        Kind::Stage => format!("/v1beta1/projects/{ns}/stages/{name}"),
        Kind::Freight => format!("/v1beta1/projects/{ns}/freight/{name}"),
        Kind::Promotion => format!("/v1beta1/projects/{ns}/promotions/{name}"),
        Kind::PromotionTask => format!("/v1beta1/projects/{ns}/promotion-tasks/{name}"),
        Kind::ClusterPromotionTask => {
            format!("/v1beta1/shared/cluster-promotion-tasks/{name}")
        }
        Kind::Namespace | Kind::Secret => return None,
    })
}

/// The path listing a kind in a project, or `None` for a kind Kargo's API server does not
/// list.
pub fn list_path(kind: Kind, namespace: Option<&str>) -> Option<String> {
    let ns = namespace.unwrap_or_default();
    Some(match kind {
        Kind::Project => "/v1beta1/projects".to_string(),
        Kind::Warehouse => format!("/v1beta1/projects/{ns}/warehouses"),
        Kind::Stage => format!("/v1beta1/projects/{ns}/stages"),
        Kind::Freight => format!("/v1beta1/projects/{ns}/freight"),
        Kind::Promotion => format!("/v1beta1/projects/{ns}/promotions"),
        Kind::PromotionTask => format!("/v1beta1/projects/{ns}/promotion-tasks"),
        Kind::ClusterPromotionTask => "/v1beta1/shared/cluster-promotion-tasks".to_string(),
        Kind::ProjectConfig | Kind::Namespace | Kind::Secret => return None,
    })
}

/// Whether Kargo's API server streams changes of `kind` with `?watch=true`.
pub fn watchable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Stage | Kind::Warehouse | Kind::Promotion | Kind::Freight
    )
}

/// The items of a list answer: `items`, or Freight's `groups` (all groups' items).
pub fn list_items(kind: Kind, answer: &[u8]) -> Result<(Vec<Value>, Option<String>)> {
    let v: Value = serde_json::from_slice(answer).map_err(|e| {
        Error::Other(format!(
            "Kargo's API server answered a list of {kind} objects that could not be read: {e}"
        ))
    })?;
    let version = v["metadata"]["resourceVersion"]
        .as_str()
        .or_else(|| v["resourceVersion"].as_str())
        .map(str::to_string);
    let items = if kind == Kind::Freight {
        v["groups"]
            .as_object()
            .map(|groups| {
                groups
                    .values()
                    .flat_map(|g| g["items"].as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        v["items"].as_array().cloned().unwrap_or_default()
    };
    Ok((items, version))
}

/// Whether `labels` satisfy a label selector of the forms the provider uses: `k=v`, `k==v`,
/// `k!=v`, `k` and `!k`, joined by commas. (Kargo's list routes take no selector.)
pub fn selector_matches(selector: &str, labels: Option<&serde_json::Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                get(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                get(k.trim()) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k.trim()).is_none()
            } else {
                get(term).is_some()
            }
        })
}

/// The object a `/resources` answer carries for its one manifest.
pub fn resource_result(body: &[u8], key: &str) -> Result<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        Error::Other(format!(
            "Kargo's API server answered a write that could not be read: {e}"
        ))
    })?;
    let first = &v["results"][0];
    if let Some(error) = first["error"].as_str() {
        return Err(Error::Other(error.to_string()));
    }
    let manifest = &first[key];
    // Kargo's generated client carries the manifest as an object; tolerate base64 text.
    match manifest {
        Value::Object(_) => Ok(manifest.clone()),
        Value::String(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Error::Other(format!("the {key} of Kargo's answer is not JSON"))),
        _ => Err(Error::Other(format!(
            "Kargo's answer to a write has no {key}"
        ))),
    }
}

/// What Terraform writes merged into the live object for a full-update `PUT`, as server-side
/// apply would merge it with one level of ownership: the keys of `spec` and of the labels and
/// annotations Terraform sets replace the live ones; those an earlier write of the provider
/// set and the desired object no longer has are dropped (recorded in
/// [`OWNED_KEYS_ANNOTATION`]); everything else of the live object (keys others set or Kargo
/// defaulted, finalizers, owner references, status) stays.
pub fn merge_for_update(live: &Value, desired: &Value) -> Value {
    let mut merged = live.clone();
    let Some(out) = merged.as_object_mut() else {
        return desired.clone();
    };
    let owned_before: Value = live["metadata"]["annotations"][OWNED_KEYS_ANNOTATION]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let mut owned_now = serde_json::Map::new();
    // One map of `out` merged with the same map of `desired`, recording the keys it sets.
    let mut merge_map = |out: &mut serde_json::Map<String, Value>, field: &str, wanted: &Value| {
        let wanted = wanted.as_object().cloned().unwrap_or_default();
        let mut map = out
            .get(field)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for key in owned_before[field].as_array().into_iter().flatten() {
            if let Some(key) = key.as_str()
                && !wanted.contains_key(key)
            {
                map.remove(key);
            }
        }
        let mut keys: Vec<Value> = Vec::new();
        for (k, v) in wanted {
            keys.push(Value::from(k.as_str()));
            map.insert(k, v);
        }
        owned_now.insert(field.to_string(), Value::Array(keys));
        out.insert(field.to_string(), Value::Object(map));
    };
    if let Some(desired) = desired.as_object() {
        for (key, value) in desired {
            match key.as_str() {
                "metadata" | "status" => {}
                "spec" if value.is_object() => merge_map(out, "spec", value),
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
    }
    let metadata = out
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(metadata) = metadata else {
        return merged;
    };
    for field in ["labels", "annotations"] {
        merge_map(metadata, field, &desired["metadata"][field]);
    }
    let record = Value::Object(owned_now).to_string();
    if let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(OWNED_KEYS_ANNOTATION.into(), Value::from(record));
    }
    merged
}

/// `desired` as it is created: with the record of the labels and annotations it sets, as
/// [`merge_for_update`] keeps it.
pub fn for_create(desired: &Value) -> Value {
    let mut shell = desired.clone();
    if let Some(metadata) = shell.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("labels");
        metadata.remove("annotations");
    }
    let mut created = merge_for_update(&shell, desired);
    // Nothing to keep from an object that does not exist: empty maps stay out.
    if let Some(metadata) = created.get_mut("metadata").and_then(Value::as_object_mut)
        && metadata
            .get("labels")
            .is_some_and(|l| l.as_object().is_some_and(|m| m.is_empty()))
    {
        metadata.remove("labels");
    }
    created
}

/// Whether writing `merged` (from [`merge_for_update`]) over `live` would change nothing:
/// every field it sets already holds that value (fields Kargo defaulted on `live` may be
/// absent from it), and the labels and annotations are exactly the same.
pub fn update_changes_nothing(live: &Value, merged: &Value) -> bool {
    fn holds(live: &Value, wanted: &Value) -> bool {
        match (live, wanted) {
            (Value::Object(l), Value::Object(w)) => w
                .iter()
                .all(|(k, v)| v.is_null() || l.get(k).is_some_and(|lv| holds(lv, v))),
            (Value::Array(l), Value::Array(w)) => {
                l.len() == w.len() && l.iter().zip(w).all(|(a, b)| holds(a, b))
            }
            (l, w) => l == w,
        }
    }
    let same = |field: &str| live["metadata"][field] == merged["metadata"][field];
    same("labels") && same("annotations") && holds(live, merged)
}

/// Records, on objects the provider writes through Kargo's API server, which labels and
/// annotations it set, so a later write can drop the ones removed from the configuration
/// (the API server's writes are full updates, not server-side apply).
pub const OWNED_KEYS_ANNOTATION: &str = "terraform-provider-kargo/owned-metadata";

/// The events of a `text/event-stream` body: `(event name, data)` of every complete event in
/// `buffer`, which keeps what is left of an incomplete one.
pub fn take_events(buffer: &mut Vec<u8>) -> Vec<(String, String)> {
    let mut events = Vec::new();
    loop {
        let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
        let crlf = buffer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, 4));
        let Some((end, len)) = [lf, crlf].into_iter().flatten().min_by_key(|(i, _)| *i) else {
            return events;
        };
        let block: Vec<u8> = buffer.drain(..end + len).collect();
        let block = String::from_utf8_lossy(&block);
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() || !name.is_empty() {
            events.push((name, data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_at_blank_lines_and_keep_what_is_incomplete() {
        let mut buf =
            b"data: {\"type\":\"ADDED\"}\n\nevent: error\ndata: {\"message\":\"x\"}\n\ndata: {\"ty"
                .to_vec();
        let events = take_events(&mut buf);
        assert_eq!(
            events,
            vec![
                (String::new(), "{\"type\":\"ADDED\"}".to_string()),
                ("error".to_string(), "{\"message\":\"x\"}".to_string()),
            ]
        );
        assert_eq!(buf, b"data: {\"ty");
        buf.extend_from_slice(b"pe\":\"DELETED\"}\r\n\r\n");
        assert_eq!(
            take_events(&mut buf),
            vec![(String::new(), "{\"type\":\"DELETED\"}".to_string())]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn selectors_of_the_forms_the_provider_uses() {
        let labels = json!({"a": "1", "b": "2"});
        let l = labels.as_object();
        assert!(selector_matches("a=1", l));
        assert!(selector_matches("a==1,b", l));
        assert!(!selector_matches("a=2", l));
        assert!(selector_matches("a!=2,!c", l));
        assert!(!selector_matches("!a", l));
        assert!(!selector_matches("c", None));
        assert!(selector_matches("", None));
    }

    #[test]
    fn an_update_keeps_what_others_set_and_drops_what_terraform_no_longer_sets() {
        let live = json!({
            "metadata": {
                "name": "dev", "resourceVersion": "7", "finalizers": ["kargo.akuity.io/finalizer"],
                "labels": {"team": "a", "other": "x"},
                "annotations": {"old": "1", OWNED_KEYS_ANNOTATION: "{\"labels\":[\"team\"],\"annotations\":[\"old\"]}"}
            },
            "spec": {"shard": "s", "requestedFreight": []},
            "status": {"phase": "Steady"}
        });
        let desired = json!({
            "metadata": {"name": "dev", "labels": {"team": "b"}},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}}]}
        });
        let merged = merge_for_update(&live, &desired);
        assert_eq!(
            merged["spec"],
            json!({"shard": "s", "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}}]})
        );
        assert_eq!(merged["status"], live["status"]);
        assert_eq!(merged["metadata"]["resourceVersion"], "7");
        assert_eq!(
            merged["metadata"]["finalizers"],
            live["metadata"]["finalizers"]
        );
        assert_eq!(
            merged["metadata"]["labels"],
            json!({"team": "b", "other": "x"})
        );
        assert!(merged["metadata"]["annotations"].get("old").is_none());
        assert_eq!(
            merged["metadata"]["annotations"][OWNED_KEYS_ANNOTATION],
            "{\"spec\":[\"requestedFreight\"],\"labels\":[\"team\"],\"annotations\":[]}"
        );
        assert_eq!(
            merged["spec"]["shard"], "s",
            "a key Terraform never set stays"
        );
        // A spec key Terraform set before and no longer sets is dropped.
        let next = json!({"metadata": {"labels": {"team": "b"}}, "spec": {}});
        let again = merge_for_update(&merged, &next);
        assert_eq!(again["spec"], json!({"shard": "s"}));
    }

    #[test]
    fn a_created_object_records_what_terraform_set() {
        let desired = json!({"metadata": {"name": "w", "namespace": "p", "labels": {"a": "1"}}, "spec": {"x": 1}});
        let created = for_create(&desired);
        assert_eq!(created["metadata"]["name"], "w");
        assert_eq!(created["metadata"]["namespace"], "p");
        assert_eq!(created["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(created["spec"], json!({"x": 1}));
        assert_eq!(
            created["metadata"]["annotations"][OWNED_KEYS_ANNOTATION],
            "{\"spec\":[\"x\"],\"labels\":[\"a\"],\"annotations\":[]}"
        );
        let bare = for_create(&json!({"metadata": {"name": "w"}}));
        assert!(bare["metadata"].get("labels").is_none(), "{bare}");
    }

    #[test]
    fn an_update_that_only_repeats_what_is_stored_changes_nothing() {
        let live = json!({
            "metadata": {"name": "w", "labels": {"a": "1"}},
            "spec": {"interval": "5m0s", "freightCreationPolicy": "Automatic",
                     "subscriptions": [{"image": {"repoURL": "r", "discoveryLimit": 20}}]}
        });
        let same = json!({"metadata": {"labels": {"a": "1"}},
            "spec": {"interval": "5m0s", "subscriptions": [{"image": {"repoURL": "r"}}]}});
        let merged = merge_for_update(&live, &same);
        // The first write through the API server records what it owns.
        assert!(!update_changes_nothing(&live, &merged));
        let recorded = merged.clone();
        assert!(update_changes_nothing(
            &recorded,
            &merge_for_update(&recorded, &same)
        ));
        let other = json!({"metadata": {"labels": {"a": "1"}},
            "spec": {"interval": "10m0s", "subscriptions": [{"image": {"repoURL": "r"}}]}});
        assert!(!update_changes_nothing(
            &recorded,
            &merge_for_update(&recorded, &other)
        ));
        let fewer = json!({"metadata": {},
            "spec": {"interval": "5m0s", "subscriptions": [{"image": {"repoURL": "r"}}]}});
        assert!(!update_changes_nothing(
            &recorded,
            &merge_for_update(&recorded, &fewer)
        ));
    }

    #[test]
    fn list_answers_and_write_answers_are_read() {
        let (items, rv) = list_items(
            Kind::Freight,
            br#"{"groups":{"":{"items":[{"metadata":{"name":"f"}}]}},"resourceVersion":"9"}"#,
        )
        .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(rv.as_deref(), Some("9"));
        let (items, _) = list_items(Kind::Stage, br#"{"items":[{},{}]}"#).unwrap();
        assert_eq!(items.len(), 2);
        let obj = resource_result(
            br#"{"results":[{"createdResourceManifest":{"kind":"Stage"}}]}"#,
            "createdResourceManifest",
        )
        .unwrap();
        assert_eq!(obj["kind"], "Stage");
        let err = resource_result(br#"{"results":[{"error":"boom"}]}"#, "x").unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn the_expiry_of_a_token_is_read_from_its_claims() {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let token = format!(
            "{}.{}.sig",
            b64(&json!({"alg": "HS256"})),
            b64(&json!({"exp": 1_900_000_000}))
        );
        assert_eq!(
            jwt_expiry(&token).map(|t| t.as_second()),
            Some(1_900_000_000)
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let text = format!("{:?}", RestAuth::AdminPassword("hunter2".into()));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
