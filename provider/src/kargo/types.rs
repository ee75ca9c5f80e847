//! Serde models of the Kargo kinds the provider reads and writes (`kargo.akuity.io/v1alpha1`,
//! Kargo v1.11): the fields the provider interprets are typed, everything else is kept as JSON.
//!
//! Written by hand rather than generated from the CRDs: the provider interprets a few dozen
//! fields of objects whose CRDs run to thousands of lines, and the specs it writes come from
//! its configuration schema, so they must pass through these types unchanged. Every spec-side
//! field is therefore optional and every spec-side struct keeps the fields it does not model
//! in a flattened map: decoding and re-encoding an object is the identity, and nothing the
//! provider does not manage is dropped. Status-side fields (never written) default leniently.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use kube::core::DynamicResourceScope;
pub use kube::core::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;

/// A JSON object: the parts of a Kargo object the provider passes through without
/// interpreting them.
pub type JsonObject = serde_json::Map<String, Json>;

/// The API group every Kargo kind belongs to.
pub const KARGO_GROUP: &str = "kargo.akuity.io";
/// The only served version of the Kargo API.
pub const KARGO_VERSION: &str = "v1alpha1";

/// The kinds the provider reads and writes. The API coordinates are fixed, so no discovery
/// is needed (and planning never has to reach the cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Project,
    ProjectConfig,
    Warehouse,
    Stage,
    Freight,
    Promotion,
    PromotionTask,
    ClusterPromotionTask,
    /// The core `v1` Namespace.
    Namespace,
    /// The core `v1` Secret (read only, for Kargo's Git credentials).
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Project,
        Kind::ProjectConfig,
        Kind::Warehouse,
        Kind::Stage,
        Kind::Freight,
        Kind::Promotion,
        Kind::PromotionTask,
        Kind::ClusterPromotionTask,
        Kind::Namespace,
        Kind::Secret,
    ];

    pub const fn group(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Secret => "",
            _ => KARGO_GROUP,
        }
    }

    pub const fn version(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Secret => "v1",
            _ => KARGO_VERSION,
        }
    }

    /// The `apiVersion` field of objects of this kind.
    pub const fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Secret => "v1",
            _ => "kargo.akuity.io/v1alpha1",
        }
    }

    pub const fn kind(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::ProjectConfig => "ProjectConfig",
            Kind::Warehouse => "Warehouse",
            Kind::Stage => "Stage",
            Kind::Freight => "Freight",
            Kind::Promotion => "Promotion",
            Kind::PromotionTask => "PromotionTask",
            Kind::ClusterPromotionTask => "ClusterPromotionTask",
            Kind::Namespace => "Namespace",
            Kind::Secret => "Secret",
        }
    }

    /// The resource name in URLs.
    pub const fn plural(self) -> &'static str {
        match self {
            Kind::Project => "projects",
            Kind::ProjectConfig => "projectconfigs",
            Kind::Warehouse => "warehouses",
            Kind::Stage => "stages",
            Kind::Freight => "freights",
            Kind::Promotion => "promotions",
            Kind::PromotionTask => "promotiontasks",
            Kind::ClusterPromotionTask => "clusterpromotiontasks",
            Kind::Namespace => "namespaces",
            Kind::Secret => "secrets",
        }
    }

    /// Project, ClusterPromotionTask and Namespace are cluster-scoped; the rest live in a
    /// project's namespace.
    pub const fn namespaced(self) -> bool {
        !matches!(
            self,
            Kind::Project | Kind::ClusterPromotionTask | Kind::Namespace
        )
    }

    /// The URL path of the collection of this kind (in `namespace` for namespaced kinds).
    pub fn url_path(self, namespace: Option<&str>) -> String {
        let root = if self.group().is_empty() {
            "/api".to_string()
        } else {
            format!("/apis/{}", self.group())
        };
        match namespace {
            Some(ns) => format!(
                "{root}/{}/namespaces/{ns}/{}",
                self.version(),
                self.plural()
            ),
            None => format!("{root}/{}/{}", self.version(), self.plural()),
        }
    }

    /// `Stage "demo/dev"` or `Project "demo"`: how messages name one object.
    pub fn describe(self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) => format!("{} \"{ns}/{name}\"", self.kind()),
            None => format!("{} \"{name}\"", self.kind()),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// A Kargo (or core) object kind the client reads and writes, decoded as `Self`.
