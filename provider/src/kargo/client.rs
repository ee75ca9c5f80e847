//! A small typed client for Kargo objects over kube-rs: server-side apply, get, list,
//! create, patch, delete, watch-based waits, and waiting for the Kargo API to be served.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, DeleteParams, GetParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Request, Status};
use kube::runtime::WatchStreamExt as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{Error, Result};
use super::reads::{ReadKey, SharedReads};
use super::rest::RestApi;

#[path = "over_rest.rs"]
mod over_rest;
use super::types::{KARGO_GROUP, KARGO_VERSION, Kind, Object};

/// Field manager used for server-side apply unless configured otherwise.
pub const DEFAULT_FIELD_MANAGER: &str = "terraform-provider-kargo";
/// How long writes wait for the Kargo API unless configured otherwise.
pub const DEFAULT_API_WAIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Behaviour of writes and of the wait for the Kargo API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Field manager for server-side apply and other writes.
    pub field_manager: String,
    /// Take ownership of fields owned by other managers when server-side apply conflicts.
    pub force_conflicts: bool,
    /// Upper bound for [`KargoClient::ensure_kargo_api`] and
    /// [`KargoClient::retry_while_kargo_starting`].
    pub api_wait_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            field_manager: DEFAULT_FIELD_MANAGER.to_string(),
            force_conflicts: false,
            api_wait_timeout: DEFAULT_API_WAIT_TIMEOUT,
        }
    }
}

/// What a [`KargoClient::watch_until`] step decided after seeing a version of the object.
#[derive(Debug)]
pub enum WatchStep<T> {
    /// Keep watching.
    Continue,
    /// Stop and return this.
    Done(T),
    /// Stop with this error (e.g. the object reached a terminal failure state).
    Fail(Error),
}

/// Resources that must be served before the Kargo API counts as installed.
const REQUIRED_RESOURCES: [Kind; 7] = [
    Kind::Project,
    Kind::ProjectConfig,
    Kind::Warehouse,
    Kind::Stage,
    Kind::Freight,
    Kind::Promotion,
    Kind::PromotionTask,
];
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
const LIST_PAGE_SIZE: u32 = 500;
/// The annotation that asks Kargo to abort a Promotion, and its value.
const ABORT_ANNOTATION: &str = "kargo.akuity.io/abort";

/// The provider's connection to one cluster: a kube-rs client plus how to write.
///
/// Building one never contacts the cluster; the first request does.
///
/// ```no_run
/// # async fn demo(client: &terraform_provider_kargo::kargo::KargoClient) -> terraform_provider_kargo::kargo::Result<()> {
/// use terraform_provider_kargo::kargo::{Object as _, Stage};
/// let stored = client.apply(Some("demo"), "dev", &Stage::default()).await?;
/// assert_eq!(stored.name(), "dev");
/// if let Some(stage) = client.get::<Stage>(Some("demo"), "dev").await? {
///     println!("{} holds {:?}", stage.name(), stage.status.freight_history.first());
/// }
/// # Ok(()) }
/// ```
pub struct KargoClient {
    backend: Backend,
    host: String,
    options: ClientOptions,
    api_ready: tokio::sync::OnceCell<()>,
    /// What this process has read that many resources need, and the cluster's clock.
    reads: SharedReads,
}

/// Which API the client speaks.
enum Backend {
    /// The Kubernetes API, through kube-rs.
    Kube(kube::Client),
    /// Kargo's own API server (REST `/v1beta1`).
    Rest(std::sync::Arc<RestApi>),
}

/// Which API a [`KargoClient`] works through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Kubernetes,
    KargoApiServer,
}

impl fmt::Debug for KargoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KargoClient")
            .field("host", &self.host)
            .field("options", &self.options)
            .finish()
    }
}

/// The object or collection one request is about, for URLs, logs and messages.
#[derive(Clone, Copy)]
struct Target<'a> {
    kind: Kind,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

impl Target<'_> {
    fn describe(&self) -> String {
        match (self.name, self.namespace) {
            (Some(name), ns) => self.kind.describe(ns, name),
            (None, Some(ns)) => format!("{} objects in namespace \"{ns}\"", self.kind),
            (None, None) => format!("{} objects", self.kind),
        }
    }

    fn object(&self) -> String {
        match (self.namespace, self.name) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (Some(ns), None) => format!("{ns}/*"),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        }
    }
}

impl KargoClient {
    /// Wraps an existing kube-rs client. `host` names the API server in messages.
    pub fn new(client: kube::Client, host: impl Into<String>, options: ClientOptions) -> Self {
        Self {
            backend: Backend::Kube(client),
            host: host.into(),
            options,
            api_ready: tokio::sync::OnceCell::new(),
            reads: SharedReads::default(),
        }
    }

