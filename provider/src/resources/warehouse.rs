//! `kargo_warehouse`: a Kargo Warehouse, the source of Freight, with its image, Git, Helm
//! chart and generic subscriptions, validated at plan time the way Kargo's webhook would.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value as Json};

use super::common::kargo_duration;
use super::convert::{
    ConvertError, ObjectResource, PipelineKind, Rules, object_from_json, object_to_json,
};
use super::templates::Pipeline;
use super::validators::{
    chart_repo_url, git_branch, git_repo_url, image_repo_url, json_object, naming_path, not_empty,
    path_selectors, platform, regex_list, removed, report, rfc3339, semver_constraint,
    semver_constraint_problem, timestamp_eq,
};
use crate::duration::duration_eq;
use crate::kargo::{self, KargoClient};
use crate::plugin::plan::semantic::json_eq;
use crate::plugin::validate::validators::{exactly_one_of, int_between, one_of};
use crate::plugin::{
    Attribute, AttributePath, AttributeType, Block, Diagnostics, NestedBlock, Shape, Type, Value,
};

/// The `kargo_warehouse` resource; construct with `WarehouseResource::new(provider_data)`.
pub type WarehouseResource = ObjectResource<Warehouse>;

/// Marker type describing Warehouses to [`ObjectResource`].
pub struct Warehouse;

const BUILTIN_KINDS: [&str; 3] = ["image", "git", "chart"];
const DEFAULT_DISCOVERY_LIMIT: i64 = 20;

static RULES: Rules = Rules {
    json: &["subscriptions.generic.config"],
    skip: &[
        // Converted by this file: a generic subscription is keyed by its type.
        "subscriptions",
        "subscriptions.generic",
        "subscriptions.generic.type",
        // Removed from Kargo; kept only to name their replacements.
        "subscriptions.image.allow_tags",
        "subscriptions.image.ignore_tags",
        "subscriptions.image.semver_constraint",
        "subscriptions.image.tag_selection_strategy",
        "subscriptions.git.allow_tags",
        "subscriptions.git.ignore_tags",
    ],
    wrap: &[],
    implied_default: &[],
    catch_all: &[("subscriptions", "generic")],
    report: false,
};

fn discovery_limit(what: &str) -> Attribute {
    Attribute::number("discovery_limit")
        .default(Value::int(DEFAULT_DISCOVERY_LIMIT))
        .validate(int_between(1, 100))
        .description(format!(
            "How many of the newest {what} Kargo keeps from each discovery, 1 to 100. Default `20`."
        ))
}

fn insecure_skip_tls_verify(what: &str) -> Attribute {
    Attribute::bool("insecure_skip_tls_verify")
        .optional()
        .description(format!(
            "Skip verification of the {what}'s TLS certificate. Unsafe outside test setups. \
         Default `false`."
        ))
}

fn allow_tags_regexes(what: &str) -> Attribute {
    Attribute::string_list("allow_tags_regexes")
        .optional()
        .validate(regex_list())
        .description(format!(
            "Regular expressions; only {what} matching at least one are considered. Unset: all."
        ))
}

fn ignore_tags_regexes(what: &str) -> Attribute {
    Attribute::string_list("ignore_tags_regexes")
        .optional()
        .validate(regex_list())
        .description(format!(
            "Regular expressions; {what} matching any of them are ignored."
        ))
}

fn removed_allow_tags() -> Attribute {
    Attribute::string("allow_tags")
        .optional()
        .deprecated("Removed in Kargo v1.11: use `allow_tags_regexes`.")
        .validate(removed(
            "Removed attribute",
            "`allow_tags` was removed in Kargo v1.11 (discovery fails when it is set); \
             use `allow_tags_regexes`, a list of regular expressions.",
        ))
        .description("Removed in Kargo v1.11: use `allow_tags_regexes`. Setting it is an error.")
}

fn removed_ignore_tags() -> Attribute {
    Attribute::string_list("ignore_tags")
        .optional()
        .deprecated("Removed in Kargo v1.11: use `ignore_tags_regexes`.")
        .validate(removed(
            "Removed attribute",
            "`ignore_tags` was removed in Kargo v1.11 (discovery fails when it is set); \
             use `ignore_tags_regexes`, a list of regular expressions (anchor a literal tag as \"^1\\\\.2\\\\.3$\").",
        ))
        .description(
            "Removed in Kargo v1.11: use `ignore_tags_regexes`. Setting it is an error.",
        )
}

fn image_subscription() -> Block {
    Block::new(vec![
        Attribute::string("repo_url")
            .required()
            .validate(image_repo_url())
            .description(
                "The image repository, without tag or digest, e.g. `public.ecr.aws/nginx/nginx`.",
            ),
        Attribute::string("image_selection_strategy")
            .default(Value::string("SemVer"))
            .validate(one_of(&["SemVer", "Lexical", "NewestBuild", "Digest"]))
            .description(
                "How the newest image is chosen: `SemVer` (highest semantic version tag), \
                 `Lexical` (lexically greatest tag), `NewestBuild` (most recently built) or \
                 `Digest` (the current digest of the mutable tag named by `constraint`). \
                 Default `SemVer`.",
            ),
        Attribute::string("constraint").optional().description(
            "With `SemVer`, a semantic version constraint tags must satisfy, e.g. `^1.29.0` \
             (checked at plan time). With `Digest`, required: the mutable tag to follow, e.g. \
             `latest`.",
        ),
        Attribute::bool("strict_semvers")
            .default(Value::Bool(true))
            .description(
                "With `SemVer`, consider only tags that are complete semantic versions \
                 (`1.2.3`, not `1.2`). Freight selectors (`freight_selector`) read this \
                 image's tags the same way. Default `true`.",
            ),
        allow_tags_regexes("tags"),
        ignore_tags_regexes("tags"),
        Attribute::string("platform")
            .optional()
            .validate(platform())
            .description(
                "Only images for this platform, `<os>/<arch>` such as `linux/amd64`, are \
                 considered.",
            ),
        discovery_limit("images"),
        Attribute::bool("cache_by_tag").optional().description(
            "Cache image metadata by tag, which saves registry calls. Safe only when tags are \
             never reused. Default `false`.",
        ),
        insecure_skip_tls_verify("registry"),
        removed_allow_tags(),
        removed_ignore_tags(),
        Attribute::string("semver_constraint")
            .optional()
            .deprecated("Removed in Kargo v1.9: use `constraint`.")
            .validate(removed(
                "Removed attribute",
                "The image subscription's `semver_constraint` was removed in Kargo v1.9; use \
                 `constraint`, which takes the same syntax.",
            ))
            .description("Removed in Kargo v1.9: use `constraint`. Setting it is an error."),
        removed_tag_selection_strategy(),
    ])
}