pub trait Object:
    kube::Resource<DynamicType = (), Scope = DynamicResourceScope>
    + Serialize
    + DeserializeOwned
    + Clone
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;

    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta {
        self.meta()
    }

    /// `metadata.name` (empty when unset).
    fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`.
    fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }

    /// `metadata.resourceVersion`.
    fn resource_version(&self) -> Option<&str> {
        self.meta().resource_version.as_deref()
    }

    /// Deletion has been requested (finalizers may keep the object around for a while).
    fn is_terminating(&self) -> bool {
        self.meta().deletion_timestamp.is_some()
    }

    /// How messages name this object, e.g. `Stage "demo/dev"`.
    fn describe(&self) -> String {
        Self::KIND.describe(self.namespace(), self.name())
    }
}

/// Reads `json` (an object written for Kargo, e.g. from a configuration) as a `K`.
pub fn decode<K: Object>(json: Json) -> super::Result<K> {
    serde_json::from_value(json)
        .map_err(|e| super::Error::Other(format!("the object is not a valid {}: {e}", K::KIND)))
}

macro_rules! object {
    ($ty:ident) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = DynamicResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(Kind::$ty.kind())
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(Kind::$ty.group())
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(Kind::$ty.version())
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(Kind::$ty.plural())
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl Object for $ty {
            const KIND: Kind = Kind::$ty;
        }
    };
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    value == &T::default()
}

/// Reads an optional string, treating `""` (how Go's `omitempty` fields sometimes arrive) as
/// absent.
fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// Reads a value whose `null` means its default (Go marshals empty slices and maps as null).
fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One `status.conditions` entry (`metav1.Condition`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// The condition of type `type_` among `conditions`.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// A Kargo project (cluster-scoped). It has no spec in Kargo v1.7 and newer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Project {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: ProjectStatus,
}
object!(Project);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectStatus {
    #[serde(default, deserialize_with = "or_default")]
    pub conditions: Vec<Condition>,
}

impl Project {
    /// Kargo reports the project `Ready`.
    pub fn is_ready(&self) -> bool {
        condition(&self.status.conditions, "Ready").is_some_and(Condition::is_true)
    }
}

/// A project's ProjectConfig (named after the project). The provider converts its spec
/// with its configuration schema, so the spec stays JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectConfig {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: JsonObject,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: ProjectConfigStatus,
}
object!(ProjectConfig);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectConfigStatus {
    #[serde(default, deserialize_with = "or_default")]
    pub conditions: Vec<Condition>,
    #[serde(default, deserialize_with = "or_default")]
    pub webhook_receivers: Vec<WebhookReceiverStatus>,
}

/// A webhook receiver as Kargo publishes it in the ProjectConfig's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookReceiverStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub url: String,
}

/// A Warehouse: subscriptions to artifacts, from which Kargo builds Freight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Warehouse {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WarehouseSpec,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: WarehouseStatus,
}
object!(Warehouse);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WarehouseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Vec<Subscription>>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

/// One subscription: exactly one of `image`, `git`, `chart` or a generic kind (kept in
/// `rest`, as are unknown keys Kargo stores without reading).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<RepoSubscription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<RepoSubscription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<RepoSubscription>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

/// The parts of an image, Git or chart subscription the provider reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoSubscription {
    #[serde(rename = "repoURL", default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_semvers: Option<bool>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseStatus {
    #[serde(default, deserialize_with = "or_default")]
    pub conditions: Vec<Condition>,
    /// The newest Freight this Warehouse's discovery produced.
    #[serde(
        rename = "lastFreightID",
        default,
        deserialize_with = "non_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_freight_id: Option<String>,
    /// Discovered images, commits and charts, passed through to the data source as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_artifacts: Option<Json>,
}

impl Warehouse {
    /// The image (`"image"`) or Git (`"git"`) subscription to `repo_url`.
    pub fn subscription(&self, kind: &str, repo_url: &str) -> Option<&RepoSubscription> {
        self.spec
            .subscriptions
            .iter()
            .flatten()
            .filter_map(|s| match kind {
                "image" => s.image.as_ref(),
                "git" => s.git.as_ref(),
                "chart" => s.chart.as_ref(),
                _ => None,
            })
            .find(|s| s.repo_url.as_deref() == Some(repo_url))
    }
}

/// A Stage: which freight it requests and from where, and how it promotes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: StageSpec,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: StageStatus,
}
object!(Stage);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_freight: Option<Vec<FreightRequest>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_template: Option<PromotionTemplate>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

/// One `spec.requestedFreight` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FreightRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<FreightSources>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreightSources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<String>>,
    /// A Go duration, e.g. `1h0m0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_soak_time: Option<String>,
    /// `All`, `OneOf` or `""` (OneOf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_options: Option<AutoPromotionOptions>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoPromotionOptions {
    /// `NewestFreight` (the default) or `MatchUpstream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_policy: Option<String>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromotionTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PromotionTemplateSpec>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromotionTemplateSpec {
    /// The promotion steps, as JSON: the provider converts them with its configuration schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Json>>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    #[serde(default, deserialize_with = "or_default")]
    pub conditions: Vec<Condition>,
    /// Newest first; the current freight is the first entry's.
    #[serde(default, deserialize_with = "or_default")]
    pub freight_history: Vec<FreightCollection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promotion: Option<PromotionReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_promotion: Option<PromotionReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Kargo v1.11+: origins (`Warehouse/<name>`) whose auto-promotion a user's promotion of
    /// freight other than the auto-promotion candidate has paused.
    #[serde(default, deserialize_with = "or_default")]
    pub auto_promotion_holds: BTreeMap<String, AutoPromotionHold>,
}

