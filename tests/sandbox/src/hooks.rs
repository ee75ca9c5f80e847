//! The seam between the Kubernetes core of the sandbox (store, HTTP, SSA, watch, schema
//! validation) and the Kargo behaviour (webhooks, controllers, artifact discovery, faults).
//! The core calls [`Admission`] on every write of a Kargo object and drives [`Controller`]s;
//! the Kargo side sees the store only through [`Txn`] and works on plain JSON.

use serde_json::Value;

use crate::rbac::{Access, Identity};

/// A Kubernetes `Status` failure. `code`/`reason` follow apimachinery
/// (e.g. 422 `Invalid`, 409 `Conflict` / `AlreadyExists`, 404 `NotFound`, 403 `Forbidden`,
/// 500 `InternalError`, 400 `BadRequest`).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `details.kind` / `details.name` / `details.group` of the Status body.
    pub kind: Option<String>,
    pub name: Option<String>,
    pub group: Option<String>,
    pub causes: Vec<StatusCause>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatusCause {
    /// e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueDuplicate`.
    pub reason: String,
    pub message: String,
    /// e.g. `spec.requestedFreight[0].sources.stages`.
    pub field: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            kind: None,
            name: None,
            group: None,
            causes: Vec::new(),
        }
    }
    /// 422 Invalid for `<Kind>.<group> "<name>"` with field causes, worded like the API server:
    /// `Stage.kargo.akuity.io "dev" is invalid: spec.x: Invalid value: ...: msg`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        let detail = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .fold(Vec::<String>::new(), |mut seen, m| {
                if !seen.contains(&m) {
                    seen.push(m);
                }
                seen
            });
        // `field.ErrorList.ToAggregate()`: one error as is, several (deduplicated) in brackets.
        let detail = match detail.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {detail}"),
        );
        e.kind = Some(kind.to_string());
        e.group = Some(group.to_string());
        e.name = Some(name.to_string());
        e.causes = causes;
        e
    }
    /// Wraps a validating-webhook denial the way the API server reports it:
    /// `admission webhook "<webhook>" denied the request: <message>` (same code/reason/causes).
    pub fn denied_by_webhook(self, webhook: &str) -> Self {
        let message = format!(
            "admission webhook \"{webhook}\" denied the request: {}",
            self.message
        );
        Self { message, ..self }
    }
}

/// Which object a request is about. `resource` is the plural (`stages`, `namespaces`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// One admission review, as a mutating + validating webhook pair sees it.
pub struct AdmissionRequest<'a> {
    pub operation: Operation,
    pub group: &'a str,
    pub resource: &'a str,
    /// `Some("status")` for writes to the status subresource.
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// For CREATE with `generateName` this is empty until a webhook (or the core) names it.
    pub name: &'a str,
    /// The incoming object (CREATE/UPDATE), after schema defaulting; webhooks may mutate it.
    /// It is not yet pruned: fields the CRD schema does not declare (e.g. the legacy
    /// `spec.promotionMechanisms`) are still present, so a webhook can reject them with a
    /// helpful message. After admission the core prunes unknown fields, re-applies defaults
    /// and validates against the CRD schema (so admission may see schema-invalid objects).
    pub object: Option<&'a mut Value>,
    /// The stored object (UPDATE/DELETE).
    pub old_object: Option<&'a Value>,
    /// Authenticated user name (e.g. `sandbox-admin`), used for `create-actor`.
    pub user: &'a str,
    /// The user's groups.
    pub groups: &'a [String],
    /// Whether the requester is the Kargo control plane itself (controllers): skips
    /// actor stamping and permission checks, as Kargo does for its own service accounts.
    pub from_control_plane: bool,
    pub dry_run: bool,
}

/// The store as webhooks and controllers see it, under the store's lock: reads are
/// consistent and writes commit immediately (bumping resourceVersion and notifying watchers).
/// Writes through `Txn` skip authentication and the admission chain (they are the
/// control plane's own writes), but do go through schema defaulting/validation.
pub trait Txn {
    fn get(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value>;
    /// All objects of a resource, in one namespace or (None) across all.
    fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Value>;
    /// Creates an object (metadata.name or generateName must be set); returns it as stored.
    fn create(&mut self, object: Value) -> Result<Value, ApiError>;
    /// Replaces the main resource (status is ignored); optimistic concurrency applies only if
    /// `metadata.resourceVersion` is set.
    fn update(&mut self, object: Value) -> Result<Value, ApiError>;
    /// Replaces the status subresource only.
    fn update_status(&mut self, object: Value) -> Result<Value, ApiError>;
    /// Deletes: with finalizers present, only sets deletionTimestamp. Deleting a namespace
    /// deletes everything in it (each honouring its own finalizers).
    fn delete(
        &mut self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError>;
    /// The sandbox clock (RFC 3339 instants). Tests may move it forward to pass soak times.
    fn now(&self) -> jiff::Timestamp;
    /// Authorization as a SubjectAccessReview would answer it: may `who` do `access` (e.g.
    /// `promote` on `stages` named `name` in `namespace`)? The admin user may do everything;
    /// other users are decided by their denied pairs or by RBAC.
    fn can(&self, who: &Identity, access: &Access<'_>) -> bool;
}

/// Kargo's webhooks for one or more resources (group `kargo.akuity.io` plus any core
/// resource Kargo's webhooks watch, e.g. namespaces).
pub trait Admission: Send + Sync {
    /// Called for every write: first with the mutating pass, then validating; an `Err`
    /// rejects the request with that status. Side effects (e.g. Project creating its
    /// namespace) go through `txn` and must be skipped when `req.dry_run`.
    fn admit(&self, txn: &mut dyn Txn, req: &mut AdmissionRequest<'_>) -> Result<(), ApiError>;
}

/// A change the store committed.
#[derive(Clone, Debug)]
pub enum Event {
    Added(ObjectRef),
    Modified(ObjectRef),
    Deleted(ObjectRef),
}

/// Kargo's controllers. The core calls `reconcile` after commits (coalesced, in order)
/// and `tick` on a short period (about every 50 ms) for time-driven work: promotion steps
/// advancing, soak times elapsing, verification finishing, auto-promotion.
pub trait Controller: Send + Sync {
    fn reconcile(&self, txn: &mut dyn Txn, event: &Event);
    fn tick(&self, txn: &mut dyn Txn);
}

/// Commands from `kargo-sandbox <command>` and Rust tests that act as the outside world
/// (a registry publishing an image) or inject Kargo-level faults. `name` is e.g. `publish`,
/// `fail-promotion`, `fail-verification`, `clear-faults`; the body and result are JSON.
pub trait Control: Send + Sync {
    fn control(&self, txn: &mut dyn Txn, name: &str, body: &Value) -> Result<Value, ApiError>;
}
