//! The Stage webhook: shard label and duration re-marshalling, requested-Freight rules,
//! promotion-step rules (the CRD's CEL rules plus the webhook's), and removed legacy fields.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use super::names::origin_key;
use super::util::{FieldError, arr_at, forbidden, invalid, str_at};
use super::warehouse::{normalize_duration_field, sync_shard_label};
use crate::hooks::ApiError;

static RESERVED_ALIAS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(step|task)-\d+$").expect("static regex"));

/// The mutating pass: shard label and `requiredSoakTime` / `retry.timeout` re-marshalling;
/// a duration Go cannot parse fails it (400, Go's text).
pub fn default(obj: &mut Value) -> Result<(), ApiError> {
    sync_shard_label(obj);
    if let Some(reqs) = obj
        .pointer_mut("/spec/requestedFreight")
        .and_then(Value::as_array_mut)
    {
        for req in reqs {
            if let Some(sources) = req.get_mut("sources") {
                normalize_duration_field(sources, "requiredSoakTime")?;
            }
        }
    }
    if let Some(steps) = obj
        .pointer_mut("/spec/promotionTemplate/spec/steps")
        .and_then(Value::as_array_mut)
    {
        normalize_step_durations(steps)?;
    }
    Ok(())
}

/// Re-marshals each step's `retry.timeout`.
pub fn normalize_step_durations(steps: &mut [Value]) -> Result<(), ApiError> {
    for step in steps {
        if let Some(retry) = step.get_mut("retry") {
            normalize_duration_field(retry, "timeout")?;
        }
    }
    Ok(())
}

pub const ANNOTATION_REVERIFY: &str = "kargo.akuity.io/reverify";

/// Kargo's `VerificationRequest` (api/v1alpha1/request.go) from a Stage's `reverify` or
/// `abort` annotation (pkg/api/annotations.go): a JSON object, or else the bare ID. `None`
/// without an ID.
pub fn verification_request(obj: &Value, key: &str) -> Option<(String, String, bool)> {
    let raw = super::util::annotation(obj, key)?;
    let (id, actor, control_plane) = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => (
            m.get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            m.get("actor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            m.get("controlPlane")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        // Valid JSON that is not an object fails Go's unmarshal: no request.
        Ok(_) => return None,
        Err(_) => (raw.to_string(), String::new(), false),
    };
    (!id.is_empty()).then_some((id, actor, control_plane))
}

/// The Stage webhook's `Default` (pkg/webhook/kubernetes/stage/webhook.go, v1.11.2): a new or
/// changed `reverify` / `abort` request is rewritten as JSON naming who asked
/// (`{"id","actor"}` for a user, `controlPlane: true` for Kargo's own components).
pub fn enrich_verification_requests(
    obj: &mut Value,
    old: Option<&Value>,
    user: &str,
    control_plane: bool,
) {
    for key in [ANNOTATION_REVERIFY, super::util::ANNOTATION_ABORT] {
        let Some((id, actor, _)) = verification_request(obj, key) else {
            continue;
        };
        let new = verification_request(obj, key);
        if old.and_then(|o| verification_request(o, key)) == new {
            continue;
        }
        let mut req = serde_json::Map::new();
        req.insert("id".into(), json!(id));
        if control_plane {
            if !actor.is_empty() {
                req.insert("actor".into(), json!(actor));
            }
            req.insert("controlPlane".into(), json!(true));
        } else {
            req.insert(
                "actor".into(),
                json!(super::promotion::kubernetes_actor(user)),
            );
        }
        super::util::set_annotation(obj, key, &Value::Object(req).to_string());
    }
}

/// Legacy fields and what replaced them. The CRD schema would silently prune them; the
/// sandbox rejects them so a stale manifest is noticed.
const LEGACY_FIELDS: [(&str, &str); 3] = [
    (
        "promotionMechanisms",
        "promotion mechanisms were removed in Kargo v1.0.0; use spec.promotionTemplate steps",
    ),
    (
        "subscriptions",
        "subscriptions were removed in Kargo v0.9.0; use spec.requestedFreight",
    ),
    (
        "promotionPolicy",
        "promotion policies moved out of Stages; use ProjectConfig spec.promotionPolicies (and spec.requestedFreight[].sources.autoPromotionOptions)",
    ),
];

pub fn legacy_field_errors(spec: Option<&Value>) -> Vec<FieldError> {
    let Some(spec) = spec else { return Vec::new() };
    LEGACY_FIELDS
        .iter()
        .filter(|(k, _)| spec.get(*k).is_some())
        .map(|(k, msg)| forbidden(format!("spec.{k}"), msg))
        .collect()
}

/// The CRD's CEL rules on PromotionTemplate steps, checked here because they apply to every
/// write; reported as the API server reports CEL failures (no webhook prefix).
pub fn step_schema_errors(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let obj_value = json!("object");
    for (i, step) in arr_at(obj, "spec.promotionTemplate.spec.steps")
        .iter()
        .enumerate()
    {
        let f = format!("spec.promotionTemplate.spec.steps[{i}]");
        let has_uses = step.get("uses").is_some();
        let has_task = step.get("task").is_some();
        if has_uses == has_task {
            errs.push(invalid(
                &f,
                &obj_value,
                "PromotionTemplate step must have exactly one of uses or task set",
            ));
        }
        if has_task && step.get("continueOnError").is_some() {
            errs.push(invalid(
                &f,
                &obj_value,
                "PromotionTemplate step referencing a task cannot set continueOnError",
            ));
        }
        if has_task && step.get("retry").is_some() {
            errs.push(invalid(
                &f,
                &obj_value,
                "PromotionTemplate step referencing a task cannot set retry",
            ));
        }
    }
    errs
}

/// Aliases must be unique and must not look like generated ones.
pub fn validate_step_aliases(f: &str, steps: &[Value]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let alias = str_at(step, "as").trim();
        if alias.is_empty() {
            continue;
        }
        match seen.get(alias) {
            Some(first) => errs.push(invalid(
                format!("{f}[{i}].as"),
                &json!(alias),
                &format!("step alias duplicates that of {f}[{first}]"),
            )),
            None => {
                seen.insert(alias.to_string(), i);
            }
        }
        if RESERVED_ALIAS.is_match(alias) {
            errs.push(invalid(
                format!("{f}[{i}].as"),
                &json!(alias),
                "step alias is reserved",
            ));
        }
    }
    errs
}

