//! The kinds the sandbox serves: group, version, names, scope and subresources.
//! Routing, discovery, validation and the store all look kinds up in this one table.

/// The API group of Kargo's custom resources.
pub const KARGO_GROUP: &str = "kargo.akuity.io";

/// One served resource type.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    /// Whether `/status` is a separate subresource (writes to the main resource ignore status).
    pub status: bool,
    pub short_names: &'static [&'static str],
    /// Custom resources track `metadata.generation`; the built-in kinds served here do not.
    pub custom: bool,
    /// Where its objects come from.
    pub backing: Backing,
}

/// Where a resource's objects come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// The store: every verb.
    Store,
    /// A review (`SelfSubjectAccessReview` and kin): only `create`, answered, never stored.
    Review,
    /// Kargo's CRDs as the sandbox serves them: `get` and `list` only.
    Crds,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `stages.kargo.akuity.io`, or `namespaces` for the core group, as error messages name it.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn is_kargo(&self) -> bool {
        self.group == KARGO_GROUP
    }

    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

const fn core(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    status: bool,
    short_names: &'static [&'static str],
) -> ResourceDef {
    ResourceDef {
        group: "",
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        status,
        short_names,
        custom: false,
        backing: Backing::Store,
    }
}

const fn rbac(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceDef {
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        status: false,
        short_names: &[],
        custom: false,
        backing: Backing::Store,
    }
}

const fn review(group: &'static str, kind: &'static str, plural: &'static str) -> ResourceDef {
    ResourceDef {
        group,
        version: "v1",
        kind,
        plural,
        singular: "",
        namespaced: false,
        status: false,
        short_names: &[],
        custom: false,
        backing: Backing::Review,
    }
}

const fn kargo(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    status: bool,
    short_names: &'static [&'static str],
) -> ResourceDef {
    ResourceDef {
        group: KARGO_GROUP,
        version: "v1alpha1",
        kind,
        plural,
        singular,
        namespaced,
        status,
        short_names,
        custom: true,
        backing: Backing::Store,
    }
}

/// Every resource the sandbox can serve. RBAC kinds are stored (Kargo's controllers create
/// roles and bindings for projects) and decide what impersonated and RBAC users may do.
pub static RESOURCES: &[ResourceDef] = &[
    core("Namespace", "namespaces", "namespace", false, true, &["ns"]),
    core("Secret", "secrets", "secret", true, false, &[]),
    core("ConfigMap", "configmaps", "configmap", true, false, &["cm"]),
    core("Event", "events", "event", true, false, &["ev"]),
    core(
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        false,
        &["sa"],
    ),
    // Stored only so that `kubectl describe namespace` finds (empty) quotas and limits.
    core(
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        true,
        true,
        &["quota"],
    ),
    // Stored only so that `kubectl get all` (pods and services, in the `all` category) lists
    // an empty namespace as on a cluster where nothing else runs.
    core("Pod", "pods", "pod", true, true, &["po"]),
    core("Service", "services", "service", true, true, &["svc"]),
    core(
        "LimitRange",
        "limitranges",
        "limitrange",
        true,
        false,
        &["limits"],
    ),
    rbac("Role", "roles", "role", true),
    rbac("RoleBinding", "rolebindings", "rolebinding", true),
    rbac("ClusterRole", "clusterroles", "clusterrole", false),
    rbac(
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
    ),
    // What `kubectl auth can-i` and `kubectl auth whoami` ask.
    review(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
    ),
    review(
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
    ),
    review(
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
    ),
    ResourceDef {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        namespaced: false,
        status: false,
        short_names: &["crd", "crds"],
        custom: false,
        backing: Backing::Crds,
    },
    kargo("Project", "projects", "project", false, true, &[]),
    kargo(
        "ProjectConfig",
        "projectconfigs",
        "projectconfig",
        true,
        true,
        &[],
    ),
    kargo("Warehouse", "warehouses", "warehouse", true, true, &[]),
    kargo("Stage", "stages", "stage", true, true, &[]),
    kargo("Freight", "freights", "freight", true, true, &[]),
    kargo(
        "Promotion",
        "promotions",
        "promotion",
        true,
        true,
        &["promo", "promos"],
    ),
    kargo(
        "PromotionTask",
        "promotiontasks",
        "promotiontask",
        true,
        false,
        &["promotask", "promotasks"],
    ),
    kargo(
        "ClusterPromotionTask",
        "clusterpromotiontasks",
        "clusterpromotiontask",
        false,
        false,
        &["clusterpromotask", "clusterpromotasks"],
    ),
    kargo(
        "ClusterConfig",
        "clusterconfigs",
        "clusterconfig",
        false,
        true,
        &["clusterconfig", "clusterconfigs"],
    ),
];

pub fn by_plural(group: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

pub fn namespaces() -> &'static ResourceDef {
    &RESOURCES[0]
}

/// The API groups (other than the core group) in the order discovery lists them.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_kargo_kinds_by_plural_and_kind() {
        let stage = by_plural(KARGO_GROUP, "stages").unwrap();
        assert_eq!(stage.kind, "Stage");
        assert_eq!(stage.group_resource(), "stages.kargo.akuity.io");
        assert_eq!(
            by_kind("kargo.akuity.io/v1alpha1", "Promotion")
                .unwrap()
                .short_names,
            ["promo", "promos"]
        );
        assert!(by_kind("v1", "Stage").is_none());
        assert_eq!(namespaces().plural, "namespaces");
        assert_eq!(RESOURCES.iter().filter(|r| r.is_kargo()).count(), 9);
    }
}
