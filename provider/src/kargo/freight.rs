//! Freight as Kargo reasons about it: where it was verified, approved and soaked, whether a
//! Stage may take it (Kargo's availability rules, explained when not) and choosing freight.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use super::semver::{Constraint, parse_version};
use super::types::{
    ALIAS_LABEL, AutoPromotionHold, Freight, FreightReference, FreightRequest, Object as _,
    ObjectMeta, Origin, PromotionReference, Stage, Warehouse,
};
use crate::duration::{format_go_duration, parse_go_duration};

impl Freight {
    /// The freight a reference (from a Stage's or Promotion's status) names, as far as the
    /// reference tells: name, origin and artifacts, no alias and no status.
    pub fn from_reference(reference: &FreightReference) -> Freight {
        Freight {
            metadata: ObjectMeta {
                name: Some(reference.name.clone()),
                ..ObjectMeta::default()
            },
            origin: reference.origin.clone(),
            artifacts: reference.artifacts.clone(),
            ..Freight::default()
        }
    }

    /// The alias, from the `alias` field or else the label Kargo mirrors it into.
    pub fn alias(&self) -> Option<&str> {
        self.alias.as_deref().or_else(|| {
            self.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(ALIAS_LABEL))
                .map(String::as_str)
                .filter(|a| !a.is_empty())
        })
    }

    /// When the freight was created.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.metadata.creation_timestamp.as_ref().map(|t| t.0)
    }

    /// `discoveredAt`, falling back to the creation time: what Kargo orders freight by.
    pub fn effective_discovered_at(&self) -> Option<Timestamp> {
        self.discovered_at.or_else(|| self.created_at())
    }

    /// Kargo's order of freight, newest first: the later [`effective_discovered_at`], then
    /// the greater name. For `sort_by`, and `min_by` to find the newest.
    ///
    /// [`effective_discovered_at`]: Freight::effective_discovered_at
    pub fn cmp_newest_first(&self, other: &Freight) -> Ordering {
        other
            .effective_discovered_at()
            .cmp(&self.effective_discovered_at())
            .then_with(|| other.name().cmp(self.name()))
    }

    pub fn is_verified_in(&self, stage: &str) -> bool {
        self.status.verified_in.contains_key(stage)
    }

    pub fn is_approved_for(&self, stage: &str) -> bool {
        self.status.approved_for.contains_key(stage)
    }

    pub fn is_currently_in(&self, stage: &str) -> bool {
        self.status.currently_in.contains_key(stage)
    }

    /// When the freight was approved for `stage`, as Kargo recorded it.
    pub fn approved_at(&self, stage: &str) -> Option<Timestamp> {
        self.status.approved_for.get(stage)?.approved_at
    }

    /// How long the freight has soaked in `stage` at `now`, as Kargo counts it: zero unless
    /// verified there, else the longer of its longest completed stay and its current one.
    pub fn longest_soak(&self, stage: &str, now: Timestamp) -> Duration {
        let Some(verified) = self.status.verified_in.get(stage) else {
            return Duration::ZERO;
        };
        let completed = verified
            .longest_soak
            .as_deref()
            .and_then(parse_go_duration)
            .unwrap_or_default();
        let current = self
            .status
            .currently_in
            .get(stage)
            .and_then(|c| c.since)
            .and_then(|since| Duration::try_from(now.duration_since(since)).ok())
            .unwrap_or_default();
        completed.max(current)
    }

    /// `"<name>"` or `"<name>" (alias "<alias>")`, how messages name the freight.
    pub fn describe(&self) -> String {
        match self.alias() {
            Some(alias) => format!("freight {:?} (alias {alias:?})", self.name()),
            None => format!("freight {:?}", self.name()),
        }
    }

    /// The version of `artifact` this freight carries, when it carries that artifact.
    pub fn version_of(&self, artifact: &Artifact) -> Option<Option<String>> {
        let a = &self.artifacts;
        match artifact {
            Artifact::Image { repo_url } => a
                .images
                .iter()
                .find(|i| &i.repo_url == repo_url)
                .map(|i| i.tag.clone()),
            Artifact::Git { repo_url } => a
                .commits
                .iter()
                .find(|c| &c.repo_url == repo_url)
                .map(|c| c.tag.clone()),
            Artifact::Chart { repo_url, name } => a
                .charts
                .iter()
                .find(|c| &c.repo_url == repo_url && (name.is_none() || &c.name == name))
                .map(|c| c.version.clone()),
        }
    }
}

/// How a Stage with several upstream stages decides that freight passed them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AvailabilityStrategy {
    /// Verified (and soaked) in any one upstream stage. Kargo's default.
    #[default]
    OneOf,
    /// Verified (and soaked) in every upstream stage.
    All,
}

/// How auto-promotion picks freight for one requested origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SelectionPolicy {
    #[default]
    NewestFreight,
    /// What the single upstream stage currently holds.
    MatchUpstream,
}

impl FreightRequest {
    /// The requested origin (a warehouse without a name when unset).
    pub fn origin(&self) -> Origin {
        self.origin.clone().unwrap_or_default()
    }

    /// Whether freight comes straight from the warehouse.
    pub fn direct(&self) -> bool {
        self.sources.as_ref().and_then(|s| s.direct) == Some(true)
    }

    /// The upstream stages freight passes through.
    pub fn upstream(&self) -> &[String] {
        self.sources
            .as_ref()
            .and_then(|s| s.stages.as_deref())
            .unwrap_or_default()
    }

    /// `requiredSoakTime`, when set to more than zero.
    pub fn required_soak_time(&self) -> Option<Duration> {
        self.sources
            .as_ref()?
            .required_soak_time
            .as_deref()
            .and_then(parse_go_duration)
            .filter(|d| !d.is_zero())
    }

    pub fn availability_strategy(&self) -> AvailabilityStrategy {
        match self
            .sources
            .as_ref()
            .and_then(|s| s.availability_strategy.as_deref())
        {
            Some("All") => AvailabilityStrategy::All,
            _ => AvailabilityStrategy::OneOf,
        }
    }

    pub fn selection_policy(&self) -> SelectionPolicy {
        match self
            .sources
            .as_ref()
            .and_then(|s| s.auto_promotion_options.as_ref())
            .and_then(|o| o.selection_policy.as_deref())
        {
            Some("MatchUpstream") => SelectionPolicy::MatchUpstream,
            _ => SelectionPolicy::NewestFreight,
        }
    }
}

impl PromotionReference {
    /// The promotion's phase, when Kargo has recorded it.
    pub fn phase(&self) -> Option<&str> {
        self.status.as_ref()?.phase.as_deref()
    }

