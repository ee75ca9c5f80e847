//! The promotion preview: a local dry run of a stage's promotion steps with the freight a
//! promotion would move. Repositories are fetched into a cache and checked out in a scratch
//! directory, the file steps run there for real, the Git steps that would write elsewhere
//! (`git-commit`, `git-push`, `git-open-pr`, `git-wait-for-pr`) only record what they would
//! do and give the outputs later steps read, and the work tree is compared with the checkout.
//! Nothing is pushed, no pull request is opened and no other system is called.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};

pub mod credentials;
pub mod edit;
pub mod eval;
pub mod git;
mod http;

pub use credentials::{GitCredential, KargoCredential, KargoCredentials, UrlMatch};
pub use eval::Scope;
use git::{Files, Ref};

/// How previews run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub enabled: bool,
    /// PEM certificates trusted besides the system's, for Git hosts.
    pub ca_pem: Option<Vec<u8>>,
    pub credentials: Vec<GitCredential>,
    /// Whether Kargo's Git credential Secrets of the project (then of `shared_namespace`) are
    /// read and used.
    pub read_kargo_credentials: bool,
    /// Kargo's shared-resources namespace, where credentials shared by all projects live.
    pub shared_namespace: String,
    /// Whether the user's Git credential helper is asked when a host refuses anonymous access.
    pub credential_helper: bool,
    /// How long one preview may take, fetches included.
    pub timeout: Duration,
    /// Where fetched repositories are kept between runs.
    pub cache_dir: PathBuf,
}

/// Default for [`Settings::shared_namespace`]: where Kargo's chart puts shared resources.
pub const DEFAULT_SHARED_NAMESPACE: &str = "kargo-shared-resources";

/// Default for [`Settings::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            ca_pem: None,
            credentials: Vec::new(),
            read_kargo_credentials: false,
            shared_namespace: DEFAULT_SHARED_NAMESPACE.to_string(),
            credential_helper: true,
            timeout: DEFAULT_TIMEOUT,
            cache_dir: default_cache_dir(),
        }
    }
}

/// `$XDG_CACHE_HOME/terraform-provider-kargo/git` (or `~/.cache/…`), else under the
/// system's temporary directory.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("terraform-provider-kargo").join("git")
}

/// How complete a preview is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every step ran or was simulated.
    Complete,
    /// Some steps did not run (the reasons say which and why); every change made by the
    /// steps that did run is shown.
    Partial,
    /// Nothing could be previewed (the reasons say why).
    Unavailable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Partial => "partial",
            Status::Unavailable => "unavailable",
        }
    }
}

/// A file the promotion would change.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestChange {
    pub repo_url: String,
    /// The branch the promotion would push to, or `generated`.
    pub branch: String,
    pub path: String,
    pub action: &'static str,
    pub diff: Option<String>,
}

/// What a preview found.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub status: Status,
    /// The steps that did not run and why, or why nothing could be previewed.
    pub reasons: Vec<String>,
    /// What the promotion would do beyond the files: pushes, pull requests.
    pub actions: Vec<String>,
    pub changes: Vec<ManifestChange>,
}

impl Outcome {
    pub fn unavailable(reason: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Unavailable,
            reasons: vec![reason.into()],
            actions: Vec::new(),
            changes: Vec::new(),
        }
    }
}

/// A stage's promotion as the preview runs it: task steps already inflated.
pub struct Request {
    pub scope: Scope,
    /// The promotion template's `vars`.
    pub vars: Vec<Json>,
    pub steps: Vec<Json>,
    /// Kargo's Git credential Secrets, when the provider may read them.
    pub kargo_credentials: Option<KargoCredentials>,
}

/// Steps that need systems the preview never calls, and what they need.
fn needs(uses: &str) -> Option<&'static str> {
    Some(match uses {
        "argocd-update" => "needs Argo CD",
        "helm-template" => "needs Helm to render the chart (the preview renders no charts)",
        "kustomize-build" => "needs kustomize to build the manifests (the preview runs no builds)",
        "http" | "http-wait" => "calls an HTTP endpoint",
        "send-message" => "sends a message",
        "jira" => "needs Jira",
        "oci-download" | "oci-push" => "needs an OCI registry",
        "set-metadata" => "writes Kargo metadata",
        "git-merge-pr" => "merges a pull request",
        _ => return None,
    })
}