    /// Builds the kube-rs client from `config` without contacting the cluster. Must be
    /// called within a Tokio runtime (the client's request queue runs as a task on it).
    pub fn from_config(config: kube::Config, options: ClientOptions) -> Result<Self> {
        let host = redact_userinfo(config.cluster_url.to_string().trim_end_matches('/'));
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Other(
                "the Kubernetes client can only be created inside a Tokio runtime".into(),
            ));
        }
        // kube-rs would otherwise retry 429/503/504 itself for minutes, outside the bounds
        // and cancellation this client gives every wait.
        let mut config = config;
        config.default_retry = false;
        let client = kube::Client::try_from(config)
            .map_err(|e| Error::from_kube(e, "the Kubernetes client configuration", &host))?;
        Ok(Self::new(client, host, options))
    }

    /// A client that works through Kargo's API server.
    pub fn from_rest(rest: std::sync::Arc<RestApi>, options: ClientOptions) -> Self {
        Self {
            host: rest.host().to_string(),
            backend: Backend::Rest(rest),
            options,
            api_ready: tokio::sync::OnceCell::new(),
            reads: SharedReads::default(),
        }
    }

    /// Which API this client works through.
    pub fn transport(&self) -> Transport {
        match self.backend {
            Backend::Kube(_) => Transport::Kubernetes,
            Backend::Rest(_) => Transport::KargoApiServer,
        }
    }

    fn rest(&self) -> Option<&RestApi> {
        match &self.backend {
            Backend::Rest(rest) => Some(rest),
            Backend::Kube(_) => None,
        }
    }

    /// The kube-rs client; an error over Kargo's API server.
    fn kube_client(&self, what: &str) -> Result<&kube::Client> {
        match &self.backend {
            Backend::Kube(client) => Ok(client),
            Backend::Rest(_) => Err(Error::NotOverApiServer(format!(
                "{what} needs the Kubernetes API; Kargo's API server cannot do it"
            ))),
        }
    }

    /// The API server URL (without credentials).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn field_manager(&self) -> &str {
        &self.options.field_manager
    }

    pub fn force_conflicts(&self) -> bool {
        self.options.force_conflicts
    }

    pub fn api_wait_timeout(&self) -> Duration {
        self.options.api_wait_timeout
    }

    /// The underlying kube-rs client, for anything this type does not cover; `None` over
    /// Kargo's API server.
    pub fn kube(&self) -> Option<&kube::Client> {
        match &self.backend {
            Backend::Kube(client) => Some(client),
            Backend::Rest(_) => None,
        }
    }

    fn target<'a>(
        &self,
        kind: Kind,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Result<Target<'a>> {
        match (kind.namespaced(), namespace) {
            (true, None) if name.is_some() => Err(Error::Other(format!(
                "{kind} is namespaced: a namespace is needed to address \"{}\"",
                name.unwrap_or("")
            ))),
            (false, Some(ns)) => Err(Error::Other(format!(
                "{kind} is cluster-scoped but namespace \"{ns}\" was given"
            ))),
            _ => Ok(Target {
                kind,
                namespace,
                name,
            }),
        }
    }

    fn request(&self, target: &Target<'_>) -> Request {
        Request::new(target.kind.url_path(target.namespace))
    }

    fn build_error(target: &Target<'_>, err: kube::core::request::Error) -> Error {
        Error::Other(format!(
            "could not build the request for {}: {err}",
            target.describe()
        ))
    }

    fn write_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.options.field_manager.clone()),
            ..PatchParams::default()
        }
    }

    fn apply_params(&self, force: bool, dry_run: bool) -> PatchParams {
        let mut params = PatchParams::apply(&self.options.field_manager);
        params.dry_run = dry_run;
        if force { params.force() } else { params }
    }

    /// Sends one request and decodes the JSON answer as `T`; failures become typed errors.
    async fn send<T: DeserializeOwned>(
        &self,
        verb: &'static str,
        target: &Target<'_>,
        req: http::Request<Vec<u8>>,
    ) -> Result<T> {
        let what = target.describe();
        let started = std::time::Instant::now();
        let response = self
            .transmit(
                verb,
                target,
                &what,
                started,
                req.map(kube::client::Body::from),
            )
            .await?;
        self.decode(verb, target, &what, started, response).await
    }

    /// Sends one request as it is; a failure to get an answer becomes a typed error about
    /// `what`.
    async fn transmit(
        &self,
        verb: &'static str,
        target: &Target<'_>,
        what: &str,
        started: std::time::Instant,
        req: http::Request<kube::client::Body>,
    ) -> Result<http::Response<kube::client::Body>> {
        let client = self.kube_client(what)?;
        let response = client.send(req).await.map_err(|err| {
            let err = Error::from_kube(err, what, &self.host);
            tracing::debug!(
                verb,
                kind = target.kind.kind(),
                object = %target.object(),
                latency_ms = started.elapsed().as_millis() as u64,
                error = %err,
                "Kubernetes API request failed"
            );
            err
        })?;
        if let Some(date) = response
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
        {
            self.reads.observe_date(date, std::time::Instant::now());
        }
        Ok(response)
    }

    /// Decodes the JSON answer to a request sent at `started`; failures become typed errors.
    async fn decode<T: DeserializeOwned>(
        &self,
        verb: &'static str,
        target: &Target<'_>,
        what: &str,
        started: std::time::Instant,
        response: http::Response<kube::client::Body>,
    ) -> Result<T> {
        let code = response.status();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| Error::from_kube(e, what, &self.host))?;
        tracing::debug!(
            verb,
            kind = target.kind.kind(),
            object = %target.object(),
            status = code.as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "Kubernetes API request"
        );
        if code.is_client_error() || code.is_server_error() {
            return Err(Error::from_status(
                &failure_status(code, &body),
                what,
                &self.host,
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Error::Other(format!(
                "the API server's answer about {what} could not be read: {e}"
            ))
        })
    }

    /// Reads one object fresh; `None` when it does not exist. What it reads is kept for
    /// [`KargoClient::get_shared`] callers that come later.
    pub async fn get<K: Object>(&self, namespace: Option<&str>, name: &str) -> Result<Option<K>> {
        let generation = self.reads.generation();
        let object = self.get_uncached::<K>(namespace, name).await?;
        self.reads.store(
            ReadKey::object(K::KIND, namespace, name),
            object.clone(),
            generation,
        );
        Ok(object)
    }

    async fn get_uncached<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<K>> {
        let target = self.target(K::KIND, namespace, Some(name))?;
        if let Some(rest) = self.rest() {
            return self
                .rest_get(rest, K::KIND, namespace, name)
                .await?
                .map(over_rest::typed::<K>)
                .transpose();
        }
        let req = self
            .request(&target)
            .get(name, &GetParams::default())
            .map_err(|e| Self::build_error(&target, e))?;
        match self.send("GET", &target, req).await {
            Ok(object) => Ok(Some(object)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Reads one object at most once in this process (until a write or a wait in its
    /// namespace): callers at the same time wait for the same request. For objects a
    /// resource needs but does not manage (the stage a promotion goes to, a warehouse);
    /// a resource refreshing its own object uses [`KargoClient::get`], so drift always shows.
    pub async fn get_shared<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<K>> {
        self.reads
            .get_or_read(ReadKey::object(K::KIND, namespace, name), || {
                self.get_uncached::<K>(namespace, name)
            })
            .await
    }

    /// [`KargoClient::list`] at most once in this process (until a write or a wait in the
    /// namespace), shared as [`KargoClient::get_shared`] is.
    pub async fn list_shared<K: Object>(
        &self,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<ObjectList<K>> {
        self.reads
            .get_or_read(ReadKey::list(K::KIND, namespace, label_selector), || {
                self.list_uncached::<K>(namespace, label_selector)
            })
            .await
    }

    /// Lists objects (all namespaces when `namespace` is `None` for a namespaced kind),
    /// optionally filtered by a label selector such as `kargo.akuity.io/stage=dev`, with the
    /// `resourceVersion` of the collection they were read at.
    pub async fn list<K: Object>(
        &self,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<ObjectList<K>> {
        let generation = self.reads.generation();
        let list = self.list_uncached::<K>(namespace, label_selector).await?;
        self.reads.store(
            ReadKey::list(K::KIND, namespace, label_selector),
            list.clone(),
            generation,
        );
        Ok(list)
    }

    async fn list_uncached<K: Object>(
        &self,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<ObjectList<K>> {
        let target = self.target(K::KIND, namespace, None)?;
        if let Some(rest) = self.rest() {
            return self.rest_list(rest, namespace, label_selector).await;
        }
        let mut params = ListParams::default().limit(LIST_PAGE_SIZE);
        if let Some(selector) = label_selector {
            params = params.labels(selector);
        }
        let mut list = ObjectList {
            items: Vec::new(),
            resource_version: None,
        };
        loop {
            let req = self
                .request(&target)
                .list(&params)
                .map_err(|e| Self::build_error(&target, e))?;
            let page: Page<K> = self.send("LIST", &target, req).await?;
            list.items.extend(page.items);
            // Continued pages are read at the first page's version.
            if list.resource_version.is_none() {
                list.resource_version = page.metadata.resource_version;
            }
            match page.metadata.continue_token {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        Ok(list)
    }

    /// Server-side apply of the main resource with the configured field manager.
    /// `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` are filled in from the
    /// arguments. Returns the stored object.
    ///
    /// Who else holds a field decides what happens when the apply conflicts. Fields last
    /// written imperatively (managedFields entries with operation `Update`: `kubectl
    /// edit/label/annotate/patch`, `kubectl apply` without `--server-side`, Kargo's UI) are
    /// drift and taken back. Fields owned by another applier (operation `Apply`: Argo CD with
    /// server-side apply, another Terraform configuration) stay a [`Error::Conflict`] naming
    /// only those appliers and their fields, unless `force_conflicts` is set.
    pub async fn apply<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &K,
    ) -> Result<K> {
        self.apply_as(namespace, name, object, false).await
    }

    /// [`KargoClient::apply`] as a dry run (`dryRun=All`): admission and validation run and
    /// conflicts are found, nothing is stored. Returns the object as it would be stored.
    pub async fn dry_run_apply<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &K,
    ) -> Result<K> {
        self.apply_as(namespace, name, object, true).await
    }

    async fn apply_as<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &K,
        dry_run: bool,
    ) -> Result<K> {
        let outcome = self.apply_once(namespace, name, object, dry_run).await;
        if !dry_run {
            self.written(K::KIND, namespace);
        }
        outcome
    }

    /// Drops the shared reads a write of a `kind` object in `namespace` may have changed:
    /// everything read in that namespace (Kargo reacts to one object by changing others,
    /// e.g. a Promotion changes its Stage and Freight), or everything at all for a
    /// cluster-scoped object.
    fn written(&self, kind: Kind, namespace: Option<&str>) {
        tracing::trace!(
            kind = kind.kind(),
            namespace,
            "shared reads dropped after a write"
        );
        self.reads.invalidate(namespace);
    }

    async fn apply_once<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &K,
        dry_run: bool,
    ) -> Result<K> {
        let target = self.target(K::KIND, namespace, Some(name))?;
        let object = with_identity(encode(object)?, K::KIND, namespace, name)?;
        if let Some(rest) = self.rest() {
            if dry_run {
                return Err(Error::NotOverApiServer(format!(
                    "Kargo's API server has no dry run, so {} can only be checked by Kargo when it is written",
                    target.describe()
                )));
            }
            return over_rest::typed(
                self.rest_apply(rest, K::KIND, namespace, name, object)
                    .await?,
            );
        }
        let verb = if dry_run { "APPLY (dry run)" } else { "APPLY" };
        let send = |force: bool| {
            let req = self
                .request(&target)
                .patch(
                    name,
                    &self.apply_params(force, dry_run),
                    &Patch::Apply(&object),
                )
                .map_err(|e| Self::build_error(&target, e));
            async move { self.send(verb, &target, req?).await }
        };
        let forced = self.options.force_conflicts;
        let err = match send(forced).await {
            Err(err @ Error::Conflict { .. }) if !forced => err,
            other => return other,
        };
        let Error::Conflict {
            what,
            message,
            managers,
            fields,
        } = err
        else {
            return Err(err);
        };
        let live = self.get::<K>(namespace, name).await?;
        let appliers: Vec<String> = managers
            .iter()
            .filter(|m| live.as_ref().is_some_and(|o| applies(o.metadata(), m)))
            .cloned()
            .collect();
        if appliers.is_empty() {
            tracing::info!(
                kind = K::KIND.kind(),
                object = %target.object(),
                managers = ?managers,
                fields = ?fields,
                "taking back fields last written imperatively"
            );
            return send(true).await;
        }
        let fields = conflicting_fields_of(&message, &appliers, fields);
        Err(Error::Conflict {
            what,
            message,
            managers: appliers,
            fields,
        })
    }

    /// Creates an object and returns it as stored (with the name the server generated when
    /// the object only has `metadata.generateName`, as for Promotions).
    pub async fn create<K: Object>(&self, namespace: Option<&str>, object: &K) -> Result<K> {
        let kind = K::KIND;
        let name = object.meta().name.clone();
        let target = self.target(kind, namespace, None)?;
        let mut object = encode(object)?;
        let Some(map) = object.as_object_mut() else {
            return Err(Error::Other(format!(
                "a {kind} to create must be a JSON object"
            )));
        };
        map.insert("apiVersion".into(), Value::from(kind.api_version()));
        map.insert("kind".into(), Value::from(kind.kind()));
        if let Some(ns) = namespace {
            let metadata = map
                .entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(metadata) = metadata.as_object_mut() {
                metadata.insert("namespace".into(), Value::from(ns));
            }
        }
        if let Some(rest) = self.rest() {
            let outcome = match (kind, namespace) {
                (Kind::Promotion, Some(ns)) => self
                    .rest_create_promotion(rest, ns, &object)
                    .await
                    .and_then(over_rest::typed::<K>),
                _ => Err(Error::NotOverApiServer(format!(
                    "creating a {kind} with a generated name needs the Kubernetes API"
                ))),
            };
            self.written(kind, namespace);
            return outcome;
        }
        let body = serde_json::to_vec(&object)
            .map_err(|e| Error::Other(format!("could not encode the {kind}: {e}")))?;
        let params = PostParams {
            field_manager: Some(self.options.field_manager.clone()),
            ..PostParams::default()
        };
        let req = self
            .request(&target)
            .create(&params, body)
            .map_err(|e| Self::build_error(&target, e))?;
        let target = Target {
            name: name.as_deref(),
            ..target
        };
        let outcome = self.send("CREATE", &target, req).await;
        self.written(kind, namespace);
        outcome
    }

    /// JSON merge patch of the main resource.
    pub async fn merge_patch<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<K> {
        let target = self.target(K::KIND, namespace, Some(name))?;
        self.kube_client(&format!("patching {}", target.describe()))?;
        let req = self
            .request(&target)
            .patch(name, &self.write_params(), &Patch::Merge(patch))
            .map_err(|e| Self::build_error(&target, e))?;
        let outcome = self.send("PATCH", &target, req).await;
        self.written(K::KIND, namespace);
        outcome
    }

    /// JSON merge patch of the `status` subresource.
    pub async fn merge_patch_status<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<K> {
        let target = self.target(K::KIND, namespace, Some(name))?;
        self.kube_client(&format!("writing the status of {}", target.describe()))?;
        let req = self
            .request(&target)
            .patch_subresource("status", name, &self.write_params(), &Patch::Merge(patch))
            .map_err(|e| Self::build_error(&target, e))?;
        let outcome = self.send("PATCH status", &target, req).await;
        self.written(K::KIND, namespace);
        outcome
    }

    /// The Promotions of `stage` matching `label_selector`, read fresh: selected by the label
    /// over the Kubernetes API; over Kargo's API server, which takes no label selector, the
    /// stage's Promotions (`?stage=`) filtered by it.
    pub async fn list_promotions(
        &self,
        namespace: &str,
        stage: &str,
        label_selector: &str,
    ) -> Result<ObjectList<super::Promotion>> {
        match self.rest() {
            Some(rest) => {
                self.rest_list_of_stage(rest, namespace, stage, label_selector)
                    .await
            }
            None => self.list(Some(namespace), Some(label_selector)).await,
        }
    }

    /// Asks Kargo to abort a running Promotion: its abort annotation over the Kubernetes API,
    /// its abort route over Kargo's API server.
    pub async fn abort_promotion(&self, namespace: &str, name: &str) -> Result<()> {
        let outcome = match self.rest() {
            Some(rest) => self.rest_abort_promotion(rest, namespace, name).await,
            None => {
                let patch = serde_json::json!({"metadata": {"annotations": {ABORT_ANNOTATION: "terminate"}}});
                self.merge_patch::<super::Promotion>(Some(namespace), name, &patch)
                    .await
                    .map(|_| ())
            }
        };
        self.written(Kind::Promotion, Some(namespace));
        outcome
    }

    /// Approves Freight for a Stage: `status.approvedFor` written at `at` over the Kubernetes
    /// API, Kargo's approve route (which records its own time) over its API server. Returns
    /// the Freight as stored.
    pub async fn approve_freight(
        &self,
        namespace: &str,
        freight: &str,
        stage: &str,
        at: jiff::Timestamp,
    ) -> Result<super::Freight> {
        let Some(rest) = self.rest() else {
            let patch = serde_json::json!({"status": {"approvedFor": {stage: {"approvedAt": at.to_string()}}}});
            return self
                .merge_patch_status::<super::Freight>(Some(namespace), freight, &patch)
                .await;
        };
        let outcome = self.rest_approve(rest, namespace, freight, stage).await;
        self.written(Kind::Freight, Some(namespace));
        over_rest::typed(outcome?)
    }

    /// Requests deletion. Returns `false` when the object was already gone. Finalizers may
    /// keep it around for a while; see [`KargoClient::wait_deleted`].
    pub async fn delete<K: Object>(&self, namespace: Option<&str>, name: &str) -> Result<bool> {
        let target = self.target(K::KIND, namespace, Some(name))?;
        if let Some(rest) = self.rest() {
            let outcome = self.rest_delete(rest, K::KIND, namespace, name).await;
            self.written(K::KIND, namespace);
            return outcome;
        }
        let req = self
            .request(&target)
            .delete(name, &DeleteParams::default())
            .map_err(|e| Self::build_error(&target, e))?;
        let outcome = self.send::<Value>("DELETE", &target, req).await;
        self.written(K::KIND, namespace);
        match outcome {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Waits (by watch) until the object no longer exists.
    pub async fn wait_deleted<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let what = format!("{} to be deleted", K::KIND.describe(namespace, name));
        self.wait_until::<K>(namespace, name, &what, timeout, cancel, |object| {
            object.is_none()
        })
        .await
        .map(|_| ())
    }

    /// Waits (by watch) until `predicate` holds for the object (`None` while it does not
    /// exist) and returns the version it held for. `what` completes "timed out waiting
    /// for ...", e.g. `Stage "demo/dev" to become Ready`.
    pub async fn wait_until<K: Object>(
        &self,
        namespace: Option<&str>,
        name: &str,
        what: &str,
        timeout: Duration,
        cancel: &CancellationToken,
        predicate: impl Fn(Option<&K>) -> bool,
    ) -> Result<Option<K>> {
        self.watch_until(
            namespace,
            name,
            what,
            timeout,
            cancel,
            |object: Option<&K>| {
                if predicate(object) {
                    WatchStep::Done(object.cloned())
                } else {
                    WatchStep::Continue
                }
            },
        )
        .await
    }

    /// Watches one object and calls `step` with every new version (`None` while it does not
    /// exist, starting with its current state) until `step` decides. Returns promptly with
    /// [`Error::Cancelled`] when `cancel` fires and [`Error::Timeout`] (naming `what` and the
    /// last state seen) when `timeout` passes. Transient watch failures are retried with
    /// backoff; authorization failures end the wait at once.
    ///
    /// Waits are never served from the shared reads; when one ends, what this process read
    /// in the namespace is dropped, since Kargo acted there meanwhile.
    pub async fn watch_until<K: Object, T>(
        &self,
        namespace: Option<&str>,
        name: &str,
        what: &str,
        timeout: Duration,
        cancel: &CancellationToken,
        step: impl FnMut(Option<&K>) -> WatchStep<T>,
    ) -> Result<T> {
        let outcome = self
            .watch_object(namespace, name, what, timeout, cancel, step)
            .await;
        self.written(K::KIND, namespace);
        outcome
    }

    async fn watch_object<K: Object, T>(
        &self,
        namespace: Option<&str>,
        name: &str,
        what: &str,
        timeout: Duration,
        cancel: &CancellationToken,
        mut step: impl FnMut(Option<&K>) -> WatchStep<T>,
    ) -> Result<T> {
        let kind = K::KIND;
        let target = self.target(kind, namespace, Some(name))?;
        let description = target.describe();
        if self.rest().is_some() {
            return self
                .rest_watch(namespace, name, what, timeout, cancel, step)
                .await;
        }
        let client = self.kube_client(what)?.clone();
        let api: Api<K> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &()),
            None => Api::all_with(client, &()),
        };
        let deadline = Instant::now() + timeout;
        let stream = kube::runtime::watcher::watch_object(api, name).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut last_seen =
            "nothing yet (the watch had not delivered the object's state)".to_string();
        let mut last_error: Option<String> = None;
        // Re-lists after a dropped watch repeat versions already seen; report each once.
        let mut last_version: Option<Option<String>> = None;
        tracing::debug!(verb = "WATCH", kind = kind.kind(), object = %target.object(), "waiting for {what}");
        loop {
            let item = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = tokio::time::sleep_until(deadline) => {
                    let last_seen = match last_error {
                        Some(err) => format!("{last_seen} (last watch error: {err})"),
                        None => last_seen,
                    };
                    return Err(Error::Timeout { what: what.to_string(), last_seen });
                }
                item = stream.next() => item,
            };
            match item {
                None => {
                    return Err(Error::Other(format!(
                        "the watch on {description} ended unexpectedly"
                    )));
                }
                Some(Ok(object)) => {
                    last_error = None;
                    let version: Option<String> = object
                        .as_ref()
                        .map(|o| o.resource_version().unwrap_or_default().to_string());
                    if last_version.as_ref() == Some(&version) {
                        continue;
                    }
                    tracing::debug!(
                        verb = "WATCH",
                        kind = kind.kind(),
                        object = %target.object(),
                        resource_version = version.as_deref(),
                        "new version"
                    );
                    last_version = Some(version);
                    last_seen = describe_object(object.as_ref());
                    match step(object.as_ref()) {
                        WatchStep::Continue => {}
                        WatchStep::Done(value) => return Ok(value),
                        WatchStep::Fail(err) => return Err(err),
                    }
                }
                Some(Err(err)) => {
                    let err = watch_error(err, &description, &self.host);
                    if !is_retryable_watch_error(&err) {
                        return Err(err);
                    }
                    tracing::debug!(kind = kind.kind(), object = %target.object(), error = %err, "watch failed; retrying");
                    last_error = Some(err.to_string());
                }
            }
        }
    }

    /// Waits until the Kargo API is installed on the default budget (`api_wait_timeout`).
    /// Call before the first write of an apply; after the first success it costs nothing.
    pub async fn ensure_kargo_api(&self, cancel: &CancellationToken) -> Result<()> {
        self.wait_for_kargo_api(self.options.api_wait_timeout, cancel)
            .await
    }

    /// Waits (polling discovery with capped backoff, progress logged every few seconds)
    /// until `/apis/kargo.akuity.io/v1alpha1` serves the Kargo kinds. Success is cached for
    /// the life of this client; concurrent callers share one wait.
    pub async fn wait_for_kargo_api(
        &self,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<()> {
        self.api_ready
            .get_or_try_init(|| self.poll_kargo_api(timeout, cancel))
            .await
            .map(|_| ())
    }

    /// True once [`KargoClient::wait_for_kargo_api`] has succeeded.
    pub fn kargo_api_ready(&self) -> bool {
        self.api_ready.initialized()
    }

    async fn poll_kargo_api(&self, timeout: Duration, cancel: &CancellationToken) -> Result<()> {
        let what = format!(
            "the Kargo API ({KARGO_GROUP}/{KARGO_VERSION}) to be served by {}",
            self.host
        );
        self.retry_transient(&what, timeout, cancel, || self.check_kargo_api())
            .await
    }

    async fn check_kargo_api(&self) -> Result<()> {
        if let Some(rest) = self.rest() {
            return self.rest_version(rest).await.map(|_| ());
        }
        let target = Target {
            kind: Kind::Project,
            namespace: None,
            name: None,
        };
        let path = format!("/apis/{KARGO_GROUP}/{KARGO_VERSION}");
        let req = http::Request::get(path.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| Error::Other(format!("could not build the discovery request: {e}")))?;
        let list: Value = match self.send("DISCOVER", &target, req).await {
            Ok(list) => list,
            Err(Error::NotFound { message, .. }) => {
                return Err(Error::KargoNotInstalled { message });
            }
            Err(err) => return Err(err),
        };
        let served: Vec<&str> = list["resources"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = REQUIRED_RESOURCES
            .iter()
            .map(|k| k.plural())
            .filter(|p| !served.contains(p))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::KargoNotInstalled {
                message: format!(
                    "the API group is served but not yet these resources: {}",
                    missing.join(", ")
                ),
            })
        }
    }

    /// Runs `op` until it succeeds, retrying (with capped backoff, for at most
    /// `api_wait_timeout`) while it fails the way a Kargo that is still starting does:
    /// API group not served, webhooks not answering, 503. Other errors end it at once.
    /// `what` completes "timed out waiting for Kargo to accept ...".
    pub async fn retry_while_kargo_starting<T, F, Fut>(
        &self,
        what: &str,
        cancel: &CancellationToken,
        op: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let what = format!("Kargo to accept {what}");
        self.retry_transient(&what, self.options.api_wait_timeout, cancel, op)
            .await
    }

    async fn retry_transient<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        cancel: &CancellationToken,
        mut op: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut delay = FIRST_RETRY_DELAY;
        let mut next_report = started;
        let mut waited = false;
        let mut last_error: Option<String> = None;
        loop {
            let outcome = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                outcome = op() => outcome,
                _ = tokio::time::sleep_until(deadline) => {
                    let last_seen = last_error.unwrap_or_else(|| "no answer before the deadline".to_string());
                    return Err(Error::Timeout { what: what.to_string(), last_seen });
                }
            };
            let err = match outcome {
                Ok(value) => {
                    if waited {
                        tracing::info!(
                            elapsed_s = started.elapsed().as_secs(),
                            "done waiting for {what}"
                        );
                    }
                    return Ok(value);
                }
                Err(err) if err.is_transient_while_starting() => err,
                Err(err) => return Err(err),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    last_seen: err.to_string(),
                });
            }
            last_error = Some(err.to_string());
            if now >= next_report {
                tracing::info!(
                    elapsed_s = started.elapsed().as_secs(),
                    timeout_s = timeout.as_secs(),
                    reason = %err,
                    "waiting for {what}"
                );
                next_report = now + PROGRESS_EVERY;
            }
            waited = true;
            let pause = delay.min(deadline - now);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = tokio::time::sleep(pause) => {}
            }
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }

    /// Sends one `GET /version`, the cheapest request the API server answers; a failure to
    /// get an answer is an error about `what`. Returns the answer and when it was asked.
    async fn get_version(
        &self,
        what: &str,
    ) -> Result<(http::Response<kube::client::Body>, std::time::Instant)> {
        let req = http::Request::get("/version")
            .header(http::header::ACCEPT, "application/json")
            .body(kube::client::Body::empty())
            .map_err(|e| Error::Other(format!("could not build the version request: {e}")))?;
        let started = std::time::Instant::now();
        let response = self
            .transmit("VERSION", &VERSION_TARGET, what, started, req)
            .await?;
        Ok((response, started))
    }

    /// The API server's version (e.g. `v1.33.1`), for diagnostics.
    pub async fn server_version(&self) -> Result<String> {
        if let Some(rest) = self.rest() {
            let info = self.rest_version(rest).await?;
            return info["version"]
                .as_str()
                .or_else(|| info["gitVersion"].as_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::Other("Kargo's server-version answer has no version".into())
                });
        }
        let what = VERSION_TARGET.describe();
        let (response, started) = self.get_version(&what).await?;
        let info: Value = self
            .decode("VERSION", &VERSION_TARGET, &what, started, response)
            .await?;
        info["gitVersion"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Other("the API server's /version answer has no gitVersion".into())
            })
    }
}

