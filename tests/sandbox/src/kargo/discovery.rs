//! Artifact discovery for Warehouses: the `publish` command plays the registries, discovery
//! filters and orders what was published per subscription, and Automatic Freight is created.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::{Map, Value, json};

use super::freight::default_new;
use super::names::sha256_hex;
use super::semver::{Constraint, parse_loose, parse_tag};
use super::urls;
use super::util::{self, GROUP, arr_at, format_time, generation, name, set_condition, str_at};
use super::warehouse::{DEFAULT_DISCOVERY_LIMIT, subscription_identity, subscription_kind};
use super::{Kargo, Published};
use crate::hooks::{ApiError, StatusCause, Txn};

/// What a discovery pass produced for the caller of `publish`.
#[derive(Debug, Default)]
pub(super) struct Discovery {
    pub freight: Option<(String, String)>,
    pub reason: Option<String>,
    pub criteria_error: Option<String>,
}

/// The registry identity of a published artifact, matching `subscription_identity`.
fn artifact_identity(kind: &str, item: &Value) -> String {
    let repo = str_at(item, "repoURL");
    match kind {
        "image" => format!("image|{}", urls::normalize_image(repo)),
        "git" => format!("git|{}", urls::normalize_git(repo)),
        _ => {
            let chart = str_at(item, "name");
            if repo.starts_with("http://") || repo.starts_with("https://") {
                format!("chart|{}:{chart}", urls::normalize_chart(repo))
            } else if chart.is_empty() {
                format!("chart|{}", urls::normalize_chart(repo))
            } else {
                format!(
                    "chart|{}/{chart}",
                    urls::normalize_chart(repo.trim_end_matches('/'))
                )
            }
        }
    }
}

fn compile_all(body: &Value, key: &str) -> Vec<Regex> {
    arr_at(body, key)
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|r| Regex::new(r).ok())
        .collect()
}

/// allowTagsRegexes (any must match, when given) and ignoreTagsRegexes (none may match).
fn tag_allowed(body: &Value, tag: &str) -> bool {
    let allow = compile_all(body, "allowTagsRegexes");
    let ignore = compile_all(body, "ignoreTagsRegexes");
    (allow.is_empty() || allow.iter().any(|r| r.is_match(tag)))
        && !ignore.iter().any(|r| r.is_match(tag))
}

fn semver_desc(a: &(semver::Version, String), b: &(semver::Version, String)) -> Ordering {
    b.0.cmp_precedence(&a.0).then_with(|| b.1.cmp(&a.1))
}

