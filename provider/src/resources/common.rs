//! Helpers shared by the resources: Kubernetes name rules, duration parsing, `timeouts`,
//! label/annotation ownership and turning Kargo API errors into Terraform diagnostics.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use std::sync::OnceLock;

use std::sync::Arc;

use crate::config::ProviderData;
use crate::duration::parse_go_duration;
use crate::kargo::{
    Error as KargoError, Freight, KargoClient, Namespace, Object, Project, ProjectConfig,
    Promotion, PromotionTask, Stage, Warehouse,
};
use crate::plugin::Context;
use crate::plugin::schema::Validator;
use crate::plugin::{
    Attribute, AttributePath, Block, Diagnostic, Diagnostics, NestedBlock, Schema, Value,
};
use crate::resources::validators::report;

/// Prefixes of labels and annotations that Kargo or Kubernetes write themselves; they are
/// never adopted on import and never shown as drift.
const SYSTEM_PREFIXES: &[&str] = &[
    "kargo.akuity.io/",
    "rbac.kargo.akuity.io/",
    "kubernetes.io/",
    "k8s.io/",
    "kubectl.kubernetes.io/",
    "terraform-provider-kargo/",
];

/// Annotations Kargo defines for users to set (its UI reads them): adopted on import even
/// though they carry Kargo's prefix.
const USER_FACING_KEYS: &[&str] = &["kargo.akuity.io/color", "kargo.akuity.io/description"];

/// The label that marks a namespace as a Kargo project namespace.
pub const PROJECT_LABEL: &str = "kargo.akuity.io/project";

/// Private state marking a state that came from import: the next read adopts the object's
/// own labels and annotations.
pub const IMPORTING: &[u8] = b"importing";

fn dns_label_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").unwrap_or_else(|_| unreachable!())
    })
}

fn dns_subdomain_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
            .unwrap_or_else(|_| unreachable!())
    })
}

/// Kargo's duration pattern (`interval`, `requiredSoakTime`, `retry.timeout`).
fn kargo_duration_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([0-9]+(\.[0-9]+)?(s|m|h))+$").unwrap_or_else(|_| unreachable!())
    })
}