impl KargoClient {
    /// The API server's clock, from the `Date` header of an answer received in the last
    /// seconds (any request's), advanced by the local monotonic clock since; without one, a
    /// cheap `GET /version` is made for its `Date`. Soak times are measured against it, so a
    /// skewed local clock cannot make freight look soaked (or not). Falls back to the local
    /// clock, logged, when the server sends no usable `Date`.
    pub async fn server_time(&self) -> Result<jiff::Timestamp> {
        if let Some(now) = self.reads.server_now() {
            return Ok(now);
        }
        if let Some(rest) = self.rest() {
            // Any answer carries the clock; the version route is the cheapest.
            self.rest_version(rest).await?;
            return Ok(self.reads.server_now().unwrap_or_else(|| {
                tracing::debug!("Kargo's API server sent no Date header; using the local clock");
                jiff::Timestamp::now()
            }));
        }
        let (response, _) = self.get_version("the API server's clock").await?;
        let date = response
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        Ok(date.unwrap_or_else(|| {
            tracing::debug!("the API server sent no Date header; using the local clock");
            jiff::Timestamp::now()
        }))
    }
}

/// What `GET /version` is sent as, for logs and errors: no object in particular.
const VERSION_TARGET: Target<'static> = Target {
    kind: Kind::Namespace,
    namespace: None,
    name: None,
};

