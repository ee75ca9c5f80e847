//! Kargo's REST API (`/v1beta1`), as the Kargo API server serves it, from the same process
//! and store as the Kubernetes API: admin login and its HS256 JWT, API tokens bound to Kargo
//! Roles, generic `/resources` writes, reads of Projects, Stages, Warehouses, Freight,
//! Promotions (with `?watch=true` server-sent event streams), PromotionTasks and
//! ClusterPromotionTasks, the server version, promotion, approval, abort, warehouse refresh
//! and deletion.
//!
//! The API server reads as the caller (RBAC decides, admins may do everything) and writes
//! as its own service account, [`API_SERVER_USER`], whose writes still pass Kargo's
//! admission webhooks and the CRD schemas but keep the `create-actor` it stamps.
//!
//! The API server is part of Kargo's installation: while Kargo is not installed (a sandbox
//! started without Kargo, or after `uninstall-kargo`) nothing answers behind `/v1beta1`, and
//! every request there gets what a proxy in front of a missing backend answers: 503 with the
//! plain-text body [`UNAVAILABLE_BODY`], whatever the route or credentials. The Kubernetes
//! API on the same port keeps serving.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::{self, DeleteOptions, FieldValidation};
use crate::faults::After;
use crate::hooks::ApiError;
use crate::kargo::util::{
    self, ANNOTATION_ABORT, ANNOTATION_CREATE_ACTOR, ANNOTATION_REFRESH, LABEL_ALIAS,
};
use crate::rbac::{Access, Identity};
use crate::reqlog::RequestRecord;
use crate::resources::{self, ResourceDef};
use crate::router::Body;
use crate::server::{ConnectionReset, Shared, lock};
use crate::status;
use crate::store::meta_str;

/// The user the Kargo API server writes as (its service account); Kargo's webhooks treat it
/// as the control plane.
pub const API_SERVER_USER: &str = "system:serviceaccount:kargo:kargo-api";
/// Kargo's default admin token lifetime (`api.adminAccount.tokenTTL`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// The largest `/resources` body Kargo accepts.
pub const MAX_RESOURCES_BODY: usize = 4 * 1024 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const SA_ISSUER: &str = "kubernetes/serviceaccount";
const ADMIN_ISSUER: &str = "kargo-sandbox-api";
/// The plain-text body of every `/v1beta1` answer while Kargo is not installed (503).
pub const UNAVAILABLE_BODY: &str = "Kargo API server unavailable";
/// The Kargo release the sandbox models, as its API server reports it.
pub const KARGO_VERSION: &str = "v1.11.2";

/// Every route served, as `(METHOD, path template)` in the spelling of Kargo's swagger.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1beta1/login"),
    ("GET", "/v1beta1/system/server-version"),
    ("GET", "/v1beta1/shared/cluster-promotion-tasks"),
    (
        "GET",
        "/v1beta1/shared/cluster-promotion-tasks/{cluster-promotion-task}",
    ),
    ("POST", "/v1beta1/resources"),
    ("PUT", "/v1beta1/resources"),
    ("DELETE", "/v1beta1/resources"),
    ("GET", "/v1beta1/projects"),
    ("GET", "/v1beta1/projects/{project}"),
    ("DELETE", "/v1beta1/projects/{project}"),
    ("GET", "/v1beta1/projects/{project}/config"),
    ("DELETE", "/v1beta1/projects/{project}/config"),
    ("GET", "/v1beta1/projects/{project}/stages"),
    ("GET", "/v1beta1/projects/{project}/stages/{stage}"),
    ("DELETE", "/v1beta1/projects/{project}/stages/{stage}"),
    (
        "POST",
        "/v1beta1/projects/{project}/stages/{stage}/promotions",
    ),
    ("GET", "/v1beta1/projects/{project}/warehouses"),
    ("GET", "/v1beta1/projects/{project}/warehouses/{warehouse}"),
    (
        "DELETE",
        "/v1beta1/projects/{project}/warehouses/{warehouse}",
    ),
    (
        "POST",
        "/v1beta1/projects/{project}/warehouses/{warehouse}/refresh",
    ),
    ("GET", "/v1beta1/projects/{project}/freight"),
    (
        "GET",
        "/v1beta1/projects/{project}/freight/{freight-name-or-alias}",
    ),
    (
        "DELETE",
        "/v1beta1/projects/{project}/freight/{freight-name-or-alias}",
    ),
    (
        "POST",
        "/v1beta1/projects/{project}/freight/{freight-name-or-alias}/approve",
    ),
    ("GET", "/v1beta1/projects/{project}/promotions"),
    ("GET", "/v1beta1/projects/{project}/promotions/{promotion}"),
    (
        "POST",
        "/v1beta1/projects/{project}/promotions/{promotion}/abort",
    ),
    ("GET", "/v1beta1/projects/{project}/promotion-tasks"),
    (
        "GET",
        "/v1beta1/projects/{project}/promotion-tasks/{promotion-task}",
    ),
    (
        "POST",
        "/v1beta1/projects/{project}/roles/{role}/api-tokens",
    ),
];

/// The query parameters the sandbox reads, by route, as Kargo's swagger documents them.
pub const QUERY_PARAMETERS: &[(&str, &str, &[&str])] = &[
    ("PUT", "/v1beta1/resources", &["upsert"]),
    ("GET", "/v1beta1/projects/{project}/promotions", &["stage"]),
    (
        "POST",
        "/v1beta1/projects/{project}/freight/{freight-name-or-alias}/approve",
        &["stage"],
    ),
];

