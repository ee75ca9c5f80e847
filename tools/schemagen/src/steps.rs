//! Kargo's promotion step config schemas, pruned for the provider: references inlined, prose
//! dropped, every validation keyword kept, all steps in one JSON document.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

/// Where Kargo's step schemas are, relative to the repository root.
pub const DEFAULT_SOURCE: &str = "../shared/kargo/v1.11.2/step-schemas";
/// The files the document is committed as, relative to the repository root: the provider's
/// (template validation) and the sandbox's own copy (its steps check their configs with it),
/// so that neither reads the other's files.
pub const OUTPUTS: &[&str] = &[
    "provider/data/step-schemas.json",
    "tests/sandbox/data/step-schemas.json",
];

/// Generates the document from `from` and writes it to every file of [`OUTPUTS`] under `root`;
/// with `check`, writes nothing and fails naming the files that differ.
pub fn run(args: &[String]) -> Result<(), String> {
    let root = crate::repo_root();
    let mut from = root.join(DEFAULT_SOURCE);
    let mut check = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--from" => from = it.next().ok_or("--from needs a directory")?.into(),
            "--check" => check = true,
            other => return Err(format!("steps: unexpected argument {other:?}")),
        }
    }
    let generated = generate(&from)?;
    let mut stale = Vec::new();
    for out in OUTPUTS {
        let path = root.join(out);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
                stale.push(out.to_string());
            }
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&path, &generated).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {out} from {}", from.display());
    }
    if !stale.is_empty() {
        return Err(format!("stale (run `make generate`): {}", stale.join(", ")));
    }
    Ok(())
}

/// Keywords that only annotate: dropped.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$comment",
    "title",
    "description",
    "default",
    "deprecated",
    "examples",
    "definitions",
    "$defs",
];

/// Keywords whose value is kept as written.
const LEAVES: &[&str] = &[
    "type",
    "required",
    "enum",
    "const",
    "pattern",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];

/// Keywords holding one schema, a list of schemas, or a map of schemas.
const ONE: &[&str] = &["items", "additionalProperties", "not", "if", "then", "else"];
const LIST: &[&str] = &["oneOf", "anyOf", "allOf"];
const MAP: &[&str] = &["properties", "patternProperties"];

/// The pruned schemas of every `<step>-config.json` in `dir`, as the pretty-printed JSON
/// document the provider embeds: `{"kargo": "<version>", "steps": {"<step>": schema}}`.
pub fn generate(dir: &Path) -> Result<String, String> {
    let files = read_schemas(dir)?;
    let mut steps = Map::new();
    for (file, schema) in &files {
        let Some(step) = file.strip_suffix("-config.json") else {
            continue;
        };
        let pruned = prune(schema, file, &files, 0)
            .map_err(|e| format!("{}: {e}", dir.join(file).display()))?;
        steps.insert(step.to_string(), pruned);
    }
    if steps.is_empty() {
        return Err(format!("{} holds no *-config.json schema", dir.display()));
    }
    // `.../v1.11.2/step-schemas`: the version is the parent directory's name.
    let version = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.parent()?.file_name()?.to_str().map(str::to_string))
        .filter(|v| v.starts_with('v'))
        .unwrap_or_else(|| "unknown".to_string());
    let document = serde_json::json!({"kargo": version, "steps": steps});
    let mut text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

fn read_schemas(dir: &Path) -> Result<BTreeMap<String, Value>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{} cannot be read: {e}", dir.display()))?;
    let mut files = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
        let schema: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        files.insert(name.to_string(), schema);
    }
    Ok(files)
}

