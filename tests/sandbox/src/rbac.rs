//! Kubernetes RBAC over the stored Roles, ClusterRoles and their bindings, as the API
//! server's RBAC authorizer decides: a request is allowed when any bound rule allows it.

use serde_json::{Value, json};

use crate::resources::{RESOURCES, ResourceDef};
use crate::store::Store;

const GROUP: &str = "rbac.authorization.k8s.io";
/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group whose members may do everything (the RBAC authorizer is never asked).
pub const MASTERS: &str = "system:masters";

/// Who is asking: a user name and its groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// A user authenticated by the sandbox: the admin is in `system:masters`; a service
    /// account's user name (`system:serviceaccount:NS:NAME`) puts it in
    /// `system:serviceaccounts` and `system:serviceaccounts:NS`, as the token authenticator does.
    pub fn authenticated(name: &str, admin: bool) -> Identity {
        let mut groups = Vec::new();
        if admin {
            groups.push(MASTERS.to_string());
        } else if let Some((ns, _)) = service_account(name) {
            groups.push("system:serviceaccounts".to_string());
            groups.push(format!("system:serviceaccounts:{ns}"));
        }
        groups.push(AUTHENTICATED.to_string());
        Identity {
            name: name.to_string(),
            groups,
        }
    }

    /// The identity `Impersonate-User` / `Impersonate-Group` ask for: the groups given, or a
    /// service account's own groups when none are; `system:authenticated` added unless the
    /// groups name it or `system:unauthenticated` (the API server's impersonation filter).
    pub fn impersonated(name: &str, groups: Vec<String>) -> Identity {
        if groups.is_empty() {
            return Identity::authenticated(name, false);
        }
        let mut groups = groups;
        if name != "system:anonymous"
            && !groups
                .iter()
                .any(|g| g == AUTHENTICATED || g == "system:unauthenticated")
        {
            groups.push(AUTHENTICATED.to_string());
        }
        Identity {
            name: name.to_string(),
            groups,
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// `(namespace, name)` of a service account user name.
fn service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// What is asked: a verb on a resource (group, plural, optional subresource, namespace,
/// name) or, with `path`, a verb on a non-resource URL such as `/healthz`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Access<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub path: Option<&'a str>,
}

impl Access<'_> {
    /// `resource` or `resource/subresource`, as rules and denied pairs name it.
    pub fn resource_label(&self) -> String {
        match (self.path, self.subresource) {
            (Some(path), _) => path.to_string(),
            (None, Some(sub)) => format!("{}/{sub}", self.resource),
            (None, None) => self.resource.to_string(),
        }
    }
}