/// Runs a preview (blocking: call it from a blocking thread of the Tokio runtime given).
pub fn run(request: &Request, settings: &Settings, runtime: tokio::runtime::Handle) -> Outcome {
    let deadline = Instant::now() + settings.timeout;
    let http = match http::HttpContext::new(
        settings.ca_pem.as_deref(),
        credentials::Credentials::new(
            settings.credentials.clone(),
            request.kargo_credentials.clone(),
            settings.credential_helper,
        ),
        deadline,
        runtime,
    ) {
        Ok(h) => Arc::new(h),
        Err(e) => return Outcome::unavailable(format!("promotion_preview.ca_file: {e}")),
    };
    let scratch = match tempfile::Builder::new().prefix("kargo-preview-").tempdir() {
        Ok(d) => d,
        Err(e) => return Outcome::unavailable(format!("cannot create a scratch directory: {e}")),
    };
    let mut run = Run {
        request,
        settings,
        http,
        deadline,
        work: scratch.path().to_path_buf(),
        checkouts: Vec::new(),
        outputs: Map::new(),
        skipped: Vec::new(),
        reasons: Vec::new(),
        actions: Vec::new(),
    };
    match run.steps() {
        Err(unavailable) => Outcome::unavailable(unavailable),
        Ok(()) => run.outcome(),
    }
}

struct Checkout {
    dir: PathBuf,
    repo_url: String,
    branch: Option<String>,
    base: Files,
    committed: Option<Files>,
    pushed_to: Option<String>,
}

struct Run<'a> {
    request: &'a Request,
    settings: &'a Settings,
    http: Arc<http::HttpContext>,
    deadline: Instant,
    work: PathBuf,
    checkouts: Vec<Checkout>,
    outputs: Map<String, Json>,
    /// Aliases of the steps that did not run.
    skipped: Vec<String>,
    reasons: Vec<String>,
    actions: Vec<String>,
}