/// `tagSelectionStrategy` (e.g. `{semVer: {allowPrerelease: false}}`) appears in manifests
/// written for old or imagined Kargo versions. Terraform would reject it as an unexpected
/// argument anyway; this attribute is here to name what replaces it. It is typed as a map of
/// maps (what those manifests hold) rather than dynamically, because a dynamic attribute would
/// turn the `subscriptions` blocks into a tuple of objects.
fn removed_tag_selection_strategy() -> Attribute {
    Attribute::new(
        "tag_selection_strategy",
        AttributeType::Primitive(Type::map(Type::map(Type::String))),
    )
    .optional()
    .deprecated(
        "Not a Kargo field: use `image_selection_strategy`, `constraint` and \
             `strict_semvers`.",
    )
    .validate(removed(
        "Removed attribute",
        "Kargo's image subscriptions have no `tag_selection_strategy` (`tagSelectionStrategy`); \
             it is replaced by `image_selection_strategy` (`SemVer`, `Lexical`, `NewestBuild` or \
             `Digest`) with `constraint` for the tags to consider. Prereleases are considered \
             only when `constraint` names one (e.g. `>=1.0.0-0`), and `strict_semvers` decides \
             whether partial versions such as `1.2` count.",
    ))
    .description(
        "Removed: not a Kargo field; use `image_selection_strategy`, `constraint` (a \
             constraint naming a prerelease admits prereleases) and `strict_semvers`. Setting \
             it is an error, and it is never sent to Kargo.",
    )
}

fn git_subscription() -> Block {
    Block::new(vec![
        Attribute::string("repo_url")
            .required()
            .validate(git_repo_url())
            .description(
                "The Git repository, e.g. `https://github.com/example/app.git`. SSH URLs work but \
                 Kargo deprecates them.",
            ),
        Attribute::string("commit_selection_strategy")
            .default(Value::string("NewestFromBranch"))
            .validate(one_of(&[
                "NewestFromBranch",
                "SemVer",
                "Lexical",
                "NewestTag",
            ]))
            .description(
                "How the commit is chosen: `NewestFromBranch` (head of `branch`), `SemVer` \
                 (tag with the highest semantic version), `Lexical` (lexically greatest tag) or \
                 `NewestTag` (most recent tag). Default `NewestFromBranch`.",
            ),
        Attribute::string("branch")
            .optional()
            .validate(git_branch())
            .description(
                "With `NewestFromBranch`, the branch to follow. Unset: the repository's default \
                 branch.",
            ),
        Attribute::bool("strict_semvers")
            .default(Value::Bool(true))
            .description(
                "With `SemVer`, consider only tags that are complete semantic versions. Freight \
                 selectors (`freight_selector`) read this repository's tags the same way. \
                 Default `true`.",
            ),
        Attribute::string("semver_constraint")
            .optional()
            .validate(semver_constraint())
            .description(
                "With `SemVer`, a semantic version constraint tags must satisfy, e.g. `^1.0.0`.",
            ),
        allow_tags_regexes("tags"),
        ignore_tags_regexes("tags"),
        Attribute::string("expression_filter")
            .optional()
            .description(
                "An expression (expr-lang) commits or tags must satisfy, e.g. \
             `!(subject contains 'skip-ci')`.",
            ),
        Attribute::string_list("include_paths")
            .optional()
            .validate(path_selectors())
            .description(
                "Only commits touching one of these paths count. Entries are paths, \
                 `glob:<pattern>` or `regex:<expression>`.",
            ),
        Attribute::string_list("exclude_paths")
            .optional()
            .validate(path_selectors())
            .description(
                "Commits touching only these paths are ignored. Entries are paths, \
                 `glob:<pattern>` or `regex:<expression>`.",
            ),
        Attribute::string("since")
            .optional()
            .validate(rfc3339())
            .semantic_eq(timestamp_eq)
            .description(
                "Ignore commits (or tags) older than this RFC 3339 timestamp, e.g. \
                 `2024-05-01T00:00:00Z`.",
            ),
        Attribute::bool("blobless").optional().description(
            "Clone without file contents (a blobless clone), which is faster for large \
             repositories. Default `false`.",
        ),
        discovery_limit("commits"),
        insecure_skip_tls_verify("Git server"),
        removed_allow_tags(),
        removed_ignore_tags(),
    ])
}

fn chart_subscription() -> Block {
    Block::new(vec![
        Attribute::string("repo_url")
            .required()
            .validate(chart_repo_url())
            .description(
                "The chart repository: `https://…` for a classic Helm repository or `oci://…` \
                 for a chart in an OCI registry (the URL then names the chart itself).",
            ),
        Attribute::string("name").optional().description(
            "The chart's name. Required for `https://` repositories; must be unset for `oci://`.",
        ),
        Attribute::string("semver_constraint")
            .optional()
            .validate(semver_constraint())
            .description(
                "A semantic version constraint chart versions must satisfy, e.g. `^2.0.0`.",
            ),
        discovery_limit("chart versions"),
        insecure_skip_tls_verify("chart repository"),
    ])
}

