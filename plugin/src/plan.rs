//! The schema-driven plan: the planned new state for a configuration and prior state,
//! within the rules Terraform checks (planned equals config unless computed, or equals prior).

use std::collections::BTreeMap;

use crate::diagnostics::AttributePath;
use crate::schema::{Attribute, AttributeType, Block, Nesting, Schema, Shape};
use crate::value::Value;
use crate::{PlanRequest, PlanResponse};

static NULL: Value = Value::Null;

/// The generic PlanResourceChange: destroy plans null, otherwise [`plan_block`] plus the
/// `requires_replace` paths that changed. Private state passes through unchanged.
pub fn plan_from_schema(schema: &Schema, req: &PlanRequest) -> PlanResponse {
    let mut resp = PlanResponse {
        planned_private: req.prior_private.clone(),
        ..PlanResponse::default()
    };
    if req.config.is_null() {
        resp.planned_state = Value::Null;
        return resp;
    }
    let is_create = req.prior_state.is_null();
    resp.planned_state = plan_block(&schema.block, &req.config, &req.prior_state, is_create);
    if !is_create {
        resp.requires_replace =
            requires_replace_paths(&schema.block, &req.prior_state, &resp.planned_state);
    }
    resp
}

/// How computed-only attributes are planned once everything else is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputedMode {
    /// Nothing else changes: computed values stay as they are.
    KeepPrior,
    /// Something changes: computed values may change too, so they become unknown
    /// (unless `use_state_for_unknown` or a default says otherwise).
    MarkUnknown,
}

/// Plans one object described by `block`: configured values as written (or the prior
/// value when `semantic_eq` says they mean the same), defaults and prior values for
/// unset optional+computed attributes, prior values for computed-only attributes when
/// nothing else changes and unknown when something does, null for write-only ones.
/// `is_create` ignores `prior`.
pub fn plan_block(block: &Block, config: &Value, prior: &Value, is_create: bool) -> Value {
    if config.is_null() {
        return Value::Null;
    }
    if config.is_unknown() {
        return Value::Unknown;
    }
    let prior = if is_create { &NULL } else { prior };
    let shape = block.shape();
    let kept = plan_object(shape, config, prior, ComputedMode::KeepPrior);
    if prior.is_null() || !changed_ignoring_computed(block, &kept, prior) {
        return kept;
    }
    plan_object(shape, config, prior, ComputedMode::MarkUnknown)
}

fn plan_object(shape: Shape<'_>, config: &Value, prior: &Value, mode: ComputedMode) -> Value {
    let prior_exists = !prior.is_null() && !prior.is_unknown();
    let mut out = BTreeMap::new();
    for attr in shape.attributes {
        let planned = plan_attribute(
            attr,
            config.get(&attr.name),
            prior.get(&attr.name),
            prior_exists,
            mode,
        );
        out.insert(attr.name.clone(), planned);
    }
    for nb in shape.blocks {
        // A block that is not written is no block: an empty collection, never null.
        let config = match config.get(&nb.type_name) {
            Value::Null => &nb.absent_value(),
            c => c,
        };
        let planned = plan_collection(
            nb.block.shape(),
            nb.nesting,
            config,
            prior.get(&nb.type_name),
            mode,
        );
        out.insert(nb.type_name.clone(), planned);
    }
    Value::Object(out)
}

/// Plans one attribute. `prior_exists` says whether the enclosing object existed
/// before (an update of it) even when this attribute's prior value is null.
pub fn plan_attribute(
    attr: &Attribute,
    config: &Value,
    prior: &Value,
    prior_exists: bool,
    mode: ComputedMode,
) -> Value {
    if attr.write_only {
        return Value::Null;
    }
    if attr.is_computed_only() {
        if let Some(default) = &attr.default {
            return default.clone();
        }
        if !prior_exists {
            return Value::Unknown;
        }
        return match mode {
            ComputedMode::KeepPrior => prior.clone(),
            ComputedMode::MarkUnknown if attr.use_state_for_unknown && !prior.is_null() => {
                prior.clone()
            }
            ComputedMode::MarkUnknown => Value::Unknown,
        };
    }
    match config {
        Value::Unknown => return Value::Unknown,
        Value::Null if attr.computed => {
            return match &attr.default {
                Some(default) => default.clone(),
                None if attr.zero_is_unset && prior.is_zero() => prior.clone(),
                None if attr.zero_is_unset => Value::Null,
                None if prior_exists => prior.clone(),
                None => Value::Unknown,
            };
        }
        Value::Null => return Value::Null,
        _ => {}
    }
    if let Some(eq) = attr.semantic_eq
        && !prior.is_null()
        && prior.is_wholly_known()
        && config.is_wholly_known()
        && eq(config, prior)
    {
        return prior.clone();
    }
    match &attr.ty {
        AttributeType::Primitive(_) => config.clone(),
        AttributeType::Nested(object) => {
            plan_collection(object.shape(), object.nesting, config, prior, mode)
        }
    }
}

