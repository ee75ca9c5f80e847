//! The Kubernetes HTTP surface: routes paths to discovery or resources, authenticates,
//! applies HTTP faults, logs every request, and maps verbs onto the object semantics.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{self, DeleteOptions, Deleted, FieldValidation};
use crate::auth;
use crate::discovery;
use crate::hooks::ApiError;
use crate::patch;
use crate::proto;
use crate::reqlog::RequestRecord;
use crate::resources::{self, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::{Shared, lock};
use crate::status;
use crate::store::meta_str;
use crate::table::{self, Include};
use crate::watch::{self, WatchSpec};

/// The response body type of every handler.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let pairs = q
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Query(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// Where a path leads.
#[derive(Debug)]
enum Route {
    NonResource,
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
    fn resource_label(&self) -> String {
        match &self.sub {
            Some(s) => format!("{}/{s}", self.plural),
            None => self.plural.clone(),
        }
    }
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        []
        | ["version"]
        | ["healthz"]
        | ["livez"]
        | ["readyz"]
        | ["api"]
        | ["apis"]
        | ["openapi", ..] => Route::NonResource,
        ["api", "v1"] | ["apis", _] | ["apis", _, _] => Route::NonResource,
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Route::Missing,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let namespaced =
        |plural: &str| !group.is_empty() || resources::by_plural(group, plural).is_some();
    let (plural, namespace, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced(plural) => match tail {
            [] => (*plural, Some(*ns), None, None),
            [name] => (*plural, Some(*ns), Some(*name), None),
            [name, sub] => (*plural, Some(*ns), Some(*name), Some(*sub)),
            _ => return Route::Missing,
        },
        [plural] => (*plural, None, None, None),
        [plural, name] => (*plural, None, Some(*name), None),
        [plural, name, sub] => (*plural, None, Some(*name), Some(*sub)),
        _ => return Route::Missing,
    };
    Route::Resource(Target {
        plural: plural.to_string(),
        res: resources::by_plural(group, plural).filter(|r| r.version == version),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
        watch,
    })
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

fn header(req: &http::Request<Incoming>, name: http::header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Serves one Kubernetes API request (the `/sandbox/v1` control API is routed elsewhere).
pub async fn handle(
    shared: Arc<Shared>,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if path.starts_with("/sandbox/") {
        return Ok(crate::control::handle(shared, req).await);
    }
    if path.starts_with(crate::git::http::PREFIX) {
        return Ok(crate::git::http::handle(shared, req).await);
    }
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    let user_agent = header(&req, USER_AGENT).to_string();
    let route = route(&path);
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
    let user = lock(&shared.state)
        .users
        .authenticate(&token)
        .map(str::to_string);
    let response = match (&user, effect.unavailable) {
        (_, true) => error_response(&status::unavailable()),
        (None, false) => error_response(&status::unauthorized()),
        (Some(user), false) => {
            let ctx = Ctx {
                shared: &shared,
                query: &query,
                user,
                user_agent: &user_agent,
                verb,
            };
            let result = match route {
                Route::NonResource if method == Method::GET => non_resource(&shared, &path),
                Route::NonResource => Err(status::method_not_allowed()),
                Route::Missing => Err(status::no_such_resource()),
                Route::Resource(t) => serve_resource(&ctx, req, t).await,
            };
            result.unwrap_or_else(|e| error_response(&e))
        }
    };
    let code = response.status().as_u16();
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
    Ok(response)
}

fn non_resource(shared: &Shared, path: &str) -> Result<Response<Body>, ApiError> {
    let served = lock(&shared.state).kargo.served;
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let doc = match segs.as_slice() {
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::core_versions(&shared.address())),
        ["apis"] => Some(discovery::groups(served)),
        ["apis", g] => discovery::group(g, served),
        ["api", "v1"] => discovery::resource_list("", "v1", served),
        ["apis", g, v] => discovery::resource_list(g, v, served),
        ["openapi", "v2"] => Some(discovery::openapi_v2()),
        ["openapi", "v3"] => Some(discovery::openapi_v3_index(served)),
        ["openapi", "v3", "api", v] => discovery::openapi_v3_document("", v, served),
        ["openapi", "v3", "apis", g, v] => discovery::openapi_v3_document(g, v, served),
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut resp = Response::new(full("ok"));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(resp);
        }
        _ => None,
    };
    doc.map(|d| json_response(200, &d))
        .ok_or_else(status::no_such_resource)
}

/// Per-request context for resource handlers.
struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    query: &'a Query,
    user: &'a str,
    user_agent: &'a str,
    verb: &'static str,
}

impl Ctx<'_> {
    fn write_request(&self, apply: bool) -> Result<api::Request, ApiError> {
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
        Ok(api::Request {
            user: self.user.to_string(),
            control_plane: false,
            dry_run: self.query.get("dryRun") == Some("All"),
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

fn table_include(req: &http::Request<Incoming>, q: &Query) -> Option<Include> {
    if !header(req, ACCEPT).contains("as=Table") {
        return None;
    }
    Some(match q.get("includeObject") {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    })
}

async fn read_body(req: http::Request<Incoming>) -> Result<(String, Bytes), ApiError> {
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
    req: http::Request<Incoming>,
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
    let ns = t.namespace.as_deref();
    if !lock(&ctx.shared.state)
        .users
        .can(ctx.user, ctx.verb, &t.resource_label())
    {
        return Err(auth::forbidden(
            ctx.user,
            ctx.verb,
            res,
            sub,
            ns,
            t.name.as_deref(),
        ));
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
            let write = ctx.write_request(false)?;
            let (ct, body) = read_body(req).await?;
            let obj = decode(&ct, &body)?;
            check_identity(res, &obj, ns, None)?;
            let w = lock(&ctx.shared.state).create(res, ns, obj, &write)?;
            ctx.wake();
            Ok(object_response(201, &w.object, &w.warnings))
        }
        "update" => {
            let write = ctx.write_request(false)?;
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
    req: http::Request<Incoming>,
) -> Result<(DeleteOptions, api::Request), ApiError> {
    let mut write = ctx.write_request(false)?;
    let (content_type, body) = read_body(req).await?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        decode(&content_type, &body)?
    };
    let dry_run = write.dry_run
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    write.dry_run = dry_run;
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
            let write = ctx.write_request(true)?;
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
            let write = ctx.write_request(false)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match route(path) {
            Route::Resource(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn routes_distinguish_scopes_and_subresources() {
        let t = target("/apis/kargo.akuity.io/v1alpha1/namespaces/p/stages/dev/status");
        assert_eq!(
            (
                t.plural.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("stages", Some("p"), Some("dev"), Some("status"))
        );
        let t = target("/api/v1/namespaces/p/status");
        assert_eq!(
            (
                t.plural.as_str(),
                t.namespace,
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("namespaces", None, Some("p"), Some("status"))
        );
        let t = target("/api/v1/namespaces/p/secrets");
        assert_eq!(
            (t.plural.as_str(), t.namespace.as_deref(), t.name),
            ("secrets", Some("p"), None)
        );
        let t = target("/apis/kargo.akuity.io/v1alpha1/watch/namespaces/p/stages");
        assert!(t.watch);
        assert!(matches!(
            route("/apis/kargo.akuity.io/v1alpha1"),
            Route::NonResource
        ));
        assert!(matches!(route("/nope"), Route::Missing));
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
    }
}
