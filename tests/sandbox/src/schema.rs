//! Structural schemas: Kargo's published CRDs parsed once per process, plus the built-in shapes,
//! and the API server's treatment of custom resources — defaulting, pruning and validation.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::cel;
use crate::hooks::StatusCause;

/// How a list is merged and owned by server-side apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ListType {
    #[default]
    Atomic,
    Set,
    Map(Vec<String>),
}

/// One `x-kubernetes-validations` entry.
#[derive(Clone, Debug)]
pub struct Rule {
    pub rule: String,
    pub message: String,
}

/// One node of a structural schema.
#[derive(Debug)]
pub struct Node {
    pub ty: Option<String>,
    pub properties: BTreeMap<String, Node>,
    pub additional: Option<Box<Node>>,
    pub items: Option<Box<Node>>,
    pub required: Vec<String>,
    pub default: Option<Value>,
    pub enum_values: Vec<Value>,
    pub pattern: Option<(String, Regex)>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub format: Option<String>,
    pub nullable: bool,
    pub preserve_unknown: bool,
    pub int_or_string: bool,
    pub list_type: ListType,
    pub map_atomic: bool,
    pub rules: Vec<Rule>,
}

/// The shape of anything without a schema: maps merge per key, lists are atomic.
pub static DEDUCED: Node = Node::deduced();

impl Node {
    pub const fn deduced() -> Node {
        Node {
            ty: None,
            properties: BTreeMap::new(),
            additional: None,
            items: None,
            required: Vec::new(),
            default: None,
            enum_values: Vec::new(),
            pattern: None,
            min_length: None,
            max_length: None,
            min_items: None,
            max_items: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: false,
            exclusive_maximum: false,
            format: None,
            nullable: false,
            preserve_unknown: true,
            int_or_string: false,
            list_type: ListType::Atomic,
            map_atomic: false,
            rules: Vec::new(),
        }
    }

    /// The schema of field `key` of an object node.
    pub fn field(&self, key: &str) -> &Node {
        self.properties
            .get(key)
            .or(self.additional.as_deref())
            .unwrap_or(&DEDUCED)
    }

    /// The schema of the items of an array node.
    pub fn item(&self) -> &Node {
        self.items.as_deref().unwrap_or(&DEDUCED)
    }

