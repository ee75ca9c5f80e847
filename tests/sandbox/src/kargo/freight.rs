//! The Freight webhook: the ID recomputed on create, alias generation and label sync,
//! artifacts checked against the Warehouse, immutability, approvals and in-use deletion.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::names::{freight_id, origin_key, pick_alias};
use super::project::validate_project_namespace;
use super::urls;
use super::util::{
    self, FieldError, GROUP, LABEL_ALIAS, arr_at, conflict, forbidden_error, format_time, invalid,
    name, remove_label, set_label, str_at,
};
use crate::hooks::{AdmissionRequest, ApiError, Operation, Txn};

pub const WEBHOOK: &str = "freight.kargo.akuity.io";

fn alias_taken(all: &[Value], alias: &str, except: &str) -> bool {
    all.iter().any(|f| {
        name(f) != except
            && (util::label(f, LABEL_ALIAS) == Some(alias) || str_at(f, "alias") == alias)
    })
}

/// The defaulting Kargo applies to a new Freight: name from its artifacts, `discoveredAt`,
/// and an alias (generated when absent) mirrored into the alias label.
pub fn default_new(obj: &mut Value, existing: &[Value], now: jiff::Timestamp) {
    let id = freight_id(obj);
    util::obj_mut(obj, "metadata").insert("name".to_string(), json!(id));
    if str_at(obj, "discoveredAt").is_empty() {
        obj["discoveredAt"] = json!(format_time(now));
    }
    let mut alias = str_at(obj, "alias").to_string();
    if alias.is_empty() {
        alias = pick_alias(&id, |a| alias_taken(existing, a, &id));
        obj["alias"] = json!(alias);
    }
    set_label(obj, LABEL_ALIAS, &alias);
}

/// Keeps the alias label in step with `alias` on updates (an emptied alias drops the label)
/// and backfills `discoveredAt` from the creation time.
fn default_update(obj: &mut Value) {
    if str_at(obj, "discoveredAt").is_empty() {
        let created = str_at(obj, "metadata.creationTimestamp").to_string();
        if !created.is_empty() {
            obj["discoveredAt"] = json!(created);
        }
    }
    let alias = str_at(obj, "alias").to_string();
    if alias.is_empty() {
        remove_label(obj, LABEL_ALIAS);
    } else {
        set_label(obj, LABEL_ALIAS, &alias);
    }
}

/// Each artifact must belong to exactly one of the Warehouse's subscriptions, and every
/// subscription must be represented exactly once (`validateFreightArtifacts`).
pub fn artifact_errors(freight: &Value, warehouse: &Value) -> Vec<FieldError> {
    let wh_name = name(warehouse);
    let mut subs: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for sub in arr_at(warehouse, "spec.subscriptions") {
        if let Some(g) = sub.get("git") {
            subs.insert((urls::normalize_git(str_at(g, "repoURL")), "commits"), 0);
        }
        if let Some(i) = sub.get("image") {
            subs.insert((str_at(i, "repoURL").to_string(), "images"), 0);
        }
        if let Some(c) = sub.get("chart") {
            let key = urls::join_path(&[
                &urls::normalize_chart(str_at(c, "repoURL")),
                str_at(c, "name"),
            ]);
            subs.insert((key, "charts"), 0);
        }
    }
    let mut errs = Vec::new();
    let kinds: [(&'static str, &str); 3] = [
        ("commits", "Git repository"),
        ("images", "image repository"),
        ("charts", "Helm chart"),
    ];
    for (path, what) in kinds {
        for artifact in arr_at(freight, path) {
            let key = match path {
                "commits" => urls::normalize_git(str_at(artifact, "repoURL")),
                "images" => str_at(artifact, "repoURL").to_string(),
                _ => urls::join_path(&[
                    &urls::normalize_chart(str_at(artifact, "repoURL")),
                    str_at(artifact, "name"),
                ]),
            };
            match subs.get_mut(&(key, path)) {
                Some(count) => *count += 1,
                None => errs.push(invalid(
                    path,
                    artifact,
                    &format!("no subscription found for {what} in Warehouse {wh_name:?}"),
                )),
            }
        }
    }
    for ((url, path), count) in &subs {
        if *count == 0 {
            errs.push(invalid(
                *path,
                &Value::Null,
                &format!("no artifact found for subscription {url:?} of Warehouse {wh_name:?}"),
            ));
        } else if *count > 1 {
            errs.push(invalid(
                *path,
                &Value::Null,
                &format!(
                    "multiple artifacts found for subscription {url:?} of Warehouse {wh_name:?}"
                ),
            ));
        }
    }
    errs
}

/// The first difference in the immutable parts of a Freight, as `compareFreight` reports it.
pub fn immutability_error(old: &Value, new: &Value) -> Option<FieldError> {
    if old.get("origin") != new.get("origin") {
        return Some(invalid(
            "origin",
            new.get("origin").unwrap_or(&Value::Null),
            "Freight is immutable",
        ));
    }
    for path in ["commits", "images", "charts", "artifacts"] {
        let (a, b) = (arr_at(old, path), arr_at(new, path));
        if a.len() != b.len() {
            return Some(invalid(
                path,
                &Value::Array(b.to_vec()),
                "Freight is immutable",
            ));
        }
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            if x != y {
                return Some(invalid(format!("{path}[{i}]"), y, "Freight is immutable"));
            }
        }
    }
    None
}

