//! Schema-driven conversion between Terraform values and Kargo objects, attributes and blocks
//! alike, and the create/read/update/delete/import cycle of the pipeline resources built on it.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value as Json, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::common::{
    self, IMPORTING, PROJECT_LABEL, fail, managed_map, object_timeouts_block, string_map_json,
    timeout,
};
use super::templates::Pipeline;
use crate::config::ProviderData;
use crate::kargo::{Error as KargoError, KargoClient, Kind, Namespace, Object, WithSpec, decode};
use crate::plugin::plan::{plan_from_schema, semantic::json_eq, values_equal};
use crate::plugin::schema::AttributeType;
use crate::plugin::{
    ApplyResult, Attribute, AttributePath, Block, Context, Diagnostic, Diagnostics, ImportResult,
    NestedBlock, Nesting, PlanRequest, PlanResponse, ReadResult, Resource, Schema, Shape, Type,
    Value,
};

/// How a resource's attributes and blocks differ from a plain camelCase rendering of its
/// schema. Every entry names an attribute or block by its dotted path of names from the
/// resource's top level, without list indexes: `promotion_template.steps.config`.
#[derive(Debug, Default)]
pub struct Rules {
    /// Attributes holding a JSON document as a string; Kargo stores the document itself.
    pub json: &'static [&'static str],
    /// Attributes and blocks never sent to Kargo nor read from it: removed fields kept only to
    /// explain their replacement, and those the resource converts itself.
    pub skip: &'static [&'static str],
    /// Attributes and blocks whose Kargo object holds their fields one level deeper, under
    /// this key (`promotion_template` is `promotionTemplate.spec`).
    pub wrap: &'static [(&'static str, &'static str)],
    /// Attributes left out of the object when they equal their default, because Kargo treats
    /// the absent field as that value rather than storing it.
    pub implied_default: &'static [&'static str],
    /// Objects whose unrecognised Kargo keys belong to this attribute or block (generic
    /// warehouse subscriptions are keyed by their type); used to place Kargo's errors.
    pub catch_all: &'static [(&'static str, &'static str)],
    /// A read-only view (the data sources): computed attributes are read from the object too,
    /// and absent lists read as empty lists, so that `length()` needs no null check.
    pub report: bool,
}

impl Rules {
    /// The rules of a read-only view whose names map onto Kargo's fields one to one.
    pub const REPORT: Rules = Rules {
        json: &[],
        skip: &[],
        wrap: &[],
        implied_default: &[],
        catch_all: &[],
        report: true,
    };

    fn is_json(&self, path: &str) -> bool {
        self.json.contains(&path)
    }
    fn is_skipped(&self, path: &str) -> bool {
        self.skip.contains(&path)
    }
    fn wrap_key(&self, path: &str) -> Option<&'static str> {
        self.wrap.iter().find(|(p, _)| *p == path).map(|(_, k)| *k)
    }
    fn implies_default(&self, path: &str) -> bool {
        self.implied_default.contains(&path)
    }
    fn catch_all_name(&self, path: &str) -> Option<&'static str> {
        self.catch_all
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, a)| *a)
    }
}

/// `parent.child` for rule paths.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// The Kargo (camelCase) key for a Terraform attribute name: `repo_url` → `repoURL`,
/// `insecure_skip_tls_verify` → `insecureSkipTLSVerify`, `last_freight_id` → `lastFreightID`.
pub fn kargo_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, word) in name.split('_').enumerate() {
        if i == 0 {
            out.push_str(word);
            continue;
        }
        match word {
            "url" => out.push_str("URL"),
            "tls" => out.push_str("TLS"),
            "id" => out.push_str("ID"),
            _ => {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(chars.as_str());
                }
            }
        }
    }
    out
}

/// Kargo's Go types drop empty strings (`omitempty`), so to Kargo an empty string is an unset
/// field, and Terraform's generated configuration (`plan -generate-config-out`) writes `null`
/// for one. Every optional string of `block`, at any depth, is therefore planned unchanged
/// when the configuration leaves it unset and Kargo holds an empty string
/// ([`Attribute::zero_is_unset`]): an adopted `value: ""` stays `""` with no change planned.
pub fn empty_strings_are_unset(mut block: Block) -> Block {
    fn attributes(attrs: &mut [Attribute]) {
        for a in attrs {
            match &mut a.ty {
                AttributeType::Primitive(Type::String)
                    if a.optional && !a.computed && a.default.is_none() =>
                {
                    *a = a.clone().zero_is_unset();
                }
                AttributeType::Nested(object) => attributes(&mut object.attributes),
                AttributeType::Primitive(_) => {}
            }
        }
    }
    fn blocks(block: &mut Block) {
        attributes(&mut block.attributes);
        for b in &mut block.blocks {
            blocks(&mut b.block);
        }
    }
    blocks(&mut block);
    block
}

/// A value that cannot be turned into the Kargo object, with the attribute it is in.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertError {
    pub path: AttributePath,
    pub message: String,
}

impl ConvertError {
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::error("Invalid value", self.message.clone()).at(self.path.clone())
    }
}

/// The Kargo fields for the object `value` of `shape`: camelCase keys, null attributes and
/// blocks not written left out, computed-only attributes never sent, JSON strings sent as
/// documents. `rule_path` is where `shape` sits (see [`Rules`]), `at` the same place as an
/// attribute path.
pub fn object_to_json(
    shape: Shape<'_>,
    value: &Value,
    rules: &Rules,
    rule_path: &str,
    at: &AttributePath,
) -> Result<Map<String, Json>, ConvertError> {
    let mut out = Map::new();
    for attr in shape.attributes {
        let path = child_path(rule_path, &attr.name);
        if attr.is_computed_only() || attr.write_only || rules.is_skipped(&path) {
            continue;
        }
        let v = value.get(&attr.name);
        if v.is_null() {
            continue;
        }
        if rules.implies_default(&path) && attr.default.as_ref().is_some_and(|d| values_equal(v, d))
        {
            continue;
        }
        let attr_at = at.join_attr(&attr.name);
        let j = if rules.is_json(&path) {
            json_document(v, &attr_at)?
        } else {
            match &attr.ty {
                AttributeType::Primitive(_) => v.to_json().ok_or_else(|| not_known(&attr_at))?,
                AttributeType::Nested(object) => {
                    nested_to_json(object.shape(), object.nesting, v, rules, &path, &attr_at)?
                }
            }
        };
        insert_field(&mut out, rules, &path, &attr.name, j);
    }
    for nb in shape.blocks {
        let path = child_path(rule_path, &nb.type_name);
        let v = value.get(&nb.type_name);
        if rules.is_skipped(&path) || is_unwritten(v) {
            continue;
        }
        let block_at = at.join_attr(&nb.type_name);
        let j = nested_to_json(nb.block.shape(), nb.nesting, v, rules, &path, &block_at)?;
        insert_field(&mut out, rules, &path, &nb.type_name, j);
    }
    Ok(out)
}

/// Adds the field for attribute or block `name` at `path`, wrapped as the rules say.
fn insert_field(out: &mut Map<String, Json>, rules: &Rules, path: &str, name: &str, j: Json) {
    let j = match rules.wrap_key(path) {
        Some(key) => json!({ key: j }),
        None => j,
    };
    out.insert(kargo_key(name), j);
}

/// Whether a block's value is no block at all: null, or an empty collection of blocks.
fn is_unwritten(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::List(x) | Value::Set(x) | Value::Tuple(x) => x.is_empty(),
        Value::Map(m) => m.is_empty(),
        _ => false,
    }
}

fn not_known(at: &AttributePath) -> ConvertError {
    ConvertError {
        path: at.clone(),
        message: format!("`{at}` is not known yet, so the object cannot be written."),
    }
}