    fn parse(v: &Value) -> Result<Node, String> {
        let mut n = Node::deduced();
        n.preserve_unknown = v
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        n.ty = v.get("type").and_then(Value::as_str).map(str::to_string);
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                n.properties.insert(k.clone(), Node::parse(p)?);
            }
        }
        if let Some(a) = v.get("additionalProperties") {
            if a.is_object() {
                n.additional = Some(Box::new(Node::parse(a)?));
            } else if a.as_bool() == Some(true) {
                n.additional = Some(Box::new(Node::deduced()));
            }
        }
        if let Some(items) = v.get("items") {
            n.items = Some(Box::new(Node::parse(items)?));
        }
        n.required = strings(v.get("required"));
        n.default = v.get("default").cloned();
        n.enum_values = v
            .get("enum")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(p) = v.get("pattern").and_then(Value::as_str) {
            let re = Regex::new(p).map_err(|e| format!("pattern {p:?}: {e}"))?;
            n.pattern = Some((p.to_string(), re));
        }
        n.min_length = v.get("minLength").and_then(Value::as_u64);
        n.max_length = v.get("maxLength").and_then(Value::as_u64);
        n.min_items = v.get("minItems").and_then(Value::as_u64);
        n.max_items = v.get("maxItems").and_then(Value::as_u64);
        n.minimum = v.get("minimum").and_then(Value::as_f64);
        n.maximum = v.get("maximum").and_then(Value::as_f64);
        n.exclusive_minimum = v.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        n.exclusive_maximum = v.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        n.format = v.get("format").and_then(Value::as_str).map(str::to_string);
        n.nullable = v.get("nullable").and_then(Value::as_bool) == Some(true);
        n.int_or_string =
            v.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
        n.map_atomic = v.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
        n.list_type = match v.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(strings(v.get("x-kubernetes-list-map-keys"))),
            _ => ListType::Atomic,
        };
        if let Some(rules) = v.get("x-kubernetes-validations").and_then(Value::as_array) {
            for r in rules {
                let rule = r
                    .get("rule")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let message = r
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                n.rules.push(Rule { rule, message });
            }
        }
        Ok(n)
    }

    fn collect_rules(&self, out: &mut Vec<String>) {
        out.extend(self.rules.iter().map(|r| r.rule.clone()));
        for p in self.properties.values() {
            p.collect_rules(out);
        }
        for n in self.additional.iter().chain(self.items.iter()) {
            n.collect_rules(out);
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The shape of `metadata` as server-side apply sees ObjectMeta.
fn meta_node() -> Node {
    let mut meta = Node::deduced();
    meta.ty = Some("object".into());
    let mut finalizers = Node::deduced();
    finalizers.list_type = ListType::Set;
    let mut owners = Node::deduced();
    owners.list_type = ListType::Map(vec!["uid".into()]);
    meta.properties.insert("finalizers".into(), finalizers);
    meta.properties.insert("ownerReferences".into(), owners);
    meta
}

/// A printer column of a CRD (`additionalPrinterColumns`).
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub ty: String,
    pub json_path: String,
    pub priority: i64,
}

/// What the sandbox keeps of one CRD.
#[derive(Debug)]
pub struct Crd {
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub status: bool,
    pub short_names: Vec<String>,
    pub columns: Vec<Column>,
    pub root: Node,
    /// The CRD as committed (what `apiextensions.k8s.io` serves, and OpenAPI is built from).
    pub document: Value,
}

/// Kargo's CRD facts, generated from its published CRDs by `kargo-schemagen crds`
/// (`make generate`) and compiled in, so that every sandbox applies the same checks.
const CRDS: &[&str] = &[
    include_str!("../data/crds/kargo.akuity.io_clusterconfigs.json"),
    include_str!("../data/crds/kargo.akuity.io_clusterpromotiontasks.json"),
    include_str!("../data/crds/kargo.akuity.io_freights.json"),
    include_str!("../data/crds/kargo.akuity.io_projectconfigs.json"),
    include_str!("../data/crds/kargo.akuity.io_projects.json"),
    include_str!("../data/crds/kargo.akuity.io_promotions.json"),
    include_str!("../data/crds/kargo.akuity.io_promotiontasks.json"),
    include_str!("../data/crds/kargo.akuity.io_stages.json"),
    include_str!("../data/crds/kargo.akuity.io_warehouses.json"),
];

/// Kargo's CRDs, keyed by plural.
#[derive(Debug)]
pub struct Catalog {
    pub crds: BTreeMap<String, Crd>,
}

impl Catalog {
    /// Every `x-kubernetes-validations` rule text in the catalog.
    pub fn rules(&self) -> Vec<String> {
        let mut out = Vec::new();
        for crd in self.crds.values() {
            crd.root.collect_rules(&mut out);
        }
        out
    }

    fn load(files: &[&str]) -> Result<Catalog, String> {
        let mut crds = BTreeMap::new();
        for text in files {
            let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let crd = parse_crd(doc)?;
            crds.insert(crd.plural.clone(), crd);
        }
        Ok(Catalog { crds })
    }
}

fn parse_crd(doc: Value) -> Result<Crd, String> {
    let spec = doc.get("spec").ok_or("no spec")?;
    let names = spec.get("names").ok_or("no spec.names")?;
    let name = |k: &str| {
        names
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let version = spec
        .get("versions")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
        .ok_or("no spec.versions")?;
    let schema = version
        .pointer("/schema/openAPIV3Schema")
        .ok_or("no openAPIV3Schema")?;
    let mut root = Node::parse(schema).map_err(|e| format!("{}: {e}", name("plural")))?;
    root.properties.insert("metadata".into(), meta_node());
    let text = |c: &Value, k: &str, default: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let columns = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| Column {
                    name: text(c, "name", ""),
                    ty: text(c, "type", "string"),
                    json_path: text(c, "jsonPath", ""),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Crd {
        kind: name("kind"),
        plural: name("plural"),
        singular: name("singular"),
        namespaced: spec.get("scope").and_then(Value::as_str) == Some("Namespaced"),
        status: version.pointer("/subresources/status").is_some(),
        short_names: strings(names.get("shortNames")),
        columns,
        root,
        document: doc,
    })
}

static CATALOG: OnceLock<Catalog> = OnceLock::new();

/// The parsed CRDs. The committed data is checked by this crate's tests, so a failure to
/// parse it is a defect of the build, not something a user or the cluster can cause.
pub fn catalog() -> &'static Catalog {
    CATALOG.get_or_init(|| {
        let catalog = Catalog::load(CRDS)
            .unwrap_or_else(|e| panic!("the committed CRD facts do not parse: {e}"));
        for rule in catalog.rules().iter().filter(|r| !cel::known(r)) {
            tracing::warn!(rule = %rule, "CRD validation rule not implemented by the sandbox; it is not checked");
        }
        catalog
    })
}

static GENERIC_ROOT: OnceLock<Node> = OnceLock::new();
static BUILTIN_ROOTS: OnceLock<BTreeMap<&'static str, Node>> = OnceLock::new();

/// The top-level fields of the built-in kinds served here (below them anything goes), so
/// that unknown top-level fields are dropped or refused as the API server's decoder does.
const BUILTIN_FIELDS: &[(&str, &[&str])] = &[
    ("namespaces", &["spec", "status"]),
    ("configmaps", &["data", "binaryData", "immutable"]),
    ("secrets", &["data", "stringData", "type", "immutable"]),
    (
        "serviceaccounts",
        &[
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
    ),
    ("resourcequotas", &["spec", "status"]),
    ("limitranges", &["spec"]),
    ("pods", &["spec", "status"]),
    ("services", &["spec", "status"]),
    ("roles", &["rules"]),
    ("clusterroles", &["rules", "aggregationRule"]),
    ("rolebindings", &["subjects", "roleRef"]),
    ("clusterrolebindings", &["subjects", "roleRef"]),
    (
        "events",
        &[
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ],
    ),
];

fn object_root() -> Node {
    let mut root = Node::deduced();
    root.ty = Some("object".into());
    root.properties.insert("metadata".into(), meta_node());
    root
}

/// The schema of a resource: its CRD when known, a built-in kind's top-level fields, else a
/// root that only knows ObjectMeta.
pub fn root_for(group: &str, plural: &str) -> &'static Node {
    if group == crate::resources::KARGO_GROUP {
        if let Some(crd) = catalog().crds.get(plural) {
            return &crd.root;
        }
    } else if let Some(root) = BUILTIN_ROOTS
        .get_or_init(|| {
            BUILTIN_FIELDS
                .iter()
                .map(|(plural, fields)| {
                    let mut root = object_root();
                    root.preserve_unknown = false;
                    for f in ["apiVersion", "kind"].iter().chain(fields.iter()) {
                        root.properties.insert(f.to_string(), Node::deduced());
                    }
                    (*plural, root)
                })
                .collect()
        })
        .get(plural)
    {
        return root;
    }
    GENERIC_ROOT.get_or_init(object_root)
}

/// Whether `root` declares its fields (a CRD or a built-in kind), so unknown ones are pruned.
pub fn is_structural(root: &Node) -> bool {
    !root.preserve_unknown
}

/// Fills in defaults as the API server does when it decodes a custom resource: missing fields
/// that have a default get it (also inside objects that are present), and nulls of
/// non-nullable fields are dropped or defaulted.
pub fn apply_defaults(node: &Node, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in &node.properties {
                match map.get_mut(key) {
                    None => {
                        if let Some(d) = &child.default {
                            let mut d = d.clone();
                            apply_defaults(child, &mut d);
                            map.insert(key.clone(), d);
                        }
                    }
                    Some(v) if v.is_null() && !child.nullable => match &child.default {
                        Some(d) => {
                            *v = d.clone();
                            apply_defaults(child, v);
                        }
                        None => {
                            map.remove(key);
                        }
                    },
                    Some(v) => apply_defaults(child, v),
                }
            }
            if let Some(add) = &node.additional {
                for (k, v) in map.iter_mut() {
                    if !node.properties.contains_key(k) {
                        apply_defaults(add, v);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for v in items {
                    apply_defaults(item, v);
                }
            }
        }
        _ => {}
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Drops fields the schema does not declare (unless it preserves unknown fields) and
/// appends their paths (`spec.foo`) to `dropped`. `metadata` is left to ObjectMeta rules.
pub fn prune(node: &Node, value: &mut Value, path: &str, dropped: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let p = child_path(path, &key);
                if let Some(child) = node.properties.get(&key) {
                    if let Some(v) = map.get_mut(&key) {
                        prune(child, v, &p, dropped);
                    }
                } else if let Some(add) = &node.additional {
                    if let Some(v) = map.get_mut(&key) {
                        prune(add, v, &p, dropped);
                    }
                } else if !node.preserve_unknown {
                    map.remove(&key);
                    dropped.push(p);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(item, v, &format!("{path}[{i}]"), dropped);
                }
            }
        }
        _ => {}
    }
}

