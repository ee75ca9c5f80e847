//! The Kubernetes HTTP surface: an axum router maps paths to discovery documents or resources;
//! every API request is faulted, authenticated, served, logged, and its verb mapped onto the
//! object semantics.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::routing::any;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{self, DeleteOptions, Deleted, FieldValidation};
use crate::auth;
use crate::discovery;
use crate::faults::After;
use crate::hooks::{ApiError, StatusCause};
use crate::patch;
use crate::proto;
use crate::rbac::{Access, Identity};
use crate::reqlog::RequestRecord;
use crate::resources::{self, Backing, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::{ConnectionReset, Shared, lock};
use crate::status;
use crate::store::meta_str;
use crate::table::{self, Include};
use crate::watch::{self, WatchSpec};

/// The response body type of every handler.
pub type Body = axum::body::Body;

const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn full(b: impl Into<Bytes>) -> Body {
    Body::from(b.into())
}

pub fn json_bytes(code: u16, bytes: Vec<u8>, warnings: &[String]) -> Response<Body> {
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    json_bytes(code, serde_json::to_vec(v).unwrap_or_default(), &[])
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &status::body(e))
}

/// Decoded query parameters.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(q.unwrap_or_default().as_bytes());
        Query(pairs.into_owned().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.all(key).next()
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// The parameters a route's path can carry (empty when it does not).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    pub group: String,
    pub version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

/// `apiextensions.k8s.io` CustomResourceDefinitions: Kargo's nine once Kargo is installed,
/// read-only.
fn serve_crds(
    ctx: &Ctx<'_>,
    req: &Request,
    res: &'static ResourceDef,
    name: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let served = lock(&ctx.shared.state).kargo.served;
    let crds: Vec<Value> = if served {
        crate::schema::catalog()
            .crds
            .values()
            .map(|c| {
                let mut doc = c.document.clone();
                let name = doc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                doc["metadata"] = json!({
                    "name": name,
                    "uid": format!("crd-{name}"),
                    "resourceVersion": "1",
                    "generation": 1,
                    "creationTimestamp": ctx.shared.started,
                });
                doc
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = ctx.shared.clock.now();
    let table = table_include(req, ctx.query);
    match (ctx.verb, name) {
        ("get", Some(name)) => {
            let crd = crds
                .iter()
                .find(|c| c["metadata"]["name"] == name)
                .ok_or_else(|| status::not_found(res, name))?;
            Ok(match table {
                Some(include) => json_response(200, &table::table(res, &[crd], "1", include, now)),
                None => object_response(200, crd, &[]),
            })
        }
        ("list", None) => Ok(match table {
            Some(include) => {
                let refs: Vec<&Value> = crds.iter().collect();
                json_response(200, &table::table(res, &refs, "1", include, now))
            }
            None => json_response(
                200,
                &json!({"kind": "CustomResourceDefinitionList", "apiVersion": "apiextensions.k8s.io/v1",
                        "metadata": {"resourceVersion": "1"}, "items": crds}),
            ),
        }),
        _ => Err(status::method_not_allowed()),
    }
}

/// Serves a non-resource document (discovery, OpenAPI, health) for a GET.
pub type Document = fn(&Shared, &Params, &Request) -> Result<Response<Body>, ApiError>;

/// Where a path leads.
enum Route {
    Document(Document, Params),
    Resource(Target),
    Missing,
}

#[derive(Debug)]
struct Target {
    plural: String,
    res: Option<&'static ResourceDef>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch: bool,
}

impl Target {
    fn new(p: Params, watch: bool) -> Target {
        let Params {
            group,
            version,
            mut namespace,
            mut plural,
            mut name,
            mut sub,
        } = p;
        // In the core group `namespaces/<ns>/<word>` is the namespace's subresource when
        // <word> is not a namespaced kind (`/api/v1/namespaces/p/status`).
        if group.is_empty()
            && namespace.is_some()
            && name.is_none()
            && resources::by_plural("", &plural).is_none()
        {
            name = namespace.take();
            sub = Some(std::mem::replace(&mut plural, "namespaces".into()));
        }
        let version = if group.is_empty() { "v1" } else { &version };
        let res = resources::by_plural(&group, &plural).filter(|r| r.version == version);
        Target {
            plural,
            res,
            namespace,
            name,
            sub,
            watch,
        }
    }

    fn resource_label(&self) -> String {
        match &self.sub {
            Some(s) => format!("{}/{s}", self.plural),
            None => self.plural.clone(),
        }
    }
}

/// The documents served outside resource paths, each GET only.
#[rustfmt::skip]
const DOCUMENTS: &[(&str, Document)] = &[
    ("/", |_, _, _| Err(status::no_such_resource())),
    ("/version", |_, _, _| Ok(json_response(200, &discovery::version()))),
    ("/healthz", |_, _, _| Ok(healthy())),
    ("/livez", |_, _, _| Ok(healthy())),
    ("/readyz", |_, _, _| Ok(healthy())),
    ("/api", |s, _, _| Ok(json_response(200, &discovery::core_versions(&s.address())))),
    ("/apis", |s, _, _| Ok(json_response(200, &discovery::groups(served(s))))),
    ("/api/v1", |s, _, _| document(discovery::resource_list("", "v1", served(s)))),
    ("/apis/{group}", |s, p, _| document(discovery::group(&p.group, served(s)))),
    ("/apis/{group}/{version}", |s, p, _| {
        document(discovery::resource_list(&p.group, &p.version, served(s)))
    }),
    ("/openapi/v2", |s, _, req| Ok(openapi_v2(served(s), req))),
    ("/openapi/v3", |s, _, _| Ok(json_response(200, &discovery::openapi_v3_index(served(s))))),
    ("/openapi/v3/api/{version}", |s, p, _| {
        document(discovery::openapi_v3_document("", &p.version, served(s)))
    }),
    ("/openapi/v3/apis/{group}/{version}", |s, p, _| {
        document(discovery::openapi_v3_document(&p.group, &p.version, served(s)))
    }),
    ("/openapi/{*rest}", |_, _, _| Err(status::no_such_resource())),
];

/// `/openapi/v2`, as protobuf when the client asks for it (kubectl does), else JSON.
fn openapi_v2(kargo_served: bool, req: &Request) -> Response<Body> {
    let doc = crate::openapi_v2::document(kargo_served);
    if !header(req, http::header::ACCEPT).contains(crate::openapi_v2::PROTOBUF) {
        return json_response(200, &doc);
    }
    let mut resp = Response::new(full(crate::openapi_v2::protobuf(&doc)));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::openapi_v2::PROTOBUF_CONTENT_TYPE),
    );
    resp
}

fn served(shared: &Shared) -> bool {
    lock(&shared.state).kargo.served
}

fn document(doc: Option<Value>) -> Result<Response<Body>, ApiError> {
    doc.map(|d| json_response(200, &d))
        .ok_or_else(status::no_such_resource)
}

/// `req` with Kargo's base path taken off its path, as Kargo's server mux does before its
/// routes see it.
fn without_base_path(base: &str, mut req: Request) -> Request {
    if base.is_empty() {
        return req;
    }
    let uri = req.uri();
    let path = uri.path().strip_prefix(base).unwrap_or(uri.path());
    let rebuilt = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    if let Ok(rebuilt) = rebuilt.parse::<http::Uri>() {
        *req.uri_mut() = rebuilt;
    }
    req
}

fn healthy() -> Response<Body> {
    let mut resp = Response::new(full("ok"));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// The sandbox's HTTP routes. Prefix handlers own everything under their prefix with their
/// own rules (no Kubernetes authentication, faults or request log); everything else is the
/// Kubernetes API.
pub fn app(shared: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .nest("/sandbox", crate::control::routes(shared.clone()))
        .route(
            &format!("{}/v1beta1/{{*rest}}", shared.rest_base_path),
            any(|State(s): State<Arc<Shared>>, req: Request| {
                let req = without_base_path(&s.rest_base_path, req);
                crate::rest::handle(s, req)
            }),
        )
        .route(
            &format!("{}{{*rest}}", crate::git::http::PREFIX),
            any(|State(s), req| crate::git::http::handle(s, req)),
        )
        .fallback(|State(s), req| serve(s, req, Route::Missing));
    for (path, doc) in DOCUMENTS {
        let doc = *doc;
        let to = move |State(s), Path(p), req| serve(s, req, Route::Document(doc, p));
        router = router.route(path, any(to));
    }
    for prefix in ["/api/v1", "/apis/{group}/{version}"] {
        for (watch, infix) in [(false, ""), (true, "/watch")] {
            for scope in ["", "/namespaces/{namespace}"] {
                for tail in ["/{plural}", "/{plural}/{name}", "/{plural}/{name}/{sub}"] {
                    let to = move |State(s), Path(p), req| {
                        serve(s, req, Route::Resource(Target::new(p, watch)))
                    };
                    router = router.route(&format!("{prefix}{infix}{scope}{tail}"), any(to));
                }
            }
        }
    }
    router.with_state(shared)
}

fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    let named = t.name.is_some();
    match *method {
        Method::GET if t.watch || q.flag("watch") => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST if !named => "create",
        Method::PUT if named => "update",
        Method::PATCH if named => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

fn header<B>(req: &http::Request<B>, name: http::header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Serves one Kubernetes API request: faults, authentication, the route, the request log.
async fn serve(shared: Arc<Shared>, req: Request, route: Route) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    let user_agent = header(&req, USER_AGENT).to_string();
    let (verb, resource, namespace, name) = match &route {
        Route::Resource(t) => (
            verb_of(&method, t, &query),
            t.resource_label(),
            t.namespace.clone(),
            t.name.clone(),
        ),
        _ => ("get", path.clone(), None, None),
    };
    let effect = lock(&shared.faults).on_request(verb, &resource);
    if let Some(d) = effect.delay {
        tokio::time::sleep(d).await;
    }
    let token = header(&req, AUTHORIZATION)
        .strip_prefix("Bearer ")
        .unwrap_or_default()
        .trim()
        .to_string();
    let authenticated = lock(&shared.state).users.authenticate(&token);
    let (who, impersonation) = impersonate(&req, authenticated);
    let user = who.as_ref().map(|w| w.name.clone());
    let reset = req.extensions().get::<ConnectionReset>().cloned();
    let mut response = match (&who, effect.unavailable) {
        (_, true) => error_response(&status::unavailable()),
        (None, false) => error_response(&status::unauthorized()),
        (Some(_), false) if impersonation.is_some() => {
            error_response(impersonation.as_ref().unwrap_or(&status::unauthorized()))
        }
        (Some(who), false) => {
            let ctx = Ctx {
                shared: &shared,
                query: &query,
                user: &who.name,
                who,
                user_agent: &user_agent,
                verb,
            };
            let result = match route {
                Route::Document(doc, p) if method == Method::GET => doc(&shared, &p, &req),
                Route::Document(..) => Err(status::method_not_allowed()),
                Route::Missing => Err(status::no_such_resource()),
                Route::Resource(t) => serve_resource(&ctx, req, t).await,
            };
            result.unwrap_or_else(|e| error_response(&e))
        }
    };
    if effect.after == Some(After::Timeout) {
        response = error_response(&status::timeout());
    }
    let code = match effect.after {
        Some(After::Reset) => 0,
        _ => response.status().as_u16(),
    };
    tracing::debug!(%method, %path, code, user = user.as_deref().unwrap_or("-"), "request");
    lock(&shared.log).record(RequestRecord {
        verb: verb.to_string(),
        resource,
        namespace,
        name,
        method: method.to_string(),
        path,
        user,
        user_agent,
        code,
    });
    after_answer(effect.after, reset).await;
    response
}

/// What a fault does once the answer is ready: drop the connection under the request (its
/// answer is never sent) or hold the answer back.
pub(crate) async fn after_answer(after: Option<After>, reset: Option<ConnectionReset>) {
    match after {
        Some(After::Reset) => {
            if let Some(reset) = reset {
                reset.reset();
            }
            std::future::pending::<()>().await;
        }
        Some(After::Delay(d)) => tokio::time::sleep(d).await,
        Some(After::Timeout) | None => {}
    }
}

/// `kubectl --as NAME [--as-group G]…`: the identity the `Impersonate-User` and
/// `Impersonate-Group` headers ask for, which only the admin may take on; the error when the
/// requester may not impersonate.
fn impersonate<B>(
    req: &http::Request<B>,
    authenticated: Option<Identity>,
) -> (Option<Identity>, Option<ApiError>) {
    let target = header(
        req,
        http::header::HeaderName::from_static("impersonate-user"),
    );
    let groups: Vec<String> = req
        .headers()
        .get_all(http::header::HeaderName::from_static("impersonate-group"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let Some(real) = authenticated else {
        return (None, None);
    };
    if target.is_empty() {
        let error = (!groups.is_empty()).then(|| {
            status::bad_request(
                "impersonating groups requires impersonating a user (Impersonate-User)",
            )
        });
        return (Some(real), error);
    }
    if real.name != auth::ADMIN {
        let error = auth::cannot_impersonate(&real.name, target);
        return (Some(real), Some(error));
    }
    (Some(Identity::impersonated(target, groups)), None)
}

/// Per-request context for resource handlers.
struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    query: &'a Query,
    user: &'a str,
    who: &'a Identity,
    user_agent: &'a str,
    verb: &'static str,
}

impl Ctx<'_> {
    /// The writer and options of a write; `dry_run` holds `dryRun` values from the body.
    fn write_request(&self, apply: bool, dry_run: &[&str]) -> Result<api::Request, ApiError> {
        let manager = match self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) if m.len() > 128 => {
                return Err(status::bad_request(
                    "fieldManager: Too long: may not be more than 128 bytes",
                ));
            }
            Some(m) => m.to_string(),
            None if apply => {
                return Err(status::bad_request(
                    "fieldManager is required for apply requests",
                ));
            }
            None => {
                let prefix = self.user_agent.split('/').next().unwrap_or_default();
                if prefix.is_empty() {
                    "unknown".to_string()
                } else {
                    prefix.to_string()
                }
            }
        };
        let validation = match self.query.get("fieldValidation") {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(status::bad_request(format!(
                    "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
                )));
            }
        };
        let dry_run: Vec<&str> = self
            .query
            .all("dryRun")
            .chain(dry_run.iter().copied())
            .collect();
        if dry_run.iter().any(|v| *v != "All") {
            let options = match self.verb {
                "create" => "CreateOptions",
                "update" => "UpdateOptions",
                "patch" => "PatchOptions",
                _ => "DeleteOptions",
            };
            let values: Vec<String> = dry_run.iter().map(|v| format!("{v:?}")).collect();
            let message = format!(
                "Unsupported value: []string{{{}}}: supported values: \"All\"",
                values.join(", ")
            );
            let cause = StatusCause {
                reason: "FieldValueNotSupported".into(),
                message,
                field: "dryRun".into(),
            };
            return Err(ApiError::invalid(options, "meta.k8s.io", "", vec![cause]));
        }
        Ok(api::Request {
            user: self.user.to_string(),
            groups: self.who.groups.clone(),
            control_plane: false,
            dry_run: !dry_run.is_empty(),
            manager,
            validation,
        })
    }

    fn labels(&self) -> Result<LabelSelector, ApiError> {
        LabelSelector::parse(self.query.get("labelSelector").unwrap_or_default())
            .map_err(|e| status::bad_request(format!("unable to parse requirement: {e}")))
    }

    fn fields(&self, plural: &str) -> Result<FieldSelector, ApiError> {
        FieldSelector::parse(self.query.get("fieldSelector").unwrap_or_default(), plural)
            .map_err(status::bad_request)
    }

    fn wake(&self) {
        self.shared.wake.notify_one();
    }
}

fn table_include(req: &Request, q: &Query) -> Option<Include> {
    if !header(req, ACCEPT).contains("as=Table") {
        return None;
    }
    Some(match q.get("includeObject") {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    })
}

async fn read_body(req: Request) -> Result<(String, Bytes), ApiError> {
    let content_type = header(&req, CONTENT_TYPE)
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::new(413, "RequestEntityTooLarge", format!("request body: {e}")))?
        .to_bytes();
    Ok((content_type, body))
}

