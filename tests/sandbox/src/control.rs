//! The private control API under `/sandbox/v1/…` (admin token only) that the CLI uses to
//! drive a running sandbox, and the small HTTPS client the CLI talks to it with.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};

use crate::auth::{ADMIN, User};
use crate::clock::parse_duration;
use crate::faults::{FaultKind, HttpFault};
use crate::hooks::ApiError;
use crate::kubeconfig::{self, Endpoint};
use crate::router::{Body, error_response, json_response};
use crate::server::{Shared, lock};
use crate::status;
use crate::tls;

/// How long a refusal asked for over HTTP waits, so its own answer still gets out.
const REFUSE_GRACE: Duration = Duration::from_millis(150);

/// Serves `/sandbox/v1/…`.
pub async fn handle(shared: Arc<Shared>, req: http::Request<Incoming>) -> Response<Body> {
    match serve(&shared, req).await {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_json::from_value(body.clone())
        .map_err(|e| status::bad_request(format!("invalid request: {e}")))
}

async fn serve(shared: &Arc<Shared>, req: http::Request<Incoming>) -> Result<Value, ApiError> {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let user = lock(&shared.state)
        .users
        .authenticate(&token)
        .map(str::to_string);
    match user.as_deref() {
        None => return Err(status::unauthorized()),
        Some(ADMIN) => {}
        Some(other) => {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("User \"{other}\" cannot use the sandbox control API"),
            ));
        }
    }
    let method = req.method().clone();
    let path = req
        .uri()
        .path()
        .trim_start_matches("/sandbox/v1")
        .trim_matches('/')
        .to_string();
    let bytes = Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| status::bad_request(format!("request body: {e}")))?
        .to_bytes();
    let body: Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| status::bad_request(format!("invalid JSON: {e}")))?
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segs.as_slice()) {
        (Method::GET, ["kargo"]) => Ok(json!(lock(&shared.state).kargo)),
        (Method::POST, ["kargo", "install"]) => {
            shared.install_kargo();
            Ok(json!(lock(&shared.state).kargo))
        }
        (Method::POST, ["kargo", "uninstall"]) => {
            shared.uninstall_kargo();
            Ok(json!(lock(&shared.state).kargo))
        }
        (Method::POST, ["control", name]) => shared.control(name, &body),
        (Method::POST, ["git", command]) => {
            let (git, command) = (shared.git.clone(), command.to_string());
            tokio::task::spawn_blocking(move || git.control(&command, &body))
                .await
                .map_err(|e| status::bad_request(e.to_string()))?
                .map_err(status::bad_request)
        }
        (Method::POST, ["faults"]) => {
            let fault: HttpFault = parse(&body)?;
            if fault.kind == FaultKind::Refuse {
                if fault.duration_ms.is_none() {
                    return Err(status::bad_request("a refuse fault needs a duration"));
                }
                let shared = shared.clone();
                let delayed = fault.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(REFUSE_GRACE).await;
                    let _ = shared.add_fault(delayed);
                });
            } else {
                shared
                    .add_fault(fault.clone())
                    .map_err(status::bad_request)?;
            }
            Ok(json!(fault))
        }
        (Method::DELETE, ["faults"]) => {
            shared.clear_faults()?;
            Ok(json!({"cleared": true}))
        }
        (Method::POST, ["clock", "advance"]) => {
            let text = body
                .get("duration")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let by = parse_duration(text).map_err(status::bad_request)?;
            shared.advance_clock(by);
            Ok(json!({"offsetMs": shared.clock.offset_ms(), "now": shared.clock.stamp()}))
        }
        (Method::GET, ["stats"]) => Ok(json!(shared.request_counts())),
        (Method::GET, ["requests"]) => Ok(json!(shared.requests())),
        (Method::DELETE, ["requests"]) => {
            shared.reset_requests();
            Ok(json!({"reset": true}))
        }
        (Method::POST, ["users"]) => {
            let user: User = parse(&body)?;
            if user.name.is_empty() || user.token.is_empty() {
                return Err(status::bad_request("a user needs a name and a token"));
            }
            shared.add_user(user.clone());
            Ok(json!({"name": user.name, "deny": user.deny}))
        }
        _ => Err(status::no_such_resource()),
    }
}

/// A client for a running sandbox's control API, configured from its kubeconfig.
pub struct Client {
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    pub fn from_kubeconfig(path: &std::path::Path) -> Result<Client, String> {
        let endpoint = kubeconfig::read(path)?;
        let tls = tls::client_config(&endpoint.ca_pem).map_err(|e| e.to_string())?;
        Ok(Client { endpoint, tls })
    }

    /// Calls `/sandbox/v1/<path>`; a non-2xx answer becomes its Status message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let authority = self
            .endpoint
            .server
            .strip_prefix("https://")
            .ok_or_else(|| format!("unsupported server URL {:?}", self.endpoint.server))?
            .trim_end_matches('/')
            .to_string();
        let host = match authority.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            None => authority.clone(),
        };
        let unreachable = |e: &dyn std::fmt::Display| {
            format!("cannot reach the sandbox at {}: {e}", self.endpoint.server)
        };
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| unreachable(&e))?;
        let name = ServerName::try_from(host).map_err(|e| unreachable(&e))?;
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let payload = body
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("/sandbox/v1/{}", path.trim_start_matches('/')))
            .header(HOST, &authority)
            .header(AUTHORIZATION, format!("Bearer {}", self.endpoint.token))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(&e))?;
        let code = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        if code.is_success() {
            Ok(value)
        } else {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or(value.to_string());
            Err(format!("{message} ({})", code.as_u16()))
        }
    }
}