/// The GET routes that stream with `?watch=true` (and take `resourceVersion=`): Kargo's
/// handlers read both parameters, though its swagger documents neither.
pub const WATCH_ROUTES: &[&str] = &[
    "/v1beta1/projects/{project}/stages",
    "/v1beta1/projects/{project}/stages/{stage}",
    "/v1beta1/projects/{project}/warehouses",
    "/v1beta1/projects/{project}/warehouses/{warehouse}",
    "/v1beta1/projects/{project}/promotions",
    "/v1beta1/projects/{project}/promotions/{promotion}",
    "/v1beta1/projects/{project}/freight",
];

/// Query parameters Kargo documents on routes the sandbox serves but that it does not
/// implement: asking for them is an error rather than a silently different answer.
const UNIMPLEMENTED_QUERY: &[(&str, &[&str])] = &[
    (
        "/v1beta1/projects",
        &["mine", "filter", "uid", "pageSize", "page"],
    ),
    (
        "/v1beta1/projects/{project}/freight",
        &["stage", "origins", "group", "groupBy", "orderBy", "reverse"],
    ),
    ("/v1beta1/projects/{project}/stages", &["freightOrigins"]),
];

/// The admin account: its password, token lifetime and the key tokens are signed with.
pub struct AdminAccount {
    password: String,
    ttl: Duration,
    key: [u8; 32],
}