/// An HTTP date (`Tue, 15 Nov 1994 08:12:31 GMT`).
pub fn parse_http_date(text: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text)
        .ok()
}

/// Fills in the identity fields server-side apply needs, from the arguments.
fn with_identity(
    mut object: Value,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value> {
    let Some(map) = object.as_object_mut() else {
        return Err(Error::Other(format!(
            "the {kind} to apply must be a JSON object"
        )));
    };
    map.insert("apiVersion".into(), Value::from(kind.api_version()));
    map.insert("kind".into(), Value::from(kind.kind()));
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(Error::Other(format!(
            "the {kind}'s metadata must be a JSON object"
        )));
    };
    metadata.insert("name".into(), Value::from(name));
    match namespace {
        Some(ns) => {
            metadata.insert("namespace".into(), Value::from(ns));
        }
        None => {
            metadata.remove("namespace");
        }
    }
    Ok(object)
}

/// The `Status` of a failed request; bodies that are not a `Status` (proxies, plain-text
/// 404s) become one carrying the HTTP code and the (shortened) text.
fn failure_status(code: http::StatusCode, body: &[u8]) -> Status {
    match serde_json::from_slice::<Status>(body) {
        Ok(mut status) if !status.message.is_empty() || !status.reason.is_empty() => {
            if status.code == 0 {
                status.code = code.as_u16();
            }
            status
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let mut text: String = text.trim().chars().take(300).collect();
            if text.is_empty() {
                text = code
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_string();
            }
            Status::failure(&text, "").with_code(code.as_u16())
        }
    }
}

