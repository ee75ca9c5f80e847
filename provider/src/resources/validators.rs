//! Kargo-specific checks run at plan time, without a cluster: semver constraints in Kargo's
//! (Masterminds) syntax, regular expressions, repository URLs, branch names and JSON documents.

use std::sync::OnceLock;

use regex::Regex;

use crate::kargo::semver::Constraint;
use crate::plugin::schema::Validator;
use crate::plugin::{AttributePath, Diagnostics, Value};

/// Reports an error whose text names the attribute's path: at its start, unless the text
/// already names it. Terraform can only point at top-level attributes in the configuration:
/// an error on a nested attribute is shown at the resource (or at a top-level attribute of
/// the same name), so the text must say where.
pub fn report(
    diags: &mut Diagnostics,
    path: AttributePath,
    summary: &str,
    detail: impl AsRef<str>,
) {
    let detail = naming(&path, detail.as_ref());
    diags.error_at(path, summary, detail);
}

/// `detail`, led by "`path`: " unless it names the path already (once is enough).
pub(crate) fn naming(path: &AttributePath, detail: &str) -> String {
    let named = format!("`{path}`");
    if detail.contains(&named) {
        detail.to_string()
    } else {
        format!("{named}: {detail}")
    }
}

/// Why `constraint` is not a semver constraint Kargo accepts, or `None` when it is one.
///
/// Kargo parses constraints with the Masterminds library; they are translated into the
/// `semver` crate's syntax and parsed there (see [`Constraint`]).
pub fn semver_constraint_problem(constraint: &str) -> Option<String> {
    Constraint::parse(constraint).err()
}

/// A semver constraint in Kargo's syntax, e.g. `^1.29.0` or `>=1.2, <2.0 || ~3.1`.
pub fn semver_constraint() -> Validator {
    Validator::new(
        "a semantic version constraint such as `^1.2.0` or `>=1.2, <2.0`",
        |v, path, diags| {
            if let Some(s) = v.as_str()
                && let Some(problem) = semver_constraint_problem(s)
            {
                report(
                    diags,
                    path.clone(),
                    "Invalid semver constraint",
                    format!(
                        "{s:?} {problem}. Use comparators such as `^1.2.0`, `~1.2`, `>=1.2, <2.0`, \
                         `1.x` or alternatives joined by `||`."
                    ),
                );
            }
        },
    )
}

/// Reports `s` at `path` when it is not a regular expression.
pub fn check_regex(s: &str, path: &AttributePath, diags: &mut Diagnostics) {
    if let Err(e) = Regex::new(s) {
        report(
            diags,
            path.clone(),
            "Invalid regular expression",
            format!("{s:?} does not compile: {e}"),
        );
    }
}

/// A list of regular expressions; each is reported on its own index.
pub fn regex_list() -> Validator {
    Validator::new(
        "each element must be a valid regular expression",
        |v, path, diags| {
            for (i, element) in v.elements().iter().enumerate() {
                if let Some(s) = element.as_str() {
                    check_regex(s, &path.join_index(i), diags);
                }
            }
        },
    )
}

/// A string holding a JSON object (as `jsonencode({...})` produces).
pub fn json_object() -> Validator {
    Validator::new(
        "a JSON object, e.g. from `jsonencode({...})`",
        |v, path, diags| {
            let Some(s) = v.as_str() else { return };
            match serde_json::from_str::<serde_json::Value>(s) {
                Ok(serde_json::Value::Object(_)) => {}
                Ok(_) => report(
                    diags,
                    path.clone(),
                    "Invalid JSON document",
                    "The value must be a JSON object, e.g. `jsonencode({ path = \"./out\" })`.",
                ),
                Err(e) => report(
                    diags,
                    path.clone(),
                    "Invalid JSON document",
                    format!(
                        "The value is not valid JSON ({e}). Write it with `jsonencode({{...}})`."
                    ),
                ),
            }
        },
    )
}

/// An RFC 3339 timestamp such as `2024-05-01T00:00:00Z`.
pub fn rfc3339() -> Validator {
    Validator::new(
        "an RFC 3339 timestamp such as `2024-05-01T00:00:00Z`",
        |v, path, diags| {
            if let Some(s) = v.as_str()
                && s.parse::<jiff::Timestamp>().is_err()
            {
                report(
                    diags,
                    path.clone(),
                    "Invalid timestamp",
                    format!(
                        "{s:?} is not an RFC 3339 timestamp; write e.g. \"2024-05-01T00:00:00Z\"."
                    ),
                );
            }
        },
    )
}

