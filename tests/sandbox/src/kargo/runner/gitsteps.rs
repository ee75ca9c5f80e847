//! Kargo's Git steps (`git-clone`, `git-clear`, `git-commit`, `git-push`, `git-tag`) with their
//! outputs and error texts, and the pull-request steps against the sandbox's own model.

use std::path::Path;

use regex::Regex;
use serde_json::{Map, Value, json};

use super::Job;
use super::repo::{Repo, User, secure_join};
use crate::git::{NewPullRequest, PrState};
use crate::kargo::steps::StepOutcome;
use crate::kargo::util::{arr_at, str_at};

/// Kargo's `invalid <kind> config: (root): <field> is required`.
pub fn required<'a>(job: &'a Job, field: &str) -> Result<&'a str, StepOutcome> {
    match job.config.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(StepOutcome::Failed(format!(
            "invalid {} config: {field}: String length must be greater than or equal to 1",
            job.kind
        ))),
        _ => Err(StepOutcome::Failed(format!(
            "invalid {} config: (root): {field} is required",
            job.kind
        ))),
    }
}

fn flag(job: &Job, field: &str) -> bool {
    job.config.get(field).and_then(Value::as_bool) == Some(true)
}

fn opt<'a>(job: &'a Job, field: &str) -> &'a str {
    str_at(&job.config, field)
}

/// Loads the work tree at the step's `path` (with credentials for its remote when `auth`).
fn work_tree(job: &Job, path: &str, auth: bool) -> Result<Repo, StepOutcome> {
    let dir = secure_join(&job.work_dir, path);
    let ca = job.git.steps_ca_file();
    let load = |creds| {
        Repo::load_work_tree(&dir, creds, ca).map_err(|e| {
            StepOutcome::Errored(format!("error loading working tree from {path}: {e}"))
        })
    };
    let repo = load(None)?;
    if !auth {
        return Ok(repo);
    }
    match job.creds.get(&repo.original_url) {
        Some(c) => repo.with_credentials(c).map_err(|e| {
            StepOutcome::Errored(format!("error loading working tree from {path}: {e}"))
        }),
        None => Ok(repo),
    }
}

macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(outcome) => return outcome,
        }
    };
}

fn errored<T>(
    r: Result<T, String>,
    context: impl FnOnce(String) -> String,
) -> Result<T, StepOutcome> {
    r.map_err(|e| StepOutcome::Errored(context(e)))
}

/// `git-clone`: a bare clone with a work tree per checkout; output `commits` by path (or `as`).
pub fn clone(job: &mut Job) -> StepOutcome {
    let url = attempt!(required(job, "repoURL")).to_string();
    let checkouts = arr_at(&job.config, "checkout").to_vec();
    if checkouts.is_empty() {
        return StepOutcome::Failed(format!(
            "invalid {} config: (root): checkout is required",
            job.kind
        ));
    }
    let user = match job.config.get("author") {
        Some(a) if a.is_object() => User {
            name: str_at(a, "name").to_string(),
            email: str_at(a, "email").to_string(),
        },
        _ => User::default(),
    };
    job.clones += 1;
    let creds = job.creds.get(&url);
    let bare = match Repo::clone_bare(
        &job.work_dir,
        job.clones,
        &url,
        creds,
        &user,
        job.git.steps_ca_file(),
    ) {
        Ok(r) => r,
        Err(e) => return StepOutcome::Errored(format!("error cloning {url}: {e}")),
    };
    let mut commits = Map::new();
    // Until a work tree is added (or a created branch's temporary one), the clone has none.
    let mut fresh = true;
    for co in &checkouts {
        let path = str_at(co, "path");
        let (branch, commit, tag) = (
            str_at(co, "branch"),
            str_at(co, "commit"),
            str_at(co, "tag"),
        );
        let reference = if !branch.is_empty() {
            let created = attempt!(errored(
                ensure_remote_branch(job, &bare, branch, co.get("create") == Some(&json!(true))),
                |e| format!("error ensuring existence of remote branch {branch}: {e}")
            ));
            fresh &= !created;
            branch.to_string()
        } else if !commit.is_empty() {
            commit.to_string()
        } else if !tag.is_empty() {
            tag.to_string()
        } else {
            match bare.git(["symbolic-ref", "--short", "HEAD"]).run() {
                Ok(head) => head.trim().to_string(),
                Err(e) => return StepOutcome::Errored(e.to_string()),
            }
        };
        let dir = secure_join(&job.work_dir, path);
        let added = bare.add_work_tree(&dir, Some(&reference), fresh);
        fresh = false;
        let tree = match added {
            Ok(t) => t,
            Err(e) => {
                return StepOutcome::Errored(format!(
                    "error adding work tree {path} to repo {url}: {e}"
                ));
            }
        };
        let key = match str_at(co, "as") {
            "" => path,
            a => a,
        };
        match tree.last_commit_id() {
            Ok(id) => {
                commits.insert(key.to_string(), json!(id));
            }
            Err(e) => {
                return StepOutcome::Errored(format!(
                    "error resolving HEAD for worktree at {}: {e}",
                    dir.display()
                ));
            }
        }
    }
    StepOutcome::succeeded(json!({"commits": commits}))
}