/// Whether `manager` owns fields of the object through server-side apply (a managedFields
/// entry with operation `Apply`), rather than only through imperative writes (`Update`).
fn applies(meta: &kube::api::ObjectMeta, manager: &str) -> bool {
    meta.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() == Some(manager) && entry.operation.as_deref() == Some("Apply")
    })
}

/// The conflicting fields that belong to `appliers`, read from the API server's message
/// (`conflict with "m": .spec.x`); all of `fields` when the message does not say.
fn conflicting_fields_of(message: &str, appliers: &[String], fields: Vec<String>) -> Vec<String> {
    let mut theirs = Vec::new();
    for part in message.split("conflict with \"").skip(1) {
        let Some((manager, rest)) = part.split_once('"') else {
            continue;
        };
        if !appliers.iter().any(|a| a == manager) {
            continue;
        }
        let rest = rest
            .trim_start_matches(|c: char| c != ':')
            .trim_start_matches(':');
        let field: String = rest
            .trim_start()
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ',')
            .collect();
        if field.starts_with('.') && !theirs.contains(&field) {
            theirs.push(field);
        }
    }
    if theirs.is_empty() { fields } else { theirs }
}

/// A page of a list answer.
#[derive(Deserialize)]
struct Page<K> {
    #[serde(default)]
    metadata: PageMeta,
    #[serde(default = "Vec::new")]
    items: Vec<K>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageMeta {
    resource_version: Option<String>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// The objects a list returned, with the collection's `resourceVersion` at the time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectList<K> {
    pub items: Vec<K>,
    pub resource_version: Option<String>,
}

fn encode<K: Object>(object: &K) -> Result<Value> {
    serde_json::to_value(object)
        .map_err(|e| Error::Other(format!("could not encode the {}: {e}", K::KIND)))
}

/// [`describe_state`] of a typed object.
fn describe_object<K: Object>(object: Option<&K>) -> String {
    match object.map(serde_json::to_value) {
        None => describe_state(None),
        Some(Ok(json)) => describe_state(Some(&json)),
        Some(Err(_)) => "the object exists (its state could not be shown)".to_string(),
    }
}

/// Replaces `user:password@` in a URL with `***@`.
pub fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let after = &url[scheme_end + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end + 3], &after[at..]),
        None => url.to_string(),
    }
}