/// Timestamps compare by instant: Kubernetes stores them in UTC, whatever offset was written.
pub fn timestamp_eq(a: &Value, b: &Value) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(x), Some(y)) => match (x.parse::<jiff::Timestamp>(), y.parse::<jiff::Timestamp>()) {
            (Ok(tx), Ok(ty)) => tx == ty,
            _ => x == y,
        },
        _ => a == b,
    }
}

fn compiled(cell: &'static OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

/// Kargo's pattern for image repository URLs (no scheme, no tag, no digest).
fn image_repo_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(
        &RE,
        r"^(\w+([\.-]\w+)*(:[\d]+)?/)?(\w+([\.-]\w+)*)(/\w+([\.-]\w+)*)*$",
    )
}

/// Kargo's pattern for Git repository URLs: http(s), ssh or SCP-style.
fn git_repo_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(
        &RE,
        r"(?:^(ssh|https?)://(?:([\w-]+)(:(.+))?@)?([\w-]+(?:\.[\w-]+)*)(?::(\d{1,5}))?(/.*)$)|(?:^([\w-]+)@([\w+]+(?:\.[\w-]+)*):(/?.*))$",
    )
}

/// Kargo's pattern for Helm chart repository URLs.
fn chart_repo_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(&RE, r"^(((https?)|(oci))://)([\w\d\.\-]+)(:[\d]+)?(/.*)*$")
}

fn git_branch_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(&RE, r"^[a-zA-Z0-9]([a-zA-Z0-9._/-]*[a-zA-Z0-9_-])?$")
}

fn platform_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(&RE, r"^\w+/\w+$")
}

fn var_name_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(&RE, r"^[a-zA-Z_]\w*$")
}

/// A validator built from a "what is wrong with this string" function.
fn string_check(
    description: &str,
    summary: &'static str,
    problem: fn(&str) -> Option<String>,
) -> Validator {
    Validator::new(description, move |v, path, diags| {
        if let Some(s) = v.as_str()
            && let Some(p) = problem(s)
        {
            report(diags, path.clone(), summary, p);
        }
    })
}

fn matches_re(re: Option<&Regex>, s: &str) -> bool {
    // The patterns are constants known to compile; if one ever did not, the cluster
    // still validates, so the plan-time check steps aside rather than reject everything.
    re.is_none_or(|re| re.is_match(s))
}

/// Why `url` is not an image repository Kargo subscribes to.
pub fn image_repo_url_problem(url: &str) -> Option<String> {
    let last = url.rsplit('/').next().unwrap_or(url);
    if url.contains('@') || last.contains(':') {
        return Some(format!(
            "{url:?} contains a tag or digest; an image subscription names the repository only \
             (e.g. \"ghcr.io/acme/app\"), and tags are selected with `image_selection_strategy`, \
             `constraint` and `allow_tags_regexes`."
        ));
    }
    if url.contains("://") {
        return Some(format!(
            "{url:?} has a scheme; write the repository without one, e.g. \"ghcr.io/acme/app\"."
        ));
    }
    (!matches_re(image_repo_re(), url)).then(|| {
        format!("{url:?} is not a valid image repository, e.g. \"public.ecr.aws/nginx/nginx\".")
    })
}

pub fn image_repo_url() -> Validator {
    string_check(
        "an image repository without tag, e.g. `ghcr.io/acme/app`",
        "Invalid image repository",
        image_repo_url_problem,
    )
}

pub fn git_repo_url() -> Validator {
    string_check(
        "a Git repository URL (`https://`, `http://`, `ssh://` or `user@host:path`)",
        "Invalid Git repository URL",
        |url| {
            (!matches_re(git_repo_re(), url)).then(|| {
                format!(
                    "{url:?} is not a Git repository URL Kargo accepts: use https://host/path, \
                     ssh://user@host/path or user@host:path."
                )
            })
        },
    )
}