/// The document a JSON string attribute holds.
fn json_document(v: &Value, at: &AttributePath) -> Result<Json, ConvertError> {
    let text = v.as_str().ok_or_else(|| not_known(at))?;
    serde_json::from_str(text).map_err(|e| ConvertError {
        path: at.clone(),
        message: format!("`{at}` is not valid JSON ({e}); write it with `jsonencode({{...}})`."),
    })
}

/// The Kargo value of a nested object or collection of objects (a nested attribute or a
/// block) of `shape`.
fn nested_to_json(
    shape: Shape<'_>,
    nesting: Nesting,
    v: &Value,
    rules: &Rules,
    path: &str,
    at: &AttributePath,
) -> Result<Json, ConvertError> {
    let element = |e: &Value, e_at: &AttributePath| -> Result<Json, ConvertError> {
        if e.is_unknown() {
            return Err(not_known(e_at));
        }
        object_to_json(shape, e, rules, path, e_at).map(Json::Object)
    };
    match nesting {
        Nesting::Single | Nesting::Group => element(v, at),
        Nesting::List | Nesting::Set => {
            if v.is_unknown() {
                return Err(not_known(at));
            }
            v.elements()
                .iter()
                .enumerate()
                .map(|(i, e)| element(e, &at.join_index(i)))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array)
        }
        Nesting::Map => {
            let entries = v.entries().ok_or_else(|| not_known(at))?;
            let mut out = Map::new();
            for (k, e) in entries {
                out.insert(k.clone(), element(e, &at.join_key(k))?);
            }
            Ok(Json::Object(out))
        }
    }
}

/// The Terraform object of `shape` for the Kargo fields `json` (`None` when absent). Values
/// equal in meaning to `prior` keep the prior spelling; absent fields read as the attribute's
/// default (Kargo applies it) or match a prior zero value (Go's `omitempty` drops those);
/// absent blocks are no blocks (null, or an empty list); computed-only and skipped attributes
/// are null for the caller, unless the rules are a [`Rules::REPORT`] view.
pub fn object_from_json(
    shape: Shape<'_>,
    json: Option<&Map<String, Json>>,
    prior: &Value,
    rules: &Rules,
    rule_path: &str,
) -> Value {
    let mut out = BTreeMap::new();
    for attr in shape.attributes {
        let path = child_path(rule_path, &attr.name);
        let hidden = (attr.is_computed_only() && !rules.report)
            || attr.write_only
            || rules.is_skipped(&path);
        let v = if hidden {
            Value::Null
        } else {
            let j = field(json, rules, &path, &attr.name);
            attribute_from_json(attr, j, prior.get(&attr.name), rules, &path)
        };
        out.insert(attr.name.clone(), v);
    }
    for nb in shape.blocks {
        let path = child_path(rule_path, &nb.type_name);
        let v = if rules.is_skipped(&path) {
            Value::Null
        } else {
            let j = field(json, rules, &path, &nb.type_name);
            let prior = prior.get(&nb.type_name);
            nested_from_json(nb.block.shape(), nb.nesting, j, prior, rules, &path)
        };
        let v = if v.is_null() { nb.absent_value() } else { v };
        out.insert(nb.type_name.clone(), v);
    }
    Value::Object(out)
}

/// The Kargo field of attribute or block `name` at `path` in `json`, unwrapped as the rules
/// say; `None` when absent or null.
fn field<'a>(
    json: Option<&'a Map<String, Json>>,
    rules: &Rules,
    path: &str,
    name: &str,
) -> Option<&'a Json> {
    let mut j = json.and_then(|o| o.get(&kargo_key(name)));
    if let Some(key) = rules.wrap_key(path) {
        j = j.and_then(|w| w.get(key));
    }
    j.filter(|j| !j.is_null())
}

fn absent(attr: &Attribute, prior: &Value, rules: &Rules) -> Value {
    if rules.report {
        return match &attr.ty {
            AttributeType::Primitive(Type::List(_)) => Value::List(Vec::new()),
            AttributeType::Nested(object) => match object.nesting {
                Nesting::List => Value::List(Vec::new()),
                Nesting::Set => Value::Set(Vec::new()),
                Nesting::Map => Value::Map(BTreeMap::new()),
                Nesting::Single | Nesting::Group => Value::Null,
            },
            AttributeType::Primitive(_) => Value::Null,
        };
    }
    if let Some(default) = &attr.default {
        return if !prior.is_null() && equivalent(attr, prior, default) {
            prior.clone()
        } else {
            default.clone()
        };
    }
    if prior.is_zero() {
        prior.clone()
    } else {
        Value::Null
    }
}

fn equivalent(attr: &Attribute, a: &Value, b: &Value) -> bool {
    values_equal(a, b)
        || attr
            .semantic_eq
            .is_some_and(|eq| a.is_wholly_known() && b.is_wholly_known() && eq(a, b))
}

fn attribute_from_json(
    attr: &Attribute,
    j: Option<&Json>,
    prior: &Value,
    rules: &Rules,
    path: &str,
) -> Value {
    let Some(j) = j else {
        return absent(attr, prior, rules);
    };
    let read = if rules.is_json(path) {
        match prior.as_str() {
            Some(p) if json_eq(&Value::string(p), &Value::String(j.to_string())) => {
                return prior.clone();
            }
            _ => Value::String(j.to_string()),
        }
    } else {
        match &attr.ty {
            AttributeType::Primitive(ty) => Value::from_json(j, ty),
            AttributeType::Nested(object) => {
                nested_from_json(object.shape(), object.nesting, Some(j), prior, rules, path)
            }
        }
    };
    if !prior.is_null() && equivalent(attr, &read, prior) {
        return prior.clone();
    }
    read
}

/// The Terraform value of a nested object or collection of objects of `shape` (a nested
/// attribute or a block) for the Kargo value `j`; null when absent. Elements are matched with
/// `prior`'s by index (lists) or key (maps).
fn nested_from_json(
    shape: Shape<'_>,
    nesting: Nesting,
    j: Option<&Json>,
    prior: &Value,
    rules: &Rules,
    path: &str,
) -> Value {
    let Some(j) = j else {
        return Value::Null;
    };
    let element = |e: &Json, p: &Value| match e.as_object() {
        Some(o) => object_from_json(shape, Some(o), p, rules, path),
        None => Value::Null,
    };
    match nesting {
        Nesting::Single | Nesting::Group => element(j, prior),
        Nesting::List | Nesting::Set => {
            let priors = prior.elements();
            let items: Vec<Value> = j
                .as_array()
                .map(|a| {
                    a.iter()
                        .enumerate()
                        .map(|(i, e)| element(e, priors.get(i).unwrap_or(&Value::Null)))
                        .collect()
                })
                .unwrap_or_default();
            if nesting == Nesting::Set {
                Value::Set(items)
            } else {
                Value::List(items)
            }
        }
        Nesting::Map => Value::Map(
            j.as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, e)| (k.clone(), element(e, prior.get(k))))
                        .collect()
                })
                .unwrap_or_default(),
        ),
    }
}

/// One step of a Kubernetes field path (`spec.requestedFreight[0].sources.stages`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldStep {
    Key(String),
    Index(usize),
}

/// Splits a Kubernetes field path into keys and indexes; `[key]` selectors become keys.
pub fn parse_field(field: &str) -> Vec<FieldStep> {
    let mut steps = Vec::new();
    let mut rest = field.trim().trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']').unwrap_or(inner.len());
            let selector = &inner[..end];
            steps.push(match selector.parse::<usize>() {
                Ok(i) => FieldStep::Index(i),
                Err(_) => FieldStep::Key(selector.trim_matches('"').to_string()),
            });
            rest = inner.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end > 0 {
                steps.push(FieldStep::Key(rest[..end].to_string()));
            }
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    steps
}

