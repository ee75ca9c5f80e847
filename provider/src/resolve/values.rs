//! Freight as Terraform values: the artifacts a freight carries, its summary, what a
//! promotion changes (and its one-line summary), and the freight a stage holds.

use crate::kargo::freight::{ArtifactKind, Change, changes};
use crate::kargo::{Freight, KargoClient, Object as _, Origin, Stage};
use crate::plugin::Value;

fn opt(s: Option<&str>) -> Value {
    s.map_or(Value::Null, Value::string)
}

/// The `artifacts` value of a freight.
pub fn artifacts_value(f: &Freight) -> Value {
    Value::object([
        (
            "images",
            Value::List(
                f.artifacts
                    .images
                    .iter()
                    .map(|i| {
                        Value::object([
                            ("repo_url", Value::string(&i.repo_url)),
                            ("tag", opt(i.tag.as_deref())),
                            ("digest", opt(i.digest.as_deref())),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "commits",
            Value::List(
                f.artifacts
                    .commits
                    .iter()
                    .map(|c| {
                        Value::object([
                            ("repo_url", Value::string(&c.repo_url)),
                            ("id", opt(c.id.as_deref())),
                            ("tag", opt(c.tag.as_deref())),
                            ("branch", opt(c.branch.as_deref())),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "charts",
            Value::List(
                f.artifacts
                    .charts
                    .iter()
                    .map(|c| {
                        Value::object([
                            ("repo_url", Value::string(&c.repo_url)),
                            ("name", opt(c.name.as_deref())),
                            ("version", opt(c.version.as_deref())),
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
        ("name", Value::string(f.name())),
        ("alias", opt(f.alias())),
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
                    ("name", opt(c.name.as_deref())),
                    ("from", opt(c.from.as_deref())),
                    ("to", opt(c.to.as_deref())),
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
    let label = |f: &Freight| f.alias().unwrap_or(f.name()).to_string();
    if from.is_some_and(|f| f.name() == to.name()) {
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
pub fn artifact_labels(f: &Freight) -> Vec<String> {
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

/// The summary of the freight `stage` holds from `origin` (its first requested origin when
/// `None`), its alias kept from `prior` while the freight is unchanged and otherwise read
/// from the Freight. Null when the stage holds nothing from there.
pub async fn stage_freight_value(
    client: &KargoClient,
    stage: &Stage,
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
    let mut freight = current;
    freight.alias = match (prior.get("name").as_str(), prior.get("alias")) {
        (Some(n), Value::String(a)) if n == freight.name() => Some(a.clone()),
        _ => {
            freight_alias(
                client,
                stage.namespace().unwrap_or_default(),
                freight.name(),
            )
            .await
        }
    };
    summary_value(&freight)
}

/// The alias lives on the Freight, not in references to it.
async fn freight_alias(client: &KargoClient, namespace: &str, freight: &str) -> Option<String> {
    if namespace.is_empty() {
        return None;
    }
    match client.get_shared::<Freight>(Some(namespace), freight).await {
        Ok(Some(f)) => f.alias().map(str::to_string),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(freight, error = %e, "could not read the freight's alias");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::kargo::types::test_support::freight;
    use crate::resolve::choice::{changes_attribute, freight_summary_attribute};
    use crate::resolve::test_support::freights;

    fn s(v: &str) -> Value {
        Value::string(v)
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
        let changes = changes(Some(&freights()[0]), &freights()[1]);
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
        freight(j)
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
}
