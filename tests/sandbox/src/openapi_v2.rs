//! `/openapi/v2`: the Swagger 2.0 document with Kargo's kinds as definitions (from their CRDs,
//! reduced to what Swagger 2.0 can say, as the API server publishes CRDs), in JSON or in the
//! protobuf encoding (gnostic's `openapi.v2.Document`) kubectl asks for.

use serde_json::{Map, Value, json};

use crate::discovery::KUBE_VERSION;

/// The media type kubectl asks `/openapi/v2` for.
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The `Content-Type` the API server answers it with (`@` is not allowed in a media type).
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A CRD schema node as Swagger 2.0 carries it: fields whose content is free
/// (`x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string`) become empty schemas
/// and defaulted fields are not required, so that clients validating against it accept what
/// the server accepts.
fn to_v2(node: &Value) -> Value {
    let Some(obj) = node.as_object() else {
        return node.clone();
    };
    let free = [
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
    ];
    if free.iter().any(|k| obj.get(*k) == Some(&Value::Bool(true))) {
        return json!({});
    }
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .map(|p| p.iter().map(|(n, s)| (n.clone(), to_v2(s))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), to_v2(v));
            }
            // A field the server defaults is not required of clients.
            "required" => {
                let defaulted = |name: &str| {
                    obj.get("properties")
                        .and_then(|p| p.get(name))
                        .is_some_and(|p| p.get("default").is_some())
                };
                let required: Vec<Value> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| !defaulted(r.as_str().unwrap_or_default()))
                    .cloned()
                    .collect();
                if !required.is_empty() {
                    out.insert(k.clone(), Value::Array(required));
                }
            }
            // Swagger 2.0 has no composition other than allOf, nor nullable.
            "oneOf" | "anyOf" | "not" | "nullable" | "x-kubernetes-validations" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The Swagger 2.0 document: Kargo's kinds as definitions when Kargo is served.
pub fn document(kargo_served: bool) -> Value {
    let mut definitions = Map::new();
    if kargo_served {
        for crd in crate::schema::catalog().crds.values() {
            let spec = &crd.document["spec"];
            let (group, version) = (
                spec["group"].as_str().unwrap_or_default(),
                spec.pointer("/versions/0/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            let Some(schema) = spec.pointer("/versions/0/schema/openAPIV3Schema") else {
                continue;
            };
            let mut schema = to_v2(schema);
            schema["x-kubernetes-group-version-kind"] =
                json!([{"group": group, "kind": crd.kind, "version": version}]);
            let reversed: Vec<&str> = group.split('.').rev().collect();
            definitions.insert(
                format!("{}.{version}.{}", reversed.join("."), crd.kind),
                schema,
            );
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", KUBE_VERSION.0, KUBE_VERSION.1)},
        "paths": {},
        "definitions": definitions,
    })
}

/// Protobuf writing: tags, varints and length-delimited fields.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.varint(u64::from(field) << 3 | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn message(&mut self, field: u32, m: Pb) {
        self.bytes(field, &m.0);
    }

    fn int(&mut self, field: u32, v: i64) {
        self.varint(u64::from(field) << 3);
        self.varint(v as u64);
    }

    fn boolean(&mut self, field: u32, v: bool) {
        if v {
            self.int(field, 1);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        self.varint(u64::from(field) << 3 | 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// gnostic's `Any`: the value as YAML (JSON is YAML).
fn any(v: &Value) -> Pb {
    let mut m = Pb::default();
    m.string(2, &format!("{v}\n"));
    m
}

/// gnostic's `Schema` from a JSON schema.
fn schema(s: &Value) -> Pb {
    let mut m = Pb::default();
    let Some(obj) = s.as_object() else {
        return m;
    };
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default();
    m.string(1, text("$ref"));
    m.string(2, text("format"));
    m.string(3, text("title"));
    m.string(4, text("description"));
    if let Some(d) = obj.get("default") {
        m.message(5, any(d));
    }
    for (field, key) in [(6, "multipleOf"), (7, "maximum"), (9, "minimum")] {
        if let Some(v) = obj.get(key).and_then(Value::as_f64) {
            m.double(field, v);
        }
    }
    for (field, key) in [
        (8, "exclusiveMaximum"),
        (10, "exclusiveMinimum"),
        (16, "uniqueItems"),
    ] {
        m.boolean(field, obj.get(key) == Some(&Value::Bool(true)));
    }
    for (field, key) in [
        (11, "maxLength"),
        (12, "minLength"),
        (14, "maxItems"),
        (15, "minItems"),
        (17, "maxProperties"),
        (18, "minProperties"),
    ] {
        if let Some(v) = obj.get(key).and_then(Value::as_i64) {
            m.int(field, v);
        }
    }
    m.string(13, text("pattern"));
    for r in obj
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(19, r.as_str().unwrap_or_default());
    }
    for e in obj
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(20, any(e));
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Pb::default();
            item.int(2, i64::from(*b));
            m.message(21, item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Pb::default();
            item.message(1, schema(s));
            m.message(21, item);
        }
        _ => {}
    }
    let types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let mut item = Pb::default();
        for t in types {
            item.string(1, t);
        }
        m.message(22, item);
    }
    match obj.get("items") {
        Some(s @ Value::Object(_)) => {
            let mut item = Pb::default();
            item.message(1, schema(s));
            m.message(23, item);
        }
        Some(Value::Array(ss)) => {
            let mut item = Pb::default();
            for s in ss {
                item.message(1, schema(s));
            }
            m.message(23, item);
        }
        _ => {}
    }
    for s in obj
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(s));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let mut p = Pb::default();
        for (name, s) in props {
            p.message(1, named(name, schema(s)));
        }
        m.message(25, p);
    }
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        m.message(31, named(k, any(v)));
    }
    m
}

