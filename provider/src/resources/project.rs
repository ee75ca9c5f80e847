//! `kargo_project`: a Kargo Project (cluster-scoped, owns a namespace) and the parts of its
//! ProjectConfig a pipeline needs (promotion policies), kept in one resource.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value as Json, json};

use super::common::{
    self, IMPORTING, PROJECT_LABEL, dns_label, fail, managed_map, string_map_json, timeout,
    timeouts_attribute,
};
use crate::kargo::{Error as KargoError, Kind};
use crate::plugin::validate::validators;
use crate::plugin::{
    ApplyResult, Attribute, AttributePath, Block, Context, Diagnostic, Diagnostics, ImportResult,
    NestedObject, ReadResult, Resource, Schema, Value,
};
use crate::provider::ProviderData;

const KEEP_NAMESPACE_ANNOTATION: &str = "kargo.akuity.io/keep-namespace";
const CREATE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub struct ProjectResource {
    data: ProviderData,
}

impl ProjectResource {
    pub fn new(data: ProviderData) -> Self {
        Self { data }
    }
}

fn selector_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("name").optional().description(
            "Stage name to match: an exact name, `regex:<expression>` or `glob:<pattern>`.",
        ),
        Attribute::string_map("match_labels")
            .optional()
            .description("Stages whose labels include all of these match."),
        Attribute::nested(
            "match_expressions",
            NestedObject::list(vec![
                Attribute::string("key")
                    .required()
                    .description("Label key."),
                Attribute::string("operator")
                    .required()
                    .description("One of `In`, `NotIn`, `Exists`, `DoesNotExist`.")
                    .validate(validators::one_of(&[
                        "In",
                        "NotIn",
                        "Exists",
                        "DoesNotExist",
                    ])),
                Attribute::string_list("values").optional().description(
                    "Values for `In` and `NotIn`; must be empty for `Exists` and `DoesNotExist`.",
                ),
            ]),
        )
        .optional()
        .description("Label selector requirements; all must hold."),
    ]
}

fn promotion_policy_object() -> NestedObject {
    NestedObject::list(vec![
        Attribute::nested("stage_selector", NestedObject::single(selector_attributes()))
            .required()
            .description("Which stages this policy applies to."),
        Attribute::bool("auto_promotion_enabled")
            .default(Value::Bool(false))
            .description("Whether Kargo promotes new freight into the matching stages automatically. Default `false`."),
    ])
}

impl ProjectResource {
    fn schema_block() -> Block {
        Block::new(vec![
            Attribute::string("id").computed().use_state_for_unknown().description("The project name."),
            Attribute::string("name")
                .required()
                .requires_replace()
                .validate(dns_label())
                .description("Name of the project and of the namespace Kargo creates for it. A DNS-1123 label. Changing it replaces the project (and its namespace)."),
            Attribute::string_map("labels")
                .optional()
                .description("Labels on the Project. Only the keys set here are managed; labels Kargo or others add are left alone."),
            Attribute::string_map("annotations")
                .optional()
                .description("Annotations on the Project. Only the keys set here are managed; annotations Kargo or others add are left alone."),
            Attribute::bool("keep_namespace")
                .default(Value::Bool(false))
                .description("Keep the project's namespace (and everything in it) when the project is destroyed. Sets Kargo's `kargo.akuity.io/keep-namespace` annotation. Default `false`."),
            Attribute::nested("promotion_policies", promotion_policy_object())
                .optional()
                .description("Auto-promotion policies, stored in the project's ProjectConfig. The ProjectConfig is created when policies are declared and removed when none are."),
            Attribute::string("namespace")
                .computed()
                .use_state_for_unknown()
                .description("The namespace that holds the project's warehouses, stages and freight."),
            Attribute::bool("ready").computed().description("Whether Kargo reports the project Ready."),
            timeouts_attribute("5m", "10m"),
        ])
        .description("A Kargo project: the unit of tenancy that holds a promotion pipeline. Kargo creates a namespace of the same name for it.\n\nCreate waits until the project is Ready and its namespace exists. An existing namespace is adopted only when it carries the label `kargo.akuity.io/project: \"true\"`. Destroy waits until the namespace is gone (unless `keep_namespace`).")
    }
}

