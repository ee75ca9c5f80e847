//! The real step runner: each Promotion that clones a repository the sandbox can reach (one
//! it serves, or a local `file://` one) runs Kargo's steps for real in its own work directory,
//! one step at a time on a worker thread; other Promotions are simulated as before.

mod creds;
mod edit;
mod files;
mod gitsteps;
mod repo;
pub mod schemas;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::expr::Scope;
use super::steps::{SimulatedSteps, StepContext, StepOutcome, StepRunner};
use super::util::{GROUP, arr_at, str_at};
use crate::git::GitHost;
use crate::server::lock;
use creds::CredsDb;

/// Steps that work on files in the work directory (a Promotion using them runs for real even
/// without a `git-clone`).
const FILE_STEPS: &[&str] = &[
    "copy",
    "delete",
    "file-write",
    "json-parse",
    "json-update",
    "yaml-parse",
    "yaml-update",
    "kustomize-set-image",
    "helm-update-chart",
];

/// Whether the sandbox can reach a repository URL: `file://`, or HTTP(S) on loopback (the
/// sandbox has no other network).
pub fn reachable(url: &str) -> bool {
    if url.starts_with("file://") {
        return true;
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        host_port
            .split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Everything a step's work needs, owned, so it can run on another thread.
pub struct Job {
    pub kind: String,
    pub alias: String,
    pub config: Value,
    pub work_dir: PathBuf,
    pub promotion: String,
    pub creds: CredsDb,
    pub git: Arc<GitHost>,
    /// Outputs of the steps that ran, by alias.
    pub state: Value,
    /// The images of the Promotion's Freight for `kustomize-set-image` without `images`, or
    /// why they are ambiguous.
    pub freight_images: Result<Vec<Value>, String>,
    /// Clones made so far in this Promotion (names their home directories).
    pub clones: usize,
    /// The sandbox clock, RFC 3339.
    pub now: String,
}

struct Running {
    index: usize,
    /// The step's outcome and the clone count after it, sent before the controller is
    /// woken, so that the wake-up finds it (a thread's own end may come later).
    done: Receiver<(StepOutcome, usize)>,
}

#[derive(Default)]
struct PromotionWork {
    real: bool,
    work_dir: PathBuf,
    clones: usize,
    running: Option<Running>,
}

/// Runs Kargo's steps for real where the sandbox can, simulating the rest.
pub struct RealSteps {
    git: Arc<GitHost>,
    tick_now: Arc<tokio::sync::Notify>,
    simulated: SimulatedSteps,
    work: Mutex<HashMap<(String, String), PromotionWork>>,
}

impl RealSteps {
    pub fn new(git: Arc<GitHost>, tick_now: Arc<tokio::sync::Notify>) -> RealSteps {
        RealSteps {
            git,
            tick_now,
            simulated: SimulatedSteps,
            work: Mutex::new(HashMap::new()),
        }
    }

    /// A Promotion runs for real when every `git-clone` targets a reachable repository and
    /// it clones one or edits files.
    fn decide(&self, ctx: &StepContext<'_>) -> bool {
        let scope = Scope::of(ctx.txn, ctx.object, ctx.state, ctx.metas);
        let mut real = false;
        for (i, step) in arr_at(ctx.object, "spec.steps").iter().enumerate() {
            let kind = str_at(step, "uses");
            if kind == "git-clone" {
                match scope.config(step, i) {
                    Ok(cfg) => {
                        let url = str_at(&cfg, "repoURL");
                        if url.is_empty() || !reachable(url) {
                            tracing::info!(
                                promotion = ctx.promotion,
                                repo = url,
                                "the sandbox cannot reach this repository: the Promotion's steps are simulated"
                            );
                            return false;
                        }
                        real = true;
                    }
                    // The step reports it when it runs.
                    Err(_) => real = true,
                }
            } else if FILE_STEPS.contains(&kind) {
                real = true;
            }
        }
        real
    }

    /// Decides (once per Promotion) whether it runs for real; returns that.
    fn ensure(
        &self,
        all: &mut HashMap<(String, String), PromotionWork>,
        ctx: &StepContext<'_>,
    ) -> bool {
        let key = (ctx.project.to_string(), ctx.promotion.to_string());
        if let Some(w) = all.get(&key) {
            return w.real;
        }
        let work_dir = self.git.work_dir(ctx.project, ctx.promotion);
        let real = self.decide(ctx);
        if real && let Err(e) = std::fs::create_dir_all(&work_dir) {
            tracing::error!(dir = %work_dir.display(), error = %e, "cannot create a work directory");
        }
        all.insert(
            key,
            PromotionWork {
                real,
                work_dir,
                ..Default::default()
            },
        );
        real
    }

    /// Prepares a step (config evaluated and checked, credentials read) and starts its work.
    fn start(&self, ctx: &StepContext<'_>, step: &Value, work: &mut PromotionWork) -> StepOutcome {
        let kind = str_at(step, "uses").to_string();
        let scope = Scope::of(ctx.txn, ctx.object, ctx.state, ctx.metas);
        let config = match scope.config(step, ctx.index) {
            Ok(c) => c,
            Err(e) => {
                return StepOutcome::Invalid(format!(
                    "failed to build step context: failed to get step config: {e}"
                ));
            }
        };
        if let Err(e) = schemas::validate(&kind, &config) {
            return StepOutcome::Failed(e);
        }
        let freight_images = if kind == "kustomize-set-image" {
            freight_images(ctx)
        } else {
            Ok(Vec::new())
        };
        let job = Job {
            kind,
            alias: ctx.alias.to_string(),
            config,
            work_dir: work.work_dir.clone(),
            promotion: ctx.promotion.to_string(),
            creds: CredsDb::load(ctx.txn, ctx.project),
            git: self.git.clone(),
            state: ctx.state.clone(),
            freight_images,
            clones: work.clones,
            now: super::util::format_time(ctx.txn.now()),
        };
        let tick_now = self.tick_now.clone();
        let (tx, done) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("kargo-sandbox-step".into())
            .spawn(move || {
                let mut job = job;
                let outcome = run_job(&mut job);
                let _ = tx.send((outcome, job.clones));
                tick_now.notify_one();
            });
        match spawned {
            Ok(_) => {
                work.running = Some(Running {
                    index: ctx.index,
                    done,
                });
                StepOutcome::Running
            }
            Err(e) => StepOutcome::Errored(format!("cannot start the step's work: {e}")),
        }
    }
}

/// The images of every Freight the Promotion references, unless two requested Warehouses
/// subscribe to the same image repository (Kargo then asks for explicit images).
fn freight_images(ctx: &StepContext<'_>) -> Result<Vec<Value>, String> {
    let stage = ctx
        .txn
        .get(GROUP, "stages", Some(ctx.project), ctx.stage)
        .unwrap_or(Value::Null);
    let mut seen = std::collections::BTreeSet::new();
    for req in arr_at(&stage, "spec.requestedFreight") {
        let name = str_at(req, "origin.name");
        let Some(w) = ctx.txn.get(GROUP, "warehouses", Some(ctx.project), name) else {
            return Err(format!(
                "manual configuration required due to ambiguous result: Warehouse {name:?} not found in namespace {:?}",
                ctx.project
            ));
        };
        for sub in arr_at(&w, "spec.subscriptions") {
            let repo = str_at(sub, "image.repoURL");
            if !repo.is_empty() && !seen.insert(repo.to_string()) {
                return Err(format!(
                    "manual configuration required due to ambiguous result: multiple requested Freight could potentially provide a container image from repository {repo}"
                ));
            }
        }
    }
    let items = ctx
        .object
        .pointer("/status/freightCollection/items")
        .and_then(Value::as_object)
        .map(|m| m.values().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    Ok(items
        .iter()
        .flat_map(|r| arr_at(r, "images").iter().cloned())
        .collect())
}

/// The work of one step.
fn run_job(job: &mut Job) -> StepOutcome {
    match job.kind.as_str() {
        "git-clone" => gitsteps::clone(job),
        "git-clear" => gitsteps::clear(job),
        "git-commit" => gitsteps::commit(job),
        "git-push" => gitsteps::push(job),
        "git-tag" => gitsteps::tag(job),
        "git-open-pr" => gitsteps::open_pr(job),
        "git-wait-for-pr" => gitsteps::wait_for_pr(job),
        "git-merge-pr" => gitsteps::merge_pr(job),
        "copy" => files::copy(job),
        "delete" => files::delete(job),
        "file-write" => files::write_file(job),
        "json-parse" => files::json_parse(job),
        "json-update" => files::json_update(job),
        "yaml-parse" => files::yaml_parse(job),
        "yaml-update" => files::yaml_update(job),
        "kustomize-set-image" => files::kustomize_set_image(job),
        "helm-update-chart" => files::helm_update_chart(job),
        "compose-output" => StepOutcome::succeeded(match &job.config {
            Value::Null => json!({}),
            c => c.clone(),
        }),
        "fail" => StepOutcome::Failed(match str_at(&job.config, "message") {
            "" => "failed".to_string(),
            m => format!("failed: {m}"),
        }),
        "argocd-update" | "argocd-wait" => {
            let apps: Vec<String> = arr_at(&job.config, "apps")
                .iter()
                .map(|a| str_at(a, "name").to_string())
                .collect();
            StepOutcome::Succeeded {
                output: json!({}),
                message: format!(
                    "the sandbox has no Argo CD: {} of Application(s) {} recorded as done",
                    if job.kind == "argocd-update" {
                        "the update"
                    } else {
                        "the wait for health"
                    },
                    apps.join(", ")
                ),
            }
        }
        other => StepOutcome::Succeeded {
            output: json!({}),
            message: format!(
                "the sandbox does not run {other} (it needs systems the sandbox does not have): emulated with empty output"
            ),
        },
    }
}

impl StepRunner for RealSteps {
    fn run(&self, ctx: &StepContext<'_>, step: &Value) -> StepOutcome {
        let key = (ctx.project.to_string(), ctx.promotion.to_string());
        let mut all = lock(&self.work);
        self.ensure(&mut all, ctx);
        let Some(work) = all.get_mut(&key) else {
            return StepOutcome::Running;
        };
        if !work.real {
            return self.simulated.run(ctx, step);
        }
        match work.running.take() {
            Some(r) if r.index == ctx.index => match r.done.try_recv() {
                Ok((outcome, clones)) => {
                    work.clones = clones;
                    outcome
                }
                Err(TryRecvError::Empty) => {
                    work.running = Some(r);
                    StepOutcome::Running
                }
                Err(TryRecvError::Disconnected) => {
                    StepOutcome::Unrecoverable("step panicked".into())
                }
            },
            // A step of an earlier attempt that was left behind: start this one afresh.
            _ => self.start(ctx, step, work),
        }
    }

    fn paced(&self, ctx: &StepContext<'_>) -> bool {
        let mut all = lock(&self.work);
        !self.ensure(&mut all, ctx)
    }

    fn forget(&self, project: &str, promotion: &str) {
        let removed = lock(&self.work).remove(&(project.to_string(), promotion.to_string()));
        if let Some(w) = removed.filter(|w| w.real) {
            // The engine removes a Promotion's work directory once it is over.
            let _ = std::fs::remove_dir_all(&w.work_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_repositories_are_reachable() {
        assert!(reachable("https://127.0.0.1:4443/git/app.git"));
        assert!(reachable("https://user@localhost/git/app.git"));
        assert!(reachable("http://[::1]:80/x"));
        assert!(reachable("file:///tmp/repo.git"));
        assert!(!reachable("https://github.com/acme/gitops"));
        assert!(!reachable("git@github.com:acme/gitops.git"));
        assert!(!reachable("https://127.0.0.1.example.com/x"));
    }
}
