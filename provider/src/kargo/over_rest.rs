//! [`KargoClient`]'s operations over Kargo's API server (REST `/v1beta1`): the same
//! answers as over the Kubernetes API, through Kargo's routes.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::error::{Error, Result};
use super::super::rest::{self, Answer, RestApi};
use super::super::types::Kind;
use super::{KargoClient, ObjectList, WatchStep, describe_state};
use crate::kargo::Object;

/// How often a full update is tried again when the object changed under it.
const UPDATE_ATTEMPTS: usize = 5;
/// Polling bounds for objects Kargo's API server cannot watch.
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(2);
/// The label Kargo puts on a project's namespace.
const PROJECT_LABEL: &str = "kargo.akuity.io/project";

fn not_over(what: String) -> Error {
    Error::NotOverApiServer(what)
}

fn decode_json(body: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| {
        Error::Other(format!(
            "Kargo's API server's answer about {what} could not be read: {e}"
        ))
    })
}

pub(super) fn typed<K: Object>(value: Value) -> Result<K> {
    serde_json::from_value(value).map_err(|e| {
        Error::Other(format!(
            "Kargo's API server returned a {} that could not be read: {e}",
            K::KIND
        ))
    })
}

impl KargoClient {
    fn observe(&self, answer: &Answer) {
        if let Some(date) = answer.date {
            self.reads.observe_date(date, std::time::Instant::now());
        }
    }

    async fn rest_call(
        &self,
        rest: &RestApi,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        what: &str,
    ) -> Result<Answer> {
        let outcome = rest.call(method, path, body, what).await;
        if let Ok(answer) = &outcome {
            self.observe(answer);
        }
        outcome
    }

    /// One manifest sent to `/v1beta1/resources` (`POST` creates, `PUT` updates, `DELETE`
    /// deletes); the object Kargo's answer carries under `key`.
    async fn rest_resources(
        &self,
        rest: &RestApi,
        method: Method,
        manifest: &Value,
        key: &str,
        what: &str,
    ) -> Result<Value> {
        let body = serde_json::to_vec(manifest)
            .map_err(|e| Error::Other(format!("could not encode {what}: {e}")))?;
        let answer = self
            .rest_call(
                rest,
                method,
                "/v1beta1/resources",
                Some(("text/plain", body)),
                what,
            )
            .await?;
        rest::resource_result(&answer.body, key)
    }

    /// One object, or `None` when it does not exist.
    pub(super) async fn rest_get(
        &self,
        rest: &RestApi,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        if kind == Kind::Namespace {
            return self.rest_project_namespace(rest, name).await;
        }
        self.rest_get_object(rest, kind, namespace, name).await
    }