/// The rules a cluster without this sandbox's objects still grants every authenticated user:
/// the default `system:basic-user`, `system:discovery` and `system:public-info-viewer`
/// ClusterRoles, bound to `system:authenticated`.
fn builtin_rules() -> [(&'static str, Value); 3] {
    [
        (
            "system:basic-user",
            json!([
                {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                 "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
                {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
                 "resources": ["selfsubjectreviews"]},
            ]),
        ),
        (
            "system:discovery",
            json!([{"verbs": ["get"], "nonResourceURLs": [
                "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version", "/version/"
            ]}]),
        ),
        (
            "system:public-info-viewer",
            json!([{"verbs": ["get"], "nonResourceURLs": [
                "/healthz", "/livez", "/readyz", "/version", "/version/"
            ]}]),
        ),
    ]
}

fn rbac_def(plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == GROUP && r.plural == plural)
}

fn strs(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn contains(list: &Value, wanted: &str) -> bool {
    strs(list).any(|s| s == "*" || s == wanted)
}

/// Does `rule` (a PolicyRule) allow `access`? rbac/v1's `RuleAllows`.
fn rule_allows(rule: &Value, access: &Access<'_>) -> bool {
    if !contains(&rule["verbs"], access.verb) {
        return false;
    }
    if let Some(path) = access.path {
        return strs(&rule["nonResourceURLs"]).any(|u| {
            u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        });
    }
    if !contains(&rule["apiGroups"], access.group) {
        return false;
    }
    let combined = access.resource_label();
    let resource_matches = strs(&rule["resources"]).any(|r| {
        r == "*"
            || r == combined
            || access
                .subresource
                .is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
    });
    let names = &rule["resourceNames"];
    resource_matches && (strs(names).next().is_none() || strs(names).any(|n| n == access.name))
}

/// `Kind "name"`, or `ServiceAccount "name/namespace"`, as RBAC's reasons name a subject.
fn describe_subject(subject: &Value, binding_ns: &str) -> String {
    let kind = subject["kind"].as_str().unwrap_or_default();
    let name = subject["name"].as_str().unwrap_or_default();
    if kind == "ServiceAccount" {
        let ns = subject["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(binding_ns);
        format!("{kind} {:?}", format!("{name}/{ns}"))
    } else {
        format!("{kind} {name:?}")
    }
}

/// The first of `binding`'s subjects that `who` is (a service account subject without a
/// namespace is in the binding's).
fn bound_subject<'b>(binding: &'b Value, who: &Identity, binding_ns: &str) -> Option<&'b Value> {
    binding["subjects"].as_array()?.iter().find(|s| {
        let name = s["name"].as_str().unwrap_or_default();
        match s["kind"].as_str().unwrap_or_default() {
            "User" => who.name == name,
            "Group" => who.in_group(name),
            "ServiceAccount" => {
                let ns = s["namespace"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(binding_ns);
                service_account(&who.name) == Some((ns, name))
            }
            _ => false,
        }
    })
}

/// Visits every rule that applies to `who` in `namespace` (cluster-wide bindings, then the
/// namespace's RoleBindings), with the description RBAC gives its source; stops when
/// `visit` returns `true`.
fn visit_rules(
    store: &Store,
    who: &Identity,
    namespace: Option<&str>,
    visit: &mut dyn FnMut(&str, &Value) -> bool,
) -> bool {
    if who.in_group(AUTHENTICATED) {
        for (role, rules) in builtin_rules() {
            let source = format!(
                "ClusterRoleBinding {role:?} of ClusterRole {role:?} to Group {AUTHENTICATED:?}"
            );
            if rules
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| visit(&source, r))
            {
                return true;
            }
        }
    }
    let (Some(crbs), Some(rbs), Some(roles), Some(cluster_roles)) = (
        rbac_def("clusterrolebindings"),
        rbac_def("rolebindings"),
        rbac_def("roles"),
        rbac_def("clusterroles"),
    ) else {
        return false;
    };
    let role_rules = |binding: &Value, ns: Option<&str>| -> Option<Value> {
        let role_ref = &binding["roleRef"];
        let name = role_ref["name"].as_str()?;
        let role = match (role_ref["kind"].as_str()?, ns) {
            ("ClusterRole", _) => store.get(cluster_roles, None, name)?,
            ("Role", Some(ns)) => store.get(roles, Some(ns), name)?,
            _ => return None,
        };
        Some(role["rules"].clone())
    };
    let mut bindings: Vec<(&Value, Option<&str>)> =
        store.list(crbs, None).map(|b| (b, None)).collect();
    if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
        bindings.extend(store.list(rbs, Some(ns)).map(|b| (b, Some(ns))));
    }
    for (binding, ns) in bindings {
        let Some(subject) = bound_subject(binding, who, ns.unwrap_or_default()) else {
            continue;
        };
        let Some(rules) = role_rules(binding, ns) else {
            continue;
        };
        let name = binding["metadata"]["name"].as_str().unwrap_or_default();
        let role_ref = &binding["roleRef"];
        let (kind, role) = (
            role_ref["kind"].as_str().unwrap_or_default(),
            role_ref["name"].as_str().unwrap_or_default(),
        );
        let source = match ns {
            None => format!(
                "ClusterRoleBinding {name:?} of {kind} {role:?} to {}",
                describe_subject(subject, "")
            ),
            Some(ns) => format!(
                "RoleBinding {:?} of {kind} {role:?} to {}",
                format!("{name}/{ns}"),
                describe_subject(subject, ns)
            ),
        };
        if rules
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| visit(&source, r))
        {
            return true;
        }
    }
    false
}

/// RBAC's decision on `access` by `who`: the reason (`RBAC: allowed by …`) when a bound rule
/// allows it, `None` when none does.
pub fn authorize(store: &Store, who: &Identity, access: &Access<'_>) -> Option<String> {
    let mut reason = None;
    visit_rules(store, who, access.namespace, &mut |source, rule| {
        let allowed = rule_allows(rule, access);
        if allowed {
            reason = Some(format!("RBAC: allowed by {source}"));
        }
        allowed
    });
    reason
}

