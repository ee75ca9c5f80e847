//! Server-side printing (`Accept: application/json;as=Table`): the columns `kubectl get` shows,
//! taken from a CRD's printer columns (evaluated with a small JSONPath) or the built-in kinds.

use serde_json::{Value, json};

use crate::resources::ResourceDef;
use crate::schema;
use crate::store::meta_str;

#[derive(Clone, Debug)]
enum Source {
    Name,
    Path(String),
    Age(String),
    Count(&'static [&'static str]),
    EventObject,
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    ty: &'static str,
    format: &'static str,
    priority: i64,
    description: String,
    source: Source,
}

fn col(name: &str, ty: &'static str, source: Source) -> Column {
    Column {
        name: name.into(),
        ty,
        format: "",
        priority: 0,
        description: String::new(),
        source,
    }
}

fn name_column() -> Column {
    Column {
        format: "name",
        description: "Name must be unique within a namespace.".into(),
        ..col("Name", "string", Source::Name)
    }
}

fn age() -> Column {
    col(
        "Age",
        "date",
        Source::Age(".metadata.creationTimestamp".into()),
    )
}

fn columns(res: &ResourceDef) -> Vec<Column> {
    if res.is_kargo()
        && let Some(crd) = schema::catalog().crds.get(res.plural)
    {
        let mut cols = vec![name_column()];
        for c in &crd.columns {
            let source = if c.ty == "date" {
                Source::Age(c.json_path.clone())
            } else {
                Source::Path(c.json_path.clone())
            };
            let ty = match c.ty.as_str() {
                "integer" => "integer",
                "number" => "number",
                "boolean" => "boolean",
                "date" => "date",
                _ => "string",
            };
            cols.push(Column {
                priority: c.priority,
                ..col(&c.name, ty, source)
            });
        }
        return cols;
    }
    match (res.group, res.plural) {
        ("apiextensions.k8s.io", "customresourcedefinitions") => vec![
            name_column(),
            col(
                "Created At",
                "date",
                Source::Path(".metadata.creationTimestamp".into()),
            ),
        ],
        ("", "namespaces") => vec![
            name_column(),
            col("Status", "string", Source::Path(".status.phase".into())),
            age(),
        ],
        ("", "secrets") => vec![
            name_column(),
            col("Type", "string", Source::Path(".type".into())),
            col("Data", "integer", Source::Count(&["data"])),
            age(),
        ],
        ("", "configmaps") => vec![
            name_column(),
            col("Data", "integer", Source::Count(&["data", "binaryData"])),
            age(),
        ],
        ("", "serviceaccounts") => vec![
            name_column(),
            col("Secrets", "integer", Source::Count(&["secrets"])),
            age(),
        ],
        ("", "events") => vec![
            col("Last Seen", "string", Source::Age(".lastTimestamp".into())),
            col("Type", "string", Source::Path(".type".into())),
            col("Reason", "string", Source::Path(".reason".into())),
            col("Object", "string", Source::EventObject),
            col("Message", "string", Source::Path(".message".into())),
        ],
        _ => vec![name_column(), age()],
    }
}

#[derive(Debug, PartialEq)]
enum Seg {
    Field(String),
    Index(usize),
    Filter(String, String),
}

