//! The Terraform side of freight, shared by promotions, approvals, data sources and stages:
//! the ways to choose a freight, resolving that choice in the cluster, and freight as values.

use jiff::Timestamp;
use serde_json::Value as Json;

use super::validators::{
    chart_repo_url, git_repo_url, image_repo_url, naming_path, object_name, semver_constraint,
};
use crate::kargo::freight::{
    Artifact, ArtifactKind, Change, Freight, Origin, Selector, StageView, auto_promotion_candidate,
    changes, resolve_selector,
};
use crate::kargo::{Error as KargoError, KargoClient, Kind};
use crate::plugin::plan::values_equal;
use crate::plugin::schema::Validator;
use crate::plugin::validate::validators::exactly_one_of;
use crate::plugin::{
    Attribute, AttributePath, Block, Diagnostic, NestedBlock, NestedObject, Value,
};

/// The attributes that choose a freight, by the name of the attribute.
pub const FREIGHT: &str = "freight";
pub const FREIGHT_ALIAS: &str = "freight_alias";
pub const FREIGHT_SELECTOR: &str = "freight_selector";
pub const ORIGIN_WAREHOUSE: &str = "origin_warehouse";

/// One way of choosing a freight; resources offer the ones that make sense for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// `freight`: by name (ID).
    Name,
    /// `freight_alias`: by alias.
    Alias,
    /// `freight_selector`: the newest freight whose artifact matches.
    Selector,
    /// `origin_warehouse`: Kargo's own pick, as auto-promotion would promote.
    Origin,
}

impl Way {
    pub fn attribute(self) -> &'static str {
        match self {
            Way::Name => FREIGHT,
            Way::Alias => FREIGHT_ALIAS,
            Way::Selector => FREIGHT_SELECTOR,
            Way::Origin => ORIGIN_WAREHOUSE,
        }
    }
}

/// Whether the freight is chosen differently than when `prior` was planned: `chosen` holds the
/// choice attributes as planned now (the configuration with its defaults). A `freight_alias`
/// left null in `config` is the computed report of the alias, not a choice.
pub fn choice_changed(ways: &[Way], chosen: &Value, config: &Value, prior: &Value) -> bool {
    ways.iter().map(|w| w.attribute()).any(|a| {
        (a != FREIGHT_ALIAS || !config.get(a).is_null())
            && !values_equal(chosen.get(a), prior.get(a))
    })
}

/// `freight_alias` is an output unless configured: sets it in `planned` to `value` when the
/// configuration leaves it null.
pub fn set_alias_output(planned: &mut Value, config: &Value, value: Value) {
    if config.get(FREIGHT_ALIAS).is_null() {
        planned.set(FREIGHT_ALIAS, value);
    }
}

/// The `freight_selector` block, choosing `what` (see [`freight_choice`]).
pub(crate) fn selector_block(what: &str) -> NestedBlock {
    let repo = |validator: Validator, description: &str| {
        Attribute::string("repo_url")
            .required()
            .validate(naming_path(validator))
            .description(description.to_string())
    };
    let selector = Block::new(vec![
        Attribute::string("warehouse")
            .required()
            .validate(object_name())
            .description("The warehouse the freight comes from."),
        Attribute::string("version_constraint")
            .optional()
            .validate(semver_constraint())
            .description(
                "A semantic version constraint in Kargo's syntax on the artifact's version \
                 (image tag, commit tag or chart version), e.g. `^1.2`, `~1.2.3`, \
                 `>=1.0.0 <2.0.0` or `1.x`. A `v` prefix on versions is accepted, \
                 versions that are not semantic (`latest`, `main-abc123`) are ignored, and \
                 prereleases only match when the constraint names one (`>=1.0.0-0`). \
                 Which versions count follows Kargo: for an image or Git repository, the \
                 `strict_semvers` of the warehouse's subscription to the same `repo_url` \
                 (read from the warehouse when planning; when it is unset or the warehouse \
                 cannot be read, `true`, Kargo's default). Strict, only complete versions \
                 count (`1.2.3`, `v1.2.3-rc.1`); otherwise partial ones like `1.2` or `v1` \
                 count too, as `1.2.0` and `1.0.0`. Chart versions are read strictly from \
                 OCI repositories and leniently from classic (`https://`) ones, as Kargo \
                 discovers them. Unset: the newest freight carrying the artifact, highest \
                 semantic version first.",
            ),
        Attribute::bool("available_only")
            .default(Value::Bool(true))
            .description(
                "Only consider freight the stage may take now (verified and soaked \
                 upstream, approved, or requested directly). Set `false` to pick the \
                 newest matching freight even when it is not available yet; Kargo still \
                 refuses to promote it until it is approved for the stage (see \
                 `kargo_freight_approval`), and the plan says so. Default `true`.",
            ),
    ])
    .block(
        NestedBlock::single(
            "image",
            Block::new(vec![repo(
                image_repo_url(),
                "Image repository, as the warehouse subscribes to it (no tag).",
            )]),
        )
        .description("Select by the tag of this container image."),
    )
    .block(
        NestedBlock::single(
            "git",
            Block::new(vec![repo(git_repo_url(), "Git repository URL.")]),
        )
        .description("Select by the tag of the commit from this Git repository."),
    )
    .block(
        NestedBlock::single(
            "chart",
            Block::new(vec![
                repo(
                    chart_repo_url(),
                    "Chart repository URL (`https://…` or `oci://…`).",
                ),
                Attribute::string("name").optional().description(
                    "Chart name; leave unset for OCI repositories, whose URL names the chart.",
                ),
            ]),
        )
        .description("Select by the version of this Helm chart."),
    )
    .validate(exactly_one_of(&["image", "git", "chart"]));
    NestedBlock::single(FREIGHT_SELECTOR, selector).description(format!(
        "Choose {what} by an artifact it carries: the newest freight from `warehouse` whose \
         image, Git commit or chart (exactly one of the `image`, `git` and `chart` blocks) \
         satisfies `version_constraint`. Resolved against the cluster at plan time, so the plan \
         shows which freight it is."
    ))
}