#[async_trait]
impl Resource for ProjectResource {
    fn type_name(&self) -> &'static str {
        "kargo_project"
    }

    fn schema(&self) -> Schema {
        Schema::new(0, Self::schema_block())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::default();
        for (i, policy) in config
            .get("promotion_policies")
            .elements()
            .iter()
            .enumerate()
        {
            let path = AttributePath::attr("promotion_policies")
                .join_index(i)
                .join_attr("stage_selector");
            let sel = policy.get("stage_selector");
            if sel.is_unknown() {
                continue;
            }
            check_selector_name(sel.get("name"), &path.join_attr("name"), &mut diags);
            for (j, expr) in sel.get("match_expressions").elements().iter().enumerate() {
                let op = expr.get("operator").as_str();
                let values = expr.get("values");
                let epath = path
                    .join_attr("match_expressions")
                    .join_index(j)
                    .join_attr("values");
                match op {
                    Some("In" | "NotIn")
                        if values.is_null()
                            || (!values.is_unknown() && values.elements().is_empty()) =>
                    {
                        diags.error_at(
                            epath,
                            "Missing values",
                            "Operators In and NotIn need at least one value.",
                        )
                    }
                    Some("Exists" | "DoesNotExist")
                        if !values.is_null() && !values.elements().is_empty() =>
                    {
                        diags.error_at(
                            epath,
                            "Unexpected values",
                            "Operators Exists and DoesNotExist take no values.",
                        )
                    }
                    _ => {}
                }
            }
            if sel.is_wholly_known()
                && sel.get("name").is_null()
                && sel.get("match_labels").is_null()
                && sel.get("match_expressions").is_null()
            {
                diags.error_at(path, "Empty stage selector", "Set `name`, `match_labels` or `match_expressions` so the policy selects some stages.");
            }
        }
        diags
    }

    async fn create(&self, ctx: &Context, planned: Value, _config: Value) -> ApplyResult {
        let name = planned.get("name").as_str().unwrap_or_default().to_string();
        let client = match common::write_client(&self.data, ctx).await {
            Ok(c) => c,
            Err(e) => return fail(common::diagnostics("connect to the cluster", &e, &no_field)),
        };
        let body = project_body(&planned);
        let applied = client
            .retry_while_kargo_starting("the project", &ctx.cancel, || {
                client.apply(Kind::Project, None, &name, body.clone())
            })
            .await;
        if let Err(e) = applied {
            return fail(project_error("create the project", &name, &e).into());
        }
        // From here on the object exists: always hand Terraform a state for it.
        let wait = timeout(&planned, "create", CREATE_TIMEOUT);
        let mut diags = Diagnostics::default();
        let what = format!("project {name:?} to become Ready");
        match client
            .wait_until(
                Kind::Project,
                None,
                &name,
                &what,
                wait,
                &ctx.cancel,
                is_ready,
            )
            .await
            .map(|_| ())
        {
            Ok(()) => {}
            Err(KargoError::Cancelled) => {
                diags.push(Diagnostic::warning(
                    "Stopped waiting for the project",
                    format!("Project {name:?} was created; the wait for it to become Ready was interrupted. The next plan refreshes its state."),
                ));
                return ApplyResult {
                    new_state: state_from_planned(&planned, false),
                    private: Vec::new(),
                    diagnostics: diags,
                };
            }
            Err(e) => {
                diags.push(Diagnostic::error(
                    "Project did not become ready",
                    format!("Project {name:?} was created but {e}. It is kept in state as tainted; the next apply replaces it."),
                ));
                return ApplyResult {
                    new_state: state_from_planned(&planned, false),
                    private: Vec::new(),
                    diagnostics: diags,
                };
            }
        }
        // The policies need the namespace Kargo just created; the project itself exists, so
        // a failure here keeps it in state (tainted) rather than losing track of it.
        if let Some(spec) = project_config_spec(&planned)
            && let Err(e) = client
                .apply(
                    Kind::ProjectConfig,
                    Some(&name),
                    &name,
                    project_config_body(&name, spec),
                )
                .await
        {
            diags.push(common::diagnostic(
                "write the project's ProjectConfig",
                &e,
                &policy_field,
            ));
        }
        ApplyResult {
            new_state: state_from_planned(&planned, true),
            private: Vec::new(),
            diagnostics: diags,
        }
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: Value,
        planned: Value,
        _config: Value,
        private: Vec<u8>,
    ) -> ApplyResult {
        let name = planned.get("name").as_str().unwrap_or_default().to_string();
        let keep = |diags: Diagnostics| ApplyResult {
            new_state: prior.clone(),
            private: private.clone(),
            diagnostics: diags,
        };
        let client = match common::write_client(&self.data, ctx).await {
            Ok(c) => c,
            Err(e) => return keep(common::diagnostics("connect to the cluster", &e, &no_field)),
        };
        if let Err(e) = client
            .apply(Kind::Project, None, &name, project_body(&planned))
            .await
        {
            return keep(project_error("update the project", &name, &e).into());
        }
        let result = match project_config_spec(&planned) {
            Some(spec) => client
                .apply(
                    Kind::ProjectConfig,
                    Some(&name),
                    &name,
                    project_config_body(&name, spec),
                )
                .await
                .map(|_| ()),
            None if project_config_spec(&prior).is_some() => client
                .delete(Kind::ProjectConfig, Some(&name), &name)
                .await
                .map(|_| ()),
            None => Ok(()),
        };
        if let Err(e) = result {
            return keep(common::diagnostics(
                "write the project's ProjectConfig",
                &e,
                &policy_field,
            ));
        }
        let ready = prior.get("ready").as_bool().unwrap_or(false);
        ApplyResult {
            new_state: state_from_planned(&planned, ready),
            private: Vec::new(),
            diagnostics: Diagnostics::default(),
        }
    }

    async fn delete(&self, ctx: &Context, prior: Value, _private: Vec<u8>) -> Diagnostics {
        let name = prior.get("name").as_str().unwrap_or_default().to_string();
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => return common::diagnostics("connect to the cluster", &e, &no_field),
        };
        if let Err(e) = client.delete(Kind::Project, None, &name).await {
            return project_error("delete the project", &name, &e).into();
        }
        let wait = timeout(&prior, "delete", DELETE_TIMEOUT);
        let keep_namespace = prior.get("keep_namespace").as_bool().unwrap_or(false);
        let started = std::time::Instant::now();
        let mut result = client
            .wait_deleted(Kind::Project, None, &name, wait, &ctx.cancel)
            .await;
        if result.is_ok() && !keep_namespace {
            let left = wait.saturating_sub(started.elapsed());
            result = client
                .wait_deleted(Kind::Namespace, None, &name, left, &ctx.cancel)
                .await;
        }
        match result {
            Ok(()) => Diagnostics::default(),
            Err(KargoError::Cancelled) => Diagnostic::error(
                "Stopped waiting for the project to be deleted",
                format!("Deletion of project {name:?} was requested and continues in the cluster. Run destroy again to confirm it is gone."),
            )
            .into(),
            Err(KargoError::Timeout { .. }) => {
                let stuck = common::describe_stuck_project(&client, &name).await;
                Diagnostic::error(
                    "Project deletion did not finish",
                    format!(
                        "Project {name:?} is still being deleted after {}: {stuck}. Kargo's controller removes its finalizers; check that Kargo is running, then run destroy again.",
                        humanize(wait)
                    ),
                )
                .into()
            }
            Err(e) => project_error("delete the project", &name, &e).into(),
        }
    }

    async fn read(&self, _ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult {
        let importing = private == IMPORTING;
        let name = state.get("name").as_str().unwrap_or_default().to_string();
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => {
                return ReadResult {
                    new_state: state,
                    private,
                    diagnostics: common::diagnostics("connect to the cluster", &e, &no_field),
                };
            }
        };
        let project = match client.get(Kind::Project, None, &name).await {
            Ok(Some(p)) => p,
            Ok(None) if importing => {
                return ReadResult {
                    new_state: Value::Null,
                    private: Vec::new(),
                    diagnostics: Diagnostic::error(
                        "Cannot import project",
                        format!("No Kargo project named {name:?} exists."),
                    )
                    .into(),
                };
            }
            Ok(None) => {
                return ReadResult {
                    new_state: Value::Null,
                    private: Vec::new(),
                    diagnostics: Diagnostics::default(),
                };
            }
            Err(e) => {
                return ReadResult {
                    new_state: state,
                    private,
                    diagnostics: common::diagnostics("read the project", &e, &no_field),
                };
            }
        };
        let manages_config = importing || !state.get("promotion_policies").is_null();
        let config = if manages_config {
            match client.get(Kind::ProjectConfig, Some(&name), &name).await {
                Ok(c) => c,
                Err(e) => {
                    return ReadResult {
                        new_state: state,
                        private,
                        diagnostics: common::diagnostics(
                            "read the project's ProjectConfig",
                            &e,
                            &no_field,
                        ),
                    };
                }
            }
        } else {
            None
        };
        let new_state = state_from_live(&state, &project, config.as_ref(), importing);
        ReadResult {
            new_state,
            private: Vec::new(),
            diagnostics: Diagnostics::default(),
        }
    }

    async fn import(&self, _ctx: &Context, id: &str) -> ImportResult {
        let mut diags = Diagnostics::default();
        if let Some(problem) = common::dns_label_problem(id) {
            diags.error(
                "Invalid import ID",
                format!("Import a project by its name; {id:?} {problem}."),
            );
            return ImportResult {
                diagnostics: diags,
                ..Default::default()
            };
        }
        let mut state = null_state();
        state.set("name", Value::string(id));
        state.set("id", Value::string(id));
        ImportResult {
            state,
            private: IMPORTING.to_vec(),
            diagnostics: diags,
        }
    }
}

