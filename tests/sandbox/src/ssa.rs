//! Server-side apply: field sets (`fieldsV1`), managedFields for Apply and Update operations,
//! conflicts between managers, and removal of fields a manager stopped applying.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::schema::{ListType, Node};

/// A set of field paths, as `fieldsV1` serialises it: each key is a path element
/// (`f:name`, `k:{"type":"Ready"}`, `v:"value"`, `i:0`); `member` is the `.` marker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn child(&mut self, pe: String) -> &mut FieldSet {
        self.children.entry(pe).or_default()
    }

    pub fn from_json(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(m) = v {
            for (k, c) in m {
                if k == "." {
                    set.member = true;
                    continue;
                }
                let mut child = FieldSet::from_json(c);
                if child.children.is_empty() {
                    child.member = true;
                }
                set.children.insert(k.clone(), child);
            }
        }
        set
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }

    fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, c) in &other.children {
            self.child(k.clone()).union(c);
        }
    }

    /// Removes `other`'s members from this set (not whole subtrees: a member of `other`
    /// does not take away children of the same path here).
    fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (k, c) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.subtract(c);
            }
        }
        self.prune_empty();
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    fn prune_empty(&mut self) {
        for c in self.children.values_mut() {
            c.prune_empty();
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    /// The member paths, each as its path elements.
    fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.walk_paths(&mut Vec::new(), &mut out);
        out
    }

    fn walk_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.walk_paths(prefix, out);
            prefix.pop();
        }
    }
}

/// `.spec.interval`, `.status.conditions[type="Ready"]`, `.metadata.finalizers[="x"]`.
pub fn path_string(pes: &[String]) -> String {
    let mut s = String::new();
    for pe in pes {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let fields = serde_json::from_str::<Map<String, Value>>(k).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

fn key_pe(keys: &[String], item: &Value) -> String {
    let mut m = Map::new();
    let mut sorted = keys.to_vec();
    sorted.sort();
    for k in sorted {
        m.insert(k.clone(), item.get(&k).cloned().unwrap_or(Value::Null));
    }
    format!("k:{}", Value::Object(m))
}

fn value_pe(item: &Value) -> String {
    format!("v:{item}")
}

fn same_keys(keys: &[String], a: &Value, b: &Value) -> bool {
    keys.iter().all(|k| a.get(k) == b.get(k))
}

fn is_leaf(node: &Node, v: &Value) -> bool {
    match v {
        Value::Object(_) => node.map_atomic,
        Value::Array(_) => node.list_type == ListType::Atomic,
        _ => true,
    }
}

/// Adds the fields of `v` (at the path `set` stands for) to `set`.
fn collect(node: &Node, v: &Value, set: &mut FieldSet) {
    if is_leaf(node, v) {
        set.member = true;
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, cv) in m {
                collect(node.field(k), cv, set.child(format!("f:{k}")));
            }
        }
        Value::Array(items) => match &node.list_type {
            ListType::Map(keys) => {
                for item in items {
                    let child = set.child(key_pe(keys, item));
                    child.member = true;
                    collect(node.item(), item, child);
                }
            }
            _ => {
                for item in items {
                    set.child(value_pe(item)).member = true;
                }
            }
        },
        _ => {}
    }
}

/// Which part of an object a write may touch: the status subresource owns `status` only;
/// the main resource of a kind with a status subresource owns everything but `status`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scope {
    All,
    MainOnly,
    StatusOnly,
}

const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Drops the fields no manager owns (identity and server-set metadata) and those outside `scope`.
fn restrict(mut set: FieldSet, scope: Scope) -> FieldSet {
    set.children.remove("f:apiVersion");
    set.children.remove("f:kind");
    if let Some(meta) = set.children.get_mut("f:metadata") {
        for f in SERVER_META {
            meta.children.remove(&format!("f:{f}"));
        }
    }
    match scope {
        Scope::All => {}
        Scope::MainOnly => {
            set.children.remove("f:status");
        }
        Scope::StatusOnly => set.children.retain(|k, _| k == "f:status"),
    }
    set.prune_empty();
    set
}

/// The fields set in `obj`, as server-side apply would own them.
pub fn field_set(root: &Node, obj: &Value, scope: Scope) -> FieldSet {
    let mut set = FieldSet::default();
    collect(root, obj, &mut set);
    restrict(set, scope)
}