/// Why `name` is not a DNS-1123 label (the rule for namespaces and so for Projects).
pub fn dns_label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 63 {
        return Some(format!(
            "must be at most 63 characters (it has {})",
            name.len()
        ));
    }
    if !dns_label_re().is_match(name) {
        return Some(
            "must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    None
}

/// Why `name` is not a DNS-1123 subdomain (the rule for most Kargo object names).
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 253 {
        return Some(format!(
            "must be at most 253 characters (it has {})",
            name.len()
        ));
    }
    if !dns_subdomain_re().is_match(name) {
        return Some(
            "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    None
}

pub fn dns_label() -> Validator {
    Validator::new(
        "must be a DNS-1123 label (lower case letters, digits and '-', at most 63 characters)",
        |v, path, diags| {
            if let Some(s) = v.as_str()
                && let Some(problem) = dns_label_problem(s)
            {
                diags.error_at(
                    path.clone(),
                    "Invalid name",
                    format!("{s:?} is not a valid DNS-1123 label: it {problem}."),
                );
            }
        },
    )
}

pub fn dns_subdomain() -> Validator {
    Validator::new(
        "must be a DNS-1123 subdomain (lower case letters, digits, '-' and '.', at most 253 characters)",
        |v, path, diags| {
            if let Some(s) = v.as_str()
                && let Some(problem) = dns_subdomain_problem(s)
            {
                diags.error_at(
                    path.clone(),
                    "Invalid name",
                    format!("{s:?} is not a valid DNS-1123 subdomain: it {problem}."),
                );
            }
        },
    )
}

/// A duration in Kargo's format: one or more `<number><s|m|h>` groups, e.g. `5m`, `1h30m`.
pub fn kargo_duration() -> Validator {
    Validator::new(
        "a duration such as `30s`, `5m` or `1h30m` (units s, m, h)",
        |v, path, diags| {
            if let Some(s) = v.as_str()
                && !kargo_duration_re().is_match(s)
            {
                diags.error_at(
                path.clone(),
                "Invalid duration",
                format!("{s:?} is not a duration Kargo accepts: use one or more <number><unit> groups with units s, m or h, e.g. \"30s\", \"5m\", \"1h30m\"."),
            );
            }
        },
    )
}

/// A Terraform-style operation timeout (`"30s"`, `"10m"`, `"1h"`), as in `timeouts` blocks.
pub fn timeout_duration() -> Validator {
    Validator::new(
        "a duration such as `30s`, `10m` or `1h`",
        |v, path, diags| {
            if let Some(s) = v.as_str()
                && parse_go_duration(s).is_none()
            {
                diags.error_at(
                    path.clone(),
                    "Invalid timeout",
                    format!("{s:?} is not a duration: use e.g. \"30s\", \"10m\" or \"1h\"."),
                );
            }
        },
    )
}

/// The `timeouts { create = "...", delete = "..." }` block, the conventional spelling of
/// operation timeouts, with `create` and `delete` described as given (each description states
/// its default).
pub fn timeouts_block(create: impl Into<String>, delete: impl Into<String>) -> NestedBlock {
    NestedBlock::single(
        "timeouts",
        Block::new(vec![
            Attribute::string("create")
                .optional()
                .description(create)
                .validate(timeout_duration()),
            Attribute::string("delete")
                .optional()
                .description(delete)
                .validate(timeout_duration()),
        ]),
    )
    .description("Bounds on how long Terraform waits for this resource.")
}

/// [`timeouts_block`] for a resource that waits for its object to be ready after creating it
/// and to be gone after deleting it, by default for the durations given.
pub fn object_timeouts_block(create_default: &str, delete_default: &str) -> NestedBlock {
    let mut block = timeouts_block(
        format!(
            "How long to wait for the object to be ready after creating it. Default \
             `{create_default}`."
        ),
        format!(
            "How long to wait for the object to be gone after deleting it. Default \
             `{delete_default}`."
        ),
    );
    block.block.attributes.insert(
        1,
        Attribute::string("update")
            .optional()
            .description(format!(
                "How long an update may take, waiting included (for Kargo to accept the \
                 change). Default `{create_default}`."
            ))
            .validate(timeout_duration()),
    );
    block
}

/// Runs an update's writes within `limit` (`timeouts.update`).
pub async fn within<T>(
    limit: Duration,
    what: &str,
    write: impl std::future::Future<Output = Result<T, KargoError>>,
) -> Result<T, KargoError> {
    match tokio::time::timeout(limit, write).await {
        Ok(result) => result,
        Err(_) => Err(KargoError::Timeout {
            what: format!("{what} (`timeouts.update`)"),
            last_seen: "the update had not finished".to_string(),
        }),
    }
}

/// The schema version of every resource: 1 since nested configuration is written as blocks.
pub const SCHEMA_VERSION: i64 = 1;

/// UpgradeResourceState of every resource. State of version 0 was written when nested
/// configuration was nested attributes: its JSON has the same shape as today's except that a
/// list that was not set is null (or missing), where a list block that is not written is an
/// empty list.
pub fn upgrade_state(schema: &Schema, version: i64, state: &mut serde_json::Value) -> Diagnostics {
    if version < 1 {
        schema.block.shape().fill_absent_blocks(state);
    }
    Diagnostics::default()
}

/// Reads a timeout from the `timeouts` block of `state`, falling back to `default`.
pub fn timeout(state: &Value, which: &str, default: Duration) -> Duration {
    state
        .get("timeouts")
        .get(which)
        .as_str()
        .and_then(parse_go_duration)
        .unwrap_or(default)
}

pub fn is_system_key(key: &str) -> bool {
    !USER_FACING_KEYS.contains(&key) && SYSTEM_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The labels/annotations to record in state after reading `live`.
///
/// Only the keys this configuration manages are tracked: those in the prior state (so a
/// value changed out of band shows as drift and a removed key shows as re-added), or —
/// when importing, with no prior state — every key that Kargo or Kubernetes did not write.
pub fn managed_map(
    live: Option<&BTreeMap<String, String>>,
    prior: &Value,
    importing: bool,
) -> Value {
    let empty = BTreeMap::new();
    let live = live.unwrap_or(&empty);
    let mut out = BTreeMap::new();
    if importing {
        for (k, v) in live {
            if !is_system_key(k) {
                out.insert(k.clone(), Value::string(v));
            }
        }
    } else if let Some(prior) = prior.entries() {
        for k in prior.keys() {
            if let Some(v) = live.get(k) {
                out.insert(k.clone(), Value::string(v));
            }
        }
    }
    if out.is_empty() && (prior.is_null() || importing) {
        Value::Null
    } else {
        Value::Map(out)
    }
}

/// A known string map from state/config as JSON (`None` when null).
pub fn string_map_json(v: &Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    let entries = v.entries()?;
    Some(
        entries
            .iter()
            .filter_map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), serde_json::Value::String(s.to_string())))
            })
            .collect(),
    )
}