/// A value of `status.autoPromotionHolds`: the promotion that placed the hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoPromotionHold {
    #[serde(default)]
    pub freight_name: String,
    #[serde(default)]
    pub origin: Origin,
    #[serde(default, deserialize_with = "non_empty")]
    pub promotion_name: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub actor: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub created_at: Option<String>,
}

/// The freight a stage held at one time, by origin key (`Warehouse/<name>`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FreightCollection {
    #[serde(default)]
    pub id: String,
    #[serde(default, deserialize_with = "or_default")]
    pub items: BTreeMap<String, FreightReference>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `Healthy`, `Unhealthy`, `Progressing`, `Unknown` or `NotApplicable`.
    #[serde(default, deserialize_with = "non_empty")]
    pub status: Option<String>,
}

/// `status.lastPromotion` / `status.currentPromotion` of a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReference {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<FreightReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PromotionStatus>,
    #[serde(default, deserialize_with = "non_empty")]
    pub finished_at: Option<String>,
}

/// Where freight originates: always a Warehouse in Kargo v1. An absent `kind` reads as
/// `Warehouse`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Origin {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

impl Origin {
    pub fn warehouse(name: impl Into<String>) -> Origin {
        Origin {
            kind: "Warehouse".to_string(),
            name: name.into(),
        }
    }

    /// The kind, `Warehouse` when unset.
    pub fn kind(&self) -> &str {
        if self.kind.is_empty() {
            "Warehouse"
        } else {
            &self.kind
        }
    }

    /// `Warehouse/<name>`, the key Kargo uses in freight collections.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind(), self.name)
    }
}

impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.name == other.name
    }
}

impl Eq for Origin {}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind().to_lowercase(), self.name)
    }
}

/// A container image in a freight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    #[serde(default, deserialize_with = "non_empty")]
    pub tag: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub digest: Option<String>,
}

/// A Git commit in a freight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    #[serde(default, deserialize_with = "non_empty")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub tag: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub branch: Option<String>,
}

/// A Helm chart in a freight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    #[serde(default, deserialize_with = "non_empty")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub version: Option<String>,
}

