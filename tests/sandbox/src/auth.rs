//! Bearer-token users and the authorizer: the admin may do everything; a user added to the
//! sandbox may do everything but its denied `verb:resource` pairs, or, when it is an RBAC user,
//! what the stored RBAC bindings grant; any other (impersonated) user is decided by RBAC.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::hooks::ApiError;
use crate::rbac::{self, Access, Identity};
use crate::resources::ResourceDef;
use crate::status;
use crate::store::Store;

/// The name the sandbox's own token authenticates as.
pub const ADMIN: &str = "sandbox-admin";

/// A user with a bearer token. `deny` holds `verb:resource` pairs such as `promote:stages`,
/// `delete:stages` or `update:stages/status`; `*` matches any verb or resource. Everything
/// else is allowed, unless `rbac` is set: then only what RBAC bindings grant the user is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub token: String,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub rbac: bool,
}

impl User {
    pub fn new(name: impl Into<String>, token: impl Into<String>) -> User {
        User {
            name: name.into(),
            token: token.into(),
            deny: Vec::new(),
            rbac: false,
        }
    }

    /// Denies `verb` on `resource` (e.g. `deny("promote", "stages")`).
    pub fn deny(mut self, verb: &str, resource: &str) -> User {
        self.deny.push(format!("{verb}:{resource}"));
        self
    }