/// Whether `text` (a step's JSON) reads the outputs of step `alias`.
fn reads_outputs_of(text: &str, alias: &str) -> bool {
    let short = alias.rsplit("::").next().unwrap_or(alias);
    [
        format!("outputs.{alias}"),
        format!("outputs['{alias}']"),
        format!("outputs[\\\"{alias}\\\"]"),
        format!("task.outputs.{short}"),
    ]
    .iter()
    .any(|needle| {
        text.match_indices(needle.as_str()).any(|(i, _)| {
            !text[i + needle.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    })
}

impl Run<'_> {
    fn steps(&mut self) -> Result<(), String> {
        let scope = &self.request.scope;
        let mut vars = Map::new();
        for var in &self.request.vars {
            let name = var.get("name").and_then(Json::as_str).unwrap_or_default();
            let value = var.get("value").cloned().unwrap_or(Json::Null);
            let context = scope.context(&vars, &self.outputs, "");
            let value = match value {
                Json::String(s) => scope.evaluate_text(&s, &context)?,
                v => v,
            };
            vars.insert(name.to_string(), value);
        }
        for (index, step) in self.request.steps.iter().enumerate() {
            if Instant::now() > self.deadline {
                self.reasons
                    .push("the preview did not finish within promotion_preview.timeout".into());
                break;
            }
            let uses = step
                .get("uses")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            let alias = step
                .get("as")
                .and_then(Json::as_str)
                .filter(|a| !a.is_empty())
                .map_or_else(|| format!("step-{index}"), str::to_string);
            let text = step.to_string();
            if let Some(needed) = self
                .skipped
                .iter()
                .find(|s| reads_outputs_of(&text, s))
                .cloned()
            {
                self.skip(
                    &alias,
                    format!("{alias}: needs the outputs of {needed}, which did not run"),
                );
                continue;
            }
            if step.get("task").is_some() {
                self.skip(&alias, format!("{alias}: its task could not be read"));
                continue;
            }
            if let Some(why) = needs(&uses) {
                self.skip(&alias, format!("{uses}: {why}"));
                continue;
            }
            let mut step_vars = vars.clone();
            for var in step
                .get("vars")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let name = var.get("name").and_then(Json::as_str).unwrap_or_default();
                let context = scope.context(&step_vars, &self.outputs, &alias);
                let value = match var.get("value").cloned().unwrap_or(Json::Null) {
                    Json::String(s) => match scope.evaluate_text(&s, &context) {
                        Ok(v) => v,
                        Err(e) => return self.fail(&alias, &e),
                    },
                    v => v,
                };
                step_vars.insert(name.to_string(), value);
            }
            let context = scope.context(&step_vars, &self.outputs, &alias);
            if let Some(condition) = step.get("if").and_then(Json::as_str) {
                let template = if condition.contains("${{") {
                    condition.to_string()
                } else {
                    format!("${{{{ {condition} }}}}")
                };
                match scope.evaluate_text(&template, &context) {
                    Ok(Json::Bool(false)) => continue,
                    Ok(_) => {}
                    Err(e) => return self.fail(&alias, &e),
                }
            }
            let config = match scope.evaluate(step.get("config").unwrap_or(&Json::Null), &context) {
                Ok(c) => c,
                Err(e) => return self.fail(&alias, &e),
            };
            let output = match uses.as_str() {
                "git-clone" => self.git_clone(&config),
                "git-clear" => self.git_clear(&config),
                "git-commit" => self.git_commit(&config),
                "git-push" => self.git_push(&config),
                "git-open-pr" => self.git_open_pr(&config),
                "git-wait-for-pr" => Ok(json!({"commit": "(the merge commit)"})),
                "kustomize-set-image" => self.kustomize_set_image(&config),
                "yaml-update" => self.yaml_update(&config),
                "json-update" => self.json_update(&config),
                "yaml-parse" => self.parse(&config, Format::Yaml),
                "json-parse" => self.parse(&config, Format::Json),
                "helm-update-chart" => self.helm_update_chart(&config),
                "copy" => self.copy(&config),
                "delete" => self.delete(&config),
                "file-write" => self.file_write(&config),
                "compose-output" => Ok(config.clone()),
                other => {
                    self.skip(&alias, format!("{other}: not previewed"));
                    continue;
                }
            };
            match output {
                Ok(out) => {
                    self.outputs.insert(alias, out);
                }
                Err(StepError::Unavailable(e)) => return Err(e),
                Err(StepError::Failed(e)) => return self.fail(&alias, &e),
            }
        }
        Ok(())
    }

    fn skip(&mut self, alias: &str, reason: String) {
        self.skipped.push(alias.to_string());
        self.reasons.push(reason);
    }

    /// A step that would fail: the promotion would stop there, and so does the preview.
    fn fail(&mut self, alias: &str, message: &str) -> Result<(), String> {
        self.skipped.push(alias.to_string());
        self.reasons
            .push(format!("{alias}: the promotion would fail here: {message}"));
        Ok(())
    }

    fn outcome(self) -> Outcome {
        let mut changes = Vec::new();
        for c in &self.checkouts {
            let (Some(files), Some(branch)) = (&c.committed, &c.pushed_to) else {
                continue;
            };
            for d in git::diff(&c.base, files) {
                changes.push(ManifestChange {
                    repo_url: crate::kargo::redact_userinfo(&c.repo_url),
                    branch: branch.clone(),
                    path: d.path,
                    action: d.action,
                    diff: d.diff,
                });
            }
        }
        Outcome {
            status: if self.reasons.is_empty() {
                Status::Complete
            } else {
                Status::Partial
            },
            reasons: self.reasons,
            actions: self.actions,
            changes,
        }
    }

    /// `path` inside the work directory; paths that leave it are refused.
    fn path(&self, path: &str) -> Result<PathBuf, StepError> {
        let mut out = self.work.clone();
        for part in Path::new(path).components() {
            match part {
                Component::Normal(p) => out.push(p),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    if !out.pop() || !out.starts_with(&self.work) {
                        return Err(StepError::Failed(format!(
                            "path {path:?} leaves the work directory"
                        )));
                    }
                }
            }
        }
        Ok(out)
    }

    fn checkout_at(&mut self, path: &str) -> Result<&mut Checkout, StepError> {
        let dir = self.path(path)?;
        self.checkouts
            .iter_mut()
            .find(|c| c.dir == dir)
            .ok_or_else(|| {
                StepError::Failed(format!(
                    "{path:?} is not a Git checkout of an earlier git-clone step"
                ))
            })
    }

    fn git_clone(&mut self, config: &Json) -> Result<Json, StepError> {
        let url = str_of(config, "repoURL")?.to_string();
        let repo = git::fetch(&url, &self.settings.cache_dir, &self.http)
            .map_err(StepError::Unavailable)?;
        let mut commits = Map::new();
        for checkout in config
            .get("checkout")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let path = str_of(checkout, "path")?.to_string();
            let dir = self.path(&path)?;
            let branch = checkout
                .get("branch")
                .and_then(Json::as_str)
                .filter(|b| !b.is_empty());
            let from_freight = checkout.get("fromFreight").and_then(Json::as_bool) == Some(true);
            let freight_commit = from_freight.then(|| {
                self.request
                    .scope
                    .freight
                    .artifacts
                    .commits
                    .iter()
                    .find(|c| c.repo_url == url)
                    .and_then(|c| c.id.clone().or_else(|| c.tag.clone()))
            });
            let reference = match (
                branch,
                checkout.get("tag").and_then(Json::as_str),
                checkout.get("commit").and_then(Json::as_str),
                &freight_commit,
            ) {
                (_, _, _, Some(Some(id))) => Ref::Commit(id),
                (_, _, _, Some(None)) => {
                    return Err(StepError::Failed(format!(
                        "the freight has no commit from {url}"
                    )));
                }
                (_, _, Some(c), _) if !c.is_empty() => Ref::Commit(c),
                (_, Some(t), _, _) if !t.is_empty() => Ref::Tag(t),
                (Some(b), ..) => Ref::Branch(b),
                _ => Ref::Branch("main"),
            };
            let found = git::files_at(&repo, reference).map_err(StepError::Failed)?;
            let (files, id) = match found {
                Some(f) => f,
                None if checkout.get("create").and_then(Json::as_bool) == Some(true) => {
                    (Files::new(), String::new())
                }
                None => {
                    return Err(StepError::Failed(format!(
                        "branch {:?} not found in {}",
                        branch.unwrap_or("main"),
                        crate::kargo::redact_userinfo(&url)
                    )));
                }
            };
            git::write_files(&dir, &files).map_err(StepError::Failed)?;
            commits.insert(path, Json::String(id));
            self.checkouts.push(Checkout {
                dir,
                repo_url: url.clone(),
                branch: branch.map(str::to_string),
                base: files,
                committed: None,
                pushed_to: None,
            });
        }
        Ok(json!({ "commits": commits }))
    }

    fn git_clear(&mut self, config: &Json) -> Result<Json, StepError> {
        let dir = self.checkout_at(str_of(config, "path")?)?.dir.clone();
        let entries = std::fs::read_dir(&dir).map_err(|e| StepError::Failed(e.to_string()))?;
        for entry in entries.flatten() {
            if entry.file_name() == ".git" {
                continue;
            }
            let p = entry.path();
            let removed = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.map_err(|e| StepError::Failed(e.to_string()))?;
        }
        Ok(json!({}))
    }

    fn git_commit(&mut self, config: &Json) -> Result<Json, StepError> {
        let checkout = self.checkout_at(str_of(config, "path")?)?;
        let files = git::read_files(&checkout.dir).map_err(StepError::Failed)?;
        checkout.committed = Some(files);
        Ok(json!({"commit": "(the commit the promotion would make)"}))
    }

    fn git_push(&mut self, config: &Json) -> Result<Json, StepError> {
        let target = config
            .get("targetBranch")
            .and_then(Json::as_str)
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        let generate = config.get("generateTargetBranch").and_then(Json::as_bool) == Some(true);
        let checkout = self.checkout_at(str_of(config, "path")?)?;
        let branch = if generate {
            "generated".to_string()
        } else {
            target
                .or_else(|| checkout.branch.clone())
                .ok_or_else(|| StepError::Failed("no branch to push to: the checkout is not on a branch and targetBranch is not set".into()))?
        };
        if checkout.committed.is_none() {
            checkout.committed = Some(checkout.base.clone());
        }
        checkout.pushed_to = Some(branch.clone());
        let url = crate::kargo::redact_userinfo(&checkout.repo_url);
        self.actions.push(if generate {
            format!("git-push: would push to a generated branch of {url}")
        } else {
            format!("git-push: would push to branch {branch} of {url}")
        });
        Ok(json!({"branch": branch, "commit": "(the commit the promotion would push)"}))
    }

    fn git_open_pr(&mut self, config: &Json) -> Result<Json, StepError> {
        let url = crate::kargo::redact_userinfo(str_of(config, "repoURL")?);
        let target = config
            .get("targetBranch")
            .and_then(Json::as_str)
            .unwrap_or("main");
        self.actions.push(format!(
            "git-open-pr: would open a pull request into {target} of {url}"
        ));
        Ok(json!({"pr": {"id": 0, "url": "(the pull request the promotion would open)"}}))
    }

    fn read(&self, path: &Path) -> Result<String, StepError> {
        std::fs::read_to_string(path)
            .map_err(|e| StepError::Failed(format!("read {}: {e}", self.shown(path))))
    }

    fn write(&self, path: &Path, text: &str) -> Result<(), StepError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StepError::Failed(e.to_string()))?;
        }
        std::fs::write(path, text)
            .map_err(|e| StepError::Failed(format!("write {}: {e}", self.shown(path))))
    }

    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.work)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn yaml_update(&mut self, config: &Json) -> Result<Json, StepError> {
        let path = self.path(str_of(config, "path")?)?;
        let updates: Vec<(String, Json)> = config
            .get("updates")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .map(|u| {
                (
                    u.get("key")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    u.get("value").cloned().unwrap_or(Json::Null),
                )
            })
            .collect();
        let text = self.read(&path)?;
        let out = edit::yaml_update(&text, &updates).map_err(StepError::Failed)?;
        self.write(&path, &out)?;
        Ok(json!({"commitMessage": updated_message(config, &updates)}))
    }

    fn json_update(&mut self, config: &Json) -> Result<Json, StepError> {
        let path = self.path(str_of(config, "path")?)?;
        let mut text = self.read(&path)?;
        let mut updates = Vec::new();
        for u in config
            .get("updates")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let key = u.get("key").and_then(Json::as_str).unwrap_or_default();
            let value = u.get("value").cloned().unwrap_or(Json::Null);
            text = edit::json_update(&text, key, &value).map_err(StepError::Failed)?;
            updates.push((key.to_string(), value));
        }
        self.write(&path, &text)?;
        Ok(json!({"commitMessage": updated_message(config, &updates)}))
    }

    /// `yaml-parse` and `json-parse`: the file read, and each output's expression evaluated
    /// on it; the outputs feed later steps.
    fn parse(&mut self, config: &Json, format: Format) -> Result<Json, StepError> {
        let path = self.path(str_of(config, "path")?)?;
        let outputs = config
            .get("outputs")
            .and_then(Json::as_array)
            .filter(|o| !o.is_empty())
            .ok_or_else(|| StepError::Failed("outputs is required".into()))?;
        let text = self.read(&path)?;
        let document: Json = match format {
            Format::Yaml if text.is_empty() => {
                return Err(StepError::Failed(format!(
                    "could not parse empty YAML file: {:?}",
                    self.shown(&path)
                )));
            }
            Format::Yaml => serde_yaml::from_str(&text)
                .map_err(|e| StepError::Failed(format!("could not parse YAML file: {e}")))?,
            Format::Json => serde_json::from_str(&text)
                .map_err(|e| StepError::Failed(format!("could not parse JSON file: {e}")))?,
        };
        let mut values = Map::new();
        for output in outputs {
            let name = str_of(output, "name")?;
            let expression = str_of(output, "fromExpression")?;
            let value = eval::evaluate_on_document(expression, &document)
                .map_err(|e| StepError::Failed(format!("failed to extract outputs: {e}")))?;
            values.insert(name.to_string(), value);
        }
        Ok(Json::Object(values))
    }

    fn kustomize_set_image(&mut self, config: &Json) -> Result<Json, StepError> {
        let dir = self.path(str_of(config, "path")?)?;
        let file = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                StepError::Failed(format!(
                    "no Kustomization file found in {}",
                    self.shown(&dir)
                ))
            })?;
        let text = self.read(&file)?;
        let current = edit::kustomize_images(&text).map_err(StepError::Failed)?;
        let field = |v: &Json, k: &str| {
            v.get(k)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let configured = config
            .get("images")
            .and_then(Json::as_array)
            .filter(|i| !i.is_empty());
        // Each configured image as Kargo builds it: `name` (else `image`), `newName`, and the
        // digest if given, else the tag. Without images, every image of the freight.
        let targets: Vec<edit::KustomizeImage> = match configured {
            Some(images) => images
                .iter()
                .map(|i| {
                    let name = Some(field(i, "name"))
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| field(i, "image"));
                    let digest = field(i, "digest");
                    edit::KustomizeImage {
                        name,
                        new_name: field(i, "newName"),
                        new_tag: if digest.is_empty() {
                            field(i, "tag")
                        } else {
                            String::new()
                        },
                        digest,
                        ..Default::default()
                    }
                })
                .collect(),
            None => self
                .request
                .scope
                .freight
                .artifacts
                .images
                .iter()
                .map(|i| edit::KustomizeImage {
                    name: i.repo_url.clone(),
                    new_tag: i.tag.clone().unwrap_or_default(),
                    digest: i.digest.clone().unwrap_or_default(),
                    ..Default::default()
                })
                .collect(),
        };
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let images = edit::kustomize_merge_images(&current, targets);
        let out = edit::kustomize_write_images(&text, &images);
        self.write(&file, &out)?;
        // Kargo's commit message names every image of the merged list, sorted.
        let set: Vec<String> = images
            .iter()
            .map(|i| {
                let mut reference = if i.new_name.is_empty() {
                    i.name.clone()
                } else {
                    i.new_name.clone()
                };
                if !i.new_tag.is_empty() {
                    reference = format!("{reference}:{}", i.new_tag);
                }
                if !i.digest.is_empty() {
                    reference = format!("{reference}@{}", i.digest);
                }
                format!("\n- {reference}")
            })
            .collect();
        if names.is_empty() {
            return Ok(json!({}));
        }
        let path = config
            .get("path")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let plural = if images.len() > 1 { "s" } else { "" };
        Ok(
            json!({"commitMessage": format!("Updated {path} to use new image{plural}\n{}", set.concat())}),
        )
    }

    fn helm_update_chart(&mut self, config: &Json) -> Result<Json, StepError> {
        let dir = self.path(str_of(config, "path")?)?;
        let file = dir.join("Chart.yaml");
        let text = self.read(&file)?;
        let doc: Json =
            serde_yaml::from_str(&text).map_err(|e| StepError::Failed(e.to_string()))?;
        let deps = doc
            .get("dependencies")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        let mut updates = Vec::new();
        for chart in config
            .get("charts")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let repo = str_of(chart, "repository")?;
            let name = str_of(chart, "name")?;
            let version = chart
                .get("version")
                .and_then(Json::as_str)
                .filter(|v| !v.is_empty());
            let version = match version {
                Some(v) => v.to_string(),
                None => self
                    .request
                    .scope
                    .freight
                    .artifacts
                    .charts
                    .iter()
                    .find(|c| c.repo_url == repo && c.name.as_deref().is_none_or(|n| n == name))
                    .and_then(|c| c.version.clone())
                    .ok_or_else(|| {
                        StepError::Failed(format!("no chart {name:?} from {repo} in the freight"))
                    })?,
            };
            let index = deps
                .iter()
                .position(|d| {
                    d.get("repository").and_then(Json::as_str) == Some(repo)
                        && d.get("name").and_then(Json::as_str) == Some(name)
                })
                .ok_or_else(|| {
                    StepError::Failed(format!("no dependency {name:?} from {repo} in Chart.yaml"))
                })?;
            updates.push((
                format!("dependencies.{index}.version"),
                Json::String(version),
            ));
        }
        let out = edit::yaml_update(&text, &updates).map_err(StepError::Failed)?;
        self.write(&file, &out)?;
        self.reasons.push("helm-update-chart: Chart.lock and charts/ are not previewed (the preview does not run helm dependency update)".into());
        Ok(json!({}))
    }

    fn copy(&mut self, config: &Json) -> Result<Json, StepError> {
        let from = self.path(str_of(config, "inPath")?)?;
        let to = self.path(str_of(config, "outPath")?)?;
        fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
            let meta = std::fs::symlink_metadata(from)?;
            if meta.is_dir() {
                std::fs::create_dir_all(to)?;
                for entry in std::fs::read_dir(from)? {
                    let entry = entry?;
                    if entry.file_name() != ".git" {
                        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
                    }
                }
            } else if meta.is_file() {
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::copy(from, to)?;
            }
            Ok(())
        }
        copy_tree(&from, &to)
            .map_err(|e| StepError::Failed(format!("copy {}: {e}", self.shown(&from))))?;
        Ok(json!({}))
    }

    fn delete(&mut self, config: &Json) -> Result<Json, StepError> {
        let mut paths: Vec<String> = config
            .get("paths")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        if let Some(p) = config.get("path").and_then(Json::as_str) {
            paths.insert(0, p.to_string());
        }
        let strict = config.get("strict").and_then(Json::as_bool) == Some(true);
        for p in paths {
            let abs = self.path(&p)?;
            let removed = match std::fs::symlink_metadata(&abs) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&abs),
                Ok(_) => std::fs::remove_file(&abs),
                Err(e) if strict => Err(e),
                Err(_) => Ok(()),
            };
            removed.map_err(|e| StepError::Failed(format!("delete {p}: {e}")))?;
        }
        Ok(json!({}))
    }

    fn file_write(&mut self, config: &Json) -> Result<Json, StepError> {
        let path = self.path(str_of(config, "path")?)?;
        let contents = config
            .get("contents")
            .and_then(Json::as_str)
            .unwrap_or_default();
        self.write(&path, contents)?;
        Ok(json!({}))
    }
}

