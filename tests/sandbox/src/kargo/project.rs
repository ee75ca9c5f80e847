//! Projects and ProjectConfigs: the webhooks (namespace creation and adoption, naming and
//! policy rules) and the controllers (finalizers, status, cleanup, webhook receivers).

use serde_json::{Value, json};

use super::names::sha256_hex;
use super::pattern::{NamePattern, selector_matches};
use super::util::{
    self, FINALIZER, FieldError, GROUP, LABEL_PROJECT, add_finalizer, annotation, arr_at, conflict,
    forbidden, forbidden_error, format_time, generation, has_finalizer, internal, invalid,
    is_deleting, label, name, namespace, remove_finalizer, set_condition, str_at,
};
use crate::hooks::{AdmissionRequest, ApiError, Operation, Txn};

pub const PROJECT_WEBHOOK: &str = "project.kargo.akuity.io";
pub const PROJECT_CONFIG_WEBHOOK: &str = "projectconfig.kargo.akuity.io";

fn get_namespace(txn: &dyn Txn, name: &str) -> Option<Value> {
    txn.get("", "namespaces", None, name)
}

/// Namespaced Kargo objects may only live in Project namespaces: 404 when the namespace is
/// missing, a field error on `metadata.namespace` when it is not labelled as a Project.
pub fn validate_project_namespace(txn: &dyn Txn, ns: &str) -> Result<Option<FieldError>, ApiError> {
    let Some(namespace) = get_namespace(txn, ns) else {
        return Err(util::not_found("Namespace", "", ns));
    };
    if label(&namespace, LABEL_PROJECT) != Some("true") {
        return Ok(Some(invalid(
            "metadata.namespace",
            &json!(ns),
            &format!("namespace {ns:?} is not a project"),
        )));
    }
    Ok(None)
}

/// Project webhook: on CREATE ensure the Project namespace exists (creating it labelled and
/// finalized) or fail with 409 when an unlabelled or terminating namespace is in the way.
pub fn admit_project(txn: &mut dyn Txn, req: &AdmissionRequest<'_>) -> Result<(), ApiError> {
    if req.operation != Operation::Create || req.dry_run || req.subresource.is_some() {
        return Ok(());
    }
    let project = req.name;
    match get_namespace(txn, project) {
        Some(ns) => {
            if label(&ns, LABEL_PROJECT) != Some("true") {
                return Err(conflict(
                    "projects",
                    GROUP,
                    project,
                    &format!(
                        "failed to initialize Project {project:?} because namespace {project:?} already exists and is not labeled as a Project namespace"
                    ),
                ));
            }
            if is_deleting(&ns) {
                return Err(conflict(
                    "projects",
                    GROUP,
                    project,
                    &format!(
                        "failed to initialize Project {project:?} because namespace {project:?} is still being terminated; please try again after the namespace has been fully deleted"
                    ),
                ));
            }
            Ok(())
        }
        None => {
            let ns = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": project, "labels": {LABEL_PROJECT: "true"}, "finalizers": [FINALIZER]},
            });
            txn.create(ns).map(|_| ()).map_err(|e| {
                internal(&format!(
                    "error creating namespace {project:?}: {}",
                    e.message
                ))
            })?;
            ensure(txn, system_role_binding(project, "kargo-project-admin", "kargo-project-admin", &["kargo-api", "kargo-admin"]))
                .map_err(|e| internal(&format!("error creating role binding \"kargo-project-admin\" in project namespace {project:?}: {}", e.message)))
        }
    }
}

/// The namespace Kargo itself runs in; its ServiceAccounts are bound into Projects.
const KARGO_NAMESPACE: &str = "kargo";
const RBAC_API: &str = "rbac.authorization.k8s.io/v1";
const MANAGED: &str = "rbac.kargo.akuity.io/managed";

