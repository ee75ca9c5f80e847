//! Discovery documents (`/version`, `/api`, `/apis`, resource lists) and the minimal
//! OpenAPI answers kubectl and kube-rs need to work against the sandbox.

use serde_json::{Value, json};

use crate::resources::{Backing, RESOURCES, ResourceDef};

/// The Kubernetes version the sandbox reports.
pub const KUBE_VERSION: (&str, &str) = ("1", "33");

pub fn version() -> Value {
    json!({
        "major": KUBE_VERSION.0,
        "minor": KUBE_VERSION.1,
        "gitVersion": format!("v{}.{}.0+kargo-sandbox", KUBE_VERSION.0, KUBE_VERSION.1),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn served(res: &ResourceDef, kargo_served: bool) -> bool {
    kargo_served || !res.is_kargo()
}

/// `/apis`.
pub fn groups(kargo_served: bool) -> Value {
    let groups: Vec<Value> = crate::resources::groups()
        .into_iter()
        .filter(|(g, _)| kargo_served || *g != crate::resources::KARGO_GROUP)
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(group: &str, kargo_served: bool) -> Option<Value> {
    let (g, v) = crate::resources::groups()
        .into_iter()
        .find(|(g, _)| *g == group && (kargo_served || *g != crate::resources::KARGO_GROUP))?;
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv.clone()], "preferredVersion": gv}),
    )
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(group: &str, version: &str, kargo_served: bool) -> Option<Value> {
    let defs: Vec<&ResourceDef> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && served(r, kargo_served))
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in defs {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": match r.backing {
                Backing::Review => json!(["create"]),
                Backing::Crds => json!(["get", "list"]),
                Backing::Store => json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]),
            },
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        // Kubernetes puts its workload kinds in `all`; Kargo's CRDs declare no categories.
        if r.group.is_empty() && matches!(r.plural, "pods" | "services") {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        if r.status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// `/openapi/v3`: the index of group-version documents; each URL's `hash` is the digest of the
/// document, so clients' caches follow its content.
pub fn openapi_v3_index(kargo_served: bool) -> Value {
    let mut paths = serde_json::Map::new();
    let mut add = |key: String, group: &str, version: &str| {
        if let Some(doc) = openapi_v3_document(group, version, kargo_served) {
            let hash = content_hash(&doc);
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
        }
    };
    add("api/v1".into(), "", "v1");
    for (g, v) in crate::resources::groups() {
        add(format!("apis/{g}/{v}"), g, v);
    }
    json!({"paths": paths})
}

/// The SHA-256 of a document's JSON, upper-case hex (as the API server writes its hashes).
fn content_hash(doc: &Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(doc.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// The OpenAPI component name of a kind: the group reversed, then version and kind
/// (`io.akuity.kargo.v1alpha1.Stage`), as the API server names CRD schemas.
fn component_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// `/openapi/v3/<api|apis/group>/<version>`: one PATCH operation per kind, which is what
/// kubectl reads to learn that the server validates fields (`fieldValidation`) itself, and
/// the schemas of Kargo's kinds from their CRDs.
pub fn openapi_v3_document(group: &str, version: &str, kargo_served: bool) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && served(r, kargo_served))
    {
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}});
        let mut body = json!({"schema": {"type": "object"}});
        // Kargo's kinds carry their CRD's schema, which `kubectl explain` reads.
        if let Some(crd) = crate::schema::catalog()
            .crds
            .get(r.plural)
            .filter(|_| r.is_kargo())
            && let Some(schema) = crd
                .document
                .pointer("/spec/versions/0/schema/openAPIV3Schema")
        {
            let name = component_name(group, version, r.kind);
            let mut schema = schema.clone();
            schema["x-kubernetes-group-version-kind"] =
                json!([{"group": group, "version": version, "kind": r.kind}]);
            schemas.insert(name.clone(), schema);
            body = json!({"schema": {"$ref": format!("#/components/schemas/{name}")}});
        }
        paths.insert(
            path,
            json!({"patch": {
                "operationId": format!("patch{}", r.kind),
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
                "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation"), param("force")],
                "requestBody": {"content": {
                    "application/json-patch+json": body,
                    "application/merge-patch+json": body,
                    "application/apply-patch+yaml": body,
                }},
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", KUBE_VERSION.0, KUBE_VERSION.1)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_v3_carries_kargos_schemas_and_hashes_each_document() {
        let doc = openapi_v3_document("kargo.akuity.io", "v1alpha1", true).unwrap();
        let stage = &doc["components"]["schemas"]["io.akuity.kargo.v1alpha1.Stage"];
        assert_eq!(
            stage["x-kubernetes-group-version-kind"],
            json!([{"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Stage"}])
        );
        assert_eq!(
            stage["properties"]["spec"]["required"],
            json!(["requestedFreight"])
        );
        assert_eq!(doc["components"]["schemas"].as_object().unwrap().len(), 9);
        let index = openapi_v3_index(true);
        let url = index["paths"]["apis/kargo.akuity.io/v1alpha1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert_eq!(
            url,
            format!(
                "/openapi/v3/apis/kargo.akuity.io/v1alpha1?hash={}",
                content_hash(&doc)
            )
        );
        let core = index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert_ne!(core.rsplit('=').next(), url.rsplit('=').next());
        assert!(
            openapi_v3_index(false)["paths"]
                .get("apis/kargo.akuity.io/v1alpha1")
                .is_none()
        );
    }

    #[test]
    fn kargo_group_is_listed_only_when_served() {
        let names = |v: Value| -> Vec<String> {
            v["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(names(groups(true)).contains(&"kargo.akuity.io".to_string()));
        assert!(!names(groups(false)).contains(&"kargo.akuity.io".to_string()));
        assert!(resource_list("kargo.akuity.io", "v1alpha1", false).is_none());
        let list = resource_list("kargo.akuity.io", "v1alpha1", true).unwrap();
        let stage_status = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "stages/status");
        assert!(stage_status);
        let tasks = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "promotiontasks/status");
        assert!(!tasks);
    }
}