/// A gnostic `Named*` pair.
fn named(name: &str, value: Pb) -> Pb {
    let mut m = Pb::default();
    m.string(1, name);
    m.message(2, value);
    m
}

/// The document in gnostic's protobuf encoding.
pub fn protobuf(doc: &Value) -> Vec<u8> {
    let mut d = Pb::default();
    d.string(1, doc["swagger"].as_str().unwrap_or_default());
    let mut info = Pb::default();
    info.string(1, doc["info"]["title"].as_str().unwrap_or_default());
    info.string(2, doc["info"]["version"].as_str().unwrap_or_default());
    d.message(2, info);
    d.message(8, Pb::default());
    let mut defs = Pb::default();
    for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
        defs.message(1, named(name, schema(s)));
    }
    d.message(9, defs);
    d.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_form_fields_become_empty_schemas_and_kinds_carry_their_gvk() {
        let doc = document(true);
        let stage = &doc["definitions"]["io.akuity.kargo.v1alpha1.Stage"];
        assert_eq!(
            stage["x-kubernetes-group-version-kind"],
            json!([{"group": "kargo.akuity.io", "kind": "Stage", "version": "v1alpha1"}])
        );
        let step = &stage["properties"]["spec"]["properties"]["promotionTemplate"]["properties"]["spec"]
            ["properties"]["steps"]["items"];
        assert_eq!(step["properties"]["config"], json!({}));
        assert_eq!(step["properties"]["as"], json!({"type": "string"}));
        assert_eq!(doc["definitions"].as_object().unwrap().len(), 9);
        assert!(
            document(false)["definitions"]
                .as_object()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn protobuf_fields_are_gnostics() {
        let doc =
            json!({"swagger": "2.0", "info": {"title": "K", "version": "v1"}, "definitions": {}});
        let mut want = vec![0x0a, 0x03];
        want.extend_from_slice(b"2.0");
        want.extend_from_slice(&[0x12, 0x07, 0x0a, 0x01, b'K', 0x12, 0x02]);
        want.extend_from_slice(b"v1");
        want.extend_from_slice(&[0x42, 0x00, 0x4a, 0x00]);
        assert_eq!(protobuf(&doc), want);
        // max_length = 11 (varint), type = 22 (TypeItem { value = 1 }).
        let mut want = vec![0x58, 0x03, 0xb2, 0x01, 0x08, 0x0a, 0x06];
        want.extend_from_slice(b"string");
        assert_eq!(schema(&json!({"type": "string", "maxLength": 3})).0, want);
    }
}