/// Stages whose current Freight includes `freight` (Kargo's in-use index).
pub fn stages_using(txn: &dyn Txn, ns: &str, freight: &str) -> Vec<String> {
    txn.list(GROUP, "stages", Some(ns))
        .iter()
        .filter(|s| {
            let items = s
                .pointer("/status/freightHistory/0/items")
                .and_then(Value::as_object);
            items.is_some_and(|m| m.values().any(|r| str_at(r, "name") == freight))
        })
        .map(|s| name(s).to_string())
        .collect()
}

/// Kargo's Freight webhooks (mutating and validating, including `freights/status`).
pub fn admit(txn: &mut dyn Txn, req: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
    let ns = req.namespace.unwrap_or_default().to_string();
    match req.operation {
        Operation::Delete => {
            let stages = stages_using(txn, &ns, req.name);
            if stages.is_empty() {
                return Ok(());
            }
            let list = stages
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            Err(forbidden_error(
                "freights",
                GROUP,
                req.name,
                &format!("freight is in-use by stages ({list})"),
            )
            .denied_by_webhook(WEBHOOK))
        }
        Operation::Create => {
            let now = txn.now();
            let existing = txn.list(GROUP, "freights", Some(&ns));
            let Some(obj) = req.object.as_deref_mut() else {
                return Ok(());
            };
            if req.subresource.is_none() {
                default_new(obj, &existing, now);
            }
            let obj: &Value = obj;
            let fname = name(obj).to_string();
            let mut errs = Vec::new();
            match validate_project_namespace(txn, &ns) {
                Err(e) => return Err(e.denied_by_webhook(WEBHOOK)),
                Ok(Some(fe)) => errs.push(fe),
                Ok(None) => {}
            }
            if ["commits", "images", "charts", "artifacts"]
                .iter()
                .all(|k| arr_at(obj, k).is_empty())
            {
                errs.push(invalid(
                    "",
                    &json!("object"),
                    "freight must contain at least one commit, image, or chart",
                ));
            }
            let alias = str_at(obj, "alias");
            if alias_taken(&existing, alias, "") {
                errs.push(invalid(
                    "alias",
                    &json!(alias),
                    &format!("alias already used by another piece of Freight in namespace {ns:?}"),
                ));
            }
            let wh = str_at(obj, "origin.name");
            match txn.get(GROUP, "warehouses", Some(&ns), wh) {
                None => errs.push(invalid("warehouse", &json!(wh), "warehouse does not exist")),
                Some(warehouse) => errs.extend(artifact_errors(obj, &warehouse)),
            }
            if errs.is_empty() {
                Ok(())
            } else {
                Err(util::invalid_error("Freight", &fname, errs).denied_by_webhook(WEBHOOK))
            }
        }
        Operation::Update => {
            let Some(old) = req.old_object.cloned() else {
                return Ok(());
            };
            let existing = txn.list(GROUP, "freights", Some(&ns));
            let Some(obj) = req.object.as_deref_mut() else {
                return Ok(());
            };
            if req.subresource.is_none() {
                default_update(obj);
            }
            let obj: &Value = obj;
            let alias = str_at(obj, "alias");
            if !alias.is_empty() && alias_taken(&existing, alias, req.name) {
                return Err(conflict(
                    "freights",
                    GROUP,
                    req.name,
                    &format!("alias {alias:?} already used by another piece of Freight in namespace {ns:?}"),
                )
                .denied_by_webhook(WEBHOOK));
            }
            if let Some(e) = immutability_error(&old, obj) {
                return Err(
                    util::invalid_error("Freight", req.name, vec![e]).denied_by_webhook(WEBHOOK)
                );
            }
            if req.subresource == Some("status") && !req.from_control_plane {
                let errs = approval_errors(txn, &ns, &old, obj);
                if !errs.is_empty() {
                    return Err(
                        util::invalid_error("Freight", req.name, errs).denied_by_webhook(WEBHOOK)
                    );
                }
            }
            Ok(())
        }
    }
}