fn no_field(_: &str) -> Option<AttributePath> {
    None
}

fn policy_field(field: &str) -> Option<AttributePath> {
    field
        .starts_with("spec.promotionPolicies")
        .then(|| AttributePath::attr("promotion_policies"))
}

fn check_selector_name(name: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(name) = name.as_str() else { return };
    if let Some(expr) = name.strip_prefix("regex:") {
        if let Err(e) = regex::Regex::new(expr) {
            diags.error_at(
                path.clone(),
                "Invalid regular expression",
                format!("{expr:?} does not compile: {e}"),
            );
        }
    } else if !name.starts_with("glob:")
        && let Some(problem) = common::dns_subdomain_problem(name)
    {
        diags.error_at(
            path.clone(),
            "Invalid stage name",
            format!("{name:?} is neither `regex:…`, `glob:…` nor a stage name: it {problem}."),
        );
    }
}

fn project_error(action: &str, name: &str, err: &KargoError) -> Diagnostic {
    let msg = err.to_string();
    if msg.contains("not labeled as a Project namespace") {
        return Diagnostic::error(
            "Namespace exists without the Kargo project label",
            format!(
                "Namespace {name:?} already exists and is not labeled as a Kargo project namespace, so Kargo refuses to adopt it. To adopt it, add the label: kubectl label namespace {name} {PROJECT_LABEL}=true — or choose another project name.",
            ),
        )
        .at(AttributePath::attr("name"));
    }
    if msg.contains("terminating") || msg.contains("being terminated") {
        return Diagnostic::error(
            "Namespace is still being deleted",
            format!(
                "Namespace {name:?} is terminating. Wait until it is gone and apply again. ({msg})"
            ),
        )
        .at(AttributePath::attr("name"));
    }
    common::diagnostic(action, err, &|f: &str| {
        f.starts_with("metadata.name")
            .then(|| AttributePath::attr("name"))
    })
}