/// The artifacts a freight carries (a Freight object's top-level fields, or a freight
/// reference's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifacts {
    #[serde(default, deserialize_with = "or_default")]
    pub images: Vec<Image>,
    #[serde(default, deserialize_with = "or_default")]
    pub commits: Vec<Commit>,
    #[serde(default, deserialize_with = "or_default")]
    pub charts: Vec<Chart>,
}

/// A freight as Stage and Promotion statuses refer to it: name, origin and artifacts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FreightReference {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub origin: Origin,
    #[serde(flatten)]
    pub artifacts: Artifacts,
}

/// The label Kargo mirrors a Freight's alias into.
pub const ALIAS_LABEL: &str = "kargo.akuity.io/alias";

/// A Freight: a set of artifacts from one warehouse. Its fields sit at the top level (no
/// `spec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Freight {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "non_empty")]
    pub alias: Option<String>,
    #[serde(default)]
    pub origin: Origin,
    #[serde(flatten)]
    pub artifacts: Artifacts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: FreightStatus,
}
object!(Freight);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreightStatus {
    /// Stage → when and for how long the freight was verified there.
    #[serde(default, deserialize_with = "or_default")]
    pub verified_in: BTreeMap<String, VerifiedStage>,
    /// Stage → when the freight was approved for it.
    #[serde(default, deserialize_with = "or_default")]
    pub approved_for: BTreeMap<String, ApprovedStage>,
    /// Stage → since when the stage has been using the freight.
    #[serde(default, deserialize_with = "or_default")]
    pub currently_in: BTreeMap<String, CurrentStage>,
}

/// `status.verifiedIn[<stage>]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedStage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Timestamp>,
    /// The longest completed stay in the stage after verification (a Go duration).
    #[serde(default, deserialize_with = "non_empty")]
    pub longest_soak: Option<String>,
}

/// `status.approvedFor[<stage>]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedStage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Timestamp>,
}

/// `status.currentlyIn[<stage>]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrentStage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

