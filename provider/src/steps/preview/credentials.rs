//! Which credentials the preview sends to a Git host, in order: the provider's
//! `promotion_preview.git_credentials` (URL prefix, longest first, then regular expressions in
//! the order written), Kargo's own Git credential Secrets of the project and of the shared
//! namespace (when the provider may read them), the user's Git credential helper (asked only
//! when the host refuses anonymous access), then none. Values never reach a log.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::config::Secret;
use crate::kargo::urls::normalize_git;

/// Which repositories a `git_credentials` entry is for.
#[derive(Clone, Debug)]
pub enum UrlMatch {
    /// URLs starting with this text.
    Prefix(String),
    /// URLs a regular expression matches (anywhere in the URL, unless anchored).
    Regex(regex::Regex),
}

/// Credentials of `promotion_preview.git_credentials`.
#[derive(Clone, Debug)]
pub struct GitCredential {
    pub url: UrlMatch,
    pub username: String,
    pub password: Secret,
}

/// One of Kargo's Git credential Secrets (labelled `kargo.akuity.io/cred-type: git`).
#[derive(Clone, Debug)]
pub struct KargoCredential {
    pub namespace: String,
    pub secret: String,
    /// `repoURL`: a URL, or a regular expression when `repoURLIsRegex` is `"true"`.
    pub repo_url: String,
    pub is_regex: bool,
    pub username: String,
    pub password: Secret,
}

/// Kargo's Git credential Secrets as the preview of one project read them, in Kargo's order
/// (the project's namespace first, each namespace's Secrets by name).
#[derive(Clone, Debug, Default)]
pub struct KargoCredentials {
    pub secrets: Vec<KargoCredential>,
    /// Why some namespace's Secrets could not be read (told when a host refuses access).
    pub unread: Vec<String>,
}

impl KargoCredentials {
    /// Kargo's choice for `repo_url`: the first Secret whose `repoURL` equals it once both
    /// are normalised, or whose regular expression matches it or its normalised form. Kargo
    /// sends no credentials over plain `http://`, and a Secret without both a username and a
    /// password gives none.
    pub fn find(&self, repo_url: &str) -> Option<&KargoCredential> {
        if repo_url.starts_with("http://") {
            return None;
        }
        let normalized = normalize_git(repo_url);
        let found = self.secrets.iter().find(|s| {
            if s.is_regex {
                regex::Regex::new(&s.repo_url)
                    .is_ok_and(|re| re.is_match(repo_url) || re.is_match(&normalized))
            } else {
                normalize_git(&s.repo_url) == normalized
            }
        })?;
        (!found.username.is_empty() && !found.password.expose().is_empty()).then_some(found)
    }
}

/// Where the credentials sent came from, as a refusal tells it.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Config { matched: String },
    Kargo { namespace: String, secret: String },
    Helper,
}

/// Credentials chosen for a repository.
#[derive(Clone, Debug)]
pub struct Chosen {
    pub username: String,
    pub password: Secret,
    pub source: Source,
}

impl Chosen {
    /// How a refusal names these credentials (never their password).
    pub fn describe(&self) -> String {
        let user = &self.username;
        match &self.source {
            Source::Config { matched } => format!(
                "credentials from promotion_preview.git_credentials ({matched}, username {user:?})"
            ),
            Source::Kargo { namespace, secret } => {
                format!("credentials from Kargo's Secret {namespace}/{secret} (username {user:?})")
            }
            Source::Helper => {
                format!("credentials from the Git credential helper (username {user:?})")
            }
        }
    }
}

/// Every source of credentials one preview may use.
#[derive(Debug, Default)]
pub struct Credentials {
    pub config: Vec<GitCredential>,
    /// `None` unless `promotion_preview.read_kargo_credentials` is set.
    pub kargo: Option<KargoCredentials>,
    /// Whether the user's Git credential helper may be asked.
    pub helper: bool,
    /// What the helper said for each repository, so it is asked at most once.
    helper_answers: Mutex<HashMap<String, Option<Chosen>>>,
}

impl Credentials {
    pub fn new(config: Vec<GitCredential>, kargo: Option<KargoCredentials>, helper: bool) -> Self {
        Credentials {
            config,
            kargo,
            helper,
            helper_answers: Mutex::default(),
        }
    }

