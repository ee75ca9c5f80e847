//! The API server's object semantics over the store: create, update, apply and delete with
//! admission, schema checks, generation, finalizers, namespace termination and owner GC.

use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::Users;
use crate::clock::Clock;
use crate::hooks::{Admission, AdmissionRequest, ApiError, Operation, StatusCause, Txn};
use crate::kargo::Kargo;
use crate::rbac::{Access, Identity};
use crate::resources::{self, RESOURCES, ResourceDef};
use crate::schema::{self, Node};
use crate::ssa::{self, Scope, Writer};
use crate::status;
use crate::store::{Store, meta_str};

/// Whether Kargo's CRDs are served and whether its webhooks and controllers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KargoMode {
    pub served: bool,
    pub running: bool,
}

/// Everything behind the global lock.
pub struct State {
    pub store: Store,
    pub kargo: KargoMode,
    pub users: Users,
    pub clock: Arc<Clock>,
    pub hooks: Arc<Kargo>,
}

/// What to do with fields the schema does not know (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Who is writing and how.
#[derive(Clone, Debug)]
pub struct Request {
    pub user: String,
    /// The user's groups, for authorization by RBAC.
    pub groups: Vec<String>,
    /// Kargo's own writes (controllers, webhook side effects): no admission.
    pub control_plane: bool,
    pub dry_run: bool,
    pub manager: String,
    pub validation: FieldValidation,
}

impl Request {
    pub fn control_plane() -> Request {
        Request {
            user: "system:serviceaccount:kargo:kargo-controller".into(),
            groups: Vec::new(),
            control_plane: true,
            dry_run: false,
            manager: "kargo".into(),
            validation: FieldValidation::Ignore,
        }
    }
}

/// A committed (or dry-run) write and the warnings to send with it.
#[derive(Debug)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// Options of a DELETE.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub orphan: bool,
}

/// The result of a DELETE: still there (finalizers pending) or gone.
#[derive(Debug)]
pub enum Deleted {
    Pending(Value),
    Gone(Value),
}

const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

static SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("static regex")
});
static LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex"));
static QUALIFIED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("static regex")
});
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").expect("static regex")
});

/// `metadata` of an object, created when missing. Callers only pass objects (bodies are
/// checked to be objects before anything edits them).
fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    // Version 4, RFC 4122 variant.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The 5-character suffix `generateName` gets (the API server's alphabet, without vowels).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn cause(reason: &str, field: &str, message: String) -> StatusCause {
    StatusCause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

fn validate_metadata(
    res: &ResourceDef,
    obj: &Value,
    old: Option<&Value>,
    out: &mut Vec<StatusCause>,
) {
    let name = meta_str(obj, "name").unwrap_or_default();
    if res.is_namespace() {
        if name.len() > 63 || !LABEL.is_match(name) {
            out.push(cause(
                "FieldValueInvalid",
                "metadata.name",
                format!(
                    "Invalid value: {}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
                     or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
                     regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                    schema::render(&Value::from(name))
                ),
            ));
        }
    } else if res.group != "rbac.authorization.k8s.io"
        && (name.len() > 253 || !SUBDOMAIN.is_match(name))
    {
        out.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!(
                "Invalid value: {}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
                 '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
                 validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                schema::render(&Value::from(name))
            ),
        ));
    }
    for field in ["labels", "annotations"] {
        let Some(map) = obj.pointer(&format!("/metadata/{field}")) else {
            continue;
        };
        let path = format!("metadata.{field}");
        let Some(map) = map.as_object() else {
            out.push(cause(
                "FieldValueTypeInvalid",
                &path,
                "Invalid value: must be a map of strings".into(),
            ));
            continue;
        };
        for (k, v) in map {
            let (prefix, key) = k.rsplit_once('/').unwrap_or(("", k.as_str()));
            let bad_prefix = k.contains('/')
                && (prefix.is_empty() || prefix.len() > 253 || !SUBDOMAIN.is_match(prefix));
            if bad_prefix || key.len() > 63 || !QUALIFIED.is_match(key) {
                out.push(cause(
                    "FieldValueInvalid",
                    &path,
                    format!(
                        "Invalid value: {}: name part must consist of alphanumeric characters, '-', '_' or '.', and \
                         must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
                         '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                        schema::render(&Value::from(k.as_str()))
                    ),
                ));
            }
            let Some(s) = v.as_str() else {
                out.push(cause(
                    "FieldValueTypeInvalid",
                    &format!("{path}.{k}"),
                    "Invalid value: must be a string".into(),
                ));
                continue;
            };
            if field == "labels" && (s.len() > 63 || !LABEL_VALUE.is_match(s)) {
                out.push(cause(
                    "FieldValueInvalid",
                    &path,
                    format!(
                        "Invalid value: {}: a valid label must be an empty string or consist of alphanumeric \
                         characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. \
                         'MyValue',  or 'my_value',  or '12345', regex used for validation is \
                         '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                        schema::render(&Value::from(s))
                    ),
                ));
            }
        }
    }
    if let Some(old) = old.filter(|o| deleting(o)) {
        let before = finalizers(old);
        let added: Vec<String> = finalizers(obj)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            out.push(cause(
                "FieldValueForbidden",
                "metadata.finalizers",
                format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
            ));
        }
    }
}

