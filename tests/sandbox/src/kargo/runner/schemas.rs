//! Kargo's published step-config JSON schemas (the sandbox's committed copy) as a test oracle: each evaluated config is checked against
//! its schema and failures are worded as Kargo's gojsonschema-based validation words them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::error::ValidationErrorKind as K;
use serde_json::Value;

/// Kargo's step config schemas (references inlined, prose dropped), as `kargo-schemagen steps`
/// generates them into this crate's data; a test of the tool fails when they are stale.
const STEP_SCHEMAS: &str = include_str!("../../../data/step-schemas.json");

/// Each step's schema from the committed document. The document is checked by this crate's
/// tests, so a failure to parse it is a defect of the build, not of a user's input.
fn schemas() -> &'static serde_json::Map<String, Value> {
    static SCHEMAS: OnceLock<serde_json::Map<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let doc: Value = serde_json::from_str(STEP_SCHEMAS)
            .unwrap_or_else(|e| panic!("the committed step schemas do not parse: {e}"));
        match doc.get("steps") {
            Some(Value::Object(steps)) => steps.clone(),
            _ => panic!("the committed step schemas have no `steps` object"),
        }
    })
}

fn validator(kind: &str) -> Option<Arc<jsonschema::Validator>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<jsonschema::Validator>>>>> =
        OnceLock::new();
    let mut cache = crate::server::lock(CACHE.get_or_init(Default::default));
    cache
        .entry(kind.to_string())
        .or_insert_with(|| compile(kind).map(Arc::new))
        .clone()
}

fn compile(kind: &str) -> Option<jsonschema::Validator> {
    let schema = schemas().get(kind)?;
    match jsonschema::options().build(schema) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(kind, error = %e, "cannot compile Kargo's step schema");
            None
        }
    }
}

/// gojsonschema's name for a field: `(root)` or the dotted instance path.
fn field(path: &str) -> String {
    let dotted = path.trim_start_matches('/').replace('/', ".");
    if dotted.is_empty() {
        "(root)".to_string()
    } else {
        dotted
    }
}

fn describe(kind: &K, instance: &Value) -> String {
    let given = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    match kind {
        K::Required { property } => {
            format!("{} is required", property.as_str().unwrap_or_default())
        }
        K::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|p| format!("Additional property {p} is not allowed"))
            .collect::<Vec<_>>()
            .join(", "),
        K::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => t.to_string(),
                jsonschema::error::TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            format!(
                "Invalid type. Expected: {expected}, given: {}",
                given(instance)
            )
        }
        K::MinLength { limit } => {
            format!("String length must be greater than or equal to {limit}")
        }
        K::MaxLength { limit } => format!("String length must be less than or equal to {limit}"),
        K::MinItems { limit } => format!("Array must have at least {limit} items"),
        K::MaxItems { limit } => format!("Array must have at most {limit} items"),
        K::MinProperties { limit } => format!("Must have at least {limit} properties"),
        K::Minimum { limit } => format!("Must be greater than or equal to {limit}"),
        K::Maximum { limit } => format!("Must be less than or equal to {limit}"),
        K::Pattern { pattern } => format!("Does not match pattern '{pattern}'"),
        K::Format { format } => format!("Does not match format '{format}'"),
        K::Enum { options } => {
            let allowed = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("must be one of the following: {allowed}")
        }
        K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } => {
            "Must validate one and only one schema (oneOf)".to_string()
        }
        K::AnyOf { .. } => "Must validate at least one schema (anyOf)".to_string(),
        K::Not { .. } => "Must not validate the schema (not)".to_string(),
        other => format!("{other:?}"),
    }
}

/// Checks `config` against the schema of step `kind`; `Err` carries Kargo's message
/// (`invalid <kind> config: <field>: <description>`, one line per violation). A step without a
/// schema passes.
pub fn validate(kind: &str, config: &Value) -> Result<(), String> {
    let Some(v) = validator(kind) else {
        return Ok(());
    };
    // Kargo validates a missing config as an empty object.
    let empty = Value::Object(Default::default());
    let doc = if config.is_null() { &empty } else { config };
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| {
            let path = e.instance_path().as_str().to_string();
            let desc = match e.kind() {
                K::Enum { .. } => format!("{} {}", field(&path), describe(e.kind(), e.instance())),
                k => describe(k, e.instance()),
            };
            format!("{}: {desc}", field(&path))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid {kind} config: {}", errors.join("\n")))
    }
}