fn diff(
    node: &Node,
    old: Option<&Value>,
    new: Option<&Value>,
    changed: &mut FieldSet,
    removed: &mut FieldSet,
) {
    let (o, n) = match (old, new) {
        (None, None) => return,
        (None, Some(n)) => return collect(node, n, changed),
        (Some(o), None) => return collect(node, o, removed),
        (Some(o), Some(n)) => (o, n),
    };
    match (o, n) {
        (Value::Object(om), Value::Object(nm)) if !node.map_atomic => {
            let keys: Vec<&String> = om
                .keys()
                .chain(nm.keys().filter(|k| !om.contains_key(*k)))
                .collect();
            for k in keys {
                let pe = format!("f:{k}");
                let (c, r) = (changed.child(pe.clone()), removed.child(pe));
                diff(node.field(k), om.get(k), nm.get(k), c, r);
            }
        }
        (Value::Array(oa), Value::Array(na)) if node.list_type != ListType::Atomic => {
            match &node.list_type {
                ListType::Map(keys) => {
                    for ni in na {
                        let oi = oa.iter().find(|oi| same_keys(keys, oi, ni));
                        let pe = key_pe(keys, ni);
                        if oi.is_none() {
                            changed.child(pe.clone()).member = true;
                        }
                        let (c, r) = (changed.child(pe.clone()), removed.child(pe));
                        diff(node.item(), oi, Some(ni), c, r);
                    }
                    for oi in oa
                        .iter()
                        .filter(|oi| !na.iter().any(|ni| same_keys(keys, oi, ni)))
                    {
                        let child = removed.child(key_pe(keys, oi));
                        child.member = true;
                        collect(node.item(), oi, child);
                    }
                }
                _ => {
                    for ni in na.iter().filter(|ni| !oa.contains(ni)) {
                        changed.child(value_pe(ni)).member = true;
                    }
                    for oi in oa.iter().filter(|oi| !na.contains(oi)) {
                        removed.child(value_pe(oi)).member = true;
                    }
                }
            }
        }
        _ => {
            if o != n {
                changed.member = true;
            }
        }
    }
}

/// The fields changed (added or modified) and removed between two versions of an object.
fn compare(root: &Node, old: Option<&Value>, new: &Value, scope: Scope) -> (FieldSet, FieldSet) {
    let (mut changed, mut removed) = (FieldSet::default(), FieldSet::default());
    diff(root, old, Some(new), &mut changed, &mut removed);
    (restrict(changed, scope), restrict(removed, scope))
}

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn same_identity(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    /// The manager as conflict messages name it: `"m"`, `"m" using v1`, `… with subresource "status"`.
    pub fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Reads `metadata.managedFields`.
pub fn entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Some(Entry {
                manager: s("manager")?,
                operation: s("operation").unwrap_or_else(|| "Update".into()),
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time"),
                subresource: s("subresource").filter(|s| !s.is_empty()),
                fields: e
                    .get("fieldsV1")
                    .map(FieldSet::from_json)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes `metadata.managedFields` (sorted as the API server sorts it: Apply first, then by time).
pub fn set_entries(obj: &mut Value, mut list: Vec<Entry>) {
    list.retain(|e| !e.fields.is_empty());
    list.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then(a.time.cmp(&b.time))
            .then(a.manager.cmp(&b.manager))
    });
    let json: Vec<Value> = list
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), Value::from(e.manager.clone()));
            m.insert("operation".into(), Value::from(e.operation.clone()));
            m.insert("apiVersion".into(), Value::from(e.api_version.clone()));
            if let Some(t) = &e.time {
                m.insert("time".into(), Value::from(t.clone()));
            }
            m.insert("fieldsType".into(), Value::from("FieldsV1"));
            m.insert("fieldsV1".into(), e.fields.to_json());
            if let Some(s) = &e.subresource {
                m.insert("subresource".into(), Value::from(s.clone()));
            }
            Value::Object(m)
        })
        .collect();
    let Some(o) = obj.as_object_mut() else { return };
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        if json.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(json));
        }
    }
}

/// Who is writing, for managedFields bookkeeping.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub scope: Scope,
    pub now: String,
}

impl Writer<'_> {
    fn entry(&self, operation: &str, fields: FieldSet) -> Entry {
        Entry {
            manager: self.manager.to_string(),
            operation: operation.to_string(),
            api_version: self.api_version.to_string(),
            time: Some(self.now.clone()),
            subresource: self.subresource.map(str::to_string),
            fields,
        }
    }
}

