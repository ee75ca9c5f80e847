//! `crds`: Kargo's CustomResourceDefinitions reduced to what an API server acts on — names,
//! scope, versions, printer columns and the structural schema — with the prose left out.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Schema keywords that are documentation only.
const PROSE: &[&str] = &["description", "title", "example", "externalDocs"];

/// Schema keywords whose values are facts kept as they are.
const FACTS: &[&str] = &[
    "$ref",
    "$schema",
    "id",
    "type",
    "format",
    "default",
    "enum",
    "pattern",
    "required",
    "nullable",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "multipleOf",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
];

/// Fields of one `x-kubernetes-validations` rule (the message is the API server's error text).
const RULE_FIELDS: &[&str] = &[
    "rule",
    "message",
    "messageExpression",
    "reason",
    "fieldPath",
    "optionalOldSelf",
];

/// Where the upstream CRDs are by default: `../shared/kargo/v1.11.2/crds` beside the repository.
pub fn default_from() -> PathBuf {
    crate::repo_root().join("../shared/kargo/v1.11.2/crds")
}

/// Where the sandbox reads its CRD facts from.
pub fn default_out() -> PathBuf {
    crate::repo_root().join("tests/sandbox/data/crds")
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: expected an object"))
}

/// The facts of one schema node; an unknown keyword is an error, so that nothing an API
/// server would act on is dropped silently when Kargo's CRDs change.
fn schema(v: &Value, path: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, value) in object(v, path)? {
        let here = format!("{path}.{key}");
        let kept = match key.as_str() {
            k if PROSE.contains(&k) => continue,
            k if FACTS.contains(&k) => value.clone(),
            "properties" | "patternProperties" | "definitions" => {
                let mut children = Map::new();
                for (name, child) in object(value, &here)? {
                    children.insert(name.clone(), schema(child, &format!("{here}.{name}"))?);
                }
                Value::Object(children)
            }
            "allOf" | "oneOf" | "anyOf" => Value::Array(
                value
                    .as_array()
                    .ok_or_else(|| format!("{here}: expected a list"))?
                    .iter()
                    .enumerate()
                    .map(|(i, s)| schema(s, &format!("{here}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            "not" => schema(value, &here)?,
            "items" if value.is_array() => {
                return Err(format!("{here}: a list of item schemas is not structural"));
            }
            "items" => schema(value, &here)?,
            "additionalProperties" | "additionalItems" if value.is_boolean() => value.clone(),
            "additionalProperties" | "additionalItems" => schema(value, &here)?,
            "dependencies" => {
                let mut deps = Map::new();
                for (name, dep) in object(value, &here)? {
                    let kept = if dep.is_array() {
                        dep.clone()
                    } else {
                        schema(dep, &format!("{here}.{name}"))?
                    };
                    deps.insert(name.clone(), kept);
                }
                Value::Object(deps)
            }
            "x-kubernetes-validations" => Value::Array(
                value
                    .as_array()
                    .ok_or_else(|| format!("{here}: expected a list"))?
                    .iter()
                    .enumerate()
                    .map(|(i, rule)| pick(rule, RULE_FIELDS, &format!("{here}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(format!("{here}: unknown schema keyword {other:?}")),
        };
        out.insert(key.clone(), kept);
    }
    Ok(Value::Object(out))
}

/// The listed fields of an object, refusing any other.
fn pick(v: &Value, fields: &[&str], path: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, value) in object(v, path)? {
        if !fields.contains(&key.as_str()) {
            return Err(format!("{path}.{key}: unknown field"));
        }
        out.insert(key.clone(), value.clone());
    }
    Ok(Value::Object(out))
}

fn version(v: &Value, path: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, value) in object(v, path)? {
        let here = format!("{path}.{key}");
        let kept = match key.as_str() {
            "name" | "served" | "storage" | "deprecated" | "deprecationWarning"
            | "subresources" | "selectableFields" => value.clone(),
            "schema" => {
                let root = object(value, &here)?
                    .get("openAPIV3Schema")
                    .ok_or_else(|| format!("{here}: no openAPIV3Schema"))?;
                let mut s = Map::new();
                s.insert(
                    "openAPIV3Schema".into(),
                    schema(root, &format!("{here}.openAPIV3Schema"))?,
                );
                Value::Object(s)
            }
            "additionalPrinterColumns" => Value::Array(
                value
                    .as_array()
                    .ok_or_else(|| format!("{here}: expected a list"))?
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let mut c = object(c, &format!("{here}[{i}]"))?.clone();
                        c.remove("description");
                        pick(
                            &Value::Object(c),
                            &["name", "type", "format", "jsonPath", "priority"],
                            &format!("{here}[{i}]"),
                        )
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(format!("{here}: unknown field {other:?}")),
        };
        out.insert(key.clone(), kept);
    }
    Ok(Value::Object(out))
}

/// One CRD document reduced to its facts.
pub fn reduce(doc: &Value) -> Result<Value, String> {
    if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        return Err("not a CustomResourceDefinition".into());
    }
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or("no metadata.name")?;
    let mut spec = Map::new();
    for (key, value) in object(doc.get("spec").ok_or("no spec")?, "spec")? {
        let kept = match key.as_str() {
            "group" | "scope" | "preserveUnknownFields" | "conversion" => value.clone(),
            "names" => pick(
                value,
                &[
                    "kind",
                    "listKind",
                    "plural",
                    "singular",
                    "shortNames",
                    "categories",
                ],
                "spec.names",
            )?,
            "versions" => Value::Array(
                value
                    .as_array()
                    .ok_or("spec.versions: expected a list")?
                    .iter()
                    .enumerate()
                    .map(|(i, v)| version(v, &format!("spec.versions[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(format!("spec.{other}: unknown field")),
        };
        spec.insert(key.clone(), kept);
    }
    Ok(serde_json::json!({
        "apiVersion": doc.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": spec,
    }))
}

/// The generated files (name, content) for the CRDs in `from`, in name order.
pub fn generate(from: &Path) -> Result<Vec<(String, String)>, String> {
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{}: no CRD files (*.yaml)", from.display()));
    }
    let mut out = Vec::new();
    for path in paths {
        let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let text = std::fs::read_to_string(&path).map_err(|e| failed(&e))?;
        let doc: Value = serde_yaml::from_str(&text).map_err(|e| failed(&e))?;
        let facts = reduce(&doc).map_err(|e| failed(&e))?;
        let mut json = serde_json::to_string_pretty(&facts).map_err(|e| failed(&e))?;
        json.push('\n');
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| failed(&"file name is not UTF-8"))?;
        out.push((format!("{stem}.json"), json));
    }
    Ok(out)
}

/// How the files in `out` differ from `generated`: one line per file that is missing,
/// stale or left over. Empty when they are the same.
pub fn differences(out: &Path, generated: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, content) in generated {
        match std::fs::read_to_string(out.join(name)) {
            Ok(committed) if committed == *content => {}
            Ok(_) => found.push(format!("{name} differs from what the CRDs generate")),
            Err(_) => found.push(format!("{name} is missing")),
        }
    }
    for name in committed_files(out) {
        if !generated.iter().any(|(g, _)| *g == name) {
            found.push(format!("{name} is not generated from any CRD"));
        }
    }
    found
}

fn committed_files(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `kargo-schemagen crds [--from DIR] [--out DIR] [--check]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let (mut from, mut out, mut check) = (default_from(), default_out(), false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--from" => from = it.next().ok_or("--from needs a directory")?.into(),
            "--out" => out = it.next().ok_or("--out needs a directory")?.into(),
            "--check" => check = true,
            other => return Err(format!("crds: unexpected argument {other:?}")),
        }
    }
    let generated = generate(&from)?;
    if check {
        let diffs = differences(&out, &generated);
        if diffs.is_empty() {
            println!("{}: up to date", out.display());
            return Ok(());
        }
        return Err(format!(
            "{} is stale (run `make generate`):\n  {}",
            out.display(),
            diffs.join("\n  ")
        ));
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for name in committed_files(&out) {
        if !generated.iter().any(|(g, _)| *g == name) {
            let stale = out.join(&name);
            std::fs::remove_file(&stale).map_err(|e| format!("{}: {e}", stale.display()))?;
        }
    }
    for (name, content) in &generated {
        let path = out.join(name);
        std::fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!(
        "wrote {} CRDs from {} to {}",
        generated.len(),
        from.display(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prose_goes_and_facts_stay() {
        let node = json!({
            "type": "object",
            "description": "prose",
            "required": ["spec"],
            "properties": {
                "description": {"type": "string", "description": "a field named description", "maxLength": 5},
                "spec": {"type": "object", "default": {"description": "data, not prose"},
                    "x-kubernetes-validations": [{"rule": "self.a", "message": "a must hold"}]},
                "list": {"type": "array", "items": {"type": "string", "enum": ["A"]}, "x-kubernetes-list-type": "set"},
                "any": {"additionalProperties": true},
            },
        });
        assert_eq!(
            schema(&node, "").unwrap(),
            json!({
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "description": {"type": "string", "maxLength": 5},
                    "spec": {"type": "object", "default": {"description": "data, not prose"},
                        "x-kubernetes-validations": [{"rule": "self.a", "message": "a must hold"}]},
                    "list": {"type": "array", "items": {"type": "string", "enum": ["A"]}, "x-kubernetes-list-type": "set"},
                    "any": {"additionalProperties": true},
                },
            })
        );
    }

    #[test]
    fn unknown_keywords_are_refused_with_their_path() {
        let node = json!({"properties": {"a": {"type": "string", "x-kubernetes-new-marker": 1}}});
        assert_eq!(
            schema(&node, "root").unwrap_err(),
            "root.properties.a.x-kubernetes-new-marker: unknown schema keyword \"x-kubernetes-new-marker\""
        );
        let rule = json!({"x-kubernetes-validations": [{"rule": "true", "hint": "x"}]});
        assert_eq!(
            schema(&rule, "s").unwrap_err(),
            "s.x-kubernetes-validations[0].hint: unknown field"
        );
    }

    #[test]
    fn a_crd_keeps_names_versions_and_columns_without_prose() {
        let doc = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.example.io", "annotations": {"controller-gen.kubebuilder.io/version": "v0"}},
            "spec": {
                "group": "example.io",
                "names": {"kind": "Thing", "listKind": "ThingList", "plural": "things", "singular": "thing"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "additionalPrinterColumns": [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "prose"}],
                    "schema": {"openAPIV3Schema": {"type": "object", "description": "prose"}},
                    "subresources": {"status": {}},
                }],
            },
        });
        assert_eq!(
            reduce(&doc).unwrap(),
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "things.example.io"},
                "spec": {
                    "group": "example.io",
                    "names": {"kind": "Thing", "listKind": "ThingList", "plural": "things", "singular": "thing"},
                    "scope": "Namespaced",
                    "versions": [{
                        "name": "v1", "served": true, "storage": true,
                        "additionalPrinterColumns": [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                        "schema": {"openAPIV3Schema": {"type": "object"}},
                        "subresources": {"status": {}},
                    }],
                },
            })
        );
        assert_eq!(
            reduce(&json!({"kind": "ConfigMap"})).unwrap_err(),
            "not a CustomResourceDefinition"
        );
    }

    #[test]
    fn generation_and_comparison_of_a_directory() {
        let (from_dir, out_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, out) = (from_dir.path(), out_dir.path());
        let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a.x}\n\
                   spec: {group: x, names: {kind: A, plural: as}, scope: Cluster, versions: []}\n";
        std::fs::write(from.join("x_as.yaml"), crd).unwrap();
        let generated = generate(from).unwrap();
        assert_eq!(generated.len(), 1);
        assert_eq!(generated[0].0, "x_as.json");
        assert_eq!(differences(out, &generated), vec!["x_as.json is missing"]);
        std::fs::write(out.join("x_as.json"), &generated[0].1).unwrap();
        std::fs::write(out.join("old.json"), "{}").unwrap();
        assert_eq!(
            differences(out, &generated),
            vec!["old.json is not generated from any CRD"]
        );
        std::fs::write(out.join("x_as.json"), "{}").unwrap();
        assert_eq!(
            differences(out, &generated)[0],
            "x_as.json differs from what the CRDs generate"
        );
        let args: Vec<String> = [
            "--from",
            from.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        run(&args).unwrap();
        assert!(differences(out, &generated).is_empty());
        assert!(!out.join("old.json").exists(), "stale files are removed");
        let empty = tempfile::tempdir().unwrap();
        assert!(generate(empty.path()).unwrap_err().contains("no CRD files"));
    }
}