/// Kargo's `ensureRemoteBranch`: an absent branch is an error unless `create`, which pushes
/// an empty orphan branch with one "Initial commit". `true` when it created the branch.
fn ensure_remote_branch(
    job: &Job,
    bare: &Repo,
    branch: &str,
    create: bool,
) -> Result<bool, String> {
    if bare.cloned_branch_exists(branch).map_err(|e| {
        format!(
            "error checking if remote branch {branch:?} of repo {} exists: {e}",
            bare.original_url
        )
    })? {
        return Ok(false);
    }
    if !create {
        return Err(format!(
            "remote branch {branch:?} of repo {} does not exist; set create=true if you'd like a non-existent remote branch to be automatically created at checkout",
            bare.original_url
        ));
    }
    let tmp = job.work_dir.join(format!("orphan-{}", job.clones));
    let tree = bare.add_work_tree(&tmp, None, false).map_err(|e| {
        format!(
            "error adding temporary working tree for branch {branch:?} of repo {}: {e}",
            bare.original_url
        )
    })?;
    let result = (|| {
        tree.git(["switch", "--orphan", branch, "--discard-changes"])
            .run()
            .map_err(|e| {
                format!(
                    "error creating orphaned branch {branch:?} for repo {:?}: {e}",
                    bare.original_url
                )
            })?;
        tree.git(["clean", "-fd"])
            .run()
            .map_err(|e| format!("error cleaning worktree: {e}"))?;
        tree.commit("Initial commit", true).map_err(|e| {
            format!(
                "error making initial commit to new branch {branch:?} of repo {}: {e}",
                bare.original_url
            )
        })?;
        tree.git(["push", "origin", &format!("HEAD:{branch}")])
            .run()
            .map_err(|e| {
                format!(
                    "error pushing initial commit to new branch {branch:?} to repo {}: error pushing branch: {e}",
                    bare.original_url
                )
            })?;
        Ok(())
    })();
    tree.remove_work_tree(&bare.dir);
    result.map(|()| true)
}

/// `git-clear`: removes every tracked file of the work tree.
pub fn clear(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let tree = attempt!(work_tree(job, &path, false));
    attempt!(errored(tree.add_all(), |e| format!(
        "error adding all files to working tree at {path}: {e}"
    )));
    attempt!(errored(
        tree.git(["rm", "-rf", "--ignore-unmatch", "."])
            .run()
            .map(|_| ())
            .map_err(|e| format!("error clearing worktree: {e}")),
        |e| format!("error clearing working tree at {path}: {e}")
    ));
    StepOutcome::succeeded(json!({}))
}

/// `git-commit`: stages everything and commits when there is a change (else `Skipped`);
/// output `commit`.
pub fn commit(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let message = attempt!(required(job, "message")).to_string();
    let tree = attempt!(work_tree(job, &path, false));
    attempt!(errored(tree.add_all(), |e| format!(
        "error adding all changes to working tree: {e}"
    )));
    let has_diffs = match tree.has_diffs() {
        Ok(d) => d,
        Err(e) => {
            return StepOutcome::Errored(format!("error checking for diffs in working tree: {e}"));
        }
    };
    if has_diffs {
        let author = job.config.get("author").filter(|a| a.is_object());
        let mut cmd = tree.git(["commit", "-m", &message]);
        if let Some(a) = author {
            for (var, field) in [
                ("GIT_AUTHOR_NAME", "name"),
                ("GIT_COMMITTER_NAME", "name"),
                ("GIT_AUTHOR_EMAIL", "email"),
                ("GIT_COMMITTER_EMAIL", "email"),
            ] {
                cmd = cmd.env(var, str_at(a, field));
            }
        }
        if let Err(e) = cmd.run() {
            return StepOutcome::Errored(format!(
                "error committing to working tree: error committing changes: {e}"
            ));
        }
    }
    let id = match tree.last_commit_id() {
        Ok(id) => id,
        Err(e) => return StepOutcome::Errored(format!("error getting last commit ID: {e}")),
    };
    let output = json!({"commit": id});
    if has_diffs {
        StepOutcome::succeeded(output)
    } else {
        StepOutcome::Skipped { output }
    }
}