/// Filters and orders what the registry holds for one subscription, newest first, capped
/// at its discovery limit, the way each selection strategy would see it.
fn select<'a>(kind: &str, body: &Value, items: &'a [Published]) -> Vec<&'a Published> {
    let limit = body
        .get("discoveryLimit")
        .and_then(Value::as_i64)
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_DISCOVERY_LIMIT);
    let strict = body
        .get("strictSemvers")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut newest_first: Vec<&Published> = items.iter().collect();
    newest_first.sort_by_key(|p| std::cmp::Reverse(p.seq));
    let by_semver = |tagged: Vec<(&'a Published, String)>, constraint: &str, strict: bool| {
        let constraint = if constraint.is_empty() {
            None
        } else {
            Constraint::parse(constraint).ok()
        };
        let mut versions: Vec<(semver::Version, String, &'a Published)> = tagged
            .into_iter()
            .filter_map(|(p, t)| parse_tag(&t, strict).map(|v| (v.version, t, p)))
            .filter(|(v, _, _)| constraint.as_ref().is_none_or(|c| c.matches(v)))
            .collect();
        versions
            .sort_by(|a, b| semver_desc(&(a.0.clone(), a.1.clone()), &(b.0.clone(), b.1.clone())));
        versions.into_iter().map(|(_, _, p)| p).collect::<Vec<_>>()
    };
    let selected: Vec<&Published> = match kind {
        "image" => {
            let tag = |p: &Published| str_at(&p.data, "tag").to_string();
            match str_at(body, "imageSelectionStrategy") {
                "Digest" => {
                    let wanted = str_at(body, "constraint");
                    newest_first
                        .into_iter()
                        .filter(|p| tag(p) == wanted)
                        .take(1)
                        .collect()
                }
                "Lexical" => {
                    let mut v: Vec<&Published> = newest_first
                        .into_iter()
                        .filter(|p| tag_allowed(body, &tag(p)))
                        .collect();
                    v.sort_by_key(|p| std::cmp::Reverse(tag(p)));
                    v
                }
                "NewestBuild" => newest_first
                    .into_iter()
                    .filter(|p| tag_allowed(body, &tag(p)))
                    .collect(),
                _ => {
                    let tagged = newest_first
                        .into_iter()
                        .filter(|p| tag_allowed(body, &tag(p)))
                        .map(|p| (p, tag(p)))
                        .collect();
                    by_semver(tagged, str_at(body, "constraint"), strict)
                }
            }
        }
        "git" => {
            let tag = |p: &Published| str_at(&p.data, "tag").to_string();
            let tagged = newest_first
                .iter()
                .copied()
                .filter(|p| !tag(p).is_empty() && tag_allowed(body, &tag(p)));
            match str_at(body, "commitSelectionStrategy") {
                "SemVer" => by_semver(
                    tagged.map(|p| (p, tag(p))).collect(),
                    str_at(body, "semverConstraint"),
                    strict,
                ),
                "Lexical" => {
                    let mut v: Vec<&Published> = tagged.collect();
                    v.sort_by_key(|p| std::cmp::Reverse(tag(p)));
                    v
                }
                "NewestTag" => tagged.collect(),
                _ => {
                    let branch = str_at(body, "branch");
                    newest_first
                        .into_iter()
                        .filter(|p| {
                            let b = str_at(&p.data, "branch");
                            branch.is_empty() || b.is_empty() || b == branch
                        })
                        .collect()
                }
            }
        }
        _ => {
            let tagged: Vec<(&Published, String)> = newest_first
                .into_iter()
                .map(|p| (p, str_at(&p.data, "version").to_string()))
                .collect();
            let constraint = str_at(body, "semverConstraint");
            let constraint = if constraint.is_empty() {
                None
            } else {
                Constraint::parse(constraint).ok()
            };
            let mut v: Vec<(semver::Version, String, &Published)> = Vec::new();
            for (p, ver) in tagged {
                if let Some(parsed) = parse_loose(&ver)
                    && constraint
                        .as_ref()
                        .is_none_or(|c| c.matches(&parsed.version))
                {
                    v.push((parsed.version, ver, p));
                }
            }
            v.sort_by(|a, b| semver_desc(&(a.0.clone(), a.1.clone()), &(b.0.clone(), b.1.clone())));
            v.into_iter().map(|(_, _, p)| p).collect()
        }
    };
    selected
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(20))
        .collect()
}

/// The Freight fields for the newest artifact of one subscription.
fn freight_artifact(kind: &str, body: &Value, newest: &Published) -> (&'static str, Value) {
    let d = &newest.data;
    match kind {
        "image" => {
            let mut i = json!({"repoURL": str_at(body, "repoURL"), "tag": str_at(d, "tag"), "digest": str_at(d, "digest")});
            if let Some(a) = d
                .get("annotations")
                .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
            {
                i["annotations"] = a.clone();
            }
            ("images", i)
        }
        "git" => {
            let mut c = Map::new();
            c.insert("repoURL".into(), json!(str_at(body, "repoURL")));
            c.insert("id".into(), json!(str_at(d, "id")));
            for (from, to) in [
                ("branch", "branch"),
                ("tag", "tag"),
                ("subject", "message"),
                ("author", "author"),
                ("committer", "committer"),
            ] {
                let v = str_at(d, from);
                if !v.is_empty() {
                    c.insert(to.into(), json!(v));
                }
            }
            ("commits", Value::Object(c))
        }
        _ => {
            let mut c =
                json!({"repoURL": str_at(body, "repoURL"), "version": str_at(d, "version")});
            if !str_at(body, "name").is_empty() {
                c["name"] = json!(str_at(body, "name"));
            }
            ("charts", c)
        }
    }
}