fn humanize(d: Duration) -> String {
    crate::plugin::plan::semantic::format_go_duration(d)
}

fn is_ready(project: Option<&Json>) -> bool {
    let Some(p) = project else { return false };
    p.pointer("/status/conditions")
        .and_then(Json::as_array)
        .is_some_and(|conds| {
            conds.iter().any(|c| {
                c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True"))
            })
        })
}

fn project_body(planned: &Value) -> Json {
    let name = planned.get("name").as_str().unwrap_or_default();
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    let mut labels = string_map_json(planned.get("labels")).unwrap_or_default();
    let mut annotations = string_map_json(planned.get("annotations")).unwrap_or_default();
    labels.retain(|k, _| !k.is_empty());
    if planned.get("keep_namespace").as_bool() == Some(true) {
        annotations.insert(KEEP_NAMESPACE_ANNOTATION.into(), json!("true"));
    }
    if !labels.is_empty() {
        metadata.insert("labels".into(), Json::Object(labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), Json::Object(annotations));
    }
    json!({ "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": metadata })
}

/// The ProjectConfig spec to write, or `None` when the configuration declares nothing that
/// lives there (then no ProjectConfig is managed).
fn project_config_spec(v: &Value) -> Option<Json> {
    let policies = v.get("promotion_policies");
    if policies.is_null() {
        return None;
    }
    let list: Vec<Json> = policies.elements().iter().map(policy_to_json).collect();
    Some(json!({ "promotionPolicies": list }))
}