/// Why a push attempt failed.
enum PushError {
    NonFastForward,
    MergeConflict,
    Other(String),
}

/// Git's report of a ref the remote refused because it moved.
fn non_fast_forward(output: &str) -> bool {
    static RE: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?m)^\s*!\s+\[(?:remote )?rejected\].+\((?:non-fast-forward|fetch first|cannot lock ref.*|incorrect old value provided)\)\s*$").ok()
    })
    .as_ref()
    .is_some_and(|re| re.is_match(output))
}

/// One push as Kargo's `WorkTree.Push`: remote changes rebased in first (Kargo v1.11's
/// default `AlwaysRebase` policy) unless forcing or pushing a tag.
fn push_once(tree: &Repo, target: &str, force: bool, tag: &str) -> Result<(), PushError> {
    if !tag.is_empty() {
        return tree
            .git(["push", "origin", "tag", tag])
            .run()
            .map(|_| ())
            .map_err(|e| PushError::Other(format!("error pushing tag: {e}")));
    }
    // Kargo asks the remote whether the branch exists, then pulls it. Pulling first saves
    // that round trip; only when the pull fails is the remote asked, so that a missing branch
    // (nothing to rebase onto) and the failure messages stay Kargo's.
    if !force && let Err(e) = tree.git(["pull", "--rebase", "origin", target]).run() {
        let rebasing = ["rebase-merge", "rebase-apply"].iter().any(|p| {
            tree.git(["rev-parse", "--git-path", p])
                .run()
                .map(|out| {
                    let rel = out.trim().to_string();
                    let path = Path::new(&rel);
                    if path.is_absolute() {
                        path.exists()
                    } else {
                        tree.dir.join(path).exists()
                    }
                })
                .unwrap_or(false)
        });
        if rebasing {
            return Err(PushError::MergeConflict);
        }
        if tree
            .remote_branch_exists(target)
            .map_err(PushError::Other)?
        {
            return Err(PushError::Other(format!(
                "error pulling and rebasing branch: {e}"
            )));
        }
    }
    let mut args = vec![
        "push".to_string(),
        "origin".into(),
        format!("HEAD:{target}"),
    ];
    if force {
        args.push("--force".into());
    }
    match tree.git(&args).run() {
        Ok(_) => Ok(()),
        Err(e) if non_fast_forward(&e.output) => Err(PushError::NonFastForward),
        Err(e) => Err(PushError::Other(format!("error pushing branch: {e}"))),
    }
}

/// `git-push`: outputs `commit` and `branch`; a moved branch is rebased onto (a conflict
/// fails the step), a rejected push is retried up to `maxAttempts` (10) times.
pub fn push(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let tree = attempt!(work_tree(job, &path, true));
    let mut target = opt(job, "targetBranch").to_string();
    let mut force = flag(job, "force");
    if flag(job, "generateTargetBranch") {
        target = format!("kargo/promotion/{}", job.promotion);
        force = true;
    }
    let tag = opt(job, "tag").to_string();
    if target.is_empty() {
        target = match tree.current_branch() {
            Ok(b) => b,
            Err(e) => return StepOutcome::Errored(format!("error getting current branch: {e}")),
        };
    }
    let attempts = job
        .config
        .get("maxAttempts")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .unwrap_or(10);
    let mut result = Err(PushError::NonFastForward);
    for _ in 0..attempts {
        result = push_once(&tree, &target, force, &tag);
        if !matches!(result, Err(PushError::NonFastForward)) {
            break;
        }
    }
    match result {
        Ok(()) => {}
        Err(PushError::MergeConflict) => return StepOutcome::Failed("merge conflict".into()),
        Err(PushError::NonFastForward) => {
            return StepOutcome::Errored(
                "error pushing commits to remote: error pushing branch: non-fast-forward".into(),
            );
        }
        Err(PushError::Other(e)) => {
            return StepOutcome::Errored(format!("error pushing commits to remote: {e}"));
        }
    }
    match tree.last_commit_id() {
        Ok(id) => StepOutcome::succeeded(json!({"commit": id, "branch": target})),
        Err(e) => StepOutcome::Errored(format!("error getting last commit ID: {e}")),
    }
}