/// The entries a non-apply write starts from: the request's own `managedFields` when it
/// changed them (an explicit `[{}]` resets them), else the stored ones.
pub fn incoming_entries(old: Option<&Value>, new: &Value) -> Vec<Entry> {
    let requested = new.pointer("/metadata/managedFields");
    let stored = old.and_then(|o| o.pointer("/metadata/managedFields"));
    match requested.and_then(Value::as_array) {
        Some(list) if list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty) => {
            Vec::new()
        }
        Some(list) if !list.is_empty() && requested != stored => entries(new),
        _ => old.map(entries).unwrap_or_default(),
    }
}

/// Records a create, update or non-apply patch: the writer takes ownership of every field it
/// changed (from other managers too) and loses the fields it removed.
pub fn track_update(
    root: &Node,
    old: Option<&Value>,
    new: &mut Value,
    base: Vec<Entry>,
    w: &Writer<'_>,
) {
    let (changed, removed) = compare(root, old, new, w.scope);
    let mine = w.entry("Update", FieldSet::default());
    let mut list = Vec::with_capacity(base.len() + 1);
    let mut own: Option<Entry> = None;
    for mut e in base {
        if e.same_identity(&mine) {
            own = Some(e);
            continue;
        }
        e.fields.subtract(&changed);
        e.fields.subtract(&removed);
        list.push(e);
    }
    let mut own = own.unwrap_or(mine);
    own.fields.subtract(&removed);
    if !changed.is_empty() {
        own.fields.union(&changed);
        own.time = Some(w.now.clone());
    }
    own.fields.prune_empty();
    list.push(own);
    set_entries(new, list);
}

/// One field another manager owns that an apply would change.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub path: String,
}