/// An attribute or a block of a [`Shape`].
#[derive(Clone, Copy)]
enum Member<'a> {
    Attribute(&'a Attribute),
    Block(&'a NestedBlock),
}

impl<'a> Member<'a> {
    fn named(shape: Shape<'a>, name: &str) -> Option<Self> {
        shape
            .attribute(name)
            .map(Member::Attribute)
            .or_else(|| shape.block(name).map(Member::Block))
    }
    fn with_kargo_key(shape: Shape<'a>, key: &str) -> Option<Self> {
        let attr = shape.attributes.iter().find(|a| kargo_key(&a.name) == key);
        let block = || shape.blocks.iter().find(|b| kargo_key(&b.type_name) == key);
        attr.map(Member::Attribute)
            .or_else(|| block().map(Member::Block))
    }
    fn name(self) -> &'a str {
        match self {
            Member::Attribute(a) => &a.name,
            Member::Block(b) => &b.type_name,
        }
    }
}

/// Maps the part of a Kargo field path below an object's fields onto the attribute path it
/// came from, as deep as the schema can follow it; `None` when not even the first key is an
/// attribute or block. `at` is where `shape` sits.
pub fn field_to_attribute_path(
    shape: Shape<'_>,
    steps: &[FieldStep],
    rules: &Rules,
    rule_path: &str,
    at: AttributePath,
) -> Option<AttributePath> {
    let found = |at: AttributePath| (!at.is_root()).then_some(at);
    let Some((FieldStep::Key(key), rest)) = steps.split_first() else {
        return found(at);
    };
    let member = Member::with_kargo_key(shape, key).or_else(|| {
        let name = rules.catch_all_name(rule_path)?;
        Member::named(shape, name)
    });
    let Some(member) = member else {
        return found(at);
    };
    let path = child_path(rule_path, member.name());
    let member_at = at.join_attr(member.name());
    let mut rest = rest;
    if let (Some(wrap), Some((FieldStep::Key(k), inner))) =
        (rules.wrap_key(&path), rest.split_first())
        && wrap == k
    {
        rest = inner;
    }
    match member {
        Member::Block(nb) => {
            nested_field_path(nb.block.shape(), nb.nesting, rest, rules, &path, member_at)
        }
        Member::Attribute(attr) => match (&attr.ty, rest.split_first()) {
            (AttributeType::Nested(object), _) => nested_field_path(
                object.shape(),
                object.nesting,
                rest,
                rules,
                &path,
                member_at,
            ),
            (
                AttributeType::Primitive(Type::List(_) | Type::Set(_)),
                Some((FieldStep::Index(i), _)),
            ) => Some(member_at.join_index(*i)),
            (AttributeType::Primitive(Type::Map(_)), Some((FieldStep::Key(k), _))) => {
                Some(member_at.join_key(k))
            }
            _ => Some(member_at),
        },
    }
}

fn nested_field_path(
    shape: Shape<'_>,
    nesting: Nesting,
    rest: &[FieldStep],
    rules: &Rules,
    path: &str,
    at: AttributePath,
) -> Option<AttributePath> {
    match (nesting, rest.split_first()) {
        (Nesting::Single | Nesting::Group, _) => {
            field_to_attribute_path(shape, rest, rules, path, at)
        }
        (Nesting::List | Nesting::Set, Some((FieldStep::Index(i), inner))) => {
            field_to_attribute_path(shape, inner, rules, path, at.join_index(*i))
        }
        (Nesting::Map, Some((FieldStep::Key(k), inner))) => {
            field_to_attribute_path(shape, inner, rules, path, at.join_key(k))
        }
        _ => Some(at),
    }
}

const CREATE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// One kind of pipeline object (Warehouse, Stage, PromotionTask, …) as a Terraform resource:
/// what differs between them. [`ObjectResource`] supplies everything else.
#[async_trait]
pub trait PipelineKind: Send + Sync + 'static {
    const TYPE_NAME: &'static str;
    /// The Kargo kind, as the client reads and writes it.
    type Object: WithSpec;
    const KIND: Kind = <Self::Object as Object>::KIND;
    /// Markdown for the docs: what the resource is and how it behaves.
    fn description() -> String;
    /// The attributes and blocks describing `spec` (and computed status), which follow
    /// `name`, `labels` and `annotations` in the schema.
    fn spec() -> Block;
    fn rules() -> &'static Rules;
    /// Checks across attributes and list elements; `config` may contain unknown values.
    fn validate(_config: &Value, _diags: &mut Diagnostics) {}
    /// Checks that involve the other resources of the configuration (recorded in `pipeline`
    /// as Terraform validates them), and recording this one's facts for them.
    fn validate_in_pipeline(_config: &Value, _pipeline: &Pipeline, _diags: &mut Diagnostics) {}
    /// The object's `spec` for a planned state.
    fn spec_to_json(spec: &Block, state: &Value) -> Result<Json, ConvertError> {
        object_to_json(
            spec.shape(),
            state,
            Self::rules(),
            "",
            &AttributePath::root(),
        )
        .map(Json::Object)
    }
    /// The attributes and blocks for a live `spec`, keeping `prior`'s spelling where
    /// equivalent.
    fn spec_from_json(spec: &Block, live: Option<&Map<String, Json>>, prior: &Value) -> Value {
        object_from_json(spec.shape(), live, prior, Self::rules(), "")
    }
    /// Computed attributes taken from the live object (usually its status).
    async fn status(
        _client: &KargoClient,
        _live: &Self::Object,
        _prior: &Value,
    ) -> Vec<(&'static str, Value)> {
        Vec::new()
    }
}

/// A Kargo object managed whole by server-side apply of its spec: `project` (for namespaced
/// kinds) and `name` force replacement, everything else updates in place.
pub struct ObjectResource<T> {
    data: ProviderData,
    schema: Schema,
    spec: Block,
    kind: PhantomData<T>,
}

/// The object an identity-bearing state refers to.
struct Target {
    namespace: Option<String>,
    name: String,
}

impl Target {
    fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl<T: PipelineKind> ObjectResource<T> {
    pub fn new(data: ProviderData) -> Self {
        let spec = empty_strings_are_unset(T::spec());
        let schema = Schema::new(common::SCHEMA_VERSION, Self::block(&spec));
        Self {
            data,
            schema,
            spec,
            kind: PhantomData,
        }
    }

    fn kind_name() -> &'static str {
        T::KIND.kind()
    }

    fn block(spec: &Block) -> Block {
        let kind = Self::kind_name();
        let namespaced = T::KIND.namespaced();
        let mut all = vec![
            Attribute::string("id")
                .computed()
                .use_state_for_unknown()
                .description(if namespaced {
                    "`<project>/<name>`, the identifier used to import the resource."
                } else {
                    "The name, the identifier used to import the resource."
                }),
        ];
        if namespaced {
            all.push(
                Attribute::string("project")
                    .required()
                    .requires_replace()
                    .validate(common::dns_label())
                    .description(format!(
                        "Name of the Kargo project (and so the namespace) the {kind} belongs to. \
                         If the project is created in the same apply, the {kind} waits for its \
                         namespace (up to `timeouts.create`). Changing it replaces the {kind}."
                    )),
            );
        }
        all.push(
            Attribute::string("name")
                .required()
                .requires_replace()
                .validate(common::dns_subdomain())
                .description(format!(
                    "Name of the {kind}: a DNS-1123 subdomain (lower case letters, digits, `-` and \
                     `.`, at most 253 characters). Changing it replaces the {kind}."
                )),
        );
        all.push(Attribute::string_map("labels").optional().description(format!(
            "Labels on the {kind}. Only the keys set here are managed; labels Kargo or others add \
             (such as `kargo.akuity.io/shard`) are left alone and never show as changes."
        )));
        all.push(Attribute::string_map("annotations").optional().description(format!(
            "Annotations on the {kind}. Only the keys set here are managed; annotations Kargo or \
             others add are left alone and never show as changes."
        )));
        all.extend(spec.attributes.iter().cloned());
        let mut block = Block::new(all).description(T::description());
        block.blocks = spec.blocks.clone();
        block.validators = spec.validators.clone();
        block.block(object_timeouts_block("5m", "5m"))
    }