    /// The name of the freight promoted.
    pub fn freight_name(&self) -> Option<&str> {
        self.freight.as_ref().map(|f| f.name.as_str())
    }
}

/// What the provider reads of a Stage to reason about freight.
impl Stage {
    /// `spec.requestedFreight`.
    pub fn requested_freight(&self) -> &[FreightRequest] {
        self.spec.requested_freight.as_deref().unwrap_or_default()
    }

    /// False for a control-flow stage, which cannot be promoted to.
    pub fn has_promotion_steps(&self) -> bool {
        self.spec
            .promotion_template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.steps.as_ref())
            .is_some_and(|s| !s.is_empty())
    }

    /// The request for freight from `origin`, if the stage makes one.
    pub fn request_for(&self, origin: &Origin) -> Option<&FreightRequest> {
        self.requested_freight()
            .iter()
            .find(|r| r.origin.as_ref() == Some(origin))
    }

    /// The freight the stage holds now (`status.freightHistory[0]`), in the order of
    /// `requested_freight` (origins no longer requested last). Freight references carry no
    /// alias or status.
    pub fn current_freight(&self) -> Vec<Freight> {
        let Some(current) = self.status.freight_history.first() else {
            return Vec::new();
        };
        let requested = self.requested_freight();
        let rank = |f: &FreightReference| {
            requested
                .iter()
                .position(|r| r.origin.as_ref() == Some(&f.origin))
                .unwrap_or(usize::MAX)
        };
        let mut held: Vec<&FreightReference> = current
            .items
            .values()
            .filter(|r| !r.name.is_empty())
            .collect();
        held.sort_by_key(|r| rank(r));
        held.into_iter().map(Freight::from_reference).collect()
    }

    /// The auto-promotion hold Kargo keeps on `origin` for the stage, if any.
    pub fn hold_for(&self, origin: &Origin) -> Option<&AutoPromotionHold> {
        self.status.auto_promotion_holds.get(&origin.key())
    }

    /// The freight the stage holds from `origin`.
    pub fn current_for(&self, origin: &Origin) -> Option<Freight> {
        self.current_freight()
            .into_iter()
            .find(|f| &f.origin == origin)
    }

    /// The freight of the first requested origin (or, failing that, any): what a single
    /// "current freight" of the stage means.
    pub fn primary_current(&self) -> Option<Freight> {
        self.current_freight().into_iter().next()
    }

    /// Whether the stage currently holds the freight named `name`.
    pub fn holds(&self, name: &str) -> bool {
        self.status
            .freight_history
            .first()
            .is_some_and(|c| c.items.values().any(|r| r.name == name))
    }

    /// Whether the stage has ever held the freight named `name` (as far as its history
    /// goes back).
    pub fn has_held(&self, name: &str) -> bool {
        self.status
            .freight_history
            .iter()
            .flat_map(|c| c.items.values())
            .any(|r| r.name == name)
    }

    fn requested_origins(&self) -> String {
        let origins: Vec<String> = self
            .requested_freight()
            .iter()
            .map(|r| r.origin().to_string())
            .collect();
        if origins.is_empty() {
            "no warehouse at all".to_string()
        } else {
            origins.join(", ")
        }
    }
}

/// Whether a stage may take a freight now, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// A plain-language explanation, naming the stages, times and remedies involved.
    Unavailable(String),
}

impl Availability {
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available)
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Availability::Available => None,
            Availability::Unavailable(r) => Some(r),
        }
    }
}

/// Seconds are what the cluster's clock resolves; rounding up never says "0s remaining".
fn whole_seconds_up(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs)
}

/// Why `upstream` does not (yet) qualify the freight, or `None` when it does.
fn upstream_shortfall(
    freight: &Freight,
    upstream: &str,
    required: Option<Duration>,
    now: Timestamp,
) -> Option<String> {
    if !freight.is_verified_in(upstream) {
        return Some(format!("it has not been verified in stage {upstream:?}"));
    }
    let required = required?;
    let soaked = freight.longest_soak(upstream, now);
    if soaked >= required {
        return None;
    }
    let remaining = whole_seconds_up(required - soaked);
    Some(format!(
        "it has not soaked long enough in stage {upstream:?}: {} remaining of the required soak time of {}",
        format_go_duration(remaining),
        format_go_duration(required)
    ))
}

/// Kargo's `Stage.IsFreightAvailable`, explained: the freight must belong to the stage's
/// project and come from an origin the stage requests, and then be approved for the stage,
/// requested directly from its warehouse, or verified (and soaked for `required_soak_time`)
/// in one (`OneOf`) or all (`All`) upstream stages. A control-flow stage takes nothing.
/// `now` must be the cluster's clock.
pub fn availability(stage: &Stage, freight: &Freight, now: Timestamp) -> Availability {
    let who = freight.describe();
    let stage_name = stage.name();
    let stage_namespace = stage.namespace().unwrap_or_default();
    let unavailable = |why: String| Availability::Unavailable(why);
    if !stage.has_promotion_steps() {
        return unavailable(format!(
            "Stage {:?} has no promotion steps: it is a control-flow stage, which only passes \
             freight on to the stages downstream of it and cannot be promoted to.",
            stage_name
        ));
    }
    if let Some(ns) = freight.namespace()
        && !stage_namespace.is_empty()
        && ns != stage_namespace
    {
        return unavailable(format!(
            "{who} belongs to project {ns:?}, not to project {stage_namespace:?} of stage \
             {stage_name:?}."
        ));
    }
    let Some(request) = stage.request_for(&freight.origin) else {
        return unavailable(format!(
            "{who} comes from {}, but stage {:?} requests freight only from {}.",
            freight.origin,
            stage_name,
            stage.requested_origins()
        ));
    };
    if freight.is_approved_for(stage_name) || request.direct() {
        return Availability::Available;
    }
    let approval = format!(
        "Freight approved for stage {:?} is available regardless (approve it with \
         kargo_freight_approval or `kargo approve`).",
        stage_name
    );
    let upstream = request.upstream();
    let strategy = request.availability_strategy();
    if upstream.is_empty() && strategy == AvailabilityStrategy::OneOf {
        return unavailable(format!(
            "{who} is not available to stage {:?}: the stage takes freight from {} neither \
             directly nor through upstream stages, so it needs an approval. {approval}",
            stage_name, freight.origin
        ));
    }
    let soak = request.required_soak_time();
    let shortfalls: Vec<String> = upstream
        .iter()
        .filter_map(|u| upstream_shortfall(freight, u, soak, now))
        .collect();
    let qualified = match strategy {
        AvailabilityStrategy::All => shortfalls.is_empty(),
        AvailabilityStrategy::OneOf => shortfalls.len() < upstream.len(),
    };
    if qualified {
        return Availability::Available;
    }
    let rule = match (strategy, upstream.len()) {
        (_, 1) => String::new(),
        (AvailabilityStrategy::All, _) => {
            " (it must pass every upstream stage: availability strategy All)".to_string()
        }
        (AvailabilityStrategy::OneOf, _) => {
            " (it must pass one of the upstream stages)".to_string()
        }
    };
    unavailable(format!(
        "{who} is not available to stage {:?}{rule}: {}. {approval}",
        stage_name,
        shortfalls.join("; ")
    ))
}