fn decode(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") || proto::is_protobuf(body) {
        return proto::decode(body).map_err(|e| ApiError::new(415, "UnsupportedMediaType", e));
    }
    if content_type.contains("cbor") {
        return Err(status::unsupported_media_type(
            content_type,
            &["application/json", "application/yaml"],
        ));
    }
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &body[i..])
        .unwrap_or_default();
    if content_type.contains("yaml") && !trimmed.starts_with(b"{") {
        serde_yaml::from_slice(body)
            .map_err(|e| status::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| status::bad_request(format!("error decoding JSON: {e}")))
    }
}

/// The checks the API server makes before decoding a body into the resource's kind.
fn check_identity(
    res: &ResourceDef,
    obj: &Value,
    ns: Option<&str>,
    name: Option<&str>,
) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(status::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if let Some(v) = obj.get("apiVersion").and_then(Value::as_str)
        && v != res.api_version()
    {
        return Err(status::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != res.kind
    {
        return Err(status::bad_request(format!(
            "{k} in version \"{}\" cannot be handled as a {}: the kind in the data does not match the resource",
            res.version, res.kind
        )));
    }
    if let Some(body_ns) = meta_str(obj, "namespace").filter(|n| !n.is_empty())
        && res.namespaced
        && ns.is_some_and(|ns| ns != body_ns)
    {
        return Err(status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if let (Some(url), Some(body_name)) = (name, meta_str(obj, "name"))
        && url != body_name
    {
        return Err(status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({url})"
        )));
    }
    Ok(())
}

#[derive(Serialize)]
struct List<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

fn object_response(code: u16, obj: &Value, warnings: &[String]) -> Response<Body> {
    json_bytes(code, serde_json::to_vec(obj).unwrap_or_default(), warnings)
}

async fn serve_resource(
    ctx: &Ctx<'_>,
    req: Request,
    t: Target,
) -> Result<Response<Body>, ApiError> {
    let served = lock(&ctx.shared.state).kargo.served;
    let res = t
        .res
        .filter(|r| served || !r.is_kargo())
        .ok_or_else(status::no_such_resource)?;
    if (t.namespace.is_some() && !res.namespaced)
        || (res.namespaced && t.namespace.is_none() && t.name.is_some())
    {
        return Err(status::no_such_resource());
    }
    let sub = match t.sub.as_deref() {
        None => None,
        Some("status") if res.status => {
            if !matches!(ctx.verb, "get" | "update" | "patch") {
                return Err(status::method_not_allowed());
            }
            Some("status")
        }
        Some(_) => return Err(status::no_such_resource()),
    };
    if res.backing == Backing::Review {
        // Every authenticated user may ask; the answer is computed, never stored.
        if ctx.verb != "create" || t.name.is_some() {
            return Err(status::method_not_allowed());
        }
        let (content_type, body) = read_body(req).await?;
        let obj = decode(&content_type, &body)?;
        let state = lock(&ctx.shared.state);
        return Ok(json_response(
            201,
            &auth::review(res, &obj, ctx.who, &state.users, &state.store),
        ));
    }
    let ns = t.namespace.as_deref();
    let access = Access {
        verb: ctx.verb,
        group: res.group,
        resource: res.plural,
        subresource: sub,
        namespace: ns,
        name: t.name.as_deref().unwrap_or_default(),
        path: None,
    };
    let allowed = {
        let state = lock(&ctx.shared.state);
        state.users.can(&state.store, ctx.who, &access)
    };
    if !allowed {
        return Err(auth::forbidden(
            ctx.user,
            ctx.verb,
            res,
            sub,
            ns,
            t.name.as_deref(),
        ));
    }
    if res.backing == Backing::Crds {
        return serve_crds(ctx, &req, res, t.name.as_deref());
    }
    let table = table_include(&req, ctx.query);
    let name = t.name.clone().unwrap_or_default();
    match ctx.verb {
        "get" => {
            let state = lock(&ctx.shared.state);
            let obj = state
                .store
                .get(res, ns, &name)
                .ok_or_else(|| status::not_found(res, &name))?;
            Ok(match table {
                Some(include) => {
                    let rv = meta_str(obj, "resourceVersion").unwrap_or_default();
                    json_response(
                        200,
                        &table::table(res, &[obj], rv, include, state.clock.now()),
                    )
                }
                None => object_response(200, obj, &[]),
            })
        }
        "list" => {
            let (labels, fields) = (ctx.labels()?, ctx.fields(res.plural)?);
            let state = lock(&ctx.shared.state);
            let rv = state.store.resource_version().to_string();
            let items: Vec<&Value> = state
                .store
                .list(res, ns)
                .filter(|o| labels.matches(o) && fields.matches(o))
                .collect();
            Ok(match table {
                Some(include) => json_response(
                    200,
                    &table::table(res, &items, &rv, include, state.clock.now()),
                ),
                None => {
                    let list = List {
                        kind: res.list_kind(),
                        api_version: res.api_version(),
                        metadata: json!({"resourceVersion": rv}),
                        items,
                    };
                    json_bytes(200, serde_json::to_vec(&list).unwrap_or_default(), &[])
                }
            })
        }
        "watch" => {
            let mut fields = ctx.fields(res.plural)?;
            if let Some(n) = &t.name {
                fields = FieldSelector::parse(&format!("metadata.name={n}"), res.plural)
                    .map_err(status::bad_request)?;
            }
            let timeout = ctx
                .query
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok());
            let spec = WatchSpec {
                res,
                namespace: t.namespace.clone(),
                labels: ctx.labels()?,
                fields,
                resource_version: ctx.query.get("resourceVersion").map(str::to_string),
                send_initial_events: ctx.query.flag("sendInitialEvents"),
                bookmarks: ctx.query.flag("allowWatchBookmarks"),
                timeout: timeout
                    .filter(|s| *s > 0)
                    .map(std::time::Duration::from_secs),
                table,
            };
            let body = watch::start(ctx.shared, spec)?;
            let mut resp = Response::new(body);
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(resp)
        }
        "create" => {
            let write = ctx.write_request(false, &[])?;
            let (ct, body) = read_body(req).await?;
            let obj = decode(&ct, &body)?;
            check_identity(res, &obj, ns, None)?;
            let w = lock(&ctx.shared.state).create(res, ns, obj, &write)?;
            ctx.wake();
            Ok(object_response(201, &w.object, &w.warnings))
        }
        "update" => {
            let write = ctx.write_request(false, &[])?;
            let (ct, body) = read_body(req).await?;
            let obj = decode(&ct, &body)?;
            check_identity(res, &obj, ns, Some(&name))?;
            let w = lock(&ctx.shared.state).update(res, ns, &name, obj, sub, &write)?;
            ctx.wake();
            Ok(object_response(200, &w.object, &w.warnings))
        }
        "patch" => {
            let (ct, body) = read_body(req).await?;
            let result = patch_object(ctx, res, ns, &name, sub, &ct, &body);
            ctx.wake();
            result
        }
        "delete" => {
            let (opts, write) = delete_options(ctx, req).await?;
            let outcome = lock(&ctx.shared.state).delete(res, ns, &name, &opts, &write)?;
            ctx.wake();
            Ok(match outcome {
                Deleted::Pending(obj) => object_response(200, &obj, &[]),
                Deleted::Gone(obj) if res.custom || res.is_namespace() => {
                    object_response(200, &obj, &[])
                }
                Deleted::Gone(obj) => json_response(
                    200,
                    &status::success(res, &name, meta_str(&obj, "uid").unwrap_or_default()),
                ),
            })
        }
        "deletecollection" => {
            let (labels, fields) = (ctx.labels()?, ctx.fields(res.plural)?);
            let (opts, write) = delete_options(ctx, req).await?;
            let mut state = lock(&ctx.shared.state);
            let targets: Vec<(Option<String>, String)> = state
                .store
                .list(res, ns)
                .filter(|o| labels.matches(o) && fields.matches(o))
                .map(|o| {
                    (
                        meta_str(o, "namespace").map(str::to_string),
                        meta_str(o, "name").unwrap_or_default().into(),
                    )
                })
                .collect();
            let mut items = Vec::new();
            for (obj_ns, obj_name) in targets {
                match state.delete(res, obj_ns.as_deref(), &obj_name, &opts, &write)? {
                    Deleted::Pending(o) | Deleted::Gone(o) => items.push(o),
                }
            }
            drop(state);
            ctx.wake();
            Ok(json_response(
                200,
                &json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(status::method_not_allowed()),
    }
}

async fn delete_options(
    ctx: &Ctx<'_>,
    req: Request,
) -> Result<(DeleteOptions, api::Request), ApiError> {
    let (content_type, body) = read_body(req).await?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        decode(&content_type, &body)?
    };
    let in_body: Vec<&str> = body
        .get("dryRun")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default()).collect())
        .unwrap_or_default();
    let write = ctx.write_request(false, &in_body)?;
    let dry_run = write.dry_run;
    let policy = ctx
        .query
        .get("propagationPolicy")
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str));
    let orphan = policy == Some("Orphan")
        || body.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let pre = body.get("preconditions");
    let opts = DeleteOptions {
        dry_run,
        uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
        orphan,
    };
    Ok((opts, write))
}

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