fn generic_subscription() -> Block {
    Block::new(vec![
        Attribute::string("type")
            .required()
            .validate(not_empty())
            .description(
                "The subscription type registered with Kargo (not `image`, `git` or `chart`). \
                 Kargo stores the subscription under this key.",
            ),
        Attribute::string("name")
            .required()
            .validate(not_empty())
            .description(
                "Name of the subscription, unique among the warehouse's generic subscriptions.",
            ),
        Attribute::string("config")
            .optional()
            .validate(json_object())
            .semantic_eq(json_eq)
            .description(
                "Type-specific settings as a JSON object: write `jsonencode({ ... })`. Compared \
                 as JSON, so key order and formatting never show as changes.",
            ),
        discovery_limit("artifacts"),
    ])
}

/// `subscriptions`: a list of blocks, each with exactly one of the `image`, `git`, `chart` and
/// `generic` blocks, as Kargo's list of one-key objects.
fn subscriptions_block() -> NestedBlock {
    let kinds = Block::default()
        .block(
            NestedBlock::single("image", image_subscription())
                .description("Subscribe to a container image repository."),
        )
        .block(
            NestedBlock::single("git", git_subscription())
                .description("Subscribe to a Git repository."),
        )
        .block(
            NestedBlock::single("chart", chart_subscription())
                .description("Subscribe to a Helm chart repository."),
        )
        .block(
            NestedBlock::single("generic", generic_subscription()).description(
                "Subscribe to an artifact source of another type registered with Kargo.",
            ),
        );
    NestedBlock::list("subscriptions", kinds)
        .required()
        .validate(naming_path(exactly_one_of(&[
            "image", "git", "chart", "generic",
        ])))
        .description(
            "What the warehouse watches: one block per subscription, at least one. Each sets \
             exactly one of `image`, `git`, `chart` or `generic`. A repository may appear once \
             per kind (a Helm repository once per chart).",
        )
}

/// The shape of one subscription, and of its `generic` block, in the warehouse's spec.
fn subscription_shapes(spec: &Block) -> (Shape<'_>, Shape<'_>) {
    let sub = spec
        .nested_block("subscriptions")
        .map_or(Shape::EMPTY, |b| b.block.shape());
    let generic = sub
        .block("generic")
        .map_or(Shape::EMPTY, |b| b.block.shape());
    (sub, generic)
}

fn subscription_to_json(
    spec: &Block,
    sub: &Value,
    at: &AttributePath,
) -> Result<Json, ConvertError> {
    let (sub_shape, generic_shape) = subscription_shapes(spec);
    let mut out = object_to_json(sub_shape, sub, &RULES, "subscriptions", at)?;
    let generic = sub.get("generic");
    if !generic.is_null() {
        let generic_at = at.join_attr("generic");
        let ty = generic.get("type").as_str().ok_or_else(|| ConvertError {
            path: generic_at.join_attr("type"),
            message: "The generic subscription's `type` must be known.".into(),
        })?;
        let inner = object_to_json(
            generic_shape,
            generic,
            &RULES,
            "subscriptions.generic",
            &generic_at,
        )?;
        out.insert(ty.to_string(), Json::Object(inner));
    }
    Ok(Json::Object(out))
}

fn subscription_from_json(spec: &Block, sub: &Json, prior: &Value) -> Value {
    let Some(object) = sub.as_object() else {
        return Value::Null;
    };
    let (sub_shape, generic_shape) = subscription_shapes(spec);
    let generic = object
        .iter()
        .find(|(k, _)| !BUILTIN_KINDS.contains(&k.as_str()));
    let mut out = object_from_json(sub_shape, Some(object), prior, &RULES, "subscriptions");
    if let Some((ty, inner)) = generic {
        let mut g = object_from_json(
            generic_shape,
            inner.as_object(),
            prior.get("generic"),
            &RULES,
            "subscriptions.generic",
        );
        g.set("type", Value::string(ty));
        out.set("generic", g);
    }
    out
}

#[async_trait]
impl PipelineKind for Warehouse {
    const TYPE_NAME: &'static str = "kargo_warehouse";
    type Object = kargo::Warehouse;

    fn description() -> String {
        "A Kargo warehouse: it watches container image, Git and Helm chart repositories (its \
         subscriptions) and packages the newest artifacts it finds into Freight, which stages \
         then promote.\n\nServer-side defaults (`interval`, selection strategies, \
         `strict_semvers`, `discovery_limit`) are planned as known values, so a plan shows \
         exactly what Kargo will store. Kargo's own rules (unique subscriptions, valid semver \
         constraints and regular expressions, chart names, tags in image URLs) are checked at \
         plan time, before anything reaches the cluster."
            .into()
    }

    fn spec() -> Block {
        Block::new(vec![
            Attribute::string("shard").optional().description(
                "The Kargo controller shard that reconciles this warehouse. Kargo mirrors it into \
                 the `kargo.akuity.io/shard` label. Unset: the default controller.",
            ),
            Attribute::string("interval")
                .default(Value::string("5m0s"))
                .validate(kargo_duration())
                .semantic_eq(duration_eq)
                .description(
                    "How often Kargo looks for new artifacts, e.g. `5m` or `1h30m` (units `s`, \
                     `m`, `h`). Default `5m0s`. Equivalent spellings (`10m`, `10m0s`, `600s`) \
                     never show as changes. Kargo may enforce a minimum.",
                ),
            Attribute::string("freight_creation_policy")
                .default(Value::string("Automatic"))
                .validate(one_of(&["Automatic", "Manual"]))
                .description(
                    "`Automatic`: Kargo creates Freight as soon as new artifacts are found (and \
                     `freight_creation_criteria` holds). `Manual`: Freight is only assembled by \
                     hand. Default `Automatic`.",
                ),
            Attribute::string("last_freight").computed().description(
                "Name (ID) of the newest Freight this warehouse produced, as Kargo reports it.",
            ),
        ])
        .block(
            NestedBlock::single(
                "freight_creation_criteria",
                Block::new(vec![
                    Attribute::string("expression")
                        .required()
                        .validate(not_empty())
                        .description(
                            "An expr-lang expression that must be true for Freight to be \
                             created, e.g. `imageFrom('repo').Tag == chartFrom('url', 'app').Version`.",
                        ),
                ]),
            )
            .description(
                "Conditions new artifacts must meet before Freight is created automatically. \
                 Ignored with `freight_creation_policy = \"Manual\"`.",
            ),
        )
        .block(subscriptions_block())
    }