/// Maps a Kubernetes field path (`spec.requestedFreight[0].origin`) onto the Terraform
/// attribute path it came from. Resources supply the translation of the first segments.
pub type FieldMapper<'a> = &'a dyn Fn(&str) -> Option<AttributePath>;

/// The [`FieldMapper`] of an action whose errors belong to no attribute in particular.
pub fn no_field(_: &str) -> Option<AttributePath> {
    None
}

/// What to change in Terraform for an error, when that is something in the configuration.
fn terraform_advice(err: &KargoError) -> Option<&'static str> {
    Some(match err {
        KargoError::AlreadyExists { .. } => {
            "Import the existing object instead of creating it, or choose another name."
        }
        KargoError::Conflict { managers, .. } if !managers.is_empty() => {
            "Remove these fields from the configuration, stop the other manager from setting \
             them, or enable `force_conflicts` to take ownership."
        }
        KargoError::Unreachable { .. } => {
            "Check the provider's `host` (or the kubeconfig's cluster server), the network \
             path, proxy and TLS settings."
        }
        KargoError::ApiServerUnreachable { .. } => {
            "Check the provider's `api_server.url` (or `KARGO_API_URL`), the network path and \
             the TLS settings (`api_server.ca_certificate`)."
        }
        KargoError::NotOverApiServer(_) => {
            "Configure the provider to connect through the Kubernetes API (kubeconfig or `host`) \
             instead of `api_server` for this."
        }
        KargoError::KargoNotInstalled { .. } => {
            "When Kargo is installed by the same apply, raise `api_wait_timeout` if it needs \
             longer to start."
        }
        KargoError::Cancelled => "Terraform was interrupted.",
        KargoError::ConfigUnknown => {
            "The provider configuration depends on values that are known only after apply \
             (for example a cluster created in the same run)."
        }
        _ => return None,
    })
}

/// A Kargo API error as the provider's users read it: what failed in Kubernetes and Kargo
/// terms, then what to change in the Terraform configuration when that is the remedy.
pub fn explain(err: &KargoError) -> String {
    if let KargoError::Unauthorized { host } = err {
        // Whose credentials they are is the point: the provider's.
        return format!(
            "the Kubernetes API at {host} rejected the provider's credentials (401 \
             Unauthorized). Check that the token, client certificate or exec plugin configured \
             for the provider is valid and has not expired."
        );
    }
    if let KargoError::ApiServerUnauthorized { host, message } = err {
        return format!(
            "Kargo's API server at {host} rejected the provider's credentials (401 \
             Unauthorized: {message}). Check `api_server.token` (or `KARGO_API_TOKEN`): a Kargo \
             API token stops working when its Secret is deleted. With `admin_password` the \
             provider logs in again when its token expires, so a refusal means the password is \
             wrong or the admin account is disabled."
        );
    }
    match terraform_advice(err) {
        Some(advice) => format!("{err} {advice}"),
        None => err.to_string(),
    }
}

/// Turns a Kargo API error into a diagnostic with a plain-language summary, attached to
/// the attribute Kargo named when the resource can translate the field.
pub fn diagnostic(action: &str, err: &KargoError, map_field: FieldMapper<'_>) -> Diagnostic {
    let mut d = Diagnostic::error(format!("Failed to {action}"), explain(err));
    if let KargoError::Invalid { causes, .. } = err
        && let Some(path) = causes.iter().find_map(|c| map_field(&c.field))
    {
        d = d.at(path);
    }
    if let KargoError::Conflict { fields, .. } = err
        && let Some(path) = fields
            .iter()
            .find_map(|f| map_field(f.trim_start_matches('.')))
    {
        d = d.at(path);
    }
    d
}

/// What a refresh that could not read its object returns, the same for every resource. When
/// the cluster cannot be asked right now (unreachable, Kargo not serving, the connection not
/// known yet) and this is no import, the state is kept as it was, with a warning saying so
/// and what to do; anything else is an error on the attribute it concerns.
pub fn refresh_failed(
    kind: &str,
    what: &str,
    err: &KargoError,
    state: Value,
    private: Vec<u8>,
    importing: bool,
    map_field: FieldMapper<'_>,
) -> crate::plugin::ReadResult {
    let diagnostics = if err.is_cluster_unavailable() && !importing {
        Diagnostic::warning(
            format!("{kind} not refreshed"),
            format!(
                "Could not read {what}, so the state is kept as it was: {} The plan shows \
                 only changes of the configuration; plan again once the cluster answers to \
                 see changes made in it.",
                explain(err)
            ),
        )
        .into()
    } else {
        diagnostics(&format!("read {what}"), err, map_field)
    };
    crate::plugin::ReadResult {
        new_state: state,
        private,
        diagnostics,
    }
}