/// The discovered-artifacts entry for one subscription.
fn discovered_entry(kind: &str, body: &Value, selected: &[&Published]) -> (&'static str, Value) {
    match kind {
        "image" => {
            let refs: Vec<Value> = selected
                .iter()
                .map(|p| {
                    let mut r = json!({"tag": str_at(&p.data, "tag"), "digest": str_at(&p.data, "digest"), "createdAt": p.at});
                    if let Some(a) = p.data.get("annotations").filter(|a| a.as_object().is_some_and(|m| !m.is_empty())) {
                        r["annotations"] = a.clone();
                    }
                    r
                })
                .collect();
            let mut e = json!({"repoURL": str_at(body, "repoURL"), "references": refs});
            if !str_at(body, "platform").is_empty() {
                e["platform"] = json!(str_at(body, "platform"));
            }
            ("images", e)
        }
        "git" => {
            let commits: Vec<Value> = selected
                .iter()
                .map(|p| {
                    let mut c = Map::new();
                    for key in ["id", "branch", "tag", "subject", "author", "committer"] {
                        let v = str_at(&p.data, key);
                        if !v.is_empty() {
                            c.insert(key.into(), json!(v));
                        }
                    }
                    c.insert("creatorDate".into(), json!(p.at));
                    Value::Object(c)
                })
                .collect();
            (
                "git",
                json!({"repoURL": str_at(body, "repoURL"), "commits": commits}),
            )
        }
        _ => {
            let versions: Vec<Value> = selected
                .iter()
                .map(|p| json!(str_at(&p.data, "version")))
                .collect();
            let mut e = json!({"repoURL": str_at(body, "repoURL"), "versions": versions});
            for key in ["name", "semverConstraint"] {
                if !str_at(body, key).is_empty() {
                    e[key] = json!(str_at(body, key));
                }
            }
            ("charts", e)
        }
    }
}

/// Seeds the in-memory registry from what a Warehouse already discovered, so artifacts
/// recorded before a restart of the sandbox (whose state may be persisted) stay discoverable.
fn hydrate_registry(st: &mut super::State, discovered: Option<&Value>) {
    let Some(d) = discovered else { return };
    let mut seed = |identity: String, items: Vec<Value>, at: &dyn Fn(&Value) -> String| {
        if items.is_empty() || st.registry.contains_key(&identity) {
            return;
        }
        let mut list = Vec::new();
        // Discovered lists are newest first; replay them oldest first.
        for data in items.into_iter().rev() {
            st.next_seq += 1;
            list.push(Published {
                seq: st.next_seq,
                at: at(&data),
                data,
            });
        }
        st.registry.insert(identity, list);
    };
    for e in arr_at(d, "images") {
        let id = artifact_identity("image", e);
        seed(id, arr_at(e, "references").to_vec(), &|r| {
            str_at(r, "createdAt").to_string()
        });
    }
    for e in arr_at(d, "git") {
        let id = artifact_identity("git", e);
        seed(id, arr_at(e, "commits").to_vec(), &|c| {
            str_at(c, "creatorDate").to_string()
        });
    }
    for e in arr_at(d, "charts") {
        let id = artifact_identity("chart", e);
        let versions = arr_at(e, "versions")
            .iter()
            .map(|v| json!({"version": v}))
            .collect();
        seed(id, versions, &|_| String::new());
    }
}

/// Whether the criteria hold, for the literal expressions the sandbox can evaluate.
fn evaluate_criteria(expression: &str) -> Result<bool, String> {
    match expression.trim() {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!(
            "the sandbox evaluates only the literal expressions true and false, not {other:?}"
        )),
    }
}

