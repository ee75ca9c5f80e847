//! The Warehouse webhook: subscription defaults, duration re-marshalling, the shard label,
//! and the subscription rules Kargo's subscribers enforce (URLs, strategies, constraints).

use std::sync::LazyLock;

use regex::Regex;

use serde_json::{Value, json};

use super::duration;
use super::semver::valid_constraint;
use super::urls;
use super::util::{
    FieldError, LABEL_SHARD, invalid, not_supported, remove_label, set_label, str_at,
};
use crate::hooks::ApiError;

pub const DEFAULT_DISCOVERY_LIMIT: i64 = 20;

const IMAGE_STRATEGIES: [&str; 4] = ["Digest", "Lexical", "NewestBuild", "SemVer"];
const GIT_STRATEGIES: [&str; 4] = ["Lexical", "NewestFromBranch", "NewestTag", "SemVer"];

static IMAGE_REPO_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\w+([\.-]\w+)*(:[\d]+)?/)?(\w+([\.-]\w+)*)(/\w+([\.-]\w+)*)*$")
        .expect("static regex")
});

static GIT_URL_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:^(ssh|https?)://(?:([\w-]+)(:(.+))?@)?([\w-]+(?:\.[\w-]+)*)(?::(\d{1,5}))?(/.*)$)|(?:^([\w-]+)@([\w+]+(?:\.[\w-]+)*):(/?.*))",
    )
    .expect("static regex")
});

static BRANCH_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-zA-Z0-9]([a-zA-Z0-9._/-]*[a-zA-Z0-9_-])?$").expect("static regex")
});

static HELM_REPO_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(((https?)|(oci))://)([\w\d\.\-]+)(:[\d]+)?(/.*)*$").expect("static regex")
});

/// Syncs `kargo.akuity.io/shard` with `spec.shard`: set when non-empty, removed otherwise.
pub fn sync_shard_label(obj: &mut Value) {
    let shard = str_at(obj, "spec.shard").to_string();
    if shard.is_empty() {
        remove_label(obj, LABEL_SHARD);
    } else {
        set_label(obj, LABEL_SHARD, &shard);
    }
}

/// Re-marshals a duration field in place, as a `metav1.Duration` round trip does.
/// Re-marshals `parent[key]` through `metav1.Duration`; a string Go cannot parse fails the
/// mutating webhook's decode, which controller-runtime answers with 400 and Go's error.
pub fn normalize_duration_field(parent: &mut Value, key: &str) -> Result<(), ApiError> {
    let Some(text) = parent.get(key).and_then(Value::as_str) else {
        return Ok(());
    };
    if let Some(e) = duration::parse_error(text) {
        return Err(ApiError::new(400, "BadRequest", e));
    }
    if let Some(n) = duration::normalize(text) {
        parent[key] = Value::String(n);
    }
    Ok(())
}

/// The single top-level key of a subscription, or the decode error Kargo reports.
pub fn subscription_kind(index: usize, sub: &Value) -> Result<&str, String> {
    match sub.as_object() {
        Some(m) if m.len() == 1 => Ok(m.keys().next().map(String::as_str).unwrap_or_default()),
        Some(m) => Err(format!(
            "subscription at index {index} must be an object with exactly one top-level field, but has {} fields",
            m.len()
        )),
        None => Err(format!("subscription at index {index} must be an object")),
    }
}