/// What a server-side dry run of an update (`dryRun=All`) found, as the plan shows it: what
/// the cluster would refuse (admission webhooks, validation) and fields another applier owns,
/// reported by `report` on the attribute they concern. When the cluster could not be asked,
/// nothing: the refresh has already warned, and apply reports what it meets.
pub fn dry_run_findings<T>(
    result: Result<T, KargoError>,
    report: impl FnOnce(&KargoError) -> Diagnostics,
) -> Diagnostics {
    match result {
        Ok(_) => Diagnostics::default(),
        Err(e @ (KargoError::Conflict { .. } | KargoError::Invalid { .. })) => report(&e),
        Err(e) => {
            tracing::debug!(error = %e, "the dry run of the update could not be carried out");
            Diagnostics::default()
        }
    }
}

/// Convenience for the common case of a single diagnostic.
pub fn diagnostics(action: &str, err: &KargoError, map_field: FieldMapper<'_>) -> Diagnostics {
    diagnostic(action, err, map_field).into()
}

/// The client for an apply: the configuration must be known, and the Kargo API served
/// (waited for, bounded, when Kargo is being installed in the same apply).
pub async fn write_client(
    data: &ProviderData,
    ctx: &Context,
) -> Result<Arc<KargoClient>, KargoError> {
    let client = data.client()?;
    client.ensure_kargo_api(&ctx.cancel).await?;
    Ok(client)
}

/// Says what keeps a project from going away: the Project's and its namespace's finalizers
/// and the Kargo objects still in the namespace with theirs. Used in timeout messages so
/// users know where to look.
pub async fn describe_stuck_project(client: &KargoClient, namespace: &str) -> String {
    let mut parts = Vec::new();
    if let Ok(Some(project)) = client.get::<Project>(None, namespace).await {
        parts.push(format!(
            "Project {namespace:?} is {}",
            finalizer_text(&project)
        ));
    }
    match client.get::<Namespace>(None, namespace).await {
        Ok(Some(ns)) => parts.push(format!(
            "namespace {namespace:?} is {}",
            finalizer_text(&ns)
        )),
        Ok(None) => {}
        Err(e) => parts.push(format!(
            "namespace {namespace:?} could not be inspected ({e})"
        )),
    }
    // Only what is itself waiting on a finalizer is worth naming.
    async fn held<K: Object>(client: &KargoClient, namespace: &str, parts: &mut Vec<String>) {
        if let Ok(list) = client.list::<K>(Some(namespace), None).await {
            for item in list.items.iter().filter(|i| has_finalizers(*i)) {
                parts.push(format!(
                    "{} {:?} is {}",
                    K::KIND,
                    item.name(),
                    finalizer_text(item)
                ));
            }
        }
    }
    held::<Stage>(client, namespace, &mut parts).await;
    held::<Warehouse>(client, namespace, &mut parts).await;
    held::<Promotion>(client, namespace, &mut parts).await;
    held::<Freight>(client, namespace, &mut parts).await;
    held::<ProjectConfig>(client, namespace, &mut parts).await;
    held::<PromotionTask>(client, namespace, &mut parts).await;
    parts.join("; ")
}

fn has_finalizers(object: &impl Object) -> bool {
    object
        .metadata()
        .finalizers
        .as_ref()
        .is_some_and(|f| !f.is_empty())
}

fn finalizer_text(object: &impl Object) -> String {
    let finalizers = object.metadata().finalizers.clone().unwrap_or_default();
    match (object.is_terminating(), finalizers.is_empty()) {
        (true, false) => format!(
            "terminating, held by finalizers [{}]",
            finalizers.join(", ")
        ),
        (true, true) => "terminating".to_string(),
        (false, false) => format!(
            "not being deleted yet (finalizers [{}])",
            finalizers.join(", ")
        ),
        (false, true) => "present".to_string(),
    }
}

/// Refuses `true` for a bool attribute that exists only to be `false` here (`rule` is the
/// rule as the docs state it); `summary` and `detail` say what to do instead.
pub fn refuse_true(rule: &str, summary: &'static str, detail: &'static str) -> Validator {
    Validator::new(rule, move |v, path, diags| {
        if v.as_bool() == Some(true) {
            report(diags, path.clone(), summary, detail);
        }
    })
}

