//! Git repositories the sandbox serves over smart HTTP(S) (bare repositories under one root
//! directory), the pull requests opened against them, and the `git` command line they use.

pub mod exec;
pub mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kargo::urls::normalize_git;
use crate::server::lock;
pub use exec::{ExecError, Git, git_binary, quiet_config_env};

/// The identity the sandbox itself commits as (seeding repositories, merging pull requests).
const SANDBOX_NAME: &str = "kargo-sandbox";
const SANDBOX_EMAIL: &str = "kargo-sandbox@localhost";
const META_FILE: &str = "sandbox-repos.json";

/// Basic-auth credentials a private repository demands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// A served repository's settings (its content lives in `<root>/<name>.git`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RepoMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<BasicAuth>,
}

/// Where a pull request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrState {
    Open,
    Merged,
    Closed,
}

/// A pull request of the sandbox's own model: what Kargo's Git providers would open on
/// GitHub or GitLab, recorded against the repository's normalised URL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequest {
    pub number: u64,
    pub repo_url: String,
    pub url: String,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: String,
    pub labels: Vec<String>,
    /// The source branch's head when the pull request was opened.
    pub head_commit: String,
    pub state: PrState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_commit: Option<String>,
    pub created_at: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Meta {
    repos: BTreeMap<String, RepoMeta>,
    /// By normalised repository URL.
    pulls: BTreeMap<String, Vec<PullRequest>>,
}

/// What a new pull request carries.
pub struct NewPullRequest<'a> {
    pub repo_url: &'a str,
    pub source_branch: &'a str,
    pub target_branch: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub labels: &'a [String],
    pub head_commit: &'a str,
    pub created_at: String,
}

/// A file another writer sets (path in the repository, new contents).
pub type FileChange = (String, String);

/// The sandbox's Git host: served repositories and pull requests.
pub struct GitHost {
    root: PathBuf,
    /// `https://<address>/git/`, known once the server listens.
    base_url: OnceLock<String>,
    /// The CA certificate (PEM) Git clients must trust, written beside the repositories.
    ca_file: PathBuf,
    /// The same certificate alone in a directory of its own, for promotion steps.
    steps_ca_file: PathBuf,
    meta: Mutex<Meta>,
    /// Whether `root` is private to this sandbox and removed with it.
    temporary: bool,
    /// Promotions' work directories (always private to this sandbox).
    work_root: PathBuf,
    /// Armed "another writer" faults: (repository, branch, change) moved just before the next
    /// push.
    races: Mutex<Vec<(String, String, Option<FileChange>)>>,
}

impl Drop for GitHost {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.root);
        }
        let _ = std::fs::remove_dir_all(&self.work_root);
    }
}

/// A repository name as it may appear in a URL: letters, digits, `.`, `_` and `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn exec_err(e: ExecError) -> String {
    e.to_string()
}

/// Git run as the sandbox itself, with an identity of its own.
fn sandbox_git<I, S>(args: I) -> Git
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Git::new(args)
        .env("GIT_AUTHOR_NAME", SANDBOX_NAME)
        .env("GIT_AUTHOR_EMAIL", SANDBOX_EMAIL)
        .env("GIT_COMMITTER_NAME", SANDBOX_NAME)
        .env("GIT_COMMITTER_EMAIL", SANDBOX_EMAIL)
}