/// Creates `obj` unless an object of that name already exists.
fn ensure(txn: &mut dyn Txn, obj: Value) -> Result<(), ApiError> {
    let (group, resource) = match str_at(&obj, "kind") {
        "ServiceAccount" => ("", "serviceaccounts"),
        "Role" => ("rbac.authorization.k8s.io", "roles"),
        _ => ("rbac.authorization.k8s.io", "rolebindings"),
    };
    if txn
        .get(group, resource, Some(namespace(&obj)), name(&obj))
        .is_some()
    {
        return Ok(());
    }
    match txn.create(obj) {
        Err(e) if e.code != 409 => Err(e),
        _ => Ok(()),
    }
}

fn system_role_binding(
    project: &str,
    binding: &str,
    cluster_role: &str,
    accounts: &[&str],
) -> Value {
    let subjects: Vec<Value> = accounts
        .iter()
        .map(|a| json!({"kind": "ServiceAccount", "name": a, "namespace": KARGO_NAMESPACE}))
        .collect();
    json!({"apiVersion": RBAC_API, "kind": "RoleBinding",
        "metadata": {"name": binding, "namespace": project},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": subjects})
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// The default project roles Kargo's Project controller maintains (`kargo-admin`,
/// `kargo-viewer`, `kargo-promoter`), each with a ServiceAccount and a RoleBinding.
fn default_user_roles() -> Vec<(&'static str, Vec<Value>)> {
    const READ: &[&str] = &["get", "list", "watch"];
    const ROLLOUTS: &str = "argoproj.io";
    vec![
        (
            "kargo-admin",
            vec![
                rule(&[""], &["events"], READ),
                rule(&[""], &["configmaps", "secrets", "serviceaccounts"], &["*"]),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    &["*"],
                ),
                rule(
                    &[GROUP],
                    &[
                        "freights",
                        "projectconfigs",
                        "promotiontasks",
                        "stages",
                        "warehouses",
                    ],
                    &["*"],
                ),
                rule(&[GROUP], &["stages"], &["promote"]),
                rule(
                    &[GROUP],
                    &["promotions"],
                    &["create", "delete", "get", "list", "watch", "patch"],
                ),
                rule(&[GROUP], &["freights/status"], &["patch"]),
                rule(
                    &[ROLLOUTS],
                    &["analysisruns"],
                    &["delete", "get", "list", "watch"],
                ),
                rule(&[ROLLOUTS], &["analysistemplates"], &["*"]),
            ],
        ),
        (
            "kargo-viewer",
            vec![
                rule(&[""], &["configmaps", "events", "serviceaccounts"], READ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    READ,
                ),
                rule(
                    &[GROUP],
                    &[
                        "freights",
                        "promotions",
                        "stages",
                        "warehouses",
                        "projectconfigs",
                    ],
                    READ,
                ),
                rule(&[ROLLOUTS], &["analysisruns", "analysistemplates"], READ),
            ],
        ),
        (
            "kargo-promoter",
            vec![
                rule(&[""], &["configmaps", "events", "serviceaccounts"], READ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    READ,
                ),
                rule(
                    &[GROUP],
                    &["freights", "stages", "warehouses", "projectconfigs"],
                    READ,
                ),
                rule(&[GROUP], &["stages"], &["promote"]),
                rule(
                    &[GROUP],
                    &["promotions"],
                    &["create", "get", "list", "watch"],
                ),
                rule(&[GROUP], &["freights/status"], &["patch"]),
                rule(&[ROLLOUTS], &["analysisruns", "analysistemplates"], READ),
            ],
        ),
    ]
}

/// The RBAC objects a Project namespace gets from Kargo (best effort: a failure leaves the
/// Project otherwise usable; only users whose access RBAC decides depend on them).
fn ensure_project_rbac(txn: &mut dyn Txn, project: &str) {
    let _ = ensure(
        txn,
        system_role_binding(
            project,
            "kargo-project-admin",
            "kargo-project-admin",
            &["kargo-api", "kargo-admin"],
        ),
    );
    let _ = ensure(
        txn,
        system_role_binding(
            project,
            "kargo-project-secrets-reader",
            "kargo-project-secrets-reader",
            &["kargo-external-webhooks-server"],
        ),
    );
    for (role, rules) in default_user_roles() {
        let meta = json!({"name": role, "namespace": project, "annotations": {MANAGED: "true"}});
        let _ = ensure(
            txn,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}),
        );
        let _ = ensure(
            txn,
            json!({"apiVersion": RBAC_API, "kind": "Role", "metadata": meta, "rules": rules}),
        );
        let _ = ensure(
            txn,
            json!({"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": role, "namespace": project}]}),
        );
    }
}