pub fn chart_repo_url() -> Validator {
    string_check(
        "a Helm chart repository URL (`https://…` or `oci://…`)",
        "Invalid chart repository URL",
        |url| {
            (!matches_re(chart_repo_re(), url)).then(|| {
                format!(
                    "{url:?} is not a chart repository URL Kargo accepts: use \
                     https://charts.example.com or oci://registry.example.com/charts/name."
                )
            })
        },
    )
}

pub fn git_branch() -> Validator {
    string_check(
        "a branch name: 1 to 255 characters of letters, digits, `.`, `_`, `/` and `-`",
        "Invalid branch name",
        |branch| {
            if branch.chars().count() > 255 {
                return Some(format!(
                    "{branch:?} is longer than 255 characters; Kargo limits branch names to 255."
                ));
            }
            (!matches_re(git_branch_re(), branch)).then(|| {
                format!(
                    "{branch:?} is not a branch name Kargo accepts: use letters, digits, `.`, \
                     `_`, `/` and `-`, starting with a letter or digit and not ending with `.` \
                     or `/`."
                )
            })
        },
    )
}

pub fn platform() -> Validator {
    string_check(
        "`<os>/<arch>`, e.g. `linux/amd64`",
        "Invalid platform",
        |p| {
            (!matches_re(platform_re(), p))
                .then(|| format!("{p:?} is not of the form <os>/<arch>, e.g. \"linux/amd64\"."))
        },
    )
}

pub fn var_name() -> Validator {
    string_check(
        "a variable name: a letter or `_`, then letters, digits or `_`",
        "Invalid variable name",
        |name| {
            (!matches_re(var_name_re(), name)).then(|| {
                format!(
                    "{name:?} is not a variable name Kargo accepts: start with a letter or `_`, \
                     then use letters, digits or `_` (it is referenced as `vars.{name}`)."
                )
            })
        },
    )
}

/// The same check, with the attribute's path at the start of each message that does not
/// name it yet (see [`report`]), for validators used on nested attributes.
pub fn naming_path(inner: Validator) -> Validator {
    let check = inner.check.clone();
    Validator::new(&inner.description, move |v, path, diags| {
        let mut found = Diagnostics::default();
        check(v, path, &mut found);
        for mut d in found.0 {
            d.detail = naming(path, &d.detail);
            diags.push(d);
        }
    })
}

/// The name of another Kargo object (a DNS-1123 subdomain).
pub fn object_name() -> Validator {
    naming_path(super::common::dns_subdomain())
}

/// A string that must not be empty.
pub fn not_empty() -> Validator {
    Validator::new("must not be empty", |v, path, diags| {
        if v.as_str().is_some_and(str::is_empty) {
            report(
                diags,
                path.clone(),
                "Empty value",
                format!("`{path}` must not be empty."),
            );
        }
    })
}

/// A list with at least `min` elements; `what` names one element in the message.
pub fn min_items(min: usize, what: &'static str) -> Validator {
    Validator::new(
        &format!("must have at least {min} element(s)"),
        move |v, path, diags| {
            let n = v.elements().len();
            if n < min {
                report(
                    diags,
                    path.clone(),
                    "Too few elements",
                    format!("`{path}` has {n} elements; Kargo needs at least {min} {what}."),
                );
            }
        },
    )
}

/// Path selectors (`include_paths`, `exclude_paths`): a plain path, `glob:<pattern>` or
/// `regex:<expression>` (also `regexp:`); the expressions must compile.
pub fn path_selectors() -> Validator {
    Validator::new(
        "paths, `glob:` patterns or `regex:` expressions",
        |v, path, diags| {
            for (i, element) in v.elements().iter().enumerate() {
                let Some(s) = element.as_str() else { continue };
                if let Some(expr) = s
                    .strip_prefix("regex:")
                    .or_else(|| s.strip_prefix("regexp:"))
                {
                    check_regex(expr, &path.join_index(i), diags);
                }
            }
        },
    )
}

/// An attribute kept in the schema only to explain a field Kargo removed or never had:
/// setting it is an error that names the replacement.
pub fn removed(summary: &'static str, message: &'static str) -> Validator {
    Validator::new(message, move |_, path, diags| {
        report(diags, path.clone(), summary, message);
    })
}