/// The format `yaml-parse` and `json-parse` read.
#[derive(Clone, Copy)]
enum Format {
    Yaml,
    Json,
}

enum StepError {
    /// The repository could not be fetched: nothing can be previewed.
    Unavailable(String),
    /// The step would fail in the promotion too.
    Failed(String),
}

/// The commit message Kargo's update steps give as output: `Updated <path>` and the changes.
fn updated_message(config: &Json, updates: &[(String, Json)]) -> String {
    let path = config
        .get("path")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let lines: Vec<String> = updates
        .iter()
        .map(|(k, v)| format!("- {k}: {}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    format!("Updated {path}\n\n{}", lines.join("\n"))
}

fn str_of<'a>(config: &'a Json, key: &str) -> Result<&'a str, StepError> {
    config
        .get(key)
        .and_then(Json::as_str)
        .ok_or_else(|| StepError::Failed(format!("{key} is required")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kargo::{Chart, Freight, Image, ObjectMeta, Origin};

    /// A local repository with one commit of `files` on `main`; returns its `file://` URL.
    fn local_repo(dir: &Path, files: &[(&str, &str)]) -> String {
        let repo = git2::Repository::init_bare(dir).unwrap();
        let mut index = git2::Index::new().unwrap();
        for (path, text) in files {
            let blob = repo.blob(text.as_bytes()).unwrap();
            let mut entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: text.len() as u32,
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            entry.flags = path.len() as u16;
            index.add(&entry).unwrap();
        }
        let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
        let who = git2::Signature::now("test", "test@example.com").unwrap();
        repo.commit(Some("refs/heads/main"), &who, &who, "seed", &tree, &[])
            .unwrap();
        format!("file://{}", dir.display())
    }

    fn freight() -> Freight {
        let mut f = Freight {
            metadata: ObjectMeta {
                name: Some("f1".into()),
                ..Default::default()
            },
            origin: Origin::warehouse("app"),
            ..Default::default()
        };
        f.artifacts.images.push(Image {
            repo_url: "ghcr.io/acme/app".into(),
            tag: Some("1.1.0".into()),
            digest: None,
        });
        f.artifacts.charts.push(Chart {
            repo_url: "https://charts.example.com".into(),
            name: Some("app".into()),
            version: Some("2.0.0".into()),
        });
        f
    }

    fn settings(cache: &Path) -> Settings {
        Settings {
            cache_dir: cache.to_path_buf(),
            ..Default::default()
        }
    }

    fn run_steps(url: &str, cache: &Path, steps: Json, vars: Json) -> Outcome {
        let request = Request {
            scope: Scope {
                project: "shop".into(),
                stage: "dev".into(),
                freight: Arc::new(freight()),
            },
            vars: vars.as_array().cloned().unwrap_or_default(),
            steps: steps
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|s| {
                    serde_json::from_str(&s.to_string().replace("\"URL\"", &format!("{url:?}")))
                        .unwrap()
                })
                .collect(),
            kargo_credentials: None,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let settings = settings(cache);
        rt.block_on(async move {
            tokio::task::spawn_blocking(move || run(&request, &settings, handle))
                .await
                .unwrap()
        })
    }

    #[test]
    fn file_steps_run_on_a_file_url_checkout_and_git_writes_are_only_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let url = local_repo(
            &tmp.path().join("repo.git"),
            &[
                ("src/app.yaml", "kind: Deployment\n"),
                (
                    "Chart.yaml",
                    "name: umbrella\ndependencies:\n- name: app\n  repository: https://charts.example.com\n  version: 1.0.0\n",
                ),
                ("old.txt", "stale\n"),
            ],
        );
        let outcome = run_steps(
            &url,
            &tmp.path().join("cache"),
            json!([
                {"uses": "git-clone", "as": "clone", "config": {"repoURL": "URL", "checkout": [
                    {"branch": "main", "path": "./src"},
                    {"branch": "rendered", "create": true, "path": "./out"}]}},
                {"uses": "git-clear", "config": {"path": "./out"}},
                {"uses": "copy", "config": {"inPath": "./src/src", "outPath": "./out/${{ vars.env }}"}},
                {"uses": "helm-update-chart", "config": {"path": "./src", "charts": [{"repository": "https://charts.example.com", "name": "app"}]}},
                {"uses": "delete", "config": {"path": "./src/old.txt"}},
                {"uses": "compose-output", "as": "out", "config": {"note": "promoted ${{ ctx.targetFreight.name }}"}},
                {"uses": "file-write", "config": {"path": "./out/NOTES.txt", "contents": "${{ outputs.out.note }}\n"}},
                {"uses": "git-commit", "config": {"path": "./out", "message": "m"}},
                {"uses": "git-push", "as": "push", "config": {"path": "./out", "generateTargetBranch": true}},
                {"uses": "git-open-pr", "config": {"repoURL": "URL", "sourceBranch": "${{ outputs.push.branch }}", "targetBranch": "rendered"}},
                {"uses": "git-commit", "config": {"path": "./src", "message": "m"}},
                {"uses": "git-push", "config": {"path": "./src"}},
            ]),
            json!([{"name": "env", "value": "dev"}]),
        );
        assert_eq!(
            outcome.reasons,
            vec![
                "helm-update-chart: Chart.lock and charts/ are not previewed (the preview does not run helm dependency update)"
            ]
        );
        assert_eq!(outcome.status, Status::Partial);
        assert_eq!(
            outcome.actions,
            vec![
                format!("git-push: would push to a generated branch of {url}"),
                format!("git-open-pr: would open a pull request into rendered of {url}"),
                format!("git-push: would push to branch main of {url}"),
            ]
        );
        let listed: Vec<(&str, &str, &str)> = outcome
            .changes
            .iter()
            .map(|c| (c.branch.as_str(), c.path.as_str(), c.action))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("main", "Chart.yaml", "modified"),
                ("main", "old.txt", "deleted"),
                ("generated", "NOTES.txt", "added"),
                ("generated", "dev/app.yaml", "added"),
            ]
        );
        assert_eq!(
            outcome.changes[2].diff.as_deref(),
            Some("--- /dev/null\n+++ b/NOTES.txt\n@@ -0,0 +1 @@\n+promoted f1\n")
        );
        assert_eq!(
            outcome.changes[0].diff.as_deref(),
            Some(
                "--- a/Chart.yaml\n+++ b/Chart.yaml\n@@ -2,4 +2,4 @@\n dependencies:\n - name: app\n   repository: https://charts.example.com\n-  version: 1.0.0\n+  version: 2.0.0\n"
            )
        );
    }

    #[test]
    fn a_failing_step_stops_the_preview_where_the_promotion_would_fail() {
        let tmp = tempfile::tempdir().unwrap();
        let url = local_repo(&tmp.path().join("repo.git"), &[("values.yaml", "a: 1\n")]);
        let outcome = run_steps(
            &url,
            &tmp.path().join("cache"),
            json!([
                {"uses": "git-clone", "config": {"repoURL": "URL", "checkout": [{"branch": "main", "path": "./out"}]}},
                {"uses": "yaml-update", "as": "values", "config": {"path": "./out/values.yaml", "updates": [{"key": "b", "value": "x"}]}},
                {"uses": "git-push", "config": {"path": "./out"}},
            ]),
            json!([]),
        );
        assert_eq!(outcome.status, Status::Partial);
        assert_eq!(
            outcome.reasons,
            vec!["values: the promotion would fail here: error finding key b: key path not found"]
        );
        assert!(outcome.changes.is_empty());
    }

    #[test]
    fn parsed_values_feed_later_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let url = local_repo(
            &tmp.path().join("repo.git"),
            &[
                (
                    "settings.json",
                    "{\"chart\": {\"version\": \"0.0.76\"}, \"replicas\": 2}\n",
                ),
                ("values.yaml", "image:\n  tag: 1.0.0\nregions: [eu, us]\n"),
            ],
        );
        // Both files parsed and what they give written to a third; `rest` ends the template.
        let parsing = |rest: serde_json::Value| {
            let mut steps = json!([
                {"uses": "git-clone", "config": {"repoURL": "URL", "checkout": [{"branch": "main", "path": "./out"}]}},
                {"uses": "json-parse", "as": "json", "config": {"path": "./out/settings.json", "outputs": [
                    {"name": "version", "fromExpression": "chart.version"},
                    {"name": "more", "fromExpression": "replicas + 1"}]}},
                {"uses": "yaml-parse", "as": "yaml", "config": {"path": "./out/values.yaml", "outputs": [
                    {"name": "tag", "fromExpression": "image.tag"},
                    {"name": "first", "fromExpression": "regions[0]"}]}},
                {"uses": "file-write", "config": {"path": "./out/NOTES.txt",
                    "contents": "${{ outputs.json.version }} ${{ outputs.json.more }} ${{ outputs.yaml.tag }} ${{ outputs.yaml.first }}"}},
            ]);
            if let (Some(steps), Some(rest)) = (steps.as_array_mut(), rest.as_array()) {
                steps.extend(rest.iter().cloned());
            }
            steps
        };
        let outcome = run_steps(
            &url,
            &tmp.path().join("cache"),
            parsing(json!([
                {"uses": "json-parse", "as": "bad", "config": {"path": "./out/values.yaml", "outputs": [{"name": "x", "fromExpression": "a"}]}},
                {"uses": "git-push", "config": {"path": "./out"}},
            ])),
            json!([]),
        );
        assert_eq!(outcome.reasons.len(), 1, "{:?}", outcome.reasons);
        assert!(
            outcome.reasons[0]
                .starts_with("bad: the promotion would fail here: could not parse JSON file: "),
            "{:?}",
            outcome.reasons
        );
        let outcome = run_steps(
            &url,
            &tmp.path().join("cache2"),
            parsing(json!([
                {"uses": "git-commit", "config": {"path": "./out", "message": "m"}},
                {"uses": "git-push", "config": {"path": "./out"}},
            ])),
            json!([]),
        );
        assert_eq!(outcome.status, Status::Complete, "{:?}", outcome.reasons);
        assert_eq!(
            outcome.changes[0].diff.as_deref(),
            Some(
                "--- /dev/null\n+++ b/NOTES.txt\n@@ -0,0 +1 @@\n+0.0.76 3 1.0.0 eu\n\\ No newline at end of file\n"
            )
        );
    }

    #[test]
    fn a_missing_repository_makes_the_preview_unavailable() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file://{}/nothing.git", tmp.path().display());
        let outcome = run_steps(
            &url,
            &tmp.path().join("cache"),
            json!([{"uses": "git-clone", "config": {"repoURL": "URL", "checkout": [{"branch": "main", "path": "./out"}]}}]),
            json!([]),
        );
        assert_eq!(outcome.status, Status::Unavailable);
        assert!(
            outcome.reasons[0].starts_with(&format!("cannot fetch {url}: ")),
            "{:?}",
            outcome.reasons
        );
    }
}