/// The validating pass.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = legacy_field_errors(obj.get("spec"));
    let f = "spec.requestedFreight";
    let reqs = arr_at(obj, f);
    let mut seen = HashSet::new();
    let mut reported = HashSet::new();
    for (i, req) in reqs.iter().enumerate() {
        let origin = req.get("origin").map(origin_key).unwrap_or_default();
        if !seen.insert(origin.clone()) && reported.insert(origin.clone()) {
            errs.push(invalid(
                f,
                &Value::Array(reqs.to_vec()),
                &format!("freight with origin {origin} requested multiple times in {f}"),
            ));
        }
        let sources = req.get("sources").cloned().unwrap_or(Value::Null);
        if str_at(&sources, "autoPromotionOptions.selectionPolicy") == "MatchUpstream" {
            let sf = format!("{f}[{i}].sources.autoPromotionOptions.selectionPolicy");
            if sources.get("direct").and_then(Value::as_bool) == Some(true) {
                errs.push(invalid(
                    &sf,
                    &json!("MatchUpstream"),
                    "selection policy 'MatchUpstream' cannot be used when accepting Freight directly from its origin",
                ));
            }
            if arr_at(&sources, "stages").len() != 1 {
                errs.push(invalid(
                    &sf,
                    &json!("MatchUpstream"),
                    "selection policy 'MatchUpstream' requires exactly one upstream Stage to be specified",
                ));
            }
        }
    }
    let steps_field = "spec.promotionTemplate.spec.steps";
    let steps = arr_at(obj, steps_field);
    errs.extend(validate_step_aliases(steps_field, steps));
    for (i, step) in steps.iter().enumerate() {
        if step.get("task").is_none() {
            continue;
        }
        if !str_at(step, "if").is_empty() {
            errs.push(forbidden(
                format!("{steps_field}[{i}].if"),
                "PromotionTemplate step referencing a task cannot have an 'if' condition",
            ));
        }
        if step.get("config").is_some_and(|c| !c.is_null()) {
            errs.push(forbidden(
                format!("{steps_field}[{i}].config"),
                "PromotionTemplate step referencing a task cannot have a config",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kargo::util::LABEL_SHARD;

    fn stage(spec: Value) -> Value {
        json!({"metadata": {"name": "dev", "namespace": "p"}, "spec": spec})
    }

    fn wh(name: &str) -> Value {
        json!({"kind": "Warehouse", "name": name})
    }

    #[test]
    fn durations_and_shard_are_defaulted() {
        let mut s = stage(json!({"shard": "a",
            "requestedFreight": [{"origin": wh("w"), "sources": {"direct": true, "requiredSoakTime": "1h"}}],
            "promotionTemplate": {"spec": {"steps": [{"uses": "git-push", "retry": {"timeout": "90s"}}]}}}));
        default(&mut s).unwrap();
        assert_eq!(
            s["spec"]["requestedFreight"][0]["sources"]["requiredSoakTime"],
            "1h0m0s"
        );
        assert_eq!(
            s["spec"]["promotionTemplate"]["spec"]["steps"][0]["retry"]["timeout"],
            "1m30s"
        );
        assert_eq!(s["metadata"]["labels"][LABEL_SHARD], "a");
    }

    #[test]
    fn origins_and_match_upstream() {
        let s = stage(json!({"requestedFreight": [
            {"origin": wh("w"), "sources": {"direct": true}},
            {"origin": wh("w"), "sources": {"direct": true,
                "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}}
        ]}));
        let errs = validate(&s);
        assert!(errs.iter().any(|e| e.field == "spec.requestedFreight"
            && e.message.contains(
                "freight with origin Warehouse/w requested multiple times in spec.requestedFreight"
            )));
        let mu: Vec<_> = errs
            .iter()
            .filter(|e| e.field.ends_with("selectionPolicy"))
            .collect();
        assert_eq!(mu.len(), 2, "{errs:?}");
        let ok = stage(
            json!({"requestedFreight": [{"origin": wh("w"), "sources": {"stages": ["up"],
            "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}}]}),
        );
        assert!(validate(&ok).is_empty());
    }

    #[test]
    fn step_rules() {
        let s = stage(
            json!({"requestedFreight": [{"origin": wh("w"), "sources": {"direct": true}}],
            "promotionTemplate": {"spec": {"steps": [
                {"uses": "git-clone", "as": "clone"},
                {"uses": "git-push", "as": "clone"},
                {"uses": "fail", "as": "step-3"},
                {"task": {"name": "t"}, "if": "${{ true }}", "config": {"a": 1}},
                {"uses": "x", "task": {"name": "t"}},
                {"task": {"name": "t"}, "continueOnError": true, "retry": {"timeout": "1m"}},
                {}
            ]}}}),
        );
        let errs = validate(&s);
        let f: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(f.contains(&"spec.promotionTemplate.spec.steps[1].as"));
        assert!(f.contains(&"spec.promotionTemplate.spec.steps[2].as"));
        assert!(f.contains(&"spec.promotionTemplate.spec.steps[3].if"));
        assert!(f.contains(&"spec.promotionTemplate.spec.steps[3].config"));
        let dup = errs.iter().find(|e| e.field.ends_with("[1].as")).unwrap();
        assert!(
            dup.message
                .contains("duplicates that of spec.promotionTemplate.spec.steps[0]")
        );
        let schema = step_schema_errors(&s);
        let sf: Vec<&str> = schema.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            sf,
            vec![
                "spec.promotionTemplate.spec.steps[4]",
                "spec.promotionTemplate.spec.steps[5]",
                "spec.promotionTemplate.spec.steps[5]",
                "spec.promotionTemplate.spec.steps[6]"
            ]
        );
    }

    #[test]
    fn legacy_fields_name_their_replacement() {
        let s = stage(
            json!({"requestedFreight": [], "promotionMechanisms": {}, "subscriptions": {}, "promotionPolicy": {}}),
        );
        let errs = validate(&s);
        assert!(
            errs.iter().any(|e| e.field == "spec.promotionMechanisms"
                && e.message.contains("promotionTemplate"))
        );
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.subscriptions" && e.message.contains("requestedFreight"))
        );
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.promotionPolicy" && e.message.contains("ProjectConfig"))
        );
    }
}