/// The mutating pass: shard label, `interval` re-marshalling and subscription defaults.
/// Fails (400, like a decode error in Kargo) when a subscription is not a one-key object.
pub fn default(obj: &mut Value) -> Result<(), ApiError> {
    sync_shard_label(obj);
    if let Some(spec) = obj.get_mut("spec") {
        normalize_duration_field(spec, "interval")?;
    }
    let Some(subs) = obj
        .pointer_mut("/spec/subscriptions")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for (i, sub) in subs.iter_mut().enumerate() {
        let kind = subscription_kind(i, sub)
            .map_err(|m| ApiError::new(400, "BadRequest", m))?
            .to_string();
        // Open-source Kargo registers subscribers for these three only (pkg/subscription);
        // any other is a registry miss in the defaulting webhook, which controller-runtime
        // turns into a 403 denial with the registry's own words.
        if !matches!(kind.as_str(), "image" | "git" | "chart") {
            return Err(ApiError::new(
                403,
                "Forbidden",
                "no matching registration found",
            ));
        }
        let Some(body) = sub.get_mut(&kind) else {
            continue;
        };
        if !body.is_object() {
            continue;
        }
        let set_default = |body: &mut Value, key: &str, value: Value| {
            let missing = match body.get(key) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                _ => false,
            };
            if missing {
                body[key] = value;
            }
        };
        match kind.as_str() {
            "image" => {
                set_default(body, "imageSelectionStrategy", json!("SemVer"));
                if body.get("strictSemvers").is_none_or(Value::is_null) {
                    body["strictSemvers"] = json!(true);
                }
                set_default(body, "discoveryLimit", json!(DEFAULT_DISCOVERY_LIMIT));
            }
            "git" => {
                set_default(body, "commitSelectionStrategy", json!("NewestFromBranch"));
                if body.get("strictSemvers").is_none_or(Value::is_null) {
                    body["strictSemvers"] = json!(true);
                }
                set_default(body, "discoveryLimit", json!(DEFAULT_DISCOVERY_LIMIT));
            }
            _ => set_default(body, "discoveryLimit", json!(DEFAULT_DISCOVERY_LIMIT)),
        }
    }
    Ok(())
}

fn check_limit(errs: &mut Vec<FieldError>, f: &str, body: &Value) {
    let limit = body
        .get("discoveryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if limit < 1 {
        errs.push(invalid(
            format!("{f}.discoveryLimit"),
            &json!(limit),
            "must be >= 1",
        ));
    } else if limit > 100 {
        errs.push(invalid(
            format!("{f}.discoveryLimit"),
            &json!(limit),
            "must be <= 100",
        ));
    }
}

fn check_regexes(errs: &mut Vec<FieldError>, f: &str, body: &Value) {
    for key in ["allowTagsRegexes", "ignoreTagsRegexes"] {
        for (i, r) in super::util::arr_at(body, key).iter().enumerate() {
            let text = r.as_str().unwrap_or_default();
            if let Err(e) = regex::Regex::new(text) {
                errs.push(invalid(
                    format!("{f}.{key}[{i}]"),
                    r,
                    &format!("error parsing regexp: {e}"),
                ));
            }
        }
    }
}

/// Since v1.11 discovery fails on the deprecated tag filters; reject them up front.
fn check_deprecated_tag_filters(errs: &mut Vec<FieldError>, f: &str, body: &Value) {
    if let Some(v) = body
        .get("allowTags")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        errs.push(invalid(
            format!("{f}.allowTags"),
            v,
            "AllowTags is deprecated and unsupported as of v1.11.0; use AllowTagsRegexes instead",
        ));
    }
    if let Some(v) = body
        .get("ignoreTags")
        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        errs.push(invalid(
            format!("{f}.ignoreTags"),
            v,
            "IgnoreTags is deprecated and unsupported as of v1.11.0; use IgnoreTagsRegexes instead",
        ));
    }
}

fn check_constraint(errs: &mut Vec<FieldError>, field: String, body: &Value, key: &str) {
    let c = str_at(body, key);
    if !valid_constraint(c) {
        errs.push(invalid(field, &json!(c), ""));
    }
}

