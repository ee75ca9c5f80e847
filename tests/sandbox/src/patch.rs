//! The non-apply PATCH formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the
//! strategic merge patch of built-in kinds (merge keys and `$patch` directives).

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer {path:?} must start with '/'"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("invalid array index {token:?}"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!("array index {i} out of bounds"));
    }
    Ok(i)
}

fn parent<'a>(doc: &'a mut Value, tokens: &[String], path: &str) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => {
                let i = index(t, a.len(), false)?;
                a.get_mut(i)
            }
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: \"{path}\""))?;
    }
    Ok(cur)
}

fn get(doc: &Value, path: &str) -> Result<Value, String> {
    let mut cur = doc;
    for t in split_pointer(path)? {
        cur = match cur {
            Value::Object(m) => m.get(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: \"{path}\""))?;
    }
    Ok(cur.clone())
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut tokens = split_pointer(path)?;
    let Some(last) = tokens.pop() else {
        *doc = value;
        return Ok(());
    };
    match parent(doc, &tokens, path)? {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let i = index(&last, a.len(), true)?;
            a.insert(i, value);
        }
        _ => return Err(format!("doc is missing path: \"{path}\"")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let mut tokens = split_pointer(path)?;
    let last = tokens.pop().ok_or("cannot remove the whole document")?;
    let missing = || format!("doc is missing path: \"{path}\"");
    match parent(doc, &tokens, path)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i = index(&last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// RFC 6902 operations applied in order; any failure leaves `doc` unspecified.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("operation has no \"op\"")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("operation has no \"path\"")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("{kind} operation has no \"value\""))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{kind} operation has no \"from\""))
        };
        match kind {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "move" => {
                let v = remove(doc, from()?)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let v = get(doc, from()?)?;
                add(doc, path, v)?;
            }
            "test" => {
                if get(doc, path)? != value()? {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

/// How a list of a built-in kind merges under a strategic merge patch.
#[derive(Clone, Copy, PartialEq)]
enum Strategy {
    Replace,
    MergePrimitives,
    MergeKey(&'static str),
}

fn list_strategy(path: &[&str]) -> Strategy {
    match path {
        ["metadata", "finalizers"] => Strategy::MergePrimitives,
        ["metadata", "ownerReferences"] => Strategy::MergeKey("uid"),
        ["secrets"] => Strategy::MergeKey("name"),
        _ => Strategy::Replace,
    }
}

/// A strategic merge patch for the built-in kinds served here: a merge patch whose lists
/// with a merge strategy merge by key, plus the `$patch`, `$deleteFromPrimitiveList` and
/// `$setElementOrder` directives.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    smp(target, patch, &mut Vec::new())
}

fn smp<'a>(target: &mut Value, patch: &'a Value, path: &mut Vec<&'a str>) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return Ok(());
        }
        Some(other) => return Err(format!("unknown patch type: {other}")),
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    for (k, v) in p {
        if k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(gone)) = (t.get_mut(field), v.as_array()) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        path.push(k.as_str());
        let strategy = list_strategy(path);
        match (v, t.get_mut(k)) {
            (Value::Array(items), Some(Value::Array(existing)))
                if strategy != Strategy::Replace =>
            {
                merge_list(existing, items, strategy, path)?;
            }
            (Value::Object(_), Some(existing)) => {
                smp(existing, v, path)?;
                if existing.is_null() {
                    t.remove(k);
                }
            }
            _ => {
                let mut fresh = Value::Null;
                smp(&mut fresh, v, path)?;
                if !fresh.is_null() {
                    t.insert(k.clone(), strip_directives(fresh));
                }
            }
        }
        path.pop();
    }
    Ok(())
}

fn strip_directives(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|k, _| !k.starts_with('$'));
        for x in m.values_mut() {
            *x = strip_directives(std::mem::take(x));
        }
    }
    v
}

fn merge_list<'a>(
    existing: &mut Vec<Value>,
    items: &'a [Value],
    strategy: Strategy,
    path: &mut Vec<&'a str>,
) -> Result<(), String> {
    match strategy {
        Strategy::MergePrimitives => {
            for item in items {
                if !existing.contains(item) {
                    existing.push(item.clone());
                }
            }
        }
        Strategy::MergeKey(key) => {
            for item in items {
                let id = item.get(key);
                let pos = existing
                    .iter()
                    .position(|e| id.is_some() && e.get(key) == id);
                let directive = item.get("$patch").and_then(Value::as_str);
                match (pos, directive) {
                    (Some(i), Some("delete")) => {
                        existing.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => smp(&mut existing[i], item, path)?,
                    (None, _) => existing.push(strip_directives(item.clone())),
                }
            }
        }
        Strategy::Replace => *existing = items.to_vec(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "n": [1]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "n": [1]}));
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"spec": {"list": [1, 2]}, "x": 1});
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/spec/list/-", "value": 3},
                {"op": "replace", "path": "/x", "value": 2},
                {"op": "copy", "from": "/x", "path": "/y"},
                {"op": "move", "from": "/y", "path": "/spec/z"},
                {"op": "remove", "path": "/spec/list/0"},
                {"op": "test", "path": "/spec/z", "value": 2}
            ]),
        )
        .unwrap();
        assert_eq!(doc, json!({"spec": {"list": [2, 3], "z": 2}, "x": 2}));
        let err =
            json_patch(&mut doc, &json!([{"op": "test", "path": "/x", "value": 9}])).unwrap_err();
        assert_eq!(err, "testing value /x failed");
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }

    #[test]
    fn strategic_merge_patch_merges_finalizers_and_owner_references() {
        let mut doc = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}],
            "labels": {"k": "v"}}, "spec": {"finalizers": ["kubernetes"]}});
        strategic_merge_patch(
            &mut doc,
            &json!({"metadata": {"finalizers": ["b"], "ownerReferences": [{"uid": "1", "name": "y"}, {"uid": "2"}],
                "$setElementOrder/finalizers": ["a", "b"], "labels": {"k": null}}, "spec": {"finalizers": []}}),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "1", "name": "y"}, {"uid": "2"}],
                "labels": {}}, "spec": {"finalizers": []}})
        );
        strategic_merge_patch(
            &mut doc,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["b"]));
    }
}