impl AdminAccount {
    pub fn new(password: String, ttl: Duration) -> AdminAccount {
        AdminAccount {
            password,
            ttl,
            key: rand::random(),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// An HS256 JWT of `claims`.
fn sign(key: &[u8; 32], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(key, signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

/// The claims of a JWT signed with `key`, `None` when it is not one.
fn verify(key: &[u8; 32], token: &str) -> Option<Value> {
    let (signing_input, sig) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header["alg"] != "HS256" {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let expected = hmac_sha256(key, signing_input.as_bytes());
    // Constant-time comparison.
    if sig.len() != expected.len() || sig.iter().zip(expected).fold(0, |a, (x, y)| a | (x ^ y)) != 0
    {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Whether `token` has the shape of a JWT (three base64url parts, a JSON payload).
fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && URL_SAFE_NO_PAD
            .decode(parts[1])
            .ok()
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .is_some_and(|v| v.is_object())
}

/// Who is calling.
enum Caller {
    Admin,
    Account(Identity),
}

impl Caller {
    /// Kargo's `FormatEventUserActor`: `admin`, or `unknown actor` for a Kubernetes token.
    fn actor(&self) -> &'static str {
        match self {
            Caller::Admin => "admin",
            Caller::Account(_) => "unknown actor",
        }
    }

    fn name(&self) -> String {
        match self {
            Caller::Admin => "admin".into(),
            Caller::Account(who) => who.name.clone(),
        }
    }
}

fn error(code: u16, msg: impl Into<String>) -> ApiError {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        413 => "RequestEntityTooLarge",
        _ => "InternalError",
    };
    ApiError::new(code, reason, msg)
}

fn respond(code: u16, body: Option<&Value>) -> Response<Body> {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap_or_default())
        .unwrap_or_default();
    let mut resp = Response::new(crate::router::full(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if body.is_some() {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    respond(e.code, Some(&json!({"error": e.message})))
}

/// What a proxy answers for the API server while Kargo is not installed.
fn unavailable() -> Response<Body> {
    let mut resp = Response::new(crate::router::full(UNAVAILABLE_BODY.as_bytes().to_vec()));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `err` as Kargo reports an error it wrapped with `context`: same status, longer message.
fn wrapped(context: &str, err: ApiError) -> ApiError {
    ApiError {
        message: format!("{context}: {}", err.message),
        ..err
    }
}

/// Kargo's `VersionInfo`: the release the sandbox models, as Kargo's release build of it
/// reports itself (its tag's commit and date, the Go toolchain its image is built with).
pub fn version_info() -> Value {
    json!({
        "version": KARGO_VERSION,
        "buildDate": "2026-08-18T01:56:41Z",
        "gitCommit": "20c56384dc3aa29911368fa9c0916e8f4a541252",
        "gitTreeDirty": false,
        "goVersion": "go1.26.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// The route template matching `method` and `path`, with its path parameters.
fn route(method: &str, path: &str) -> Option<(&'static str, Vec<String>)> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES.iter().find_map(|(m, template)| {
        let t: Vec<&str> = template.split('/').collect();
        if *m != method || t.len() != segs.len() {
            return None;
        }
        let mut params = Vec::new();
        for (a, b) in t.iter().zip(&segs) {
            if a.starts_with('{') {
                if b.is_empty() {
                    return None;
                }
                params.push(b.to_string());
            } else if a != b {
                return None;
            }
        }
        Some((*template, params))
    })
}

/// Serves one REST request and records it in the request log (verb `rest`, the resource the
/// route template).
pub async fn handle(shared: Arc<Shared>, req: Request) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let user_agent = req
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let found = route(method.as_str(), &path);
    let resource = found
        .as_ref()
        .map(|(t, _)| t.to_string())
        .unwrap_or_default();
    // HTTP faults apply as to the Kubernetes API, with verb `rest` and the route template as
    // the resource.
    let effect = lock(&shared.faults).on_request("rest", &resource);
    if let Some(d) = effect.delay {
        tokio::time::sleep(d).await;
    }
    let reset = req.extensions().get::<ConnectionReset>().cloned();
    let installed = lock(&shared.state).kargo.running;
    let (mut response, user) = match found {
        _ if effect.unavailable => (
            respond(503, Some(&json!({"error": "service unavailable"}))),
            None,
        ),
        _ if !installed => (unavailable(), None),
        None => (
            respond(404, Some(&json!({"error": "404 page not found"}))),
            None,
        ),
        Some((template, params)) => {
            let (r, user) = serve(&shared, req, template, params).await;
            (r.unwrap_or_else(|e| error_response(&e)), user)
        }
    };
    if effect.after == Some(After::Timeout) {
        response = respond(504, Some(&json!({"error": "request timed out"})));
    }
    let code = match effect.after {
        Some(After::Reset) => 0,
        _ => response.status().as_u16(),
    };
    lock(&shared.log).record(RequestRecord {
        verb: "rest".into(),
        resource,
        namespace: None,
        name: None,
        method: method.to_string(),
        path,
        user,
        user_agent,
        code,
    });
    crate::router::after_answer(effect.after, reset).await;
    response
}

fn bearer(req: &Request) -> String {
    let raw = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    raw.strip_prefix("Bearer ").unwrap_or(raw).to_string()
}

fn authenticate(shared: &Shared, token: &str) -> Result<Caller, ApiError> {
    if token.is_empty() {
        return Err(error(401, "no token provided"));
    }
    if !is_jwt(token) {
        return Err(error(401, "invalid token"));
    }
    let invalid = || error(401, "invalid token");
    let claims = verify(&shared.rest.key, token).ok_or_else(invalid)?;
    let now = shared.clock.now().as_second();
    match claims["iss"].as_str() {
        Some(ADMIN_ISSUER) => {
            let exp = claims["exp"].as_i64().ok_or_else(invalid)?;
            let nbf = claims["nbf"].as_i64().unwrap_or(0);
            if now >= exp || now < nbf {
                return Err(invalid());
            }
            Ok(Caller::Admin)
        }
        Some(SA_ISSUER) => {
            let ns = claims["kubernetes.io/serviceaccount/namespace"]
                .as_str()
                .ok_or_else(invalid)?;
            let secret = claims["kubernetes.io/serviceaccount/secret.name"]
                .as_str()
                .ok_or_else(invalid)?;
            let sa = claims["kubernetes.io/serviceaccount/service-account.name"]
                .as_str()
                .ok_or_else(invalid)?;
            let state = lock(&shared.state);
            let secrets = resources::by_plural("", "secrets").ok_or_else(invalid)?;
            let accounts = resources::by_plural("", "serviceaccounts").ok_or_else(invalid)?;
            // A deleted token Secret or ServiceAccount revokes the token.
            let stored = state
                .store
                .get(secrets, Some(ns), secret)
                .and_then(|s| s.pointer("/data/token"))
                .and_then(Value::as_str)
                .and_then(|t| STANDARD.decode(t).ok());
            if stored.as_deref() != Some(token.as_bytes())
                || state.store.get(accounts, Some(ns), sa).is_none()
            {
                return Err(invalid());
            }
            Ok(Caller::Account(Identity::authenticated(
                &format!("system:serviceaccount:{ns}:{sa}"),
                false,
            )))
        }
        _ => Err(invalid()),
    }
}

/// May the caller do `verb` on `res` (in `ns`, named `name`)? The error is Kargo's.
fn authorize(
    shared: &Shared,
    caller: &Caller,
    verb: &str,
    res: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
) -> Result<(), ApiError> {
    let Caller::Account(who) = caller else {
        return Ok(());
    };
    let access = Access {
        verb,
        group: res.group,
        resource: res.plural,
        namespace: ns,
        name,
        ..Access::default()
    };
    let state = lock(&shared.state);
    if state.users.can(&state.store, who, &access) {
        Ok(())
    } else {
        Err(status::forbidden(
            res,
            Some(name),
            &format!("{verb} is not permitted"),
        ))
    }
}

fn write_request() -> api::Request {
    api::Request {
        user: API_SERVER_USER.into(),
        groups: vec![
            "system:serviceaccounts".into(),
            "system:authenticated".into(),
        ],
        control_plane: false,
        dry_run: false,
        manager: "kargo-api".into(),
        validation: FieldValidation::Warn,
    }
}

fn kargo(plural: &str) -> Result<&'static ResourceDef, ApiError> {
    resources::by_plural(util::GROUP, plural).ok_or_else(|| error(500, "internal server error"))
}

async fn read_body(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|_| error(413, "request body too large"))
}

async fn serve(
    shared: &Arc<Shared>,
    req: Request,
    template: &'static str,
    p: Vec<String>,
) -> (Result<Response<Body>, ApiError>, Option<String>) {
    if template == "/v1beta1/login" {
        return (login(shared, &req), None);
    }
    let caller = match authenticate(shared, &bearer(&req)) {
        Ok(c) => c,
        Err(e) => return (Err(e), None),
    };
    let user = Some(caller.name());
    let query = crate::router::Query::parse(req.uri().query());
    let method = req.method().clone();
    let r = dispatch(shared, &caller, req, template, &p, &query, &method).await;
    if r.is_ok() {
        shared.wake.notify_one();
    }
    (r, user)
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    shared: &Arc<Shared>,
    caller: &Caller,
    req: Request,
    template: &'static str,
    p: &[String],
    query: &crate::router::Query,
    method: &Method,
) -> Result<Response<Body>, ApiError> {
    if *method == Method::GET
        && let Some((_, names)) = UNIMPLEMENTED_QUERY.iter().find(|(t, _)| *t == template)
        && let Some(name) = names.iter().find(|n| query.get(n).is_some())
    {
        return Err(error(
            400,
            format!(
                "the kargo-sandbox does not implement the query parameter {name:?} of GET {template}"
            ),
        ));
    }
    if template == "/v1beta1/resources" {
        let body = read_body(req, MAX_RESOURCES_BODY).await?;
        return resources_request(
            shared,
            caller,
            method,
            &body,
            query.get("upsert") == Some("true"),
        );
    }
    match template {
        // Any authenticated caller may read the version: Kargo checks no permission.
        "/v1beta1/system/server-version" => return Ok(respond(200, Some(&version_info()))),
        "/v1beta1/shared/cluster-promotion-tasks" => {
            return list(shared, caller, "clusterpromotiontasks", None, |_| true);
        }
        "/v1beta1/shared/cluster-promotion-tasks/{cluster-promotion-task}" => {
            let name = p.first().map(String::as_str).unwrap_or_default();
            return get(shared, caller, "clusterpromotiontasks", None, name);
        }
        _ => {}
    }
    if template == "/v1beta1/projects" {
        let projects = kargo("projects")?;
        authorize(shared, caller, "list", projects, None, "")?;
        let state = lock(&shared.state);
        let items: Vec<&Value> = state.store.list(projects, None).collect();
        let total = items.len();
        return Ok(respond(200, Some(&json!({"items": items, "total": total}))));
    }
    let project = p.first().map(String::as_str).unwrap_or_default();
    // Kargo's projectExistsMiddleware.
    {
        let projects = kargo("projects")?;
        let state = lock(&shared.state);
        if state.store.get(projects, None, project).is_none() {
            return Err(status::not_found(projects, project));
        }
    }
    let rest = template
        .strip_prefix("/v1beta1/projects/{project}")
        .unwrap_or_default();
    let name = p.get(1).map(String::as_str).unwrap_or_default();
    let ns = Some(project);
    if method == Method::GET
        && query.get("watch") == Some("true")
        && WATCH_ROUTES.contains(&template)
    {
        let (plural, single) = match rest {
            "/stages" => ("stages", false),
            "/stages/{stage}" => ("stages", true),
            "/warehouses" => ("warehouses", false),
            "/warehouses/{warehouse}" => ("warehouses", true),
            "/promotions" => ("promotions", false),
            "/promotions/{promotion}" => ("promotions", true),
            _ => ("freights", false),
        };
        let stage = (plural == "promotions" && !single)
            .then(|| query.get("stage").unwrap_or_default().to_string())
            .filter(|s| !s.is_empty());
        return watch(
            shared,
            caller,
            plural,
            project,
            single.then_some(name),
            query.get("resourceVersion"),
            stage,
        );
    }
    match (method.as_str(), rest) {
        ("GET", "") => get(shared, caller, "projects", None, project),
        ("DELETE", "") => delete(shared, caller, "projects", None, project),
        ("GET", "/config") => get(shared, caller, "projectconfigs", ns, project),
        ("DELETE", "/config") => delete(shared, caller, "projectconfigs", ns, project),
        ("GET", "/stages") => list(shared, caller, "stages", ns, |_| true),
        ("GET", "/warehouses") => list(shared, caller, "warehouses", ns, |_| true),
        ("GET", "/promotion-tasks") => list(shared, caller, "promotiontasks", ns, |_| true),
        ("GET", "/promotions") => {
            let stage = query.get("stage").unwrap_or_default().to_string();
            list(shared, caller, "promotions", ns, move |o| {
                stage.is_empty() || util::str_at(o, "spec.stage") == stage
            })
        }
        ("GET", "/stages/{stage}") => get(shared, caller, "stages", ns, name),
        ("GET", "/warehouses/{warehouse}") => get(shared, caller, "warehouses", ns, name),
        ("GET", "/promotions/{promotion}") => get(shared, caller, "promotions", ns, name),
        ("GET", "/promotion-tasks/{promotion-task}") => {
            get(shared, caller, "promotiontasks", ns, name)
        }
        ("POST", "/promotions/{promotion}/abort") => abort_promotion(shared, caller, project, name),
        ("DELETE", "/stages/{stage}") => delete(shared, caller, "stages", ns, name),
        ("DELETE", "/warehouses/{warehouse}") => delete(shared, caller, "warehouses", ns, name),
        ("GET", "/freight") => query_freight(shared, caller, project),
        ("GET", "/freight/{freight-name-or-alias}") => {
            let freight = freight_by_name_or_alias(shared, caller, project, name)?;
            Ok(respond(200, Some(&freight)))
        }
        ("DELETE", "/freight/{freight-name-or-alias}") => {
            let freight = freight_by_name_or_alias(shared, caller, project, name)?;
            delete(shared, caller, "freights", ns, util::name(&freight))
        }
        ("POST", "/freight/{freight-name-or-alias}/approve") => approve(
            shared,
            caller,
            project,
            name,
            query.get("stage").unwrap_or_default(),
        ),
        ("POST", "/warehouses/{warehouse}/refresh") => {
            refresh_warehouse(shared, caller, project, name)
        }
        ("POST", "/stages/{stage}/promotions") => {
            let body = read_body(req, MAX_BODY).await?;
            promote(shared, caller, project, name, &body)
        }
        ("POST", "/roles/{role}/api-tokens") => {
            let body = read_body(req, MAX_BODY).await?;
            create_api_token(shared, caller, project, name, &body)
        }
        _ => Err(error(404, "404 page not found")),
    }
}

/// `?watch=true`: Kargo's server-sent events, one `data: {"type", "object"}` event per
/// change, starting with the current objects as `ADDED` (unless `resourceVersion` is given);
/// Promotions filtered by `stage` turn `MODIFIED` events of others into `DELETED`, as Kargo's
/// `FilteredWatchEventType` does.
fn watch(
    shared: &Arc<Shared>,
    caller: &Caller,
    plural: &str,
    project: &str,
    name: Option<&str>,
    resource_version: Option<&str>,
    stage: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let res = kargo(plural)?;
    authorize(
        shared,
        caller,
        "watch",
        res,
        Some(project),
        name.unwrap_or_default(),
    )?;
    let mut fields = crate::selectors::FieldSelector::default();
    if let Some(n) = name {
        if lock(&shared.state)
            .store
            .get(res, Some(project), n)
            .is_none()
        {
            return Err(status::not_found(res, n));
        }
        fields = crate::selectors::FieldSelector::parse(&format!("metadata.name={n}"), res.plural)
            .map_err(|e| error(400, e))?;
    }
    let spec = crate::watch::WatchSpec {
        res,
        namespace: Some(project.to_string()),
        labels: crate::selectors::LabelSelector::default(),
        fields,
        resource_version: resource_version.map(str::to_string),
        send_initial_events: false,
        bookmarks: false,
        timeout: None,
        table: None,
    };
    let events = crate::watch::start(shared, spec)?;
    let body = events.map_frame(move |frame| {
        frame.map_data(|line| {
            let Ok(mut event) = serde_json::from_slice::<Value>(&line) else {
                return bytes::Bytes::new();
            };
            if event["type"] == "ERROR" {
                let message = event["object"]["message"].as_str().unwrap_or_default();
                let data = json!({"code": "out_of_range", "message": format!("watch resource version expired: {message}")});
                return bytes::Bytes::from(format!("event: error\ndata: {data}\n\n"));
            }
            if let Some(stage) = &stage {
                let matches = util::str_at(&event["object"], "spec.stage") == stage;
                match (event["type"].as_str(), matches) {
                    (_, true) => {}
                    (Some("MODIFIED"), false) => event["type"] = json!("DELETED"),
                    _ => return bytes::Bytes::new(),
                }
            }
            bytes::Bytes::from(format!("data: {event}\n\n"))
        })
    });
    let mut resp = Response::new(Body::new(body));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    headers.insert("X-Accel-Buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// `POST /v1beta1/login`: the admin password as `Authorization: Bearer <password>`.
fn login(shared: &Shared, req: &Request) -> Result<Response<Body>, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if header.is_empty() {
        return Err(error(400, "Authorization header is required"));
    }
    let password = match header.strip_prefix("Bearer ") {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err(error(
                400,
                "Authorization header must be in format 'Bearer <password>'",
            ));
        }
    };
    let a = password.as_bytes();
    let b = shared.rest.password.as_bytes();
    if a.len() != b.len() || a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) != 0 {
        return Err(error(403, "invalid password"));
    }
    let now = shared.clock.now().as_second();
    let ttl = i64::try_from(shared.rest.ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let claims = json!({
        "iss": ADMIN_ISSUER,
        "aud": [ADMIN_ISSUER],
        "sub": "admin",
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(ttl),
        "jti": api::new_uid(),
    });
    Ok(respond(
        200,
        Some(&json!({"idToken": sign(&shared.rest.key, &claims)})),
    ))
}

fn get(
    shared: &Shared,
    caller: &Caller,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let res = kargo(plural)?;
    authorize(shared, caller, "get", res, ns, name)?;
    let state = lock(&shared.state);
    let obj = state
        .store
        .get(res, ns, name)
        .ok_or_else(|| status::not_found(res, name))?;
    Ok(respond(200, Some(obj)))
}

/// A Kubernetes list of `plural` in `ns` (all of them when cluster-scoped), by name.
fn list(
    shared: &Shared,
    caller: &Caller,
    plural: &str,
    ns: Option<&str>,
    keep: impl Fn(&Value) -> bool,
) -> Result<Response<Body>, ApiError> {
    let res = kargo(plural)?;
    authorize(shared, caller, "list", res, ns, "")?;
    let state = lock(&shared.state);
    let items: Vec<&Value> = state.store.list(res, ns).filter(|o| keep(o)).collect();
    Ok(respond(
        200,
        Some(&json!({
            "apiVersion": res.api_version(),
            "kind": res.list_kind(),
            "metadata": {"resourceVersion": state.store.resource_version().to_string()},
            "items": items,
        })),
    ))
}

fn delete(
    shared: &Shared,
    caller: &Caller,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let res = kargo(plural)?;
    authorize(shared, caller, "delete", res, ns, name)?;
    lock(&shared.state).delete(res, ns, name, &DeleteOptions::default(), &write_request())?;
    Ok(respond(204, None))
}

/// `GET /freight`: Kargo's `queryFreightsResponse`, all Freight in the one group `""`.
fn query_freight(
    shared: &Shared,
    caller: &Caller,
    project: &str,
) -> Result<Response<Body>, ApiError> {
    let res = kargo("freights")?;
    authorize(shared, caller, "list", res, Some(project), "")?;
    let state = lock(&shared.state);
    let items: Vec<&Value> = state.store.list(res, Some(project)).collect();
    Ok(respond(
        200,
        Some(&json!({
            "groups": {"": {"items": items}},
            "resourceVersion": state.store.resource_version().to_string(),
        })),
    ))
}

fn freight_by_name_or_alias(
    shared: &Shared,
    caller: &Caller,
    project: &str,
    wanted: &str,
) -> Result<Value, ApiError> {
    let res = kargo("freights")?;
    authorize(shared, caller, "get", res, Some(project), wanted)?;
    let state = lock(&shared.state);
    state
        .store
        .get(res, Some(project), wanted)
        .or_else(|| {
            state
                .store
                .list(res, Some(project))
                .find(|f| util::label(f, LABEL_ALIAS) == Some(wanted))
        })
        .cloned()
        .ok_or_else(|| {
            error(
                404,
                format!("Freight {wanted:?} not found in project {project:?}"),
            )
        })
}

fn approve(
    shared: &Shared,
    caller: &Caller,
    project: &str,
    wanted: &str,
    stage_name: &str,
) -> Result<Response<Body>, ApiError> {
    if stage_name.is_empty() {
        return Err(error(400, "stage query parameter is required"));
    }
    let mut freight = freight_by_name_or_alias(shared, caller, project, wanted)?;
    let stages = kargo("stages")?;
    let stage = lock(&shared.state)
        .store
        .get(stages, Some(project), stage_name)
        .cloned()
        .ok_or_else(|| status::not_found(stages, stage_name))?;
    authorize(shared, caller, "promote", stages, Some(project), stage_name)?;
    let origin = freight.get("origin").cloned().unwrap_or(Value::Null);
    let requested = util::arr_at(&stage, "spec.requestedFreight")
        .iter()
        .any(|r| r.get("origin") == Some(&origin));
    if !requested {
        return Err(error(
            400,
            format!(
                "Stage {stage_name:?} does not request Freight from origin \"{}/{}\"",
                util::str_at(&origin, "kind"),
                util::str_at(&origin, "name")
            ),
        ));
    }
    if freight
        .pointer(&format!("/status/approvedFor/{stage_name}"))
        .is_some()
    {
        return Ok(respond(200, None));
    }
    let now = util::format_time(shared.clock.now());
    let status = util::obj_mut(&mut freight, "status");
    let approved = status.entry("approvedFor").or_insert_with(|| json!({}));
    if !approved.is_object() {
        *approved = json!({});
    }
    approved[stage_name] = json!({"approvedAt": now});
    let name = util::name(&freight).to_string();
    let res = kargo("freights")?;
    lock(&shared.state).update(
        res,
        Some(project),
        &name,
        freight,
        Some("status"),
        &write_request(),
    )?;
    Ok(respond(200, None))
}

/// Kargo's `api.AbortPromotion` with action `terminate`, through the API server's
/// authorizing client: `get` on the Promotion, then a merge patch (`patch`) of
/// `kargo.akuity.io/abort` to `{"action":"terminate","actor":…}`. A Promotion already in a
/// terminal phase is left alone (200). A missing one is an error Kargo gives no status, so
/// its REST API answers 500 `internal server error`.
fn abort_promotion(
    shared: &Shared,
    caller: &Caller,
    project: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let res = kargo("promotions")?;
    authorize(shared, caller, "get", res, Some(project), name).map_err(|e| {
        wrapped(
            &format!("error getting Promotion {name:?} in namespace {project:?}"),
            e,
        )
    })?;
    let phase = lock(&shared.state)
        .store
        .get(res, Some(project), name)
        .map(|p| util::str_at(p, "status.phase").to_string())
        .ok_or_else(|| error(500, "internal server error"))?;
    if crate::kargo::promotions::is_terminal(&phase) {
        return Ok(respond(200, None));
    }
    let patch = "patch annotation";
    authorize(shared, caller, "patch", res, Some(project), name).map_err(|e| wrapped(patch, e))?;
    let request = json!({"action": "terminate", "actor": caller.actor()});
    let mut state = lock(&shared.state);
    let mut promo = state
        .store
        .get(res, Some(project), name)
        .cloned()
        .ok_or_else(|| wrapped(patch, status::not_found(res, name)))?;
    util::set_annotation(&mut promo, ANNOTATION_ABORT, &request.to_string());
    state
        .update(res, Some(project), name, promo, None, &write_request())
        .map_err(|e| wrapped(patch, e))?;
    Ok(respond(200, None))
}

fn refresh_warehouse(
    shared: &Shared,
    caller: &Caller,
    project: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let res = kargo("warehouses")?;
    authorize(shared, caller, "patch", res, Some(project), name)?;
    let mut state = lock(&shared.state);
    let mut wh = state
        .store
        .get(res, Some(project), name)
        .cloned()
        .ok_or_else(|| status::not_found(res, name))?;
    util::set_annotation(
        &mut wh,
        ANNOTATION_REFRESH,
        &util::format_time(shared.clock.now()),
    );
    state.update(res, Some(project), name, wh, None, &write_request())?;
    Ok(respond(200, None))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromoteRequest {
    #[serde(default)]
    freight: String,
    #[serde(default)]
    freight_alias: String,
    #[serde(default)]
    origin: String,
}

fn promote(
    shared: &Shared,
    caller: &Caller,
    project: &str,
    stage_name: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let req: PromoteRequest = serde_json::from_slice(body)
        .map_err(|e| error(400, format!("invalid request body: {e}")))?;
    let set = [&req.freight, &req.freight_alias, &req.origin]
        .iter()
        .filter(|v| !v.is_empty())
        .count();
    if set != 1 {
        return Err(error(
            400,
            "exactly one of freight, freightAlias, or origin must be provided",
        ));
    }
    let stages = kargo("stages")?;
    let stage = lock(&shared.state)
        .store
        .get(stages, Some(project), stage_name)
        .cloned()
        .ok_or_else(|| {
            error(
                404,
                format!("Stage {stage_name:?} not found in project {project:?}"),
            )
        })?;
    authorize(shared, caller, "promote", stages, Some(project), stage_name)?;
    let mut promo = json!({
        "apiVersion": util::API_VERSION,
        "kind": "Promotion",
        "metadata": {"namespace": project, "generateName": format!("{stage_name}.")},
        "spec": {"stage": stage_name},
    });
    if !req.origin.is_empty() {
        let (kind, name) = req
            .origin
            .split_once('/')
            .filter(|(k, n)| *k == "Warehouse" && !n.is_empty())
            .ok_or_else(|| {
                error(
                    400,
                    format!(
                        "invalid origin {:?}: expected \"Warehouse/<name>\"",
                        req.origin
                    ),
                )
            })?;
        promo["spec"]["origin"] = json!({"kind": kind, "name": name});
    } else {
        let freights = kargo("freights")?;
        let freight = {
            let state = lock(&shared.state);
            if !req.freight.is_empty() {
                state
                    .store
                    .get(freights, Some(project), &req.freight)
                    .cloned()
                    .ok_or_else(|| {
                        error(
                            404,
                            format!("Freight {:?} not found in project {project:?}", req.freight),
                        )
                    })?
            } else {
                state
                    .store
                    .list(freights, Some(project))
                    .find(|f| util::label(f, LABEL_ALIAS) == Some(req.freight_alias.as_str()))
                    .cloned()
                    .ok_or_else(|| {
                        error(
                            404,
                            format!(
                                "Freight with alias {:?} not found in project {project:?}",
                                req.freight_alias
                            ),
                        )
                    })?
            }
        };
        if crate::kargo::availability::unavailability(&stage, &freight, shared.clock.now())
            .is_some()
        {
            return Err(error(
                400,
                format!(
                    "Freight {:?} is not available to Stage {stage_name:?}",
                    util::name(&freight)
                ),
            ));
        }
        promo["spec"]["freight"] = json!(util::name(&freight));
    }
    util::set_annotation(&mut promo, ANNOTATION_CREATE_ACTOR, caller.actor());
    let promotions = kargo("promotions")?;
    let w = lock(&shared.state).create(promotions, Some(project), promo, &write_request())?;
    Ok(respond(201, Some(&w.object)))
}

fn create_api_token(
    shared: &Shared,
    caller: &Caller,
    project: &str,
    role: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    struct Req {
        #[serde(default)]
        name: String,
    }
    let req: Req = serde_json::from_slice(body)
        .map_err(|e| error(400, format!("invalid request body: {e}")))?;
    if req.name.is_empty() {
        return Err(error(400, "name should not be empty"));
    }
    let internal = || error(500, "internal server error");
    let secrets = resources::by_plural("", "secrets").ok_or_else(internal)?;
    let accounts = resources::by_plural("", "serviceaccounts").ok_or_else(internal)?;
    authorize(shared, caller, "create", secrets, Some(project), &req.name)?;
    let mut state = lock(&shared.state);
    let sa = state
        .store
        .get(accounts, Some(project), role)
        .cloned()
        .ok_or_else(|| {
            error(
                404,
                format!(
                    "error getting ServiceAccount {role:?} in namespace {project:?}: serviceaccounts {role:?} not found"
                ),
            )
        })?;
    let token = sign(
        &shared.rest.key,
        &json!({
            "iss": SA_ISSUER,
            "sub": format!("system:serviceaccount:{project}:{role}"),
            "kubernetes.io/serviceaccount/namespace": project,
            "kubernetes.io/serviceaccount/secret.name": req.name,
            "kubernetes.io/serviceaccount/service-account.name": role,
            "kubernetes.io/serviceaccount/service-account.uid": meta_str(&sa, "uid").unwrap_or_default(),
        }),
    );
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": req.name,
            "namespace": project,
            "labels": {"rbac.kargo.akuity.io/api-token": "true"},
            "annotations": {
                "kubernetes.io/service-account.name": role,
                "rbac.kargo.akuity.io/managed": "true",
            },
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ServiceAccount", "name": role,
                "uid": meta_str(&sa, "uid").unwrap_or_default(),
            }],
        },
        "type": "kubernetes.io/service-account-token",
        "data": {
            "token": STANDARD.encode(&token),
            "namespace": STANDARD.encode(project),
        },
    });
    let w = state.create(secrets, Some(project), secret, &write_request())?;
    Ok(respond(201, Some(&w.object)))
}

/// The `group/resource` Kargo's AlreadyExists names: the lower-cased kind.
fn kind_resource(res: &ResourceDef) -> String {
    let kind = res.kind.to_lowercase();
    if res.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", res.group)
    }
}

/// The manifests of a `/resources` body (YAML or JSON, several documents), Projects first.
fn split_manifests(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_slice(body) {
        let v = Value::deserialize(doc).map_err(|e| error(400, e.to_string()))?;
        if v.is_null() {
            continue;
        }
        if !v.is_object() {
            return Err(error(400, "a manifest must be an object"));
        }
        docs.push(v);
    }
    let (mut projects, others): (Vec<Value>, Vec<Value>) = docs
        .into_iter()
        .partition(|d| d["kind"] == "Project" && d["apiVersion"] == util::API_VERSION);
    projects.extend(others);
    Ok(projects)
}

fn resources_request(
    shared: &Shared,
    caller: &Caller,
    method: &Method,
    body: &[u8],
    upsert: bool,
) -> Result<Response<Body>, ApiError> {
    let manifests = split_manifests(body)?;
    if manifests.is_empty() {
        return Err(error(400, "no resources found in request body"));
    }
    let single = manifests.len() == 1;
    let mut created_projects: Vec<String> = Vec::new();
    let mut results = Vec::new();
    for obj in manifests {
        let outcome = one_resource(shared, caller, method, obj, upsert, &created_projects);
        match outcome {
            Ok((key, manifest, project)) => {
                if let Some(p) = project {
                    created_projects.push(p);
                }
                results.push(json!({ key: manifest }));
            }
            Err((e, _)) if single => return Err(e),
            Err((e, prefix)) => {
                let msg = match prefix {
                    Some(p) => format!("{p}: {}", e.message),
                    None => e.message,
                };
                results.push(json!({"error": msg}));
            }
        }
    }
    let code = if *method == Method::POST { 201 } else { 200 };
    Ok(respond(code, Some(&json!({"results": results}))))
}

type ResourceOutcome =
    Result<(&'static str, Value, Option<String>), (ApiError, Option<&'static str>)>;

fn one_resource(
    shared: &Shared,
    caller: &Caller,
    method: &Method,
    mut obj: Value,
    upsert: bool,
    created_projects: &[String],
) -> ResourceOutcome {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let res = resources::by_kind(&api_version, &kind)
        .filter(|r| r.backing == resources::Backing::Store)
        .ok_or_else(|| {
            (
                error(
                    400,
                    format!("no matches for kind {kind:?} in version {api_version:?}"),
                ),
                None,
            )
        })?;
    let name = meta_str(&obj, "name").unwrap_or_default().to_string();
    let ns = if res.namespaced {
        meta_str(&obj, "namespace").map(str::to_string)
    } else {
        None
    };
    if res.namespaced && ns.as_deref().unwrap_or_default().is_empty() {
        return Err((
            error(
                400,
                "an empty namespace may not be set when a resource name is provided",
            ),
            None,
        ));
    }
    let ns = ns.as_deref();
    // Resources in a Project this request created are written on the API server's own
    // authority; everything else is authorized as the caller.
    let in_new_project = ns.is_some_and(|n| created_projects.iter().any(|p| p == n));
    let existing = lock(&shared.state).store.get(res, ns, &name).cloned();
    let is_project = res.kind == "Project" && res.is_kargo();
    let stamp = |obj: &mut Value| {
        if res.is_kargo() && (res.kind == "Project" || res.kind == "Promotion") {
            util::set_annotation(obj, ANNOTATION_CREATE_ACTOR, caller.actor());
        }
    };
    // Kargo's authorizing client asks before each call it makes: `get` for the existence
    // check, then the write's own verb; a refusal reads like that call's failure.
    let check = |verb: &str, during: &'static str| {
        if in_new_project {
            Ok(())
        } else {
            authorize(shared, caller, verb, res, ns, &name).map_err(|e| (e, Some(during)))
        }
    };
    match *method {
        Method::POST => {
            check("get", "get resource")?;
            check("create", "create resource")?;
            if existing.is_some() {
                let e = ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("{} {name:?} already exists", kind_resource(res)),
                );
                return Err((e, Some("create resource")));
            }
            stamp(&mut obj);
            let w = lock(&shared.state)
                .create(res, ns, obj, &write_request())
                .map_err(|e| (e, Some("create resource")))?;
            Ok((
                "createdResourceManifest",
                w.object,
                is_project.then(|| name.clone()),
            ))
        }
        Method::PUT => match existing {
            None if !upsert => {
                check("get", "get resource")?;
                Err((error(404, "resource does not exist"), None))
            }
            None => {
                check("get", "get resource")?;
                check("create", "create resource")?;
                stamp(&mut obj);
                let w = lock(&shared.state)
                    .create(res, ns, obj, &write_request())
                    .map_err(|e| (e, Some("create resource")))?;
                Ok(("createdResourceManifest", w.object, None))
            }
            Some(live) => {
                check("get", "get resource")?;
                check("update", "update resource")?;
                let rv = meta_str(&live, "resourceVersion")
                    .unwrap_or_default()
                    .to_string();
                util::obj_mut(&mut obj, "metadata").insert("resourceVersion".into(), json!(rv));
                let w = lock(&shared.state)
                    .update(res, ns, &name, obj, None, &write_request())
                    .map_err(|e| (e, Some("update resource")))?;
                Ok(("updatedResourceManifest", w.object, None))
            }
        },
        _ => {
            check("delete", "delete resource")?;
            lock(&shared.state)
                .delete(res, ns, &name, &DeleteOptions::default(), &write_request())
                .map_err(|e| (e, Some("delete resource")))?;
            Ok(("deletedResourceManifest", obj, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_with_a_32_byte_key() {
        // RFC 4231 test case 2 uses a short key; pad it as HMAC does (zeros to the block).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let key = [7u8; 32];
        let t = sign(&key, &json!({"iss": "x", "exp": 5}));
        assert_eq!(verify(&key, &t).unwrap()["exp"], 5);
        assert!(verify(&[8u8; 32], &t).is_none());
        let (head, _) = t.rsplit_once('.').unwrap();
        assert!(verify(&key, &format!("{head}.AAAA")).is_none());
        assert!(is_jwt(&t));
        assert!(!is_jwt("not-a-jwt"));
    }

    #[test]
    fn routes_match_templates_and_capture_parameters() {
        let (t, p) = route("POST", "/v1beta1/projects/p/freight/abc/approve").unwrap();
        assert_eq!(
            t,
            "/v1beta1/projects/{project}/freight/{freight-name-or-alias}/approve"
        );
        assert_eq!(p, vec!["p", "abc"]);
        assert!(route("PATCH", "/v1beta1/projects/p").is_none());
        assert!(route("GET", "/v1beta1/projects//stages").is_none());
    }
}