/// A Promotion: moving one freight into one stage. Kargo generates its name and steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PromotionSpec,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: PromotionStatus,
}
object!(Promotion);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromotionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<String>,
    #[serde(flatten)]
    pub rest: JsonObject,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Errored` or `Aborted`.
    #[serde(default, deserialize_with = "non_empty")]
    pub phase: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub started_at: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub finished_at: Option<String>,
    /// The freight promoted (Kargo's copy, which outlives a garbage-collected Freight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<FreightReference>,
    #[serde(default, deserialize_with = "or_default")]
    pub step_execution_metadata: Vec<StepExecution>,
}

/// How one promotion step ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepExecution {
    #[serde(default, deserialize_with = "non_empty")]
    pub alias: Option<String>,
    /// `Running`, `Succeeded`, `Failed`, `Errored`, `Aborted` or `Skipped`.
    #[serde(default, deserialize_with = "non_empty")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub message: Option<String>,
}

impl Promotion {
    /// `status.phase`.
    pub fn phase(&self) -> Option<&str> {
        self.status.phase.as_deref()
    }

    /// The phase is final: `Succeeded`, `Failed`, `Errored` or `Aborted`.
    pub fn is_terminal(&self) -> bool {
        self.phase().is_some_and(is_terminal_phase)
    }
}

/// Whether a promotion in `phase` has finished.
pub fn is_terminal_phase(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Errored" | "Aborted")
}

/// A project's PromotionTask: reusable promotion steps. The provider converts its spec with
/// its configuration schema, so the spec stays JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromotionTask {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: JsonObject,
}
object!(PromotionTask);

/// A ClusterPromotionTask: promotion steps shared by every project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterPromotionTask {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: JsonObject,
}
object!(ClusterPromotionTask);

/// A core Namespace, as far as a project's namespace matters: its labels and finalizers
/// (its status, `Active` or `Terminating`, only for messages).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Json>,
}
object!(Namespace);

/// A core Secret as the promotion preview reads Kargo's Git credentials: its `data`
/// (base64, as the API serves it). Its `Debug` output names the keys, never the values.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "or_default")]
    pub data: std::collections::BTreeMap<String, String>,
}
object!(Secret);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("metadata", &self.metadata)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secret {
    /// The decoded value of `key`, when present and valid base64 UTF-8.
    pub fn value(&self, key: &str) -> Option<String> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.data.get(key)?)
            .ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// A kind whose objects are a `spec` plus metadata, written whole by server-side apply.
pub trait WithSpec: Object + Default {
    type Spec: Serialize + DeserializeOwned;
    fn spec(&self) -> &Self::Spec;
    fn spec_mut(&mut self) -> &mut Self::Spec;
}

macro_rules! with_spec {
    ($ty:ident, $spec:ty) => {
        impl WithSpec for $ty {
            type Spec = $spec;
            fn spec(&self) -> &$spec {
                &self.spec
            }
            fn spec_mut(&mut self) -> &mut $spec {
                &mut self.spec
            }
        }
    };
}

with_spec!(ProjectConfig, JsonObject);
with_spec!(Warehouse, WarehouseSpec);
with_spec!(Stage, StageSpec);
with_spec!(PromotionTask, JsonObject);
with_spec!(ClusterPromotionTask, JsonObject);

/// Objects written as JSON in tests, the way the cluster returns them.
#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::Value as Json;

    use super::{Freight, Stage};

    /// A Freight from its JSON; a top-level `name` (as references have it) is its name.
    pub fn freight(mut j: Json) -> Freight {
        if let Some(name) = j.as_object_mut().and_then(|o| o.remove("name")) {
            j["metadata"]["name"] = name;
        }
        serde_json::from_value(j).unwrap()
    }

    pub fn stage(j: Json) -> Stage {
        serde_json::from_value(j).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Decoding and re-encoding must give back exactly what was decoded: the provider
    /// writes specs that pass through these types.
    fn round_trips<T: Object>(object: Json) {
        let typed: T = serde_json::from_value(object.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), object);
    }

    #[test]
    fn specs_round_trip_with_fields_the_types_do_not_model() {
        round_trips::<Warehouse>(json!({
            "metadata": {"name": "w", "namespace": "p", "labels": {"a": "b"}},
            "spec": {
                "interval": "5m0s",
                "future": {"x": [1, 2.5, null]},
                "subscriptions": [
                    {"image": {"repoURL": "ghcr.io/acme/app", "strictSemvers": false,
                               "allowTagsRegexes": [], "discoveryLimit": 20}},
                    {"git": {"repoURL": "https://github.com/acme/cfg", "unknownKey": true}},
                    {"chart": {"repoURL": "oci://ghcr.io/acme/charts/app"}},
                    {"s3": {"name": "bucket", "config": {"region": "eu"}}},
                ],
            },
        }));
        round_trips::<Stage>(json!({
            "metadata": {"name": "dev", "namespace": "p"},
            "spec": {
                "shard": "",
                "vars": [{"name": "a", "value": "b"}],
                "requestedFreight": [
                    {"origin": {"kind": "Warehouse", "name": "w"},
                     "sources": {"direct": false, "stages": [], "requiredSoakTime": "1h",
                                 "availabilityStrategy": "",
                                 "autoPromotionOptions": {"selectionPolicy": "MatchUpstream", "x": 1}}},
                    {"origin": {"name": "v"}, "sources": {"direct": true}, "extra": {}},
                ],
                "promotionTemplate": {"spec": {
                    "vars": [],
                    "steps": [{"uses": "git-clone", "config": {"repoURL": "x", "n": 1}}],
                }},
                "verification": {"analysisTemplates": [{"name": "t"}]},
            },
        }));
        round_trips::<Stage>(json!({"metadata": {"name": "empty"}, "spec": {}}));
        round_trips::<PromotionTask>(json!({
            "metadata": {"name": "t", "namespace": "p"},
            "spec": {"vars": [{"name": "x"}], "steps": [{"uses": "http"}]},
        }));
        round_trips::<ProjectConfig>(json!({
            "metadata": {"name": "p", "namespace": "p"},
            "spec": {"promotionPolicies": [{"stageSelector": {"name": "dev"}, "autoPromotionEnabled": true}]},
        }));
        round_trips::<Project>(json!({"metadata": {"name": "p", "annotations": {"x": "y"}}}));
        round_trips::<Promotion>(json!({
            "metadata": {"generateName": "dev-"},
            "spec": {"stage": "dev", "freight": "abc"},
        }));
    }

    #[test]
    fn statuses_read_what_kargo_reports() {
        let stage: Stage = serde_json::from_value(json!({
            "metadata": {"name": "prod"},
            "status": {
                "freightHistory": [{"id": "x", "items": {
                    "Warehouse/api": {"name": "f-api", "origin": {"kind": "Warehouse", "name": "api"},
                                      "images": [{"repoURL": "ghcr.io/acme/api", "tag": "1.4.0", "digest": ""}],
                                      "commits": null},
                }}],
                "lastPromotion": {"name": "prod.01", "status": {"phase": "Succeeded"},
                                  "freight": {"name": "f-api"}, "finishedAt": "2025-01-01T00:00:00Z"},
                "health": {"status": "Healthy"},
                "autoPromotionEnabled": true,
                "conditions": null,
            },
        }))
        .unwrap();
        let current = &stage.status.freight_history[0].items["Warehouse/api"];
        assert_eq!(current.artifacts.images[0].tag.as_deref(), Some("1.4.0"));
        assert_eq!(
            current.artifacts.images[0].digest, None,
            "empty reads as absent"
        );
        assert!(current.artifacts.commits.is_empty(), "null reads as empty");
        let last = stage.status.last_promotion.as_ref().unwrap();
        assert_eq!(
            last.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded")
        );
        assert_eq!(
            stage.status.health.unwrap().status.as_deref(),
            Some("Healthy")
        );

        let project: Project = serde_json::from_value(json!({"metadata": {"name": "p"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Synced"}]}}))
        .unwrap();
        assert!(project.is_ready());
        assert!(!Project::default().is_ready());

        let warehouse: Warehouse = serde_json::from_value(json!({"metadata": {"name": "w"},
            "spec": {"subscriptions": [
                {"git": {"repoURL": "ghcr.io/acme/app", "strictSemvers": false}},
                {"image": {"repoURL": "ghcr.io/acme/app"}},
            ]},
            "status": {"lastFreightID": "abc"}}))
        .unwrap();
        assert_eq!(warehouse.status.last_freight_id.as_deref(), Some("abc"));
        let image = warehouse.subscription("image", "ghcr.io/acme/app").unwrap();
        assert_eq!(image.strict_semvers, None);
        let git = warehouse.subscription("git", "ghcr.io/acme/app").unwrap();
        assert_eq!(git.strict_semvers, Some(false));
    }

    #[test]
    fn origins_without_a_kind_are_warehouses() {
        let a: Origin = serde_json::from_value(json!({"name": "app"})).unwrap();
        assert_eq!(a, Origin::warehouse("app"));
        assert_eq!(a.key(), "Warehouse/app");
        assert_eq!(a.to_string(), "warehouse \"app\"");
        assert_eq!(serde_json::to_value(&a).unwrap(), json!({"name": "app"}));
        assert_ne!(a, Origin::warehouse("other"));
    }

    #[test]
    fn kinds_map_to_fixed_api_coordinates() {
        assert_eq!(
            Kind::Stage.url_path(Some("demo")),
            "/apis/kargo.akuity.io/v1alpha1/namespaces/demo/stages"
        );
        assert_eq!(Kind::Namespace.url_path(None), "/api/v1/namespaces");
        assert_eq!(
            <Stage as kube::Resource>::url_path(&(), Some("demo")),
            Kind::Stage.url_path(Some("demo"))
        );
        let cluster_scoped: Vec<Kind> = Kind::ALL.into_iter().filter(|k| !k.namespaced()).collect();
        assert_eq!(
            cluster_scoped,
            vec![Kind::Project, Kind::ClusterPromotionTask, Kind::Namespace]
        );
        assert_eq!(Kind::Freight.plural(), "freights");
        assert_eq!(Kind::ClusterPromotionTask.plural(), "clusterpromotiontasks");
        assert_eq!(
            Kind::Stage.describe(Some("demo"), "dev"),
            "Stage \"demo/dev\""
        );
        assert_eq!(Kind::Project.describe(None, "demo"), "Project \"demo\"");
    }
}
