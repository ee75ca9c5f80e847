//! The Promotion webhook: origin resolution, generated names, Stage steps and vars with
//! PromotionTasks inflated, labels and owner, permission, availability, immutability, abort.

use serde_json::{Map, Value, json};

use super::availability::{select_candidates, unavailability};
use super::names::{promotion_name, shorten_label_value};
use super::project::auto_promotion_enabled;
use super::project::validate_project_namespace;
use super::stage::normalize_step_durations;
use super::util::{
    self, ANNOTATION_ABORT, ANNOTATION_AUTO_PROMOTION_HOLD, ANNOTATION_AUTO_PROMOTION_RESUME,
    ANNOTATION_CREATE_ACTOR, ANNOTATION_STAGE, API_VERSION, GROUP, LABEL_SHARD, LABEL_STAGE,
    annotation, arr_at, forbidden_error, internal, invalid, remove_annotation, remove_label,
    set_annotation, set_label, str_at,
};
use crate::hooks::{AdmissionRequest, ApiError, Operation, Txn};
use crate::rbac::{Access, Identity};

pub const WEBHOOK: &str = "promotion.kargo.akuity.io";
const ALIAS_SEPARATOR: &str = "::";

/// What the webhook needs from the rest of the control plane.
pub struct PromotionEnv<'a> {
    /// A fresh, monotonically increasing ULID (upper case, 26 characters).
    pub new_ulid: &'a dyn Fn() -> String,
    /// Newer-is-larger creation order of Freight, to break same-second ties.
    pub freight_order: &'a dyn Fn(&Value) -> u64,
}

/// `kubernetes:<user>`, the actor Kargo records for direct Kubernetes API callers.
pub fn kubernetes_actor(user: &str) -> String {
    format!("kubernetes:{user}")
}

/// A step's alias: its `as`, else `task-<n>` / `step-<n>` by 1-based position.
pub fn step_alias(step: &Value, index: usize) -> String {
    let alias = str_at(step, "as");
    if !alias.is_empty() {
        alias.to_string()
    } else if step.get("task").is_some() {
        format!("task-{}", index + 1)
    } else {
        format!("step-{}", index + 1)
    }
}

fn var_is_set(vars: &[Value], var: &str) -> bool {
    vars.iter()
        .any(|v| str_at(v, "name") == var && !str_at(v, "value").is_empty())
}

/// Maps a task's declared vars onto the inflated steps: defaults unless the Promotion sets
/// the var, then the referencing step's vars; a var with neither is an error.
fn task_vars(
    task_vars: &[Value],
    promo_vars: &[Value],
    step_vars: &[Value],
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for v in task_vars {
        let var = str_at(v, "name");
        if var_is_set(promo_vars, var) {
            continue;
        }
        if !str_at(v, "value").is_empty() {
            out.push(v.clone());
            continue;
        }
        if !var_is_set(step_vars, var) {
            return Err(format!("missing value for variable {var:?}"));
        }
    }
    out.extend(step_vars.iter().cloned());
    Ok(out)
}