    /// The configured credentials for `repo_url`: the provider's, else Kargo's.
    pub fn configured(&self, repo_url: &str) -> Option<Chosen> {
        let prefix = self
            .config
            .iter()
            .filter_map(|c| match &c.url {
                UrlMatch::Prefix(p) if repo_url.starts_with(p.as_str()) => Some((c, p.len())),
                _ => None,
            })
            .max_by_key(|(_, len)| *len)
            .map(|(c, _)| c);
        let config = prefix.or_else(|| {
            self.config
                .iter()
                .find(|c| matches!(&c.url, UrlMatch::Regex(re) if re.is_match(repo_url)))
        });
        if let Some(c) = config {
            let matched = match &c.url {
                UrlMatch::Prefix(p) => format!("url_prefix {p:?}"),
                UrlMatch::Regex(re) => format!("url_regex {:?}", re.as_str()),
            };
            return Some(Chosen {
                username: c.username.clone(),
                password: c.password.clone(),
                source: Source::Config { matched },
            });
        }
        let secret = self.kargo.as_ref()?.find(repo_url)?;
        Some(Chosen {
            username: secret.username.clone(),
            password: secret.password.clone(),
            source: Source::Kargo {
                namespace: secret.namespace.clone(),
                secret: secret.secret.clone(),
            },
        })
    }

    /// The credential helper's answer for `repo_url` (asked once per repository), within
    /// `timeout`.
    pub fn from_helper(
        &self,
        repo_url: &str,
        timeout: Duration,
        runtime: &tokio::runtime::Handle,
    ) -> Option<Chosen> {
        if !self.helper {
            return None;
        }
        let mut answers = self
            .helper_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        answers
            .entry(repo_url.to_string())
            .or_insert_with(|| ask_helper(repo_url, timeout, runtime))
            .clone()
    }

    /// What the credential helper already said for `repo_url`, without asking it.
    pub fn helper_said(&self, repo_url: &str) -> Option<Chosen> {
        self.helper_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(repo_url)
            .cloned()
            .flatten()
    }

    /// Why no credentials were sent to `repo_url`, source by source.
    pub fn describe_none(&self, repo_url: &str) -> String {
        let mut why = vec!["no promotion_preview.git_credentials entry matches".to_string()];
        match &self.kargo {
            None => why.push(
                "Kargo's credential Secrets are not read (read_kargo_credentials is off)".into(),
            ),
            Some(_) if repo_url.starts_with("http://") => {
                why.push("Kargo's credential Secrets are not used over plain http://".into());
            }
            Some(k) => {
                why.push("no Kargo credential Secret matches".into());
                why.extend(k.unread.iter().cloned());
            }
        }
        why.push(if self.helper {
            "the Git credential helper gave none".into()
        } else {
            "the Git credential helper is off".into()
        });
        format!("no credentials ({})", why.join("; "))
    }
}