    fn target(state: &Value) -> Option<Target> {
        let name = state.get("name").as_str()?.to_string();
        let namespace = if T::KIND.namespaced() {
            Some(state.get("project").as_str()?.to_string())
        } else {
            None
        };
        Some(Target { namespace, name })
    }

    fn null_state(&self) -> Value {
        self.schema.block.shape().empty_value()
    }

    /// The object to server-side apply for a planned state (identity fields are the client's).
    pub(super) fn body(&self, state: &Value) -> Result<Json, ConvertError> {
        let mut metadata = Map::new();
        for key in ["labels", "annotations"] {
            if let Some(m) = string_map_json(state.get(key)).filter(|m| !m.is_empty()) {
                metadata.insert(key.into(), Json::Object(m));
            }
        }
        let spec = T::spec_to_json(&self.spec, state)?;
        Ok(json!({ "metadata": metadata, "spec": spec }))
    }

    /// The attribute path for a field Kargo named in an error, e.g.
    /// `spec.requestedFreight[0].sources.stages` → `requested_freight[0].sources.stages`.
    pub fn attribute_for_field(&self, field: &str) -> Option<AttributePath> {
        let steps = parse_field(field);
        match steps.split_first() {
            Some((FieldStep::Key(k), rest)) if k == "spec" => field_to_attribute_path(
                self.spec.shape(),
                rest,
                T::rules(),
                "",
                AttributePath::root(),
            ),
            Some((FieldStep::Key(k), rest)) if k == "metadata" => match rest {
                [FieldStep::Key(f), ..] if f == "name" => Some(AttributePath::attr("name")),
                [FieldStep::Key(f), ..] if f == "namespace" && T::KIND.namespaced() => {
                    Some(AttributePath::attr("project"))
                }
                [FieldStep::Key(f), FieldStep::Key(key), ..]
                    if f == "labels" || f == "annotations" =>
                {
                    Some(AttributePath::attr(f).join_key(key))
                }
                [FieldStep::Key(f), ..] if f == "labels" || f == "annotations" => {
                    Some(AttributePath::attr(f))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// A Kargo error as a diagnostic on the attribute it names, when it names one.
    pub(super) fn error(&self, action: &str, err: &KargoError) -> Diagnostics {
        common::diagnostics(action, err, &|f: &str| self.attribute_for_field(f))
    }

    /// The state after a successful write: what was planned, with the values only the
    /// cluster knows (id, status) filled in. Known planned values are never contradicted.
    /// `before` is the state before the write (the plan when creating), whose computed values
    /// spare lookups when unchanged.
    pub(super) async fn state_after_apply(
        &self,
        client: &KargoClient,
        planned: &Value,
        before: &Value,
        live: &T::Object,
    ) -> Value {
        let mut state = planned.clone();
        if state.get("id").is_unknown()
            && let Some(target) = Self::target(planned)
        {
            state.set("id", Value::string(target.id()));
        }
        common::fill_unknown(&mut state, T::status(client, live, before).await);
        common::null_unknown_computed(&mut state, &self.schema.block.attributes);
        state
    }

    /// The state for a live object: spec attributes keep `prior`'s spelling where Kargo's is
    /// equivalent, labels and annotations only the managed keys (all the user's on import).
    pub(super) async fn state_from_live(
        &self,
        client: &KargoClient,
        prior: &Value,
        live: &T::Object,
        importing: bool,
    ) -> Value {
        let spec = match serde_json::to_value(live.spec()) {
            Ok(Json::Object(spec)) => Some(spec),
            _ => None,
        };
        let mut state = T::spec_from_json(&self.spec, spec.as_ref(), prior);
        let name = live.name();
        let namespace = live.namespace();
        let target = Target {
            namespace: namespace
                .map(str::to_string)
                .filter(|_| T::KIND.namespaced()),
            name: name.to_string(),
        };
        state.set("id", Value::string(target.id()));
        if let Some(ns) = &target.namespace {
            state.set("project", Value::string(ns));
        }
        state.set("name", Value::string(name));
        let meta = live.metadata();
        state.set(
            "labels",
            managed_map(meta.labels.as_ref(), prior.get("labels"), importing),
        );
        state.set(
            "annotations",
            managed_map(
                meta.annotations.as_ref(),
                prior.get("annotations"),
                importing,
            ),
        );
        state.set(
            "timeouts",
            if importing {
                Value::Null
            } else {
                prior.get("timeouts").clone()
            },
        );
        for (name, v) in T::status(client, live, prior).await {
            state.set(name, v);
        }
        state
    }

    /// The update as a server-side dry run (`dryRun=All`), so that what the cluster would
    /// refuse shows in the plan on its attribute: admission webhook and validation rejections,
    /// and fields owned by another applier. When the cluster cannot be asked, the plan says
    /// nothing more (the refresh already warned).
    async fn dry_run_update(&self, planned: &Value) -> Diagnostics {
        let (Some(target), Ok(body), Ok(client)) = (
            Self::target(planned),
            self.body(planned),
            self.data.client(),
        ) else {
            return Diagnostics::default();
        };
        let Ok(object) = decode::<T::Object>(body) else {
            return Diagnostics::default();
        };
        let ns = target.namespace.as_deref();
        let result = client.dry_run_apply(ns, &target.name, &object).await;
        common::dry_run_findings(result, |e| {
            let kind = Self::kind_name();
            self.error(&format!("update the {kind} (server-side dry run)"), e)
        })
    }

    fn client(&self) -> Result<std::sync::Arc<KargoClient>, Diagnostics> {
        self.data
            .client()
            .map_err(|e| common::diagnostics("connect to the cluster", &e, &common::no_field))
    }
}

/// A namespace Kargo accepts objects in: it exists, is not being deleted and is labelled
/// as a project namespace.
fn is_project_namespace(namespace: Option<&Namespace>) -> bool {
    namespace.is_some_and(|ns| {
        !ns.is_terminating()
            && ns
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(PROJECT_LABEL))
                .map(String::as_str)
                == Some("true")
    })
}

/// Whether a write failed because the project's namespace does not exist (yet) or is not
/// (yet) a project namespace: the cases that resolve once a project created in the same
/// apply is ready. Server-side apply creates missing objects, so a 404 is the namespace's.
fn project_namespace_pending(err: &KargoError) -> bool {
    match err {
        KargoError::NotFound { .. } => true,
        KargoError::Invalid { causes, .. } => {
            causes.iter().any(|c| c.field == "metadata.namespace")
        }
        _ => false,
    }
}

async fn pause(duration: Duration, cancel: &CancellationToken) -> Result<(), KargoError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(KargoError::Cancelled),
        _ = tokio::time::sleep(duration) => Ok(()),
    }
}

/// Server-side applies `body`, riding out what resolves by itself within `budget`: Kargo still
/// starting, the project namespace not there yet, and (when creating) an old object of the
/// same name still being deleted.
async fn apply_object<K: Object>(
    client: &KargoClient,
    target: &Target,
    body: &Json,
    budget: Duration,
    creating: bool,
    cancel: &CancellationToken,
) -> Result<K, KargoError> {
    let (namespace, name) = (target.namespace.as_deref(), target.name.as_str());
    let deadline = Instant::now() + budget;
    let what = K::KIND.describe(namespace, name);
    let object: K = decode(body.clone())?;
    let mut wait = Duration::from_millis(500);
    loop {
        let result = client
            .retry_while_kargo_starting(&what, cancel, || client.apply(namespace, name, &object))
            .await;
        let remaining = deadline.saturating_duration_since(Instant::now());
        match (result, namespace) {
            (Ok(live), _) if creating && live.is_terminating() => {
                tracing::info!(object = %what, "an earlier object of this name is still being deleted; waiting for it to go");
                client
                    .wait_deleted::<K>(namespace, name, remaining, cancel)
                    .await?;
            }
            (Err(err), Some(ns)) if project_namespace_pending(&err) => {
                if remaining.is_zero() {
                    return Err(err);
                }
                tracing::info!(object = %what, reason = %err, "waiting for the project namespace");
                let waiting_for = format!(
                    "namespace \"{ns}\" to become a Kargo project namespace (declare the kargo_project \
                     and refer to it, e.g. `project = kargo_project.example.name`, or raise timeouts.create); \
                     the last attempt failed with: {err}"
                );
                client
                    .wait_until(
                        None,
                        ns,
                        &waiting_for,
                        remaining,
                        cancel,
                        is_project_namespace,
                    )
                    .await?;
                // Kargo may need a moment after the label appears; never spin on a refusal.
                let left = deadline.saturating_duration_since(Instant::now());
                pause(wait.min(left), cancel).await?;
                wait = (wait * 2).min(MAX_RETRY_PAUSE);
            }
            (result, _) => return result,
        }
    }
}

#[async_trait]
impl<T: PipelineKind> Resource for ObjectResource<T> {
    fn type_name(&self) -> &'static str {
        T::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn upgrade_state(&self, version: i64, state: &mut Json) -> Diagnostics {
        common::upgrade_state(&self.schema, version, state)
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::default();
        T::validate(config, &mut diags);
        T::validate_in_pipeline(config, self.data.pipeline(), &mut diags);
        diags
    }