fn merge(node: &Node, live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !node.map_atomic => {
            for (k, av) in a {
                if av.is_null() {
                    l.remove(k);
                    continue;
                }
                match l.get_mut(k) {
                    Some(lv) => merge(node.field(k), lv, av),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) if node.list_type != ListType::Atomic => {
            match &node.list_type {
                ListType::Map(keys) => {
                    for ai in a {
                        match l.iter_mut().find(|li| same_keys(keys, li, ai)) {
                            Some(li) => merge(node.item(), li, ai),
                            None => l.push(ai.clone()),
                        }
                    }
                }
                _ => {
                    for ai in a {
                        if !l.contains(ai) {
                            l.push(ai.clone());
                        }
                    }
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

fn find_pe<'v>(v: &'v mut Value, pe: &str) -> Option<&'v mut Value> {
    if let Some(f) = pe.strip_prefix("f:") {
        return v.get_mut(f);
    }
    let items = v.as_array_mut()?;
    if let Some(k) = pe.strip_prefix("k:") {
        let keys: Map<String, Value> = serde_json::from_str(k).ok()?;
        return items.iter_mut().find(|i| {
            keys.iter()
                .all(|(k, want)| i.get(k).unwrap_or(&Value::Null) == want)
        });
    }
    if let Some(val) = pe.strip_prefix("v:") {
        let want: Value = serde_json::from_str(val).ok()?;
        return items.iter_mut().find(|i| **i == want);
    }
    items.get_mut(pe.strip_prefix("i:")?.parse::<usize>().ok()?)
}

fn remove_pe(v: &mut Value, pe: &str) {
    if let Some(f) = pe.strip_prefix("f:") {
        if let Some(m) = v.as_object_mut() {
            m.remove(f);
        }
        return;
    }
    let Some(items) = v.as_array_mut() else {
        return;
    };
    if let Some(k) = pe.strip_prefix("k:") {
        if let Ok(keys) = serde_json::from_str::<Map<String, Value>>(k) {
            items.retain(|i| {
                !keys
                    .iter()
                    .all(|(k, want)| i.get(k).unwrap_or(&Value::Null) == want)
            });
        }
    } else if let Some(val) = pe.strip_prefix("v:")
        && let Ok(want) = serde_json::from_str::<Value>(val)
    {
        items.retain(|i| *i != want);
    }
}

/// Removes what the applier owned last time, no longer applies, and nobody else owns.
fn drop_released(v: &mut Value, last: &FieldSet, keep: &FieldSet) {
    for (pe, last_child) in &last.children {
        match keep.children.get(pe) {
            None => remove_pe(v, pe),
            Some(kept) if !kept.member && !last_child.children.is_empty() => {
                if let Some(cv) = find_pe(v, pe) {
                    drop_released(cv, last_child, kept);
                }
            }
            Some(_) => {}
        }
    }
}

/// Applies `applied` for `w.manager`: merges it into `live` (or an empty object), drops the
/// fields the manager released, and updates managedFields. Conflicting changes to fields
/// other managers own are refused unless `force`, which moves their ownership.
pub fn apply(
    root: &Node,
    live: Option<&Value>,
    applied: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let applied_set = field_set(root, applied, w.scope);
    let mut merged = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    merge(root, &mut merged, applied);

    let mut mine = w.entry("Apply", applied_set.clone());
    let mut others = Vec::new();
    let mut last = FieldSet::default();
    for e in live.map(entries).unwrap_or_default() {
        if e.same_identity(&mine) {
            // An unchanged field set keeps its time, so a repeated apply is a true no-op.
            if e.fields == mine.fields {
                mine.time = e.time.clone();
            }
            last = e.fields;
        } else {
            others.push(e);
        }
    }
    let mut keep = applied_set;
    for e in &others {
        keep.union(&e.fields);
    }
    drop_released(&mut merged, &last, &keep);

    let (changed, removed) = compare(root, live, &merged, w.scope);
    let mut conflicts = Vec::new();
    for e in &mut others {
        let clash = e.fields.intersection(&changed);
        if !force {
            conflicts.extend(clash.paths().iter().map(|p| Conflict {
                manager: e.display(),
                path: path_string(p),
            }));
        }
        e.fields.subtract(&clash);
        e.fields.subtract(&removed);
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    others.push(mine);
    set_entries(&mut merged, others);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root() -> Node {
        let mut conditions = Node::deduced();
        conditions.list_type = ListType::Map(vec!["type".into()]);
        let mut status = Node::deduced();
        status.properties.insert("conditions".into(), conditions);
        let mut root = Node::deduced();
        root.properties.insert("status".into(), status);
        root
    }

    fn writer(m: &str) -> Writer<'_> {
        Writer {
            manager: m,
            api_version: "v1",
            subresource: None,
            scope: Scope::All,
            now: "t".into(),
        }
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let obj = json!({"apiVersion": "v1", "metadata": {"name": "x", "labels": {"a": "1"}},
            "spec": {"list": [1], "m": {}}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let set = field_set(&root(), &obj, Scope::All);
        let j = set.to_json();
        assert_eq!(
            j,
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:list": {}},
                "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
        );
        assert_eq!(FieldSet::from_json(&j), set);
        let paths: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
        assert!(paths.contains(&".status.conditions[type=\"Ready\"]".to_string()));
    }

    #[test]
    fn apply_conflicts_force_and_release() {
        let r = root();
        let a = apply(
            &r,
            None,
            &json!({"metadata": {"name": "x"}, "spec": {"a": 1, "b": 2}}),
            &writer("one"),
            false,
        )
        .unwrap();
        // The same value from another manager is shared ownership, not a conflict.
        let b = apply(
            &r,
            Some(&a),
            &json!({"metadata": {"name": "x"}, "spec": {"a": 1}}),
            &writer("two"),
            false,
        )
        .unwrap();
        let err = apply(
            &r,
            Some(&b),
            &json!({"metadata": {"name": "x"}, "spec": {"b": 3}}),
            &writer("two"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "\"one\"".into(),
                path: ".spec.b".into()
            }]
        );
        let c = apply(
            &r,
            Some(&b),
            &json!({"metadata": {"name": "x"}, "spec": {"b": 3}}),
            &writer("two"),
            true,
        )
        .unwrap();
        assert_eq!(c["spec"], json!({"a": 1, "b": 3}));
        // "one" stops applying a (still owned by nobody else: "two" dropped it) and b (taken by "two").
        let d = apply(
            &r,
            Some(&c),
            &json!({"metadata": {"name": "x"}, "spec": {}}),
            &writer("one"),
            false,
        )
        .unwrap();
        assert_eq!(d["spec"], json!({"b": 3}));
        let managers: Vec<String> = entries(&d).iter().map(|e| e.manager.clone()).collect();
        assert_eq!(managers, vec!["two".to_string()]);
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let r = root();
        let a = apply(&r, None, &json!({"spec": {"a": 1}}), &writer("one"), false).unwrap();
        let mut b = a.clone();
        b["spec"]["a"] = json!(2);
        track_update(
            &r,
            Some(&a),
            &mut b,
            incoming_entries(Some(&a), &a),
            &writer("kubectl-edit"),
        );
        let es = entries(&b);
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].manager, "kubectl-edit");
        assert_eq!(es[0].operation, "Update");
        let err = apply(
            &r,
            Some(&b),
            &json!({"spec": {"a": 3}}),
            &writer("one"),
            false,
        )
        .unwrap_err();
        assert_eq!(err[0].manager, "\"kubectl-edit\" using v1");
    }
}