fn project_config_body(name: &str, spec: Json) -> Json {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "ProjectConfig",
        "metadata": { "name": name, "namespace": name },
        "spec": spec,
    })
}

fn policy_to_json(p: &Value) -> Json {
    let sel = p.get("stage_selector");
    let mut selector = Map::new();
    if let Some(n) = sel.get("name").as_str() {
        selector.insert("name".into(), json!(n));
    }
    if let Some(m) = string_map_json(sel.get("match_labels")) {
        selector.insert("matchLabels".into(), Json::Object(m));
    }
    let exprs: Vec<Json> = sel
        .get("match_expressions")
        .elements()
        .iter()
        .map(|e| {
            let mut o = Map::new();
            o.insert(
                "key".into(),
                json!(e.get("key").as_str().unwrap_or_default()),
            );
            o.insert(
                "operator".into(),
                json!(e.get("operator").as_str().unwrap_or_default()),
            );
            let values: Vec<Json> = e
                .get("values")
                .elements()
                .iter()
                .filter_map(|v| v.as_str().map(|s| json!(s)))
                .collect();
            if !values.is_empty() {
                o.insert("values".into(), Json::Array(values));
            }
            Json::Object(o)
        })
        .collect();
    if !exprs.is_empty() {
        selector.insert("matchExpressions".into(), Json::Array(exprs));
    }
    json!({
        "stageSelector": selector,
        "autoPromotionEnabled": p.get("auto_promotion_enabled").as_bool().unwrap_or(false),
    })
}