/// Kargo's `InflateSteps`: task references expand into the task's steps (aliases
/// `<taskAlias>::<stepAlias>`), and every step gets an explicit alias.
pub fn inflate_steps(
    txn: &dyn Txn,
    ns: &str,
    steps: &[Value],
    promo_vars: &[Value],
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let alias = step_alias(step, i);
        let Some(task_ref) = step.get("task") else {
            let mut s = step.clone();
            s["as"] = json!(alias);
            out.push(s);
            continue;
        };
        let task_name = str_at(task_ref, "name");
        let task = match str_at(task_ref, "kind") {
            "" | "PromotionTask" => txn
                .get(GROUP, "promotiontasks", Some(ns), task_name)
                .ok_or_else(|| util::not_found("promotiontasks", GROUP, task_name))?,
            "ClusterPromotionTask" => txn
                .get(GROUP, "clusterpromotiontasks", None, task_name)
                .ok_or_else(|| util::not_found("clusterpromotiontasks", GROUP, task_name))?,
            other => {
                return Err(internal(&format!(
                    "failed to inflate Promotion steps: inflate task steps for task {task_name:?} ({alias:?}): unknown task reference kind {other:?}"
                )));
            }
        };
        let vars = task_vars(arr_at(&task, "spec.vars"), promo_vars, arr_at(step, "vars")).map_err(|e| {
            internal(&format!("failed to inflate Promotion steps: inflate task steps for task {task_name:?} ({alias:?}): {e}"))
        })?;
        for (j, task_step) in arr_at(&task, "spec.steps").iter().enumerate() {
            let mut s = task_step.clone();
            s["as"] = json!(format!(
                "{alias}{ALIAS_SEPARATOR}{}",
                step_alias(task_step, j)
            ));
            let mut step_vars = vars.clone();
            step_vars.extend(arr_at(task_step, "vars").iter().cloned());
            if step_vars.is_empty() {
                if let Some(m) = s.as_object_mut() {
                    m.remove("vars");
                }
            } else {
                s["vars"] = Value::Array(step_vars);
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// Parses `kargo.akuity.io/abort`: `terminate` or JSON `{"action": "terminate", ...}`.
pub fn abort_request(value: &str) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(value) {
        return Some(m);
    }
    if value.trim().is_empty() {
        return None;
    }
    let mut m = Map::new();
    m.insert("action".to_string(), json!(value.trim()));
    Some(m)
}

/// Rewrites the abort annotation as JSON carrying who asked, when it is new or changed.
fn enrich_abort(obj: &mut Value, old: Option<&Value>, user: &str, control_plane: bool) {
    let Some(mut req) = annotation(obj, ANNOTATION_ABORT).and_then(abort_request) else {
        return;
    };
    let action_of = |m: &Map<String, Value>| m.get("action").cloned();
    let old_req = old
        .and_then(|o| annotation(o, ANNOTATION_ABORT))
        .and_then(abort_request);
    if old_req
        .as_ref()
        .is_some_and(|o| action_of(o) == action_of(&req))
    {
        if let Some(o) = old.and_then(|o| annotation(o, ANNOTATION_ABORT)) {
            set_annotation(obj, ANNOTATION_ABORT, o);
        }
        return;
    }
    // Kargo's control plane (its API server) names the actor itself; anyone else is the
    // Kubernetes user who wrote the annotation.
    req.remove("controlPlane");
    if control_plane {
        req.insert("controlPlane".to_string(), json!(true));
    } else {
        req.insert("actor".to_string(), json!(kubernetes_actor(user)));
    }
    set_annotation(obj, ANNOTATION_ABORT, &Value::Object(req).to_string());
}

/// Labels, annotation and controller owner reference tying a Promotion to its Stage.
fn stamp_stage(obj: &mut Value, stage: &Value) {
    let stage_name = util::name(stage).to_string();
    let shard = str_at(stage, "spec.shard").to_string();
    if shard.is_empty() {
        remove_label(obj, LABEL_SHARD);
    } else {
        set_label(obj, LABEL_SHARD, &shard);
    }
    set_label(obj, LABEL_STAGE, &shorten_label_value(&stage_name));
    set_annotation(obj, ANNOTATION_STAGE, &stage_name);
    util::obj_mut(obj, "metadata").insert(
        "ownerReferences".to_string(),
        json!([{
            "apiVersion": API_VERSION,
            "kind": "Stage",
            "name": stage_name,
            "uid": str_at(stage, "metadata.uid"),
            "controller": true,
            "blockOwnerDeletion": true,
        }]),
    );
}

/// The CRD's `has(self.freight) != has(self.origin)` rule, reported as the API server does.
fn freight_or_origin_error(name: &str) -> ApiError {
    let e = invalid(
        "spec",
        &json!("object"),
        "exactly one of freight or origin must be set",
    );
    util::invalid_error("Promotion", name, vec![e])
}

fn promotion_invalid(name: &str, field: &str, value: &Value, detail: &str) -> ApiError {
    util::invalid_error("Promotion", name, vec![invalid(field, value, detail)])
        .denied_by_webhook(WEBHOOK)
}

/// The mutating pass on CREATE: fills in everything Kargo derives from the Stage.
/// `from_control_plane` Promotions carry no create-actor.
pub fn default_create(
    txn: &dyn Txn,
    env: &PromotionEnv<'_>,
    obj: &mut Value,
    ns: &str,
    user: &str,
    from_control_plane: bool,
) -> Result<(), ApiError> {
    let current_name = util::name(obj).to_string();
    let stage_name = str_at(obj, "spec.stage").to_string();
    let Some(stage) = txn.get(GROUP, "stages", Some(ns), &stage_name) else {
        return Err(promotion_invalid(
            &current_name,
            "spec.stage",
            &json!(stage_name),
            &format!("could not find Stage {stage_name:?} in namespace {ns:?}"),
        ));
    };
    let has_origin = obj.pointer("/spec/origin").is_some_and(|o| !o.is_null());
    if has_origin && str_at(obj, "spec.freight").is_empty() {
        let origin = obj
            .pointer("/spec/origin")
            .map(super::names::origin_key)
            .unwrap_or_default();
        let freight = txn.list(GROUP, "freights", Some(ns));
        let candidates = select_candidates(&stage, &freight, txn.now(), env.freight_order);
        let Some(candidate) = candidates.get(&origin) else {
            return Err(promotion_invalid(
                &current_name,
                "spec.origin",
                &json!(origin),
                &format!(
                    "no auto-promotion candidate found for origin {origin:?} on Stage {stage_name:?}"
                ),
            ));
        };
        obj["spec"]["freight"] = json!(util::name(candidate));
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("origin");
        }
    }
    let freight = str_at(obj, "spec.freight").to_string();
    if freight.is_empty() {
        // Kargo generates no name without Freight; the CRD's CEL rule then rejects it.
        return Err(freight_or_origin_error(&current_name));
    }
    let generated = promotion_name(&stage_name, &(env.new_ulid)(), &freight);
    util::obj_mut(obj, "metadata").insert("name".to_string(), json!(generated));
    if from_control_plane {
        // The control plane creates Promotions on its own behalf or stamps the actor itself.
    } else {
        set_annotation(obj, ANNOTATION_CREATE_ACTOR, &kubernetes_actor(user));
    }
    enrich_abort(obj, None, user, from_control_plane);
    let steps = arr_at(&stage, "spec.promotionTemplate.spec.steps");
    if steps.is_empty() {
        return Err(promotion_invalid(
            &generated,
            "spec.stage",
            &json!(stage_name),
            &format!("Stage {stage_name:?} in namespace {ns:?} defines no promotion steps"),
        ));
    }
    let mut vars: Vec<Value> = arr_at(&stage, "spec.vars").to_vec();
    vars.extend(
        arr_at(&stage, "spec.promotionTemplate.spec.vars")
            .iter()
            .cloned(),
    );
    let mut inflated =
        inflate_steps(txn, ns, steps, &vars).map_err(|e| e.denied_by_webhook(WEBHOOK))?;
    normalize_step_durations(&mut inflated).map_err(|e| e.denied_by_webhook(WEBHOOK))?;
    obj["spec"]["steps"] = Value::Array(inflated);
    sync_hold_annotations(txn, env, obj, &stage, ns, from_control_plane);
    if vars.is_empty() {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("vars");
        }
    } else {
        obj["spec"]["vars"] = Value::Array(vars);
    }
    stamp_stage(obj, &stage);
    Ok(())
}