/// The CRD's CEL rule plus the webhook's policy checks.
fn policy_errors(obj: &Value) -> (Vec<FieldError>, Vec<FieldError>) {
    let mut schema = Vec::new();
    let mut webhook = Vec::new();
    let f = "spec.promotionPolicies";
    let mut names: Vec<(String, usize)> = Vec::new();
    for (i, policy) in arr_at(obj, f).iter().enumerate() {
        let has_stage = policy.get("stage").is_some();
        let has_selector = policy.get("stageSelector").is_some();
        if has_stage == has_selector {
            schema.push(invalid(
                format!("{f}[{i}]"),
                &json!("object"),
                "PromotionPolicy must have exactly one of stage or stageSelector",
            ));
        }
        let stage_name = if has_selector {
            str_at(policy, "stageSelector.name")
        } else {
            str_at(policy, "stage")
        };
        if stage_name.is_empty() {
            continue;
        }
        if let Some((kind, _)) = stage_name.split_once(':') {
            let field = format!("{f}[{i}].stageSelector.name");
            match NamePattern::parse(stage_name) {
                Err(e) => webhook.push(invalid(field, &json!(stage_name), &e)),
                Ok(NamePattern::Exact(_)) => webhook.push(invalid(
                    field,
                    &json!(stage_name),
                    &format!("invalid pattern identifier {kind:?}: must be \"regex\", \"regexp\" or \"glob\""),
                )),
                Ok(_) => {}
            }
            continue;
        }
        match names.iter().find(|(n, _)| n == stage_name) {
            Some((_, first)) => webhook.push(invalid(
                format!("{f}[{i}]"),
                &json!(stage_name),
                &format!("stage name already defined at {f}[{first}]"),
            )),
            None => names.push((stage_name.to_string(), i)),
        }
    }
    (schema, webhook)
}

/// The types Kargo's webhook counts when it rejects a receiver of more than one type. Harbor
/// is missing from Kargo's own list (v1.11), so a receiver with Harbor and one other type
/// passes its webhook; the emulation keeps that.
const RECEIVER_TYPES: [(&str, &str); 9] = [
    ("bitbucket", "Bitbucket"),
    ("dockerhub", "DockerHub"),
    ("github", "GitHub"),
    ("gitlab", "GitLab"),
    ("quay", "Quay"),
    ("artifactory", "Artifactory"),
    ("azure", "Azure"),
    ("gitea", "Gitea"),
    ("generic", "Generic"),
];

fn receiver_errors(obj: &Value) -> Vec<FieldError> {
    let f = "spec.webhookReceivers";
    let mut errs = Vec::new();
    let receivers = arr_at(obj, f);
    for (i, r) in receivers.iter().enumerate() {
        let n = str_at(r, "name");
        if let Some(first) = receivers[..i].iter().position(|o| str_at(o, "name") == n) {
            errs.push(invalid(
                format!("{f}[{i}].name"),
                &json!(n),
                &format!("webhook receiver name already defined at {f}[{first}]"),
            ));
        }
    }
    for (i, r) in receivers.iter().enumerate() {
        let types: Vec<&str> = RECEIVER_TYPES
            .iter()
            .filter(|(k, _)| r.get(*k).is_some())
            .map(|(_, t)| *t)
            .collect();
        if types.len() > 1 {
            errs.push(forbidden(
                format!("{f}[{i}]"),
                &format!(
                    "cannot define a receiver that is of more than one type, found {}: [{}]",
                    types.len(),
                    types.join(" ")
                ),
            ));
        }
        for (a, action) in arr_at(r, "generic.actions").iter().enumerate() {
            for (t, target) in arr_at(action, "targetSelectionCriteria").iter().enumerate() {
                let empty = str_at(target, "name").is_empty()
                    && target
                        .get("labelSelector")
                        .and_then(|l| l.get("matchLabels"))
                        .is_none_or(|m| m.as_object().is_none_or(serde_json::Map::is_empty))
                    && arr_at(target, "labelSelector.matchExpressions").is_empty()
                    && arr_at(target, "indexSelector.matchIndices").is_empty();
                if empty {
                    errs.push(invalid(
                        format!("{f}[{i}].generic.actions[{a}].targetSelectionCriteria[{t}]"),
                        target,
                        "at least one of name, labelSelector, or indexSelector must be specified for target",
                    ));
                }
            }
        }
    }
    errs
}