    fn rules() -> &'static Rules {
        &RULES
    }

    fn validate(config: &Value, diags: &mut Diagnostics) {
        validate_subscriptions(config.get("subscriptions"), diags);
    }

    fn validate_in_pipeline(config: &Value, pipeline: &Pipeline, _diags: &mut Diagnostics) {
        pipeline.record_warehouse(config);
    }

    fn spec_to_json(spec: &Block, state: &Value) -> Result<Json, ConvertError> {
        let root = AttributePath::root();
        let mut out = object_to_json(spec.shape(), state, &RULES, "", &root)?;
        let at = root.join_attr("subscriptions");
        let subs = state
            .get("subscriptions")
            .elements()
            .iter()
            .enumerate()
            .map(|(i, s)| subscription_to_json(spec, s, &at.join_index(i)))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert("subscriptions".into(), Json::Array(subs));
        Ok(Json::Object(out))
    }

    fn spec_from_json(spec: &Block, live: Option<&Map<String, Json>>, prior: &Value) -> Value {
        let mut state = object_from_json(spec.shape(), live, prior, &RULES, "");
        let priors = prior.get("subscriptions").elements();
        let subs: Vec<Value> = live
            .and_then(|s| s.get("subscriptions"))
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        subscription_from_json(spec, s, priors.get(i).unwrap_or(&Value::Null))
                    })
                    .collect()
            })
            .unwrap_or_default();
        state.set("subscriptions", Value::List(subs));
        state
    }

    async fn status(
        _client: &KargoClient,
        live: &kargo::Warehouse,
        _prior: &Value,
    ) -> Vec<(&'static str, Value)> {
        // The newest freight the warehouse's own discovery produced; null until it has.
        let last = live.status.last_freight_id.as_deref();
        vec![("last_freight", last.map_or(Value::Null, Value::string))]
    }
}

/// Image repository as Kargo compares them: Docker Hub's host and `library/` dropped.
pub(crate) fn normalize_image(url: &str) -> String {
    let mut u = url.trim().to_ascii_lowercase();
    for host in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = u.strip_prefix(host) {
            u = rest.to_string();
            break;
        }
    }
    u.strip_prefix("library/").map(str::to_string).unwrap_or(u)
}

pub(crate) use crate::kargo::urls::normalize_git;