/// Plans a nested object or collection of objects, matching each configured element
/// with its prior element: lists by index, maps by key, sets by configured content.
fn plan_collection(
    shape: Shape<'_>,
    nesting: Nesting,
    config: &Value,
    prior: &Value,
    mode: ComputedMode,
) -> Value {
    let element = |c: &Value, p: &Value| match c {
        Value::Null => Value::Null,
        Value::Unknown => Value::Unknown,
        _ => plan_object(shape, c, p, mode),
    };
    match (nesting, config) {
        (_, Value::Null) => Value::Null,
        (_, Value::Unknown) => Value::Unknown,
        (Nesting::Single | Nesting::Group, _) => element(config, prior),
        (Nesting::List, Value::List(items) | Value::Tuple(items)) => {
            let priors = prior.elements();
            let planned = items
                .iter()
                .enumerate()
                .map(|(i, c)| element(c, priors.get(i).unwrap_or(&NULL)))
                .collect();
            // A tuple arrives for list blocks whose content is dynamic; keep its kind.
            if matches!(config, Value::Tuple(_)) {
                Value::Tuple(planned)
            } else {
                Value::List(planned)
            }
        }
        (Nesting::Map, Value::Map(entries) | Value::Object(entries)) => {
            let planned = entries
                .iter()
                .map(|(k, c)| (k.clone(), element(c, prior.get(k))))
                .collect();
            if matches!(config, Value::Object(_)) {
                Value::Object(planned)
            } else {
                Value::Map(planned)
            }
        }
        (Nesting::Set, Value::Set(items) | Value::List(items)) => {
            let priors = prior.elements();
            let mut used = vec![false; priors.len()];
            let planned = items
                .iter()
                .map(|c| {
                    let found = (0..priors.len())
                        .find(|&j| !used[j] && object_matches_config(shape, c, &priors[j]));
                    match found {
                        Some(j) => {
                            used[j] = true;
                            element(c, &priors[j])
                        }
                        None => element(c, &NULL),
                    }
                })
                .collect();
            Value::Set(planned)
        }
        // Anything else does not fit the schema; leave it for Terraform to reject.
        _ => config.clone(),
    }
}

/// Whether a prior object could be the one a configured object describes: every value
/// the configuration decides is equal (unknown and unset computed values match anything).
fn object_matches_config(shape: Shape<'_>, config: &Value, prior: &Value) -> bool {
    if prior.is_null() || prior.is_unknown() {
        return false;
    }
    let attrs_match = shape.attributes.iter().all(|attr| {
        if attr.is_computed_only() || attr.write_only {
            return true;
        }
        let (c, p) = (config.get(&attr.name), prior.get(&attr.name));
        match c {
            Value::Unknown => true,
            Value::Null => attr.computed || p.is_null(),
            _ => match &attr.ty {
                _ if values_equal(c, p) => true,
                _ if attr
                    .semantic_eq
                    .is_some_and(|eq| p.is_wholly_known() && c.is_wholly_known() && eq(c, p)) =>
                {
                    true
                }
                AttributeType::Nested(o) => collection_matches_config(o.shape(), o.nesting, c, p),
                AttributeType::Primitive(_) => false,
            },
        }
    });
    attrs_match
        && shape.blocks.iter().all(|nb| {
            collection_matches_config(
                nb.block.shape(),
                nb.nesting,
                config.get(&nb.type_name),
                prior.get(&nb.type_name),
            )
        })
}

fn collection_matches_config(
    shape: Shape<'_>,
    nesting: Nesting,
    config: &Value,
    prior: &Value,
) -> bool {
    match (config, prior) {
        (Value::Unknown, _) => true,
        (Value::Null, p) => p.is_null(),
        (_, Value::Null | Value::Unknown) => false,
        _ => match nesting {
            Nesting::Single | Nesting::Group => object_matches_config(shape, config, prior),
            Nesting::List => {
                let (c, p) = (config.elements(), prior.elements());
                c.len() == p.len()
                    && c.iter()
                        .zip(p)
                        .all(|(c, p)| object_matches_config(shape, c, p))
            }
            Nesting::Map => match (config.entries(), prior.entries()) {
                (Some(c), Some(p)) => {
                    c.len() == p.len()
                        && c.iter().all(|(k, c)| {
                            p.get(k).is_some_and(|p| object_matches_config(shape, c, p))
                        })
                }
                _ => false,
            },
            Nesting::Set => {
                let (c, p) = (config.elements(), prior.elements());
                c.len() == p.len()
                    && matched_one_to_one(c, p, |c, p| object_matches_config(shape, c, p))
            }
        },
    }
}