    async fn plan(&self, _ctx: &Context, req: PlanRequest) -> PlanResponse {
        let mut resp = plan_from_schema(&self.schema, &req);
        // The id follows from the identity, so it is known at plan even for a replacement.
        if let Some(target) = Self::target(&resp.planned_state) {
            resp.planned_state.set("id", Value::string(target.id()));
        }
        let updates = !req.prior_state.is_null()
            && !resp.planned_state.is_null()
            && resp.requires_replace.is_empty()
            && req.config.is_wholly_known()
            && !values_equal(&req.prior_state, &resp.planned_state);
        if updates {
            let diags = self.dry_run_update(&resp.planned_state).await;
            resp.diagnostics.extend(diags);
        }
        resp
    }

    async fn create(&self, ctx: &Context, planned: Value, _config: Value) -> ApplyResult {
        let Some(target) = Self::target(&planned) else {
            return fail(
                Diagnostic::error(
                    "Missing identity",
                    "`project` and `name` must be known to create the object.",
                )
                .into(),
            );
        };
        let body = match self.body(&planned) {
            Ok(b) => b,
            Err(e) => return fail(e.diagnostic().into()),
        };
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return fail(d),
        };
        let budget = timeout(&planned, "create", CREATE_TIMEOUT);
        let kind = Self::kind_name();
        match apply_object::<T::Object>(&client, &target, &body, budget, true, &ctx.cancel).await {
            Ok(live) => ApplyResult {
                new_state: self
                    .state_after_apply(&client, &planned, &planned, &live)
                    .await,
                private: Vec::new(),
                diagnostics: Diagnostics::default(),
            },
            Err(e) => fail(self.error(&format!("create the {kind}"), &e)),
        }
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: Value,
        planned: Value,
        _config: Value,
        private: Vec<u8>,
    ) -> ApplyResult {
        let keep = |diagnostics: Diagnostics| ApplyResult {
            new_state: prior.clone(),
            private: private.clone(),
            diagnostics,
        };
        let Some(target) = Self::target(&planned) else {
            return keep(
                Diagnostic::error(
                    "Missing identity",
                    "`project` and `name` must be known to update the object.",
                )
                .into(),
            );
        };
        let body = match self.body(&planned) {
            Ok(b) => b,
            Err(e) => return keep(e.diagnostic().into()),
        };
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return keep(d),
        };
        let budget = timeout(&planned, "update", CREATE_TIMEOUT);
        let kind = Self::kind_name();
        let what = format!(
            "the update of {}",
            T::KIND.describe(target.namespace.as_deref(), &target.name)
        );
        let write = apply_object::<T::Object>(&client, &target, &body, budget, false, &ctx.cancel);
        match common::within(budget, &what, write).await {
            Ok(live) => ApplyResult {
                new_state: self
                    .state_after_apply(&client, &planned, &prior, &live)
                    .await,
                private: Vec::new(),
                diagnostics: Diagnostics::default(),
            },
            Err(e) => keep(self.error(&format!("update the {kind}"), &e)),
        }
    }

    async fn delete(&self, ctx: &Context, prior: Value, _private: Vec<u8>) -> Diagnostics {
        let Some(target) = Self::target(&prior) else {
            return Diagnostics::default();
        };
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return d,
        };
        let kind = Self::kind_name();
        let ns = target.namespace.as_deref();
        match client.delete::<T::Object>(ns, &target.name).await {
            Ok(false) => return Diagnostics::default(),
            Ok(true) => {}
            Err(e) => return self.error(&format!("delete the {kind}"), &e),
        }
        let budget = timeout(&prior, "delete", DELETE_TIMEOUT);
        match client.wait_deleted::<T::Object>(ns, &target.name, budget, &ctx.cancel).await {
            Ok(()) => Diagnostics::default(),
            Err(KargoError::Cancelled) => Diagnostic::error(
                format!("Stopped waiting for the {kind} to be deleted"),
                format!(
                    "Deletion of {} was requested and continues in the cluster. Run destroy again to confirm it is gone.",
                    T::KIND.describe(ns, &target.name)
                ),
            )
            .into(),
            Err(e @ KargoError::Timeout { .. }) => Diagnostic::error(
                format!("The {kind} was not deleted in time"),
                format!(
                    "{e}. Kargo's controller removes its finalizer (`kargo.akuity.io/finalizer`) once it has cleaned up; \
                     check that the Kargo controller is running, then run destroy again or raise `timeouts.delete`."
                ),
            )
            .into(),
            Err(e) => self.error(&format!("delete the {kind}"), &e),
        }
    }

    async fn read(&self, _ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult {
        let importing = private == IMPORTING;
        let kind = Self::kind_name();
        let Some(target) = Self::target(&state) else {
            return ReadResult {
                new_state: Value::Null,
                private: Vec::new(),
                diagnostics: Diagnostics::default(),
            };
        };
        let ns = target.namespace.as_deref();
        let what = T::KIND.describe(ns, &target.name);
        let map = |f: &str| self.attribute_for_field(f);
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => {
                return common::refresh_failed(kind, &what, &e, state, private, importing, &map);
            }
        };
        match client.get::<T::Object>(ns, &target.name).await {
            Ok(Some(live)) if !live.is_terminating() => ReadResult {
                new_state: self
                    .state_from_live(&client, &state, &live, importing)
                    .await,
                private: Vec::new(),
                diagnostics: Diagnostics::default(),
            },
            Ok(_) if importing => ReadResult {
                new_state: Value::Null,
                private: Vec::new(),
                diagnostics: Diagnostic::error(
                    format!("Cannot import the {kind}"),
                    format!(
                        "{} does not exist (or is being deleted).",
                        T::KIND.describe(ns, &target.name)
                    ),
                )
                .into(),
            },
            // Gone, or on its way out: Terraform plans to create it again.
            Ok(_) => ReadResult {
                new_state: Value::Null,
                private: Vec::new(),
                diagnostics: Diagnostics::default(),
            },
            Err(e) => common::refresh_failed(kind, &what, &e, state, private, importing, &map),
        }
    }

    async fn import(&self, _ctx: &Context, id: &str) -> ImportResult {
        let kind = Self::kind_name();
        let invalid = |detail: String| ImportResult {
            diagnostics: Diagnostic::error("Invalid import ID", detail).into(),
            ..ImportResult::default()
        };
        let (namespace, name) = if T::KIND.namespaced() {
            match id.split_once('/') {
                Some((project, name)) => (Some(project), name),
                None => {
                    return invalid(format!(
                        "Import a {kind} as `<project>/<name>`; got {id:?}."
                    ));
                }
            }
        } else {
            (None, id)
        };
        if let Some(project) = namespace
            && let Some(problem) = common::dns_label_problem(project)
        {
            return invalid(format!("The project {project:?} in {id:?} {problem}."));
        }
        if let Some(problem) = common::dns_subdomain_problem(name) {
            return invalid(format!("The {kind} name {name:?} in {id:?} {problem}."));
        }
        let mut state = self.null_state();
        if let Some(project) = namespace {
            state.set("project", Value::string(project));
        }
        state.set("name", Value::string(name));
        state.set("id", Value::string(id));
        ImportResult {
            state,
            private: IMPORTING.to_vec(),
            diagnostics: Diagnostics::default(),
        }
    }
}