/// Parses the JSONPath forms CRD printer columns use: `.a.b`, escaped dots
/// (`.metadata.labels.kargo\.akuity\.io/alias`), `[0]` and `[?(@.type=="Ready")]`.
fn parse_path(path: &str) -> Vec<Seg> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut segs = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    let flush = |cur: &mut String, segs: &mut Vec<Seg>| {
        if !cur.is_empty() {
            segs.push(Seg::Field(std::mem::take(cur)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '.' => flush(&mut cur, &mut segs),
            '[' => {
                flush(&mut cur, &mut segs);
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                if let Ok(i) = inner.parse::<usize>() {
                    segs.push(Seg::Index(i));
                } else if let Some(expr) =
                    inner.strip_prefix("?(@.").and_then(|e| e.strip_suffix(')'))
                    && let Some((k, v)) = expr.split_once("==")
                {
                    segs.push(Seg::Filter(
                        k.trim().into(),
                        v.trim().trim_matches('"').trim_matches('\'').into(),
                    ));
                }
            }
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut segs);
    segs
}

fn eval<'v>(obj: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = obj;
    for seg in parse_path(path) {
        cur = match seg {
            Seg::Field(f) => cur.get(&f)?,
            Seg::Index(i) => cur.get(i)?,
            Seg::Filter(k, v) => cur.as_array()?.iter().find(|e| match e.get(&k) {
                Some(Value::String(s)) => *s == v,
                Some(other) => serde_json::from_str::<Value>(&v).is_ok_and(|want| want == *other),
                None => false,
            })?,
        };
    }
    Some(cur)
}

/// A duration as kubectl's AGE column shows it (`45s`, `3m12s`, `5h`, `2d3h`, `1y20d`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (mins, hours) = (secs / 60, secs / 3600);
    let with_rest = |big: i64, unit: &str, rest: i64, rest_unit: &str| {
        if rest == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{rest}{rest_unit}")
        }
    };
    match () {
        _ if secs < 120 => format!("{secs}s"),
        _ if mins < 10 => with_rest(mins, "m", secs % 60, "s"),
        _ if mins < 180 => format!("{mins}m"),
        _ if hours < 8 => with_rest(hours, "h", mins % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => with_rest(hours / 24, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{}d", hours / 24),
        _ if hours < 24 * 365 * 8 => with_rest(hours / 24 / 365, "y", (hours / 24) % 365, "d"),
        _ => format!("{}y", hours / 24 / 365),
    }
}

fn cell(c: &Column, obj: &Value, now: jiff::Timestamp) -> Value {
    match &c.source {
        Source::Name => Value::from(meta_str(obj, "name").unwrap_or_default()),
        Source::Path(p) => match eval(obj, p) {
            None | Some(Value::Null) => Value::Null,
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v.clone(),
            Some(other) => Value::from(other.to_string()),
        },
        Source::Age(p) => eval(obj, p)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| Value::from(human_duration(now.as_second() - t.as_second())))
            .unwrap_or(Value::from("<unknown>")),
        Source::Count(fields) => {
            let n: usize = fields
                .iter()
                .map(|f| match obj.get(f) {
                    Some(Value::Object(m)) => m.len(),
                    Some(Value::Array(a)) => a.len(),
                    _ => 0,
                })
                .sum();
            Value::from(n)
        }
        Source::EventObject => {
            let kind = obj
                .pointer("/involvedObject/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = obj
                .pointer("/involvedObject/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Value::from(format!("{}/{name}", kind.to_lowercase()))
        }
    }
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

/// A `meta.k8s.io/v1` Table of `objects`.
pub fn table(
    res: &ResourceDef,
    objects: &[&Value],
    rv: &str,
    include: Include,
    now: jiff::Timestamp,
) -> Value {
    let cols = columns(res);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(c, o, now)).collect();
            let object = match include {
                Include::None => Value::Null,
                Include::Object => (*o).clone(),
                Include::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_forms_of_printer_columns() {
        let obj = json!({"metadata": {"labels": {"kargo.akuity.io/alias": "fluffy-cat"}},
            "status": {"conditions": [{"type": "Healthy", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            eval(&obj, r".metadata.labels.kargo\.akuity\.io/alias"),
            Some(&json!("fluffy-cat"))
        );
        assert_eq!(
            eval(&obj, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(&json!("True"))
        );
        assert_eq!(
            eval(&obj, ".status.conditions[0].type"),
            Some(&json!("Healthy"))
        );
        assert_eq!(eval(&obj, ".spec.shard"), None);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(5 * 3600), "5h");
        assert_eq!(human_duration(51 * 3600), "2d3h");
        assert_eq!(human_duration(400 * 86400), "400d");
    }
}
