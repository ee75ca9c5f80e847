//! Small JSON, time and error helpers shared by Kargo's webhooks and controllers:
//! field errors worded like apimachinery's, metav1 conditions, labels and finalizers.

use serde_json::{Map, Value, json};

use crate::hooks::{ApiError, StatusCause};

pub const GROUP: &str = "kargo.akuity.io";
pub const API_VERSION: &str = "kargo.akuity.io/v1alpha1";
pub const FINALIZER: &str = "kargo.akuity.io/finalizer";
pub const LABEL_PROJECT: &str = "kargo.akuity.io/project";
pub const LABEL_SHARD: &str = "kargo.akuity.io/shard";
pub const LABEL_ALIAS: &str = "kargo.akuity.io/alias";
pub const LABEL_STAGE: &str = "kargo.akuity.io/stage";
pub const ANNOTATION_STAGE: &str = "kargo.akuity.io/stage";
pub const ANNOTATION_CREATE_ACTOR: &str = "kargo.akuity.io/create-actor";
pub const ANNOTATION_ABORT: &str = "kargo.akuity.io/abort";
pub const ANNOTATION_AUTO_PROMOTION_HOLD: &str = "kargo.akuity.io/auto-promotion-hold";
pub const ANNOTATION_AUTO_PROMOTION_RESUME: &str = "kargo.akuity.io/auto-promotion-resume";
pub const ANNOTATION_KEEP_NAMESPACE: &str = "kargo.akuity.io/keep-namespace";
pub const ANNOTATION_REFRESH: &str = "kargo.akuity.io/refresh";

/// Reads a string at a dotted path (`spec.stage`); missing or non-string values read as "".
pub fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The value at a dotted path, if every step exists.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// The array at a dotted path, or an empty slice.
pub fn arr_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A mutable object at `key` inside `v`, created (replacing non-objects) when absent.
pub fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let Value::Object(map) = v else {
        unreachable!("just made an object")
    };
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

pub fn name(v: &Value) -> &str {
    str_at(v, "metadata.name")
}

pub fn namespace(v: &Value) -> &str {
    str_at(v, "metadata.namespace")
}

pub fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("metadata")?.get("labels")?.get(key)?.as_str()
}

/// Kargo's `ResponsibleFor` predicate and `GetShardRequirement` (pkg/controller, v1.11.2) for
/// the controller of a default installation (no shard name): Stages and Promotions labelled
/// `kargo.akuity.io/shard` are left to that shard's controller and never reconciled here.
pub fn reconciled_by_default_controller(obj: &Value) -> bool {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(LABEL_SHARD))
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
}

pub fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

pub fn set_label(v: &mut Value, key: &str, value: &str) {
    let meta = obj_mut(v, "metadata");
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels[key] = Value::String(value.to_string());
}

pub fn remove_label(v: &mut Value, key: &str) {
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(key);
    }
}

pub fn set_annotation(v: &mut Value, key: &str, value: &str) {
    let meta = obj_mut(v, "metadata");
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[key] = Value::String(value.to_string());
}

pub fn remove_annotation(v: &mut Value, key: &str) {
    if let Some(a) = v
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(key);
    }
}

pub fn is_deleting(v: &Value) -> bool {
    at(v, "metadata.deletionTimestamp").is_some_and(|t| !t.is_null())
}

pub fn has_finalizer(v: &Value, finalizer: &str) -> bool {
    arr_at(v, "metadata.finalizers")
        .iter()
        .any(|f| f.as_str() == Some(finalizer))
}

/// Adds the finalizer; returns whether the object changed.
pub fn add_finalizer(v: &mut Value, finalizer: &str) -> bool {
    if has_finalizer(v, finalizer) {
        return false;
    }
    let meta = obj_mut(v, "metadata");
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut() {
        a.push(Value::String(finalizer.to_string()));
    }
    true
}

/// Removes the finalizer; returns whether the object changed.
pub fn remove_finalizer(v: &mut Value, finalizer: &str) -> bool {
    let Some(list) = v
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let before = list.len();
    list.retain(|f| f.as_str() != Some(finalizer));
    before != list.len()
}