/// Helpers for the resources' tests: the real-world fixtures, Kargo's server-side defaults
/// (an independent model of what Kargo stores) and the plan/apply/refresh cycle.
#[cfg(test)]
pub(super) mod test_support {
    use std::sync::Arc;

    use serde::Deserialize as _;
    use serde_json::{Value as Json, json};

    use super::{ObjectResource, PipelineKind};
    use crate::config::ProviderData;
    use crate::duration::{format_go_duration, parse_go_duration};
    use crate::kargo::{ClientOptions, KargoClient};
    use crate::plugin::diagnostics::Severity;
    use crate::plugin::validate::validate_config;
    use crate::plugin::{Context, Diagnostics, PlanRequest, PlanResponse, Resource, Value};

    /// Whether `../shared` (Kargo's real-world manifests) sits beside the repository, as it
    /// always does in CI. Without it the fixture comparisons cannot run: they say SKIPPED,
    /// and fail when `CI` is set.
    pub fn fixtures_present() -> bool {
        kargo_sandbox::reference::for_test("fixtures/real-world").is_some()
    }

    /// The object of `kind` named `name` in a file of `../shared/fixtures/real-world`; call
    /// only after [`fixtures_present`].
    pub fn fixture(file: &str, kind: &str, name: &str) -> Json {
        let path = kargo_sandbox::reference::shared_dir()
            .expect("fixtures_present() was checked first")
            .join("fixtures/real-world")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the real-world fixture {} cannot be read ({e}); these tests compare the \
                 provider's output with Kargo manifests kept in ../shared next to the repository",
                path.display()
            )
        });
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object = Json::deserialize(doc).unwrap();
            if object["kind"] == kind && object["metadata"]["name"] == name {
                return object;
            }
        }
        panic!("{file} has no {kind} named {name:?}");
    }

    fn respell_duration(v: &mut Json) {
        if let Some(d) = v.as_str().and_then(parse_go_duration) {
            *v = Json::String(format_go_duration(d));
        }
    }

    /// What Kargo v1.11 stores for `spec`: the CRD's and webhooks' defaults filled in and
    /// durations re-spelled by Go's `metav1.Duration`.
    pub fn with_kargo_defaults(kind: &str, spec: &Json) -> Json {
        let mut spec = spec.clone();
        let default = |o: &mut Json, key: &str, v: Json| {
            if o.get(key).is_none()
                && let Some(map) = o.as_object_mut()
            {
                map.insert(key.to_string(), v);
            }
        };
        match kind {
            "Warehouse" => {
                default(&mut spec, "interval", json!("5m0s"));
                respell_duration(&mut spec["interval"]);
                default(&mut spec, "freightCreationPolicy", json!("Automatic"));
                for sub in spec["subscriptions"].as_array_mut().into_iter().flatten() {
                    let Some((key, inner)) = sub.as_object_mut().and_then(|o| o.iter_mut().next())
                    else {
                        continue;
                    };
                    match key.as_str() {
                        "image" => {
                            default(inner, "imageSelectionStrategy", json!("SemVer"));
                            default(inner, "strictSemvers", json!(true));
                        }
                        "git" => {
                            default(inner, "commitSelectionStrategy", json!("NewestFromBranch"));
                            default(inner, "strictSemvers", json!(true));
                        }
                        _ => {}
                    }
                    default(inner, "discoveryLimit", json!(20));
                }
            }
            "Stage" => {
                for request in spec["requestedFreight"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if request["sources"].get("requiredSoakTime").is_some() {
                        respell_duration(&mut request["sources"]["requiredSoakTime"]);
                    }
                }
                let steps = spec.pointer_mut("/promotionTemplate/spec/steps");
                for step in steps.and_then(Json::as_array_mut).into_iter().flatten() {
                    if step.pointer("/retry/timeout").is_some() {
                        respell_duration(&mut step["retry"]["timeout"]);
                    }
                }
            }
            _ => {}
        }
        spec
    }

    /// A client that is never reached: building one does not contact the cluster, and
    /// requests fail at once.
    pub fn offline_client() -> Arc<KargoClient> {
        let url = "http://127.0.0.1:9".parse().unwrap();
        Arc::new(
            KargoClient::from_config(kube::Config::new(url), ClientOptions::default()).unwrap(),
        )
    }

    pub fn resource<T: PipelineKind>() -> ObjectResource<T> {
        ObjectResource::new(ProviderData::default())
    }

    /// A configuration written as JSON in HCL's shape (what the user writes), typed by the schema.
    /// A configuration as Terraform sends it: blocks not written are empty lists.
    pub fn config<T: PipelineKind>(r: &ObjectResource<T>, mut j: Json) -> Value {
        let block = r.schema().block;
        block.shape().fill_absent_blocks(&mut j);
        Value::from_json(&j, &block.implied_type())
    }

    pub async fn plan<T: PipelineKind>(
        r: &ObjectResource<T>,
        config: &Value,
        prior: &Value,
    ) -> PlanResponse {
        let req = PlanRequest {
            prior_state: prior.clone(),
            proposed_new_state: config.clone(),
            config: config.clone(),
            prior_private: Vec::new(),
        };
        r.plan(&Context::default(), req).await
    }

    /// All validation Terraform runs on a configuration: the schema's rules, then the resource's.
    pub fn validate<T: PipelineKind>(r: &ObjectResource<T>, config: &Value) -> Diagnostics {
        let mut diags = validate_config(&r.schema().block, config);
        diags.extend(r.validate(config));
        diags
    }

    /// `(path, summary, detail)` of each error.
    pub fn errors(diags: &Diagnostics) -> Vec<(String, String, String)> {
        diags
            .0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                (
                    d.attribute
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    d.summary.clone(),
                    d.detail.clone(),
                )
            })
            .collect()
    }

    /// The object Kargo would hold after applying `body` as `namespace/name`: Kargo's defaults,
    /// plus labels, annotations and status of its own.
    pub fn stored(
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        body: &Json,
        status: Json,
    ) -> Json {
        let mut metadata = body["metadata"].clone();
        metadata["name"] = json!(name);
        if let Some(ns) = namespace {
            metadata["namespace"] = json!(ns);
        }
        metadata["uid"] = json!("0b6f3c1e-5d2a-4f7e-9c1a-2b3c4d5e6f70");
        metadata["resourceVersion"] = json!("4711");
        let labels = metadata
            .as_object_mut()
            .unwrap()
            .entry("labels")
            .or_insert_with(|| json!({}));
        labels["kargo.akuity.io/shard"] = json!("");
        json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": kind,
            "metadata": metadata,
            "spec": with_kargo_defaults(kind, &body["spec"]),
            "status": status,
        })
    }

    /// The lifecycle a user sees, without a cluster: plan a create, apply (Kargo stores `live`),
    /// refresh, plan again — which must be empty — and import, whose plan must be empty too.
    /// Returns the state after the refresh.
    pub async fn assert_no_drift<T: PipelineKind>(
        r: &ObjectResource<T>,
        config: &Value,
        live: &Json,
        import_id: &str,
    ) -> Value {
        let live: &T::Object = &crate::kargo::decode(live.clone()).unwrap();
        let client = offline_client();
        let planned = plan(r, config, &Value::Null).await.planned_state;
        let state = r.state_after_apply(&client, &planned, &planned, live).await;
        assert!(
            state.is_wholly_known(),
            "unknown values left after apply: {state:?}"
        );
        let refreshed = r.state_from_live(&client, &state, live, false).await;
        assert_eq!(
            refreshed, state,
            "refresh right after apply changed the state"
        );
        let again = plan(r, config, &refreshed).await;
        assert_eq!(
            again.planned_state, refreshed,
            "the plan after apply is not empty"
        );
        assert!(
            again.requires_replace.is_empty(),
            "{:?}",
            again.requires_replace
        );

        let imported = r.import(&Context::default(), import_id).await;
        assert!(
            imported.diagnostics.is_empty(),
            "{:?}",
            imported.diagnostics
        );
        let read = r
            .state_from_live(&client, &imported.state, live, true)
            .await;
        let after_import = plan(r, config, &read).await;
        assert_eq!(
            after_import.planned_state, read,
            "the plan after import is not empty"
        );
        assert!(after_import.requires_replace.is_empty());
        refreshed
    }

    /// `serde_json::to_string`, as Terraform's `jsonencode` writes a document.
    pub fn jsonencode(j: Json) -> Json {
        Json::String(j.to_string())
    }

    pub fn s(v: &str) -> Value {
        Value::string(v)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_support::*;
    use super::*;
    use crate::duration::duration_eq;
    use crate::plugin::NestedObject;

    #[test]
    fn snake_case_names_become_kargo_keys() {
        for (tf, kargo) in [
            ("requested_freight", "requestedFreight"),
            ("repo_url", "repoURL"),
            ("insecure_skip_tls_verify", "insecureSkipTLSVerify"),
            ("last_freight_id", "lastFreightID"),
            ("as", "as"),
            ("if", "if"),
            ("allow_tags_regexes", "allowTagsRegexes"),
            ("id", "id"),
        ] {
            assert_eq!(kargo_key(tf), kargo);
        }
    }

    #[test]
    fn field_paths_split_into_keys_and_indexes() {
        use FieldStep::{Index, Key};
        let k = |s: &str| Key(s.to_string());
        assert_eq!(
            parse_field("spec.requestedFreight[0].sources.stages"),
            vec![
                k("spec"),
                k("requestedFreight"),
                Index(0),
                k("sources"),
                k("stages")
            ]
        );
        assert_eq!(
            parse_field(".metadata.labels[app.kubernetes.io/name]"),
            vec![k("metadata"), k("labels"), k("app.kubernetes.io/name")]
        );
        assert_eq!(
            parse_field("spec.steps[12]"),
            vec![k("spec"), k("steps"), Index(12)]
        );
        assert_eq!(parse_field(""), Vec::<FieldStep>::new());
    }

    static TEST_RULES: Rules = Rules {
        json: &["template.steps.config"],
        skip: &["legacy"],
        wrap: &[("template", "spec")],
        implied_default: &["template.steps.kind"],
        catch_all: &[],
        report: false,
    };

    /// Attributes, a single block holding a list block, and a computed nested attribute.
    fn test_block() -> Block {
        Block::new(vec![
            Attribute::string("interval")
                .default(s("5m0s"))
                .semantic_eq(duration_eq),
            Attribute::string("repo_url").optional(),
            Attribute::bool("direct").optional(),
            Attribute::number("limit").default(Value::int(20)),
            Attribute::string_list("stages").optional(),
            Attribute::string("legacy").optional(),
            Attribute::string("status").computed(),
            Attribute::nested(
                "history",
                NestedObject::list(vec![Attribute::string("id").computed()]),
            )
            .computed(),
        ])
        .block(NestedBlock::single(
            "template",
            Block::default().block(NestedBlock::list(
                "steps",
                Block::new(vec![
                    Attribute::string("uses").optional(),
                    Attribute::string("kind").default(s("PromotionTask")),
                    Attribute::string("config").optional().semantic_eq(json_eq),
                ]),
            )),
        ))
        .block(NestedBlock::list(
            "args",
            Block::new(vec![Attribute::string("name").optional()]),
        ))
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::object(pairs.iter().cloned())
    }

    fn to_json(state: &Value) -> Result<Map<String, Json>, ConvertError> {
        object_to_json(
            test_block().shape(),
            state,
            &TEST_RULES,
            "",
            &AttributePath::root(),
        )
    }

    fn from_json(live: &Json, prior: &Value) -> Value {
        object_from_json(
            test_block().shape(),
            live.as_object(),
            prior,
            &TEST_RULES,
            "",
        )
    }

    #[test]
    fn values_convert_to_kargo_fields_by_the_rules() {
        let state = obj(&[
            ("interval", s("10m")),
            ("repo_url", s("https://example.com/repo.git")),
            ("direct", Value::Bool(false)),
            ("limit", Value::int(5)),
            ("stages", Value::List(vec![s("dev")])),
            ("legacy", s("never sent")),
            ("status", s("computed, never sent")),
            (
                "template",
                obj(&[(
                    "steps",
                    Value::List(vec![
                        obj(&[
                            ("uses", s("git-clone")),
                            ("kind", s("PromotionTask")),
                            ("config", s(r#"{"repoURL":"${{ vars.repo }}","n":1}"#)),
                        ]),
                        obj(&[
                            ("uses", Value::Null),
                            ("kind", s("ClusterPromotionTask")),
                            ("config", Value::Null),
                        ]),
                    ]),
                )]),
            ),
            // No `args` block: no field.
            ("args", Value::List(vec![])),
        ]);
        assert_eq!(
            Json::Object(to_json(&state).unwrap()),
            json!({
                "interval": "10m",
                "repoURL": "https://example.com/repo.git",
                "direct": false,
                "limit": 5,
                "stages": ["dev"],
                "template": {"spec": {"steps": [
                    {"uses": "git-clone", "config": {"repoURL": "${{ vars.repo }}", "n": 1}},
                    {"kind": "ClusterPromotionTask"},
                ]}},
            })
        );
        // A single block with no list block inside is an empty object; an empty list
        // attribute is sent as written.
        let state = obj(&[
            ("stages", Value::List(vec![])),
            ("template", obj(&[("steps", Value::List(vec![]))])),
            ("args", Value::List(vec![obj(&[("name", s(""))])])),
        ]);
        assert_eq!(
            Json::Object(to_json(&state).unwrap()),
            json!({"stages": [], "template": {"spec": {}}, "args": [{"name": ""}]})
        );
    }

    #[test]
    fn invalid_json_and_unknown_values_are_reported_on_their_attribute() {
        let state = obj(&[(
            "template",
            obj(&[("steps", Value::List(vec![obj(&[("config", s("{nope"))])]))]),
        )]);
        let err = to_json(&state).unwrap_err();
        assert_eq!(err.path.to_string(), "template.steps[0].config");
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
        let err = to_json(&obj(&[("repo_url", Value::Unknown)])).unwrap_err();
        assert_eq!(err.path.to_string(), "repo_url");
        let err = to_json(&obj(&[("args", Value::Unknown)])).unwrap_err();
        assert_eq!(
            err.path.to_string(),
            "args",
            "blocks from an unknown `dynamic` list"
        );
    }

    #[test]
    fn reading_keeps_equivalent_prior_values_and_fills_defaults() {
        let prior = obj(&[
            ("interval", s("10m")),
            ("direct", Value::Bool(false)),
            ("stages", Value::List(vec![])),
            (
                "template",
                obj(&[(
                    "steps",
                    Value::List(vec![obj(&[
                        ("uses", s("git-clone")),
                        ("kind", s("PromotionTask")),
                        ("config", s(r#"{"n": 1, "repoURL": "${{ vars.repo }}"}"#)),
                    ])]),
                )]),
            ),
        ]);
        let live = json!({
            "interval": "10m0s",
            "repoURL": "https://example.com/repo.git",
            "status": "ignored: computed attributes are filled by the resource",
            "history": [{"id": "ignored too"}],
            "legacy": "ignored: skipped",
            "template": {"spec": {"steps": [
                {"uses": "git-clone", "config": {"repoURL": "${{ vars.repo }}", "n": 1.0}},
                {"kind": "ClusterPromotionTask", "config": {"b": [1, 2]}},
            ]}},
        });
        let expected = obj(&[
            // Same duration, the user's spelling.
            ("interval", s("10m")),
            ("repo_url", s("https://example.com/repo.git")),
            // Absent from Kargo's object: the prior zero values stand.
            ("direct", Value::Bool(false)),
            ("stages", Value::List(vec![])),
            // Absent, with a default: Kargo applies the default.
            ("limit", Value::int(20)),
            ("legacy", Value::Null),
            ("status", Value::Null),
            ("history", Value::Null),
            (
                "template",
                obj(&[(
                    "steps",
                    Value::List(vec![
                        obj(&[
                            ("uses", s("git-clone")),
                            ("kind", s("PromotionTask")),
                            ("config", s(r#"{"n": 1, "repoURL": "${{ vars.repo }}"}"#)),
                        ]),
                        obj(&[
                            ("uses", Value::Null),
                            ("kind", s("ClusterPromotionTask")),
                            ("config", s(r#"{"b":[1,2]}"#)),
                        ]),
                    ]),
                )]),
            ),
            // Absent list block: no blocks, never null.
            ("args", Value::List(vec![])),
        ]);
        assert_eq!(from_json(&live, &prior), expected);
    }

    #[test]
    fn stored_values_read_as_written() {
        // Explicit zero values are what the user wrote (`value = ""` is common in tasks).
        let live = json!({"direct": false, "stages": [], "interval": "1h", "repoURL": "",
            "args": [{"name": ""}]});
        let read = from_json(&live, &Value::Null);
        assert_eq!(read.get("direct"), &Value::Bool(false));
        assert_eq!(read.get("stages"), &Value::List(vec![]));
        assert_eq!(read.get("repo_url"), &s(""));
        assert_eq!(read.get("interval"), &s("1h"));
        assert_eq!(
            read.get("args"),
            &Value::List(vec![obj(&[("name", s(""))])])
        );
        let read = from_json(&json!({}), &Value::Null);
        assert_eq!(read.get("direct"), &Value::Null);
        assert_eq!(read.get("template"), &Value::Null, "no single block");
        assert_eq!(read.get("args"), &Value::List(vec![]), "no list blocks");
        let prior = obj(&[("direct", Value::Bool(false))]);
        let read = from_json(&json!({"direct": true}), &prior);
        assert_eq!(
            read.get("direct"),
            &Value::Bool(true),
            "a real change shows as drift"
        );
        // An empty single block Kargo keeps reads back as the block, its list empty.
        let read = from_json(&json!({"template": {"spec": {}}}), &Value::Null);
        assert_eq!(
            read.get("template"),
            &obj(&[("steps", Value::List(vec![]))])
        );
    }

    #[test]
    fn a_report_view_reads_computed_values_and_empty_lists() {
        let read = object_from_json(
            test_block().shape(),
            json!({"status": "Ready", "history": [{"id": "f1"}]}).as_object(),
            &Value::Null,
            &Rules::REPORT,
            "",
        );
        assert_eq!(read.get("status"), &s("Ready"));
        assert_eq!(
            read.get("history"),
            &Value::List(vec![obj(&[("id", s("f1"))])])
        );
        assert_eq!(
            read.get("stages"),
            &Value::List(vec![]),
            "absent lists are empty"
        );
        assert_eq!(read.get("repo_url"), &Value::Null);
        let read = object_from_json(test_block().shape(), None, &Value::Null, &Rules::REPORT, "");
        assert_eq!(read.get("history"), &Value::List(vec![]));
    }

    #[test]
    fn empty_strings_of_a_spec_are_unset_at_any_depth() {
        let block = empty_strings_are_unset(test_block());
        assert!(block.attribute("repo_url").unwrap().zero_is_unset);
        assert!(
            !block.attribute("interval").unwrap().zero_is_unset,
            "defaulted"
        );
        assert!(
            !block.attribute("status").unwrap().zero_is_unset,
            "read-only"
        );
        assert!(
            !block.attribute("direct").unwrap().zero_is_unset,
            "not a string"
        );
        let steps = &block.nested_block("template").unwrap().block.blocks[0].block;
        assert!(steps.attribute("uses").unwrap().zero_is_unset);
        assert!(steps.attribute("config").unwrap().computed);
    }

    #[test]
    fn kargo_field_paths_map_onto_attribute_paths() {
        let block = test_block();
        let map = |field: &str| {
            let steps = parse_field(field);
            field_to_attribute_path(
                block.shape(),
                &steps,
                &TEST_RULES,
                "",
                AttributePath::root(),
            )
            .map(|p| p.to_string())
        };
        assert_eq!(
            map("template.spec.steps[1].config.repoURL").as_deref(),
            Some("template.steps[1].config")
        );
        assert_eq!(map("stages[2]").as_deref(), Some("stages[2]"));
        assert_eq!(map("repoURL").as_deref(), Some("repo_url"));
        assert_eq!(
            map("template.spec.steps[0].unknownField").as_deref(),
            Some("template.steps[0]")
        );
        assert_eq!(map("args[3].name").as_deref(), Some("args[3].name"));
        assert_eq!(map("nothingLikeThis"), None);
    }

    #[test]
    fn project_namespaces_and_pending_errors() {
        use crate::kargo::error::Cause;
        let namespace = |j: Json| -> Namespace { decode(j).unwrap() };
        let labelled =
            namespace(json!({"metadata": {"name": "p", "labels": {PROJECT_LABEL: "true"}}}));
        assert!(is_project_namespace(Some(&labelled)));
        assert!(!is_project_namespace(None));
        assert!(!is_project_namespace(Some(&namespace(
            json!({"metadata": {"name": "p"}})
        ))));
        let terminating = namespace(
            json!({"metadata": {"labels": {PROJECT_LABEL: "true"}, "deletionTimestamp": "2025-01-01T00:00:00Z"}}),
        );
        assert!(!is_project_namespace(Some(&terminating)));

        let not_found = KargoError::NotFound {
            what: "Stage \"p/s\"".into(),
            message: "namespaces \"p\" not found".into(),
        };
        assert!(project_namespace_pending(&not_found));
        let not_project = KargoError::Invalid {
            what: "Stage \"p/s\"".into(),
            message: "namespace is not a project".into(),
            causes: vec![Cause {
                field: "metadata.namespace".into(),
                message: "not a project".into(),
                reason: "FieldValueInvalid".into(),
            }],
        };
        assert!(project_namespace_pending(&not_project));
        let invalid_spec = KargoError::Invalid {
            what: "Stage \"p/s\"".into(),
            message: "bad".into(),
            causes: vec![Cause {
                field: "spec.requestedFreight".into(),
                message: "bad".into(),
                reason: String::new(),
            }],
        };
        assert!(!project_namespace_pending(&invalid_spec));
    }

    #[tokio::test]
    async fn an_unreachable_cluster_fails_the_write_at_once() {
        // Nothing listens on the client's address: not a reason to wait for the namespace.
        let client = offline_client();
        let target = Target {
            namespace: Some("demo".into()),
            name: "w".into(),
        };
        let started = std::time::Instant::now();
        let err = apply_object::<crate::kargo::Warehouse>(
            &client,
            &target,
            &json!({}),
            Duration::from_secs(30),
            true,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, KargoError::Unreachable { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