/// The rules that apply to `who` in `namespace`, as a SelfSubjectRulesReview lists them:
/// `(resourceRules, nonResourceRules)`.
pub fn rules_for(store: &Store, who: &Identity, namespace: &str) -> (Vec<Value>, Vec<Value>) {
    let (mut resource, mut non_resource) = (Vec::new(), Vec::new());
    visit_rules(store, who, Some(namespace), &mut |_, rule| {
        let verbs = rule["verbs"].clone();
        if rule.get("nonResourceURLs").is_some_and(|u| !u.is_null()) {
            non_resource.push(json!({"verbs": verbs, "nonResourceURLs": rule["nonResourceURLs"]}));
        } else {
            let mut r = json!({"verbs": verbs, "apiGroups": rule["apiGroups"], "resources": rule["resources"]});
            if strs(&rule["resourceNames"]).next().is_some() {
                r["resourceNames"] = rule["resourceNames"].clone();
            }
            resource.push(r);
        }
        false
    });
    (resource, non_resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access<'a>(verb: &'a str, resource: &'a str, ns: Option<&'a str>) -> Access<'a> {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (resource, None),
        };
        Access {
            verb,
            group: "kargo.akuity.io",
            resource,
            subresource,
            namespace: ns,
            ..Access::default()
        }
    }

    fn objects() -> Vec<Value> {
        vec![
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "editor"},
            "rules": [
                {"apiGroups": ["kargo.akuity.io"], "resources": ["stages"], "verbs": ["get", "patch"]},
                {"apiGroups": ["kargo.akuity.io"], "resources": ["freights/status"], "verbs": ["patch"]},
                {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]},
                {"apiGroups": ["kargo.akuity.io"], "resources": ["warehouses"], "verbs": ["*"],
                 "resourceNames": ["app"]},
            ]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "ci-edits", "namespace": "shop"},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "editor"},
                "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
        ]
    }

    #[test]
    fn a_role_binding_grants_its_cluster_roles_rules_in_its_namespace_only() {
        let store = Store::new(1, objects());
        let ci = Identity::authenticated("system:serviceaccount:shop:ci", false);
        assert_eq!(
            authorize(&store, &ci, &access("patch", "stages", Some("shop"))).as_deref(),
            Some(
                "RBAC: allowed by RoleBinding \"ci-edits/shop\" of ClusterRole \"editor\" to \
                 ServiceAccount \"ci/shop\""
            )
        );
        assert!(authorize(&store, &ci, &access("patch", "stages", Some("other"))).is_none());
        assert!(authorize(&store, &ci, &access("patch", "stages", None)).is_none());
        assert!(authorize(&store, &ci, &access("delete", "stages", Some("shop"))).is_none());
        // Subresources are matched as `resource/sub` or `*/sub`, never by the resource alone.
        assert!(authorize(&store, &ci, &access("patch", "stages/status", Some("shop"))).is_none());
        assert!(
            authorize(
                &store,
                &ci,
                &access("patch", "freights/status", Some("shop"))
            )
            .is_some()
        );
        assert!(
            authorize(
                &store,
                &ci,
                &access("get", "promotions/status", Some("shop"))
            )
            .is_some()
        );
        // resourceNames limit a rule to requests that name one of them.
        let mut named = access("delete", "warehouses", Some("shop"));
        assert!(authorize(&store, &ci, &named).is_none());
        named.name = "app";
        assert!(authorize(&store, &ci, &named).is_some());
        // Another service account of the same name in another namespace is not bound.
        let other = Identity::authenticated("system:serviceaccount:other:ci", false);
        assert!(authorize(&store, &other, &access("get", "stages", Some("shop"))).is_none());
    }

    #[test]
    fn groups_and_builtin_rules_apply_to_authenticated_users() {
        let mut objects = objects();
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "devs"},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "editor"},
                "subjects": [{"kind": "Group", "name": "devs", "apiGroup": GROUP}]}),
        );
        let store = Store::new(1, objects);
        let dev = Identity::impersonated("dana", vec!["devs".into()]);
        assert_eq!(dev.groups, ["devs", AUTHENTICATED]);
        assert!(authorize(&store, &dev, &access("get", "stages", None)).is_some());
        let loner = Identity::impersonated("lee", Vec::new());
        assert!(authorize(&store, &loner, &access("get", "stages", None)).is_none());
        let review = Access {
            verb: "create",
            group: "authorization.k8s.io",
            resource: "selfsubjectaccessreviews",
            ..Access::default()
        };
        assert!(authorize(&store, &loner, &review).is_some());
        let healthz = Access {
            verb: "get",
            path: Some("/healthz"),
            ..Access::default()
        };
        assert!(authorize(&store, &loner, &healthz).is_some());
        let apis = Access {
            verb: "get",
            path: Some("/apis/kargo.akuity.io/v1alpha1"),
            ..Access::default()
        };
        assert!(authorize(&store, &loner, &apis).is_some());
        let (resource, non_resource) = rules_for(&store, &dev, "shop");
        assert!(
            resource
                .iter()
                .any(|r| r["resourceNames"] == json!(["app"])),
            "{resource:?}"
        );
        assert_eq!(non_resource.len(), 2);
    }

    #[test]
    fn service_account_users_get_their_groups() {
        let sa = Identity::authenticated("system:serviceaccount:platform:terraform", false);
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:platform",
                AUTHENTICATED
            ]
        );
        assert_eq!(
            Identity::impersonated("x", vec![AUTHENTICATED.into()]).groups,
            [AUTHENTICATED]
        );
        assert!(Identity::authenticated("admin", true).in_group(MASTERS));
    }
}