pub fn generation(v: &Value) -> i64 {
    at(v, "metadata.generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// metav1.Time as Kubernetes serialises it: RFC 3339, whole seconds, UTC.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>().ok()
}

// ---------------------------------------------------------------------------
// Field errors, rendered the way apimachinery's field.Error.ErrorBody() does.

/// One field error; becomes a `StatusCause` of a 422 Invalid.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub reason: &'static str,
    pub message: String,
}

/// Renders a bad value as apimachinery does: strings quoted, scalars bare, others as JSON.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        other => other.to_string(),
    }
}

pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> FieldError {
    let mut message = format!("Invalid value: {}", render_value(value));
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(detail);
    }
    FieldError {
        field: field.into(),
        reason: "FieldValueInvalid",
        message,
    }
}

pub fn forbidden(field: impl Into<String>, detail: &str) -> FieldError {
    FieldError {
        field: field.into(),
        reason: "FieldValueForbidden",
        message: format!("Forbidden: {detail}"),
    }
}

pub fn required(field: impl Into<String>, detail: &str) -> FieldError {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    FieldError {
        field: field.into(),
        reason: "FieldValueRequired",
        message,
    }
}

pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> FieldError {
    let list = supported
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    FieldError {
        field: field.into(),
        reason: "FieldValueNotSupported",
        message: format!(
            "Unsupported value: {}: supported values: {list}",
            render_value(value)
        ),
    }
}

/// A 422 Invalid for `<Kind>.kargo.akuity.io "<name>"` carrying the field errors.
pub fn invalid_error(kind: &str, name: &str, errs: Vec<FieldError>) -> ApiError {
    let causes = errs
        .into_iter()
        .map(|e| StatusCause {
            reason: e.reason.to_string(),
            message: e.message,
            field: e.field,
        })
        .collect();
    ApiError::invalid(kind, GROUP, name, causes)
}

fn with_details(mut e: ApiError, resource: &str, name: &str, group: &str) -> ApiError {
    e.kind = Some(resource.to_string());
    e.name = Some(name.to_string());
    e.group = Some(group.to_string());
    e
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// apierrors.NewConflict: `Operation cannot be fulfilled on <resource> "<name>": <msg>`.
pub fn conflict(resource: &str, group: &str, name: &str, msg: &str) -> ApiError {
    let m = format!(
        "Operation cannot be fulfilled on {} {name:?}: {msg}",
        qualified(resource, group)
    );
    with_details(ApiError::new(409, "Conflict", m), resource, name, group)
}

/// apierrors.NewForbidden: `<resource> "<name>" is forbidden: <msg>`.
pub fn forbidden_error(resource: &str, group: &str, name: &str, msg: &str) -> ApiError {
    let m = format!(
        "{} {name:?} is forbidden: {msg}",
        qualified(resource, group)
    );
    with_details(ApiError::new(403, "Forbidden", m), resource, name, group)
}

/// apierrors.NewNotFound: `<resource> "<name>" not found`.
pub fn not_found(resource: &str, group: &str, name: &str) -> ApiError {
    let m = format!("{} {name:?} not found", qualified(resource, group));
    with_details(ApiError::new(404, "NotFound", m), resource, name, group)
}

/// apierrors.NewInternalError: `Internal error occurred: <msg>`.
pub fn internal(msg: &str) -> ApiError {
    ApiError::new(
        500,
        "InternalError",
        format!("Internal error occurred: {msg}"),
    )
}

// ---------------------------------------------------------------------------
// metav1.Condition lists.

pub fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// True when `status.conditions[type=kind].status == "True"`.
pub fn condition_true(status: &Value, kind: &str) -> bool {
    condition(status, kind).is_some_and(|c| str_at(c, "status") == "True")
}

/// Sets a condition like apimachinery's meta.SetStatusCondition: the transition time only
/// moves when the status flips.
pub fn set_condition(
    status: &mut Value,
    kind: &str,
    cond_status: &str,
    reason: &str,
    message: &str,
    observed_generation: i64,
    now: &str,
) {
    if !status.is_object() {
        *status = json!({});
    }
    let list = status
        .as_object_mut()
        .map(|m| m.entry("conditions").or_insert_with(|| json!([])));
    let Some(list) = list else { return };
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(items) = list.as_array_mut() else {
        return;
    };
    let existing = items
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind));
    match existing {
        Some(c) => {
            if str_at(c, "status") != cond_status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(cond_status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            c["observedGeneration"] = json!(observed_generation);
        }
        None => items.push(json!({
            "type": kind,
            "status": cond_status,
            "reason": reason,
            "message": message,
            "observedGeneration": observed_generation,
            "lastTransitionTime": now,
        })),
    }
}