/// `block` with its attribute of the same name as `replacement` replaced by it.
pub(crate) fn with_attribute(mut block: NestedBlock, replacement: Attribute) -> NestedBlock {
    for inner in &mut block.block.attributes {
        if inner.name == replacement.name {
            *inner = replacement.clone();
        }
    }
    block
}

/// The attributes (and the `freight_selector` block) that choose a freight, for `ways` (in
/// that order). `what` completes "Choose ...", e.g. `the freight to promote`. Attach
/// [`freight_choice_validator`] to the resource's block so that exactly one of them is set.
pub fn freight_choice(ways: &[Way], what: &str) -> Block {
    let mut choice = Block::default();
    for way in ways {
        let attr = match way {
            Way::Name => Attribute::string(FREIGHT)
                .optional()
                .validate(object_name())
                .description(format!(
                    "Choose {what} by its name (ID), e.g. from a `kargo_freight` data source."
                )),
            Way::Alias => Attribute::string(FREIGHT_ALIAS)
                .optional()
                .description(format!(
                    "Choose {what} by its alias (e.g. `tall-fox`), as Kargo's UI and CLI show it."
                )),
            Way::Selector => {
                choice.blocks.push(selector_block(what));
                continue;
            }
            Way::Origin => Attribute::string(ORIGIN_WAREHOUSE)
                .optional()
                .validate(object_name())
                .description(format!(
                    "Choose {what} as Kargo's auto-promotion would: the newest freight from \
                     this warehouse available to the stage (with the `MatchUpstream` \
                     selection policy, the freight the upstream stage holds)."
                )),
        };
        choice.attributes.push(attr);
    }
    choice
}

/// Block-level rule: exactly one of the `ways` attributes is set.
pub fn freight_choice_validator(ways: &[Way]) -> Validator {
    let names: Vec<&str> = ways.iter().map(|w| w.attribute()).collect();
    exactly_one_of(&names)
}

fn string_list_object(name: &str, fields: &[(&str, &str)], description: &str) -> Attribute {
    Attribute::nested(
        name,
        NestedObject::list(
            fields
                .iter()
                .map(|(f, d)| Attribute::string(*f).computed().description(*d))
                .collect(),
        ),
    )
    .computed()
    .description(description.to_string())
}

/// The computed `{images, commits, charts}` object a freight carries.
pub fn artifacts_attribute(name: &str, description: &str) -> Attribute {
    Attribute::nested(
        name,
        NestedObject::single(vec![
            string_list_object(
                "images",
                &[
                    ("repo_url", "Image repository."),
                    ("tag", "Tag."),
                    ("digest", "Digest."),
                ],
                "Container images in the freight.",
            ),
            string_list_object(
                "commits",
                &[
                    ("repo_url", "Git repository."),
                    ("id", "Commit ID."),
                    ("tag", "Tag, when the commit was selected by tag."),
                    (
                        "branch",
                        "Branch, when the commit was selected from a branch.",
                    ),
                ],
                "Git commits in the freight.",
            ),
            string_list_object(
                "charts",
                &[
                    ("repo_url", "Chart repository."),
                    ("name", "Chart name."),
                    ("version", "Chart version."),
                ],
                "Helm charts in the freight.",
            ),
        ]),
    )
    .computed()
    .description(description.to_string())
}

