//! The plan-time preview of a promotion as `kargo_promotion` shows it: reads the stage's
//! promotion template and the tasks it uses, runs the dry run of `steps::preview`, and turns
//! its outcome into `manifest_changes` and `preview_result`.

use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio::sync::Semaphore;

use crate::config::Secret as SecretValue;
use crate::kargo::{ClusterPromotionTask, Freight, KargoClient, PromotionTask, Secret, Stage};
use crate::plugin::Value;
use crate::steps::preview::{
    self, KargoCredential, KargoCredentials, Outcome, Request, Scope, Settings,
};

/// Previews running at once in this process (each may fetch and run steps).
static RUNNING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2));

/// `manifest_changes` and `preview_result` of an outcome.
pub fn values(outcome: &Outcome) -> (Value, Value) {
    let changes = Value::List(
        outcome
            .changes
            .iter()
            .map(|c| {
                Value::object([
                    ("repo_url", Value::string(&c.repo_url)),
                    ("branch", Value::string(&c.branch)),
                    ("path", Value::string(&c.path)),
                    ("action", Value::string(c.action)),
                    ("diff", c.diff.as_deref().map_or(Value::Null, Value::string)),
                ])
            })
            .collect(),
    );
    let strings = |v: &[String]| Value::List(v.iter().map(Value::string).collect());
    let result = Value::object([
        ("status", Value::string(outcome.status.as_str())),
        ("reasons", strings(&outcome.reasons)),
        ("actions", strings(&outcome.actions)),
    ]);
    (changes, result)
}

/// The stage's steps with `task` steps replaced by their task's steps, as Kargo inflates
/// them (aliases `<step>::<task step>`, the task's variable defaults, then the step's, then
/// the task step's own). A task that cannot be read is left as it is (the dry run reports
/// it as not run).
async fn inflate(
    client: &KargoClient,
    project: &str,
    steps: &[Json],
    promotion_vars: &[Json],
) -> Vec<Json> {
    let set_by_promotion: Vec<&str> = promotion_vars
        .iter()
        .filter_map(|v| v.get("name").and_then(Json::as_str))
        .collect();
    let mut out = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let Some(task) = step.get("task") else {
            out.push(step.clone());
            continue;
        };
        let name = task.get("name").and_then(Json::as_str).unwrap_or_default();
        let spec = if task.get("kind").and_then(Json::as_str) == Some("ClusterPromotionTask") {
            client
                .get_shared::<ClusterPromotionTask>(None, name)
                .await
                .ok()
                .flatten()
                .map(|t| t.spec)
        } else {
            client
                .get_shared::<PromotionTask>(Some(project), name)
                .await
                .ok()
                .flatten()
                .map(|t| t.spec)
        };
        let Some(spec) = spec else {
            out.push(step.clone());
            continue;
        };
        let alias = step
            .get("as")
            .and_then(Json::as_str)
            .map_or_else(|| format!("step-{index}"), str::to_string);
        let defaults: Vec<Json> = spec
            .get("vars")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("value").is_some())
            .filter(|v| {
                !v.get("name")
                    .and_then(Json::as_str)
                    .is_some_and(|n| set_by_promotion.contains(&n))
            })
            .cloned()
            .collect();
        let step_vars = step
            .get("vars")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        for (j, task_step) in spec
            .get("steps")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mut inflated: Map<String, Json> =
                task_step.as_object().cloned().unwrap_or_default();
            let own = task_step
                .get("as")
                .and_then(Json::as_str)
                .map_or_else(|| format!("step-{j}"), str::to_string);
            inflated.insert("as".into(), Json::String(format!("{alias}::{own}")));
            let mut vars = defaults.clone();
            vars.extend(step_vars.iter().cloned());
            vars.extend(
                task_step
                    .get("vars")
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            inflated.insert("vars".into(), Json::Array(vars));
            out.push(Json::Object(inflated));
        }
    }
    out
}

/// Kargo's Git credential Secrets for `project`: those of its namespace, then those of the
/// shared namespace, each by name, as Kargo reads them. A namespace that cannot be read is
/// noted (a refusal by a Git host says so) and the preview carries on without it.
async fn kargo_credentials(client: &KargoClient, project: &str, shared: &str) -> KargoCredentials {
    let mut found = KargoCredentials::default();
    let mut namespaces = vec![project];
    if !shared.is_empty() && shared != project {
        namespaces.push(shared);
    }
    for namespace in namespaces {
        let listed = client
            .list::<Secret>(Some(namespace), Some("kargo.akuity.io/cred-type=git"))
            .await;
        let mut secrets = match listed {
            Ok(list) => list.items,
            Err(e) => {
                found.unread.push(format!(
                    "Kargo's credential Secrets in namespace {namespace:?} could not be read ({}; the provider needs get and list on secrets there)",
                    crate::resources::common::explain(&e)
                ));
                continue;
            }
        };
        secrets.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for secret in secrets {
            let Some(repo_url) = secret.value("repoURL") else {
                continue;
            };
            found.secrets.push(KargoCredential {
                namespace: namespace.to_string(),
                secret: secret.metadata.name.clone().unwrap_or_default(),
                is_regex: secret.value("repoURLIsRegex").as_deref() == Some("true"),
                repo_url,
                username: secret.value("username").unwrap_or_default(),
                password: SecretValue::new(secret.value("password").unwrap_or_default()),
            });
        }
    }
    found
}

/// Runs the preview of promoting `freight` into `stage`.
pub async fn run(
    client: &KargoClient,
    settings: Settings,
    stage: &Stage,
    freight: &Freight,
) -> Outcome {
    let project = stage.metadata.namespace.clone().unwrap_or_default();
    let spec = stage
        .spec
        .promotion_template
        .as_ref()
        .and_then(|t| t.spec.as_ref());
    let steps = spec.and_then(|s| s.steps.clone()).unwrap_or_default();
    let vars = spec
        .and_then(|s| s.rest.get("vars"))
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if steps.is_empty() {
        return Outcome {
            status: preview::Status::Complete,
            reasons: Vec::new(),
            actions: Vec::new(),
            changes: Vec::new(),
        };
    }
    let steps = inflate(client, &project, &steps, &vars).await;
    let kargo_credentials = if settings.read_kargo_credentials {
        Some(kargo_credentials(client, &project, &settings.shared_namespace).await)
    } else {
        None
    };
    let request = Request {
        scope: Scope {
            project,
            stage: stage.metadata.name.clone().unwrap_or_default(),
            freight: std::sync::Arc::new(freight.clone()),
        },
        vars,
        steps,
        kargo_credentials,
    };
    let Ok(_permit) = RUNNING.acquire().await else {
        return Outcome::unavailable("the preview was cancelled");
    };
    let timeout = settings.timeout;
    let handle = tokio::runtime::Handle::current();
    let work = tokio::task::spawn_blocking(move || preview::run(&request, &settings, handle));
    match tokio::time::timeout(timeout + Duration::from_secs(5), work).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::unavailable(format!("the preview stopped: {e}")),
        Err(_) => {
            Outcome::unavailable("the preview did not finish within promotion_preview.timeout")
        }
    }
}