/// The object without the parts that do not count as a spec change.
fn spec_part(obj: &Value, with_status: bool) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        if with_status {
            m.remove("status");
        }
    }
    o
}

fn same_except_version(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta_mut(&mut v).remove("resourceVersion");
        v
    };
    strip(a) == strip(b)
}

/// Kind-specific normalisation of built-in kinds on every write.
fn normalise_builtin(res: &ResourceDef, obj: &mut Value) {
    match (res.group, res.plural) {
        ("", "secrets") => {
            if let Some(Value::Object(string_data)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                use base64::Engine;
                let data = obj
                    .as_object_mut()
                    .map(|o| o.entry("data").or_insert_with(|| json!({})));
                if let Some(Value::Object(data)) = data {
                    for (k, v) in string_data {
                        let s = v.as_str().unwrap_or_default();
                        data.insert(
                            k,
                            Value::from(base64::engine::general_purpose::STANDARD.encode(s)),
                        );
                    }
                }
            }
            if obj.get("type").is_none() {
                obj["type"] = json!("Opaque");
            }
        }
        ("", "namespaces") => {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            if !name.is_empty() {
                let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
                if let Value::Object(l) = labels {
                    l.insert("kubernetes.io/metadata.name".into(), Value::from(name));
                }
            }
        }
        _ => {}
    }
}

impl State {
    fn now(&self) -> String {
        self.clock.stamp()
    }

    fn writer<'a>(&self, res: &ResourceDef, sub: Option<&'a str>, manager: &'a str) -> Writer<'a> {
        let scope = match sub {
            Some(_) => Scope::StatusOnly,
            None if res.status => Scope::MainOnly,
            None => Scope::All,
        };
        Writer {
            manager,
            api_version: api_version_static(res),
            subresource: sub,
            scope,
            now: self.now(),
        }
    }

