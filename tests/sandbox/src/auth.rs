//! Bearer-token users: the admin, who may do everything, and restricted users whose
//! denied `verb:resource` pairs answer 403 at the HTTP layer and `false` from `Txn::can`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::hooks::ApiError;
use crate::resources::ResourceDef;
use crate::status;

/// The name the sandbox's own token authenticates as.
pub const ADMIN: &str = "sandbox-admin";

/// A restricted user. `deny` holds `verb:resource` pairs such as `promote:stages`,
/// `delete:stages` or `update:stages/status`; `*` matches any verb or resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub token: String,
    #[serde(default)]
    pub deny: Vec<String>,
}

impl User {
    pub fn new(name: impl Into<String>, token: impl Into<String>) -> User {
        User {
            name: name.into(),
            token: token.into(),
            deny: Vec::new(),
        }
    }

    /// Denies `verb` on `resource` (e.g. `deny("promote", "stages")`).
    pub fn deny(mut self, verb: &str, resource: &str) -> User {
        self.deny.push(format!("{verb}:{resource}"));
        self
    }

    fn denies(&self, verb: &str, resource: &str) -> bool {
        self.deny.iter().any(|d| {
            let (v, r) = d.split_once(':').unwrap_or((d.as_str(), "*"));
            (v == "*" || v == verb) && (r == "*" || r == resource)
        })
    }
}

/// The sandbox's users.
#[derive(Clone, Debug)]
pub struct Users {
    admin_token: String,
    users: Vec<User>,
}

impl Users {
    pub fn new(admin_token: String, users: Vec<User>) -> Users {
        Users { admin_token, users }
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<&str> {
        if token == self.admin_token {
            return Some(ADMIN);
        }
        self.users
            .iter()
            .find(|u| u.token == token)
            .map(|u| u.name.as_str())
    }

    /// Adds a user, replacing any with the same name.
    pub fn add(&mut self, user: User) {
        self.users.retain(|u| u.name != user.name);
        self.users.push(user);
    }

    pub fn list(&self) -> &[User] {
        &self.users
    }

    /// May `user` perform `verb` on `resource` (a plural, optionally `/subresource`)?
    pub fn can(&self, user: &str, verb: &str, resource: &str) -> bool {
        if user == ADMIN {
            return true;
        }
        self.users
            .iter()
            .find(|u| u.name == user)
            .is_some_and(|u| !u.denies(verb, resource))
    }
}

/// The 403 the RBAC authorizer answers with.
pub fn forbidden(
    user: &str,
    verb: &str,
    res: &ResourceDef,
    sub: Option<&str>,
    ns: Option<&str>,
    name: Option<&str>,
) -> ApiError {
    let resource = match sub {
        Some(s) => format!("{}/{s}", res.plural),
        None => res.plural.to_string(),
    };
    let scope = match ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let why = format!(
        "User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
        res.group
    );
    status::forbidden(res, name, &why)
}

/// The verbs a rules review lists per resource (the API server's standard verbs).
const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The answer to a review `obj` of kind `res` created by `user`: `SelfSubjectAccessReview`
/// (may I?), `SelfSubjectRulesReview` (what may I?) or `SelfSubjectReview` (who am I?), each
/// as the API server answers it, with the sandbox's users and their denied pairs.
pub fn review(res: &ResourceDef, obj: &Value, user: &str, users: &Users) -> Value {
    let mut out = json!({
        "kind": res.kind,
        "apiVersion": res.api_version(),
        "metadata": {"creationTimestamp": null},
    });
    if let Some(spec) = obj.get("spec") {
        out["spec"] = spec.clone();
    }
    out["status"] = match res.kind {
        "SelfSubjectAccessReview" => {
            let attrs = &obj["spec"]["resourceAttributes"];
            let allowed = if attrs.is_object() {
                let str_of = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or_default();
                let resource = match str_of("subresource") {
                    "" => str_of("resource").to_string(),
                    sub => format!("{}/{sub}", str_of("resource")),
                };
                users.can(user, str_of("verb"), &resource)
            } else {
                let attrs = &obj["spec"]["nonResourceAttributes"];
                let str_of = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or_default();
                users.can(user, str_of("verb"), str_of("path"))
            };
            json!({"allowed": allowed})
        }
        "SelfSubjectRulesReview" => {
            let mut rules = Vec::new();
            if user == ADMIN {
                rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
            } else {
                for r in crate::resources::RESOURCES
                    .iter()
                    .filter(|r| r.backing == crate::resources::Backing::Store)
                {
                    let verbs: Vec<&str> = VERBS
                        .iter()
                        .copied()
                        .filter(|v| users.can(user, v, r.plural))
                        .collect();
                    if !verbs.is_empty() {
                        rules.push(json!({"verbs": verbs, "apiGroups": [r.group], "resources": [r.plural]}));
                    }
                }
            }
            let non_resource = if user == ADMIN {
                json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}])
            } else {
                json!([{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}])
            };
            json!({"resourceRules": rules, "nonResourceRules": non_resource, "incomplete": false})
        }
        _ => {
            let groups = if user == ADMIN {
                json!(["system:masters", "system:authenticated"])
            } else {
                json!(["system:authenticated"])
            };
            json!({"userInfo": {"username": user, "groups": groups}})
        }
    };
    out
}

/// The 403 for a user who may not impersonate: only the admin may (`kubectl --as`).
pub fn cannot_impersonate(user: &str, target: &str) -> ApiError {
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "users \"{target}\" is forbidden: User \"{user}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
    );
    e.name = Some(target.to_string());
    e.kind = Some("users".to_string());
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_plural;

    #[test]
    fn restricted_users_are_denied_listed_pairs_only() {
        let mut users = Users::new("admin-token".into(), Vec::new());
        users.add(
            User::new("dev", "t1")
                .deny("promote", "stages")
                .deny("*", "secrets"),
        );
        assert_eq!(users.authenticate("admin-token"), Some(ADMIN));
        assert_eq!(users.authenticate("t1"), Some("dev"));
        assert_eq!(users.authenticate("nope"), None);
        assert!(!users.can("dev", "promote", "stages"));
        assert!(users.can("dev", "get", "stages"));
        assert!(!users.can("dev", "list", "secrets"));
        assert!(users.can(ADMIN, "promote", "stages"));
        assert!(!users.can("stranger", "get", "stages"));
    }

    #[test]
    fn forbidden_is_worded_like_rbac() {
        let stages = by_plural("kargo.akuity.io", "stages").unwrap();
        let e = forbidden("n", "delete", stages, None, Some("p"), Some("x"));
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "stages.kargo.akuity.io \"x\" is forbidden: User \"n\" cannot delete resource \"stages\" \
             in API group \"kargo.akuity.io\" in the namespace \"p\""
        );
    }
}