fn watch_error(err: kube::runtime::watcher::Error, what: &str, host: &str) -> Error {
    use kube::runtime::watcher::Error as W;
    match err {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => {
            Error::from_kube(e, what, host)
        }
        W::WatchError(status) => Error::from_status(&status, what, host),
        W::NoResourceVersion => {
            Error::Other(format!("the API server does not support watching {what}"))
        }
    }
}

fn is_retryable_watch_error(err: &Error) -> bool {
    matches!(
        err,
        Error::Unreachable { .. }
            | Error::ServiceUnavailable { .. }
            | Error::WebhookUnavailable { .. }
            | Error::ApiServerUnreachable { .. }
            | Error::Server { .. }
            | Error::Other(_)
    )
}

/// A one-line summary of an object's state for timeout messages: existence, deletion,
/// `status.phase`, `status.message` and conditions.
pub fn describe_state(object: Option<&Value>) -> String {
    let Some(object) = object else {
        return "the object does not exist".to_string();
    };
    let short = |s: &str| -> String {
        let s = s.trim();
        if s.chars().count() > 200 {
            format!("{}…", s.chars().take(200).collect::<String>())
        } else {
            s.to_string()
        }
    };
    let mut parts = Vec::new();
    if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
        parts.push(format!("resourceVersion {rv}"));
    }
    if object["metadata"]["deletionTimestamp"].is_string() {
        let finalizers: Vec<&str> = object["metadata"]["finalizers"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if finalizers.is_empty() {
            parts.push("being deleted".to_string());
        } else {
            parts.push(format!(
                "being deleted, waiting on finalizers {}",
                finalizers.join(", ")
            ));
        }
    }
    let status = &object["status"];
    if let Some(phase) = status["phase"].as_str() {
        parts.push(format!("phase {phase}"));
    }
    if let Some(message) = status["message"].as_str().filter(|m| !m.is_empty()) {
        parts.push(format!("message \"{}\"", short(message)));
    }
    if let Some(conditions) = status["conditions"].as_array() {
        for c in conditions {
            let (Some(t), Some(s)) = (c["type"].as_str(), c["status"].as_str()) else {
                continue;
            };
            let mut text = format!("{t}={s}");
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            match (reason.is_empty(), message.is_empty()) {
                (false, false) => text.push_str(&format!(" ({reason}: {})", short(message))),
                (false, true) => text.push_str(&format!(" ({reason})")),
                (true, false) => text.push_str(&format!(" ({})", short(message))),
                (true, true) => {}
            }
            parts.push(text);
        }
    }
    if parts.is_empty() {
        "the object exists (no status yet)".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some("1994-11-06T08:49:37Z".parse().unwrap())
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("http://bob:hunter2@proxy:3128/x"),
            "http://***@proxy:3128/x"
        );
        assert_eq!(redact_userinfo("https://kube:6443"), "https://kube:6443");
        assert_eq!(redact_userinfo("not a url"), "not a url");
    }

    #[test]
    fn identity_fields_come_from_the_arguments() {
        let object = json!({"metadata": {"name": "wrong", "labels": {"a": "b"}}, "spec": {"x": 1}});
        let object = with_identity(object, Kind::Warehouse, Some("demo"), "w1").unwrap();
        assert_eq!(object["apiVersion"], "kargo.akuity.io/v1alpha1");
        assert_eq!(object["kind"], "Warehouse");
        assert_eq!(object["metadata"]["name"], "w1");
        assert_eq!(object["metadata"]["namespace"], "demo");
        assert_eq!(object["metadata"]["labels"]["a"], "b");
        let object = with_identity(
            json!({"metadata": {"namespace": "x"}}),
            Kind::Project,
            None,
            "p",
        )
        .unwrap();
        assert!(object["metadata"].get("namespace").is_none());
        assert!(with_identity(json!([1]), Kind::Project, None, "p").is_err());
    }

    #[test]
    fn conflicts_are_told_apart_by_the_owners_operation() {
        let meta: kube::api::ObjectMeta = serde_json::from_value(json!({"managedFields": [
            {"manager": "kubectl-label", "operation": "Update"},
            {"manager": "argocd-controller", "operation": "Apply"},
            {"manager": "both", "operation": "Update"},
            {"manager": "both", "operation": "Apply"}
        ]}))
        .unwrap();
        assert!(!applies(&meta, "kubectl-label"));
        assert!(applies(&meta, "argocd-controller"));
        assert!(applies(&meta, "both"));
        assert!(!applies(&meta, "nobody"));
        let message = "Apply failed with 2 conflicts: conflict with \"kubectl-label\" using v1: .metadata.labels.team, conflict with \"argocd-controller\" using kargo.akuity.io/v1alpha1: .spec.interval";
        assert_eq!(
            conflicting_fields_of(message, &["argocd-controller".into()], vec!["x".into()]),
            vec![".spec.interval".to_string()]
        );
        assert_eq!(
            conflicting_fields_of("nothing said", &["a".into()], vec![".spec.y".into()]),
            vec![".spec.y".to_string()]
        );
    }

    #[test]
    fn plain_text_failures_become_statuses() {
        let s = failure_status(http::StatusCode::NOT_FOUND, b"404 page not found\n");
        assert_eq!(s.code, 404);
        assert_eq!(s.message, "404 page not found");
        let body = br#"{"kind":"Status","status":"Failure","message":"nope","reason":"Forbidden","code":403}"#;
        let s = failure_status(http::StatusCode::FORBIDDEN, body);
        assert_eq!(
            (s.code, s.reason.as_str(), s.message.as_str()),
            (403, "Forbidden", "nope")
        );
        let s = failure_status(http::StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(s.message, "Service Unavailable");
    }

    #[test]
    fn state_summary_names_phase_conditions_and_deletion() {
        assert_eq!(describe_state(None), "the object does not exist");
        let object = json!({
            "metadata": {"resourceVersion": "42", "deletionTimestamp": "2025-01-01T00:00:00Z", "finalizers": ["kargo.akuity.io/finalizer"]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False", "reason": "Reconciling", "message": "waiting for freight"},
                {"type": "Healthy", "status": "Unknown"}
            ]}
        });
        assert_eq!(
            describe_state(Some(&object)),
            "resourceVersion 42; being deleted, waiting on finalizers kargo.akuity.io/finalizer; phase Running; Ready=False (Reconciling: waiting for freight); Healthy=Unknown"
        );
    }
}