/// A computed summary of one freight: `{name, alias, warehouse, artifacts}`.
pub fn freight_summary_attribute(name: &str, description: &str) -> Attribute {
    Attribute::nested(
        name,
        NestedObject::single(vec![
            Attribute::string("name")
                .computed()
                .description("Name (ID) of the freight."),
            Attribute::string("alias")
                .computed()
                .description("The freight's human-friendly alias."),
            Attribute::string("warehouse")
                .computed()
                .description("The warehouse that produced it."),
            artifacts_attribute("artifacts", "The artifacts the freight carries."),
        ]),
    )
    .computed()
    .description(description.to_string())
}

/// The computed list of artifact changes between two freights.
pub fn changes_attribute(name: &str, description: &str) -> Attribute {
    Attribute::nested(
        name,
        NestedObject::list(vec![
            Attribute::string("kind")
                .computed()
                .description("`image`, `git` or `chart`."),
            Attribute::string("repo_url")
                .computed()
                .description("The artifact's repository."),
            Attribute::string("name")
                .computed()
                .description("The chart name (charts only)."),
            Attribute::string("from").computed().description(
                "The version before: image tag (digest for untagged images), commit tag or \
                 short ID, chart version. Null for an artifact the stage did not have.",
            ),
            Attribute::string("to")
                .computed()
                .description("The version after. Null for an artifact that goes away."),
        ]),
    )
    .computed()
    .description(description.to_string())
}

fn opt(s: &Option<String>) -> Value {
    s.as_deref().map_or(Value::Null, Value::string)
}

