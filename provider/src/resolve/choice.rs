//! The ways to choose a freight, shared by promotions, approvals and the freight data
//! source: their attributes, the computed freight attributes, and the choice decoded.

use crate::kargo::freight::{Artifact, Selector};
use crate::plugin::plan::values_equal;
use crate::plugin::schema::{AttributeType, Validator};
use crate::plugin::validate::validators::exactly_one_of;
use crate::plugin::{Attribute, AttributePath, Block, NestedBlock, NestedObject, Value};
use crate::resources::validators::{
    chart_repo_url, git_repo_url, image_repo_url, naming_path, object_name, semver_constraint,
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
pub fn selector_block(what: &str) -> NestedBlock {
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
pub fn with_attribute(mut block: NestedBlock, replacement: Attribute) -> NestedBlock {
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

/// `attr` with its nested attribute of the same name as `replacement` replaced by it.
pub fn replace_nested(mut attr: Attribute, replacement: Attribute) -> Attribute {
    if let AttributeType::Nested(object) = &mut attr.ty {
        for inner in &mut object.attributes {
            if inner.name == replacement.name {
                *inner = replacement.clone();
            }
        }
    }
    attr
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
            // Kargo's default until the warehouse says otherwise (see `with_strictness`).
            strict_semvers: true,
        }))
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

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::plugin::validate::validate_config;
    use crate::plugin::{Block, Severity};

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