/// `git-tag`: an annotated tag on the work tree's HEAD; output `commit`.
pub fn tag(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let tag = attempt!(required(job, "tag")).to_string();
    let tree = attempt!(work_tree(job, &path, false));
    let mut args = vec![
        "tag".to_string(),
        "-a".into(),
        tag.clone(),
        "-m".into(),
        opt(job, "message").to_string(),
    ];
    if flag(job, "force") {
        args.push("--force".into());
    }
    if let Err(e) = tree.git(&args).run() {
        return StepOutcome::Errored(format!(
            "error creating tag {tag}: error creating annotated tag {tag:?}: {e}"
        ));
    }
    match tree.last_commit_id() {
        Ok(id) => StepOutcome::succeeded(json!({"commit": id})),
        Err(e) => StepOutcome::Errored(format!("error getting last commit ID: {e}")),
    }
}

/// The pull-request number a step's config names.
fn pr_number(job: &Job) -> Result<u64, StepOutcome> {
    match job.config.get("prNumber") {
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| {
                StepOutcome::Failed(format!(
                    "invalid {} config: prNumber: Invalid type. Expected: integer, given: {}",
                    job.kind,
                    if v.is_string() { "string" } else { "number" }
                ))
            }),
        None => Err(StepOutcome::Failed(format!(
            "invalid {} config: (root): prNumber is required",
            job.kind
        ))),
    }
}

/// The sandbox keeps pull requests only for repositories it holds.
fn check_provider(job: &Job, url: &str) -> Result<(), StepOutcome> {
    if job.git.local_dir(url).is_some() {
        Ok(())
    } else {
        Err(StepOutcome::Errored(format!(
            "error creating git provider service: no pull request provider for {url}: the sandbox keeps pull requests only for the repositories it serves and local file:// repositories"
        )))
    }
}