/// The artifact a [`Selector`] looks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Artifact {
    Image {
        repo_url: String,
    },
    Git {
        repo_url: String,
    },
    /// `name` is unset for OCI charts, whose repository URL names the chart.
    Chart {
        repo_url: String,
        name: Option<String>,
    },
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Artifact::Image { repo_url } => write!(f, "image {repo_url:?}"),
            Artifact::Git { repo_url } => write!(f, "Git repository {repo_url:?}"),
            Artifact::Chart {
                repo_url,
                name: Some(name),
            } => write!(f, "chart {name:?} from {repo_url:?}"),
            Artifact::Chart {
                repo_url,
                name: None,
            } => write!(f, "chart {repo_url:?}"),
        }
    }
}

/// "The newest freight from this warehouse whose artifact's version satisfies this".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub warehouse: String,
    pub artifact: Artifact,
    /// A semver constraint in Kargo's syntax on the artifact's version (image tag, commit
    /// tag, chart version). Without one every version counts, non-semver ones included.
    pub version_constraint: Option<String>,
    /// Count only freight the stage may take now.
    pub available_only: bool,
    /// Read versions as complete semantic versions only (see [`strict_semvers`]); with
    /// `false`, partial ones like `1.2` and `v1` count too.
    pub strict_semvers: bool,
}

/// Whether Kargo reads the versions of `artifact` strictly (only complete
/// `MAJOR.MINOR.PATCH` versions), given `warehouse` as the cluster returns it, when it could
/// be read.
///
/// Images and Git repositories follow the `strictSemvers` of the warehouse's subscription to
/// the same repository URL; when the field, the subscription or the warehouse is missing,
/// Kargo's default (strict) applies. Charts have no such field: Kargo reads the tags of OCI
/// repositories strictly and the versions in a classic repository's index leniently.
pub fn strict_semvers(artifact: &Artifact, warehouse: Option<&Warehouse>) -> bool {
    let (kind, repo_url) = match artifact {
        Artifact::Image { repo_url } => ("image", repo_url),
        Artifact::Git { repo_url } => ("git", repo_url),
        Artifact::Chart { repo_url, .. } => return repo_url.starts_with("oci://"),
    };
    warehouse
        .and_then(|w| w.subscription(kind, repo_url))
        .and_then(|s| s.strict_semvers)
        .unwrap_or(true)
}

impl Selector {
    /// The warehouse whose subscriptions decide how versions are read, when that matters:
    /// images and Git repositories (charts never need it).
    pub fn strictness_source(&self) -> Option<&str> {
        match self.artifact {
            Artifact::Chart { .. } => None,
            _ => Some(&self.warehouse),
        }
    }

    /// Sets [`Selector::strict_semvers`] from the warehouse the freight comes from (`None`
    /// when it could not be read: Kargo's default, strict, so a plan still resolves while
    /// the warehouse is being created).
    pub fn learn_strictness(&mut self, warehouse: Option<&Warehouse>) {
        self.strict_semvers = strict_semvers(&self.artifact, warehouse);
    }
}

