//! The private control API under `/sandbox/v1/…` (admin token only) that the CLI uses to
//! drive a running sandbox, and the small HTTPS client the CLI talks to it with.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::routing::{MethodFilter, on};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
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

/// One control call: the sandbox, the path's parameter (if any) and the JSON body.
type Call = fn(&Arc<Shared>, &str, Value) -> Result<Value, ApiError>;

#[rustfmt::skip]
const CALLS: &[(&str, MethodFilter, Call)] = &[
    ("/v1/kargo", MethodFilter::GET, |s, _, _| Ok(json!(lock(&s.state).kargo))),
    ("/v1/kargo/install", MethodFilter::POST, |s, _, _| {
        s.install_kargo();
        Ok(json!(lock(&s.state).kargo))
    }),
    ("/v1/kargo/uninstall", MethodFilter::POST, |s, _, _| {
        s.uninstall_kargo();
        Ok(json!(lock(&s.state).kargo))
    }),
    ("/v1/control/{name}", MethodFilter::POST, |s, name, body| s.control(name, &body)),
    ("/v1/faults", MethodFilter::POST, |s, _, body| add_fault(s, parse(body)?)),
    ("/v1/faults", MethodFilter::DELETE, |s, _, _| s.clear_faults().map(|()| json!({"cleared": true}))),
    ("/v1/clock/advance", MethodFilter::POST, |s, _, body| {
        let text = body.get("duration").and_then(Value::as_str).unwrap_or_default();
        s.advance_clock(parse_duration(text).map_err(status::bad_request)?);
        Ok(json!({"offsetMs": s.clock.offset_ms(), "now": s.clock.stamp()}))
    }),
    ("/v1/stats", MethodFilter::GET, |s, _, _| Ok(json!(s.request_counts()))),
    ("/v1/requests", MethodFilter::GET, |s, _, _| Ok(json!(s.requests()))),
    ("/v1/requests", MethodFilter::DELETE, |s, _, _| {
        s.reset_requests();
        Ok(json!({"reset": true}))
    }),
    ("/v1/users", MethodFilter::POST, |s, _, body| {
        let user: User = parse(body)?;
        if user.name.is_empty() || user.token.is_empty() {
            return Err(status::bad_request("a user needs a name and a token"));
        }
        s.add_user(user.clone());
        Ok(json!({"name": user.name, "deny": user.deny, "rbac": user.rbac}))
    }),
];

/// The control API's routes (nested under `/sandbox`), all for the admin only.
pub fn routes(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let not_found = || async { error_response(&status::no_such_resource()) };
    let mut router = Router::new()
        .fallback(not_found)
        .method_not_allowed_fallback(not_found);
    for (path, method, call) in CALLS {
        let call = *call;
        let handler = move |State(s), Path(p): Path<Vec<String>>, bytes: Bytes| async move {
            let param = p.first().map(String::as_str).unwrap_or_default();
            match body(&bytes).and_then(|b| call(&s, param, b)) {
                Ok(v) => json_response(200, &v),
                Err(e) => error_response(&e),
            }
        };
        router = router.route(path, on(*method, handler));
    }
    // Git commands run `git` and wait for it: off the async workers.
    let git = |State(s): State<Arc<Shared>>, Path(command): Path<String>, bytes: Bytes| async move {
        let result = match body(&bytes) {
            Ok(b) => {
                let git = s.git.clone();
                tokio::task::spawn_blocking(move || git.control(&command, &b))
                    .await
                    .map_err(|e| status::bad_request(e.to_string()))
                    .and_then(|r| r.map_err(status::bad_request))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(v) => json_response(200, &v),
            Err(e) => error_response(&e),
        }
    };
    router = router.route("/v1/git/{command}", on(MethodFilter::POST, git));
    router.layer(middleware::from_fn_with_state(shared, admin_only))
}

async fn admin_only(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response<Body> {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim();
    let user = lock(&shared.state)
        .users
        .authenticate(token)
        .map(|who| who.name);
    match user.as_deref() {
        Some(ADMIN) => next.run(req).await,
        None => error_response(&status::unauthorized()),
        Some(other) => error_response(&ApiError::new(
            403,
            "Forbidden",
            format!("User \"{other}\" cannot use the sandbox control API"),
        )),
    }
}

/// The JSON body of a control call (`{}` when empty).
fn body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes).map_err(|e| status::bad_request(format!("invalid JSON: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| status::bad_request(format!("invalid request: {e}")))
}

fn add_fault(shared: &Arc<Shared>, fault: HttpFault) -> Result<Value, ApiError> {
    if fault.kind == FaultKind::Refuse {
        if fault.duration_ms.is_none() {
            return Err(status::bad_request("a refuse fault needs a duration"));
        }
        let (shared, delayed) = (shared.clone(), fault.clone());
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