/// Chart repository as Kargo compares them: `oci://` dropped, then as an image repository.
pub(crate) fn normalize_chart(url: &str) -> String {
    let u = url.trim().to_ascii_lowercase();
    normalize_image(u.strip_prefix("oci://").unwrap_or(&u))
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Kargo's webhook rules for subscriptions that the schema cannot express: uniqueness, the
/// strategy-dependent `constraint`, and chart names. Unknown values are skipped.
fn validate_subscriptions(subs: &Value, diags: &mut Diagnostics) {
    let base = AttributePath::attr("subscriptions");
    let mut seen: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut unique = |key: (&'static str, String),
                      i: usize,
                      at: AttributePath,
                      what: String,
                      diags: &mut Diagnostics| {
        match seen.get(&key) {
            Some(first) => report(
                diags,
                at,
                "Duplicate subscription",
                format!(
                    "{what} is already subscribed to by `subscriptions[{first}]`; Kargo allows one \
                     subscription per repository{}.",
                    if key.0 == "chart-http" {
                        " and chart"
                    } else {
                        ""
                    }
                ),
            ),
            None => {
                seen.insert(key, i);
            }
        }
    };
    for (i, sub) in subs.elements().iter().enumerate() {
        let at = base.join_index(i);
        let image = sub.get("image");
        if let Some(url) = image.get("repo_url").as_str() {
            let at = at.join_attr("image");
            unique(
                ("image", normalize_image(url)),
                i,
                at.join_attr("repo_url"),
                format!("Image repository {url:?}"),
                diags,
            );
            check_image_constraint(image, &at, diags);
        }
        let git = sub.get("git");
        if let Some(url) = git.get("repo_url").as_str() {
            let at = at.join_attr("git").join_attr("repo_url");
            unique(
                ("git", normalize_git(url)),
                i,
                at,
                format!("Git repository {url:?}"),
                diags,
            );
        }
        let chart = sub.get("chart");
        if let Some(url) = chart.get("repo_url").as_str() {
            let at = at.join_attr("chart");
            check_chart_name(chart, url, &at, diags);
            let name = chart.get("name");
            if is_http(url) {
                if let Some(name) = name.as_str() {
                    unique(
                        ("chart-http", format!("{}:{name}", normalize_chart(url))),
                        i,
                        at.join_attr("name"),
                        format!("Chart {name:?} of {url:?}"),
                        diags,
                    );
                }
            } else {
                unique(
                    ("chart", normalize_chart(url)),
                    i,
                    at.join_attr("repo_url"),
                    format!("Chart repository {url:?}"),
                    diags,
                );
            }
        }
        let generic = sub.get("generic");
        let at = at.join_attr("generic");
        if let Some(ty) = generic.get("type").as_str()
            && BUILTIN_KINDS.contains(&ty)
        {
            report(
                diags,
                at.join_attr("type"),
                "Invalid subscription type",
                format!(
                    "Use the `{ty}` attribute for {ty} subscriptions; `generic` is for other types."
                ),
            );
        }
        if let Some(name) = generic.get("name").as_str() {
            unique(
                ("generic", name.trim().to_ascii_lowercase()),
                i,
                at.join_attr("name"),
                format!("A generic subscription named {name:?}"),
                diags,
            );
        }
    }
}

fn check_image_constraint(image: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    let strategy = image.get("image_selection_strategy");
    let constraint = image.get("constraint");
    let at = at.join_attr("constraint");
    match (strategy.as_str(), constraint) {
        (Some("Digest"), Value::Null) => report(
            diags,
            at,
            "Missing constraint",
            "With `image_selection_strategy = \"Digest\"`, `constraint` is required: it names the \
             mutable tag whose digest is followed, e.g. \"latest\".",
        ),
        (Some("Digest"), Value::String(s)) if s.is_empty() => report(
            diags,
            at,
            "Missing constraint",
            "With `image_selection_strategy = \"Digest\"`, `constraint` must name the mutable tag \
             to follow, e.g. \"latest\".",
        ),
        (Some("SemVer") | None, Value::String(s)) if !strategy.is_unknown() && !s.is_empty() => {
            if let Some(problem) = semver_constraint_problem(s) {
                report(
                    diags,
                    at,
                    "Invalid semver constraint",
                    format!(
                        "{s:?} {problem}. With the SemVer strategy `constraint` is a semantic \
                         version constraint such as `^1.2.0` or `>=1.2, <2.0`."
                    ),
                );
            }
        }
        _ => {}
    }
}

fn check_chart_name(chart: &Value, url: &str, at: &AttributePath, diags: &mut Diagnostics) {
    let name = chart.get("name");
    if name.is_unknown() {
        return;
    }
    let has_name = name.as_str().is_some_and(|n| !n.is_empty());
    if url.starts_with("oci://") && has_name {
        report(
            diags,
            at.join_attr("name"),
            "Unexpected chart name",
            format!(
                "For an OCI repository the URL names the chart itself, so `name` must be unset \
                 (e.g. repo_url = \"{}/<chart>\").",
                url.trim_end_matches('/')
            ),
        );
    } else if is_http(url) && !has_name {
        report(
            diags,
            at.join_attr("name"),
            "Missing chart name",
            format!(
                "A classic Helm repository ({url:?}) holds many charts: set `name` to the chart to follow."
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugin::Context;
    use crate::plugin::Resource as _;
    use crate::resources::convert::test_support::*;

    const QUICKSTART: &str = "akuity_kargo__docs_docs_20-quickstart_index.yaml";
    const DOKA: &str = "thatmlopsguy_dokaseca-addons__kargo_rustfs_warehouse.yaml";

    async fn body_for(r: &WarehouseResource, config: &Value) -> Json {
        let planned = plan(r, config, &Value::Null).await.planned_state;
        r.body(&planned).unwrap()
    }

    #[tokio::test]
    async fn quickstart_warehouse_matches_the_fixture() {
        if !crate::resources::convert::test_support::fixtures_present() {
            return;
        }
        let r = resource::<Warehouse>();
        let config = config(
            &r,
            json!({
                "project": "kargo-demo",
                "name": "kargo-demo",
                "subscriptions": [{"image": {
                    "repo_url": "public.ecr.aws/nginx/nginx",
                    "constraint": "^1.29.0",
                    "discovery_limit": 5,
                }}],
            }),
        );
        assert!(
            validate(&r, &config).is_empty(),
            "{:?}",
            validate(&r, &config)
        );
        let body = body_for(&r, &config).await;
        let expected = fixture(QUICKSTART, "Warehouse", "kargo-demo");
        assert_eq!(
            body["spec"],
            with_kargo_defaults("Warehouse", &expected["spec"])
        );
        assert_eq!(body["metadata"], json!({}));
        let live = stored(
            "Warehouse",
            Some("kargo-demo"),
            "kargo-demo",
            &body,
            json!({"lastFreightID": "f00d"}),
        );
        let state = assert_no_drift(&r, &config, &live, "kargo-demo/kargo-demo").await;
        assert_eq!(state.get("id"), &s("kargo-demo/kargo-demo"));
        assert_eq!(state.get("last_freight"), &s("f00d"));
        assert_eq!(state.get("interval"), &s("5m0s"));
        let image = state.get("subscriptions").elements()[0].get("image");
        assert_eq!(image.get("image_selection_strategy"), &s("SemVer"));
        assert_eq!(image.get("strict_semvers"), &Value::Bool(true));
        assert_eq!(image.get("discovery_limit"), &Value::int(5));
    }

    #[tokio::test]
    async fn dokaseca_chart_warehouse_matches_the_fixture() {
        if !crate::resources::convert::test_support::fixtures_present() {
            return;
        }
        let r = resource::<Warehouse>();
        let config = config(
            &r,
            json!({
                "project": "rustfs-addon",
                "name": "rustfs-charts",
                "subscriptions": [{"chart": {"repo_url": "https://charts.rustfs.com", "name": "rustfs"}}],
            }),
        );
        assert!(
            validate(&r, &config).is_empty(),
            "{:?}",
            validate(&r, &config)
        );
        let body = body_for(&r, &config).await;
        let expected = fixture(DOKA, "Warehouse", "rustfs-charts");
        assert_eq!(
            body["spec"],
            with_kargo_defaults("Warehouse", &expected["spec"])
        );
        let live = stored(
            "Warehouse",
            Some("rustfs-addon"),
            "rustfs-charts",
            &body,
            json!({}),
        );
        let state = assert_no_drift(&r, &config, &live, "rustfs-addon/rustfs-charts").await;
        assert_eq!(state.get("last_freight"), &Value::Null);
    }

    #[tokio::test]
    async fn every_field_round_trips_and_kargo_respellings_never_diff() {
        let r = resource::<Warehouse>();
        let config = config(
            &r,
            json!({
                "project": "shop",
                "name": "everything",
                "labels": {"team": "payments"},
                "annotations": {"kargo.akuity.io/description": "all subscription kinds"},
                "shard": "eu-1",
                "interval": "10m",
                "freight_creation_policy": "Manual",
                "freight_creation_criteria": {"expression": "imageFrom('ghcr.io/acme/api').Tag != ''"},
                "subscriptions": [
                    {"image": {
                        "repo_url": "ghcr.io/acme/api",
                        "image_selection_strategy": "Digest",
                        "constraint": "latest",
                        "strict_semvers": false,
                        "allow_tags_regexes": ["^v\\d+"],
                        "ignore_tags_regexes": ["-rc$"],
                        "platform": "linux/amd64",
                        "cache_by_tag": true,
                        "insecure_skip_tls_verify": true,
                    }},
                    {"git": {
                        "repo_url": "https://github.com/acme/deploy.git",
                        "commit_selection_strategy": "SemVer",
                        "branch": "main",
                        "semver_constraint": ">=1.0, <2",
                        "expression_filter": "!(subject contains 'skip')",
                        "include_paths": ["apps/api", "regex:^charts/"],
                        "exclude_paths": ["glob:docs/**"],
                        "since": "2024-05-01T02:00:00+02:00",
                        "blobless": true,
                        "discovery_limit": 50,
                    }},
                    {"chart": {"repo_url": "oci://ghcr.io/acme/charts/api", "semver_constraint": "^2"}},
                    {"generic": {
                        "type": "s3",
                        "name": "bundles",
                        "config": jsonencode(json!({"bucket": "acme", "prefix": "${{ vars.env }}/"})),
                    }},
                ],
            }),
        );
        assert!(
            validate(&r, &config).is_empty(),
            "{:?}",
            validate(&r, &config)
        );
        let body = body_for(&r, &config).await;
        assert_eq!(
            body,
            json!({
                "metadata": {
                    "labels": {"team": "payments"},
                    "annotations": {"kargo.akuity.io/description": "all subscription kinds"},
                },
                "spec": {
                    "shard": "eu-1",
                    "interval": "10m",
                    "freightCreationPolicy": "Manual",
                    "freightCreationCriteria": {"expression": "imageFrom('ghcr.io/acme/api').Tag != ''"},
                    "subscriptions": [
                        {"image": {
                            "repoURL": "ghcr.io/acme/api",
                            "imageSelectionStrategy": "Digest",
                            "constraint": "latest",
                            "strictSemvers": false,
                            "allowTagsRegexes": ["^v\\d+"],
                            "ignoreTagsRegexes": ["-rc$"],
                            "platform": "linux/amd64",
                            "discoveryLimit": 20,
                            "cacheByTag": true,
                            "insecureSkipTLSVerify": true,
                        }},
                        {"git": {
                            "repoURL": "https://github.com/acme/deploy.git",
                            "commitSelectionStrategy": "SemVer",
                            "branch": "main",
                            "strictSemvers": true,
                            "semverConstraint": ">=1.0, <2",
                            "expressionFilter": "!(subject contains 'skip')",
                            "includePaths": ["apps/api", "regex:^charts/"],
                            "excludePaths": ["glob:docs/**"],
                            "since": "2024-05-01T02:00:00+02:00",
                            "blobless": true,
                            "discoveryLimit": 50,
                        }},
                        {"chart": {"repoURL": "oci://ghcr.io/acme/charts/api", "semverConstraint": "^2", "discoveryLimit": 20}},
                        {"s3": {"name": "bundles", "config": {"bucket": "acme", "prefix": "${{ vars.env }}/"}, "discoveryLimit": 20}},
                    ],
                },
            })
        );
        // Kargo re-spells the interval and the timestamp, returns the generic config with its
        // keys in another order, and annotates the object for its own purposes.
        let mut live = stored("Warehouse", Some("shop"), "everything", &body, json!({}));
        live["spec"]["subscriptions"][1]["git"]["since"] = json!("2024-05-01T00:00:00Z");
        live["spec"]["subscriptions"][3]["s3"]["config"] =
            json!({"prefix": "${{ vars.env }}/", "bucket": "acme"});
        live["metadata"]["annotations"]["kargo.akuity.io/refresh"] = json!("2025-01-01T00:00:00Z");
        let state = assert_no_drift(&r, &config, &live, "shop/everything").await;
        assert_eq!(state.get("interval"), &s("10m"));
        let generic = state.get("subscriptions").elements()[3].get("generic");
        assert_eq!(generic.get("type"), &s("s3"));
        assert_eq!(generic.get("discovery_limit"), &Value::int(20));
        assert_eq!(
            state.get("labels"),
            &Value::Map([("team".to_string(), s("payments"))].into()),
            "Kargo's shard label is not adopted"
        );

        // A real change made outside Terraform shows as drift on the right attribute.
        live["spec"]["subscriptions"][0]["image"]["constraint"] = json!("stable");
        let client = offline_client();
        let drifted = r
            .state_from_live(&client, &state, &crate::kargo::decode(live).unwrap(), false)
            .await;
        let replanned = plan(&r, &config, &drifted).await.planned_state;
        assert_eq!(
            replanned.get("subscriptions").elements()[0]
                .get("image")
                .get("constraint"),
            &s("latest")
        );
        assert_eq!(
            drifted.get("subscriptions").elements()[0]
                .get("image")
                .get("constraint"),
            &s("stable")
        );
    }

    #[tokio::test]
    async fn changes_update_in_place_and_identity_changes_replace() {
        let r = resource::<Warehouse>();
        let base = json!({
            "project": "p",
            "name": "w",
            "subscriptions": [{"git": {"repo_url": "https://github.com/acme/app"}}],
        });
        let prior = plan(&r, &config(&r, base.clone()), &Value::Null)
            .await
            .planned_state;
        let mut changed = base.clone();
        changed["interval"] = json!("1h");
        let p = plan(&r, &config(&r, changed), &prior).await;
        assert!(p.requires_replace.is_empty());
        assert_eq!(p.planned_state.get("interval"), &s("1h"));
        assert_eq!(p.planned_state.get("last_freight"), &Value::Unknown);
        let mut renamed = base.clone();
        renamed["name"] = json!("w2");
        let p = plan(&r, &config(&r, renamed), &prior).await;
        assert_eq!(p.requires_replace, vec![AttributePath::attr("name")]);
        let mut moved = base;
        moved["project"] = json!("q");
        let p = plan(&r, &config(&r, moved), &prior).await;
        assert_eq!(p.requires_replace, vec![AttributePath::attr("project")]);
        assert_eq!(p.planned_state.get("id"), &s("q/w"));
    }

    fn validation_errors(subscriptions: Json) -> Vec<(String, String, String)> {
        let r = resource::<Warehouse>();
        let config = config(
            &r,
            json!({"project": "p", "name": "w", "subscriptions": subscriptions}),
        );
        errors(&validate(&r, &config))
    }

    fn paths(errors: &[(String, String, String)]) -> Vec<&str> {
        errors.iter().map(|(p, _, _)| p.as_str()).collect()
    }

    #[test]
    fn names_durations_and_enums_are_checked_at_plan() {
        let r = resource::<Warehouse>();
        let config = config(
            &r,
            json!({
                "project": "Not_A_Label",
                "name": "bad name",
                "interval": "5 minutes",
                "freight_creation_policy": "Sometimes",
                "subscriptions": [{"image": {
                    "repo_url": "nginx",
                    "image_selection_strategy": "Newest",
                    "discovery_limit": 101,
                    "platform": "linux",
                }}],
            }),
        );
        let found = errors(&validate(&r, &config));
        assert_eq!(
            paths(&found),
            vec![
                "project",
                "name",
                "interval",
                "freight_creation_policy",
                "subscriptions[0].image.image_selection_strategy",
                "subscriptions[0].image.platform",
                "subscriptions[0].image.discovery_limit",
            ]
        );
        assert!(found[2].2.contains("units s, m or h"), "{}", found[2].2);
    }

    #[test]
    fn subscriptions_need_exactly_one_kind() {
        let found = validation_errors(json!([
            {"image": {"repo_url": "nginx"}, "git": {"repo_url": "https://github.com/a/b"}},
            {},
        ]));
        assert_eq!(
            paths(&found),
            vec!["subscriptions[0].git", "subscriptions[1]"]
        );
        let found = validation_errors(json!([]));
        assert_eq!(paths(&found), vec!["subscriptions"]);
    }

    #[test]
    fn image_rules() {
        let found = validation_errors(json!([
            {"image": {"repo_url": "ghcr.io/acme/app:1.2.3"}},
            {"image": {"repo_url": "ghcr.io/acme/other", "image_selection_strategy": "Digest"}},
            {"image": {"repo_url": "ghcr.io/acme/third", "constraint": "^1.2.3.4"}},
            {"image": {"repo_url": "ghcr.io/acme/lexical", "image_selection_strategy": "Lexical", "constraint": "not semver"}},
            {"image": {"repo_url": "ghcr.io/acme/regex", "allow_tags_regexes": ["(unclosed"]}},
        ]));
        assert_eq!(
            paths(&found),
            vec![
                "subscriptions[0].image.repo_url",
                "subscriptions[4].image.allow_tags_regexes[0]",
                "subscriptions[1].image.constraint",
                "subscriptions[2].image.constraint",
            ]
        );
        assert!(found[0].2.contains("contains a tag or digest"));
        assert!(found[2].2.contains("mutable tag"));
    }

    #[test]
    fn removed_fields_name_their_replacement() {
        let found = validation_errors(json!([
            {"image": {"repo_url": "ghcr.io/acme/app", "allow_tags": "^v1", "ignore_tags": ["v1.0.0"], "semver_constraint": "^1"}},
            {"git": {"repo_url": "https://github.com/a/b", "allow_tags": "^v1"}},
        ]));
        assert_eq!(
            paths(&found),
            vec![
                "subscriptions[0].image.allow_tags",
                "subscriptions[0].image.ignore_tags",
                "subscriptions[0].image.semver_constraint",
                "subscriptions[1].git.allow_tags",
            ]
        );
        assert!(
            found[0].2.contains("removed in Kargo v1.11")
                && found[0].2.contains("allow_tags_regexes")
        );
        assert!(found[1].2.contains("ignore_tags_regexes"));
        assert!(found[2].2.contains("use `constraint`") && found[2].2.contains("v1.9"));
    }

    #[test]
    fn duplicates_are_found_after_normalising_urls() {
        let found = validation_errors(json!([
            {"image": {"repo_url": "nginx"}},
            {"image": {"repo_url": "docker.io/library/nginx"}},
            {"git": {"repo_url": "https://github.com/Acme/App.git"}},
            {"git": {"repo_url": "https://token@github.com/acme/app/"}},
            {"chart": {"repo_url": "https://charts.example.com", "name": "a"}},
            {"chart": {"repo_url": "https://charts.example.com", "name": "b"}},
            {"chart": {"repo_url": "https://charts.example.com/", "name": "a"}},
            {"chart": {"repo_url": "oci://ghcr.io/acme/chart"}},
            {"chart": {"repo_url": "oci://GHCR.io/acme/chart"}},
            {"generic": {"type": "s3", "name": "Bundles"}},
            {"generic": {"type": "gcs", "name": "bundles "}},
        ]));
        assert_eq!(
            paths(&found),
            vec![
                "subscriptions[1].image.repo_url",
                "subscriptions[3].git.repo_url",
                "subscriptions[8].chart.repo_url",
                "subscriptions[10].generic.name",
            ]
        );
        assert!(found[0].2.contains("subscriptions[0]"), "{}", found[0].2);
        // A trailing slash on a classic chart repository is a different URL to Kargo.
        assert!(!paths(&found).contains(&"subscriptions[6].chart.name"));
        let found = validation_errors(json!([
            {"chart": {"repo_url": "https://charts.example.com", "name": "a"}},
            {"chart": {"repo_url": "https://charts.example.com", "name": "a"}},
        ]));
        assert_eq!(paths(&found), vec!["subscriptions[1].chart.name"]);
    }

    #[test]
    fn chart_git_and_generic_rules() {
        let found = validation_errors(json!([
            {"chart": {"repo_url": "https://charts.example.com"}},
            {"chart": {"repo_url": "oci://ghcr.io/acme/chart", "name": "chart"}},
            {"chart": {"repo_url": "ftp://charts.example.com", "name": "x"}},
            {"git": {"repo_url": "https://github.com/a/b", "branch": "feature/", "semver_constraint": "~>", "since": "yesterday"}},
            {"generic": {"type": "image", "name": "x", "config": "[1, 2]"}},
        ]));
        assert_eq!(
            paths(&found),
            vec![
                "subscriptions[2].chart.repo_url",
                "subscriptions[3].git.branch",
                "subscriptions[3].git.semver_constraint",
                "subscriptions[3].git.since",
                "subscriptions[4].generic.config",
                "subscriptions[0].chart.name",
                "subscriptions[1].chart.name",
                "subscriptions[4].generic.type",
            ]
        );
    }

    #[test]
    fn unknown_values_are_accepted_at_plan() {
        let r = resource::<Warehouse>();
        let mut config = config(
            &r,
            json!({
                "project": "p",
                "name": "w",
                "subscriptions": [
                    {"image": {"repo_url": "ghcr.io/acme/app", "image_selection_strategy": "Digest"}},
                    {"chart": {"repo_url": "https://charts.example.com"}},
                ],
            }),
        );
        let mut subs = config.get("subscriptions").elements().to_vec();
        let mut image = subs[0].get("image").clone();
        image.set("constraint", Value::Unknown);
        subs[0].set("image", image);
        let mut chart = subs[1].get("chart").clone();
        chart.set("name", Value::Unknown);
        subs[1].set("chart", chart);
        config.set("subscriptions", Value::List(subs));
        config.set("interval", Value::Unknown);
        assert!(
            validate(&r, &config).is_empty(),
            "{:?}",
            validate(&r, &config)
        );
        let mut whole = config.clone();
        whole.set("subscriptions", Value::Unknown);
        assert!(validate(&r, &whole).is_empty());
    }

    #[test]
    fn kargo_errors_land_on_the_attribute_they_name() {
        let r = resource::<Warehouse>();
        for (field, expected) in [
            (
                "spec.subscriptions[1].image.repoURL",
                Some("subscriptions[1].image.repo_url"),
            ),
            (
                "spec.subscriptions[0].image.image",
                Some("subscriptions[0].image"),
            ),
            (
                "spec.subscriptions[2].s3.discoveryLimit",
                Some("subscriptions[2].generic.discovery_limit"),
            ),
            (
                "spec.subscriptions[0].git.includePaths[1]",
                Some("subscriptions[0].git.include_paths[1]"),
            ),
            ("spec.interval", Some("interval")),
            (
                "spec.freightCreationCriteria.expression",
                Some("freight_creation_criteria.expression"),
            ),
            ("metadata.namespace", Some("project")),
            ("metadata.labels[team]", Some("labels[\"team\"]")),
            ("status.lastFreightID", None),
        ] {
            assert_eq!(
                r.attribute_for_field(field)
                    .map(|p| p.to_string())
                    .as_deref(),
                expected,
                "{field}"
            );
        }
    }

    #[tokio::test]
    async fn import_ids_are_checked() {
        let r = resource::<Warehouse>();
        let ok = r.import(&Context::default(), "kargo-demo/kargo-demo").await;
        assert!(ok.diagnostics.is_empty());
        assert_eq!(ok.state.get("project"), &s("kargo-demo"));
        assert_eq!(ok.state.get("name"), &s("kargo-demo"));
        for bad in ["kargo-demo", "Kargo/x", "p/UPPER", "/x"] {
            let result = r.import(&Context::default(), bad).await;
            assert_eq!(errors(&result.diagnostics).len(), 1, "{bad}");
            assert!(result.state.is_null());
        }
    }

    #[test]
    fn the_legacy_warehouse_is_rejected() {
        if !crate::resources::convert::test_support::fixtures_present() {
            return;
        }
        // The pre-v1.0 manifest has no namespace: in Terraform, no project.
        let r = resource::<Warehouse>();
        let legacy = fixture(
            "thatmlopsguy_dokaseca-control-plane__docs_rfc_0001-gitops-promotion-with-kargo.LEGACY.yaml",
            "Warehouse",
            "my-app-warehouse",
        );
        assert!(legacy["metadata"].get("namespace").is_none());
        let config = config(
            &r,
            json!({
                "name": "my-app-warehouse",
                "subscriptions": [{"image": {
                    "repo_url": "ghcr.io/dokaseca/my-app",
                    "tag_selection_strategy": {"sem_ver": {"allow_prerelease": false}},
                }}],
            }),
        );
        let found = errors(&validate(&r, &config));
        assert_eq!(
            paths(&found),
            vec!["project", "subscriptions[0].image.tag_selection_strategy"]
        );
        assert_eq!(found[0].1, "Missing required attribute");
        assert_eq!(found[1].1, "Removed attribute");
        for replacement in [
            "`image_selection_strategy`",
            "`SemVer`",
            "`constraint`",
            "`>=1.0.0-0`",
            "`strict_semvers`",
        ] {
            assert!(found[1].2.contains(replacement), "{}", found[1].2);
        }
    }

    #[tokio::test]
    async fn the_legacy_tag_selection_strategy_is_never_sent() {
        let r = resource::<Warehouse>();
        let config = config(
            &r,
            json!({
                "project": "my-app",
                "name": "my-app-warehouse",
                "subscriptions": [{"image": {
                    "repo_url": "ghcr.io/dokaseca/my-app",
                    "tag_selection_strategy": {"sem_ver": {"allow_prerelease": false}},
                }}],
            }),
        );
        let body = body_for(&r, &config).await;
        let image = &body["spec"]["subscriptions"][0]["image"];
        assert_eq!(image["repoURL"], "ghcr.io/dokaseca/my-app", "{body}");
        let text = body.to_string().to_lowercase();
        assert!(
            !text.contains("tagselection") && !text.contains("tag_selection"),
            "{body}"
        );
    }

    #[test]
    fn schema_describes_every_attribute() {
        crate::resources::common::assert_described(&resource::<Warehouse>().schema().block);
    }
}