impl GitHost {
    /// A host keeping its repositories under `root` (created if needed); `temporary` roots
    /// are removed when the host is dropped.
    pub fn open(root: PathBuf, ca_pem: &str, temporary: bool) -> std::io::Result<GitHost> {
        std::fs::create_dir_all(&root)?;
        let ca_file = root.join("sandbox-ca.crt");
        std::fs::write(&ca_file, ca_pem)?;
        let meta = std::fs::read(root.join(META_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let work_root = std::env::temp_dir().join(format!(
            "kargo-sandbox-work-{}-{}",
            std::process::id(),
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        let trust = work_root.join("trust");
        std::fs::create_dir_all(&trust)?;
        let steps_ca_file = trust.join("sandbox-ca.crt");
        std::fs::write(&steps_ca_file, ca_pem)?;
        Ok(GitHost {
            steps_ca_file,
            races: Mutex::new(Vec::new()),
            work_root,
            root,
            base_url: OnceLock::new(),
            ca_file,
            meta: Mutex::new(meta),
            temporary,
        })
    }

    /// Records the address the server listens on.
    pub fn set_address(&self, address: &str) {
        let _ = self.base_url.set(format!("https://{address}/git/"));
    }

    /// The work directory of a Promotion (Kargo's per-Promotion `WorkDir`).
    pub fn work_dir(&self, project: &str, promotion: &str) -> PathBuf {
        self.work_root.join(project).join(promotion)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The CA file to give Git clients as `GIT_SSL_CAINFO`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA file promotion steps trust: alone in its directory, which they also give Git
    /// as the CA directory (`GIT_SSL_CAPATH`), so that Git trusts the sandbox and nothing
    /// else, without loading the system's hundreds of certificates on every fetch and push.
    pub fn steps_ca_file(&self) -> &Path {
        &self.steps_ca_file
    }

    /// `https://<address>/git/<name>.git`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "{}{name}.git",
            self.base_url.get().map(String::as_str).unwrap_or("/git/")
        )
    }

    fn save(&self, meta: &Meta) {
        match serde_json::to_vec_pretty(meta) {
            Ok(b) => {
                if let Err(e) = crate::kubeconfig::write_atomic(&self.root.join(META_FILE), &b) {
                    tracing::error!(error = %e, "cannot save the sandbox's Git metadata");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the sandbox's Git metadata"),
        }
    }

    /// The bare repository directory of a served repository, if it exists.
    pub fn repo_dir(&self, name: &str) -> Option<PathBuf> {
        let dir = self.root.join(format!("{name}.git"));
        (valid_name(name) && dir.is_dir()).then_some(dir)
    }

    /// The credentials a served repository demands, if it is private.
    pub fn auth_of(&self, name: &str) -> Option<BasicAuth> {
        lock(&self.meta)
            .repos
            .get(name)
            .and_then(|m| m.auth.clone())
    }

    /// Creates a bare repository `name` whose default branch is `branch`, with one commit of
    /// the files under `from` when given; returns its URL.
    pub fn create(
        &self,
        name: &str,
        from: Option<&Path>,
        branch: &str,
        auth: Option<BasicAuth>,
    ) -> Result<String, String> {
        git_binary()?;
        let name = name.strip_suffix(".git").unwrap_or(name);
        if !valid_name(name) {
            return Err(format!(
                "invalid repository name {name:?}: use letters, digits, '.', '_' and '-'"
            ));
        }
        if branch.is_empty() {
            return Err("the default branch must not be empty".into());
        }
        let dir = self.root.join(format!("{name}.git"));
        if dir.exists() {
            return Err(format!("repository {name:?} already exists"));
        }
        let made = (|| {
            let d = dir.to_string_lossy().into_owned();
            sandbox_git(["init", "--quiet", "--bare", "-b", branch, &d])
                .run()
                .map_err(exec_err)?;
            sandbox_git(["config", "http.receivepack", "true"])
                .dir(&dir)
                .run()
                .map_err(exec_err)?;
            if let Some(src) = from {
                self.seed(&dir, src, branch)?;
            }
            Ok::<(), String>(())
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let mut meta = lock(&self.meta);
        meta.repos.insert(name.to_string(), RepoMeta { auth });
        self.save(&meta);
        Ok(self.url(name))
    }

    /// One commit holding every file under `src`, written straight into the bare repository
    /// through a temporary index (no work tree is copied).
    fn seed(&self, bare: &Path, src: &Path, branch: &str) -> Result<(), String> {
        if !src.is_dir() {
            return Err(format!("--from {}: not a directory", src.display()));
        }
        let index = bare.join("seed-index");
        let g = |args: &[&str]| {
            sandbox_git(args)
                .dir(bare)
                .env("GIT_DIR", bare)
                .env("GIT_WORK_TREE", src)
                .env("GIT_INDEX_FILE", &index)
                .run()
                .map_err(exec_err)
        };
        let result = (|| {
            g(&["add", "--all", "--force", "."])?;
            let tree = g(&["write-tree"])?;
            let commit = g(&["commit-tree", tree.trim(), "-m", "Initial commit"])?;
            g(&["update-ref", &format!("refs/heads/{branch}"), commit.trim()])?;
            Ok(())
        })();
        let _ = std::fs::remove_file(&index);
        result
    }

    /// The served repository behind `url` (`https://<address>/git/<name>.git`), by name.
    pub fn served_name(&self, url: &str) -> Option<String> {
        let base = normalize_git(self.base_url.get()?);
        let url = normalize_git(url);
        let name = url
            .strip_prefix(base.trim_end_matches('/'))?
            .strip_prefix('/')?;
        valid_name(name).then(|| name.to_string())
    }

    /// The bare repository a URL designates: a served one, or a local `file://` one.
    pub fn local_dir(&self, url: &str) -> Option<PathBuf> {
        if let Some(path) = url.strip_prefix("file://") {
            let p = PathBuf::from(path);
            return p.is_dir().then_some(p);
        }
        self.served_name(url).and_then(|n| self.repo_dir(&n))
    }

    /// The tip of `branch` in the bare repository at `dir`.
    pub fn branch_head(dir: &Path, branch: &str) -> Result<Option<String>, String> {
        match sandbox_git([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
        .dir(dir)
        .run()
        {
            Ok(out) => Ok(Some(out.trim().to_string())),
            Err(e) if e.code == 1 => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Opens a pull request; its number counts per repository from 1.
    pub fn open_pull_request(&self, new: NewPullRequest<'_>) -> PullRequest {
        let key = normalize_git(new.repo_url);
        let mut meta = lock(&self.meta);
        let pulls = meta.pulls.entry(key.clone()).or_default();
        let number = pulls.len() as u64 + 1;
        let pr = PullRequest {
            number,
            repo_url: new.repo_url.to_string(),
            url: format!("{}/pull/{number}", new.repo_url.trim_end_matches(".git")),
            source_branch: new.source_branch.to_string(),
            target_branch: new.target_branch.to_string(),
            title: new.title.to_string(),
            description: new.description.to_string(),
            labels: new.labels.to_vec(),
            head_commit: new.head_commit.to_string(),
            state: PrState::Open,
            merge_commit: None,
            created_at: new.created_at,
        };
        pulls.push(pr.clone());
        self.save(&meta);
        pr
    }

    /// The pull requests of a repository (all repositories when `None`), oldest first.
    pub fn pull_requests(&self, repo_url: Option<&str>) -> Vec<PullRequest> {
        let meta = lock(&self.meta);
        match repo_url {
            Some(u) => meta
                .pulls
                .get(&normalize_git(u))
                .cloned()
                .unwrap_or_default(),
            None => meta.pulls.values().flatten().cloned().collect(),
        }
    }

    pub fn pull_request(&self, repo_url: &str, number: u64) -> Option<PullRequest> {
        self.pull_requests(Some(repo_url))
            .into_iter()
            .find(|p| p.number == number)
    }

    fn update_pull_request(&self, pr: &PullRequest) {
        let mut meta = lock(&self.meta);
        if let Some(slot) = meta
            .pulls
            .get_mut(&normalize_git(&pr.repo_url))
            .and_then(|ps| ps.iter_mut().find(|p| p.number == pr.number))
        {
            *slot = pr.clone();
        }
        self.save(&meta);
    }

    /// Merges an open pull request with a merge commit on its target branch; returns the
    /// pull request as merged. A conflict leaves it open and says so.
    pub fn merge_pull_request(&self, repo_url: &str, number: u64) -> Result<PullRequest, String> {
        let mut pr = self
            .pull_request(repo_url, number)
            .ok_or_else(|| format!("pull request {number} of {repo_url} not found"))?;
        match pr.state {
            PrState::Merged => return Ok(pr),
            PrState::Closed => return Err(format!("pull request {number} is closed")),
            PrState::Open => {}
        }
        let dir = self
            .local_dir(repo_url)
            .ok_or_else(|| format!("repository {repo_url} is not one the sandbox holds"))?;
        let target = Self::branch_head(&dir, &pr.target_branch)?
            .ok_or_else(|| format!("target branch {:?} does not exist", pr.target_branch))?;
        let source = Self::branch_head(&dir, &pr.source_branch)?
            .ok_or_else(|| format!("source branch {:?} does not exist", pr.source_branch))?;
        let tree = match sandbox_git(["merge-tree", "--write-tree", &target, &source])
            .dir(&dir)
            .run()
        {
            Ok(out) => out.lines().next().unwrap_or_default().trim().to_string(),
            Err(e) if e.code == 1 => {
                return Err(format!(
                    "pull request {number} cannot be merged: merge conflict"
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        let message = format!(
            "Merge pull request #{number} from {}\n\n{}",
            pr.source_branch, pr.title
        );
        let commit = sandbox_git([
            "commit-tree",
            &tree,
            "-p",
            &target,
            "-p",
            &source,
            "-m",
            &message,
        ])
        .dir(&dir)
        .run()
        .map_err(exec_err)?;
        let commit = commit.trim().to_string();
        sandbox_git([
            "update-ref",
            &format!("refs/heads/{}", pr.target_branch),
            &commit,
            &target,
        ])
        .dir(&dir)
        .run()
        .map_err(exec_err)?;
        pr.state = PrState::Merged;
        pr.merge_commit = Some(commit);
        self.update_pull_request(&pr);
        Ok(pr)
    }

    /// Closes an open pull request without merging it.
    pub fn close_pull_request(&self, repo_url: &str, number: u64) -> Result<PullRequest, String> {
        let mut pr = self
            .pull_request(repo_url, number)
            .ok_or_else(|| format!("pull request {number} of {repo_url} not found"))?;
        if pr.state == PrState::Merged {
            return Err(format!("pull request {number} is already merged"));
        }
        pr.state = PrState::Closed;
        self.update_pull_request(&pr);
        Ok(pr)
    }

    /// Arms a fault: just before the next push to repository `name`, another writer commits
    /// to `branch` (setting `change`'s file, or an empty commit), so a push based on the old tip
    /// is rejected as non-fast-forward.
    pub fn arm_race(
        &self,
        name: &str,
        branch: &str,
        change: Option<FileChange>,
    ) -> Result<(), String> {
        let name = name.strip_suffix(".git").unwrap_or(name);
        let dir = self
            .repo_dir(name)
            .ok_or_else(|| format!("repository {name:?} not found"))?;
        Self::branch_head(&dir, branch)?
            .ok_or_else(|| format!("branch {branch:?} of repository {name:?} not found"))?;
        lock(&self.races).push((name.to_string(), branch.to_string(), change));
        Ok(())
    }

    /// The tree of `head` with `change` applied (through a private index file).
    fn changed_tree(dir: &Path, head: &str, change: &FileChange) -> Result<String, String> {
        let (path, contents) = change;
        let scratch = dir.join(format!("race-{}.tmp", std::process::id()));
        let index = dir.join(format!("race-{}.index", std::process::id()));
        let result = (|| {
            std::fs::write(&scratch, contents).map_err(|e| e.to_string())?;
            let blob = sandbox_git(["hash-object", "-w", &scratch.to_string_lossy()])
                .dir(dir)
                .run()
                .map_err(exec_err)?;
            let with_index = |args: &[&str]| {
                sandbox_git(args)
                    .dir(dir)
                    .env("GIT_INDEX_FILE", &index)
                    .run()
                    .map_err(exec_err)
            };
            with_index(&["read-tree", head])?;
            with_index(&[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{},{path}", blob.trim()),
            ])?;
            with_index(&["write-tree"]).map(|t| t.trim().to_string())
        })();
        let _ = std::fs::remove_file(&scratch);
        let _ = std::fs::remove_file(&index);
        result
    }

    /// Fires an armed race for `name`: a commit (empty, or setting the armed file) lands on
    /// the branch.
    pub fn fire_race(&self, name: &str) {
        let armed = {
            let mut races = lock(&self.races);
            races
                .iter()
                .position(|(n, _, _)| n == name)
                .map(|i| races.remove(i))
        };
        let (Some((_, branch, change)), Some(dir)) = (armed, self.repo_dir(name)) else {
            return;
        };
        let moved = (|| {
            let head = Self::branch_head(&dir, &branch)?.ok_or("the branch is gone")?;
            let tree = match &change {
                Some(c) => Self::changed_tree(&dir, &head, c)?,
                None => format!("{head}^{{tree}}"),
            };
            let commit = sandbox_git([
                "commit-tree",
                &tree,
                "-p",
                &head,
                "-m",
                "A concurrent change by another writer",
            ])
            .dir(&dir)
            .run()
            .map_err(exec_err)?;
            sandbox_git([
                "update-ref",
                &format!("refs/heads/{branch}"),
                commit.trim(),
                &head,
            ])
            .dir(&dir)
            .run()
            .map_err(exec_err)?;
            Ok::<(), String>(())
        })();
        if let Err(e) = moved {
            tracing::warn!(repo = name, branch, error = %e, "cannot move the branch for a race fault");
        }
    }

    /// Drops armed Git faults.
    pub fn clear_faults(&self) {
        lock(&self.races).clear();
    }

    /// The repository URL a command names: a full URL, or a served repository's name.
    pub fn resolve_url(&self, repo: &str) -> String {
        if repo.contains("://") {
            repo.to_string()
        } else {
            self.url(repo.strip_suffix(".git").unwrap_or(repo))
        }
    }

    /// Serves the control API's `git/…` commands (`create`, `prs`, `merge`, `close`).
    pub fn control(&self, command: &str, body: &Value) -> Result<Value, String> {
        let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
        let number = || {
            body.get("number")
                .and_then(Value::as_u64)
                .ok_or_else(|| "a pull request number is required".to_string())
        };
        match command {
            "create" => {
                let auth = match (s("username"), s("password")) {
                    ("", "") => None,
                    (u, p) if !u.is_empty() && !p.is_empty() => Some(BasicAuth {
                        username: u.to_string(),
                        password: p.to_string(),
                    }),
                    _ => return Err("a private repository needs a username and a password".into()),
                };
                let from = Some(s("from")).filter(|f| !f.is_empty()).map(PathBuf::from);
                let branch = Some(s("branch"))
                    .filter(|b| !b.is_empty())
                    .unwrap_or("main");
                let url = self.create(s("name"), from.as_deref(), branch, auth)?;
                Ok(json!({"url": url}))
            }
            "prs" => {
                let repo = Some(s("repo")).filter(|r| !r.is_empty());
                let url = repo.map(|r| self.resolve_url(r));
                Ok(json!(self.pull_requests(url.as_deref())))
            }
            "merge" => Ok(json!(
                self.merge_pull_request(&self.resolve_url(s("repo")), number()?)?
            )),
            "close" => Ok(json!(
                self.close_pull_request(&self.resolve_url(s("repo")), number()?)?
            )),
            "race" => {
                let change = match (s("file"), body.get("contents").and_then(Value::as_str)) {
                    ("", _) => None,
                    (file, contents) => {
                        Some((file.to_string(), contents.unwrap_or_default().to_string()))
                    }
                };
                self.arm_race(s("repo"), s("branch"), change)?;
                Ok(json!({"armed": true}))
            }
            other => Err(format!("unknown git command {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_safe() {
        assert!(valid_name("gitops-repo_1.v2"));
        assert!(!valid_name(""));
        assert!(!valid_name(".."));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a b"));
    }

    #[test]
    fn served_urls_map_to_names() {
        let dir =
            std::env::temp_dir().join(format!("kargo-sandbox-git-test-{}", std::process::id()));
        let host = GitHost::open(dir.clone(), "ca", true).unwrap();
        host.set_address("127.0.0.1:8443");
        assert_eq!(host.url("app"), "https://127.0.0.1:8443/git/app.git");
        assert_eq!(
            host.served_name("https://127.0.0.1:8443/git/app.git")
                .as_deref(),
            Some("app")
        );
        assert_eq!(
            host.served_name("https://user@127.0.0.1:8443/git/App/")
                .as_deref(),
            Some("app")
        );
        assert_eq!(host.served_name("https://github.com/git/app.git"), None);
        assert_eq!(
            host.resolve_url("app"),
            "https://127.0.0.1:8443/git/app.git"
        );
        drop(host);
        assert!(!dir.exists(), "a temporary root goes with its host");
    }
}
