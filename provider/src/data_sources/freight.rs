//! `data "kargo_freight"`: one freight, found by name, alias or an artifact it carries, and
//! optionally required to be verified in a stage or available to one.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{client, get_required, id_attribute, origin_attribute, project_attribute, read_error};
use crate::config::ProviderData;
use crate::kargo::freight::{Availability, SelectorMiss, availability, search_selector};
use crate::kargo::{Freight, Object as _, Stage};
use crate::plugin::validate::validators::exactly_one_of;
use crate::plugin::{
    Attribute, AttributePath, Block, Context, DataSource, Diagnostic, Diagnostics, NestedBlock,
    Schema, Value,
};
use crate::resolve::choice::{artifacts_attribute, with_attribute};
use crate::resolve::values::{artifact_labels, artifacts_value};
use crate::resolve::{self, FREIGHT_SELECTOR, FreightChoice};
use crate::resources::common::refuse_true;
use crate::resources::validators::object_name;

/// The `kargo_freight` data source.
pub struct FreightDataSource {
    data: ProviderData,
}

impl FreightDataSource {
    pub fn new(data: ProviderData) -> Self {
        Self { data }
    }
}

const VERIFIED_FILTER: &str = "verified_in_stage";
const AVAILABLE_FILTER: &str = "available_to_stage";
/// How many failing matches an error explains.
const SHOWN_MATCHES: usize = 3;

fn selector_block() -> NestedBlock {
    let selector = crate::resolve::choice::selector_block("the freight");
    let available_only = Attribute::bool("available_only")
        .optional()
        .validate(refuse_true(
            "must not be `true`: use `available_to_stage`",
            "Use available_to_stage",
            "Availability depends on a stage: set `available_to_stage` to the stage instead, \
             which applies to every way of finding the freight.",
        ))
        .description(
            "Not used by this data source: filter with `available_to_stage`, which names the \
             stage availability is about. Setting it to `true` is an error.",
        );
    with_attribute(selector, available_only).description(
        "Find the freight by an artifact it carries: the newest freight from `warehouse` whose \
         image, Git commit or chart (exactly one of the `image`, `git` and `chart` blocks) \
         satisfies `version_constraint`, among the freight that passes `verified_in_stage` and \
         `available_to_stage`.",
    )
}

fn stage_names(name: &str, description: &str) -> Attribute {
    Attribute::string_list(name)
        .computed()
        .description(description)
}

fn schema() -> Schema {
    Schema::new(
        0,
        Block::new(vec![
            id_attribute(),
            project_attribute("freight"),
            Attribute::string("name")
                .optional()
                .computed()
                .validate(object_name())
                .description(
                    "Find the freight by its name (ID); reports the name when it is found \
                     otherwise. Exactly one of `name`, `alias` and `freight_selector` must be set.",
                ),
            Attribute::string("alias")
                .optional()
                .computed()
                .description(
                    "Find the freight by its alias (e.g. `tall-fox`); reports the alias when it is \
                 found otherwise.",
                ),
            Attribute::string(VERIFIED_FILTER)
                .optional()
                .validate(object_name())
                .description(
                    "Only freight verified in this stage. With `name` or `alias`, reading fails \
                     when the freight has not been verified there.",
                ),
            Attribute::string(AVAILABLE_FILTER)
                .optional()
                .validate(object_name())
                .description(
                    "Only freight available to this stage by Kargo's rules (approved for it, \
                     requested directly from the warehouse, or verified and soaked upstream), \
                     judged with the cluster's clock. With `name` or `alias`, reading fails \
                     with the reason when the freight is not available.",
                ),
            origin_attribute(
                "Name of the warehouse that produced the freight.",
                "Where the freight was produced.",
            ),
            artifacts_attribute("artifacts", "The artifacts the freight carries."),
            stage_names("verified_in", "Stages the freight has been verified in."),
            stage_names(
                "approved_for",
                "Stages the freight has been manually approved for.",
            ),
            stage_names("currently_in", "Stages that hold the freight now."),
            Attribute::string("created_at")
                .computed()
                .description("When the freight was created (RFC 3339)."),
        ])
        .block(selector_block())
        .validate(exactly_one_of(&["name", "alias", FREIGHT_SELECTOR]))
        .description(
            "Finds one freight of a project by name, alias or an artifact it carries, \
             optionally only among the freight verified in a stage or available to one, and \
             reports its artifacts and where it has been verified, approved and used.\n\n\
             When nothing matches, reading fails with what was searched for and the freight \
             the project has.",
        ),
    )
}

