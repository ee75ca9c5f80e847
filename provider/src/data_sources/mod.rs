//! Terraform data sources: read-only views of Kargo objects (freight, stages, warehouses).
//! One file per data source; this module holds what they share: the client and lookups.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::config::ProviderData;
use crate::kargo::{Error as KargoError, KargoClient, Object};
use crate::plugin::{Attribute, Block, DataSource, Diagnostic, NestedObject, Shape, Value};
use crate::resources::common::{self, explain};
use crate::resources::convert::{Rules, object_from_json};

pub mod freight;
pub mod stage;
pub mod warehouse;

/// Every data source type the provider offers.
pub fn all(data: &ProviderData) -> Vec<Arc<dyn DataSource>> {
    vec![
        Arc::new(freight::FreightDataSource::new(data.clone())),
        Arc::new(stage::StageDataSource::new(data.clone())),
        Arc::new(warehouse::WarehouseDataSource::new(data.clone())),
    ]
}

/// The cluster client for a data source read. Data sources are read while planning, so
/// the provider configuration must be known by then.
pub(crate) fn client(data: &ProviderData, what: &str) -> Result<Arc<KargoClient>, Diagnostic> {
    data.client().map_err(|e| match e {
        KargoError::ConfigUnknown => Diagnostic::error(
            format!("Cannot read {what}"),
            format!(
                "{} A data source is read while planning, so the provider's connection settings \
                 must be known then: configure the provider from values known at plan time, or \
                 apply the resources the connection depends on first (`terraform apply -target=...`).",
                explain(&e)
            ),
        ),
        e => read_error(what, &e),
    })
}

/// A failed read as a diagnostic whose summary names what was being read; the error's text
/// already says what to do (check the connection, install Kargo, grant RBAC).
pub(crate) fn read_error(what: &str, err: &KargoError) -> Diagnostic {
    let summary = match err {
        KargoError::Unreachable { .. } => format!("Cannot read {what}: the cluster is unreachable"),
        KargoError::ApiServerUnreachable { .. } => {
            format!("Cannot read {what}: Kargo's API server is unreachable")
        }
        KargoError::KargoNotInstalled { .. } => {
            format!("Cannot read {what}: Kargo is not installed")
        }
        _ => format!("Cannot read {what}"),
    };
    Diagnostic::error(summary, explain(err))
}

/// The object a data source reads by `project` and `name`, with what it was read through.
pub(crate) struct Named<K> {
    pub project: String,
    pub name: String,
    pub client: Arc<KargoClient>,
    pub live: K,
}

/// Reads the `K` named by the `project` and `name` of `config`, which must exist: the start
/// of every data source that reads one object by name.
pub(crate) async fn read_named<K: Object>(
    data: &ProviderData,
    config: &Value,
) -> Result<Named<K>, Diagnostic> {
    let project = config.str_or_empty("project").to_string();
    let name = config.str_or_empty("name").to_string();
    let what = K::KIND.describe(Some(&project), &name);
    let client = client(data, &what)?;
    let live = get_required::<K>(&client, &project, &name).await?;
    Ok(Named {
        project,
        name,
        client,
        live,
    })
}

/// Reads one namespaced Kargo object that must exist. When it does not, the error names
/// the objects of that kind the project does have, so a typo is easy to spot.
pub(crate) async fn get_required<K: Object>(
    client: &KargoClient,
    project: &str,
    name: &str,
) -> Result<K, Diagnostic> {
    let kind = K::KIND;
    let what = kind.describe(Some(project), name);
    match client.get_shared::<K>(Some(project), name).await {
        Ok(Some(object)) => Ok(object),
        Ok(None) => {
            let existing = match client.list_shared::<K>(Some(project), None).await {
                Ok(list) => describe_names(&names(&list.items)),
                Err(_) => "none could be listed".to_string(),
            };
            Err(Diagnostic::error(
                format!("{} not found", kind.kind()),
                format!(
                    "{what} does not exist. Check `project` and `name`; the {} objects in project \
                     {project:?}: {existing}. If it is created in the same configuration, refer to \
                     that resource (e.g. `name = kargo_{}.example.name`) so that it is read after \
                     it exists.",
                    kind.kind(),
                    kind.kind().to_ascii_lowercase()
                ),
            ))
        }
        Err(e) => Err(read_error(&what, &e)),
    }
}

/// The `metadata.name`s of `items`, in order.
fn names(items: &[impl Object]) -> Vec<String> {
    items.iter().map(|i| i.name().to_string()).collect()
}