pub fn delete_condition(status: &mut Value, kind: &str) {
    if let Some(items) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        items.retain(|c| c.get("type").and_then(Value::as_str) != Some(kind));
    }
}

/// Removes null-valued and empty-object/array members so status documents stay as compact
/// as Go's `omitempty` would leave them.
pub fn prune_empty(v: &mut Value) {
    if let Value::Object(map) = v {
        for child in map.values_mut() {
            prune_empty(child);
        }
        map.retain(|_, child| match child {
            Value::Null => false,
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        });
    } else if let Value::Array(items) = v {
        for item in items {
            prune_empty(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_renders_like_apimachinery() {
        let e = invalid("spec.x", &json!("abc"), "must be set");
        assert_eq!(e.message, "Invalid value: \"abc\": must be set");
        let e = invalid("spec.n", &json!(0), "must be >= 1");
        assert_eq!(e.message, "Invalid value: 0: must be >= 1");
        let e = invalid("spec.c", &json!("1.x.y"), "");
        assert_eq!(e.message, "Invalid value: \"1.x.y\"");
        let e = not_supported("spec.s", &json!("Foo"), &["A", "B"]);
        assert_eq!(
            e.message,
            "Unsupported value: \"Foo\": supported values: \"A\", \"B\""
        );
    }

    #[test]
    fn conditions_keep_transition_time_until_status_flips() {
        let mut st = json!({});
        set_condition(&mut st, "Ready", "False", "A", "a", 1, "t1");
        set_condition(&mut st, "Ready", "False", "B", "b", 2, "t2");
        let c = condition(&st, "Ready").unwrap();
        assert_eq!(str_at(c, "lastTransitionTime"), "t1");
        assert_eq!(str_at(c, "reason"), "B");
        set_condition(&mut st, "Ready", "True", "C", "c", 2, "t3");
        assert_eq!(
            str_at(condition(&st, "Ready").unwrap(), "lastTransitionTime"),
            "t3"
        );
        assert!(condition_true(&st, "Ready"));
        delete_condition(&mut st, "Ready");
        assert!(condition(&st, "Ready").is_none());
    }

    #[test]
    fn finalizers_add_and_remove_once() {
        let mut v = json!({"metadata": {"name": "x"}});
        assert!(add_finalizer(&mut v, FINALIZER));
        assert!(!add_finalizer(&mut v, FINALIZER));
        assert!(has_finalizer(&v, FINALIZER));
        assert!(remove_finalizer(&mut v, FINALIZER));
        assert!(!remove_finalizer(&mut v, FINALIZER));
    }

    #[test]
    fn errors_are_worded_like_the_api_server() {
        let e = conflict("projects", GROUP, "p", "boom");
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on projects.kargo.akuity.io \"p\": boom"
        );
        let e = forbidden_error("freights", GROUP, "f", "in use");
        assert_eq!(
            e.message,
            "freights.kargo.akuity.io \"f\" is forbidden: in use"
        );
        let e = not_found("Namespace", "", "ns");
        assert_eq!(e.message, "Namespace \"ns\" not found");
    }

    #[test]
    fn time_is_whole_seconds_utc() {
        let t: jiff::Timestamp = "2024-05-06T07:08:09.123Z".parse().unwrap();
        assert_eq!(format_time(t), "2024-05-06T07:08:09Z");
    }
}