/// ProjectConfig webhook: the name must be the Project's, policies and receivers must be
/// well formed, and (on CREATE) the namespace must belong to a Project.
pub fn admit_project_config(txn: &mut dyn Txn, req: &AdmissionRequest<'_>) -> Result<(), ApiError> {
    if req.operation == Operation::Delete || req.subresource.is_some() {
        return Ok(());
    }
    let Some(obj) = req.object.as_deref() else {
        return Ok(());
    };
    let ns = req.namespace.unwrap_or_default();
    let (schema, mut errs) = policy_errors(obj);
    if !schema.is_empty() {
        return Err(util::invalid_error("ProjectConfig", req.name, schema));
    }
    if req.operation == Operation::Create && req.name != ns {
        errs.insert(
            0,
            invalid(
                "metadata.name",
                &json!(req.name),
                &format!("name {:?} must match project name {ns:?}", req.name),
            ),
        );
    }
    errs.extend(receiver_errors(obj));
    if !errs.is_empty() {
        return Err(util::invalid_error("ProjectConfig", req.name, errs)
            .denied_by_webhook(PROJECT_CONFIG_WEBHOOK));
    }
    if req.operation == Operation::Create && !req.dry_run {
        let is_project =
            get_namespace(txn, ns).is_some_and(|n| label(&n, LABEL_PROJECT) == Some("true"));
        if !is_project {
            return Err(forbidden_error(
                "projectconfigs",
                GROUP,
                req.name,
                &format!("namespace {ns:?} does not belong to Kargo project (missing {LABEL_PROJECT:?} label)"),
            )
            .denied_by_webhook(PROJECT_CONFIG_WEBHOOK));
        }
    }
    Ok(())
}