/// `git-open-pr`: a pull request of the sandbox's model from `sourceBranch` into
/// `targetBranch` (an open or merged one for the same head is reused); output `pr.id`,
/// `pr.url`.
pub fn open_pr(job: &mut Job) -> StepOutcome {
    if let Some(out) = job
        .state
        .get(&job.alias)
        .filter(|o| o.pointer("/pr/id").is_some())
    {
        return StepOutcome::succeeded(out.clone());
    }
    let url = attempt!(required(job, "repoURL")).to_string();
    let source = attempt!(required(job, "sourceBranch")).to_string();
    let target = match opt(job, "targetBranch") {
        "" => "main".to_string(),
        t => t.to_string(),
    };
    attempt!(check_provider(job, &url));
    job.clones += 1;
    let bare = match Repo::clone_bare(
        &job.work_dir,
        job.clones,
        &url,
        job.creds.get(&url),
        &User::default(),
        job.git.steps_ca_file(),
    ) {
        Ok(r) => r,
        Err(e) => return StepOutcome::Errored(format!("error cloning {url}: {e}")),
    };
    let head = |branch: &str| {
        bare.git([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
        .run()
        .map(|s| s.trim().to_string())
        .ok()
    };
    let Some(source_head) = head(&source) else {
        return StepOutcome::Errored(format!(
            "error cloning {url}: remote branch {source} not found in upstream origin"
        ));
    };
    let output = |n: u64, u: &str| json!({"pr": {"id": n, "url": u}});
    if let Some(pr) = job
        .git
        .pull_requests(Some(&url))
        .into_iter()
        .rev()
        .filter(|p| {
            p.target_branch == target && p.source_branch == source && p.head_commit == source_head
        })
        .find(|p| p.state != PrState::Closed)
    {
        return StepOutcome::succeeded(output(pr.number, &pr.url));
    }
    let commit_msg = match bare.commit_message(&source) {
        Ok(m) => m,
        Err(e) => {
            return StepOutcome::Errored(format!(
                "error getting commit message from head of branch {source}: {e}"
            ));
        }
    };
    let Some(target_head) = head(&target) else {
        return StepOutcome::Errored(format!("target branch {target:?} does not exist"));
    };
    let differs = match bare
        .git([
            "diff",
            "--quiet",
            &format!("{target_head}..{source_head}"),
            "--",
        ])
        .run()
    {
        Ok(_) => false,
        Err(e) if e.code == 1 => true,
        Err(e) => {
            return StepOutcome::Errored(format!(
                "failed to check for changes between remote branches origin/{source} and origin/{target}: {e}"
            ));
        }
    };
    if !differs {
        return StepOutcome::Skipped { output: json!({}) };
    }
    let mut title = opt(job, "title").to_string();
    let mut description = match opt(job, "description") {
        "" => commit_msg.clone(),
        d => d.to_string(),
    };
    if title.is_empty() {
        let mut parts = commit_msg.splitn(2, '\n');
        title = parts.next().unwrap_or_default().to_string();
        if opt(job, "description").is_empty() {
            description = parts.next().unwrap_or_default().to_string();
        }
    }
    let labels: Vec<String> = arr_at(&job.config, "labels")
        .iter()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    let pr = job.git.open_pull_request(NewPullRequest {
        repo_url: &url,
        source_branch: &source,
        target_branch: &target,
        title: &title,
        description: &description,
        labels: &labels,
        head_commit: &source_head,
        created_at: job.now.clone(),
    });
    StepOutcome::succeeded(output(pr.number, &pr.url))
}

/// `git-wait-for-pr`: running while the pull request is open; succeeds when merged (output
/// `commit` = the merge commit), fails when closed without merging.
pub fn wait_for_pr(job: &mut Job) -> StepOutcome {
    let url = attempt!(required(job, "repoURL")).to_string();
    let number = attempt!(pr_number(job));
    attempt!(check_provider(job, &url));
    let Some(pr) = job.git.pull_request(&url, number) else {
        return StepOutcome::Errored(format!(
            "error getting pull request {number}: pull request {number} not found"
        ));
    };
    // Kargo's output in every state: the pull request, and its merge commit once merged.
    let mut output = json!({"pr": {"id": pr.number, "url": pr.url,
        "open": pr.state == PrState::Open, "merged": pr.state == PrState::Merged}});
    match pr.state {
        PrState::Open => StepOutcome::Waiting { output },
        PrState::Closed => StepOutcome::FailedWith {
            message: format!("pull request {number} was closed without being merged"),
            output,
        },
        PrState::Merged => {
            if let Some(c) = pr.merge_commit {
                output["commit"] = json!(c);
            }
            StepOutcome::succeeded(output)
        }
    }
}

/// `git-merge-pr`: merges the pull request in the sandbox's model; output `commit`. One that
/// cannot merge yet keeps the step running with `wait`, and fails it otherwise.
pub fn merge_pr(job: &mut Job) -> StepOutcome {
    let url = attempt!(required(job, "repoURL")).to_string();
    let number = attempt!(pr_number(job));
    attempt!(check_provider(job, &url));
    match job.git.pull_request(&url, number).map(|p| p.state) {
        None => {
            return StepOutcome::Failed(format!(
                "error merging pull request {number}: pull request {number} not found"
            ));
        }
        Some(PrState::Closed) => {
            return StepOutcome::Failed(format!(
                "error merging pull request {number}: pull request {number} is closed"
            ));
        }
        _ => {}
    }
    match job.git.merge_pull_request(&url, number) {
        Ok(pr) => StepOutcome::succeeded(json!({"commit": pr.merge_commit})),
        Err(_) if flag(job, "wait") => StepOutcome::Running,
        Err(_) => StepOutcome::Failed(format!(
            "pull request {number} is not ready to merge and wait is disabled"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_pushes_are_recognised() {
        assert!(non_fast_forward(
            "To https://h/r.git\n ! [rejected]        HEAD -> main (fetch first)\nerror: failed to push"
        ));
        assert!(non_fast_forward(
            " ! [remote rejected] HEAD -> main (non-fast-forward)"
        ));
        assert!(!non_fast_forward("fatal: Authentication failed"));
    }
}
