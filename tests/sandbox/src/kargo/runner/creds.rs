//! Repository credentials as Kargo finds them: Secrets labelled
//! `kargo.akuity.io/cred-type: git` in the project namespace, then in the shared-resources
//! namespace, matched on `repoURL` (normalised, or as a regex with `repoURLIsRegex`).

use base64::Engine;
use regex::Regex;
use serde_json::Value;

use crate::hooks::Txn;
use crate::kargo::urls::normalize_git;
use crate::kargo::util;

const LABEL_CRED_TYPE: &str = "kargo.akuity.io/cred-type";
/// Where Kargo's Helm chart puts shared credentials (`global.sharedResources.namespace`).
pub const SHARED_NAMESPACE: &str = "kargo-shared-resources";

/// A username and password for a repository.
#[derive(Clone, Debug, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// One credentials Secret's decoded data.
#[derive(Clone, Debug)]
struct Entry {
    repo_url: Option<String>,
    is_regex: bool,
    username: Option<String>,
    password: Option<String>,
}

/// The Git credentials Secrets of a project and of the shared namespace, read once under the
/// store lock so the Git work can look them up on another thread.
#[derive(Clone, Debug, Default)]
pub struct CredsDb {
    project: Vec<Entry>,
    shared: Vec<Entry>,
}

fn decode(data: &Value, key: &str) -> Option<String> {
    let encoded = data.get(key)?.as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn entries(txn: &dyn Txn, namespace: &str) -> Vec<Entry> {
    let mut secrets: Vec<Value> = txn
        .list("", "secrets", Some(namespace))
        .into_iter()
        .filter(|s| util::label(s, LABEL_CRED_TYPE) == Some("git"))
        .collect();
    secrets.sort_by(|a, b| util::name(a).cmp(util::name(b)));
    secrets
        .iter()
        .filter_map(|s| s.get("data").filter(|d| d.is_object()))
        .map(|data| Entry {
            repo_url: decode(data, "repoURL"),
            is_regex: decode(data, "repoURLIsRegex").as_deref() == Some("true"),
            username: decode(data, "username"),
            password: decode(data, "password"),
        })
        .collect()
}

impl CredsDb {
    pub fn load(txn: &dyn Txn, project: &str) -> CredsDb {
        CredsDb {
            project: entries(txn, project),
            shared: entries(txn, SHARED_NAMESPACE),
        }
    }

    /// Kargo's `credentials.Database.Get` for Git: the first matching Secret of the project,
    /// else of the shared namespace; its username and password when both are set; `None`
    /// (anonymous) otherwise, and always for plain `http://` URLs.
    pub fn get(&self, repo_url: &str) -> Option<Credentials> {
        if repo_url.starts_with("http://") {
            return None;
        }
        let normalized = normalize_git(repo_url);
        let matches = |e: &&Entry| {
            let Some(url) = &e.repo_url else {
                return false;
            };
            if e.is_regex {
                Regex::new(url)
                    .map(|re| re.is_match(repo_url) || re.is_match(&normalized))
                    .unwrap_or(false)
            } else {
                normalize_git(url) == normalized
            }
        };
        let entry = self
            .project
            .iter()
            .find(matches)
            .or_else(|| self.shared.iter().find(matches))?;
        match (&entry.username, &entry.password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, regex: bool, user: &str, pass: &str) -> Entry {
        Entry {
            repo_url: Some(url.into()),
            is_regex: regex,
            username: Some(user.into()),
            password: Some(pass.into()),
        }
    }

    #[test]
    fn project_first_then_shared_then_anonymous() {
        let db = CredsDb {
            project: vec![
                entry("https://git.example.com/org/app.git", false, "p", "pp"),
                entry("^https://git\\.example\\.com/other/.*$", true, "r", "rr"),
            ],
            shared: vec![entry("https://git.example.com/org/lib", false, "s", "ss")],
        };
        let user = |u: &str| db.get(u).map(|c| c.username);
        assert_eq!(
            user("https://GIT.example.com/org/app/").as_deref(),
            Some("p")
        );
        assert_eq!(
            user("https://git.example.com/other/x").as_deref(),
            Some("r")
        );
        assert_eq!(
            user("https://git.example.com/org/lib.git").as_deref(),
            Some("s")
        );
        assert_eq!(user("https://git.example.com/none"), None);
        assert_eq!(
            user("http://git.example.com/org/app.git"),
            None,
            "never over http"
        );
    }

    #[test]
    fn incomplete_secrets_give_no_credentials() {
        let db = CredsDb {
            project: vec![entry("https://h/r", false, "u", "")],
            shared: vec![entry("https://h/r", false, "s", "ss")],
        };
        assert_eq!(
            db.get("https://h/r"),
            None,
            "the first match wins, even unusable"
        );
    }
}