    /// Lets the stored Roles, ClusterRoles and their bindings decide what the user may do,
    /// as on a cluster (its denied pairs still apply).
    pub fn rbac(mut self) -> User {
        self.rbac = true;
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
    pub fn authenticate(&self, token: &str) -> Option<Identity> {
        if token == self.admin_token {
            return Some(Identity::authenticated(ADMIN, true));
        }
        self.users
            .iter()
            .find(|u| u.token == token)
            .map(|u| Identity::authenticated(&u.name, false))
    }

    /// Adds a user, replacing any with the same name.
    pub fn add(&mut self, user: User) {
        self.users.retain(|u| u.name != user.name);
        self.users.push(user);
    }

    pub fn list(&self) -> &[User] {
        &self.users
    }

    /// May `who` do `access`? `Some(reason)` when allowed (the reason is empty unless RBAC
    /// allowed it), `None` when not.
    pub fn authorize(&self, store: &Store, who: &Identity, access: &Access<'_>) -> Option<String> {
        if who.name == ADMIN || who.in_group(rbac::MASTERS) {
            return Some(String::new());
        }
        match self.users.iter().find(|u| u.name == who.name) {
            Some(u) if u.denies(access.verb, &access.resource_label()) => None,
            Some(u) if !u.rbac => Some(String::new()),
            _ => rbac::authorize(store, who, access),
        }
    }

    /// [`Users::authorize`] as a yes or no.
    pub fn can(&self, store: &Store, who: &Identity, access: &Access<'_>) -> bool {
        self.authorize(store, who, access).is_some()
    }

    /// Whether `who` is decided by the denied pairs alone (not by RBAC).
    fn by_denied_pairs(&self, who: &Identity) -> Option<&User> {
        self.users.iter().find(|u| u.name == who.name && !u.rbac)
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

/// The answer to a review `obj` of kind `res` created by `who`: `SelfSubjectAccessReview`
/// (may I?), `SelfSubjectRulesReview` (what may I?) or `SelfSubjectReview` (who am I?), each
/// as the API server answers it.
pub fn review(
    res: &ResourceDef,
    obj: &Value,
    who: &Identity,
    users: &Users,
    store: &Store,
) -> Value {
    let mut out = json!({
        "kind": res.kind,
        "apiVersion": res.api_version(),
        "metadata": {"creationTimestamp": null},
    });
    if let Some(spec) = obj.get("spec") {
        out["spec"] = spec.clone();
    }
    let admin = who.name == ADMIN || who.in_group(rbac::MASTERS);
    out["status"] = match res.kind {
        "SelfSubjectAccessReview" => {
            let resource = &obj["spec"]["resourceAttributes"];
            let attrs = if resource.is_object() {
                resource
            } else {
                &obj["spec"]["nonResourceAttributes"]
            };
            let str_of = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or_default();
            let access = Access {
                verb: str_of("verb"),
                group: str_of("group"),
                resource: str_of("resource"),
                subresource: Some(str_of("subresource")).filter(|s| !s.is_empty()),
                namespace: Some(str_of("namespace")).filter(|s| !s.is_empty()),
                name: str_of("name"),
                path: (!resource.is_object()).then(|| str_of("path")),
            };
            match users.authorize(store, who, &access) {
                Some(reason) if reason.is_empty() => json!({"allowed": true}),
                Some(reason) => json!({"allowed": true, "reason": reason}),
                None => json!({"allowed": false}),
            }
        }
        "SelfSubjectRulesReview" => {
            let (rules, non_resource) = if admin {
                (
                    vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
                    vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
                )
            } else if let Some(user) = users.by_denied_pairs(who) {
                let rules = crate::resources::RESOURCES
                    .iter()
                    .filter(|r| r.backing == crate::resources::Backing::Store)
                    .filter_map(|r| {
                        let verbs: Vec<&str> = VERBS
                            .iter()
                            .copied()
                            .filter(|v| !user.denies(v, r.plural))
                            .collect();
                        (!verbs.is_empty()).then(|| {
                            json!({"verbs": verbs, "apiGroups": [r.group], "resources": [r.plural]})
                        })
                    })
                    .collect();
                (
                    rules,
                    vec![
                        json!({"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}),
                    ],
                )
            } else {
                let ns = obj["spec"]["namespace"].as_str().unwrap_or_default();
                rbac::rules_for(store, who, ns)
            };
            json!({"resourceRules": rules, "nonResourceRules": non_resource, "incomplete": false})
        }
        _ => json!({"userInfo": {"username": who.name, "groups": who.groups}}),
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

    fn on<'a>(verb: &'a str, resource: &'a str) -> Access<'a> {
        Access {
            verb,
            resource,
            namespace: Some("p"),
            ..Access::default()
        }
    }

    #[test]
    fn restricted_users_are_denied_listed_pairs_only() {
        let store = Store::new(1, Vec::new());
        let mut users = Users::new("admin-token".into(), Vec::new());
        users.add(
            User::new("dev", "t1")
                .deny("promote", "stages")
                .deny("*", "secrets"),
        );
        users.add(User::new("rita", "t2").rbac());
        let admin = users.authenticate("admin-token").unwrap();
        assert_eq!(admin.name, ADMIN);
        let dev = users.authenticate("t1").unwrap();
        assert_eq!(dev.name, "dev");
        assert_eq!(users.authenticate("nope"), None);
        assert!(!users.can(&store, &dev, &on("promote", "stages")));
        assert!(users.can(&store, &dev, &on("get", "stages")));
        assert!(!users.can(&store, &dev, &on("list", "secrets")));
        assert!(users.can(&store, &admin, &on("promote", "stages")));
        // Without bindings, an RBAC user and a user the sandbox does not know may do nothing.
        let rita = users.authenticate("t2").unwrap();
        assert!(!users.can(&store, &rita, &on("get", "stages")));
        let stranger = Identity::impersonated("stranger", Vec::new());
        assert!(!users.can(&store, &stranger, &on("get", "stages")));
        let masters = Identity::impersonated("m", vec![rbac::MASTERS.into()]);
        assert!(users.can(&store, &masters, &on("delete", "secrets")));
    }

    #[test]
    fn an_rbac_users_denied_pairs_apply_on_top_of_its_bindings() {
        let store = Store::new(
            1,
            vec![
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "all"},
                    "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "rita"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "all"},
                    "subjects": [{"kind": "User", "name": "rita"}]}),
            ],
        );
        let mut users = Users::new("admin-token".into(), Vec::new());
        users.add(User::new("rita", "t").rbac().deny("delete", "stages"));
        let rita = users.authenticate("t").unwrap();
        assert_eq!(
            users
                .authorize(&store, &rita, &on("get", "stages"))
                .as_deref(),
            Some(
                "RBAC: allowed by ClusterRoleBinding \"rita\" of ClusterRole \"all\" to User \"rita\""
            )
        );
        assert!(!users.can(&store, &rita, &on("delete", "stages")));
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