/// Kargo's `syncHoldAnnotations` (pkg/webhook/kubernetes/promotion/webhook.go, v1.11.2): on a
/// user's Promotion into a Stage whose ProjectConfig enables auto-promotion, any intent a client
/// supplied is dropped and `auto-promotion-resume: <origin>` is stamped when the Freight is the
/// origin's auto-promotion candidate (`SelectAutoPromotionCandidates`), `auto-promotion-hold:
/// <origin>` otherwise, including when there is no candidate. Control-plane Promotions without a
/// user actor (auto-promotions) are left as they are; unknown Freight stamps nothing.
fn sync_hold_annotations(
    txn: &dyn Txn,
    env: &PromotionEnv<'_>,
    obj: &mut Value,
    stage: &Value,
    ns: &str,
    from_control_plane: bool,
) {
    if from_control_plane {
        let actor = annotation(obj, ANNOTATION_CREATE_ACTOR).unwrap_or_default();
        if actor.is_empty() || actor.starts_with("controller:") {
            return;
        }
    }
    remove_annotation(obj, ANNOTATION_AUTO_PROMOTION_HOLD);
    remove_annotation(obj, ANNOTATION_AUTO_PROMOTION_RESUME);
    let freight_name = str_at(obj, "spec.freight").to_string();
    if freight_name.is_empty() {
        return;
    }
    let pc = txn.get(GROUP, "projectconfigs", Some(ns), ns);
    if !auto_promotion_enabled(pc.as_ref(), stage) {
        return;
    }
    let Some(freight) = txn.get(GROUP, "freights", Some(ns), &freight_name) else {
        return;
    };
    let origin = freight
        .get("origin")
        .map(super::names::origin_key)
        .unwrap_or_default();
    let all = txn.list(GROUP, "freights", Some(ns));
    let candidates = select_candidates(stage, &all, txn.now(), env.freight_order);
    if candidates
        .get(&origin)
        .is_some_and(|c| util::name(c) == freight_name)
    {
        set_annotation(obj, ANNOTATION_AUTO_PROMOTION_RESUME, &origin);
    } else {
        set_annotation(obj, ANNOTATION_AUTO_PROMOTION_HOLD, &origin);
    }
}