/// The filters of a read, with the stage availability is judged for.
struct Filters {
    verified_in: Option<String>,
    available_to: Option<(Stage, Timestamp)>,
}

impl Filters {
    /// Why `freight` does not pass, with the attribute the filter was set on.
    fn rejects(&self, freight: &Freight) -> Option<(&'static str, String)> {
        if let Some(stage) = &self.verified_in
            && !freight.is_verified_in(stage)
        {
            let verified: Vec<String> = freight
                .status
                .verified_in
                .keys()
                .map(|s| format!("{s:?}"))
                .collect();
            return Some((
                VERIFIED_FILTER,
                format!(
                    "{} has not been verified in stage {stage:?} (it is verified in {}).",
                    freight.describe(),
                    if verified.is_empty() {
                        "no stage".to_string()
                    } else {
                        verified.join(", ")
                    }
                ),
            ));
        }
        if let Some((stage, now)) = &self.available_to
            && let Availability::Unavailable(why) = availability(stage, freight, *now)
        {
            return Some((AVAILABLE_FILTER, why));
        }
        None
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(stage) = &self.verified_in {
            parts.push(format!("verified in stage {stage:?}"));
        }
        if let Some((stage, _)) = &self.available_to {
            parts.push(format!("available to stage {:?}", stage.name()));
        }
        parts.join(" and ")
    }
}

/// The project's freight, newest first, as a message lists it.
fn describe_freight(freights: &[Freight]) -> String {
    if freights.is_empty() {
        return "none".to_string();
    }
    let mut sorted: Vec<&Freight> = freights.iter().collect();
    sorted.sort_by(|a, b| a.cmp_newest_first(b));
    const SHOWN: usize = 10;
    let mut lines: Vec<String> = sorted
        .iter()
        .take(SHOWN)
        .map(|f| {
            format!(
                "{} from warehouse {:?} ({})",
                f.describe(),
                f.origin.name,
                artifact_labels(f).join(", ")
            )
        })
        .collect();
    if sorted.len() > SHOWN {
        lines.push(format!("and {} older", sorted.len() - SHOWN));
    }
    lines.join("; ")
}

/// Picks the freight the configuration designates — by `name` or `alias`, or else by
/// `choice`, its freight selector — or says what was searched and what exists.
fn find<'a>(
    config: &Value,
    choice: Option<&FreightChoice>,
    freights: &'a [Freight],
    filters: &Filters,
    project: &str,
) -> Result<&'a Freight, Diagnostic> {
    let exists = || {
        format!(
            " The freight in project {project:?}: {}.",
            describe_freight(freights)
        )
    };
    let by = |attr: &str, wanted: &str, pick: &dyn Fn(&Freight) -> bool| {
        let Some(found) = freights.iter().find(|f| pick(f)) else {
            return Err(Diagnostic::error(
                "Freight not found",
                format!(
                    "Project {project:?} has no freight with {attr} {wanted:?}.{}",
                    exists()
                ),
            )
            .at(AttributePath::attr(attr)));
        };
        match filters.rejects(found) {
            Some((filter, why)) => Err(Diagnostic::error("Freight does not match the filter", why)
                .at(AttributePath::attr(filter))),
            None => Ok(found),
        }
    };
    if let Some(name) = config.get("name").as_str() {
        return by("name", name, &|f| f.name() == name);
    }
    if let Some(alias) = config.get("alias").as_str() {
        return by("alias", alias, &|f| f.alias() == Some(alias));
    }
    let Some(choice @ FreightChoice::Selector(selector)) = choice else {
        return Err(Diagnostic::error(
            "Nothing to search for",
            "Set exactly one of `name`, `alias` and `freight_selector` to a known value.",
        ));
    };
    let reject = |f: &Freight| filters.rejects(f).map(|(_, why)| why);
    match search_selector(selector, freights, &reject) {
        Ok(found) => Ok(found),
        Err(SelectorMiss::NoMatch(why)) => Err(Diagnostic::error(
            "No freight matches the selector",
            format!("{why}{}", exists()),
        )
        .at(choice.path())),
        Err(SelectorMiss::Rejected { rejected, .. }) => {
            // The filter the newest match fails is where the error belongs.
            let filter = rejected
                .first()
                .and_then(|(newest, _)| filters.rejects(newest))
                .map_or(AVAILABLE_FILTER, |(filter, _)| filter);
            // Why each of the newest matches fails, newest first.
            let reasons: Vec<&str> = rejected
                .iter()
                .take(SHOWN_MATCHES)
                .map(|(_, why)| why.as_str())
                .collect();
            Err(Diagnostic::error(
                "No freight matches the selector and the filter",
                format!(
                    "Freight from warehouse {:?} carrying {} matches the selector, but none of it \
                     is {}. Newest first: {}{}",
                    selector.warehouse,
                    selector.artifact,
                    filters.describe(),
                    reasons.join(" "),
                    exists()
                ),
            )
            .at(AttributePath::attr(filter)))
        }
    }
}

