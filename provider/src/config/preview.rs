//! The `promotion_preview` block: whether plans preview promotions' manifest changes, and the
//! Git settings they use (CA, credentials, timeout, cache).

use crate::duration::parse_go_duration;
use crate::plugin::{AttributePath, Diagnostic, Diagnostics, Value};
use crate::steps::preview::{GitCredential, Settings, UrlMatch, default_cache_dir};

use super::Secret;

pub const BLOCK: &str = "promotion_preview";

fn first_item(v: &Value) -> Value {
    match v {
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.first().cloned().unwrap_or(Value::Null)
        }
        other => other.clone(),
    }
}

/// The preview settings of the provider block, or diagnostics on the attribute at fault.
/// `None` while some of the block is unknown (plan time): the preview is then decided at
/// apply.
pub fn preview_settings(config: &Value) -> Result<Option<Settings>, Diagnostics> {
    let block = first_item(config.get(BLOCK));
    let mut settings = Settings::default();
    if block.is_null() {
        return Ok(Some(settings));
    }
    if !block.is_wholly_known() {
        return Ok(None);
    }
    let at = |name: &str| AttributePath::attr(BLOCK).join_index(0).join_attr(name);
    let mut diags = Diagnostics::default();
    if let Some(enabled) = block.get("enabled").as_bool() {
        settings.enabled = enabled;
    }
    if let Some(t) = block.get("timeout").as_str() {
        match parse_go_duration(t) {
            Some(d) if !d.is_zero() => settings.timeout = d,
            _ => diags.push(
                Diagnostic::error(
                    "Invalid promotion preview timeout",
                    format!("{t:?} is not a positive duration such as `20s` or `1m`."),
                )
                .at(at("timeout")),
            ),
        }
    }
    if let Some(path) = block.get("ca_file").as_str() {
        match std::fs::read(path) {
            Ok(pem) => settings.ca_pem = Some(pem),
            Err(e) => diags.push(
                Diagnostic::error(
                    "Promotion preview CA file unreadable",
                    format!("Cannot read {path:?}: {e}."),
                )
                .at(at("ca_file")),
            ),
        }
    }
    settings.cache_dir = block
        .get("cache_dir")
        .as_str()
        .map_or_else(default_cache_dir, Into::into);
    if let Some(read) = block.get("read_kargo_credentials").as_bool() {
        settings.read_kargo_credentials = read;
    }
    if let Some(ns) = block.get("kargo_shared_namespace").as_str() {
        settings.shared_namespace = ns.to_string();
    }
    if let Some(helper) = block.get("git_credential_helper").as_bool() {
        settings.credential_helper = helper;
    }
    for (i, c) in block.get("git_credentials").elements().iter().enumerate() {
        let text = |k: &str| c.get(k).as_str().unwrap_or_default().to_string();
        let entry = |name: &str| at("git_credentials").join_index(i).join_attr(name);
        let url = match (c.get("url_prefix").as_str(), c.get("url_regex").as_str()) {
            (Some(prefix), None) => UrlMatch::Prefix(prefix.to_string()),
            (None, Some(pattern)) => match regex::Regex::new(pattern) {
                Ok(re) => UrlMatch::Regex(re),
                Err(e) => {
                    diags.push(
                        Diagnostic::error(
                            "Invalid Git credentials URL pattern",
                            format!("{pattern:?} is not a valid regular expression: {e}"),
                        )
                        .at(entry("url_regex")),
                    );
                    continue;
                }
            },
            (prefix, _) => {
                diags.push(
                    Diagnostic::error(
                        "Git credentials need one URL match",
                        "Set exactly one of `url_prefix` and `url_regex`.",
                    )
                    .at(entry(if prefix.is_some() {
                        "url_regex"
                    } else {
                        "url_prefix"
                    })),
                );
                continue;
            }
        };
        settings.credentials.push(GitCredential {
            url,
            username: text("username"),
            password: Secret::new(text("password")),
        });
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(Some(settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(preview: Vec<(&str, Value)>) -> Value {
        Value::object([(BLOCK, Value::List(vec![Value::object(preview)]))])
    }

    #[test]
    fn without_the_block_previews_are_on_with_defaults() {
        let s = preview_settings(&Value::object([("host", Value::Null)]))
            .unwrap()
            .unwrap();
        assert!(s.enabled);
        assert_eq!(s.timeout, crate::steps::preview::DEFAULT_TIMEOUT);
        assert!(s.credentials.is_empty());
    }

    #[test]
    fn the_block_is_read_and_passwords_stay_out_of_debug_output() {
        let credential = Value::object([
            ("url_prefix", Value::string("https://git.example.com/")),
            ("username", Value::string("git")),
            ("password", Value::string("s3cret-token")),
        ]);
        let s = preview_settings(&config(vec![
            ("enabled", Value::Bool(false)),
            ("timeout", Value::string("1m30s")),
            ("cache_dir", Value::string("/tmp/kargo-cache")),
            ("git_credentials", Value::List(vec![credential])),
        ]))
        .unwrap()
        .unwrap();
        assert!(!s.enabled);
        assert_eq!(s.timeout, std::time::Duration::from_secs(90));
        assert_eq!(s.cache_dir, std::path::PathBuf::from("/tmp/kargo-cache"));
        assert_eq!(s.credentials[0].password.expose(), "s3cret-token");
        assert!(!format!("{s:?}").contains("s3cret-token"));
    }

    /// Each diagnostic's attribute path and summary.
    fn where_and_what(d: &Diagnostics) -> Vec<(String, String)> {
        d.0.iter()
            .map(|d| {
                let at = d.attribute.as_ref().map(|a| a.to_string());
                (at.unwrap_or_default(), d.summary.clone())
            })
            .collect()
    }

    #[test]
    fn bad_values_are_errors_on_their_attribute() {
        let d = preview_settings(&config(vec![
            ("timeout", Value::string("soon")),
            ("ca_file", Value::string("/nonexistent/ca.pem")),
        ]))
        .unwrap_err();
        let found = where_and_what(&d);
        assert_eq!(
            found,
            vec![
                (
                    "promotion_preview[0].timeout".to_string(),
                    "Invalid promotion preview timeout".to_string()
                ),
                (
                    "promotion_preview[0].ca_file".to_string(),
                    "Promotion preview CA file unreadable".to_string()
                ),
            ]
        );
    }

    #[test]
    fn credentials_match_by_prefix_or_regex_and_kargo_secrets_are_opt_in() {
        let entry = |k: &str, v: &str| {
            Value::object([
                (k, Value::string(v)),
                ("username", Value::string("git")),
                ("password", Value::string("x")),
            ])
        };
        let s = preview_settings(&config(vec![
            (
                "git_credentials",
                Value::List(vec![
                    entry("url_prefix", "https://a/"),
                    entry("url_regex", "^https://b/.*"),
                ]),
            ),
            ("read_kargo_credentials", Value::Bool(true)),
            ("kargo_shared_namespace", Value::string("shared")),
            ("git_credential_helper", Value::Bool(false)),
        ]))
        .unwrap()
        .unwrap();
        assert!(matches!(&s.credentials[0].url, UrlMatch::Prefix(p) if p == "https://a/"));
        assert!(
            matches!(&s.credentials[1].url, UrlMatch::Regex(r) if r.as_str() == "^https://b/.*")
        );
        assert!(s.read_kargo_credentials && !s.credential_helper);
        assert_eq!(s.shared_namespace, "shared");
        let defaults = preview_settings(&config(vec![])).unwrap().unwrap();
        assert!(!defaults.read_kargo_credentials && defaults.credential_helper);
        assert_eq!(defaults.shared_namespace, "kargo-shared-resources");

        let mut both = entry("url_prefix", "https://a/");
        if let Value::Object(m) = &mut both {
            m.insert("url_regex".into(), Value::string("a"));
        }
        let d = preview_settings(&config(vec![(
            "git_credentials",
            Value::List(vec![entry("url_regex", "(unclosed"), both]),
        )]))
        .unwrap_err();
        let found = where_and_what(&d);
        assert_eq!(
            found,
            vec![
                (
                    "promotion_preview[0].git_credentials[0].url_regex".to_string(),
                    "Invalid Git credentials URL pattern".to_string()
                ),
                (
                    "promotion_preview[0].git_credentials[1].url_regex".to_string(),
                    "Git credentials need one URL match".to_string()
                ),
            ]
        );
    }

    #[test]
    fn an_unknown_block_is_not_decided_at_plan() {
        assert!(
            preview_settings(&config(vec![("timeout", Value::Unknown)]))
                .unwrap()
                .is_none()
        );
    }
}