/// Aliases Kargo gives unnamed steps; a user alias of this form could collide with them.
pub fn is_reserved_alias(alias: &str) -> bool {
    let digits = alias
        .strip_prefix("step-")
        .or_else(|| alias.strip_prefix("task-"));
    digits.is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kargo::semver::masterminds_to_semver;
    use crate::plugin::diagnostics::Severity;

    fn run(v: &Validator, value: Value) -> Vec<(String, String, String)> {
        let mut diags = Diagnostics::default();
        (v.check)(&value, &AttributePath::attr("x"), &mut diags);
        diags
            .0
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                (
                    d.attribute.map(|p| p.to_string()).unwrap_or_default(),
                    d.summary,
                    d.detail,
                )
            })
            .collect()
    }

    fn s(v: &str) -> Value {
        Value::string(v)
    }

    #[test]
    fn masterminds_forms_translate_to_semver_requirements() {
        let cases: &[(&str, &[&str])] = &[
            ("^1.29.0", &["^1.29.0"]),
            (">= 1.2, < 3.0.0 || >= 4.2.3", &[">=1.2, <3.0.0", ">=4.2.3"]),
            (">=1.2.3 <2", &[">=1.2.3, <2"]),
            ("1.2 - 1.4.5", &[">=1.2, <=1.4.5"]),
            ("~> 1.2", &["~1.2"]),
            ("=> 1.0 =< 2.0", &[">=1.0, <=2.0"]),
            ("!= 1.2.3", &["*"]),
            (">=1.0, != 1.5.0", &[">=1.0"]),
            ("1.x", &["=1.x"]),
            (">= 1.2.x", &[">=1.2.x"]),
            ("*", &["*"]),
            ("x || 2.*", &["*", "=2.*"]),
            ("v1.2.3", &["=1.2.3"]),
            ("^v2.0.0-rc.1", &["^2.0.0-rc.1"]),
        ];
        for (input, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|e| e.to_string()).collect();
            assert_eq!(
                masterminds_to_semver(input),
                Ok(expected),
                "translating {input:?}"
            );
        }
    }

    #[test]
    fn invalid_constraints_are_explained() {
        for (input, fragment) in [
            ("", "is empty"),
            (">>1.0", "unknown operator `>>`"),
            ("1.2.3.4", "not a valid version range"),
            ("abc", "not a valid version range"),
            ("^1.2 ||", "empty alternative"),
            (">=", "without a version"),
            ("1.2 -", "without a version after it"),
            ("- 1.2", "without a version before it"),
            ("!= 1.a", "after `!=`"),
        ] {
            let problem = semver_constraint_problem(input)
                .unwrap_or_else(|| panic!("{input:?} should be rejected"));
            assert!(problem.contains(fragment), "{input:?}: {problem}");
        }
    }

    #[test]
    fn semver_validator_reports_on_the_attribute() {
        let v = semver_constraint();
        assert!(run(&v, s("^1.29.0")).is_empty());
        let errors = run(&v, s("^1.2.3.4"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "x");
        assert_eq!(errors[0].1, "Invalid semver constraint");
        assert!(errors[0].2.contains("\"^1.2.3.4\""), "{}", errors[0].2);
    }

    #[test]
    fn regex_lists_report_each_bad_element() {
        let errors = run(&regex_list(), Value::List(vec![s("^v1"), s("(["), s("ok")]));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "x[1]");
        assert_eq!(errors[0].1, "Invalid regular expression");
    }

    #[test]
    fn json_object_accepts_objects_only() {
        let v = json_object();
        assert!(run(&v, s(r#"{"path":"./out","x":"${{ vars.y }}"}"#)).is_empty());
        assert!(run(&v, s("[1]"))[0].2.contains("must be a JSON object"));
        assert!(run(&v, s("{nope"))[0].2.contains("not valid JSON"));
    }

    #[test]
    fn timestamps_validate_and_compare_by_instant() {
        assert!(run(&rfc3339(), s("2024-05-01T00:00:00Z")).is_empty());
        assert!(!run(&rfc3339(), s("2024-05-01")).is_empty());
        assert!(timestamp_eq(
            &s("2024-05-01T02:00:00+02:00"),
            &s("2024-05-01T00:00:00Z")
        ));
        assert!(!timestamp_eq(
            &s("2024-05-01T02:00:00Z"),
            &s("2024-05-01T00:00:00Z")
        ));
    }

    #[test]
    fn repository_urls_follow_kargo_patterns() {
        assert_eq!(image_repo_url_problem("public.ecr.aws/nginx/nginx"), None);
        assert_eq!(image_repo_url_problem("localhost:5000/app"), None);
        assert!(
            image_repo_url_problem("nginx:1.25")
                .is_some_and(|p| p.contains("contains a tag or digest"))
        );
        assert!(image_repo_url_problem("ghcr.io/a/b@sha256:abc").is_some());
        assert!(image_repo_url_problem("https://ghcr.io/a/b").is_some());
        assert!(run(&git_repo_url(), s("https://github.com/a/b.git")).is_empty());
        assert!(run(&git_repo_url(), s("git@github.com:a/b.git")).is_empty());
        assert!(!run(&git_repo_url(), s("github.com/a/b")).is_empty());
        assert!(run(&chart_repo_url(), s("oci://ghcr.io/a/chart")).is_empty());
        assert!(!run(&chart_repo_url(), s("charts.example.com")).is_empty());
    }

    #[test]
    fn names_and_platforms() {
        assert!(run(&git_branch(), s("release/1.x")).is_empty());
        assert!(!run(&git_branch(), s("-bad")).is_empty());
        assert!(!run(&git_branch(), s("bad/")).is_empty());
        assert!(!run(&git_branch(), s(&"a".repeat(256))).is_empty());
        assert!(run(&platform(), s("linux/arm64")).is_empty());
        assert!(!run(&platform(), s("linux")).is_empty());
        assert!(run(&var_name(), s("_gitRepo1")).is_empty());
        assert!(!run(&var_name(), s("1repo")).is_empty());
        assert!(!run(&var_name(), s("git-repo")).is_empty());
    }

    #[test]
    fn list_and_string_shape_checks() {
        assert!(run(&not_empty(), s("git-clone")).is_empty());
        assert_eq!(
            run(&not_empty(), s("")),
            vec![(
                "x".to_string(),
                "Empty value".to_string(),
                "`x` must not be empty.".to_string()
            )],
            "the path is named once"
        );
        let one = min_items(1, "step");
        assert!(run(&one, Value::List(vec![s("a")])).is_empty());
        let errors = run(&one, Value::List(vec![]));
        assert_eq!(errors[0].0, "x");
        assert_eq!(
            errors[0].2,
            "`x` has 0 elements; Kargo needs at least 1 step."
        );
        let errors = run(
            &path_selectors(),
            Value::List(vec![
                s("charts/app"),
                s("glob:*.yaml"),
                s("regex:(["),
                s("regexp:^a$"),
            ]),
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "x[2]");
    }

    #[test]
    fn nested_checks_name_their_attribute() {
        let mut diags = Diagnostics::default();
        let at = AttributePath::attr("steps")
            .join_index(1)
            .join_attr("task")
            .join_attr("name");
        (object_name().check)(&s("Bad_Name"), &at, &mut diags);
        assert_eq!(diags.0.len(), 1);
        assert_eq!(diags.0[0].attribute.as_ref(), Some(&at));
        assert!(
            diags.0[0]
                .detail
                .starts_with("`steps[1].task.name`: \"Bad_Name\""),
            "{}",
            diags.0[0].detail
        );
        let mut diags = Diagnostics::default();
        (object_name().check)(&s("good.name"), &at, &mut diags);
        assert!(diags.is_empty());
    }

    #[test]
    fn reserved_aliases() {
        assert!(is_reserved_alias("step-0"));
        assert!(is_reserved_alias("task-12"));
        assert!(!is_reserved_alias("step-"));
        assert!(!is_reserved_alias("step-1a"));
        assert!(!is_reserved_alias("steps-1"));
        assert!(!is_reserved_alias("promo-process"));
    }

    #[test]
    fn removed_attributes_error_with_their_message() {
        let v = removed("Removed attribute", "use `b` instead");
        let errors = run(&v, s("anything"));
        assert_eq!(
            errors,
            vec![(
                "x".to_string(),
                "Removed attribute".to_string(),
                "`x`: use `b` instead".to_string()
            )]
        );
    }
}