/// The `artifacts` value of a freight.
pub fn artifacts_value(f: &Freight) -> Value {
    Value::object([
        (
            "images",
            Value::List(
                f.images
                    .iter()
                    .map(|i| {
                        Value::object([
                            ("repo_url", Value::string(&i.repo_url)),
                            ("tag", opt(&i.tag)),
                            ("digest", opt(&i.digest)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "commits",
            Value::List(
                f.commits
                    .iter()
                    .map(|c| {
                        Value::object([
                            ("repo_url", Value::string(&c.repo_url)),
                            ("id", opt(&c.id)),
                            ("tag", opt(&c.tag)),
                            ("branch", opt(&c.branch)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "charts",
            Value::List(
                f.charts
                    .iter()
                    .map(|c| {
                        Value::object([
                            ("repo_url", Value::string(&c.repo_url)),
                            ("name", opt(&c.name)),
                            ("version", opt(&c.version)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// The summary value (`{name, alias, warehouse, artifacts}`) of a freight.
pub fn summary_value(f: &Freight) -> Value {
    Value::object([
        ("name", Value::string(&f.name)),
        ("alias", opt(&f.alias)),
        (
            "warehouse",
            if f.origin.name.is_empty() {
                Value::Null
            } else {
                Value::string(&f.origin.name)
            },
        ),
        ("artifacts", artifacts_value(f)),
    ])
}

/// The `changes` value.
pub fn changes_value(changes: &[Change]) -> Value {
    Value::List(
        changes
            .iter()
            .map(|c| {
                Value::object([
                    ("kind", Value::string(c.kind.as_str())),
                    ("repo_url", Value::string(&c.repo_url)),
                    ("name", opt(&c.name)),
                    ("from", opt(&c.from)),
                    ("to", opt(&c.to)),
                ])
            })
            .collect(),
    )
}

/// The one line a plan shows for promoting `to` into `stage` while it holds `from`, e.g.
/// `prod: freight tall-fox (ghcr.io/acme/app 1.0.0) → wise-owl (ghcr.io/acme/app 1.1.0)`:
/// each freight by alias (name when it has none) with the artifacts that change, or all of
/// them when none does; `prod: already at wise-owl` when the stage holds `to`.
pub fn promotion_summary(stage: &str, from: Option<&Freight>, to: &Freight) -> String {
    let label = |f: &Freight| f.alias.clone().unwrap_or_else(|| f.name.clone());
    if from.is_some_and(|f| f.name == to.name) {
        return format!("{stage}: already at {}", label(to));
    }
    let changed = changes(from, to);
    let (before, after) = if changed.is_empty() {
        // Other freight with the same artifacts: what it carries is all there is to show.
        let all = |f: &Freight| -> Vec<String> {
            changes(None, f)
                .iter()
                .map(|c| artifact_text(c, c.to.as_deref()))
                .collect()
        };
        (from.map(all).unwrap_or_default(), all(to))
    } else {
        let side = |version: fn(&Change) -> Option<&str>| -> Vec<String> {
            changed
                .iter()
                .filter_map(|c| version(c).map(|v| artifact_text(c, Some(v))))
                .collect()
        };
        (side(|c| c.from.as_deref()), side(|c| c.to.as_deref()))
    };
    let from_text = match from {
        Some(f) => with_artifacts(format!("freight {}", label(f)), &before),
        None => "no freight".to_string(),
    };
    format!(
        "{stage}: {from_text} → {}",
        with_artifacts(label(to), &after)
    )
}

/// `repo version` (`repo/name version` for a named chart), compact enough for one line.
fn artifact_text(c: &Change, version: Option<&str>) -> String {
    let repo = match (c.kind, &c.name) {
        (ArtifactKind::Chart, Some(name)) => format!("{}/{name}", c.repo_url),
        _ => c.repo_url.clone(),
    };
    match version {
        Some(v) => format!("{repo} {v}"),
        None => repo,
    }
}

/// Each artifact `f` carries as messages listing freight show it: `repo:tag` for images
/// (the digest without a tag), `repo@tag` for commits (the short ID without a tag) and
/// `repo/name:version` for charts (`repo:version` without a name).
pub(crate) fn artifact_labels(f: &Freight) -> Vec<String> {
    changes(None, f)
        .iter()
        .map(|c| {
            let version = c.to.as_deref();
            match c.kind {
                ArtifactKind::Image => format!("{}:{}", c.repo_url, version.unwrap_or("?")),
                ArtifactKind::Git => format!("{}@{}", c.repo_url, version.unwrap_or_default()),
                ArtifactKind::Chart => format!(
                    "{}{}:{}",
                    c.repo_url,
                    c.name
                        .as_deref()
                        .map(|n| format!("/{n}"))
                        .unwrap_or_default(),
                    version.unwrap_or("?")
                ),
            }
        })
        .collect()
}

fn with_artifacts(freight: String, artifacts: &[String]) -> String {
    if artifacts.is_empty() {
        freight
    } else {
        format!("{freight} ({})", artifacts.join(", "))
    }
}

/// The freight a configuration chose, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreightChoice {
    Name(String),
    Alias(String),
    Selector(Selector),
    Origin(String),
}

impl FreightChoice {
    /// The choice in `config`; `None` while what decides it is unknown (plan time) or when
    /// no way is set (validation reports that).
    pub fn from_config(config: &Value) -> Option<FreightChoice> {
        let known = |v: &Value| v.as_str().map(str::to_string);
        if let Some(name) = known(config.get(FREIGHT)) {
            return Some(FreightChoice::Name(name));
        }
        if let Some(alias) = known(config.get(FREIGHT_ALIAS)) {
            return Some(FreightChoice::Alias(alias));
        }
        if let Some(warehouse) = known(config.get(ORIGIN_WAREHOUSE)) {
            return Some(FreightChoice::Origin(warehouse));
        }
        let s = config.get(FREIGHT_SELECTOR);
        if s.is_null() || !s.is_wholly_known() {
            return None;
        }
        let repo = |v: &Value| v.get("repo_url").as_str().map(str::to_string);
        let artifact = if let Some(repo_url) = repo(s.get("image")) {
            Artifact::Image { repo_url }
        } else if let Some(repo_url) = repo(s.get("git")) {
            Artifact::Git { repo_url }
        } else if let Some(repo_url) = repo(s.get("chart")) {
            Artifact::Chart {
                repo_url,
                name: known(s.get("chart").get("name")),
            }
        } else {
            return None;
        };
        Some(FreightChoice::Selector(Selector {
            warehouse: known(s.get("warehouse"))?,
            artifact,
            version_constraint: known(s.get("version_constraint")),
            available_only: s.get("available_only").as_bool().unwrap_or(true),
            // Kargo's default until the warehouse says otherwise (see `learn_strictness`).
            strict_semvers: true,
        }))
    }

    /// For a selector, reads from its warehouse whether versions are read strictly (see
    /// [`Selector::learn_strictness`]); other choices need nothing.
    pub async fn learn_strictness(&mut self, client: &KargoClient, project: &str) {
        if let FreightChoice::Selector(selector) = self {
            selector.learn_strictness(client, project).await;
        }
    }

    /// The attribute this choice was made with, where diagnostics about it belong.
    pub fn path(&self) -> AttributePath {
        AttributePath::attr(match self {
            FreightChoice::Name(_) => FREIGHT,
            FreightChoice::Alias(_) => FREIGHT_ALIAS,
            FreightChoice::Selector(_) => FREIGHT_SELECTOR,
            FreightChoice::Origin(_) => ORIGIN_WAREHOUSE,
        })
    }

    /// How the choice reads in messages, e.g. `freight alias "tall-fox"`.
    pub fn describe(&self) -> String {
        match self {
            FreightChoice::Name(n) => format!("freight {n:?}"),
            FreightChoice::Alias(a) => format!("freight alias {a:?}"),
            FreightChoice::Selector(s) => format!(
                "the freight selector (warehouse {:?}, {})",
                s.warehouse, s.artifact
            ),
            FreightChoice::Origin(w) => format!("Kargo's pick from warehouse {w:?}"),
        }
    }
}

/// All freight of a project, counting as given the approvals planned earlier in the same
/// plan (see [`expect_approval`]), so that a promotion planned after the approval it depends
/// on is not refused for lack of it.
pub async fn list_freight(client: &KargoClient, project: &str) -> Result<Vec<Freight>, KargoError> {
    let mut freights = list_stored_freight(client, project).await?;
    add_planned_approvals(client.host(), project, &mut freights);
    Ok(freights)
}

/// Marks `freights` approved for the stages [`expect_approval`] recorded for them.
pub(crate) fn add_planned_approvals(host: &str, project: &str, freights: &mut [Freight]) {
    let planned = planned_approvals()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for f in freights {
        for (h, p, name, stage) in &planned {
            if h == host && p == project && name == &f.name {
                f.approved_for.entry(stage.clone()).or_insert(None);
            }
        }
    }
}

/// All freight of a project, exactly as the cluster stores it.
pub async fn list_stored_freight(
    client: &KargoClient,
    project: &str,
) -> Result<Vec<Freight>, KargoError> {
    let items = client.list(Kind::Freight, Some(project), None).await?;
    Ok(items
        .iter()
        .filter_map(|j| match Freight::from_json(j) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(error = %e, "skipping an unreadable Freight");
                None
            }
        })
        .collect())
}

/// (API server, project, freight, stage) of the approvals planned so far by this process.
type PlannedApprovals = std::collections::BTreeSet<(String, String, String, String)>;

fn planned_approvals() -> &'static std::sync::Mutex<PlannedApprovals> {
    static PLANNED: std::sync::OnceLock<std::sync::Mutex<PlannedApprovals>> =
        std::sync::OnceLock::new();
    PLANNED.get_or_init(Default::default)
}

/// Records that the plan approves `freight` for `stage`. Terraform plans a resource only after
/// those it depends on, within one provider process per plan, so what `depends_on` an approval
/// sees the freight as approved. At apply the approval is written before they run, and
/// Kargo's promotion webhook checks availability again when the promotion is created.
pub fn expect_approval(client: &KargoClient, project: &str, freight: &str, stage: &str) {
    planned_approvals()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert((
            client.host().to_string(),
            project.to_string(),
            freight.to_string(),
            stage.to_string(),
        ));
}

/// The freight `choice` designates among `freights` (a project's). `stage` is needed for
/// `origin_warehouse` and for a selector's `available_only`; without one, selectors ignore
/// availability. Errors are placed on the choosing attribute and say what was found.
pub fn choose<'a>(
    choice: &FreightChoice,
    freights: &'a [Freight],
    stage: Option<&StageView>,
    project: &str,
    now: Timestamp,
) -> Result<&'a Freight, Diagnostic> {
    let not_found =
        |detail: String| Diagnostic::error("Freight not found", detail).at(choice.path());
    match choice {
        FreightChoice::Name(name) => freights.iter().find(|f| &f.name == name).ok_or_else(|| {
            let hint = freights
                .iter()
                .find(|f| f.alias.as_deref() == Some(name))
                .map(|f| {
                    format!(
                        " {name:?} is the alias of freight {:?}: use `freight_alias`.",
                        f.name
                    )
                })
                .unwrap_or_default();
            not_found(format!(
                "Project {project:?} has no freight named {name:?}.{hint}"
            ))
        }),
        FreightChoice::Alias(alias) => freights
            .iter()
            .find(|f| f.alias.as_deref() == Some(alias))
            .ok_or_else(|| {
                let hint = if freights.iter().any(|f| &f.name == alias) {
                    format!(" {alias:?} is a freight name: use `freight`.")
                } else {
                    String::new()
                };
                not_found(format!(
                    "Project {project:?} has no freight with alias {alias:?}.{hint}"
                ))
            }),
        FreightChoice::Selector(selector) => {
            let unstaged;
            let (stage, selector) = match stage {
                Some(s) => (s, selector.clone()),
                None => {
                    unstaged = StageView::default();
                    let mut s = selector.clone();
                    s.available_only = false;
                    (&unstaged, s)
                }
            };
            resolve_selector(&selector, freights, stage, now).map_err(|why| {
                Diagnostic::error("No freight matches the selector", why).at(choice.path())
            })
        }
        FreightChoice::Origin(warehouse) => {
            let Some(stage) = stage else {
                return Err(Diagnostic::error(
                    "No stage to choose freight for",
                    "`origin_warehouse` picks freight for a stage, and there is none here.",
                )
                .at(choice.path()));
            };
            auto_promotion_candidate(stage, warehouse, freights, now).map_err(|why| {
                Diagnostic::error("Kargo has no freight to promote", why).at(choice.path())
            })
        }
    }
}

/// Lists the project's freight and picks the one `choice` designates (see [`choose`]), a
/// selector reading versions as its warehouse's subscription does.
pub async fn resolve(
    client: &KargoClient,
    project: &str,
    stage: Option<&StageView>,
    choice: &FreightChoice,
    now: Timestamp,
) -> Result<Freight, Diagnostic> {
    let mut choice = choice.clone();
    choice.learn_strictness(client, project).await;
    let choice = &choice;
    let freights = list_freight(client, project).await.map_err(|e| {
        Diagnostic::error(
            "Failed to list the project's freight",
            format!("Could not list freight in project {project:?}: {e}"),
        )
    })?;
    choose(choice, &freights, stage, project, now).cloned()
}

/// `kargo_stage.current_freight`: the freight the stage holds (its first requested origin's),
/// with the alias kept from `prior` while the freight is unchanged and otherwise read from
/// the Freight (one GET, only when the stage's freight changed). Null when it holds nothing.
pub async fn current_freight_value(client: &KargoClient, live: &Json, prior: &Value) -> Value {
    let Ok(stage) = StageView::from_json(live) else {
        return Value::Null;
    };
    stage_freight_value(client, &stage, None, prior).await
}

/// The summary of the freight `stage` holds from `origin` (its first requested origin when
/// `None`), its alias kept from `prior` while the freight is unchanged and otherwise read
/// from the Freight. Null when the stage holds nothing from there.
pub async fn stage_freight_value(
    client: &KargoClient,
    stage: &StageView,
    origin: Option<&Origin>,
    prior: &Value,
) -> Value {
    let current = match origin {
        Some(o) => stage.current_for(o),
        None => stage.primary_current(),
    };
    let Some(current) = current else {
        return Value::Null;
    };
    let mut freight = current.clone();
    freight.alias = match (prior.get("name").as_str(), prior.get("alias")) {
        (Some(n), Value::String(a)) if n == freight.name => Some(a.clone()),
        _ => freight_alias(client, &stage.namespace, &freight.name).await,
    };
    summary_value(&freight)
}

/// The alias lives on the Freight, not in references to it.
async fn freight_alias(client: &KargoClient, namespace: &str, freight: &str) -> Option<String> {
    if namespace.is_empty() {
        return None;
    }
    match client.get(Kind::Freight, Some(namespace), freight).await {
        Ok(Some(f)) => Freight::from_json(&f).ok().and_then(|f| f.alias),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(freight, error = %e, "could not read the freight's alias");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugin::validate::validate_config;
    use crate::plugin::{Block, Severity};

    fn s(v: &str) -> Value {
        Value::string(v)
    }

    const ALL: [Way; 4] = [Way::Name, Way::Alias, Way::Selector, Way::Origin];

    fn block() -> Block {
        freight_choice(&ALL, "the freight to promote").validate(freight_choice_validator(&ALL))
    }

    fn config(j: Json) -> Value {
        Value::from_json(&j, &block().implied_type())
    }

    fn errors(v: &Value) -> Vec<String> {
        validate_config(&block(), v)
            .0
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                format!(
                    "{}: {}",
                    d.attribute.map(|p| p.to_string()).unwrap_or_default(),
                    d.detail
                )
            })
            .collect()
    }

    #[test]
    fn exactly_one_way_is_chosen() {
        assert!(errors(&config(json!({"freight": "abc"}))).is_empty());
        let both = errors(&config(
            json!({"freight": "abc", "freight_alias": "tall-fox"}),
        ));
        assert_eq!(both.len(), 1, "{both:?}");
        assert!(both[0].starts_with("freight_alias:"), "{both:?}");
        let none = errors(&config(json!({})));
        assert!(none[0].contains("Exactly one of"), "{none:?}");
        let mut unknown = config(json!({}));
        unknown.set("freight", Value::Unknown);
        assert!(errors(&unknown).is_empty(), "decided at apply");
    }

    #[test]
    fn selectors_name_one_artifact_with_a_valid_constraint() {
        let ok = config(json!({"freight_selector": {"warehouse": "app",
            "image": {"repo_url": "ghcr.io/acme/app"}, "version_constraint": "^1.2"}}));
        assert!(errors(&ok).is_empty(), "{:?}", errors(&ok));
        let two = config(json!({"freight_selector": {"warehouse": "app",
            "image": {"repo_url": "ghcr.io/acme/app"}, "git": {"repo_url": "https://github.com/acme/app"}}}));
        let found = errors(&two);
        assert!(
            found.iter().any(|e| e.starts_with("freight_selector.git")),
            "{found:?}"
        );
        let none = config(json!({"freight_selector": {"warehouse": "app"}}));
        assert!(
            errors(&none)
                .iter()
                .any(|e| e.starts_with("freight_selector:"))
        );
        let bad = config(json!({"freight_selector": {"warehouse": "app",
            "chart": {"repo_url": "https://charts.acme.io", "name": "app"}, "version_constraint": ">>1"}}));
        let found = errors(&bad);
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("freight_selector.version_constraint") && e.contains(">>")),
            "{found:?}"
        );
        let tagged = config(
            json!({"freight_selector": {"warehouse": "app", "image": {"repo_url": "ghcr.io/acme/app:1.0"}}}),
        );
        assert!(
            errors(&tagged)
                .iter()
                .any(|e| e.starts_with("freight_selector.image.repo_url"))
        );
    }

    #[test]
    fn choices_decode_and_wait_for_unknowns() {
        assert_eq!(
            FreightChoice::from_config(&config(json!({"freight_alias": "tall-fox"}))),
            Some(FreightChoice::Alias("tall-fox".into()))
        );
        let c = FreightChoice::from_config(&config(json!({"freight_selector": {
            "warehouse": "app", "chart": {"repo_url": "oci://ghcr.io/acme/app"}, "available_only": false}})))
        .unwrap();
        assert_eq!(
            c,
            FreightChoice::Selector(Selector {
                warehouse: "app".into(),
                artifact: Artifact::Chart {
                    repo_url: "oci://ghcr.io/acme/app".into(),
                    name: None
                },
                version_constraint: None,
                available_only: false,
                strict_semvers: true,
            })
        );
        assert_eq!(c.path().to_string(), "freight_selector");
        let mut sel =
            config(json!({"freight_selector": {"warehouse": "app", "image": {"repo_url": "x"}}}));
        let mut inner = sel.get("freight_selector").clone();
        inner.set("version_constraint", Value::Unknown);
        sel.set("freight_selector", inner);
        assert_eq!(FreightChoice::from_config(&sel), None);
        let mut name = config(json!({}));
        name.set("freight", Value::Unknown);
        assert_eq!(FreightChoice::from_config(&name), None);
        assert_eq!(
            FreightChoice::from_config(&config(json!({"origin_warehouse": "app"}))),
            Some(FreightChoice::Origin("app".into()))
        );
    }

    fn freights() -> Vec<Freight> {
        [("f1", "tall-fox", "1.0.0"), ("f2", "wise-owl", "1.1.0")]
            .iter()
            .map(|(name, alias, tag)| {
                Freight::from_json(&json!({
                    "metadata": {"name": name, "namespace": "shop"}, "alias": alias,
                    "origin": {"kind": "Warehouse", "name": "app"},
                    "images": [{"repoURL": "ghcr.io/acme/app", "tag": tag}],
                }))
                .unwrap()
            })
            .collect()
    }

    fn now() -> Timestamp {
        "2025-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn choosing_by_name_and_alias_points_at_the_mixup() {
        let f = freights();
        let pick = |c: FreightChoice| choose(&c, &f, None, "shop", now()).map(|f| f.name.clone());
        assert_eq!(pick(FreightChoice::Name("f2".into())), Ok("f2".into()));
        assert_eq!(
            pick(FreightChoice::Alias("tall-fox".into())),
            Ok("f1".into())
        );
        let err = pick(FreightChoice::Name("tall-fox".into())).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "freight");
        assert!(err.detail.contains("use `freight_alias`"), "{}", err.detail);
        let err = pick(FreightChoice::Alias("f1".into())).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "freight_alias");
        assert!(err.detail.contains("use `freight`"), "{}", err.detail);
        let err = pick(FreightChoice::Name("nope".into())).unwrap_err();
        assert!(
            err.detail
                .contains("Project \"shop\" has no freight named \"nope\"")
        );
    }

    #[test]
    fn selectors_and_origins_need_what_they_need() {
        let f = freights();
        let sel = FreightChoice::Selector(Selector {
            warehouse: "app".into(),
            artifact: Artifact::Image {
                repo_url: "ghcr.io/acme/app".into(),
            },
            version_constraint: Some("~1.0".into()),
            available_only: true,
            strict_semvers: true,
        });
        assert_eq!(choose(&sel, &f, None, "shop", now()).unwrap().name, "f1");
        let origin = FreightChoice::Origin("app".into());
        let err = choose(&origin, &f, None, "shop", now()).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "origin_warehouse");
        let stage = StageView::from_json(&json!({
            "metadata": {"name": "dev", "namespace": "shop"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}],
                     "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone"}]}}},
        }))
        .unwrap();
        let picked = choose(&origin, &f, Some(&stage), "shop", now()).unwrap();
        assert!(["f1", "f2"].contains(&picked.name.as_str()));
        let none = FreightChoice::Selector(Selector {
            warehouse: "other".into(),
            artifact: Artifact::Git {
                repo_url: "https://github.com/acme/app".into(),
            },
            version_constraint: None,
            available_only: true,
            strict_semvers: true,
        });
        let err = choose(&none, &f, Some(&stage), "shop", now()).unwrap_err();
        assert_eq!(err.summary, "No freight matches the selector");
        assert!(err.detail.contains("warehouse \"other\""), "{}", err.detail);
    }

    #[test]
    fn values_follow_the_schema_shapes() {
        let f = &freights()[0];
        let summary = summary_value(f);
        let ty = freight_summary_attribute("x", "d").implied_type();
        assert_eq!(summary.get("alias"), &s("tall-fox"));
        assert_eq!(summary.get("warehouse"), &s("app"));
        let image = &summary.get("artifacts").get("images").elements()[0];
        assert_eq!(image.get("tag"), &s("1.0.0"));
        assert_eq!(image.get("digest"), &Value::Null);
        let round = Value::from_json(&summary.to_json().unwrap(), &ty);
        assert_eq!(round, summary, "the value fits the schema type");
        let changes = crate::kargo::freight::changes(Some(&freights()[0]), &freights()[1]);
        let v = changes_value(&changes);
        let ty = changes_attribute("changes", "d").implied_type();
        assert_eq!(Value::from_json(&v.to_json().unwrap(), &ty), v);
        assert_eq!(v.elements()[0].get("from"), &s("1.0.0"));
        assert_eq!(v.elements()[0].get("to"), &s("1.1.0"));
        assert_eq!(v.elements()[0].get("kind"), &s("image"));
    }

    fn carrying(name: &str, alias: Option<&str>, artifacts: Json) -> Freight {
        let mut j =
            json!({"metadata": {"name": name}, "origin": {"kind": "Warehouse", "name": "app"}});
        if let Some(a) = alias {
            j["alias"] = json!(a);
        }
        if let (Some(o), Some(extra)) = (j.as_object_mut(), artifacts.as_object()) {
            o.extend(extra.clone());
        }
        Freight::from_json(&j).unwrap()
    }

    #[test]
    fn summaries_list_what_changes_between_the_two_freights() {
        let image = |tag: &str| json!({"repoURL": "ghcr.io/acme/app", "tag": tag});
        let commit = json!({"repoURL": "https://github.com/acme/cfg", "id": "abcdef0123456789"});
        let from = carrying(
            "f1",
            Some("tall-fox"),
            json!({"images": [image("1.0.0")], "commits": [commit],
                   "charts": [{"repoURL": "oci://ghcr.io/acme/charts/old", "version": "0.1.0"}]}),
        );
        let to = carrying(
            "f2",
            Some("wise-owl"),
            json!({"images": [image("1.1.0")], "commits": [commit],
                   "charts": [{"repoURL": "https://charts.acme.io", "name": "app", "version": "2.0.0"}]}),
        );
        assert_eq!(
            promotion_summary("prod", Some(&from), &to),
            "prod: freight tall-fox (ghcr.io/acme/app 1.0.0, oci://ghcr.io/acme/charts/old 0.1.0) \
             → wise-owl (ghcr.io/acme/app 1.1.0, https://charts.acme.io/app 2.0.0)",
            "the commit is the same in both, the charts are one removed and one added"
        );
        let untagged = carrying("f3", None, json!({"commits": [commit]}));
        assert_eq!(
            promotion_summary("dev", None, &untagged),
            "dev: no freight → f3 (https://github.com/acme/cfg abcdef0)",
            "no alias: the name; an untagged commit: its short ID"
        );
        let same_artifacts = carrying("f4", Some("calm-elk"), json!({"images": [image("1.0.0")]}));
        let twin = carrying("f5", None, json!({"images": [image("1.0.0")]}));
        assert_eq!(
            promotion_summary("qa", Some(&same_artifacts), &twin),
            "qa: freight calm-elk (ghcr.io/acme/app 1.0.0) → f5 (ghcr.io/acme/app 1.0.0)",
            "nothing changes: everything is shown"
        );
        assert_eq!(
            promotion_summary("prod", Some(&to), &to),
            "prod: already at wise-owl"
        );
    }

    #[test]
    fn every_attribute_is_described() {
        fn walk(attrs: &[Attribute]) {
            for a in attrs {
                assert!(!a.description.is_empty(), "{} has no description", a.name);
                if let Some(o) = a.nested_object() {
                    walk(&o.attributes);
                }
            }
        }
        crate::resources::common::assert_described(&freight_choice(&ALL, "the freight"));
        walk(&[
            freight_summary_attribute("s", "d"),
            changes_attribute("c", "d"),
        ]);
    }
}