/// `"a", "b", "c"`, or `none` — for messages that list what exists.
pub(crate) fn describe_names(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    const SHOWN: usize = 20;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// The `<project>/<name>` identifier data sources report as `id`.
pub(crate) fn id(project: &str, name: &str) -> Value {
    Value::string(format!("{project}/{name}"))
}

/// The value of the read-only attributes of `shape` from a Kargo object, by the conversion the
/// resources use, as a [`Rules::REPORT`] view: each attribute reads the camelCase field of its
/// name (`repo_url` ← `repoURL`), nested attributes recursively. Absent fields are null;
/// absent lists are empty lists, so that `length()` works without null checks.
pub(crate) fn read_fields(shape: Shape<'_>, json: Option<&Json>) -> Value {
    let object = json.and_then(Json::as_object);
    object_from_json(shape, object, &Value::Null, &Rules::REPORT, "")
}

/// The `id` attribute data sources report ([`id`]).
pub(crate) fn id_attribute() -> Attribute {
    Attribute::string("id")
        .computed()
        .description("`<project>/<name>`.")
}

/// The computed `origin` of freight, `kind` (always `Warehouse`) and `name`, with the
/// warehouse's name described by `name_description` and the whole by `description`.
pub(crate) fn origin_attribute(name_description: &str, description: &str) -> Attribute {
    Attribute::nested(
        "origin",
        NestedObject::single(vec![
            Attribute::string("kind")
                .computed()
                .description("Kind of the origin; always `Warehouse`."),
            Attribute::string("name")
                .computed()
                .description(name_description),
        ]),
    )
    .computed()
    .description(description)
}

/// The schema of a data source that reads one `what` (`"stage"`) by `project` and `name`:
/// `id`, `project` and `name`, validated the way the resources do, then `attributes`.
pub(crate) fn named_object_block(what: &str, attributes: Vec<Attribute>) -> Block {
    let identity = [
        id_attribute(),
        project_attribute(what),
        Attribute::string("name")
            .required()
            .validate(common::dns_subdomain())
            .description(format!("Name of the {what}.")),
    ];
    Block::new(identity.into_iter().chain(attributes).collect())
}

/// Validates `project` the way the resources do, for data sources' schemas.
pub(crate) fn project_attribute(what: &str) -> Attribute {
    Attribute::string("project")
        .required()
        .validate(common::dns_label())
        .description(format!("Name of the Kargo project the {what} belongs to."))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_read_by_their_kargo_names() {
        let attrs = vec![
            Attribute::string("repo_url").computed(),
            Attribute::string_list("versions").computed(),
            Attribute::nested(
                "references",
                NestedObject::list(vec![
                    Attribute::string("tag").computed(),
                    Attribute::string("created_at").computed(),
                ]),
            )
            .computed(),
            Attribute::nested(
                "origin",
                NestedObject::single(vec![Attribute::string("kind").computed()]),
            )
            .computed(),
        ];
        let v = read_fields(
            Shape::of_attributes(&attrs),
            Some(&json!({
                "repoURL": "ghcr.io/acme/app",
                "references": [{"tag": "1.0.0", "createdAt": "2024-01-01T00:00:00Z"}],
            })),
        );
        assert_eq!(v.get("repo_url"), &Value::string("ghcr.io/acme/app"));
        assert_eq!(
            v.get("versions"),
            &Value::List(vec![]),
            "absent lists read as empty"
        );
        let reference = &v.get("references").elements()[0];
        assert_eq!(
            reference.get("created_at"),
            &Value::string("2024-01-01T00:00:00Z")
        );
        assert_eq!(v.get("origin"), &Value::Null, "absent objects read as null");
    }

    #[test]
    fn listed_names_are_quoted_and_capped() {
        assert_eq!(describe_names(&[]), "none");
        assert_eq!(
            describe_names(&["a".to_string(), "b".to_string()]),
            "\"a\", \"b\""
        );
        let many: Vec<String> = (0..25).map(|i| format!("s{i}")).collect();
        let text = describe_names(&many);
        assert!(text.ends_with("and 5 more"), "{text}");
        assert!(!text.contains("\"s20\""));
    }

    #[test]
    fn read_errors_say_what_was_read_and_why() {
        let err = KargoError::Unreachable {
            host: "https://10.0.0.1:6443".into(),
            reason: "connection refused".into(),
        };
        let d = read_error("Stage \"shop/dev\"", &err);
        assert_eq!(
            d.summary,
            "Cannot read Stage \"shop/dev\": the cluster is unreachable"
        );
        assert!(
            d.detail.contains("Check the provider's `host`"),
            "{}",
            d.detail
        );
        let d = read_error(
            "Warehouse \"shop/app\"",
            &KargoError::KargoNotInstalled {
                message: "the server could not find the requested resource".into(),
            },
        );
        assert!(d.summary.ends_with("Kargo is not installed"));
        assert!(d.detail.contains("Install Kargo"), "{}", d.detail);
    }
}