/// The first matching promotion policy decides (`findMatchingPromotionPolicy`).
pub fn auto_promotion_enabled(project_config: Option<&Value>, stage: &Value) -> bool {
    let Some(pc) = project_config else {
        return false;
    };
    let stage_name = name(stage);
    let labels = stage
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    for policy in arr_at(pc, "spec.promotionPolicies") {
        let selector = policy
            .get("stageSelector")
            .cloned()
            .unwrap_or_else(|| json!({"name": str_at(policy, "stage")}));
        let pattern = str_at(&selector, "name");
        if !pattern.is_empty() {
            match NamePattern::parse(pattern) {
                Ok(p) if p.matches(stage_name) => {}
                _ => continue,
            }
        }
        let has_label_rules =
            selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some();
        if has_label_rules && !selector_matches(&selector, &labels) {
            continue;
        }
        return policy
            .get("autoPromotionEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    false
}

/// The Project controller: finalizer, Ready condition and stats; on deletion the cleanup
/// Kargo performs (namespace finalizer, namespace deletion unless kept, Project finalizer).
pub fn reconcile_project(txn: &mut dyn Txn, project_name: &str) {
    let Some(mut project) = txn.get(GROUP, "projects", None, project_name) else {
        return;
    };
    if is_deleting(&project) {
        cleanup_project(txn, project);
        return;
    }
    if add_finalizer(&mut project, FINALIZER) {
        match txn.update(project) {
            Ok(p) => project = p,
            Err(_) => return,
        }
    }
    let now = format_time(txn.now());
    let gen_ = generation(&project);
    let mut status = project.get("status").cloned().unwrap_or_else(|| json!({}));
    match get_namespace(txn, project_name) {
        Some(ns) if label(&ns, LABEL_PROJECT) != Some("true") => {
            set_condition(
                &mut status,
                "Stalled",
                "True",
                "ExistingNamespaceMissingLabel",
                &format!(
                    "Namespace {project_name:?} already exists but is not labeled as a Project namespace using label {LABEL_PROJECT:?}"
                ),
                gen_,
                &now,
            );
            set_condition(
                &mut status,
                "Ready",
                "False",
                "EnsuringNamespaceFailed",
                &format!(
                    "Failed to ensure existence of project namespace: failed to sync Project {project_name:?} with namespace {project_name:?}: namespace already exists and is not labeled as a Project namespace"
                ),
                gen_,
                &now,
            );
        }
        existing => {
            match existing {
                Some(mut ns) => {
                    if !is_deleting(&ns) && add_finalizer(&mut ns, FINALIZER) {
                        let _ = txn.update(ns);
                    }
                }
                None => {
                    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": project_name, "labels": {LABEL_PROJECT: "true"}, "finalizers": [FINALIZER]}});
                    let _ = txn.create(ns);
                }
            }
            util::delete_condition(&mut status, "Stalled");
            util::delete_condition(&mut status, "Reconciling");
            set_condition(
                &mut status,
                "Ready",
                "True",
                "Synced",
                "Project is synced and ready for use",
                gen_,
                &now,
            );
            ensure_project_rbac(txn, project_name);
            status["stats"] = project_stats(txn, project_name);
        }
    }
    if project.get("status") != Some(&status) {
        project["status"] = status;
        let _ = txn.update_status(project);
    }
}

fn project_stats(txn: &dyn Txn, project: &str) -> Value {
    let warehouses = txn.list(GROUP, "warehouses", Some(project));
    let stages = txn.list(GROUP, "stages", Some(project));
    let healthy = |objs: &[Value]| {
        objs.iter()
            .filter(|o| {
                o.get("status")
                    .is_some_and(|s| util::condition_true(s, "Healthy"))
            })
            .count()
    };
    let regular: Vec<Value> = stages
        .iter()
        .filter(|s| !super::availability::is_control_flow(s))
        .cloned()
        .collect();
    json!({
        "warehouses": {"count": warehouses.len(), "health": {"healthy": healthy(&warehouses)}},
        "stages": {"count": regular.len(), "health": {"healthy": healthy(&stages)}},
    })
}

fn cleanup_project(txn: &mut dyn Txn, mut project: Value) {
    let project_name = name(&project).to_string();
    if !has_finalizer(&project, FINALIZER) {
        return;
    }
    if let Some(mut ns) = get_namespace(txn, &project_name) {
        let keep = annotation(&project, util::ANNOTATION_KEEP_NAMESPACE) == Some("true")
            || annotation(&ns, util::ANNOTATION_KEEP_NAMESPACE) == Some("true");
        if remove_finalizer(&mut ns, FINALIZER) && txn.update(ns).is_err() {
            return;
        }
        if !keep {
            let _ = txn.delete("", "namespaces", None, &project_name);
        }
    }
    if remove_finalizer(&mut project, FINALIZER) {
        let _ = txn.update(project);
    }
}

/// Kargo's namespace controller: deleting a Project namespace deletes the Project, then the
/// namespace's own finalizer is released.
pub fn reconcile_namespace(txn: &mut dyn Txn, ns_name: &str) {
    let Some(mut ns) = get_namespace(txn, ns_name) else {
        return;
    };
    if !is_deleting(&ns) || !has_finalizer(&ns, FINALIZER) {
        return;
    }
    if txn.get(GROUP, "projects", None, ns_name).is_some() {
        let _ = txn.delete(GROUP, "projects", None, ns_name);
    }
    if let Some(fresh) = get_namespace(txn, ns_name) {
        ns = fresh;
    }
    if remove_finalizer(&mut ns, FINALIZER) {
        let _ = txn.update(ns);
    }
}

/// The secret data key each receiver type reads its token from.
fn receiver_secret_key(kind: &str) -> &'static str {
    match kind {
        "gitlab" | "artifactory" => "secret-token",
        "harbor" => "auth-header",
        _ => "secret",
    }
}

const ALL_RECEIVER_KEYS: [&str; 10] = [
    "github",
    "gitlab",
    "bitbucket",
    "dockerhub",
    "quay",
    "harbor",
    "artifactory",
    "azure",
    "gitea",
    "generic",
];

/// `<base>/<type>/<sha256(project + receiver name + secret value)>`, as Kargo builds it.
pub fn receiver_path(
    base_path: &str,
    project: &str,
    kind: &str,
    receiver: &str,
    secret: &str,
) -> String {
    let hash = sha256_hex(format!("{project}{receiver}{secret}").as_bytes());
    let base = base_path.trim_end_matches('/');
    format!("{base}/{kind}/{hash}")
}

/// What Kargo's receiver of `kind` says when its Secret lacks `key` (each words it its own way).
fn missing_key_message(kind: &str, key: &str) -> String {
    match kind {
        "github" => format!("missing {key:?} data key for GitHub WebhookReceiver"),
        "quay" => format!("missing {key:?} data key for Quay.io WebhookReceiver"),
        "artifactory" | "gitea" | "generic" => {
            let label = match kind {
                "artifactory" => "Artifactory",
                "gitea" => "Gitea",
                _ => "Generic",
            };
            format!("secret data is not valid for a {label} WebhookReceiver")
        }
        _ => {
            let label = match kind {
                "gitlab" => "GitLab",
                "bitbucket" => "Bitbucket",
                "dockerhub" => "DockerHub",
                "harbor" => "Harbor",
                _ => "Azure",
            };
            format!("missing data key {key:?} for {label} WebhookReceiver")
        }
    }
}

fn secret_value(
    txn: &dyn Txn,
    ns: &str,
    secret: &str,
    kind: &str,
    key: &str,
) -> Result<String, String> {
    let Some(s) = txn.get("", "secrets", Some(ns), secret) else {
        return Err(format!(
            "error getting Secret {secret:?} in namespace {ns:?}: secrets {secret:?} not found"
        ));
    };
    if let Some(v) = s
        .get("stringData")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
    {
        return Ok(v.to_string());
    }
    let encoded = s
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str);
    let decoded = encoded.and_then(|e| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(e).ok()
    });
    match decoded {
        Some(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        None => Err(format!(
            "error extracting secret values from Secret {secret:?} in namespace {ns:?}: {}",
            missing_key_message(kind, key)
        )),
    }
}