/// `git credential fill` for `repo_url`, without prompting, within `timeout`. `None` when git
/// is not installed, no helper answers, or it takes too long.
fn ask_helper(
    repo_url: &str,
    timeout: Duration,
    runtime: &tokio::runtime::Handle,
) -> Option<Chosen> {
    let (protocol, rest) = repo_url.split_once("://")?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let question = format!("protocol={protocol}\nhost={host}\npath={path}\n\n");
    let answer = runtime.block_on(async move {
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::new("git")
            .args(["credential", "fill"])
            // Never a prompt: not on the terminal, not through an askpass program.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "")
            .env("SSH_ASKPASS", "")
            // Git Credential Manager's own prompts.
            .env("GCM_INTERACTIVE", "never")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        let asked = async move {
            stdin.write_all(question.as_bytes()).await.ok()?;
            drop(stdin);
            child.wait_with_output().await.ok()
        };
        tokio::time::timeout(timeout, asked).await.ok().flatten()
    });
    let output = match answer {
        Some(o) if o.status.success() => o,
        _ => {
            tracing::debug!(url = %crate::kargo::redact_userinfo(repo_url), "the Git credential helper gave no credentials");
            return None;
        }
    };
    let text = String::from_utf8(output.stdout).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let (username, password) = (field("username")?, field("password")?);
    if password.is_empty() {
        return None;
    }
    tracing::debug!(url = %crate::kargo::redact_userinfo(repo_url), "the Git credential helper gave credentials");
    Some(Chosen {
        username,
        password: Secret::new(password),
        source: Source::Helper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kargo(namespace: &str, secret: &str, url: &str, regex: bool, user: &str) -> KargoCredential {
        KargoCredential {
            namespace: namespace.into(),
            secret: secret.into(),
            repo_url: url.into(),
            is_regex: regex,
            username: user.into(),
            password: Secret::new("pw"),
        }
    }

    fn config(url: UrlMatch, user: &str) -> GitCredential {
        GitCredential {
            url,
            username: user.into(),
            password: Secret::new("pw"),
        }
    }

    #[test]
    fn the_longest_prefix_wins_then_the_first_matching_regex() {
        let c = Credentials::new(
            vec![
                config(
                    UrlMatch::Regex(regex::Regex::new(r"^https://git\.example\.com/").unwrap()),
                    "re1",
                ),
                config(UrlMatch::Prefix("https://git.example.com/".into()), "short"),
                config(
                    UrlMatch::Prefix("https://git.example.com/acme/".into()),
                    "long",
                ),
                config(
                    UrlMatch::Regex(regex::Regex::new(r"other\.org/.*\.git$").unwrap()),
                    "re2",
                ),
            ],
            None,
            false,
        );
        let user = |u: &str| c.configured(u).map(|c| c.username);
        assert_eq!(
            user("https://git.example.com/acme/app.git").as_deref(),
            Some("long")
        );
        assert_eq!(
            user("https://git.example.com/other.git").as_deref(),
            Some("short")
        );
        assert_eq!(user("https://other.org/x/app.git").as_deref(), Some("re2"));
        assert_eq!(user("https://nowhere.net/app.git"), None);
        assert_eq!(
            c.configured("https://other.org/x/app.git")
                .unwrap()
                .describe(),
            "credentials from promotion_preview.git_credentials (url_regex \"other\\\\.org/.*\\\\.git$\", username \"re2\")"
        );
    }

    #[test]
    fn kargo_secrets_match_as_kargo_matches_them() {
        let k = KargoCredentials {
            secrets: vec![
                kargo(
                    "shop",
                    "a-exact",
                    "https://Git.Example.com/acme/app/",
                    false,
                    "exact",
                ),
                kargo("shop", "b-regex", r"example\.com/acme/.*", true, "regex"),
                kargo(
                    "kargo-shared-resources",
                    "c-shared",
                    "https://git.example.com/acme/lib",
                    false,
                    "shared",
                ),
                kargo(
                    "shop",
                    "d-nouser",
                    "https://git.example.com/acme/empty",
                    false,
                    "",
                ),
            ],
            unread: Vec::new(),
        };
        let user = |u: &str| k.find(u).map(|s| s.username.as_str());
        assert_eq!(
            user("https://git.example.com/acme/app.git"),
            Some("exact"),
            "normalised"
        );
        assert_eq!(
            user("https://git.example.com/acme/lib.git"),
            Some("regex"),
            "the first match, project before shared"
        );
        assert_eq!(user("https://git.example.com/acme/empty"), Some("regex"));
        assert_eq!(
            user("http://git.example.com/acme/app.git"),
            None,
            "never over plain http"
        );
        assert_eq!(user("https://git.example.com/other/x.git"), None);
        let only_empty = KargoCredentials {
            secrets: vec![kargo(
                "shop",
                "d-nouser",
                "https://git.example.com/acme/empty",
                false,
                "",
            )],
            unread: Vec::new(),
        };
        assert!(
            only_empty
                .find("https://git.example.com/acme/empty")
                .is_none(),
            "no username, no credentials"
        );

        let c = Credentials::new(Vec::new(), Some(k), false);
        assert_eq!(
            c.configured("https://git.example.com/acme/app.git")
                .unwrap()
                .describe(),
            "credentials from Kargo's Secret shop/a-exact (username \"exact\")"
        );
        assert_eq!(
            c.describe_none("https://nowhere.net/x.git"),
            "no credentials (no promotion_preview.git_credentials entry matches; no Kargo credential Secret matches; the Git credential helper is off)"
        );
    }

    #[test]
    fn the_configured_entries_come_before_kargos_secrets() {
        let c = Credentials::new(
            vec![config(
                UrlMatch::Prefix("https://git.example.com/".into()),
                "mine",
            )],
            Some(KargoCredentials {
                secrets: vec![kargo(
                    "shop",
                    "a",
                    "https://git.example.com/app",
                    false,
                    "kargo",
                )],
                unread: Vec::new(),
            }),
            false,
        );
        assert_eq!(
            c.configured("https://git.example.com/app.git")
                .unwrap()
                .username,
            "mine"
        );
    }
}