/// On update Kargo keeps the create actor and the hold/resume intent as admitted: the stored
/// object's values win, and values a client added are dropped.
fn preserve_creation_annotations(obj: &mut Value, old: &Value) {
    for key in [
        ANNOTATION_CREATE_ACTOR,
        ANNOTATION_AUTO_PROMOTION_HOLD,
        ANNOTATION_AUTO_PROMOTION_RESUME,
    ] {
        match annotation(old, key) {
            Some(v) => set_annotation(obj, key, v),
            None => remove_annotation(obj, key),
        }
    }
}

/// `subject "<user>" is not permitted to <action> Promotions for Stage "<stage>"`.
fn authorize(
    txn: &dyn Txn,
    req: &AdmissionRequest<'_>,
    promo_name: &str,
    stage: &str,
    action: &str,
) -> Result<(), ApiError> {
    if req.from_control_plane {
        return Ok(());
    }
    let ns = req.namespace.unwrap_or_default();
    let who = Identity {
        name: req.user.to_string(),
        groups: req.groups.to_vec(),
    };
    let access = Access {
        verb: "promote",
        group: GROUP,
        resource: "stages",
        namespace: Some(ns),
        name: stage,
        ..Access::default()
    };
    if txn.can(&who, &access) {
        return Ok(());
    }
    // webhook.go's `promotionGroupResource` names the resource by its Kind.
    Err(forbidden_error(
        "Promotion",
        GROUP,
        promo_name,
        &format!(
            "subject {:?} is not permitted to {action} Promotions for Stage {stage:?}",
            req.user
        ),
    ))
}

/// Wraps a Forbidden the way the validating webhook does on create and update.
fn as_internal(e: ApiError) -> ApiError {
    internal(&e.message).denied_by_webhook(WEBHOOK)
}