    async fn rest_get_object(
        &self,
        rest: &RestApi,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let what = kind.describe(namespace, name);
        let path = rest::object_path(kind, namespace, name).ok_or_else(|| {
            not_over(format!(
                "Kargo's API server does not serve {kind} objects, so {what} cannot be read through it"
            ))
        })?;
        match self.rest_call(rest, Method::GET, &path, None, &what).await {
            Ok(answer) => {
                let object = decode_json(&answer.body, &what)?;
                // Freight is looked up by name or alias: only the named one counts.
                if kind == Kind::Freight && object["metadata"]["name"].as_str() != Some(name) {
                    return Ok(None);
                }
                Ok(Some(object))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Kargo's API server serves no namespaces; a project's namespace is what Kargo made for
    /// its Project, and is seen through it: there while the Project is, going when it goes.
    async fn rest_project_namespace(&self, rest: &RestApi, name: &str) -> Result<Option<Value>> {
        let Some(project) = self
            .rest_get_object(rest, Kind::Project, None, name)
            .await?
        else {
            return Ok(None);
        };
        let mut metadata = json!({"name": name, "labels": {PROJECT_LABEL: "true"}});
        if let Some(at) = project["metadata"].get("deletionTimestamp") {
            metadata["deletionTimestamp"] = at.clone();
        }
        Ok(Some(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}),
        ))
    }

    /// A stage's Promotions (`GET …/promotions?stage=`) that match `label_selector`.
    pub(super) async fn rest_list_of_stage(
        &self,
        rest: &RestApi,
        namespace: &str,
        stage: &str,
        label_selector: &str,
    ) -> Result<ObjectList<crate::kargo::Promotion>> {
        let what = format!("the promotions of Stage \"{namespace}/{stage}\"");
        let path = format!("/v1beta1/projects/{namespace}/promotions?stage={stage}");
        self.rest_list_at(rest, &path, &what, |o| {
            o["spec"]["stage"].as_str() == Some(stage)
                && rest::selector_matches(label_selector, o["metadata"]["labels"].as_object())
        })
        .await
    }

    pub(super) async fn rest_list<K: Object>(
        &self,
        rest: &RestApi,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<ObjectList<K>> {
        let kind = K::KIND;
        let what = match namespace {
            Some(ns) => format!("{kind} objects in project \"{ns}\""),
            None => format!("{kind} objects"),
        };
        let path = match (kind.namespaced(), namespace) {
            (true, None) => None,
            _ => rest::list_path(kind, namespace),
        }
        .ok_or_else(|| {
            not_over(format!(
                "Kargo's API server cannot list {what}; connect through the Kubernetes API for this"
            ))
        })?;
        self.rest_list_at(rest, &path, &what, |o| {
            label_selector
                .is_none_or(|s| rest::selector_matches(s, o["metadata"]["labels"].as_object()))
        })
        .await
    }

    /// The objects a list route answers that `keep` keeps; none when the project is missing
    /// (a project that does not exist has nothing in it).
    async fn rest_list_at<K: Object>(
        &self,
        rest: &RestApi,
        path: &str,
        what: &str,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<ObjectList<K>> {
        let answer = match self.rest_call(rest, Method::GET, path, None, what).await {
            Ok(answer) => answer,
            Err(Error::NotFound { .. }) if path.starts_with("/v1beta1/projects/") => {
                return Ok(ObjectList {
                    items: Vec::new(),
                    resource_version: None,
                });
            }
            Err(err) => return Err(err),
        };
        let (items, resource_version) = rest::list_items(K::KIND, &answer.body)?;
        let items = items
            .into_iter()
            .filter(|o| keep(o))
            .map(typed::<K>)
            .collect::<Result<Vec<K>>>()?;
        Ok(ObjectList {
            items,
            resource_version,
        })
    }

    /// What server-side apply does, as Kargo's API server can: create the object when it is
    /// missing, otherwise a full update of the live object with what Terraform sets merged
    /// in ([`rest::merge_for_update`]), tried again when the object changed meanwhile. An
    /// object that already holds everything is not written.
    pub(super) async fn rest_apply(
        &self,
        rest: &RestApi,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
        desired: Value,
    ) -> Result<Value> {
        let what = kind.describe(namespace, name);
        let mut last: Option<Error> = None;
        for _ in 0..UPDATE_ATTEMPTS {
            let live = self.rest_get(rest, kind, namespace, name).await?;
            let outcome = match live {
                None => {
                    let created = rest::for_create(&desired);
                    self.rest_resources(
                        rest,
                        Method::POST,
                        &created,
                        "createdResourceManifest",
                        &what,
                    )
                    .await
                }
                Some(live) => {
                    let merged = rest::merge_for_update(&live, &desired);
                    if rest::update_changes_nothing(&live, &merged) {
                        return Ok(live);
                    }
                    self.rest_resources(
                        rest,
                        Method::PUT,
                        &merged,
                        "updatedResourceManifest",
                        &what,
                    )
                    .await
                }
            };
            match outcome {
                Err(err @ (Error::AlreadyExists { .. } | Error::Conflict { .. })) => {
                    tracing::debug!(object = %what, error = %err, "the object changed meanwhile; reading it again");
                    last = Some(err);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::Other(format!("{what} could not be written"))))
    }

    /// A Promotion through Kargo's promote route (`POST …/stages/{stage}/promotions`), then
    /// the labels and annotations the provider gives it. Kargo names it.
    pub(super) async fn rest_create_promotion(
        &self,
        rest: &RestApi,
        namespace: &str,
        desired: &Value,
    ) -> Result<Value> {
        let stage = desired["spec"]["stage"].as_str().unwrap_or_default();
        let freight = desired["spec"]["freight"].as_str().unwrap_or_default();
        if stage.is_empty() || freight.is_empty() {
            return Err(Error::Other(
                "a promotion needs a stage and a freight".to_string(),
            ));
        }
        let what = format!("a promotion of Freight {freight:?} into Stage \"{namespace}/{stage}\"");
        let body = serde_json::to_vec(&json!({"freight": freight}))
            .map_err(|e| Error::Other(format!("could not encode {what}: {e}")))?;
        let path = format!("/v1beta1/projects/{namespace}/stages/{stage}/promotions");
        let answer = self
            .rest_call(
                rest,
                Method::POST,
                &path,
                Some(("application/json", body)),
                &what,
            )
            .await
            .map_err(|err| promote_refusal(err, namespace, stage))?;
        let created = decode_json(&answer.body, &what)?;
        let wanted = json!({"metadata": {
            "labels": desired["metadata"]["labels"],
            "annotations": desired["metadata"]["annotations"],
        }});
        if wanted["metadata"]["labels"].is_null() && wanted["metadata"]["annotations"].is_null() {
            return Ok(created);
        }
        let name = created["metadata"]["name"].as_str().unwrap_or_default();
        let merged = rest::merge_for_update(&created, &wanted);
        let labelled = self
            .rest_resources(
                rest,
                Method::PUT,
                &merged,
                "updatedResourceManifest",
                &Kind::Promotion.describe(Some(namespace), name),
            )
            .await;
        match labelled {
            Ok(object) => Ok(object),
            Err(err) => {
                // The promotion runs either way; without its key it is only not found again
                // after an interrupted apply.
                tracing::warn!(promotion = name, error = %err, "could not label the promotion with its idempotency key");
                Ok(created)
            }
        }
    }

    /// Deletion through the kind's route, or `DELETE /v1beta1/resources` for kinds that have
    /// none. `false` when the object was already gone.
    pub(super) async fn rest_delete(
        &self,
        rest: &RestApi,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool> {
        let what = kind.describe(namespace, name);
        let outcome = match kind {
            Kind::Project | Kind::ProjectConfig | Kind::Stage | Kind::Warehouse | Kind::Freight => {
                let path = rest::object_path(kind, namespace, name).unwrap_or_default();
                self.rest_call(rest, Method::DELETE, &path, None, &what)
                    .await
                    .map(|_| ())
            }
            Kind::Promotion | Kind::PromotionTask | Kind::ClusterPromotionTask => {
                let mut metadata = json!({"name": name});
                if let Some(ns) = namespace {
                    metadata["namespace"] = json!(ns);
                }
                let manifest = json!({
                    "apiVersion": kind.api_version(),
                    "kind": kind.kind(),
                    "metadata": metadata,
                });
                self.rest_resources(
                    rest,
                    Method::DELETE,
                    &manifest,
                    "deletedResourceManifest",
                    &what,
                )
                .await
                .map(|_| ())
            }
            Kind::Namespace | Kind::Secret => {
                return Err(not_over(format!("Kargo's API server cannot delete {what}")));
            }
        };
        match outcome {
            Ok(()) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(Error::Other(message)) if message.contains("not found") => Ok(false),
            Err(err) => Err(err),
        }
    }

    pub(super) async fn rest_abort_promotion(
        &self,
        rest: &RestApi,
        namespace: &str,
        name: &str,
    ) -> Result<()> {
        let what = Kind::Promotion.describe(Some(namespace), name);
        let path = format!("/v1beta1/projects/{namespace}/promotions/{name}/abort");
        self.rest_call(rest, Method::POST, &path, None, &what)
            .await
            .map(|_| ())
    }

    pub(super) async fn rest_approve(
        &self,
        rest: &RestApi,
        namespace: &str,
        freight: &str,
        stage: &str,
    ) -> Result<Value> {
        let what = Kind::Freight.describe(Some(namespace), freight);
        let path = format!("/v1beta1/projects/{namespace}/freight/{freight}/approve?stage={stage}");
        self.rest_call(rest, Method::POST, &path, None, &what)
            .await
            .map_err(|err| promote_refusal(err, namespace, stage))?;
        self.rest_get(rest, Kind::Freight, Some(namespace), freight)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: what.clone(),
                message: "the freight is gone".into(),
            })
    }

    /// `GET /v1beta1/system/server-version`: the API server answers, so Kargo is there.
    pub(super) async fn rest_version(&self, rest: &RestApi) -> Result<Value> {
        let what = format!("Kargo's API server at {}", rest.host());
        let answer = self
            .rest_call(
                rest,
                Method::GET,
                "/v1beta1/system/server-version",
                None,
                &what,
            )
            .await?;
        decode_json(&answer.body, &what)
    }

    /// Waits on an object through Kargo's `?watch=true` event stream (Stages, Warehouses,
    /// Promotions, Freight), or by polling for the kinds it cannot watch; the same contract as
    /// the Kubernetes watch.
    pub(super) async fn rest_watch<K: Object, T>(
        &self,
        namespace: Option<&str>,
        name: &str,
        what: &str,
        timeout: Duration,
        cancel: &CancellationToken,
        mut step: impl FnMut(Option<&K>) -> WatchStep<T>,
    ) -> Result<T> {
        let kind = K::KIND;
        let Some(rest) = self.rest() else {
            return Err(Error::Other(
                "a watch through Kargo's API server needs its client".into(),
            ));
        };
        let deadline = Instant::now() + timeout;
        let mut last_seen =
            "nothing yet (the watch had not delivered the object's state)".to_string();
        let mut last_error: Option<String> = None;
        let mut last_version: Option<Option<String>> = None;
        let mut pause = FIRST_POLL;
        let timed_out = |last_seen: &str, last_error: &Option<String>| Error::Timeout {
            what: what.to_string(),
            last_seen: match last_error {
                Some(err) => format!("{last_seen} (last watch error: {err})"),
                None => last_seen.to_string(),
            },
        };
        // Calls `step` with a new version; `Some` ends the wait.
        let mut offer = |object: Option<Value>,
                         last_seen: &mut String,
                         last_version: &mut Option<Option<String>>|
         -> Option<Result<T>> {
            let version = object.as_ref().map(|o| {
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
            if last_version.as_ref() == Some(&version) {
                return None;
            }
            *last_seen = describe_state(object.as_ref());
            *last_version = Some(version);
            let typed_object = match object.map(typed::<K>).transpose() {
                Ok(o) => o,
                Err(err) => return Some(Err(err)),
            };
            match step(typed_object.as_ref()) {
                WatchStep::Continue => None,
                WatchStep::Done(value) => Some(Ok(value)),
                WatchStep::Fail(err) => Some(Err(err)),
            }
        };
        loop {
            let current = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = tokio::time::sleep_until(deadline) => return Err(timed_out(&last_seen, &last_error)),
                current = self.rest_get(rest, kind, namespace, name) => current,
            };
            let current = match current {
                Ok(c) => {
                    last_error = None;
                    c
                }
                Err(err) if retryable(&err) => {
                    last_error = Some(err.to_string());
                    sleep(pause, deadline, cancel).await?;
                    pause = (pause * 2).min(MAX_POLL);
                    continue;
                }
                Err(err) => return Err(err),
            };
            let exists = current.is_some();
            if let Some(done) = offer(current, &mut last_seen, &mut last_version) {
                return done;
            }
            if !rest::watchable(kind) || !exists {
                sleep(pause, deadline, cancel).await?;
                pause = (pause * 2).min(MAX_POLL);
                continue;
            }
            pause = FIRST_POLL;
            let path = match kind {
                Kind::Freight => rest::list_path(kind, namespace).unwrap_or_default(),
                _ => rest::object_path(kind, namespace, name).unwrap_or_default(),
            };
            let opened = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = tokio::time::sleep_until(deadline) => return Err(timed_out(&last_seen, &last_error)),
                opened = rest.open_watch(&path, what) => opened,
            };
            let mut response = match opened {
                Ok(r) => r,
                Err(err) if retryable(&err) => {
                    last_error = Some(err.to_string());
                    sleep(pause, deadline, cancel).await?;
                    continue;
                }
                Err(Error::NotFound { .. }) => continue,
                Err(err) => return Err(err),
            };
            tracing::debug!(
                verb = "WATCH",
                kind = kind.kind(),
                object = name,
                "waiting for {what}"
            );
            let mut buffer = Vec::new();
            loop {
                let chunk = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                    _ = tokio::time::sleep_until(deadline) => return Err(timed_out(&last_seen, &last_error)),
                    chunk = response.chunk() => chunk,
                };
                let bytes = match chunk {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => break,
                    Err(err) => {
                        last_error = Some(rest.transport_error(err, what).to_string());
                        break;
                    }
                };
                buffer.extend_from_slice(&bytes);
                for (event, data) in rest::take_events(&mut buffer) {
                    if event == "error" {
                        // Kargo's "resource version expired": read afresh and watch again.
                        last_error = Some(data);
                        continue;
                    }
                    let Ok(event) = serde_json::from_str::<Value>(&data) else {
                        continue;
                    };
                    let object = &event["object"];
                    if object["metadata"]["name"].as_str() != Some(name) {
                        continue;
                    }
                    let object = match event["type"].as_str() {
                        Some("DELETED") => None,
                        _ => Some(object.clone()),
                    };
                    if let Some(done) = offer(object, &mut last_seen, &mut last_version) {
                        return done;
                    }
                }
            }
            sleep(FIRST_POLL, deadline, cancel).await?;
        }
    }
}

fn retryable(err: &Error) -> bool {
    matches!(
        err,
        Error::ApiServerUnreachable { .. }
            | Error::ServiceUnavailable { .. }
            | Error::Server { .. }
    )
}

async fn sleep(pause: Duration, deadline: Instant, cancel: &CancellationToken) -> Result<()> {
    let until = (Instant::now() + pause).min(deadline);
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Error::Cancelled),
        _ = tokio::time::sleep_until(until) => Ok(()),
    }
}

/// Kargo's 403 on a promote or approve route is its `promote` check.
fn promote_refusal(err: Error, project: &str, stage: &str) -> Error {
    match err {
        Error::ApiServerForbidden { message, .. } => Error::NotPermittedToPromote {
            stage: stage.to_string(),
            message: format!(
                "{message} (through Kargo's API server the provider acts as the Kargo role its \
                 token is bound to: `kargo grant --project={project} --role=<role> --verb=promote \
                 --resource-type=stages --resource-name={stage}` grants it)"
            ),
        },
        other => other,
    }
}