fn validate_image(errs: &mut Vec<FieldError>, f: &str, body: &Value) {
    let repo = str_at(body, "repoURL");
    if repo.is_empty() {
        errs.push(invalid(
            format!("{f}.repoURL"),
            &json!(repo),
            "must have a minimum length of 1",
        ));
    }
    if !IMAGE_REPO_RE.is_match(repo) {
        errs.push(invalid(
            format!("{f}.repoURL"),
            &json!(repo),
            "must be a valid image repository URL",
        ));
    }
    let strategy = str_at(body, "imageSelectionStrategy");
    if !strategy.is_empty() && !IMAGE_STRATEGIES.contains(&strategy) {
        errs.push(not_supported(
            format!("{f}.imageSelectionStrategy"),
            &json!(strategy),
            &IMAGE_STRATEGIES,
        ));
    }
    let constraint = str_at(body, "constraint");
    if strategy == "Digest" && constraint.is_empty() {
        errs.push(invalid(
            format!("{f}.constraint"),
            &json!(constraint),
            "must be set when imageSelectionStrategy is Digest",
        ));
    }
    if strategy == "SemVer" || strategy.is_empty() {
        check_constraint(errs, format!("{f}.constraint"), body, "constraint");
    }
    if let Some(v) = body.get("semverConstraint") {
        errs.push(invalid(
            format!("{f}.semverConstraint"),
            v,
            "semverConstraint was removed from image subscriptions in Kargo v1.9.0; use constraint",
        ));
    }
    let platform = str_at(body, "platform");
    if !platform.is_empty() {
        let parts: Vec<&str> = platform.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            errs.push(invalid(
                format!("{f}.platform"),
                &json!(platform),
                "must be in format <os>/<arch>",
            ));
        }
    }
    // v1.11.2 admits the deprecated tag filters on images and fails discovery instead.

    check_regexes(errs, f, body);
    check_limit(errs, f, body);
}

fn validate_git(errs: &mut Vec<FieldError>, f: &str, body: &Value) {
    let repo = str_at(body, "repoURL");
    if repo.is_empty() {
        errs.push(invalid(
            format!("{f}.repoURL"),
            &json!(repo),
            "must have a minimum length of 1",
        ));
    }
    if !GIT_URL_RE.is_match(repo) {
        errs.push(invalid(
            format!("{f}.repoURL"),
            &json!(repo),
            "must be a valid Git repository URL",
        ));
    }
    let branch = str_at(body, "branch");
    if !branch.is_empty() {
        if branch.len() > 255 {
            errs.push(invalid(
                format!("{f}.branch"),
                &json!(branch),
                "must have a maximum length of 255",
            ));
        }
        if !BRANCH_RE.is_match(branch) {
            errs.push(invalid(
                format!("{f}.branch"),
                &json!(branch),
                "must be a valid branch name",
            ));
        }
    }
    let strategy = str_at(body, "commitSelectionStrategy");
    if !strategy.is_empty() && !GIT_STRATEGIES.contains(&strategy) {
        errs.push(not_supported(
            format!("{f}.commitSelectionStrategy"),
            &json!(strategy),
            &GIT_STRATEGIES,
        ));
    }
    check_constraint(
        errs,
        format!("{f}.semverConstraint"),
        body,
        "semverConstraint",
    );
    check_deprecated_tag_filters(errs, f, body);
    check_regexes(errs, f, body);
    check_limit(errs, f, body);
}

fn validate_chart(errs: &mut Vec<FieldError>, f: &str, body: &Value) {
    let repo = str_at(body, "repoURL");
    let name = str_at(body, "name");
    if repo.is_empty() {
        errs.push(invalid(
            format!("{f}.repoURL"),
            &json!(repo),
            "must have a minimum length of 1",
        ));
    }
    if !HELM_REPO_RE.is_match(repo) {
        errs.push(invalid(
            format!("{f}.repoURL"),
            &json!(repo),
            "must be a valid Helm repository URL",
        ));
    }
    if repo.starts_with("oci://") && !name.is_empty() {
        errs.push(invalid(
            format!("{f}.name"),
            &json!(name),
            "must be empty if repoURL starts with oci://",
        ));
    }
    if (repo.starts_with("http://") || repo.starts_with("https://")) && name.is_empty() {
        errs.push(invalid(
            format!("{f}.name"),
            &json!(name),
            "must be non-empty if repoURL starts with http:// or https://",
        ));
    }
    check_constraint(
        errs,
        format!("{f}.semverConstraint"),
        body,
        "semverConstraint",
    );
    check_limit(errs, f, body);
}

fn validate_generic(errs: &mut Vec<FieldError>, f: &str, body: &Value) {
    let name = str_at(body, "name");
    if name.is_empty() {
        errs.push(invalid(
            format!("{f}.name"),
            &json!(name),
            "must have a minimum length of 1",
        ));
    }
    check_limit(errs, f, body);
}