/// True when every `a` pairs with a distinct `b` under `eq` (greedy, as set elements
/// rarely match more than one candidate).
fn matched_one_to_one(a: &[Value], b: &[Value], eq: impl Fn(&Value, &Value) -> bool) -> bool {
    let mut used = vec![false; b.len()];
    a.iter()
        .all(|x| match (0..b.len()).find(|&j| !used[j] && eq(x, &b[j])) {
            Some(j) => {
                used[j] = true;
                true
            }
            None => false,
        })
}

/// True when `planned` differs from `prior` anywhere except in computed-only and
/// write-only attributes: the signal that computed values may change on apply.
pub fn changed_ignoring_computed(block: &Block, planned: &Value, prior: &Value) -> bool {
    object_changed(block.shape(), planned, prior)
}

fn object_changed(shape: Shape<'_>, planned: &Value, prior: &Value) -> bool {
    match (planned, prior) {
        (Value::Unknown, _) | (_, Value::Unknown) => return true,
        (Value::Null, Value::Null) => return false,
        (Value::Null, _) | (_, Value::Null) => return true,
        _ => {}
    }
    let attr_changed = shape.attributes.iter().any(|attr| {
        if attr.is_computed_only() || attr.write_only {
            return false;
        }
        let (p, q) = (planned.get(&attr.name), prior.get(&attr.name));
        match &attr.ty {
            AttributeType::Nested(o) => collection_changed(o.shape(), o.nesting, p, q),
            AttributeType::Primitive(_) => !values_equal(p, q),
        }
    });
    attr_changed
        || shape.blocks.iter().any(|nb| {
            collection_changed(
                nb.block.shape(),
                nb.nesting,
                planned.get(&nb.type_name),
                prior.get(&nb.type_name),
            )
        })
}

fn collection_changed(shape: Shape<'_>, nesting: Nesting, planned: &Value, prior: &Value) -> bool {
    match (planned, prior) {
        (Value::Unknown, _) | (_, Value::Unknown) => return true,
        (Value::Null, Value::Null) => return false,
        (Value::Null, _) | (_, Value::Null) => return true,
        _ => {}
    }
    match nesting {
        Nesting::Single | Nesting::Group => object_changed(shape, planned, prior),
        Nesting::List => {
            let (p, q) = (planned.elements(), prior.elements());
            p.len() != q.len() || p.iter().zip(q).any(|(p, q)| object_changed(shape, p, q))
        }
        Nesting::Map => match (planned.entries(), prior.entries()) {
            (Some(p), Some(q)) => {
                p.len() != q.len()
                    || p.iter()
                        .any(|(k, p)| q.get(k).is_none_or(|q| object_changed(shape, p, q)))
            }
            _ => true,
        },
        Nesting::Set => {
            let (p, q) = (planned.elements(), prior.elements());
            p.len() != q.len() || !matched_one_to_one(p, q, |p, q| !object_changed(shape, p, q))
        }
    }
}

/// Paths of `requires_replace` attributes whose planned value differs from the prior
/// one (an unknown planned value counts as a change). Set elements have no path of
/// their own, so a change inside one reports the whole set.
pub fn requires_replace_paths(block: &Block, prior: &Value, planned: &Value) -> Vec<AttributePath> {
    let mut out = Vec::new();
    if prior.is_null() || planned.is_null() {
        return out;
    }
    collect_replace(
        block.shape(),
        prior,
        planned,
        &AttributePath::root(),
        &mut out,
    );
    out
}

fn collect_replace(
    shape: Shape<'_>,
    prior: &Value,
    planned: &Value,
    path: &AttributePath,
    out: &mut Vec<AttributePath>,
) {
    for attr in shape.attributes {
        let (q, p) = (prior.get(&attr.name), planned.get(&attr.name));
        let attr_path = path.join_attr(&attr.name);
        if attr.requires_replace {
            if !values_equal(p, q) {
                out.push(attr_path);
            }
            continue;
        }
        if let AttributeType::Nested(o) = &attr.ty {
            collect_replace_collection(o.shape(), o.nesting, q, p, &attr_path, out);
        }
    }
    for nb in shape.blocks {
        collect_replace_collection(
            nb.block.shape(),
            nb.nesting,
            prior.get(&nb.type_name),
            planned.get(&nb.type_name),
            &path.join_attr(&nb.type_name),
            out,
        );
    }
}