/// New `status.approvedFor` entries must name an existing Stage that requests Freight from
/// this Freight's origin, as the API server's approve endpoint insists.
fn approval_errors(txn: &dyn Txn, ns: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let origin = new.get("origin").map(origin_key).unwrap_or_default();
    let Some(approved) = new
        .pointer("/status/approvedFor")
        .and_then(Value::as_object)
    else {
        return errs;
    };
    for stage_name in approved.keys() {
        if old
            .pointer("/status/approvedFor")
            .and_then(|m| m.get(stage_name))
            .is_some()
        {
            continue;
        }
        let field = format!("status.approvedFor.{stage_name}");
        match txn.get(GROUP, "stages", Some(ns), stage_name) {
            None => errs.push(invalid(
                field,
                &json!(stage_name),
                &format!("Stage {stage_name:?} not found in namespace {ns:?}"),
            )),
            Some(stage) => {
                let requests = arr_at(&stage, "spec.requestedFreight")
                    .iter()
                    .any(|r| r.get("origin").map(origin_key).as_deref() == Some(origin.as_str()));
                if !requests {
                    errs.push(invalid(
                        field,
                        &json!(stage_name),
                        &format!(
                            "Stage {stage_name:?} does not request Freight from origin {origin:?}"
                        ),
                    ));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warehouse() -> Value {
        json!({"metadata": {"name": "w", "namespace": "p"}, "spec": {"subscriptions": [
            {"image": {"repoURL": "ghcr.io/acme/app"}},
            {"git": {"repoURL": "https://github.com/acme/repo.git"}},
            {"chart": {"repoURL": "https://charts.acme.io", "name": "app"}}
        ]}})
    }

    fn freight() -> Value {
        json!({"origin": {"kind": "Warehouse", "name": "w"},
            "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0", "digest": "sha256:1"}],
            "commits": [{"repoURL": "https://github.com/ACME/repo", "id": "abc"}],
            "charts": [{"repoURL": "https://charts.acme.io", "name": "app", "version": "1.0.0"}]})
    }

    #[test]
    fn defaulting_names_and_aliases() {
        let now: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let mut f = freight();
        f["metadata"] = json!({"name": "client-chosen"});
        default_new(&mut f, &[], now);
        assert_eq!(name(&f), freight_id(&freight()));
        let alias = str_at(&f, "alias").to_string();
        assert!(!alias.is_empty());
        assert_eq!(util::label(&f, LABEL_ALIAS), Some(alias.as_str()));
        assert_eq!(str_at(&f, "discoveredAt"), "2024-01-01T00:00:00Z");

        // A second Freight whose first candidate alias is taken gets another one.
        let mut g = freight();
        g["images"][0]["tag"] = json!("2.0.0");
        let mut taken = f.clone();
        let g_first = crate::kargo::names::alias_candidate(&freight_id(&g), 0);
        taken["alias"] = json!(g_first);
        taken["metadata"]["labels"][LABEL_ALIAS] = json!(g_first);
        default_new(&mut g, &[taken], now);
        assert_ne!(str_at(&g, "alias"), g_first);

        let mut h = freight();
        h["alias"] = json!("mine");
        default_new(&mut h, &[], now);
        assert_eq!(util::label(&h, LABEL_ALIAS), Some("mine"));
    }

    #[test]
    fn artifacts_must_match_subscriptions() {
        assert!(artifact_errors(&freight(), &warehouse()).is_empty());
        let mut f = freight();
        f["images"][0]["repoURL"] = json!("ghcr.io/acme/other");
        let errs = artifact_errors(&f, &warehouse());
        assert!(
            errs.iter()
                .any(|e| e.field == "images"
                    && e.message.contains("no subscription found for image"))
        );
        assert!(errs.iter().any(|e| {
            e.message
                .contains("no artifact found for subscription \"ghcr.io/acme/app\"")
        }));
        let mut f = freight();
        f["charts"] = json!([]);
        f["commits"] = json!([{"repoURL": "https://github.com/acme/repo", "id": "1"},
            {"repoURL": "https://github.com/acme/repo", "id": "2"}]);
        let errs = artifact_errors(&f, &warehouse());
        assert!(
            errs.iter()
                .any(|e| e.message.contains("multiple artifacts found"))
        );
        assert!(
            errs.iter()
                .any(|e| e.message.contains("https:/charts.acme.io/app"))
        );
    }

    #[test]
    fn freight_is_immutable_except_alias_and_status() {
        let old = freight();
        let mut new = freight();
        new["alias"] = json!("renamed");
        new["status"] = json!({"approvedFor": {"x": {}}});
        assert!(immutability_error(&old, &new).is_none());
        new["images"][0]["tag"] = json!("9.9.9");
        let e = immutability_error(&old, &new).unwrap();
        assert_eq!(e.field, "images[0]");
        assert!(e.message.ends_with("Freight is immutable"));
        let mut moved = freight();
        moved["origin"]["name"] = json!("other");
        assert_eq!(immutability_error(&old, &moved).unwrap().field, "origin");
    }
}