fn publish_error(message: String, causes: Vec<StatusCause>) -> ApiError {
    let mut e = ApiError::new(422, "Invalid", message);
    e.causes = causes;
    e
}

impl Kargo {
    /// Re-discovers when Kargo would: never discovered, spec changed, or refresh requested.
    pub(super) fn reconcile_warehouse(&self, txn: &mut dyn Txn, ns: &str, wh: &str) {
        let Some(warehouse) = txn.get(GROUP, "warehouses", Some(ns), wh) else {
            return;
        };
        if util::is_deleting(&warehouse) {
            return;
        }
        let status = warehouse.get("status").cloned().unwrap_or(Value::Null);
        let refresh = util::annotation(&warehouse, util::ANNOTATION_REFRESH).unwrap_or_default();
        let due = status.get("discoveredArtifacts").is_none()
            || generation(&warehouse)
                > status
                    .get("observedGeneration")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            || (!refresh.is_empty() && refresh != str_at(&status, "lastHandledRefresh"));
        if due {
            self.discover(txn, warehouse);
        }
    }

    /// One discovery pass over everything published so far; creates Freight when Automatic.
    pub(super) fn discover(&self, txn: &mut dyn Txn, mut warehouse: Value) -> Discovery {
        let ns = util::namespace(&warehouse).to_string();
        let wh_name = name(&warehouse).to_string();
        let now_ts = txn.now();
        let now = format_time(now_ts);
        let gen_ = generation(&warehouse);
        let mut status = warehouse
            .get("status")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        let mut discovered = json!({"discoveredAt": now});
        let mut freight = json!({"apiVersion": util::API_VERSION, "kind": "Freight",
            "metadata": {"namespace": ns}, "origin": {"kind": "Warehouse", "name": wh_name}});
        let mut missing: Option<String> = None;
        let mut problem: Option<(&str, &str, String)> = None;
        let subs = arr_at(&warehouse, "spec.subscriptions").to_vec();
        if let Some(err) = deprecated_tag_filter(&subs) {
            // warehouses.go: a failed discovery leaves the discovered artifacts as they were.
            if let Some(token) = util::annotation(&warehouse, util::ANNOTATION_REFRESH) {
                status["lastHandledRefresh"] = json!(token);
            }
            let healthy = format!("Unable to discover artifacts: {err}");
            set_condition(
                &mut status,
                "Healthy",
                "False",
                "DiscoveryFailed",
                &healthy,
                gen_,
                &now,
            );
            let ready = format!("Artifact discovery failed: {err}");
            set_condition(
                &mut status,
                "Ready",
                "False",
                "DiscoveryFailure",
                &ready,
                gen_,
                &now,
            );
            if warehouse.get("status") != Some(&status) {
                warehouse["status"] = status;
                let _ = txn.update_status(warehouse);
            }
            return Discovery {
                reason: Some(err),
                ..Discovery::default()
            };
        }
        {
            let mut st = self.state();
            hydrate_registry(&mut st, status.get("discoveredArtifacts"));
            for (i, sub) in subs.iter().enumerate() {
                let Ok(kind) = subscription_kind(i, sub) else {
                    continue;
                };
                let body = sub.get(kind).cloned().unwrap_or(Value::Null);
                if !matches!(kind, "image" | "git" | "chart") {
                    missing.get_or_insert_with(|| {
                        format!("the sandbox cannot discover {kind:?} artifacts")
                    });
                    continue;
                }
                let items = st
                    .registry
                    .get(&subscription_identity(kind, &body))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let selected = select(kind, &body, items);
                let (list, entry) = discovered_entry(kind, &body, &selected);
                let repo = str_at(&body, "repoURL").to_string();
                match selected.first() {
                    Some(newest) => {
                        let (key, artifact) = freight_artifact(kind, &body, newest);
                        match freight.get_mut(key).and_then(Value::as_array_mut) {
                            Some(a) => a.push(artifact),
                            None => freight[key] = json!([artifact]),
                        }
                    }
                    None => {
                        missing.get_or_insert_with(|| {
                            format!(
                                "nothing has been discovered yet for {kind} subscription {repo:?}"
                            )
                        });
                        if problem.is_none() {
                            problem = Some(match kind {
                                "git" => (
                                    "NoCommitsDiscovered",
                                    "MissingCommits",
                                    format!("No commits discovered for Git repository {repo:?}"),
                                ),
                                "image" => (
                                    "NoImageReferencesDiscovered",
                                    "MissingImageReferences",
                                    format!(
                                        "No references discovered for image repository {repo:?}"
                                    ),
                                ),
                                _ => {
                                    let chart = str_at(&body, "name");
                                    let chart = if chart.is_empty() {
                                        String::new()
                                    } else {
                                        format!("{chart:?}")
                                    };
                                    (
                                        "NoChartVersionsDiscovered",
                                        "MissingChartVersions",
                                        format!(
                                            "No versions discovered for chart {chart} from repository {repo:?}"
                                        ),
                                    )
                                }
                            });
                        }
                    }
                }
                match discovered.get_mut(list).and_then(Value::as_array_mut) {
                    Some(a) => a.push(entry),
                    None => discovered[list] = json!([entry]),
                }
            }
        }
        status["discoveredArtifacts"] = discovered;
        status["observedGeneration"] = json!(gen_);
        if let Some(token) = util::annotation(&warehouse, util::ANNOTATION_REFRESH) {
            status["lastHandledRefresh"] = json!(token);
        }
        util::delete_condition(&mut status, "Reconciling");
        let mut outcome = Discovery::default();
        let total = ["git", "images", "charts"]
            .iter()
            .map(|k| arr_at(&status, &format!("discoveredArtifacts.{k}")).len())
            .sum::<usize>();
        if total == 0 {
            set_condition(
                &mut status,
                "Healthy",
                "False",
                "MissingArtifacts",
                "No artifacts discovered",
                gen_,
                &now,
            );
            set_condition(
                &mut status,
                "Ready",
                "False",
                "MissingArtifacts",
                "No artifacts discovered",
                gen_,
                &now,
            );
            outcome.reason = Some(missing.unwrap_or_else(|| "no artifacts discovered".to_string()));
        } else if let Some((healthy_reason, ready_reason, message)) = problem {
            set_condition(
                &mut status,
                "Healthy",
                "False",
                healthy_reason,
                &message,
                gen_,
                &now,
            );
            set_condition(
                &mut status,
                "Ready",
                "False",
                ready_reason,
                &message,
                gen_,
                &now,
            );
            outcome.reason = missing;
        } else if let Some(reason) = missing {
            outcome.reason = Some(reason);
        } else {
            let automatic = matches!(
                str_at(&warehouse, "spec.freightCreationPolicy"),
                "" | "Automatic"
            );
            if !automatic {
                outcome.reason =
                    Some("the Warehouse's freightCreationPolicy is Manual".to_string());
            } else {
                match evaluate_criteria(str_at(
                    &warehouse,
                    "spec.freightCreationCriteria.expression",
                )) {
                    Err(e) => {
                        let msg = format!("Evaluation of Freight creation criteria failed: {e}");
                        set_condition(
                            &mut status,
                            "Healthy",
                            "False",
                            "CriteriaEvaluationFailed",
                            &msg,
                            gen_,
                            &now,
                        );
                        set_condition(
                            &mut status,
                            "Ready",
                            "False",
                            "CriteriaEvaluationFailed",
                            &msg,
                            gen_,
                            &now,
                        );
                        outcome.criteria_error = Some(msg);
                    }
                    Ok(false) => {
                        set_condition(
                            &mut status,
                            "FreightCreationCriteriaSatisfied",
                            "False",
                            "CriteriaNotSatisfied",
                            "Freight creation criteria were not satisfied",
                            gen_,
                            &now,
                        );
                        outcome.reason = Some(
                            "the Warehouse's freightCreationCriteria were not satisfied"
                                .to_string(),
                        );
                    }
                    Ok(true) => {
                        set_condition(
                            &mut status,
                            "FreightCreationCriteriaSatisfied",
                            "True",
                            "CriteriaSatisfied",
                            "Freight creation criteria satisfied",
                            gen_,
                            &now,
                        );
                        let existing = txn.list(GROUP, "freights", Some(&ns));
                        default_new(&mut freight, &existing, now_ts);
                        let id = name(&freight).to_string();
                        let found = existing.iter().find(|f| name(f) == id).cloned();
                        let created = match found {
                            Some(f) => {
                                set_condition(
                                    &mut status,
                                    "FreightCreated",
                                    "False",
                                    "AlreadyExists",
                                    "Freight composed of the newest artifacts already exists",
                                    gen_,
                                    &now,
                                );
                                Some(f)
                            }
                            None => match txn.create(freight) {
                                Ok(f) => {
                                    self.record_freight(&ns, &id);
                                    set_condition(
                                        &mut status,
                                        "FreightCreated",
                                        "True",
                                        "NewFreight",
                                        "No Freight composed of the newest artifacts already existed",
                                        gen_,
                                        &now,
                                    );
                                    Some(f)
                                }
                                Err(e) => {
                                    let msg = format!("Error creating Freight: {}", e.message);
                                    set_condition(
                                        &mut status,
                                        "Healthy",
                                        "False",
                                        "FreightBuildFailure",
                                        &msg,
                                        gen_,
                                        &now,
                                    );
                                    set_condition(
                                        &mut status,
                                        "Ready",
                                        "False",
                                        "FreightCreationFailure",
                                        &msg,
                                        gen_,
                                        &now,
                                    );
                                    outcome.criteria_error = Some(msg);
                                    None
                                }
                            },
                        };
                        if let Some(f) = created {
                            status["lastFreightID"] = json!(name(&f));
                            outcome.freight =
                                Some((name(&f).to_string(), str_at(&f, "alias").to_string()));
                        }
                    }
                }
            }
            if outcome.criteria_error.is_none() {
                let msg = format!(
                    "Successfully discovered artifacts from {} subscriptions",
                    subs.len()
                );
                set_condition(
                    &mut status,
                    "Healthy",
                    "True",
                    "ReconciliationSucceeded",
                    "",
                    gen_,
                    &now,
                );
                set_condition(
                    &mut status,
                    "Ready",
                    "True",
                    "ArtifactsDiscovered",
                    &msg,
                    gen_,
                    &now,
                );
            }
        }
        if warehouse.get("status") != Some(&status) {
            warehouse["status"] = status;
            let _ = txn.update_status(warehouse);
        }
        outcome
    }
}