/// `schema` (from `file`) with its references inlined and its annotations dropped. Unknown
/// keywords are an error, so that a constraint Kargo adds later is never lost silently.
fn prune(
    schema: &Value,
    file: &str,
    files: &BTreeMap<String, Value>,
    depth: usize,
) -> Result<Value, String> {
    if depth > 64 {
        return Err("references nest too deeply (a cycle?)".into());
    }
    let object = match schema {
        Value::Bool(_) => return Ok(schema.clone()),
        Value::Object(o) => o,
        other => {
            return Err(format!(
                "a schema must be an object or a boolean, not {other}"
            ));
        }
    };
    let mut out = Map::new();
    let mut target = None;
    for (key, value) in object {
        let k = key.as_str();
        if ANNOTATIONS.contains(&k) {
            continue;
        }
        if k == "$ref" {
            let reference = value.as_str().ok_or("$ref must be a string")?;
            let (ref_file, fragment) = resolve(reference, file, files)?;
            target = Some(prune(fragment, &ref_file, files, depth + 1)?);
        } else if LEAVES.contains(&k) {
            out.insert(key.clone(), value.clone());
        } else if ONE.contains(&k) {
            out.insert(key.clone(), prune(value, file, files, depth + 1)?);
        } else if LIST.contains(&k) {
            let list = value
                .as_array()
                .ok_or_else(|| format!("{k} must be a list"))?;
            let pruned = list
                .iter()
                .map(|s| prune(s, file, files, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(key.clone(), Value::Array(pruned));
        } else if MAP.contains(&k) {
            let map = value
                .as_object()
                .ok_or_else(|| format!("{k} must be an object"))?;
            let mut pruned = Map::new();
            for (name, s) in map {
                pruned.insert(name.clone(), prune(s, file, files, depth + 1)?);
            }
            out.insert(key.clone(), Value::Object(pruned));
        } else {
            return Err(format!(
                "unsupported keyword {k:?}; teach kargo-schemagen about it"
            ));
        }
    }
    Ok(match target {
        None => Value::Object(out),
        Some(target) if out.is_empty() => target,
        Some(target) => serde_json::json!({"allOf": [target, Value::Object(out)]}),
    })
}

/// The file and the schema a `$ref` such as `#/definitions/x` or `other.json#/definitions/x`
/// points at.
fn resolve<'a>(
    reference: &str,
    file: &str,
    files: &'a BTreeMap<String, Value>,
) -> Result<(String, &'a Value), String> {
    let (ref_file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
    let ref_file = if ref_file.is_empty() { file } else { ref_file };
    let document = files
        .get(ref_file)
        .ok_or_else(|| format!("$ref {reference:?} names a file that is not there"))?;
    let fragment = document
        .pointer(pointer)
        .ok_or_else(|| format!("$ref {reference:?} points at nothing"))?;
    Ok((ref_file.to_string(), fragment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, value: Value) {
        std::fs::write(dir.join(name), value.to_string()).unwrap();
    }

    #[test]
    fn references_are_inlined_and_prose_dropped() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "common.json",
            serde_json::json!({"definitions": {"sel": {"type": "object", "description": "d", "minProperties": 1}}}),
        );
        write(
            dir.path(),
            "demo-config.json",
            serde_json::json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "Demo",
                "type": "object",
                "additionalProperties": false,
                "required": ["path"],
                "properties": {
                    "path": {"type": "string", "minLength": 1, "description": "where"},
                    "selector": {"$ref": "common.json#/definitions/sel", "description": "which"},
                    "local": {"$ref": "#/definitions/mode"},
                },
                "definitions": {"mode": {"enum": ["a", "b"], "default": "a"}},
            }),
        );
        let text = generate(dir.path()).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc["steps"],
            serde_json::json!({"demo": {
                "type": "object",
                "additionalProperties": false,
                "required": ["path"],
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "selector": {"type": "object", "minProperties": 1},
                    "local": {"enum": ["a", "b"]},
                },
            }})
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn unknown_keywords_and_dangling_references_fail() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "x-config.json",
            serde_json::json!({"type": "object", "dependentRequired": {"a": ["b"]}}),
        );
        let err = generate(dir.path()).unwrap_err();
        assert!(
            err.contains("unsupported keyword \"dependentRequired\""),
            "{err}"
        );
        write(
            dir.path(),
            "x-config.json",
            serde_json::json!({"properties": {"a": {"$ref": "#/definitions/missing"}}}),
        );
        let err = generate(dir.path()).unwrap_err();
        assert!(err.contains("points at nothing"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(
            generate(empty.path())
                .unwrap_err()
                .contains("no *-config.json")
        );
    }
}