fn patch_object(
    ctx: &Ctx<'_>,
    res: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    match content_type {
        "application/apply-patch+yaml" => {
            let write = ctx.write_request(true, &[])?;
            let applied = decode(content_type, body)?;
            let force = ctx.query.flag("force");
            let (w, created) =
                lock(&ctx.shared.state).apply(res, ns, name, applied, sub, force, &write)?;
            Ok(object_response(
                if created { 201 } else { 200 },
                &w.object,
                &w.warnings,
            ))
        }
        "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json" => {
            let strategic = content_type == "application/strategic-merge-patch+json";
            if strategic && res.custom {
                return Err(status::unsupported_media_type(content_type, PATCH_TYPES));
            }
            let write = ctx.write_request(false, &[])?;
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| status::bad_request(format!("error decoding patch: {e}")))?;
            let mut state = lock(&ctx.shared.state);
            let mut doc = state
                .store
                .get(res, ns, name)
                .cloned()
                .ok_or_else(|| status::not_found(res, name))?;
            match content_type {
                "application/merge-patch+json" => {
                    if !p.is_object() {
                        return Err(status::bad_request("a merge patch must be a JSON object"));
                    }
                    patch::merge_patch(&mut doc, &p);
                }
                "application/json-patch+json" => {
                    if !p.is_array() {
                        return Err(status::bad_request(
                            "a JSON patch must be an array of operations",
                        ));
                    }
                    patch::json_patch(&mut doc, &p)
                        .map_err(|e| ApiError::new(422, "Invalid", e))?;
                }
                _ => patch::strategic_merge_patch(&mut doc, &p).map_err(status::bad_request)?,
            }
            let w = state.update(res, ns, name, doc, sub, &write)?;
            Ok(object_response(200, &w.object, &w.warnings))
        }
        other => {
            let mut accepted = PATCH_TYPES.to_vec();
            if !res.custom {
                accepted.push("application/strategic-merge-patch+json");
            }
            Err(status::unsupported_media_type(other, &accepted))
        }
    }
}