/// Newest first: the higher semantic version (versions before non-versions), then the
/// newer discovery time, then the greater name (as Kargo breaks ties).
fn newest_first(
    a: &(Option<semver::Version>, &Freight),
    b: &(Option<semver::Version>, &Freight),
) -> Ordering {
    let by_version = match (&a.0, &b.0) {
        (Some(x), Some(y)) => y.cmp_precedence(x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_version.then_with(|| a.1.cmp_newest_first(b.1))
}

fn version_label(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(no version)".to_string())
}

/// Why [`search_selector`] found nothing.
#[derive(Debug)]
pub enum SelectorMiss<'a> {
    /// No freight matches the selector: what was searched for and what was found.
    NoMatch(String),
    /// Freight matches the selector, but all of it was rejected: the matches newest first,
    /// each with why it was rejected.
    Rejected {
        /// What the matches carry, e.g. `image "ghcr.io/acme/app" at a version matching "^1"`.
        what: String,
        rejected: Vec<(&'a Freight, String)>,
    },
}

/// The newest of `freights` (the project's) that matches `selector` and that `reject` does
/// not turn down; `reject` says why it turns freight down. The selector's `available_only`
/// is not consulted: availability is one such predicate (see [`resolve_selector`]).
pub fn search_selector<'a>(
    selector: &Selector,
    freights: &'a [Freight],
    reject: &dyn Fn(&Freight) -> Option<String>,
) -> std::result::Result<&'a Freight, SelectorMiss<'a>> {
    let origin = Origin::warehouse(&selector.warehouse);
    let constraint = selector
        .version_constraint
        .as_deref()
        .map(|c| Constraint::parse(c).map_err(|e| format!("version constraint {c:?} {e}")))
        .transpose()
        .map_err(SelectorMiss::NoMatch)?;
    let from_warehouse: Vec<&Freight> = freights.iter().filter(|f| f.origin == origin).collect();
    let with_artifact: Vec<(Option<String>, &Freight)> = from_warehouse
        .iter()
        .filter_map(|f| f.version_of(&selector.artifact).map(|v| (v, *f)))
        .collect();
    if with_artifact.is_empty() {
        return Err(SelectorMiss::NoMatch(if from_warehouse.is_empty() {
            format!("There is no freight from {origin} yet.")
        } else {
            format!(
                "None of the {} freight from {origin} carries {}.",
                from_warehouse.len(),
                selector.artifact
            )
        }));
    }
    let mut matching: Vec<(Option<semver::Version>, &Freight)> = with_artifact
        .iter()
        .filter_map(|(version, f)| {
            let parsed = version
                .as_deref()
                .and_then(|v| parse_version(v, selector.strict_semvers));
            match &constraint {
                None => Some((parsed, *f)),
                Some(c) => parsed.filter(|p| c.matches(p)).map(|p| (Some(p), *f)),
            }
        })
        .collect();
    if matching.is_empty() {
        let mut found: Vec<String> = with_artifact
            .iter()
            .map(|(v, _)| version_label(v))
            .collect();
        found.sort();
        found.dedup();
        // Partial versions left out by strict reading are the likely surprise: name them.
        let partial: Vec<&str> = found
            .iter()
            .map(String::as_str)
            .filter(|v| selector.strict_semvers && parse_version(v, false).is_some())
            .filter(|v| parse_version(v, true).is_none())
            .collect();
        let hint = if partial.is_empty() {
            String::new()
        } else {
            format!(
                " Versions are read strictly (the subscription's `strict_semvers`, true by \
                 default, or an OCI chart repository), so {} {} not counted.",
                partial.join(", "),
                if partial.len() == 1 { "is" } else { "are" }
            )
        };
        return Err(SelectorMiss::NoMatch(format!(
            "No freight from {origin} has {} at a version matching {:?}; the versions found are: {}.{hint}",
            selector.artifact,
            constraint
                .as_ref()
                .map(Constraint::as_str)
                .unwrap_or_default(),
            found.join(", ")
        )));
    }
    matching.sort_by(newest_first);
    let mut rejected = Vec::new();
    for (_, f) in &matching {
        match reject(f) {
            None => return Ok(f),
            Some(why) => rejected.push((*f, why)),
        }
    }
    let what = match &constraint {
        Some(c) => format!(
            "{} at a version matching {:?}",
            selector.artifact,
            c.as_str()
        ),
        None => selector.artifact.to_string(),
    };
    Err(SelectorMiss::Rejected { what, rejected })
}

/// The freight `selector` picks for `stage` among `freights` (the project's): with
/// `available_only`, the newest the stage may take now. The error says what was searched
/// for and what was found.
pub fn resolve_selector<'a>(
    selector: &Selector,
    freights: &'a [Freight],
    stage: &Stage,
    now: Timestamp,
) -> std::result::Result<&'a Freight, String> {
    let unavailable = |f: &Freight| match availability(stage, f, now) {
        Availability::Available => None,
        Availability::Unavailable(reason) => Some(reason),
    };
    let any = |_: &Freight| None;
    let reject: &dyn Fn(&Freight) -> Option<String> = if selector.available_only {
        &unavailable
    } else {
        &any
    };
    match search_selector(selector, freights, reject) {
        Ok(f) => Ok(f),
        Err(SelectorMiss::NoMatch(why)) => Err(why),
        Err(SelectorMiss::Rejected { what, rejected }) => {
            let origin = Origin::warehouse(&selector.warehouse);
            let (newest, newest_reason) = &rejected[0];
            Err(format!(
                "{} freight from {origin} {} {what}, but none of it is available to stage {:?}. \
                 The newest, {} ({}), is not: {newest_reason}",
                rejected.len(),
                if rejected.len() == 1 { "has" } else { "have" },
                stage.name(),
                newest.describe(),
                version_label(&newest.version_of(&selector.artifact).flatten()),
            ))
        }
    }
}

/// Kargo's own auto-promotion candidate for `stage` from warehouse `origin_warehouse`: the
/// newest freight from it available to the stage (with `MatchUpstream`, the one the single
/// upstream stage holds now).
pub fn auto_promotion_candidate<'a>(
    stage: &Stage,
    origin_warehouse: &str,
    freights: &'a [Freight],
    now: Timestamp,
) -> std::result::Result<&'a Freight, String> {
    let origin = Origin::warehouse(origin_warehouse);
    let Some(request) = stage.request_for(&origin) else {
        return Err(format!(
            "Stage {:?} does not request freight from {origin}; it requests freight from {}.",
            stage.name(),
            stage.requested_origins()
        ));
    };
    let upstream = match request.selection_policy() {
        SelectionPolicy::MatchUpstream if !request.direct() => request.upstream().first(),
        _ => None,
    };
    let mut candidates: Vec<&Freight> = freights
        .iter()
        .filter(|f| f.origin == origin)
        .filter(|f| availability(stage, f, now).is_available())
        .filter(|f| upstream.is_none_or(|u| f.is_currently_in(u)))
        .collect();
    if candidates.is_empty() {
        return Err(match upstream {
            Some(u) => format!(
                "No freight from {origin} is available to stage {:?} and in use by its upstream \
                 stage {u:?} (selection policy MatchUpstream).",
                stage.name()
            ),
            None => format!(
                "No freight from {origin} is available to stage {:?} yet.",
                stage.name()
            ),
        });
    }
    if upstream.is_some() && candidates.len() > 1 {
        return Err(format!(
            "Stage {:?} follows what its upstream stage holds (MatchUpstream), and that is \
             changing right now; plan again in a moment.",
            stage.name()
        ));
    }
    candidates.sort_by(|a, b| a.cmp_newest_first(b));
    Ok(candidates[0])
}

/// The kind of artifact a [`Change`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ArtifactKind {
    Image,
    Git,
    Chart,
}

impl ArtifactKind {
    /// `image`, `git` or `chart`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Image => "image",
            ArtifactKind::Git => "git",
            ArtifactKind::Chart => "chart",
        }
    }
}

/// One artifact that differs between two freights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ArtifactKind,
    pub repo_url: String,
    /// The chart name (charts only).
    pub name: Option<String>,
    /// The version before: tag (image; digest without one), commit tag or short ID, chart
    /// version. `None` when the artifact is new.
    pub from: Option<String>,
    /// The version after; `None` when the artifact is no longer there.
    pub to: Option<String>,
}

/// One artifact as compared by [`changes`]: identity, the version shown, the exact value.
struct Entry {
    kind: ArtifactKind,
    repo_url: String,
    name: Option<String>,
    label: Option<String>,
    exact: (Option<String>, Option<String>),
}

fn short_id(id: &str) -> String {
    id.chars().take(7).collect()
}

fn entries(f: &Freight) -> Vec<Entry> {
    let images = f.artifacts.images.iter().map(|i| Entry {
        kind: ArtifactKind::Image,
        repo_url: i.repo_url.clone(),
        name: None,
        label: i.tag.clone().or_else(|| i.digest.clone()),
        exact: (i.tag.clone(), i.digest.clone()),
    });
    let commits = f.artifacts.commits.iter().map(|c| Entry {
        kind: ArtifactKind::Git,
        repo_url: c.repo_url.clone(),
        name: None,
        label: c.tag.clone().or_else(|| c.id.as_deref().map(short_id)),
        exact: (c.tag.clone(), c.id.clone()),
    });
    let charts = f.artifacts.charts.iter().map(|c| Entry {
        kind: ArtifactKind::Chart,
        repo_url: c.repo_url.clone(),
        name: c.name.clone(),
        label: c.version.clone(),
        exact: (c.version.clone(), None),
    });
    images.chain(commits).chain(charts).collect()
}