/// Kargo v1.11.2 admits an image subscription's deprecated `allowTags` / `ignoreTags` and
/// fails discovery on them (pkg/image/tag_based_selector.go, for the tag-based strategies),
/// wrapped by pkg/subscription/image.go and pkg/controller/warehouses/warehouses.go.
fn deprecated_tag_filter(subs: &[Value]) -> Option<String> {
    subs.iter().enumerate().find_map(|(i, sub)| {
        if subscription_kind(i, sub).ok()? != "image" {
            return None;
        }
        let body = sub.get("image")?;
        if str_at(body, "imageSelectionStrategy") == "Digest" {
            return None;
        }
        let why = if !str_at(body, "allowTags").is_empty() {
            "AllowTags is deprecated and unsupported as of v1.11.0; use AllowTagsRegexes instead"
        } else if !arr_at(body, "ignoreTags").is_empty() {
            "IgnoreTags is deprecated and unsupported as of v1.11.0; use IgnoreTagsRegexes instead"
        } else {
            return None;
        };
        Some(format!(
            "error discovering artifacts: error obtaining selector for image {:?}: error \
             building tag based selector: {why}",
            str_at(body, "repoURL")
        ))
    })
}

impl Kargo {
    /// `publish`: a registry announces new artifacts for a Warehouse's subscriptions.
    pub(super) fn publish(&self, txn: &mut dyn Txn, body: &Value) -> Result<Value, ApiError> {
        let project = str_at(body, "project");
        let wh_name = str_at(body, "warehouse");
        if project.is_empty() || wh_name.is_empty() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "publish needs \"project\" and \"warehouse\"",
            ));
        }
        let Some(warehouse) = txn.get(GROUP, "warehouses", Some(project), wh_name) else {
            return Err(util::not_found("warehouses", GROUP, wh_name));
        };
        let mut subs: Vec<(String, String)> = Vec::new();
        for (i, sub) in arr_at(&warehouse, "spec.subscriptions").iter().enumerate() {
            if let Ok(kind) = subscription_kind(i, sub) {
                let body = sub.get(kind).cloned().unwrap_or(Value::Null);
                subs.push((kind.to_string(), subscription_identity(kind, &body)));
            }
        }
        let now = format_time(txn.now());
        let mut additions: Vec<(String, Value)> = Vec::new();
        let mut causes = Vec::new();
        for (field, kind) in [("images", "image"), ("commits", "git"), ("charts", "chart")] {
            for (i, item) in arr_at(body, field).iter().enumerate() {
                let identity = artifact_identity(kind, item);
                let required = match kind {
                    "image" => "tag",
                    "git" => "id",
                    _ => "version",
                };
                if str_at(item, required).is_empty() {
                    causes.push(StatusCause {
                        reason: "FieldValueRequired".into(),
                        message: format!("Required value: {required} is required"),
                        field: format!("{field}[{i}].{required}"),
                    });
                    continue;
                }
                if !subs.iter().any(|(k, id)| k == kind && *id == identity) {
                    causes.push(StatusCause {
                        reason: "FieldValueInvalid".into(),
                        message: format!(
                            "Invalid value: {:?}: Warehouse {wh_name:?} has no {kind} subscription for this repository",
                            str_at(item, "repoURL")
                        ),
                        field: format!("{field}[{i}].repoURL"),
                    });
                    continue;
                }
                let mut data = item.clone();
                if kind == "image" && str_at(item, "digest").is_empty() {
                    let digest = sha256_hex(
                        format!("{}:{}", str_at(item, "repoURL"), str_at(item, "tag")).as_bytes(),
                    );
                    data["digest"] = json!(format!("sha256:{digest}"));
                }
                if kind == "git"
                    && str_at(item, "subject").is_empty()
                    && !str_at(item, "message").is_empty()
                {
                    data["subject"] = json!(str_at(item, "message"));
                }
                additions.push((identity, data));
            }
        }
        if !causes.is_empty() {
            let detail = causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(publish_error(
                format!("publish to Warehouse {wh_name:?} is invalid: {detail}"),
                causes,
            ));
        }
        for (identity, data) in additions {
            let seq = self.next_seq();
            let mut st = self.state();
            let list = st.registry.entry(identity.clone()).or_default();
            let same = |p: &Published| match identity.split('|').next() {
                Some("image") => str_at(&p.data, "tag") == str_at(&data, "tag"),
                Some("git") => {
                    str_at(&p.data, "id") == str_at(&data, "id")
                        && str_at(&p.data, "tag") == str_at(&data, "tag")
                }
                _ => str_at(&p.data, "version") == str_at(&data, "version"),
            };
            list.retain(|p| !same(p));
            list.push(Published {
                seq,
                at: now.clone(),
                data,
            });
        }
        let outcome = self.discover(txn, warehouse);
        if let Some(e) = outcome.criteria_error {
            return Err(ApiError::new(422, "Invalid", e));
        }
        Ok(match outcome.freight {
            Some((name, alias)) => json!({"name": name, "alias": alias}),
            None => {
                json!({"name": null, "alias": null, "reason": outcome.reason.unwrap_or_default()})
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(items: &[Value]) -> Vec<Published> {
        items
            .iter()
            .enumerate()
            .map(|(i, d)| Published {
                seq: i as u64 + 1,
                at: "t".into(),
                data: d.clone(),
            })
            .collect()
    }

    fn tags(sel: &[&Published], key: &str) -> Vec<String> {
        sel.iter()
            .map(|p| str_at(&p.data, key).to_string())
            .collect()
    }

    #[test]
    fn semver_strategy_orders_and_filters() {
        let items = published(&[
            json!({"tag": "1.0.0"}),
            json!({"tag": "1.2.0"}),
            json!({"tag": "1.1.0"}),
            json!({"tag": "latest"}),
            json!({"tag": "2.0.0"}),
            json!({"tag": "v1.3"}),
        ]);
        let body = json!({"imageSelectionStrategy": "SemVer", "constraint": "^1.0.0", "strictSemvers": true});
        assert_eq!(
            tags(&select("image", &body, &items), "tag"),
            vec!["1.2.0", "1.1.0", "1.0.0"]
        );
        let loose = json!({"imageSelectionStrategy": "SemVer", "strictSemvers": false, "discoveryLimit": 2});
        assert_eq!(
            tags(&select("image", &loose, &items), "tag"),
            vec!["2.0.0", "v1.3"]
        );
    }

    #[test]
    fn other_image_strategies() {
        let items = published(&[
            json!({"tag": "b"}),
            json!({"tag": "c"}),
            json!({"tag": "a"}),
            json!({"tag": "latest"}),
        ]);
        let lexical =
            json!({"imageSelectionStrategy": "Lexical", "ignoreTagsRegexes": ["^latest$"]});
        assert_eq!(
            tags(&select("image", &lexical, &items), "tag"),
            vec!["c", "b", "a"]
        );
        let newest =
            json!({"imageSelectionStrategy": "NewestBuild", "allowTagsRegexes": ["^[ab]$"]});
        assert_eq!(
            tags(&select("image", &newest, &items), "tag"),
            vec!["a", "b"]
        );
        let digest = json!({"imageSelectionStrategy": "Digest", "constraint": "latest"});
        assert_eq!(
            tags(&select("image", &digest, &items), "tag"),
            vec!["latest"]
        );
    }

    #[test]
    fn git_and_chart_strategies() {
        let items = published(&[
            json!({"id": "1", "branch": "main"}),
            json!({"id": "2", "branch": "dev"}),
            json!({"id": "3", "branch": "main", "tag": "v1.0.0"}),
        ]);
        let branch = json!({"commitSelectionStrategy": "NewestFromBranch", "branch": "main"});
        assert_eq!(tags(&select("git", &branch, &items), "id"), vec!["3", "1"]);
        let tagged = json!({"commitSelectionStrategy": "SemVer"});
        assert_eq!(tags(&select("git", &tagged, &items), "id"), vec!["3"]);
        let charts = published(&[
            json!({"version": "0.1.0"}),
            json!({"version": "0.3.0"}),
            json!({"version": "0.2.0"}),
        ]);
        let c = json!({"semverConstraint": "<0.3.0"});
        assert_eq!(
            tags(&select("chart", &c, &charts), "version"),
            vec!["0.2.0", "0.1.0"]
        );
    }

    #[test]
    fn identities_line_up_with_subscriptions() {
        assert_eq!(
            artifact_identity("image", &json!({"repoURL": "docker.io/library/nginx"})),
            subscription_identity("image", &json!({"repoURL": "nginx"}))
        );
        assert_eq!(
            artifact_identity(
                "chart",
                &json!({"repoURL": "https://charts.io", "name": "x"})
            ),
            subscription_identity(
                "chart",
                &json!({"repoURL": "https://charts.io", "name": "x"})
            )
        );
        assert_eq!(
            artifact_identity(
                "chart",
                &json!({"repoURL": "oci://ghcr.io/a/charts", "name": "app"})
            ),
            subscription_identity("chart", &json!({"repoURL": "oci://ghcr.io/a/charts/app"}))
        );
        assert_eq!(evaluate_criteria(" true "), Ok(true));
        assert!(evaluate_criteria("imageFrom('x').Tag == '1'").is_err());
    }
}