/// Kargo's Promotion webhooks. The status subresource is not intercepted.
pub fn admit(
    txn: &mut dyn Txn,
    env: &PromotionEnv<'_>,
    req: &mut AdmissionRequest<'_>,
) -> Result<(), ApiError> {
    if req.subresource.is_some() {
        return Ok(());
    }
    let ns = req.namespace.unwrap_or_default().to_string();
    match req.operation {
        Operation::Delete => {
            let stage = req
                .old_object
                .map(|o| str_at(o, "spec.stage").to_string())
                .unwrap_or_default();
            authorize(txn, req, req.name, &stage, "delete")
                .map_err(|e| e.denied_by_webhook(WEBHOOK))
        }
        Operation::Create => {
            let (user, control_plane) = (req.user, req.from_control_plane);
            let Some(obj) = req.object.as_deref_mut() else {
                return Ok(());
            };
            default_create(txn, env, obj, &ns, user, control_plane)?;
            let obj: Value = obj.clone();
            let promo_name = util::name(&obj).to_string();
            // The CRD's CEL rule runs between the mutating and the validating webhook.
            if obj.pointer("/spec/origin").is_some_and(|o| !o.is_null()) {
                return Err(freight_or_origin_error(&promo_name));
            }
            match validate_project_namespace(txn, &ns) {
                Err(e) => return Err(e.denied_by_webhook(WEBHOOK)),
                Ok(Some(fe)) => {
                    return Err(util::invalid_error("Promotion", &promo_name, vec![fe])
                        .denied_by_webhook(WEBHOOK));
                }
                Ok(None) => {}
            }
            let stage_name = str_at(&obj, "spec.stage").to_string();
            authorize(txn, req, &promo_name, &stage_name, "create").map_err(as_internal)?;
            let freight_name = str_at(&obj, "spec.freight");
            let stage = txn.get(GROUP, "stages", Some(&ns), &stage_name);
            let freight = txn.get(GROUP, "freights", Some(&ns), freight_name);
            let available = match (&stage, &freight) {
                (Some(s), Some(f)) => unavailability(s, f, txn.now()).is_none(),
                _ => false,
            };
            if !available {
                return Err(promotion_invalid(
                    &promo_name,
                    "spec.freight",
                    &json!(freight_name),
                    "Freight is not available to this Stage",
                ));
            }
            Ok(())
        }
        Operation::Update => {
            let Some(old) = req.old_object.cloned() else {
                return Ok(());
            };
            let (user, control_plane) = (req.user, req.from_control_plane);
            let promo_name = req.name.to_string();
            let stage_name = str_at(&old, "spec.stage").to_string();
            let Some(obj) = req.object.as_deref_mut() else {
                return Ok(());
            };
            preserve_creation_annotations(obj, &old);
            enrich_abort(obj, Some(&old), user, control_plane);
            // The mutating webhook loads the Stage on every write, updates included.
            let Some(stage) = txn.get(GROUP, "stages", Some(&ns), &stage_name) else {
                return Err(promotion_invalid(
                    &promo_name,
                    "spec.stage",
                    &json!(stage_name),
                    &format!("could not find Stage {stage_name:?} in namespace {ns:?}"),
                ));
            };
            stamp_stage(obj, &stage);
            let new_spec = obj.get("spec").cloned().unwrap_or(Value::Null);
            authorize(txn, req, &promo_name, &stage_name, "update").map_err(as_internal)?;
            if old.get("spec").cloned().unwrap_or(Value::Null) != new_spec {
                return Err(promotion_invalid(
                    &promo_name,
                    "spec",
                    &new_spec,
                    "spec is immutable",
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_default_by_position() {
        assert_eq!(step_alias(&json!({"uses": "x"}), 0), "step-1");
        assert_eq!(step_alias(&json!({"task": {"name": "t"}}), 2), "task-3");
        assert_eq!(step_alias(&json!({"uses": "x", "as": "clone"}), 0), "clone");
    }

    #[test]
    fn task_vars_use_defaults_promotion_values_and_step_values() {
        let declared = vec![
            json!({"name": "a", "value": "default-a"}),
            json!({"name": "b"}),
            json!({"name": "c"}),
        ];
        let promo = vec![json!({"name": "c", "value": "from-promo"})];
        let step = vec![json!({"name": "b", "value": "from-step"})];
        let vars = task_vars(&declared, &promo, &step).unwrap();
        assert_eq!(
            vars,
            vec![
                json!({"name": "a", "value": "default-a"}),
                json!({"name": "b", "value": "from-step"})
            ]
        );
        let err = task_vars(&declared, &promo, &[]).unwrap_err();
        assert_eq!(err, "missing value for variable \"b\"");
    }

    #[test]
    fn abort_annotation_parses_both_forms() {
        assert_eq!(abort_request("terminate").unwrap()["action"], "terminate");
        let m = abort_request(r#"{"action":"terminate","actor":"x"}"#).unwrap();
        assert_eq!(m["actor"], "x");
        assert!(abort_request("").is_none());
    }

    #[test]
    fn abort_annotation_is_enriched_once() {
        let mut obj = json!({"metadata": {"annotations": {ANNOTATION_ABORT: "terminate"}}});
        enrich_abort(&mut obj, None, "alice", false);
        let v: Value = serde_json::from_str(annotation(&obj, ANNOTATION_ABORT).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"action": "terminate", "actor": "kubernetes:alice"})
        );
        // Re-sending the same request keeps the recorded actor.
        let old = obj.clone();
        let mut again = json!({"metadata": {"annotations": {ANNOTATION_ABORT: "terminate"}}});
        enrich_abort(&mut again, Some(&old), "bob", false);
        assert_eq!(
            annotation(&again, ANNOTATION_ABORT),
            annotation(&old, ANNOTATION_ABORT)
        );
    }

    #[test]
    fn the_control_plane_keeps_the_actor_it_names() {
        let mut obj = json!({"metadata": {"annotations": {
            ANNOTATION_ABORT: r#"{"action":"terminate","actor":"admin"}"#,
        }}});
        enrich_abort(&mut obj, None, crate::rest::API_SERVER_USER, true);
        let v: Value = serde_json::from_str(annotation(&obj, ANNOTATION_ABORT).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"action": "terminate", "actor": "admin", "controlPlane": true})
        );
        // Anyone else is named by their Kubernetes user, whatever the annotation says.
        let mut forged = json!({"metadata": {"annotations": {
            ANNOTATION_ABORT: r#"{"action":"terminate","actor":"admin","controlPlane":true}"#,
        }}});
        enrich_abort(&mut forged, None, "mallory", false);
        let v: Value =
            serde_json::from_str(annotation(&forged, ANNOTATION_ABORT).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"action": "terminate", "actor": "kubernetes:mallory"})
        );
    }
}