/// What promoting `to` into a stage that holds `from` changes: one entry per artifact that
/// differs, in `to`'s order, then the artifacts `to` no longer carries. Unchanged
/// artifacts are left out.
pub fn changes(from: Option<&Freight>, to: &Freight) -> Vec<Change> {
    let before = from.map(entries).unwrap_or_default();
    let after = entries(to);
    let same =
        |a: &Entry, b: &Entry| a.kind == b.kind && a.repo_url == b.repo_url && a.name == b.name;
    let mut out = Vec::new();
    for a in &after {
        match before.iter().find(|b| same(a, b)) {
            Some(b) if b.exact == a.exact => {}
            Some(b) => {
                // A moved tag (same tag, new digest) still has to show as a change.
                let (from_label, to_label) = if b.label == a.label {
                    (
                        b.exact.1.clone().or(b.label.clone()),
                        a.exact.1.clone().or(a.label.clone()),
                    )
                } else {
                    (b.label.clone(), a.label.clone())
                };
                out.push(Change {
                    kind: a.kind,
                    repo_url: a.repo_url.clone(),
                    name: a.name.clone(),
                    from: from_label,
                    to: to_label,
                });
            }
            None => out.push(Change {
                kind: a.kind,
                repo_url: a.repo_url.clone(),
                name: a.name.clone(),
                from: None,
                to: a.label.clone(),
            }),
        }
    }
    for b in &before {
        if !after.iter().any(|a| same(a, b)) {
            out.push(Change {
                kind: b.kind,
                repo_url: b.repo_url.clone(),
                name: b.name.clone(),
                from: b.label.clone(),
                to: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::kargo::types::{ApprovedStage, CurrentStage, VerifiedStage};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2025-06-01T12:00:00Z";

    use crate::kargo::types::test_support::{freight, stage as stage_from};

    fn verified() -> VerifiedStage {
        VerifiedStage::default()
    }

    fn since(at: Option<&str>) -> CurrentStage {
        CurrentStage { since: at.map(ts) }
    }

    fn image_freight(name: &str, tag: &str, created: &str) -> Freight {
        freight(json!({
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
            "origin": {"kind": "Warehouse", "name": "app"},
            "images": [{"repoURL": "ghcr.io/acme/app", "tag": tag}],
        }))
    }

    fn stage(requested: Json) -> Stage {
        stage_from(json!({
            "metadata": {"name": "staging", "namespace": "shop"},
            "spec": {
                "requestedFreight": requested,
                "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone"}]}},
            },
        }))
    }

    fn reason(a: Availability) -> String {
        a.reason().expect("unavailable").to_string()
    }

    #[test]
    fn freight_parses_objects_and_references() {
        let f = freight(json!({
            "metadata": {"name": "f1", "namespace": "shop", "creationTimestamp": "2025-01-01T00:00:00Z",
                         "labels": {ALIAS_LABEL: "tall-fox"}},
            "origin": {"kind": "Warehouse", "name": "app"},
            "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0", "digest": "sha256:aa"}],
            "commits": [{"repoURL": "https://github.com/acme/cfg", "id": "deadbeefcafe"}],
            "charts": [{"repoURL": "oci://ghcr.io/acme/charts/app", "version": "2.0.0"}],
            "status": {
                "verifiedIn": {"dev": {"verifiedAt": "2025-01-02T00:00:00Z", "longestSoak": "1h0m0s"}},
                "approvedFor": {"prod": {"approvedAt": "2025-01-03T00:00:00Z"}},
                "currentlyIn": {"dev": {"since": "2025-01-02T00:00:00Z"}},
            },
        }));
        assert_eq!(
            f.alias(),
            Some("tall-fox"),
            "the label when there is no field"
        );
        assert_eq!(f.origin.key(), "Warehouse/app");
        assert_eq!(f.artifacts.images[0].digest.as_deref(), Some("sha256:aa"));
        assert_eq!(f.artifacts.commits[0].tag, None);
        assert_eq!(f.artifacts.charts[0].name, None);
        assert_eq!(
            f.longest_soak("dev", ts("2025-01-02T00:00:00Z")),
            Duration::from_secs(3600)
        );
        assert_eq!(f.approved_at("prod"), Some(ts("2025-01-03T00:00:00Z")));
        assert!(f.is_approved_for("prod") && !f.is_approved_for("dev"));
        assert!(f.is_currently_in("dev"));
        assert_eq!(f.created_at(), Some(ts("2025-01-01T00:00:00Z")));
        let reference: FreightReference = serde_json::from_value(
            json!({"name": "f2", "origin": {"kind": "Warehouse", "name": "app"},
                   "images": [{"repoURL": "ghcr.io/acme/app", "tag": "2.0.0"}]}),
        )
        .unwrap();
        let referenced = Freight::from_reference(&reference);
        assert_eq!(referenced.name(), "f2");
        assert_eq!(referenced.artifacts.images[0].tag.as_deref(), Some("2.0.0"));
        assert!(referenced.status.verified_in.is_empty() && referenced.alias().is_none());
    }

    #[test]
    fn soak_counts_the_current_stay_only_once_verified() {
        let mut f = image_freight("f", "1.0.0", "2025-01-01T00:00:00Z");
        f.status
            .currently_in
            .insert("dev".into(), since(Some("2025-06-01T11:50:00Z")));
        assert_eq!(
            f.longest_soak("dev", ts(NOW)),
            Duration::ZERO,
            "not verified"
        );
        f.status.verified_in.insert(
            "dev".into(),
            VerifiedStage {
                verified_at: None,
                longest_soak: Some("5m0s".into()),
            },
        );
        assert_eq!(f.longest_soak("dev", ts(NOW)), Duration::from_secs(600));
        f.status.currently_in.clear();
        assert_eq!(f.longest_soak("dev", ts(NOW)), Duration::from_secs(300));
    }

    #[test]
    fn direct_and_approved_freight_is_available() {
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}]),
        );
        let f = image_freight("f", "1.0.0", NOW);
        assert!(availability(&s, &f, ts(NOW)).is_available());
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"stages": ["dev"]}}]),
        );
        let mut f = image_freight("f", "1.0.0", NOW);
        assert!(!availability(&s, &f, ts(NOW)).is_available());
        f.status
            .approved_for
            .insert("staging".into(), ApprovedStage::default());
        assert!(availability(&s, &f, ts(NOW)).is_available());
    }

    #[test]
    fn unverified_freight_names_the_upstream_stage_and_the_approval_path() {
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"stages": ["dev"]}}]),
        );
        let f = image_freight("f", "1.0.0", NOW);
        let r = reason(availability(&s, &f, ts(NOW)));
        assert!(r.contains("has not been verified in stage \"dev\""), "{r}");
        assert!(r.contains("kargo_freight_approval"), "{r}");
        assert!(r.contains("stage \"staging\""), "{r}");
    }

    #[test]
    fn soak_time_says_how_long_remains() {
        let s = stage(json!([{"origin": {"kind": "Warehouse", "name": "app"},
            "sources": {"stages": ["dev"], "requiredSoakTime": "10m0s"}}]));
        let mut f = image_freight("f", "1.0.0", NOW);
        f.status.verified_in.insert("dev".into(), verified());
        f.status
            .currently_in
            .insert("dev".into(), since(Some("2025-06-01T11:54:30Z")));
        let r = reason(availability(&s, &f, ts(NOW)));
        assert!(
            r.contains("4m30s remaining of the required soak time of 10m0s"),
            "{r}"
        );
        assert!(availability(&s, &f, ts("2025-06-01T12:04:30Z")).is_available());
    }

    #[test]
    fn one_of_needs_any_upstream_and_all_needs_every_one() {
        let requested = |strategy: &str| {
            json!([{"origin": {"kind": "Warehouse", "name": "app"},
                "sources": {"stages": ["a", "b"], "availabilityStrategy": strategy}}])
        };
        let mut f = image_freight("f", "1.0.0", NOW);
        f.status.verified_in.insert("a".into(), verified());
        assert!(availability(&stage(requested("OneOf")), &f, ts(NOW)).is_available());
        assert!(availability(&stage(requested("")), &f, ts(NOW)).is_available());
        let r = reason(availability(&stage(requested("All")), &f, ts(NOW)));
        assert!(r.contains("availability strategy All"), "{r}");
        assert!(r.contains("not been verified in stage \"b\""), "{r}");
        assert!(!r.contains("stage \"a\""), "a qualifies: {r}");
        f.status.verified_in.insert("b".into(), verified());
        assert!(availability(&stage(requested("All")), &f, ts(NOW)).is_available());
        let none = image_freight("g", "1.0.0", NOW);
        let r = reason(availability(&stage(requested("OneOf")), &none, ts(NOW)));
        assert!(r.contains("one of the upstream stages"), "{r}");
        assert!(r.contains("\"a\"") && r.contains("\"b\""), "{r}");
    }

    #[test]
    fn all_without_upstream_stages_is_vacuously_available_but_one_of_needs_approval() {
        let all = stage(json!([{"origin": {"kind": "Warehouse", "name": "app"},
            "sources": {"availabilityStrategy": "All"}}]));
        let f = image_freight("f", "1.0.0", NOW);
        assert!(availability(&all, &f, ts(NOW)).is_available());
        let none = stage(json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {}}]));
        let r = reason(availability(&none, &f, ts(NOW)));
        assert!(r.contains("needs an approval"), "{r}");
    }

    #[test]
    fn wrong_origin_names_the_requested_ones() {
        let s = stage(json!([
            {"origin": {"kind": "Warehouse", "name": "api"}, "sources": {"direct": true}},
            {"origin": {"kind": "Warehouse", "name": "web"}, "sources": {"direct": true}},
        ]));
        let f = image_freight("f", "1.0.0", NOW);
        let r = reason(availability(&s, &f, ts(NOW)));
        assert!(r.contains("comes from warehouse \"app\""), "{r}");
        assert!(r.contains("warehouse \"api\", warehouse \"web\""), "{r}");
    }

    #[test]
    fn control_flow_stages_and_other_projects_take_nothing() {
        let gate = stage_from(json!({
            "metadata": {"name": "gate", "namespace": "shop"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}]},
        }));
        let f = image_freight("f", "1.0.0", NOW);
        assert!(reason(availability(&gate, &f, ts(NOW))).contains("control-flow stage"));
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}]),
        );
        let mut other = f.clone();
        other.metadata.namespace = Some("elsewhere".into());
        assert!(reason(availability(&s, &other, ts(NOW))).contains("project \"elsewhere\""));
    }

    #[test]
    fn stages_read_requests_current_freight_and_promotions() {
        let s = stage_from(json!({
            "metadata": {"name": "prod", "namespace": "shop"},
            "spec": {
                "requestedFreight": [
                    {"origin": {"kind": "Warehouse", "name": "api"}, "sources": {"stages": ["staging"],
                     "requiredSoakTime": "1h", "availabilityStrategy": "All",
                     "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}},
                    {"origin": {"kind": "Warehouse", "name": "web"}, "sources": {"direct": true}},
                ],
                "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone"}]}},
            },
            "status": {
                "freightHistory": [{"items": {
                    "Warehouse/web": {"name": "f-web", "origin": {"kind": "Warehouse", "name": "web"}},
                    "Warehouse/api": {"name": "f-api", "origin": {"kind": "Warehouse", "name": "api"},
                                      "images": [{"repoURL": "ghcr.io/acme/api", "tag": "1.4.0"}]},
                }}],
                "lastPromotion": {"name": "prod.01", "status": {"phase": "Succeeded"}, "freight": {"name": "f-api"}},
                "currentPromotion": {"name": "prod.02"},
                "autoPromotionEnabled": true,
            },
        }));
        let r = &s.requested_freight()[0];
        assert_eq!(r.required_soak_time(), Some(Duration::from_secs(3600)));
        assert_eq!(r.availability_strategy(), AvailabilityStrategy::All);
        assert_eq!(r.selection_policy(), SelectionPolicy::MatchUpstream);
        assert!(s.requested_freight()[1].direct());
        assert!(s.has_promotion_steps());
        assert_eq!(
            s.primary_current().unwrap().name(),
            "f-api",
            "first requested origin first"
        );
        assert_eq!(
            s.current_for(&Origin::warehouse("web")).unwrap().name(),
            "f-web"
        );
        assert!(s.holds("f-web") && !s.holds("f-x"));
        let last = s.status.last_promotion.as_ref().unwrap();
        assert_eq!(
            (last.phase(), last.freight_name()),
            (Some("Succeeded"), Some("f-api"))
        );
        assert_eq!(s.status.current_promotion.as_ref().unwrap().name, "prod.02");
        assert_eq!(s.status.auto_promotion_enabled, Some(true));
        let empty = stage_from(json!({"metadata": {"name": "x"}}));
        assert!(empty.primary_current().is_none() && empty.status.last_promotion.is_none());
        assert!(!empty.has_promotion_steps() && empty.requested_freight().is_empty());
    }

    fn selector(constraint: Option<&str>, available_only: bool) -> Selector {
        Selector {
            warehouse: "app".into(),
            artifact: Artifact::Image {
                repo_url: "ghcr.io/acme/app".into(),
            },
            version_constraint: constraint.map(str::to_string),
            available_only,
            strict_semvers: true,
        }
    }

    #[test]
    fn selectors_pick_the_highest_matching_version() {
        let freights = vec![
            image_freight("a", "1.0.0", "2025-01-01T00:00:00Z"),
            image_freight("b", "v1.2.0", "2025-01-02T00:00:00Z"),
            image_freight("c", "1.10.0-rc.1", "2025-01-04T00:00:00Z"),
            image_freight("d", "latest", "2025-01-05T00:00:00Z"),
            image_freight("e", "2.0.0", "2025-01-03T00:00:00Z"),
        ];
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}]),
        );
        let now = ts(NOW);
        let pick = |c: Option<&str>| {
            resolve_selector(&selector(c, true), &freights, &s, now).map(|f| f.name())
        };
        assert_eq!(
            pick(Some("^1.0")),
            Ok("b"),
            "prereleases and non-semver tags ignored"
        );
        assert_eq!(
            pick(Some(">=1.0.0-0 <2.0.0")),
            Ok("c"),
            "a prerelease constraint admits them"
        );
        assert_eq!(pick(Some("~1.0.0")), Ok("a"));
        assert_eq!(pick(Some("1.x")), Ok("b"));
        assert_eq!(pick(None), Ok("e"), "versions first, highest wins");
        let err = pick(Some("^3")).unwrap_err();
        assert!(err.contains("\"^3\""), "{err}");
        assert!(
            err.contains("1.0.0, 1.10.0-rc.1, 2.0.0, latest, v1.2.0"),
            "{err}"
        );
        let err = pick(Some("^1.2.3.4")).unwrap_err();
        assert!(err.contains("version constraint"), "{err}");
    }

    #[test]
    fn without_versions_the_newest_freight_wins() {
        let freights = vec![
            image_freight("a", "main", "2025-01-02T00:00:00Z"),
            image_freight("b", "dev", "2025-01-01T00:00:00Z"),
        ];
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}]),
        );
        let got = resolve_selector(&selector(None, true), &freights, &s, ts(NOW)).unwrap();
        assert_eq!(got.name(), "a");
    }

    #[test]
    fn available_only_skips_what_the_stage_cannot_take_and_says_why() {
        let mut ok = image_freight("ok", "1.0.0", "2025-01-01T00:00:00Z");
        ok.status.verified_in.insert("dev".into(), verified());
        let freights = vec![ok, image_freight("new", "1.1.0", "2025-01-02T00:00:00Z")];
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"stages": ["dev"]}}]),
        );
        let got = resolve_selector(&selector(Some("^1"), true), &freights, &s, ts(NOW)).unwrap();
        assert_eq!(got.name(), "ok");
        let got = resolve_selector(&selector(Some("^1"), false), &freights, &s, ts(NOW)).unwrap();
        assert_eq!(got.name(), "new");
        let err =
            resolve_selector(&selector(Some("~1.1"), true), &freights, &s, ts(NOW)).unwrap_err();
        assert!(
            err.contains("none of it is available to stage \"staging\""),
            "{err}"
        );
        assert!(err.contains("not been verified in stage \"dev\""), "{err}");
    }

    #[test]
    fn selectors_explain_missing_artifacts() {
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}]),
        );
        let err = resolve_selector(&selector(None, true), &[], &s, ts(NOW)).unwrap_err();
        assert!(err.contains("no freight from warehouse \"app\""), "{err}");
        let freights = vec![image_freight("a", "1.0.0", NOW)];
        let mut sel = selector(None, true);
        sel.artifact = Artifact::Chart {
            repo_url: "https://charts.acme.io".into(),
            name: Some("app".into()),
        };
        let err = resolve_selector(&sel, &freights, &s, ts(NOW)).unwrap_err();
        assert!(
            err.contains("carries chart \"app\" from \"https://charts.acme.io\""),
            "{err}"
        );
    }

    #[test]
    fn git_and_chart_selectors_use_tags_and_versions() {
        let git = |name: &str, tag: Option<&str>| {
            freight(json!({
                "metadata": {"name": name, "namespace": "shop"},
                "origin": {"kind": "Warehouse", "name": "app"},
                "commits": [{"repoURL": "https://github.com/acme/cfg", "id": format!("{name}0000000"), "tag": tag}],
                "charts": [{"repoURL": "https://charts.acme.io", "name": "app", "version": format!("0.{}.0", name.len())}],
            }))
        };
        let freights = vec![
            git("a", Some("v1.0.0")),
            git("bb", Some("v1.1.0")),
            git("ccc", None),
        ];
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}]),
        );
        let mut sel = selector(Some("^1"), true);
        sel.artifact = Artifact::Git {
            repo_url: "https://github.com/acme/cfg".into(),
        };
        assert_eq!(
            resolve_selector(&sel, &freights, &s, ts(NOW))
                .unwrap()
                .name(),
            "bb"
        );
        sel.artifact = Artifact::Chart {
            repo_url: "https://charts.acme.io".into(),
            name: Some("app".into()),
        };
        sel.version_constraint = Some("<0.3".into());
        assert_eq!(
            resolve_selector(&sel, &freights, &s, ts(NOW))
                .unwrap()
                .name(),
            "bb"
        );
    }

    #[test]
    fn the_subscriptions_strict_semvers_decides_which_tags_count() {
        let warehouse = |strict: Option<bool>| {
            let mut image = json!({"repoURL": "ghcr.io/acme/app"});
            if let Some(strict) = strict {
                image["strictSemvers"] = json!(strict);
            }
            serde_json::from_value::<Warehouse>(json!({"spec": {"subscriptions": [
                {"git": {"repoURL": "ghcr.io/acme/app", "strictSemvers": !strict.unwrap_or(true)}},
                {"image": {"repoURL": "ghcr.io/other/app", "strictSemvers": false}},
                {"image": image},
            ]}}))
            .unwrap()
        };
        let image = selector(None, true).artifact;
        assert!(!strict_semvers(&image, Some(&warehouse(Some(false)))));
        assert!(strict_semvers(&image, Some(&warehouse(Some(true)))));
        assert!(
            strict_semvers(&image, Some(&warehouse(None))),
            "Kargo's default"
        );
        assert!(strict_semvers(&image, None), "no warehouse: the default");
        let git = Artifact::Git {
            repo_url: "ghcr.io/acme/app".into(),
        };
        assert!(
            !strict_semvers(&git, Some(&warehouse(Some(true)))),
            "matched by kind and URL"
        );
        let chart = |repo_url: &str| Artifact::Chart {
            repo_url: repo_url.into(),
            name: None,
        };
        assert!(strict_semvers(
            &chart("oci://ghcr.io/acme/charts/app"),
            None
        ));
        assert!(!strict_semvers(&chart("https://charts.acme.io"), None));

        let freights = vec![
            image_freight("a", "1.1.0", "2025-01-01T00:00:00Z"),
            image_freight("b", "1.2", "2025-01-02T00:00:00Z"),
            image_freight("c", "v2", "2025-01-03T00:00:00Z"),
            image_freight("d", "latest", "2025-01-04T00:00:00Z"),
            image_freight("e", "main-abc123", "2025-01-05T00:00:00Z"),
            image_freight("f", "v1.3.0-rc.1", "2025-01-06T00:00:00Z"),
        ];
        let s = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}]),
        );
        let pick = |c: Option<&str>, w: &Warehouse| {
            let mut sel = selector(c, true);
            sel.strict_semvers = strict_semvers(&sel.artifact, Some(w));
            resolve_selector(&sel, &freights, &s, ts(NOW)).map(|f| f.name())
        };
        let strict = warehouse(None);
        let lenient = warehouse(Some(false));
        assert_eq!(pick(Some(">=1.0"), &strict), Ok("a"));
        assert_eq!(pick(Some(">=1.0"), &lenient), Ok("c"));
        assert_eq!(pick(Some("^1.0"), &lenient), Ok("b"), "1.2 is 1.2.0");
        assert_eq!(pick(Some(">=1.0.0-0 <2.0.0"), &lenient), Ok("f"));
        assert_eq!(pick(None, &strict), Ok("f"), "versions before other tags");
        assert_eq!(pick(None, &lenient), Ok("c"));
        let err = pick(Some("^2"), &strict).unwrap_err();
        assert!(err.contains("so 1.2, v2 are not counted"), "{err}");
        assert_eq!(pick(Some("^2"), &lenient), Ok("c"));
    }

    #[test]
    fn auto_promotion_takes_the_newest_available_or_what_upstream_holds() {
        let mut a = image_freight("a", "1.0.0", "2025-01-01T00:00:00Z");
        let mut b = image_freight("b", "1.1.0", "2025-01-02T00:00:00Z");
        a.status.verified_in.insert("dev".into(), verified());
        b.status.verified_in.insert("dev".into(), verified());
        a.status.currently_in.insert("dev".into(), since(None));
        let freights = vec![a, b];
        let newest = stage(
            json!([{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"stages": ["dev"]}}]),
        );
        assert_eq!(
            auto_promotion_candidate(&newest, "app", &freights, ts(NOW))
                .unwrap()
                .name(),
            "b"
        );
        let matching = stage(json!([{"origin": {"kind": "Warehouse", "name": "app"},
            "sources": {"stages": ["dev"], "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}}]));
        assert_eq!(
            auto_promotion_candidate(&matching, "app", &freights, ts(NOW))
                .unwrap()
                .name(),
            "a"
        );
        let err = auto_promotion_candidate(&newest, "other", &freights, ts(NOW)).unwrap_err();
        assert!(
            err.contains("does not request freight from warehouse \"other\""),
            "{err}"
        );
        let err = auto_promotion_candidate(&newest, "app", &[], ts(NOW)).unwrap_err();
        assert!(
            err.contains("No freight from warehouse \"app\" is available"),
            "{err}"
        );
    }

    #[test]
    fn changes_list_changed_added_and_removed_artifacts() {
        let from = freight(json!({
            "name": "f1", "origin": {"kind": "Warehouse", "name": "app"},
            "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0"}, {"repoURL": "ghcr.io/acme/side", "tag": "3"}],
            "commits": [{"repoURL": "https://github.com/acme/cfg", "id": "0123456789abcdef"}],
            "charts": [{"repoURL": "https://charts.acme.io", "name": "app", "version": "1.0.0"}],
        }));
        let to = freight(json!({
            "name": "f2", "origin": {"kind": "Warehouse", "name": "app"},
            "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.1.0"}, {"repoURL": "ghcr.io/acme/new", "digest": "sha256:ff"}],
            "commits": [{"repoURL": "https://github.com/acme/cfg", "id": "fedcba9876543210"}],
            "charts": [{"repoURL": "https://charts.acme.io", "name": "app", "version": "1.0.0"}],
        }));
        let list = changes(Some(&from), &to);
        let got: Vec<(&str, &str, Option<&str>, Option<&str>)> = list
            .iter()
            .map(|c| {
                (
                    c.kind.as_str(),
                    c.repo_url.as_str(),
                    c.from.as_deref(),
                    c.to.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("image", "ghcr.io/acme/app", Some("1.0.0"), Some("1.1.0")),
                ("image", "ghcr.io/acme/new", None, Some("sha256:ff")),
                (
                    "git",
                    "https://github.com/acme/cfg",
                    Some("0123456"),
                    Some("fedcba9")
                ),
                ("image", "ghcr.io/acme/side", Some("3"), None),
            ]
        );
        assert!(changes(Some(&to), &to).is_empty());
        let first = changes(None, &to);
        assert_eq!(first.len(), 4);
        assert!(first.iter().all(|c| c.from.is_none()));
        assert_eq!(first[3].name.as_deref(), Some("app"));
    }

    #[test]
    fn a_moved_tag_shows_its_digests() {
        let mk = |digest: &str| {
            freight(
                json!({"name": digest, "origin": {"kind": "Warehouse", "name": "app"},
                "images": [{"repoURL": "ghcr.io/acme/app", "tag": "latest", "digest": digest}]}),
            )
        };
        let c = changes(Some(&mk("sha256:01")), &mk("sha256:02"));
        assert_eq!(
            (c[0].from.as_deref(), c[0].to.as_deref()),
            (Some("sha256:01"), Some("sha256:02"))
        );
    }
}