fn policy_from_json(p: &Json) -> Value {
    let sel = p.get("stageSelector").cloned().unwrap_or_else(|| json!({}));
    // The deprecated `stage` field selects one stage by exact name.
    let name = sel
        .get("name")
        .and_then(Json::as_str)
        .or_else(|| p.get("stage").and_then(Json::as_str))
        .map(Value::string)
        .unwrap_or(Value::Null);
    let match_labels = sel
        .get("matchLabels")
        .and_then(Json::as_object)
        .filter(|m| !m.is_empty())
        .map(|m| {
            Value::Map(
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), Value::string(s))))
                    .collect(),
            )
        })
        .unwrap_or(Value::Null);
    let exprs: Vec<Value> = sel
        .get("matchExpressions")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let values: Vec<Value> = e
                        .get("values")
                        .and_then(Json::as_array)
                        .map(|v| {
                            v.iter()
                                .filter_map(Json::as_str)
                                .map(Value::string)
                                .collect()
                        })
                        .unwrap_or_default();
                    Value::object([
                        (
                            "key",
                            e.get("key")
                                .and_then(Json::as_str)
                                .map(Value::string)
                                .unwrap_or(Value::Null),
                        ),
                        (
                            "operator",
                            e.get("operator")
                                .and_then(Json::as_str)
                                .map(Value::string)
                                .unwrap_or(Value::Null),
                        ),
                        (
                            "values",
                            if values.is_empty() {
                                Value::Null
                            } else {
                                Value::List(values)
                            },
                        ),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    Value::object([
        (
            "stage_selector",
            Value::object([
                ("name", name),
                ("match_labels", match_labels),
                (
                    "match_expressions",
                    if exprs.is_empty() {
                        Value::Null
                    } else {
                        Value::List(exprs)
                    },
                ),
            ]),
        ),
        (
            "auto_promotion_enabled",
            Value::Bool(
                p.get("autoPromotionEnabled")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
            ),
        ),
    ])
}

fn null_state() -> Value {
    Value::object(
        [
            "id",
            "name",
            "labels",
            "annotations",
            "keep_namespace",
            "promotion_policies",
            "namespace",
            "ready",
            "timeouts",
        ]
        .map(|k| (k, Value::Null)),
    )
}

/// The state after a successful write: what was planned plus the computed attributes.
fn state_from_planned(planned: &Value, ready: bool) -> Value {
    let mut s = planned.clone();
    let name = planned.get("name").clone();
    s.set("id", name.clone());
    s.set("namespace", name);
    s.set("ready", Value::Bool(ready));
    s
}

fn state_from_live(prior: &Value, project: &Json, config: Option<&Json>, importing: bool) -> Value {
    let meta = project.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Json::as_str)
        .unwrap_or_default();
    let labels = meta.and_then(|m| m.get("labels")).and_then(Json::as_object);
    let annotations = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Json::as_object);
    let keep_namespace = annotations
        .and_then(|a| a.get(KEEP_NAMESPACE_ANNOTATION))
        .and_then(Json::as_str)
        .is_some_and(|v| v == "true");
    let policies = match config {
        Some(c) => {
            let list: Vec<Value> = c
                .pointer("/spec/promotionPolicies")
                .and_then(Json::as_array)
                .map(|a| a.iter().map(policy_from_json).collect())
                .unwrap_or_default();
            if list.is_empty() && (importing || prior.get("promotion_policies").is_null()) {
                Value::Null
            } else {
                Value::List(list)
            }
        }
        None => Value::Null,
    };
    let mut s = prior.clone();
    if s.is_null() {
        s = null_state();
    }
    s.set("id", Value::string(name));
    s.set("name", Value::string(name));
    s.set(
        "labels",
        managed_map(labels, prior.get("labels"), importing),
    );
    s.set(
        "annotations",
        managed_map(annotations, prior.get("annotations"), importing)
            .filter_key(KEEP_NAMESPACE_ANNOTATION),
    );
    s.set("keep_namespace", Value::Bool(keep_namespace));
    s.set("promotion_policies", policies);
    s.set("namespace", Value::string(name));
    s.set("ready", Value::Bool(is_ready(Some(project))));
    if importing {
        s.set("timeouts", Value::Null);
    }
    s
}