/// The identity Kargo uses to spot duplicate subscriptions.
pub fn subscription_identity(kind: &str, body: &Value) -> String {
    let repo = str_at(body, "repoURL");
    match kind {
        "image" => format!("image|{}", urls::normalize_image(repo)),
        "git" => format!("git|{}", urls::normalize_git(repo)),
        "chart" => {
            let id = urls::normalize_chart(repo);
            if repo.starts_with("http://") || repo.starts_with("https://") {
                format!("chart|{id}:{}", str_at(body, "name"))
            } else {
                format!("chart|{id}")
            }
        }
        _ => format!("sub|{}", str_at(body, "name").trim().to_lowercase()),
    }
}

/// The validating pass over `spec.subscriptions`.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, sub) in super::util::arr_at(obj, "spec.subscriptions")
        .iter()
        .enumerate()
    {
        let Ok(kind) = subscription_kind(i, sub) else {
            continue;
        };
        let f = format!("spec.subscriptions[{i}].{kind}");
        let body = sub.get(kind).cloned().unwrap_or(Value::Null);
        match kind {
            "image" => validate_image(&mut errs, &f, &body),
            "git" => validate_git(&mut errs, &f, &body),
            "chart" => validate_chart(&mut errs, &f, &body),
            _ => validate_generic(&mut errs, &f, &body),
        }
        // v1.11.2's `uniqueSubSet.addSub` looks subscriptions up but never records one, so
        // duplicates are admitted (Kargo fixed this after v1.11.2).
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wh(subs: Value) -> Value {
        json!({"metadata": {"name": "w", "namespace": "p"}, "spec": {"interval": "10m", "subscriptions": subs}})
    }

    #[test]
    fn defaults_are_applied() {
        let mut w = wh(json!([
            {"image": {"repoURL": "ghcr.io/acme/app"}},
            {"git": {"repoURL": "https://github.com/acme/repo"}},
            {"chart": {"repoURL": "oci://ghcr.io/acme/chart"}}
        ]));
        w["spec"]["shard"] = json!("east");
        default(&mut w).unwrap();
        assert_eq!(w["spec"]["interval"], "10m0s");
        assert_eq!(w["metadata"]["labels"][LABEL_SHARD], "east");
        let image = &w["spec"]["subscriptions"][0]["image"];
        assert_eq!(image["imageSelectionStrategy"], "SemVer");
        assert_eq!(image["strictSemvers"], true);
        assert_eq!(image["discoveryLimit"], 20);
        let git = &w["spec"]["subscriptions"][1]["git"];
        assert_eq!(git["commitSelectionStrategy"], "NewestFromBranch");
        assert_eq!(git["strictSemvers"], true);
        assert_eq!(git["discoveryLimit"], 20);
        assert_eq!(w["spec"]["subscriptions"][2]["chart"]["discoveryLimit"], 20);
        assert!(validate(&w).is_empty(), "{:?}", validate(&w));
    }

    #[test]
    fn explicit_values_survive_defaulting_and_shard_label_is_removed() {
        let mut w = wh(
            json!([{"image": {"repoURL": "nginx", "strictSemvers": false, "discoveryLimit": 5,
            "imageSelectionStrategy": "Lexical"}}]),
        );
        w["metadata"]["labels"] = json!({LABEL_SHARD: "old"});
        default(&mut w).unwrap();
        let image = &w["spec"]["subscriptions"][0]["image"];
        assert_eq!(image["strictSemvers"], false);
        assert_eq!(image["discoveryLimit"], 5);
        assert_eq!(image["imageSelectionStrategy"], "Lexical");
        assert!(w["metadata"]["labels"].get(LABEL_SHARD).is_none());
    }

    #[test]
    fn subscriptions_need_exactly_one_key() {
        let mut w = wh(json!([{"image": {"repoURL": "a"}, "git": {"repoURL": "b"}}]));
        let e = default(&mut w).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .contains("exactly one top-level field, but has 2 fields"),
            "{}",
            e.message
        );
    }

    /// pkg/webhook/kubernetes/warehouse/webhook.go `Default` looks every subscription up in
    /// pkg/subscription's registry, which holds image, git and chart only in v1.11.2; the
    /// miss (pkg/component/errors.go) is denied by controller-runtime with 403.
    #[test]
    fn subscriptions_other_than_image_git_and_chart_are_denied() {
        let mut w = wh(json!([{"image": {"repoURL": "a"}}, {"s3": {"name": "bundles"}}]));
        let e = default(&mut w).unwrap_err();
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
        assert_eq!(e.message, "no matching registration found");
        let e = default(&mut wh(
            json!([{"subscription": {"subscriptionType": "s3", "name": "b"}}]),
        ))
        .unwrap_err();
        assert_eq!(e.code, 403);
    }

    fn fields(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn image_rules() {
        let mut w = wh(json!([
            {"image": {"repoURL": "nginx:1.25"}},
            {"image": {"repoURL": "ghcr.io/a/b", "imageSelectionStrategy": "Digest"}},
            {"image": {"repoURL": "ghcr.io/a/c", "constraint": "not-semver"}},
            {"image": {"repoURL": "ghcr.io/a/d", "allowTags": "^v1", "ignoreTags": ["x"]}},
            {"image": {"repoURL": "ghcr.io/a/e", "semverConstraint": "^1"}},
            {"image": {"repoURL": "ghcr.io/a/f", "allowTagsRegexes": ["("], "discoveryLimit": 101}}
        ]));
        default(&mut w).unwrap();
        let errs = validate(&w);
        let f = fields(&errs);
        assert!(f.contains(&"spec.subscriptions[0].image.repoURL"));
        assert!(f.contains(&"spec.subscriptions[1].image.constraint"));
        assert!(f.contains(&"spec.subscriptions[2].image.constraint"));
        // pkg/subscription/image.go `ValidateSubscription` (v1.11.2) does not look at the
        // deprecated tag filters: they fail discovery instead (see discovery.rs).
        assert!(
            !f.iter().any(|f| f.starts_with("spec.subscriptions[3]")),
            "{f:?}"
        );
        assert!(f.contains(&"spec.subscriptions[4].image.semverConstraint"));
        assert!(f.contains(&"spec.subscriptions[5].image.allowTagsRegexes[0]"));
        assert!(f.contains(&"spec.subscriptions[5].image.discoveryLimit"));
        let semver = errs
            .iter()
            .find(|e| e.field.ends_with("semverConstraint"))
            .unwrap();
        assert!(semver.message.contains("use constraint"));
    }

    #[test]
    fn git_and_chart_rules() {
        let mut w = wh(json!([
            {"git": {"repoURL": "not a url"}},
            {"git": {"repoURL": "https://github.com/a/b", "branch": "-bad-"}},
            {"chart": {"repoURL": "https://charts.example.com"}},
            {"chart": {"repoURL": "oci://ghcr.io/a/chart", "name": "chart"}},
            {"chart": {"repoURL": "ftp://x", "name": "y", "semverConstraint": "~~1"}}
        ]));
        default(&mut w).unwrap();
        let errs = validate(&w);
        let f = fields(&errs);
        assert!(f.contains(&"spec.subscriptions[0].git.repoURL"));
        assert!(f.contains(&"spec.subscriptions[1].git.branch"));
        assert!(f.contains(&"spec.subscriptions[2].chart.name"));
        assert!(f.contains(&"spec.subscriptions[3].chart.name"));
        assert!(f.contains(&"spec.subscriptions[4].chart.repoURL"));
        assert!(f.contains(&"spec.subscriptions[4].chart.semverConstraint"));
    }

    /// pkg/webhook/kubernetes/warehouse/webhook.go (v1.11.2): `uniqueSubSet.addSub` checks
    /// for an existing entry but never adds one, so duplicate subscriptions are admitted.
    #[test]
    fn duplicate_subscriptions_are_admitted_as_in_v1_11_2() {
        let mut w = wh(json!([
            {"image": {"repoURL": "nginx"}},
            {"image": {"repoURL": "docker.io/library/nginx"}},
            {"git": {"repoURL": "https://github.com/a/b.git"}},
            {"git": {"repoURL": "https://GitHub.com/a/b"}},
            {"chart": {"repoURL": "https://charts.io", "name": "x"}},
            {"chart": {"repoURL": "https://charts.io", "name": "x"}}
        ]));
        default(&mut w).unwrap();
        assert!(validate(&w).is_empty(), "{:?}", validate(&w));
    }
}