/// The ProjectConfig controller: `status.webhookReceivers` and the Ready condition.
pub fn reconcile_project_config(
    txn: &mut dyn Txn,
    ns: &str,
    pc_name: &str,
    webhook_base_url: &str,
) {
    let Some(mut pc) = txn.get(GROUP, "projectconfigs", Some(ns), pc_name) else {
        return;
    };
    if is_deleting(&pc) {
        return;
    }
    let now = format_time(txn.now());
    let gen_ = generation(&pc);
    let mut status = pc.get("status").cloned().unwrap_or_else(|| json!({}));
    let (scheme_host, base_path) = split_base_url(webhook_base_url);
    let mut details = Vec::new();
    let mut errors = Vec::new();
    for r in arr_at(&pc, "spec.webhookReceivers") {
        let receiver = str_at(r, "name");
        let Some(kind) = ALL_RECEIVER_KEYS.iter().find(|k| r.get(**k).is_some()) else {
            errors.push(format!(
                "error syncing WebhookReceiver {receiver:?}: error getting receiver factory: no matching registration found"
            ));
            continue;
        };
        let secret_name = str_at(r, &format!("{kind}.secretRef.name"));
        match secret_value(txn, ns, secret_name, kind, receiver_secret_key(kind)) {
            Ok(secret) => {
                let path = receiver_path(&base_path, pc_name, kind, receiver, &secret);
                details.push(
                    json!({"name": receiver, "path": path, "url": format!("{scheme_host}{path}")}),
                );
            }
            Err(e) => errors.push(format!("error syncing WebhookReceiver {receiver:?}: {e}")),
        }
    }
    if details.is_empty() {
        if let Some(m) = status.as_object_mut() {
            m.remove("webhookReceivers");
        }
    } else {
        status["webhookReceivers"] = Value::Array(details);
    }
    if errors.is_empty() {
        util::delete_condition(&mut status, "Reconciling");
        set_condition(
            &mut status,
            "Ready",
            "True",
            "Synced",
            "ProjectConfig is synced and ready for use",
            gen_,
            &now,
        );
        status["observedGeneration"] = json!(gen_);
    } else {
        // Kargo returns the sync error before recording the observed generation, leaving
        // the Reconciling condition it set when the sync started.
        set_condition(
            &mut status,
            "Reconciling",
            "True",
            "SyncingWebhooks",
            "Syncing WebhookReceivers",
            gen_,
            &now,
        );
        // Kubernetes' error aggregate: a single error as is, several in brackets.
        let joined = errors.join(", ");
        let joined = if errors.len() > 1 {
            format!("[{joined}]")
        } else {
            joined
        };
        let msg = format!("Failed to sync WebhookReceivers: {joined}");
        set_condition(
            &mut status,
            "Ready",
            "False",
            "SyncWebhookReceiversFailed",
            &msg,
            gen_,
            &now,
        );
    }
    // project_configs.go: the refresh token is recorded as handled on every reconcile.
    if let Some(token) = util::annotation(&pc, util::ANNOTATION_REFRESH) {
        status["lastHandledRefresh"] = json!(token);
    }
    if pc.get("status") != Some(&status) {
        pc["status"] = status;
        let _ = txn.update_status(pc);
    }
}