fn names<V>(map: &std::collections::BTreeMap<String, V>) -> Value {
    Value::List(map.keys().map(Value::string).collect())
}

fn state(config: &Value, project: &str, f: &Freight) -> Value {
    let mut state = config.clone();
    let values = [
        ("id", super::id(project, f.name())),
        ("name", Value::string(f.name())),
        ("alias", f.alias().map_or(Value::Null, Value::string)),
        (
            "origin",
            Value::object([
                ("kind", Value::string(f.origin.kind())),
                ("name", Value::string(&f.origin.name)),
            ]),
        ),
        ("artifacts", artifacts_value(f)),
        ("verified_in", names(&f.status.verified_in)),
        ("approved_for", names(&f.status.approved_for)),
        ("currently_in", names(&f.status.currently_in)),
        (
            "created_at",
            f.created_at()
                .map_or(Value::Null, |t| Value::string(t.to_string())),
        ),
    ];
    for (name, v) in values {
        state.set(name, v);
    }
    state
}

#[async_trait]
impl DataSource for FreightDataSource {
    fn type_name(&self) -> &'static str {
        "kargo_freight"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn read(&self, _ctx: &Context, config: Value) -> (Value, Diagnostics) {
        let project = config.str_or_empty("project").to_string();
        let what = format!("the freight of project {project:?}");
        let client = match client(&self.data, &what) {
            Ok(c) => c,
            Err(d) => return (config, d.into()),
        };
        let mut filters = Filters {
            verified_in: config.get(VERIFIED_FILTER).as_str().map(str::to_string),
            available_to: None,
        };
        if let Some(stage) = config.get(AVAILABLE_FILTER).as_str() {
            let live = match get_required::<Stage>(&client, &project, stage).await {
                Ok(live) => live,
                Err(d) => return (config, d.at(AttributePath::attr(AVAILABLE_FILTER)).into()),
            };
            let now = match client.server_time().await {
                Ok(now) => now,
                Err(e) => return (config, read_error("the cluster's clock", &e).into()),
            };
            filters.available_to = Some((live, now));
        }
        let freights = match resolve::stored_freight(&client, &project).await {
            Ok(f) => f,
            Err(e) => return (config, read_error(&what, &e).into()),
        };
        let choice = match FreightChoice::from_config(&config) {
            Some(choice) => Some(resolve::with_strictness(&client, &project, &choice).await),
            None => None,
        };
        match find(&config, choice.as_ref(), &freights, &filters, &project) {
            Ok(f) => (state(&config, &project, f), Diagnostics::default()),
            Err(d) => (config, d.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kargo::types::test_support::{freight, stage};
    use crate::plugin::validate::validate_config;

    fn freights() -> Vec<Freight> {
        [
            (
                "f1",
                "tall-fox",
                "1.0.0",
                "2025-01-01T00:00:00Z",
                Some("dev"),
            ),
            ("f2", "wise-owl", "1.1.0", "2025-01-02T00:00:00Z", None),
        ]
        .iter()
        .map(|(name, alias, tag, at, verified)| {
            let mut j = json!({
                "metadata": {"name": name, "namespace": "shop", "creationTimestamp": at},
                "alias": alias,
                "origin": {"kind": "Warehouse", "name": "app"},
                "images": [{"repoURL": "ghcr.io/acme/app", "tag": tag}],
            });
            if let Some(stage) = verified {
                j["status"] = json!({"verifiedIn": {*stage: {}}, "currentlyIn": {*stage: {}}});
            }
            freight(j)
        })
        .collect()
    }

    fn config(j: serde_json::Value) -> Value {
        Value::from_json(&j, &schema().block.implied_type())
    }

    fn no_filters() -> Filters {
        Filters {
            verified_in: None,
            available_to: None,
        }
    }

    fn prod() -> Stage {
        stage(json!({
            "metadata": {"name": "prod", "namespace": "shop"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"stages": ["dev"]}}],
                     "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone"}]}}},
        }))
    }

    /// [`find`] as a read calls it, with the selector's versions read strictly.
    fn find_in<'a>(
        config: &Value,
        freights: &'a [Freight],
        filters: &Filters,
    ) -> Result<&'a Freight, Diagnostic> {
        find(
            config,
            FreightChoice::from_config(config).as_ref(),
            freights,
            filters,
            "shop",
        )
    }

    fn selector(constraint: &str) -> serde_json::Value {
        json!({"project": "shop", "freight_selector": {"warehouse": "app",
            "image": {"repo_url": "ghcr.io/acme/app"}, "version_constraint": constraint}})
    }

    #[test]
    fn finds_by_name_alias_and_selector() {
        let f = freights();
        let pick = |j| find_in(&config(j), &f, &no_filters()).map(|f| f.name().to_string());
        assert_eq!(pick(json!({"name": "f2"})), Ok("f2".into()));
        assert_eq!(pick(json!({"alias": "tall-fox"})), Ok("f1".into()));
        assert_eq!(pick(selector("^1")), Ok("f2".into()));
        assert_eq!(pick(selector("~1.0")), Ok("f1".into()));
    }

    #[test]
    fn misses_say_what_was_searched_and_what_exists() {
        let f = freights();
        let err = find_in(&config(json!({"alias": "sad-cat"})), &f, &no_filters()).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "alias");
        assert!(
            err.detail.contains("no freight with alias \"sad-cat\""),
            "{}",
            err.detail
        );
        assert!(
            err.detail.contains("freight \"f2\" (alias \"wise-owl\") from warehouse \"app\" (ghcr.io/acme/app:1.1.0); freight \"f1\""),
            "newest first: {}",
            err.detail
        );
        let err = find_in(&config(selector("^2")), &f, &no_filters()).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "freight_selector");
        assert!(err.detail.contains("\"^2\""), "{}", err.detail);
        assert!(
            err.detail.contains("The freight in project \"shop\""),
            "{}",
            err.detail
        );
    }

    #[test]
    fn filters_narrow_selectors_and_check_names() {
        let f = freights();
        let verified = Filters {
            verified_in: Some("dev".into()),
            available_to: None,
        };
        let got = find_in(&config(selector("^1")), &f, &verified).unwrap();
        assert_eq!(got.name(), "f1", "the newest verified in dev");
        let err = find_in(&config(json!({"name": "f2"})), &f, &verified).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "verified_in_stage");
        assert!(
            err.detail.contains("verified in no stage"),
            "{}",
            err.detail
        );
        let available = Filters {
            verified_in: None,
            available_to: Some((prod(), "2025-06-01T00:00:00Z".parse().unwrap())),
        };
        assert_eq!(
            find_in(&config(selector("^1")), &f, &available)
                .unwrap()
                .name(),
            "f1"
        );
        let err = find_in(&config(json!({"alias": "wise-owl"})), &f, &available).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "available_to_stage");
        assert!(
            err.detail.contains("not been verified in stage \"dev\""),
            "{}",
            err.detail
        );
        let err = find_in(&config(selector("~1.1")), &f, &available).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "available_to_stage");
        assert!(
            err.detail
                .contains("none of it is available to stage \"prod\""),
            "{}",
            err.detail
        );
    }

    #[test]
    fn state_lists_stages_and_origin() {
        let f = &freights()[0];
        let s = state(
            &config(json!({"project": "shop", "alias": "tall-fox"})),
            "shop",
            f,
        );
        assert_eq!(s.get("id"), &Value::string("shop/f1"));
        assert_eq!(
            s.get("verified_in"),
            &Value::List(vec![Value::string("dev")])
        );
        assert_eq!(s.get("approved_for"), &Value::List(vec![]));
        assert_eq!(s.get("origin").get("name"), &Value::string("app"));
        assert_eq!(s.get("created_at"), &Value::string("2025-01-01T00:00:00Z"));
        let ty = schema().block.implied_type();
        assert_eq!(
            Value::from_json(&s.to_json().unwrap(), &ty),
            s,
            "fits the schema"
        );
    }

    #[test]
    fn exactly_one_way_and_no_available_only() {
        let block = schema().block;
        let errors = |j| {
            validate_config(&block, &config(j))
                .0
                .into_iter()
                .map(|d| d.attribute.map(|p| p.to_string()).unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert!(errors(json!({"project": "shop", "name": "f1"})).is_empty());
        assert_eq!(
            errors(json!({"project": "shop", "name": "f1", "alias": "x"})).len(),
            1
        );
        assert_eq!(errors(json!({"project": "shop"})), vec![String::new()]);
        let mut with_available = selector("^1");
        with_available["freight_selector"]["available_only"] = json!(true);
        assert_eq!(
            errors(with_available),
            vec!["freight_selector.available_only"]
        );
    }
}