/// Sets the attributes of `state` that are still unknown to the values given for them; known
/// values are never contradicted.
pub fn fill_unknown<N: AsRef<str>>(
    state: &mut Value,
    values: impl IntoIterator<Item = (N, Value)>,
) {
    for (name, value) in values {
        let name = name.as_ref();
        if state.get(name).is_unknown() {
            state.set(name, value);
        }
    }
}

/// Sets the attributes of `state` that are still unknown to their values in `from`.
pub fn fill_unknown_from(state: &mut Value, from: &Value) {
    let values = from.entries().into_iter().flatten();
    fill_unknown(state, values.map(|(k, v)| (k.as_str(), v.clone())));
}

/// Sets every attribute of `state` that is still unknown to null: unknown values must not
/// reach Terraform after apply.
pub fn null_unknowns(state: &mut Value) {
    let unknown: Vec<String> = state
        .entries()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.is_unknown())
        .map(|(k, _)| k.clone())
        .collect();
    fill_unknown(state, unknown.into_iter().map(|k| (k, Value::Null)));
}

/// Sets the computed-only attributes of `attrs` that are still unknown in `state` to null.
pub fn null_unknown_computed(state: &mut Value, attrs: &[Attribute]) {
    let computed = attrs.iter().filter(|a| a.is_computed_only());
    fill_unknown(state, computed.map(|a| (a.name.as_str(), Value::Null)));
}

/// Asserts that every attribute and block of `block`, nested ones included, has a
/// description: the descriptions become the registry docs.
#[cfg(test)]
#[track_caller]
pub fn assert_described(block: &Block) {
    fn walk(shape: crate::plugin::Shape<'_>, at: &str) {
        for a in shape.attributes {
            assert!(
                !a.description.is_empty(),
                "{at}{} has no description",
                a.name
            );
            if let Some(o) = a.nested_object() {
                walk(o.shape(), &format!("{at}{}.", a.name));
            }
        }
        for b in shape.blocks {
            assert!(
                !b.block.description.is_empty(),
                "{at}{} has no description",
                b.type_name
            );
            walk(b.block.shape(), &format!("{at}{}.", b.type_name));
        }
    }
    walk(block.shape(), "");
}

/// A create that failed before anything existed: nothing goes into state.
pub fn fail(diagnostics: Diagnostics) -> crate::plugin::ApplyResult {
    crate::plugin::ApplyResult {
        new_state: Value::Null,
        private: Vec::new(),
        diagnostics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_gain_the_terraform_remedy() {
        let conflict = KargoError::Conflict {
            what: "Stage \"demo/dev\"".into(),
            message: "Apply failed".into(),
            managers: vec!["kubectl".into()],
            fields: vec![".spec.shard".into()],
        };
        assert_eq!(
            explain(&conflict),
            "server-side apply of Stage \"demo/dev\" conflicts with fields owned by other field \
             managers (\"kubectl\"): .spec.shard. Remove these fields from the configuration, \
             stop the other manager from setting them, or enable `force_conflicts` to take \
             ownership."
        );
        let plain = KargoError::Conflict {
            what: "Project \"p\"".into(),
            message: "namespace exists".into(),
            managers: Vec::new(),
            fields: Vec::new(),
        };
        assert_eq!(
            explain(&plain),
            "conflict on Project \"p\": namespace exists"
        );
        let unauthorized = KargoError::Unauthorized {
            host: "https://kube:6443".into(),
        };
        assert_eq!(
            explain(&unauthorized),
            "the Kubernetes API at https://kube:6443 rejected the provider's credentials (401 \
             Unauthorized). Check that the token, client certificate or exec plugin configured \
             for the provider is valid and has not expired."
        );
        let unreachable = KargoError::Unreachable {
            host: "https://kube:6443".into(),
            reason: "connection refused".into(),
        };
        assert!(
            explain(&unreachable).ends_with(
                "connection refused. Check the provider's `host` (or the kubeconfig's cluster \
                 server), the network path, proxy and TLS settings."
            ),
            "{}",
            explain(&unreachable)
        );
        let missing = KargoError::KargoNotInstalled {
            message: "404".into(),
        };
        assert!(
            explain(&missing).contains("Install Kargo and its CRDs first. When Kargo is installed by the same apply, raise `api_wait_timeout`"),
            "{}",
            explain(&missing)
        );
        let invalid = KargoError::Other("boom".into());
        assert_eq!(explain(&invalid), "boom", "nothing to add");
        let d = diagnostic("create the stage", &conflict, &no_field);
        assert_eq!(d.summary, "Failed to create the stage");
        assert!(d.detail.contains("`force_conflicts`"), "{}", d.detail);
    }
}