fn split_base_url(url: &str) -> (String, String) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => (
            url[..after_scheme + i].to_string(),
            url[after_scheme + i..].to_string(),
        ),
        None => (url.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc(policies: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "p"}, "spec": {"promotionPolicies": policies}})
    }

    fn stage(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "p", "labels": labels}})
    }

    #[test]
    fn first_matching_policy_wins() {
        let c = pc(json!([
            {"stageSelector": {"name": "regex:^prod"}, "autoPromotionEnabled": false},
            {"stageSelector": {"name": "glob:*"}, "autoPromotionEnabled": true}
        ]));
        assert!(!auto_promotion_enabled(
            Some(&c),
            &stage("prod-eu", json!({}))
        ));
        assert!(auto_promotion_enabled(Some(&c), &stage("dev", json!({}))));
        assert!(!auto_promotion_enabled(None, &stage("dev", json!({}))));
    }

    #[test]
    fn exact_stage_and_label_selectors() {
        let c = pc(json!([
            {"stage": "uat", "autoPromotionEnabled": true},
            {"stageSelector": {"matchLabels": {"tier": "test"}}, "autoPromotionEnabled": true},
            {"stageSelector": {"name": "qa", "matchExpressions": [{"key": "auto", "operator": "Exists"}]},
             "autoPromotionEnabled": true}
        ]));
        assert!(auto_promotion_enabled(Some(&c), &stage("uat", json!({}))));
        assert!(auto_promotion_enabled(
            Some(&c),
            &stage("x", json!({"tier": "test"}))
        ));
        assert!(!auto_promotion_enabled(Some(&c), &stage("qa", json!({}))));
        assert!(auto_promotion_enabled(
            Some(&c),
            &stage("qa", json!({"auto": "1"}))
        ));
    }

    #[test]
    fn policy_validation() {
        let c = pc(json!([
            {"stage": "a", "stageSelector": {"name": "a"}},
            {"stageSelector": {"name": "dev"}},
            {"stage": "dev"},
            {"stageSelector": {"name": "regex:("}},
            {"stageSelector": {"name": "foo:bar"}}
        ]));
        let (schema, webhook) = policy_errors(&c);
        assert_eq!(schema.len(), 1);
        assert_eq!(schema[0].field, "spec.promotionPolicies[0]");
        let f: Vec<&str> = webhook.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            f,
            vec![
                "spec.promotionPolicies[2]",
                "spec.promotionPolicies[3].stageSelector.name",
                "spec.promotionPolicies[4].stageSelector.name"
            ]
        );
        assert!(
            webhook[2]
                .message
                .contains("invalid pattern identifier \"foo\"")
        );
    }

    #[test]
    fn receiver_rules_and_paths() {
        let c = json!({"spec": {"webhookReceivers": [
            {"name": "a", "github": {"secretRef": {"name": "s"}}},
            {"name": "a", "github": {"secretRef": {"name": "s"}}, "gitlab": {"secretRef": {"name": "s"}}}
        ]}});
        let errs = receiver_errors(&c);
        assert_eq!(errs[0].field, "spec.webhookReceivers[1].name");
        assert!(
            errs[1].message.contains("found 2: [GitHub GitLab]"),
            "{}",
            errs[1].message
        );
        let p = receiver_path("", "proj", "github", "gh", "tok");
        assert_eq!(p, format!("/github/{}", sha256_hex(b"projghtok")));
        assert_eq!(
            split_base_url("https://h:1/webhook"),
            ("https://h:1".to_string(), "/webhook".to_string())
        );
        assert_eq!(
            split_base_url("http://h"),
            ("http://h".to_string(), String::new())
        );
    }

    #[test]
    fn failed_receiver_sync_keeps_reconciling_and_the_observed_generation() {
        use super::super::testkit::FakeTxn;
        let mut t = FakeTxn::new();
        t.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}}))
            .unwrap();
        t.create(json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
            "metadata": {"name": "p", "namespace": "p"},
            "spec": {"webhookReceivers": [{"name": "gh", "github": {"secretRef": {"name": "s"}}}]}}))
            .unwrap();
        reconcile_project_config(&mut t, "p", "p", "https://hooks.example.com");
        let pc = t.get(GROUP, "projectconfigs", Some("p"), "p").unwrap();
        let condition = |kind: &str| {
            arr_at(&pc, "status.conditions")
                .iter()
                .find(|c| str_at(c, "type") == kind)
                .cloned()
                .unwrap()
        };
        assert_eq!(condition("Ready")["reason"], "SyncWebhookReceiversFailed");
        assert!(
            str_at(&condition("Ready"), "message").contains("error getting Secret \"s\""),
            "{pc}"
        );
        assert_eq!(condition("Ready")["observedGeneration"], generation(&pc));
        assert_eq!(condition("Reconciling")["reason"], "SyncingWebhooks");
        assert!(pc["status"].get("observedGeneration").is_none(), "{pc}");

        t.create(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "p"}, "data": {"secret": "dG9r"}}))
            .unwrap();
        reconcile_project_config(&mut t, "p", "p", "https://hooks.example.com");
        let pc = t.get(GROUP, "projectconfigs", Some("p"), "p").unwrap();
        assert_eq!(pc["status"]["observedGeneration"], generation(&pc));
        assert!(
            arr_at(&pc, "status.conditions")
                .iter()
                .all(|c| str_at(c, "type") != "Reconciling")
        );
        assert_eq!(
            pc["status"]["webhookReceivers"][0]["url"],
            format!("https://hooks.example.com/github/{}", sha256_hex(b"pghtok"))
        );
    }

    #[test]
    fn missing_data_keys_are_reported_in_kargo_s_words() {
        assert_eq!(
            missing_key_message("github", "secret"),
            "missing \"secret\" data key for GitHub WebhookReceiver"
        );
        assert_eq!(
            missing_key_message("gitlab", "secret-token"),
            "missing data key \"secret-token\" for GitLab WebhookReceiver"
        );
        assert_eq!(
            missing_key_message("generic", "secret"),
            "secret data is not valid for a Generic WebhookReceiver"
        );
    }
}