    fn check_namespace(&self, ns: &str, res: &ResourceDef, name: &str) -> Result<(), ApiError> {
        match self.store.get(resources::namespaces(), None, ns) {
            None => Err(status::namespace_not_found(ns)),
            Some(n) if deleting(n) => Err(status::forbidden(
                res,
                Some(name),
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Defaults, unknown-field handling, admission, pruning: the steps between decoding and
    /// validation. Admission sees the object before pruning, so webhooks can reject legacy
    /// fields (which the schema would otherwise drop) with a helpful message.
    fn admit(
        &mut self,
        res: &'static ResourceDef,
        op: Operation,
        sub: Option<&str>,
        old: Option<&Value>,
        obj: &mut Value,
        req: &Request,
    ) -> Result<Vec<String>, ApiError> {
        let root = schema::root_for(res.group, res.plural);
        let structural = schema::is_structural(root);
        let mut unknown = Vec::new();
        if let Some(meta) = obj.get("metadata").and_then(Value::as_object) {
            unknown.extend(
                meta.keys()
                    .filter(|k| !OBJECT_META.contains(&k.as_str()))
                    .map(|k| format!("metadata.{k}")),
            );
        }
        if structural {
            schema::apply_defaults(root, obj);
            let mut probe = obj.clone();
            schema::prune(root, &mut probe, "", &mut unknown);
        }
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            match req.validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = unknown
                        .iter()
                        .map(|p| format!("unknown field \"{p}\""))
                        .collect();
                    return Err(status::bad_request(format!(
                        "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
                        list.join(", "),
                        kind = res.kind,
                        v = res.version
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(unknown.iter().map(|p| format!("unknown field \"{p}\"")))
                }
                FieldValidation::Ignore => {}
            }
        }
        if !req.control_plane && self.kargo.running && (res.is_kargo() || res.is_namespace()) {
            let hooks = self.hooks.clone();
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            let ns = meta_str(obj, "namespace").map(str::to_string);
            let mut review = AdmissionRequest {
                operation: op,
                group: res.group,
                resource: res.plural,
                subresource: sub,
                namespace: ns.as_deref(),
                name: &name,
                object: Some(obj),
                old_object: old,
                user: &req.user,
                groups: &req.groups,
                from_control_plane: req.user == crate::rest::API_SERVER_USER,
                dry_run: req.dry_run,
            };
            hooks.admit(&mut ControlPlane { state: self }, &mut review)?;
        }
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| OBJECT_META.contains(&k.as_str()));
        }
        if structural {
            schema::prune(root, obj, "", &mut Vec::new());
            schema::apply_defaults(root, obj);
        }
        Ok(warnings)
    }

    fn validate(
        &self,
        res: &'static ResourceDef,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        validate_metadata(res, obj, old, &mut causes);
        let root = schema::root_for(res.group, res.plural);
        if schema::is_structural(root) {
            schema::validate(root, obj, "", &mut causes);
        }
        if causes.is_empty() {
            return Ok(());
        }
        let name = meta_str(obj, "name").unwrap_or_default();
        Err(ApiError::invalid(res.kind, res.group, name, causes))
    }

    /// Creates an object (POST).
    pub fn create(
        &mut self,
        res: &'static ResourceDef,
        ns: Option<&str>,
        obj: Value,
        req: &Request,
    ) -> Result<Written, ApiError> {
        self.create_inner(res, ns, obj, req, false)
    }

    fn create_inner(
        &mut self,
        res: &'static ResourceDef,
        ns: Option<&str>,
        mut obj: Value,
        req: &Request,
        applied: bool,
    ) -> Result<Written, ApiError> {
        if !obj.is_object() {
            return Err(status::bad_request(
                "the request body must be a JSON object",
            ));
        }
        obj["apiVersion"] = Value::from(res.api_version());
        obj["kind"] = Value::from(res.kind);
        let now = self.now();
        let meta = meta_mut(&mut obj);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let generate = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(status::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if res.namespaced {
            let ns = ns
                .map(str::to_string)
                .or_else(|| {
                    meta.get("namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    status::bad_request("an empty namespace may not be set during creation")
                })?;
            meta.insert("namespace".into(), Value::from(ns));
        } else {
            meta.remove("namespace");
        }
        if name.is_empty() && generate.is_empty() {
            let causes = vec![cause(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required".into(),
            )];
            return Err(ApiError::invalid(res.kind, res.group, "", causes));
        }
        for f in [
            "uid",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(f);
        }
        meta.insert("uid".into(), Value::from(new_uid()));
        meta.insert("creationTimestamp".into(), Value::from(now));
        if res.custom {
            meta.insert("generation".into(), Value::from(1));
        } else {
            meta.remove("generation");
        }
        if res.custom
            && res.status
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        if res.is_namespace() {
            obj["status"] = json!({"phase": "Active"});
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        if let Some(ns) = meta_str(&obj, "namespace").map(str::to_string) {
            self.check_namespace(&ns, res, &name)?;
        }
        let warnings = self.admit(res, Operation::Create, None, None, &mut obj, req)?;
        if meta_str(&obj, "name").unwrap_or_default().is_empty() {
            let generate = meta_str(&obj, "generateName")
                .unwrap_or_default()
                .to_string();
            let ns = meta_str(&obj, "namespace").map(str::to_string);
            let mut candidate = format!("{generate}{}", name_suffix());
            while self.store.get(res, ns.as_deref(), &candidate).is_some() {
                candidate = format!("{generate}{}", name_suffix());
            }
            meta_mut(&mut obj).insert("name".into(), Value::from(candidate));
        }
        normalise_builtin(res, &mut obj);
        self.validate(res, &obj, None)?;
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let ns = meta_str(&obj, "namespace").map(str::to_string);
        if let Some(existing) = self.store.get(res, ns.as_deref(), &name) {
            return Err(status::already_exists(res, &name, deleting(existing)));
        }
        if !applied {
            let base = ssa::incoming_entries(None, &obj);
            let root = schema::root_for(res.group, res.plural);
            ssa::track_update(
                root,
                None,
                &mut obj,
                base,
                &self.writer(res, None, &req.manager),
            );
        }
        if req.dry_run {
            return Ok(Written {
                object: obj,
                warnings,
            });
        }
        let object = self.store.insert(res, obj);
        Ok(Written { object, warnings })
    }

    /// Replaces an object (PUT), or its status when `sub` is `Some("status")`.
    pub fn update(
        &mut self,
        res: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        sub: Option<&str>,
        req: &Request,
    ) -> Result<Written, ApiError> {
        self.update_inner(res, ns, name, obj, sub, req, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_inner(
        &mut self,
        res: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        sub: Option<&str>,
        req: &Request,
        applied: bool,
    ) -> Result<Written, ApiError> {
        if !obj.is_object() {
            return Err(status::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let old = self
            .store
            .get(res, ns, name)
            .cloned()
            .ok_or_else(|| status::not_found(res, name))?;
        let old_rv = meta_str(&old, "resourceVersion")
            .unwrap_or_default()
            .to_string();
        if let Some(rv) = meta_str(&obj, "resourceVersion").filter(|rv| !rv.is_empty())
            && rv != old_rv
        {
            return Err(status::stale(res, name));
        }
        obj["apiVersion"] = Value::from(res.api_version());
        obj["kind"] = Value::from(res.kind);
        if sub == Some("status") {
            let new_status = obj.get("status").cloned();
            let managed = obj.pointer("/metadata/managedFields").cloned();
            obj = old.clone();
            match new_status {
                Some(s) => obj["status"] = s,
                None => {
                    if let Some(o) = obj.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            let meta = meta_mut(&mut obj);
            match managed {
                Some(m) => meta.insert("managedFields".into(), m),
                None => meta.remove("managedFields"),
            };
        } else if res.status {
            match old.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    if let Some(o) = obj.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        if res.is_namespace() {
            obj["spec"] = old.get("spec").cloned().unwrap_or_else(|| json!({}));
        }
        {
            let old_meta = old
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let meta = meta_mut(&mut obj);
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match old_meta.get(f) {
                    Some(v) => meta.insert(f.into(), v.clone()),
                    None => meta.remove(f),
                };
            }
        }
        let warnings = self.admit(res, Operation::Update, sub, Some(&old), &mut obj, req)?;
        // Identity is not the webhooks' to change on update.
        let meta = meta_mut(&mut obj);
        meta.insert("name".into(), Value::from(name));
        match ns {
            Some(ns) => meta.insert("namespace".into(), Value::from(ns)),
            None => meta.remove("namespace"),
        };
        normalise_builtin(res, &mut obj);
        self.validate(res, &obj, Some(&old))?;
        if res.custom && spec_part(&old, res.status) != spec_part(&obj, res.status) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut obj).insert("generation".into(), Value::from(generation + 1));
        }
        if !applied {
            let base = ssa::incoming_entries(Some(&old), &obj);
            let root = schema::root_for(res.group, res.plural);
            ssa::track_update(
                root,
                Some(&old),
                &mut obj,
                base,
                &self.writer(res, sub, &req.manager),
            );
        }
        if same_except_version(&old, &obj) {
            return Ok(Written {
                object: old,
                warnings,
            });
        }
        if req.dry_run {
            return Ok(Written {
                object: obj,
                warnings,
            });
        }
        if deleting(&obj)
            && finalizers(&obj).is_empty()
            && !res.is_namespace()
            && let Some(gone) = self.store.remove(res, ns, name)
        {
            self.after_removal(res, &gone, false);
            return Ok(Written {
                object: gone,
                warnings,
            });
        }
        let object = self.store.replace(res, obj);
        if res.is_namespace() {
            self.try_finalize_namespace(name);
        }
        Ok(Written { object, warnings })
    }

    /// Server-side apply (PATCH `application/apply-patch+yaml`); creates the object when missing.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        res: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        mut applied: Value,
        sub: Option<&str>,
        force: bool,
        req: &Request,
    ) -> Result<(Written, bool), ApiError> {
        let Some(cfg) = applied.as_object_mut() else {
            return Err(status::bad_request(
                "the apply configuration must be an object",
            ));
        };
        if cfg.get("apiVersion").and_then(Value::as_str) != Some(&res.api_version())
            || cfg.get("kind").and_then(Value::as_str) != Some(res.kind)
        {
            let got = format!(
                "{}, Kind={}",
                cfg.get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                cfg.get("kind").and_then(Value::as_str).unwrap_or_default()
            );
            return Err(status::bad_request(format!(
                "the apply configuration's apiVersion and kind ({got}) do not match the resource ({}, Kind={})",
                res.api_version(),
                res.kind
            )));
        }
        if cfg
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .is_some_and(|m| !m.is_null())
        {
            return Err(status::bad_request("metadata.managedFields must be nil"));
        }
        match cfg
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
        {
            Some(n) if n != name => {
                return Err(status::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        if sub == Some("status") {
            cfg.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
        } else if res.status {
            cfg.remove("status");
        }
        let meta = meta_mut(&mut applied);
        meta.insert("name".into(), Value::from(name));
        if let Some(ns) = ns {
            meta.insert("namespace".into(), Value::from(ns));
        }
        let live = self.store.get(res, ns, name).cloned();
        if live.is_none() && sub.is_some() {
            return Err(status::not_found(res, name));
        }
        let root: &Node = schema::root_for(res.group, res.plural);
        let writer = self.writer(res, sub, &req.manager);
        let merged =
            ssa::apply(root, live.as_ref(), &applied, &writer, force).map_err(|conflicts| {
                let message = if conflicts.len() == 1 {
                    format!(
                        "Apply failed with 1 conflict: conflict with {}: {}",
                        conflicts[0].manager, conflicts[0].path
                    )
                } else {
                    let mut by_manager: Vec<(String, Vec<String>)> = Vec::new();
                    for c in &conflicts {
                        match by_manager.iter_mut().find(|(m, _)| *m == c.manager) {
                            Some((_, paths)) => paths.push(c.path.clone()),
                            None => by_manager.push((c.manager.clone(), vec![c.path.clone()])),
                        }
                    }
                    by_manager.sort();
                    let lines: Vec<String> = by_manager
                        .iter()
                        .map(|(m, paths)| {
                            let items: Vec<String> =
                                paths.iter().map(|p| format!("- {p}")).collect();
                            format!("conflicts with {m}:\n{}", items.join("\n"))
                        })
                        .collect();
                    format!(
                        "Apply failed with {} conflicts: {}",
                        conflicts.len(),
                        lines.join("\n")
                    )
                };
                let mut e = ApiError::new(409, "Conflict", message);
                e.causes = conflicts
                    .iter()
                    .map(|c| {
                        cause(
                            "FieldManagerConflict",
                            &c.path,
                            format!("conflict with {}", c.manager),
                        )
                    })
                    .collect();
                e
            })?;
        match live {
            None => self
                .create_inner(res, ns, merged, req, true)
                .map(|w| (w, true)),
            Some(_) => self
                .update_inner(res, ns, name, merged, sub, req, true)
                .map(|w| (w, false)),
        }
    }

    /// Deletes an object (DELETE): finalizers only mark it, namespaces terminate their content.
    pub fn delete(
        &mut self,
        res: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
        req: &Request,
    ) -> Result<Deleted, ApiError> {
        let obj = self
            .store
            .get(res, ns, name)
            .cloned()
            .ok_or_else(|| status::not_found(res, name))?;
        if let Some(uid) = &opts.uid
            && meta_str(&obj, "uid") != Some(uid.as_str())
        {
            let have = meta_str(&obj, "uid").unwrap_or_default();
            return Err(status::conflict(
                res,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && meta_str(&obj, "resourceVersion") != Some(rv.as_str())
        {
            let have = meta_str(&obj, "resourceVersion").unwrap_or_default();
            return Err(status::conflict(
                res,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
                ),
            ));
        }
        if !req.control_plane && self.kargo.running && (res.is_kargo() || res.is_namespace()) {
            let hooks = self.hooks.clone();
            let mut review = AdmissionRequest {
                operation: Operation::Delete,
                group: res.group,
                resource: res.plural,
                subresource: None,
                namespace: ns,
                name,
                object: None,
                old_object: Some(&obj),
                user: &req.user,
                groups: &req.groups,
                from_control_plane: req.user == crate::rest::API_SERVER_USER,
                dry_run: opts.dry_run,
            };
            hooks.admit(&mut ControlPlane { state: self }, &mut review)?;
        }
        if opts.dry_run {
            // What the deletion would answer, without touching anything: a namespace or an
            // object with finalizers comes back marked, anything else as it was.
            return Ok(if finalizers(&obj).is_empty() && !res.is_namespace() {
                Deleted::Gone(obj)
            } else {
                Deleted::Pending(self.marked_for_deletion(res, obj))
            });
        }
        Ok(self.delete_object(res, obj, opts.orphan))
    }

    /// `obj` as a deletion marks it: a deletion timestamp (once), the next generation for
    /// custom resources, and the Terminating phase for a namespace.
    fn marked_for_deletion(&self, res: &ResourceDef, mut obj: Value) -> Value {
        if deleting(&obj) {
            return obj;
        }
        let now = self.now();
        let meta = meta_mut(&mut obj);
        meta.insert("deletionTimestamp".into(), Value::from(now));
        if res.is_namespace() {
            obj["status"] = json!({"phase": "Terminating"});
            return obj;
        }
        meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
        if res.custom {
            let g = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
            meta.insert("generation".into(), Value::from(g + 1));
        }
        obj
    }

    fn delete_object(
        &mut self,
        res: &'static ResourceDef,
        mut obj: Value,
        orphan: bool,
    ) -> Deleted {
        let ns = meta_str(&obj, "namespace").map(str::to_string);
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if res.is_namespace() {
            return self.terminate_namespace(obj);
        }
        if !finalizers(&obj).is_empty() {
            if !deleting(&obj) {
                obj = self.marked_for_deletion(res, obj);
                obj = self.store.replace(res, obj);
            }
            return Deleted::Pending(obj);
        }
        match self.store.remove(res, ns.as_deref(), &name) {
            Some(gone) => {
                self.after_removal(res, &gone, orphan);
                Deleted::Gone(gone)
            }
            None => Deleted::Gone(obj),
        }
    }

    fn terminate_namespace(&mut self, mut ns_obj: Value) -> Deleted {
        let name = meta_str(&ns_obj, "name").unwrap_or_default().to_string();
        if !deleting(&ns_obj) {
            ns_obj = self.marked_for_deletion(resources::namespaces(), ns_obj);
            ns_obj = self.store.replace(resources::namespaces(), ns_obj);
        }
        for res in RESOURCES.iter().filter(|r| r.namespaced) {
            let objects: Vec<Value> = self.store.list(res, Some(&name)).cloned().collect();
            for o in objects
                .into_iter()
                .filter(|o| !deleting(o) || finalizers(o).is_empty())
            {
                self.delete_object(res, o, false);
            }
        }
        match self.try_finalize_namespace(&name) {
            Some(gone) => Deleted::Gone(gone),
            None => Deleted::Pending(ns_obj),
        }
    }

    /// Removes a terminating namespace once it is empty and has no finalizers left.
    fn try_finalize_namespace(&mut self, name: &str) -> Option<Value> {
        let ns = self.store.get(resources::namespaces(), None, name)?;
        if !deleting(ns) || !finalizers(ns).is_empty() || self.store.namespace_in_use(name) {
            return None;
        }
        self.store.remove(resources::namespaces(), None, name)
    }

    /// Garbage-collects dependents (by ownerReferences) and finishes namespace termination.
    fn after_removal(&mut self, res: &'static ResourceDef, gone: &Value, orphan: bool) {
        let uid = meta_str(gone, "uid").unwrap_or_default().to_string();
        let owner_ns = meta_str(gone, "namespace").map(str::to_string);
        let dependents: Vec<(&'static ResourceDef, Value)> = self
            .store
            .all()
            .filter(|(_, o)| {
                o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(&uid))
                    })
                    && (owner_ns.is_none() || meta_str(o, "namespace") == owner_ns.as_deref())
            })
            .map(|(r, o)| (r, o.clone()))
            .collect();
        for (dep_res, mut dep) in dependents {
            let others: Vec<Value> = dep
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter(|r| r.get("uid").and_then(Value::as_str) != Some(&uid))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let live_owner = others.iter().any(|r| {
                let u = r.get("uid").and_then(Value::as_str).unwrap_or_default();
                self.store.all().any(|(_, o)| meta_str(o, "uid") == Some(u))
            });
            if orphan || live_owner {
                let meta = meta_mut(&mut dep);
                if others.is_empty() {
                    meta.remove("ownerReferences");
                } else {
                    meta.insert("ownerReferences".into(), Value::Array(others));
                }
                self.store.replace(dep_res, dep);
            } else if !deleting(&dep) || finalizers(&dep).is_empty() {
                self.delete_object(dep_res, dep, false);
            }
        }
        if res.namespaced
            && let Some(ns) = owner_ns
        {
            self.try_finalize_namespace(&ns);
        }
    }

    /// Runs `f` with Kargo's controllers given the store, as the control plane.
    pub fn as_control_plane<R>(&mut self, f: impl FnOnce(&mut dyn Txn) -> R) -> R {
        f(&mut ControlPlane { state: self })
    }
}

fn api_version_static(res: &ResourceDef) -> &'static str {
    match res.group {
        "" => "v1",
        "rbac.authorization.k8s.io" => "rbac.authorization.k8s.io/v1",
        _ => "kargo.akuity.io/v1alpha1",
    }
}

/// The store as Kargo's webhooks and controllers see it (`hooks::Txn`).
pub struct ControlPlane<'a> {
    pub state: &'a mut State,
}

fn resource_of(obj: &Value) -> Result<&'static ResourceDef, ApiError> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    resources::by_kind(api_version, kind).ok_or_else(|| {
        status::bad_request(format!(
            "no kind {kind:?} is registered for version {api_version:?}"
        ))
    })
}

impl Txn for ControlPlane<'_> {
    fn get(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let res = resources::by_plural(group, resource)?;
        self.state.store.get(res, namespace, name).cloned()
    }

    fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        match resources::by_plural(group, resource) {
            Some(res) => self.state.store.list(res, namespace).cloned().collect(),
            None => Vec::new(),
        }
    }

    fn create(&mut self, object: Value) -> Result<Value, ApiError> {
        let res = resource_of(&object)?;
        let ns = meta_str(&object, "namespace").map(str::to_string);
        self.state
            .create(res, ns.as_deref(), object, &Request::control_plane())
            .map(|w| w.object)
    }

    fn update(&mut self, object: Value) -> Result<Value, ApiError> {
        let res = resource_of(&object)?;
        let ns = meta_str(&object, "namespace").map(str::to_string);
        let name = meta_str(&object, "name").unwrap_or_default().to_string();
        self.state
            .update(
                res,
                ns.as_deref(),
                &name,
                object,
                None,
                &Request::control_plane(),
            )
            .map(|w| w.object)
    }

    fn update_status(&mut self, object: Value) -> Result<Value, ApiError> {
        let res = resource_of(&object)?;
        if !res.status {
            return Err(status::no_such_resource());
        }
        let ns = meta_str(&object, "namespace").map(str::to_string);
        let name = meta_str(&object, "name").unwrap_or_default().to_string();
        self.state
            .update(
                res,
                ns.as_deref(),
                &name,
                object,
                Some("status"),
                &Request::control_plane(),
            )
            .map(|w| w.object)
    }

    fn delete(
        &mut self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let res = resources::by_plural(group, resource).ok_or_else(status::no_such_resource)?;
        self.state
            .delete(
                res,
                namespace,
                name,
                &DeleteOptions::default(),
                &Request::control_plane(),
            )
            .map(|_| ())
    }

    fn now(&self) -> jiff::Timestamp {
        self.state.clock.now()
    }

    fn can(&self, who: &Identity, access: &Access<'_>) -> bool {
        self.state.users.can(&self.state.store, who, access)
    }
}