/// A value as apimachinery prints it in field errors (strings quoted, numbers bare).
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn cause(reason: &str, field: &str, message: String) -> StatusCause {
    StatusCause {
        reason: reason.to_string(),
        message,
        field: field.to_string(),
    }
}

fn invalid(field: &str, value: &Value, detail: String) -> StatusCause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {detail}", render(value)),
    )
}

/// The message of a `Required value` cause.
pub fn required(field: &str) -> StatusCause {
    cause("FieldValueRequired", field, "Required value".to_string())
}

/// Validates `value` against `node` as the API server does for custom resources, with
/// messages worded like it (`spec.interval in body should match '…'`).
pub fn validate(node: &Node, value: &Value, path: &str, out: &mut Vec<StatusCause>) {
    if value.is_null() {
        if !node.nullable && node.ty.is_some() {
            let ty = node.ty.as_deref().unwrap_or_default();
            let detail = format!("{path} in body must be of type {ty}: \"null\"");
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"null\": {detail}"),
            ));
        }
        return;
    }
    if node.int_or_string {
        if !(is_integer(value) || value.is_string()) {
            let t = json_type(value);
            let detail = format!("{path} in body must be of type integer,string: \"{t}\"");
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"{t}\": {detail}"),
            ));
            return;
        }
    } else if let Some(ty) = &node.ty
        && !type_matches(ty, value)
    {
        let t = json_type(value);
        let detail = format!("{path} in body must be of type {ty}: \"{t}\"");
        out.push(cause(
            "FieldValueTypeInvalid",
            path,
            format!("Invalid value: \"{t}\": {detail}"),
        ));
        return;
    }
    if !node.enum_values.is_empty() && !node.enum_values.contains(value) {
        let supported = node
            .enum_values
            .iter()
            .map(|e| match e {
                Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
                other => serde_json::to_string(&other.to_string()).unwrap_or_default(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push(cause(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {supported}",
                render(value)
            ),
        ));
    }
    match value {
        Value::String(s) => validate_string(node, s, value, path, out),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or_default();
            if let Some(min) = node.minimum
                && (f < min || (node.exclusive_minimum && f == min))
            {
                let op = if node.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                out.push(invalid(
                    path,
                    value,
                    format!("{path} in body should be {op} {}", num(min)),
                ));
            }
            if let Some(max) = node.maximum
                && (f > max || (node.exclusive_maximum && f == max))
            {
                let op = if node.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                out.push(invalid(
                    path,
                    value,
                    format!("{path} in body should be {op} {}", num(max)),
                ));
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = node.min_items
                && len < min
            {
                out.push(invalid(
                    path,
                    &Value::from(len),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = node.max_items
                && len > max
            {
                out.push(cause(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {len}: must have at most {max} items"),
                ));
            }
            validate_list_uniqueness(node, items, path, out);
            let item = node.item();
            for (i, v) in items.iter().enumerate() {
                validate(item, v, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for key in &node.required {
                if !map.contains_key(key) {
                    out.push(required(&child_path(path, key)));
                }
            }
            for (key, v) in map {
                if path.is_empty() && key == "metadata" {
                    continue;
                }
                if let Some(child) = node.properties.get(key) {
                    validate(child, v, &child_path(path, key), out);
                } else if let Some(add) = &node.additional {
                    validate(add, v, &child_path(path, key), out);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
    for rule in &node.rules {
        if cel::eval(&rule.rule, value) == Some(false) {
            let t = json_type(value);
            let message = if rule.message.is_empty() {
                format!("failed rule: {}", rule.rule)
            } else {
                rule.message.clone()
            };
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!("Invalid value: \"{t}\": {message}"),
            ));
        }
    }
}

fn num(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn validate_string(node: &Node, s: &str, value: &Value, path: &str, out: &mut Vec<StatusCause>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = node.max_length
        && chars > max
    {
        out.push(cause(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = node.min_length
        && chars < min
    {
        out.push(invalid(
            path,
            value,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some((src, re)) = &node.pattern
        && !re.is_match(s)
    {
        out.push(invalid(
            path,
            value,
            format!("{path} in body should match '{src}'"),
        ));
    }
    let bad_format = match node.format.as_deref() {
        Some("date-time") => s.parse::<jiff::Timestamp>().is_err(),
        Some("date") => s.parse::<jiff::civil::Date>().is_err(),
        Some("email") => !s.contains('@'),
        _ => false,
    };
    if bad_format {
        let f = node.format.as_deref().unwrap_or_default();
        let detail = format!("{path} in body must be of type {f}: {}", render(value));
        out.push(cause(
            "FieldValueTypeInvalid",
            path,
            format!("Invalid value: {}: {detail}", render(value)),
        ));
    }
}

fn validate_list_uniqueness(node: &Node, items: &[Value], path: &str, out: &mut Vec<StatusCause>) {
    match &node.list_type {
        ListType::Set => {
            for (i, v) in items.iter().enumerate() {
                if items[..i].contains(v) {
                    let field = format!("{path}[{i}]");
                    out.push(cause(
                        "FieldValueDuplicate",
                        &field,
                        format!("Duplicate value: {}", render(v)),
                    ));
                }
            }
        }
        ListType::Map(keys) => {
            let key_of = |v: &Value| {
                keys.iter()
                    .map(|k| v.get(k).cloned().unwrap_or(Value::Null))
                    .collect::<Vec<_>>()
            };
            for (i, v) in items.iter().enumerate() {
                let k = key_of(v);
                if items[..i].iter().any(|o| key_of(o) == k) {
                    let field = format!("{path}[{i}]");
                    let shown: Map<String, Value> = keys.iter().cloned().zip(k).collect();
                    out.push(cause(
                        "FieldValueDuplicate",
                        &field,
                        format!("Duplicate value: {}", Value::Object(shown)),
                    ));
                }
            }
        }
        ListType::Atomic => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: Value) -> Node {
        Node::parse(&v).unwrap()
    }

    #[test]
    fn the_committed_crds_are_all_compiled_in_and_match_the_served_kinds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/crds");
        let files = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count();
        assert_eq!(
            CRDS.len(),
            files,
            "every file in {} is in CRDS",
            dir.display()
        );
        let catalog = catalog();
        let kargo: Vec<_> = crate::resources::RESOURCES
            .iter()
            .filter(|r| r.is_kargo())
            .collect();
        assert_eq!(catalog.crds.len(), kargo.len());
        for res in kargo {
            let crd = &catalog.crds[res.plural];
            assert_eq!(
                (
                    crd.kind.as_str(),
                    crd.singular.as_str(),
                    crd.namespaced,
                    crd.status
                ),
                (res.kind, res.singular, res.namespaced, res.status),
                "{}",
                res.plural
            );
            assert_eq!(crd.short_names, res.short_names, "{}", res.plural);
        }
        let warehouse = &catalog.crds["warehouses"].root;
        assert_eq!(
            warehouse.field("spec").field("interval").default,
            Some(json!("5m0s"))
        );
    }

    #[test]
    fn defaults_fill_missing_and_nested_fields() {
        let n = node(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "interval": {"type": "string", "default": "5m0s"},
                "inner": {"type": "object", "properties": {"x": {"type": "integer", "default": 3}}},
                "gone": {"type": "string"}
            }}}}),
        );
        let mut v = json!({"spec": {"inner": {}, "gone": null}});
        apply_defaults(&n, &mut v);
        assert_eq!(v, json!({"spec": {"inner": {"x": 3}, "interval": "5m0s"}}));
    }

    #[test]
    fn prune_reports_unknown_fields_but_keeps_preserved_ones() {
        let n = node(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "subs": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "a": {"type": "string"}
            }}}}),
        );
        let mut v = json!({"kind": "X", "spec": {"a": "1", "legacy": {"x": 1}, "subs": [{"image": {"any": 1}}]}});
        let mut dropped = Vec::new();
        prune(&n, &mut v, "", &mut dropped);
        assert_eq!(dropped, vec!["spec.legacy".to_string()]);
        assert_eq!(
            v,
            json!({"kind": "X", "spec": {"a": "1", "subs": [{"image": {"any": 1}}]}})
        );
    }

    #[test]
    fn validation_messages_follow_the_api_server() {
        let n = node(
            json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object",
            "required": ["kind"],
            "properties": {
                "interval": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(s|m|h))+$"},
                "kind": {"type": "string", "enum": ["Warehouse"]},
                "n": {"type": "integer", "minimum": 1},
                "list": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
            }}}}),
        );
        let mut out = Vec::new();
        validate(
            &n,
            &json!({"spec": {"interval": "5 minutes", "kind": "Stage", "n": "x", "list": []}}),
            "",
            &mut out,
        );
        let msgs: Vec<(String, String)> = out
            .iter()
            .map(|c| (c.field.clone(), c.message.clone()))
            .collect();
        assert!(msgs.contains(&(
            "spec.interval".into(),
            "Invalid value: \"5 minutes\": spec.interval in body should match '^([0-9]+(\\.[0-9]+)?(s|m|h))+$'".into()
        )));
        assert!(msgs.contains(&(
            "spec.kind".into(),
            "Unsupported value: \"Stage\": supported values: \"Warehouse\"".into()
        )));
        assert!(msgs.contains(&(
            "spec.n".into(),
            "Invalid value: \"string\": spec.n in body must be of type integer: \"string\"".into()
        )));
        assert!(msgs.contains(&(
            "spec.list".into(),
            "Invalid value: 0: spec.list in body should have at least 1 items".into()
        )));
        out.clear();
        validate(&n, &json!({"spec": {}}), "", &mut out);
        assert_eq!(out, vec![required("spec.kind")]);
    }
}