fn collect_replace_collection(
    shape: Shape<'_>,
    nesting: Nesting,
    prior: &Value,
    planned: &Value,
    path: &AttributePath,
    out: &mut Vec<AttributePath>,
) {
    if !shape_has_replace(shape) {
        return;
    }
    if planned.is_unknown() {
        out.push(path.clone());
        return;
    }
    match nesting {
        Nesting::Single | Nesting::Group => collect_replace(shape, prior, planned, path, out),
        Nesting::List => {
            let (q, p) = (prior.elements(), planned.elements());
            for i in 0..q.len().max(p.len()) {
                let (qi, pi) = (q.get(i).unwrap_or(&NULL), p.get(i).unwrap_or(&NULL));
                if pi.is_unknown() {
                    out.push(path.join_index(i));
                } else {
                    collect_replace(shape, qi, pi, &path.join_index(i), out);
                }
            }
        }
        Nesting::Map => {
            let empty = BTreeMap::new();
            let (q, p) = (
                prior.entries().unwrap_or(&empty),
                planned.entries().unwrap_or(&empty),
            );
            let keys: std::collections::BTreeSet<&String> = q.keys().chain(p.keys()).collect();
            for k in keys {
                let (qk, pk) = (q.get(k).unwrap_or(&NULL), p.get(k).unwrap_or(&NULL));
                if pk.is_unknown() {
                    out.push(path.join_key(k));
                } else {
                    collect_replace(shape, qk, pk, &path.join_key(k), out);
                }
            }
        }
        Nesting::Set => {
            if !values_equal(prior, planned) {
                out.push(path.clone());
            }
        }
    }
}

fn shape_has_replace(shape: Shape<'_>) -> bool {
    shape.attributes.iter().any(|a| {
        a.requires_replace
            || matches!(&a.ty, AttributeType::Nested(o) if shape_has_replace(o.shape()))
    }) || shape
        .blocks
        .iter()
        .any(|b| shape_has_replace(b.block.shape()))
}

/// Structural equality as Terraform sees it: numbers by value, sets regardless of
/// order, absent object attributes equal to null. Unknown equals nothing.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Unknown, _) | (_, Value::Unknown) => false,
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Set(x), Value::Set(y) | Value::List(y) | Value::Tuple(y))
        | (Value::List(x) | Value::Tuple(x), Value::Set(y)) => {
            x.len() == y.len() && matched_one_to_one(x, y, values_equal)
        }
        (Value::List(x) | Value::Tuple(x), Value::List(y) | Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::Map(x) | Value::Object(x), Value::Map(y) | Value::Object(y)) => {
            x.iter()
                .all(|(k, v)| values_equal(v, y.get(k).unwrap_or(&NULL)))
                && y.iter().all(|(k, v)| x.contains_key(k) || v.is_null())
        }
        _ => false,
    }
}

fn numbers_equal(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    matches!((x.as_f64(), y.as_f64()), (Some(a), Some(b)) if a == b)
}

/// Semantic equality functions for [`Attribute::semantic_eq`](crate::schema::Attribute).
pub mod semantic {
    use crate::value::Value;