trait FilterKey {
    fn filter_key(self, key: &str) -> Value;
}

impl FilterKey for Value {
    /// Drops one key from a map value (the keep-namespace annotation is modelled by its own attribute).
    fn filter_key(self, key: &str) -> Value {
        match self {
            Value::Map(mut m) => {
                m.remove(key);
                if m.is_empty() {
                    Value::Null
                } else {
                    Value::Map(m)
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(name: &str) -> Value {
        let mut v = null_state();
        v.set("name", Value::string(name));
        v.set("keep_namespace", Value::Bool(false));
        v
    }

    #[test]
    fn project_body_has_only_declared_metadata() {
        let mut p = planned("demo");
        p.set(
            "labels",
            Value::Map([("team".to_string(), Value::string("platform"))].into()),
        );
        p.set("keep_namespace", Value::Bool(true));
        let body = project_body(&p);
        assert_eq!(body["metadata"]["labels"], json!({"team": "platform"}));
        assert_eq!(
            body["metadata"]["annotations"],
            json!({KEEP_NAMESPACE_ANNOTATION: "true"})
        );
        assert!(
            body.get("spec").is_none(),
            "Kargo v1.7+ Projects have no spec"
        );
    }

    #[test]
    fn policies_round_trip_through_kargo_json() {
        let policy = Value::object([
            (
                "stage_selector",
                Value::object([
                    ("name", Value::string("glob:dev-*")),
                    (
                        "match_labels",
                        Value::Map([("tier".to_string(), Value::string("lower"))].into()),
                    ),
                    ("match_expressions", Value::Null),
                ]),
            ),
            ("auto_promotion_enabled", Value::Bool(true)),
        ]);
        let json = policy_to_json(&policy);
        assert_eq!(
            json,
            json!({"stageSelector": {"name": "glob:dev-*", "matchLabels": {"tier": "lower"}}, "autoPromotionEnabled": true})
        );
        assert_eq!(policy_from_json(&json), policy);
    }

    #[test]
    fn deprecated_stage_field_reads_as_exact_name() {
        let v = policy_from_json(&json!({"stage": "prod", "autoPromotionEnabled": false}));
        assert_eq!(v.get("stage_selector").get("name"), &Value::string("prod"));
    }

    #[test]
    fn read_ignores_kargo_labels_and_keeps_managed_ones() {
        let mut prior = planned("demo");
        prior.set(
            "labels",
            Value::Map([("team".to_string(), Value::string("a"))].into()),
        );
        let live = json!({
            "metadata": {"name": "demo", "labels": {"team": "b", "kargo.akuity.io/migrated": "true", "other": "x"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let s = state_from_live(&prior, &live, None, false);
        assert_eq!(
            s.get("labels"),
            &Value::Map([("team".to_string(), Value::string("b"))].into())
        );
        assert_eq!(s.get("ready"), &Value::Bool(true));
        let imported = state_from_live(&Value::Null, &live, None, true);
        assert_eq!(
            imported.get("labels"),
            &Value::Map(
                [
                    ("team".to_string(), Value::string("b")),
                    ("other".to_string(), Value::string("x"))
                ]
                .into()
            )
        );
    }

    #[test]
    fn validation_reports_bad_selectors_on_their_paths() {
        let r_cfg = Value::object([(
            "promotion_policies",
            Value::List(vec![Value::object([
                (
                    "stage_selector",
                    Value::object([
                        ("name", Value::string("regex:([")),
                        ("match_labels", Value::Null),
                        ("match_expressions", Value::Null),
                    ]),
                ),
                ("auto_promotion_enabled", Value::Bool(true)),
            ])]),
        )]);
        let diags = ProjectResource::new(ProviderData::default()).validate(&r_cfg);
        assert_eq!(diags.0.len(), 1);
        assert_eq!(
            diags.0[0]
                .attribute
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("promotion_policies[0].stage_selector.name")
        );
    }
}
