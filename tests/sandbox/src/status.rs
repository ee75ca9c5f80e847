//! Kubernetes `Status` failures: constructors worded like the API server's, and the
//! JSON body (`kind: Status`, `reason`, `details.causes`) every error response carries.

use serde_json::{Map, Value, json};

use crate::hooks::ApiError;
use crate::resources::ResourceDef;

fn with_details(mut e: ApiError, res: &ResourceDef, name: &str) -> ApiError {
    e.name = Some(name.to_string());
    e.group = Some(res.group.to_string());
    e.kind = Some(res.plural.to_string());
    e
}

pub fn not_found(res: &ResourceDef, name: &str) -> ApiError {
    let e = ApiError::new(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", res.group_resource()),
    );
    with_details(e, res, name)
}

pub fn namespace_not_found(ns: &str) -> ApiError {
    not_found(crate::resources::namespaces(), ns)
}

pub fn already_exists(res: &ResourceDef, name: &str, being_deleted: bool) -> ApiError {
    let prefix = if being_deleted {
        "object is being deleted: "
    } else {
        ""
    };
    let msg = format!("{prefix}{} \"{name}\" already exists", res.group_resource());
    with_details(ApiError::new(409, "AlreadyExists", msg), res, name)
}

pub fn conflict(res: &ResourceDef, name: &str, why: &str) -> ApiError {
    let msg = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {why}",
        res.group_resource()
    );
    with_details(ApiError::new(409, "Conflict", msg), res, name)
}

pub fn stale(res: &ResourceDef, name: &str) -> ApiError {
    conflict(
        res,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

pub fn forbidden(res: &ResourceDef, name: Option<&str>, why: &str) -> ApiError {
    let gr = res.group_resource();
    let msg = match name {
        Some(n) if !n.is_empty() => format!("{gr} \"{n}\" is forbidden: {why}"),
        _ => format!("{gr} is forbidden: {why}"),
    };
    with_details(
        ApiError::new(403, "Forbidden", msg),
        res,
        name.unwrap_or_default(),
    )
}

pub fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", msg)
}

pub fn internal(msg: impl Into<String>) -> ApiError {
    ApiError::new(500, "InternalError", msg)
}

pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

pub fn no_such_resource() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

pub fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {} (got {content_type:?})",
            accepted.join(", ")
        ),
    )
}

pub fn expired(msg: impl Into<String>) -> ApiError {
    ApiError::new(410, "Expired", msg)
}

pub fn unavailable() -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
    )
}

/// The 504 an API server answers when its storage did not confirm a write in time (the write
/// may still have happened).
pub fn timeout() -> ApiError {
    ApiError::new(
        504,
        "Timeout",
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
    )
}

/// The `Status` object for an error.
pub fn body(e: &ApiError) -> Value {
    let mut details = Map::new();
    for (k, v) in [("name", &e.name), ("group", &e.group), ("kind", &e.kind)] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            details.insert(k.into(), Value::from(v.clone()));
        }
    }
    if !e.causes.is_empty() {
        let causes: Vec<Value> = e
            .causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        details.insert("causes".into(), Value::Array(causes));
    }
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": e.message,
        "reason": e.reason,
        "code": e.code,
    });
    if !details.is_empty() {
        status["details"] = Value::Object(details);
    }
    status
}

/// The `Status` a successful delete of a built-in kind answers with.
pub fn success(res: &ResourceDef, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": res.group, "kind": res.plural, "uid": uid},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_plural;

    #[test]
    fn not_found_body_matches_the_api_server() {
        let stages = by_plural("kargo.akuity.io", "stages").unwrap();
        let b = body(&not_found(stages, "dev"));
        assert_eq!(b["message"], "stages.kargo.akuity.io \"dev\" not found");
        assert_eq!(b["reason"], "NotFound");
        assert_eq!(b["code"], 404);
        assert_eq!(
            b["details"],
            json!({"name": "dev", "group": "kargo.akuity.io", "kind": "stages"})
        );
        let u = body(&unauthorized());
        assert!(u.get("details").is_none());
        assert_eq!(u["status"], "Failure");
    }
}