    /// Strings holding JSON compare as documents (key order, whitespace and number
    /// spelling ignored); strings that do not parse compare as strings.
    pub fn json_eq(a: &Value, b: &Value) -> bool {
        match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => {
                match (
                    serde_json::from_str::<serde_json::Value>(x),
                    serde_json::from_str::<serde_json::Value>(y),
                ) {
                    (Ok(dx), Ok(dy)) => json_documents_equal(&dx, &dy),
                    _ => x == y,
                }
            }
            _ => super::values_equal(a, b),
        }
    }

    fn json_documents_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (a, b) {
            (J::Number(x), J::Number(y)) => super::numbers_equal(x, y),
            (J::Array(x), J::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_documents_equal(a, b))
            }
            (J::Object(x), J::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| json_documents_equal(v, w)))
            }
            _ => a == b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::semantic::json_eq;
    use super::*;
    use crate::diagnostics::PathStep;
    use crate::schema::{NestedBlock, NestedObject};

    fn s(v: &str) -> Value {
        Value::string(v)
    }

    /// A semantic equality for the tests: strings that differ only in letter case.
    fn case_insensitive_eq(a: &Value, b: &Value) -> bool {
        match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => values_equal(a, b),
        }
    }

    fn schema() -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("name").required().requires_replace(),
                Attribute::string("description").optional(),
                Attribute::string("interval")
                    .optional()
                    .computed()
                    .semantic_eq(case_insensitive_eq),
                Attribute::string("mode").default(s("Auto")),
                Attribute::string("config").optional().semantic_eq(json_eq),
                Attribute::string("id").computed().use_state_for_unknown(),
                Attribute::string("uid").computed(),
                Attribute::string("token").optional().write_only(),
                Attribute::string_map("labels").optional(),
                Attribute::nested(
                    "items",
                    NestedObject::list(vec![
                        Attribute::string("repo").required().requires_replace(),
                        Attribute::string("branch").optional().computed(),
                        Attribute::string("commit").computed(),
                    ]),
                )
                .optional(),
                Attribute::nested(
                    "sources",
                    NestedObject::set(vec![
                        Attribute::string("url").required(),
                        Attribute::string("digest").computed(),
                    ]),
                )
                .optional(),
                Attribute::nested(
                    "envs",
                    NestedObject::map(vec![
                        Attribute::string("value").optional(),
                        Attribute::string("hash").computed(),
                    ]),
                )
                .optional(),
            ])
            .block(NestedBlock::new(
                "wait",
                Block::new(vec![
                    Attribute::string("timeout")
                        .default(s("10m"))
                        .semantic_eq(case_insensitive_eq),
                ]),
                Nesting::Single,
            ))
            .block(NestedBlock::new(
                "step",
                Block::new(vec![
                    Attribute::string("uses").required(),
                    Attribute::dynamic("config").optional(),
                ]),
                Nesting::List,
            )),
        )
    }

    /// A configuration object with every schema attribute present (null unless given),
    /// as Terraform sends it.
    fn config(set: &[(&str, Value)]) -> Value {
        let mut v = Value::object([
            ("name", Value::Null),
            ("description", Value::Null),
            ("interval", Value::Null),
            ("mode", Value::Null),
            ("config", Value::Null),
            ("id", Value::Null),
            ("uid", Value::Null),
            ("token", Value::Null),
            ("labels", Value::Null),
            ("items", Value::Null),
            ("sources", Value::Null),
            ("envs", Value::Null),
            ("wait", Value::Null),
            ("step", Value::Tuple(vec![])),
        ]);
        for (k, val) in set {
            v.set(k, val.clone());
        }
        v
    }

    fn item(repo: &str, branch: Value, commit: Value) -> Value {
        Value::object([("repo", s(repo)), ("branch", branch), ("commit", commit)])
    }

    fn plan(config: &Value, prior: &Value) -> PlanResponse {
        let req = PlanRequest {
            prior_state: prior.clone(),
            proposed_new_state: config.clone(),
            config: config.clone(),
            prior_private: b"private".to_vec(),
        };
        let resp = plan_from_schema(&schema(), &req);
        if !config.is_null() {
            assert_plan_valid(
                &schema().block,
                prior,
                config,
                &resp.planned_state,
                &AttributePath::root(),
            );
        }
        resp
    }

    /// Terraform's plan validity rules (plans/objchange/plan_valid.go) for attributes:
    /// planned equals config, or equals a non-null prior when config is non-null, or the
    /// attribute is computed and its config is null (computed-only: anything goes).
    fn assert_plan_valid(
        block: &Block,
        prior: &Value,
        config: &Value,
        planned: &Value,
        path: &AttributePath,
    ) {
        assert_eq!(
            planned.is_null(),
            config.is_null(),
            "{path}: null-ness of planned vs config"
        );
        if planned.is_null() {
            return;
        }
        for attr in &block.attributes {
            let p = path.join_attr(&attr.name);
            let (pl, c, pr) = (
                planned.get(&attr.name),
                config.get(&attr.name),
                prior.get(&attr.name),
            );
            if pl == c || (pl == pr && !pr.is_null() && !c.is_null()) {
                continue;
            }
            if attr.write_only {
                assert!(pl.is_null(), "{p}: write-only planned non-null");
                continue;
            }
            if attr.is_computed_only() || (c.is_null() && attr.computed) {
                continue;
            }
            assert!(
                !c.is_null() || pl.is_null(),
                "{p}: planned {pl:?} for a non-computed null attribute"
            );
            if let AttributeType::Nested(o) = &attr.ty {
                let inner = Block::new(o.attributes.clone());
                match o.nesting {
                    Nesting::List => {
                        assert_eq!(
                            pl.elements().len(),
                            c.elements().len(),
                            "{p}: element count"
                        );
                        for (i, (ple, ce)) in pl.elements().iter().zip(c.elements()).enumerate() {
                            let pre = pr.elements().get(i).unwrap_or(&NULL);
                            assert_plan_valid(&inner, pre, ce, ple, &p.join_index(i));
                        }
                    }
                    Nesting::Map => {
                        let (ple, ce) = (pl.entries().unwrap(), c.entries().unwrap());
                        assert_eq!(
                            ple.keys().collect::<Vec<_>>(),
                            ce.keys().collect::<Vec<_>>(),
                            "{p}: keys"
                        );
                        for (k, ple) in ple {
                            assert_plan_valid(&inner, pr.get(k), &ce[k], ple, &p.join_key(k));
                        }
                    }
                    Nesting::Single | Nesting::Group => assert_plan_valid(&inner, pr, c, pl, &p),
                    Nesting::Set => {
                        assert_eq!(pl.elements().len(), c.elements().len(), "{p}: set size")
                    }
                }
                continue;
            }
            panic!("{p}: planned {pl:?} matches neither config {c:?} nor prior {pr:?}");
        }
        for nb in &block.blocks {
            let p = path.join_attr(&nb.type_name);
            let (pl, c, pr) = (
                planned.get(&nb.type_name),
                config.get(&nb.type_name),
                prior.get(&nb.type_name),
            );
            match nb.nesting {
                Nesting::Single => assert_plan_valid(&nb.block, pr, c, pl, &p),
                _ => {
                    assert!(
                        !pl.is_null(),
                        "{p}: collection blocks are never planned null"
                    );
                    assert_eq!(pl.elements().len(), c.elements().len(), "{p}: block count");
                    for (i, (ple, ce)) in pl.elements().iter().zip(c.elements()).enumerate() {
                        let pre = pr.elements().get(i).unwrap_or(&NULL);
                        assert_plan_valid(&nb.block, pre, ce, ple, &p.join_index(i));
                    }
                }
            }
        }
    }

    /// The state after a create that resolved every unknown.
    fn applied(planned: &Value, computed: &[(&str, Value)]) -> Value {
        let mut state = planned.clone();
        for (k, v) in computed {
            state.set(k, v.clone());
        }
        assert!(
            state.is_wholly_known(),
            "test state still has unknowns: {state:?}"
        );
        state
    }

    fn base_state() -> Value {
        let created = plan(
            &config(&[
                ("name", s("app")),
                ("interval", s("5m")),
                (
                    "items",
                    Value::List(vec![item("r1", Value::Null, Value::Null)]),
                ),
            ]),
            &Value::Null,
        );
        let mut state = created.planned_state.clone();
        state.set("id", s("id-1"));
        state.set("uid", s("uid-1"));
        state.set("items", Value::List(vec![item("r1", s("main"), s("c1"))]));
        applied(&state, &[])
    }

    #[test]
    fn create_plans_defaults_and_unknown_computed_values() {
        let resp = plan(
            &config(&[
                ("name", s("app")),
                ("token", s("secret")),
                ("wait", Value::object([("timeout", Value::Null)])),
                (
                    "items",
                    Value::List(vec![
                        item("r1", Value::Null, Value::Null),
                        item("r2", s("dev"), Value::Null),
                    ]),
                ),
            ]),
            &Value::Null,
        );
        let p = &resp.planned_state;
        assert_eq!(p.get("name"), &s("app"));
        assert_eq!(p.get("mode"), &s("Auto"));
        assert_eq!(p.get("description"), &Value::Null);
        assert_eq!(p.get("interval"), &Value::Unknown);
        assert_eq!(p.get("id"), &Value::Unknown);
        assert_eq!(p.get("uid"), &Value::Unknown);
        assert_eq!(
            p.get("token"),
            &Value::Null,
            "write-only values are never planned"
        );
        assert_eq!(p.get("wait"), &Value::object([("timeout", s("10m"))]));
        assert_eq!(
            p.get("items"),
            &Value::List(vec![
                item("r1", Value::Unknown, Value::Unknown),
                item("r2", s("dev"), Value::Unknown),
            ])
        );
        assert!(resp.requires_replace.is_empty());
        assert_eq!(resp.planned_private, b"private".to_vec());
    }

    #[test]
    fn unchanged_update_plans_the_prior_state() {
        let prior = base_state();
        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
        ]);
        let resp = plan(&cfg, &prior);
        assert_eq!(resp.planned_state, prior);
        assert!(resp.requires_replace.is_empty());
    }

    #[test]
    fn semantically_equal_values_keep_the_prior_value() {
        let mut prior = base_state();
        prior.set("config", s(r#"{"a": [1, 2], "b": {"c": true}}"#));
        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("5M")),
            ("config", s(r#"{"b":{"c":true},"a":[1,2.0]}"#)),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
        ]);
        let resp = plan(&cfg, &prior);
        assert_eq!(
            resp.planned_state, prior,
            "no diff for semantically equal strings and JSON"
        );

        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("6m")),
            ("config", s(r#"{"b":{"c":true},"a":[1,2.0]}"#)),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
        ]);
        let resp = plan(&cfg, &prior);
        assert_eq!(resp.planned_state.get("interval"), &s("6m"));
        assert_eq!(resp.planned_state.get("config"), prior.get("config"));
    }

    #[test]
    fn a_change_makes_computed_values_unknown_unless_kept() {
        let prior = base_state();
        let cfg = config(&[
            ("name", s("app")),
            ("description", s("now described")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
        ]);
        let p = plan(&cfg, &prior).planned_state;
        assert_eq!(p.get("description"), &s("now described"));
        assert_eq!(
            p.get("id"),
            &s("id-1"),
            "use_state_for_unknown keeps the prior value"
        );
        assert_eq!(p.get("uid"), &Value::Unknown);
        // Optional+computed values left unset keep their prior value.
        assert_eq!(p.get("interval"), &s("5m"));
        assert_eq!(
            p.get("items"),
            &Value::List(vec![item("r1", s("main"), Value::Unknown)])
        );
    }

    #[test]
    fn nested_list_elements_match_prior_by_index() {
        let prior = base_state();
        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![
                    item("r1", s("main"), Value::Null),
                    item("r2", Value::Null, Value::Null),
                ]),
            ),
        ]);
        let resp = plan(&cfg, &prior);
        assert_eq!(
            resp.planned_state.get("items"),
            &Value::List(vec![
                item("r1", s("main"), Value::Unknown),
                item("r2", Value::Unknown, Value::Unknown),
            ])
        );
        // The new element's requires_replace attribute forces replacement on its own path.
        let path = AttributePath(vec![
            PathStep::Attr("items".into()),
            PathStep::Index(1),
            PathStep::Attr("repo".into()),
        ]);
        assert_eq!(resp.requires_replace, vec![path]);
    }

    #[test]
    fn set_elements_match_prior_by_configured_content() {
        let src = |url: &str, digest: Value| Value::object([("url", s(url)), ("digest", digest)]);
        let mut prior = base_state();
        prior.set(
            "sources",
            Value::Set(vec![src("a", s("da")), src("b", s("db"))]),
        );
        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
            (
                "sources",
                Value::Set(vec![src("b", Value::Null), src("a", Value::Null)]),
            ),
        ]);
        let resp = plan(&cfg, &prior);
        assert_eq!(
            resp.planned_state.get("sources"),
            &Value::Set(vec![src("b", s("db")), src("a", s("da"))])
        );
        assert_eq!(
            resp.planned_state.get("uid"),
            &s("uid-1"),
            "reordering a set is no change"
        );

        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
            (
                "sources",
                Value::Set(vec![src("c", Value::Null), src("a", Value::Null)]),
            ),
        ]);
        let p = plan(&cfg, &prior).planned_state;
        assert_eq!(
            p.get("sources"),
            &Value::Set(vec![src("c", Value::Unknown), src("a", Value::Unknown)])
        );
        assert_eq!(p.get("uid"), &Value::Unknown);
    }

    #[test]
    fn map_elements_match_prior_by_key() {
        let env = |value: &str, hash: Value| Value::object([("value", s(value)), ("hash", hash)]);
        let mut prior = base_state();
        prior.set(
            "envs",
            Value::Map([("a".to_string(), env("1", s("h1")))].into()),
        );
        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
            (
                "envs",
                Value::Map(
                    [
                        ("a".to_string(), env("1", Value::Null)),
                        ("b".to_string(), env("2", Value::Null)),
                    ]
                    .into(),
                ),
            ),
        ]);
        let p = plan(&cfg, &prior).planned_state;
        assert_eq!(
            p.get("envs"),
            &Value::Map(
                [
                    ("a".to_string(), env("1", Value::Unknown)),
                    ("b".to_string(), env("2", Value::Unknown))
                ]
                .into()
            )
        );
    }

    #[test]
    fn requires_replace_reports_changed_paths_only() {
        let prior = base_state();
        let cfg = config(&[
            ("name", s("renamed")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r9", Value::Null, Value::Null)]),
            ),
        ]);
        let resp = plan(&cfg, &prior);
        let items_0_repo = AttributePath::attr("items").join_index(0).join_attr("repo");
        assert_eq!(
            resp.requires_replace,
            vec![AttributePath::attr("name"), items_0_repo]
        );

        let unknown_name = config(&[
            ("name", Value::Unknown),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
        ]);
        assert_eq!(
            plan(&unknown_name, &prior).requires_replace,
            vec![AttributePath::attr("name")]
        );

        let only_description = config(&[
            ("name", s("app")),
            ("description", s("d")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
        ]);
        assert!(plan(&only_description, &prior).requires_replace.is_empty());
    }

    #[test]
    fn destroy_plans_null() {
        let resp = plan(&Value::Null, &base_state());
        assert_eq!(resp.planned_state, Value::Null);
        assert!(resp.requires_replace.is_empty());
    }

    #[test]
    fn unknown_config_values_plan_unknown() {
        let prior = base_state();
        let cfg = config(&[
            ("name", s("app")),
            ("description", Value::Unknown),
            ("interval", Value::Unknown),
            ("items", Value::Unknown),
            (
                "labels",
                Value::Map([("k".to_string(), Value::Unknown)].into()),
            ),
        ]);
        let p = plan(&cfg, &prior).planned_state;
        assert_eq!(p.get("description"), &Value::Unknown);
        assert_eq!(p.get("interval"), &Value::Unknown);
        assert_eq!(p.get("items"), &Value::Unknown);
        assert_eq!(
            p.get("labels"),
            &Value::Map([("k".to_string(), Value::Unknown)].into())
        );
        assert_eq!(
            p.get("uid"),
            &Value::Unknown,
            "unknown config counts as a change"
        );
    }

    #[test]
    fn dynamic_list_blocks_keep_their_tuple_kind() {
        let prior = base_state();
        let step = |uses: &str, cfg: Value| Value::object([("uses", s(uses)), ("config", cfg)]);
        let steps = Value::Tuple(vec![
            step("git-clone", Value::object([("depth", Value::int(1))])),
            step("helm", Value::Tuple(vec![s("a")])),
        ]);
        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
            ("step", steps.clone()),
        ]);
        let p = plan(&cfg, &prior).planned_state;
        assert_eq!(p.get("step"), &steps);
        assert_eq!(p.get("uid"), &Value::Unknown);
    }

    #[test]
    fn block_defaults_and_semantic_equality_apply_inside_blocks() {
        let mut prior = base_state();
        prior.set("wait", Value::object([("timeout", s("10M"))]));
        let cfg = config(&[
            ("name", s("app")),
            ("interval", s("5m")),
            (
                "items",
                Value::List(vec![item("r1", Value::Null, Value::Null)]),
            ),
            ("wait", Value::object([("timeout", s("10m"))])),
        ]);
        let resp = plan(&cfg, &prior);
        assert_eq!(resp.planned_state, prior);
    }

    #[test]
    fn blocks_not_written_plan_as_empty_lists_never_null() {
        let block = Block::default()
            .block(NestedBlock::single(
                "wait",
                Block::new(vec![Attribute::string("timeout").optional()]),
            ))
            .block(NestedBlock::list(
                "step",
                Block::new(vec![Attribute::string("uses").optional()]).block(NestedBlock::list(
                    "vars",
                    Block::new(vec![Attribute::string("name").optional()]),
                )),
            ));
        let config = Value::object([("wait", Value::Null), ("step", Value::Null)]);
        assert_eq!(
            plan_block(&block, &config, &Value::Null, true),
            Value::object([("wait", Value::Null), ("step", Value::List(vec![]))])
        );
        let step = Value::object([("uses", s("git-clone")), ("vars", Value::Null)]);
        let config = Value::object([("wait", Value::Null), ("step", Value::List(vec![step]))]);
        assert_eq!(
            plan_block(&block, &config, &Value::Null, true).get("step"),
            &Value::List(vec![Value::object([
                ("uses", s("git-clone")),
                ("vars", Value::List(vec![])),
            ])]),
            "at every depth"
        );
    }

    #[test]
    fn an_unset_attribute_keeps_a_stored_zero_value() {
        let block = Block::new(vec![
            Attribute::string("value").optional().zero_is_unset(),
            Attribute::string("other").optional(),
        ]);
        let config = Value::object([("value", Value::Null), ("other", s("x"))]);
        let plan = |prior: Value| {
            let prior = Value::object([("value", prior), ("other", s("x"))]);
            plan_block(&block, &config, &prior, false)
                .get("value")
                .clone()
        };
        assert_eq!(plan(s("")), s(""), "Kargo cannot tell \"\" from unset");
        assert_eq!(
            plan(s("was set")),
            Value::Null,
            "unsetting a value removes it"
        );
        assert_eq!(plan(Value::Null), Value::Null);
        assert_eq!(
            plan_block(&block, &config, &Value::Null, true).get("value"),
            &Value::Null,
            "never unknown on create"
        );
        let attr = block.attribute("value").unwrap();
        assert!(attr.optional && attr.computed);
    }

    #[test]
    fn building_blocks_are_usable_alone() {
        let block = schema().block;
        let prior = base_state();
        assert!(!changed_ignoring_computed(&block, &prior, &prior));
        let mut other = prior.clone();
        other.set("uid", s("different"));
        assert!(
            !changed_ignoring_computed(&block, &other, &prior),
            "computed-only differences are ignored"
        );
        other.set("description", s("x"));
        assert!(changed_ignoring_computed(&block, &other, &prior));
        assert_eq!(
            requires_replace_paths(&block, &prior, &prior),
            Vec::<AttributePath>::new()
        );
        assert!(values_equal(
            &Value::int(2),
            &Value::Number(serde_json::Number::from_f64(2.0).unwrap())
        ));
        assert!(!values_equal(&Value::Unknown, &Value::Unknown));
        assert!(values_equal(
            &Value::Set(vec![s("a"), s("b")]),
            &Value::Set(vec![s("b"), s("a")])
        ));
        assert!(!values_equal(
            &Value::List(vec![s("a"), s("b")]),
            &Value::List(vec![s("b"), s("a")])
        ));
    }

    #[test]
    fn semantic_equality_functions() {
        assert!(json_eq(
            &s(r#"{"a":1,"b":[true,null]}"#),
            &s("{ \"b\": [true, null], \"a\": 1.0 }")
        ));
        assert!(!json_eq(&s(r#"{"a":1}"#), &s(r#"{"a":2}"#)));
        assert!(!json_eq(&s(r#"[1,2]"#), &s(r#"[2,1]"#)));
        assert!(json_eq(&s("not json"), &s("not json")));
        assert!(!json_eq(&s("not json"), &s("{}")));
    }
}
