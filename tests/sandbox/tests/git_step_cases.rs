//! Kargo's steps one by one, driven through the Kubernetes API against repositories the
//! sandbox serves: the bytes each leaves in the repository, its outputs, and the messages
//! of its failure paths, as Kargo v1.11's step implementations word them.

mod core_support;
mod git_support;

use std::path::Path;

use core_support::{cli, start_kargo};
use git_support::*;
use kargo_sandbox::Sandbox;
use kargo_sandbox::git::BasicAuth;
use serde_json::{Value, json};

/// A sandbox with Kargo, a client, and repository `gitops` seeded from `files` on `main`.
struct World {
    sandbox: Sandbox,
    client: kube::Client,
    url: String,
    _seed: tempfile::TempDir,
}

async fn world(files: &[(&str, &str)], auth: Option<BasicAuth>) -> World {
    let (sandbox, client) = start_kargo().await;
    let seed = seed(files);
    let url = sandbox
        .git_create("gitops", Some(seed.path()), "main", auth)
        .unwrap();
    World {
        sandbox,
        client,
        url,
        _seed: seed,
    }
}

impl World {
    /// Creates the pipeline with `steps`, publishes 1.1.0 and promotes it into dev; returns
    /// the Promotion once it has ended.
    async fn promote(&self, steps: Value) -> Value {
        let name = self.start(steps).await;
        finished(&self.client, &name).await
    }

    /// Like [`World::promote`] but returns as soon as the Promotion exists.
    async fn start(&self, steps: Value) -> String {
        pipeline(&self.client, steps).await;
        self.promote_now().await
    }

    /// Publishes 1.1.0 and promotes it into dev (the pipeline exists); returns its name.
    async fn promote_now(&self) -> String {
        let freight = publish(&self.sandbox, "1.1.0");
        promote(&self.client, "dev", &freight).await
    }

    fn git(&self, args: &[&str]) -> String {
        git(&bare(&self.sandbox, "gitops"), args)
    }

    fn rev(&self, r: &str) -> String {
        rev(&self.sandbox, "gitops", r)
    }

    fn show(&self, rev_path: &str) -> String {
        show(&self.sandbox, "gitops", rev_path)
    }

    /// Commits `files` on `branch` as another writer would; returns the new commit.
    fn commit(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let work = tempfile::tempdir().unwrap();
        let bare = bare(&self.sandbox, "gitops");
        let bare = bare.to_str().unwrap();
        git(work.path(), &["clone", "-q", "--branch", branch, bare, "c"]);
        let c = work.path().join("c");
        for (path, contents) in files {
            let p = c.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        git(&c, &["add", "-A"]);
        git(&c, &["commit", "-q", "-m", message]);
        git(&c, &["push", "-q", "origin", branch]);
        git(&c, &["rev-parse", "HEAD"]).trim().to_string()
    }
}

fn ls_tree(w: &World, branch: &str) -> String {
    w.git(&["ls-tree", "-r", "--name-only", branch])
}

fn succeeded(n: usize) -> Vec<(String, String)> {
    vec![("Succeeded".to_string(), String::new()); n]
}

fn assert_succeeded(p: &Value, steps: usize) {
    assert_eq!(step_results(p), succeeded(steps), "{p:#}");
    assert_eq!(p["status"]["phase"], "Succeeded", "{p:#}");
}

#[tokio::test]
async fn git_clone_checks_out_a_commit_a_tag_a_branch_and_creates_a_missing_branch() {
    if !git_available() {
        return;
    }
    let w = world(&[("values.yaml", "v: 1\n")], None).await;
    let first = w.rev("main");
    let second = w.commit("main", &[("values.yaml", "v: 2\n")], "two");
    w.git(&["tag", "v2", &second]);
    let third = w.commit("main", &[("values.yaml", "v: 3\n")], "three");
    let p = w
        .promote(json!([
            {"uses": "git-clone", "as": "clone", "config": {"repoURL": w.url, "checkout": [
                {"commit": first, "path": "./at-commit"},
                {"tag": "v2", "path": "./at-tag", "as": "tagged"},
                {"branch": "main", "path": "./main"},
                {"branch": "env/dev", "create": true, "path": "./out"},
            ]}},
            {"uses": "copy", "config": {"inPath": "./at-commit/values.yaml", "outPath": "./out/from-commit.yaml"}},
            {"uses": "copy", "config": {"inPath": "./at-tag/values.yaml", "outPath": "./out/from-tag.yaml"}},
            {"uses": "copy", "config": {"inPath": "./main/values.yaml", "outPath": "./out/from-main.yaml"}},
            {"uses": "git-commit", "config": {"path": "./out", "message": "three sources"}},
            {"uses": "git-push", "as": "push", "config": {"path": "./out"}},
        ]))
        .await;
    assert_succeeded(&p, 6);
    assert_eq!(w.show("env/dev:from-commit.yaml"), "v: 1\n");
    assert_eq!(w.show("env/dev:from-tag.yaml"), "v: 2\n");
    assert_eq!(w.show("env/dev:from-main.yaml"), "v: 3\n");
    // A created branch starts as an orphan with Kargo's empty "Initial commit".
    assert_eq!(
        w.git(&["log", "--format=%s", "env/dev"]),
        "three sources\nInitial commit\n"
    );
    assert_eq!(
        w.git(&["ls-tree", "-r", "--name-only", "env/dev~1"]),
        "",
        "the initial commit is empty"
    );
    let state = &p["status"]["state"];
    assert_eq!(
        state["clone"],
        json!({"commits": {"./at-commit": first, "tagged": second, "./main": third,
                           "./out": w.rev("env/dev~1")}})
    );
    assert_eq!(
        state["push"],
        json!({"branch": "env/dev", "commit": w.rev("env/dev")})
    );
    assert_eq!(w.rev("main"), third, "main is untouched");
}

#[tokio::test]
async fn git_clear_empties_the_tree_and_git_tag_tags_what_git_push_pushes() {
    if !git_available() {
        return;
    }
    let w = world(&[("a.txt", "a\n"), ("dir/b.txt", "b\n")], None).await;
    let p = w
        .promote(json!([
            {"uses": "git-clone", "config": {"repoURL": w.url, "checkout": [{"branch": "main", "path": "./out"}]}},
            {"uses": "git-clear", "as": "clear", "config": {"path": "./out"}},
            {"uses": "file-write", "config": {"path": "./out/only.txt", "contents": "${{ ctx.stage }}\n"}},
            {"uses": "git-commit", "as": "commit", "config": {"path": "./out", "message": "only one file"}},
            {"uses": "git-tag", "as": "tag", "config": {"path": "./out", "tag": "release-${{ ctx.stage }}", "message": "released"}},
            {"uses": "git-push", "as": "push", "config": {"path": "./out"}},
            {"uses": "git-push", "as": "push-tag", "config": {"path": "./out", "tag": "release-dev"}},
        ]))
        .await;
    assert_succeeded(&p, 7);
    assert_eq!(ls_tree(&w, "main"), "only.txt\n");
    assert_eq!(w.show("main:only.txt"), "dev\n");
    let head = w.rev("main");
    assert_eq!(w.rev("release-dev^{commit}"), head);
    assert_eq!(
        w.git(&["cat-file", "-t", "release-dev"]),
        "tag\n",
        "an annotated tag"
    );
    assert_eq!(
        w.git(&["tag", "-l", "--format=%(contents)", "release-dev"]),
        "released\n\n"
    );
    let state = &p["status"]["state"];
    assert_eq!(state["clear"], json!({}));
    assert_eq!(state["commit"], json!({"commit": head}));
    assert_eq!(state["tag"], json!({"commit": head}));
    assert_eq!(state["push"], json!({"branch": "main", "commit": head}));
}

#[tokio::test]
async fn git_commit_without_changes_is_skipped_and_keeps_the_head() {
    if !git_available() {
        return;
    }
    let w = world(&[("a.txt", "a\n")], None).await;
    let head = w.rev("main");
    let p = w
        .promote(json!([
            {"uses": "git-clone", "config": {"repoURL": w.url, "checkout": [{"branch": "main", "path": "./out"}]}},
            {"uses": "file-write", "config": {"path": "./out/a.txt", "contents": "a\n", "overwrite": true}},
            {"uses": "git-commit", "as": "commit", "config": {"path": "./out", "message": "nothing"}},
            {"uses": "git-push", "as": "push", "config": {"path": "./out"}},
        ]))
        .await;
    assert_eq!(p["status"]["phase"], "Succeeded", "{p:#}");
    assert_eq!(step_results(&p)[2], ("Skipped".to_string(), String::new()));
    assert_eq!(p["status"]["state"]["commit"], json!({"commit": head}));
    assert_eq!(w.rev("main"), head);
}

#[tokio::test]
async fn git_push_to_a_generated_branch_leaves_the_checked_out_branch_alone() {
    if !git_available() {
        return;
    }
    let w = world(&[("a.txt", "a\n")], None).await;
    let main = w.rev("main");
    let name = w
        .start(json!([
            {"uses": "git-clone", "config": {"repoURL": w.url, "checkout": [{"branch": "main", "path": "./out"}]}},
            {"uses": "file-write", "config": {"path": "./out/a.txt", "contents": "b\n", "overwrite": true}},
            {"uses": "git-commit", "config": {"path": "./out", "message": "change a"}},
            {"uses": "git-push", "as": "push", "config": {"path": "./out", "generateTargetBranch": true}},
            {"uses": "git-push", "as": "other", "config": {"path": "./out", "targetBranch": "other"}},
        ]))
        .await;
    let p = finished(&w.client, &name).await;
    assert_succeeded(&p, 5);
    let branch = format!("kargo/promotion/{name}");
    let pushed = w.rev(&branch);
    assert_eq!(w.show(&format!("{branch}:a.txt")), "b\n");
    assert_eq!(w.rev(&format!("{branch}~1")), main);
    assert_eq!(w.rev("main"), main, "main is untouched");
    assert_eq!(w.rev("other"), pushed);
    let state = &p["status"]["state"];
    assert_eq!(state["push"], json!({"branch": branch, "commit": pushed}));
    assert_eq!(state["other"], json!({"branch": "other", "commit": pushed}));
}

#[tokio::test]
async fn kustomize_set_image_without_images_takes_the_freight_images() {
    if !git_available() {
        return;
    }
    let kustomization = "# no images yet\nresources:\n- deployment.yaml\n";
    let w = world(&[("base/kustomization.yaml", kustomization)], None).await;
    let p = w
        .promote(json!([
            {"uses": "git-clone", "config": {"repoURL": w.url, "checkout": [{"branch": "main", "path": "./out"}]}},
            {"uses": "kustomize-set-image", "as": "image", "config": {"path": "./out/base"}},
            {"uses": "git-commit", "config": {"path": "./out", "message": "${{ outputs.image.commitMessage }}"}},
            {"uses": "git-push", "config": {"path": "./out"}},
        ]))
        .await;
    assert_succeeded(&p, 4);
    let freight = &p["status"]["freightCollection"]["items"];
    let image = freight
        .as_object()
        .and_then(|m| m.values().next())
        .map(|f| f["images"][0].clone())
        .expect("the freight's image");
    let digest = image["digest"].as_str().expect("a digest");
    // Kargo sets the tag and the digest of every Freight image, appending `images`.
    assert_eq!(
        w.show("main:base/kustomization.yaml"),
        format!(
            "{kustomization}images:\n- name: ghcr.io/acme/app\n  newTag: 1.1.0\n  digest: {digest}\n"
        )
    );
    let message =
        format!("Updated ./out/base to use new image\n\n- ghcr.io/acme/app:1.1.0@{digest}");
    assert_eq!(p["status"]["state"]["image"]["commitMessage"], message);
    assert_eq!(
        w.git(&["log", "-1", "--format=%B", "main"]),
        format!("{message}\n\n")
    );
}

#[tokio::test]
async fn parse_steps_read_values_and_compose_output_combines_them() {
    if !git_available() {
        return;
    }
    let w = world(
        &[
            (
                "config.json",
                "{\"app\": {\"version\": \"1.0.0\", \"replicas\": 2}}\n",
            ),
            ("values.yaml", "image:\n  tag: 0.9.0 # old\nlist: [a, b]\n"),
        ],
        None,
    )
    .await;
    let p = w
        .promote(json!([
            {"uses": "git-clone", "config": {"repoURL": w.url, "checkout": [{"branch": "main", "path": "./out"}]}},
            {"uses": "json-parse", "as": "json", "config": {"path": "./out/config.json", "outputs": [
                {"name": "version", "fromExpression": "app.version"},
                {"name": "replicas", "fromExpression": "app.replicas + 1"},
            ]}},
            {"uses": "yaml-parse", "as": "yaml", "config": {"path": "./out/values.yaml", "outputs": [
                {"name": "tag", "fromExpression": "image.tag"},
                {"name": "second", "fromExpression": "list[1]"},
            ]}},
            {"uses": "compose-output", "as": "summary", "config": {
                "from": "${{ outputs.yaml.tag }}",
                "to": "${{ outputs.json.version }}",
                "replicas": "${{ outputs.json.replicas }}",
            }},
        ]))
        .await;
    assert_succeeded(&p, 4);
    let state = &p["status"]["state"];
    assert_eq!(state["json"], json!({"version": "1.0.0", "replicas": 3}));
    assert_eq!(state["yaml"], json!({"tag": "0.9.0", "second": "b"}));
    assert_eq!(
        state["summary"],
        json!({"from": "0.9.0", "to": "1.0.0", "replicas": 3})
    );
}

/// Steps that commit a change of `a.txt` to a generated branch and open a pull request of
/// it into `main`, then `last`.
fn pr_steps(url: &str, last: Value) -> Value {
    json!([
        {"uses": "git-clone", "config": {"repoURL": url, "checkout": [{"branch": "main", "path": "./out"}]}},
        {"uses": "file-write", "config": {"path": "./out/a.txt", "contents": "b\n", "overwrite": true}},
        {"uses": "git-commit", "config": {"path": "./out", "message": "change a\n\nwhy it changes"}},
        {"uses": "git-push", "as": "push", "config": {"path": "./out", "generateTargetBranch": true}},
        {"uses": "git-open-pr", "as": "open-pr", "config": {"repoURL": url,
            "sourceBranch": "${{ outputs.push.branch }}", "targetBranch": "main", "labels": ["kargo"]}},
        last,
    ])
}

/// Starts a promotion that opens a pull request and waits for it; its name.
async fn start_waiting_for_pr(w: &World) -> String {
    w.start(pr_steps(
        &w.url,
        json!({"uses": "git-wait-for-pr", "as": "wait", "config": {"repoURL": w.url,
            "prNumber": "${{ outputs['open-pr'].pr.id }}"}}),
    ))
    .await
}

/// Waits until the sandbox holds a pull request; returns the list as `pr list` prints it.
async fn until_pr_opened(w: &World) -> Value {
    core_support::wait_until(30, "a pull request to be opened", async || {
        let (ok, out, err) = cli(&w.sandbox, &["pr", "list", "--repo", "gitops"]).await;
        assert!(ok, "{err}");
        let list: Value = serde_json::from_str(&out).expect("JSON");
        list.as_array()
            .is_some_and(|l| !l.is_empty())
            .then_some(list)
    })
    .await
}

#[tokio::test]
async fn git_wait_for_pr_waits_until_the_pull_request_is_merged() {
    if !git_available() {
        return;
    }
    let w = world(&[("a.txt", "a\n")], None).await;
    let main = w.rev("main");
    let name = start_waiting_for_pr(&w).await;
    let prs = until_pr_opened(&w).await;
    let branch = format!("kargo/promotion/{name}");
    let pr = &prs[0];
    assert_eq!(pr["number"], 1);
    assert_eq!(pr["sourceBranch"], branch.as_str());
    assert_eq!(pr["targetBranch"], "main");
    assert_eq!(pr["state"], "open");
    // Kargo's title and description come from the source branch's head commit.
    assert_eq!(pr["title"], "change a");
    assert_eq!(pr["description"], "\nwhy it changes\n");
    assert_eq!(pr["labels"], json!(["kargo"]));
    assert_eq!(pr["headCommit"], w.rev(&branch).as_str());
    // While it waits, the step's output already says where the pull request stands.
    let running = core_support::wait_until(30, "git-wait-for-pr to have looked", async || {
        let p = core_support::get(&w.client, "Promotion", Some("p"), &name).await?;
        p["status"]["state"].get("wait").is_some().then_some(p)
    })
    .await;
    assert_eq!(running["status"]["phase"], "Running", "{running:#}");
    assert_eq!(running["status"]["currentStep"], 5, "{running:#}");
    assert_eq!(
        running["status"]["state"]["wait"],
        json!({"pr": {"id": 1, "url": pr["url"], "open": true, "merged": false}})
    );
    assert_eq!(w.rev("main"), main, "nothing merged yet");

    let (ok, _, err) = cli(
        &w.sandbox,
        &["pr", "merge", "--repo", "gitops", "--number", "1"],
    )
    .await;
    assert!(ok, "{err}");
    let p = finished(&w.client, &name).await;
    assert_succeeded(&p, 6);
    let merge = w.rev("main");
    assert_eq!(
        w.git(&["rev-list", "--parents", "-n1", "main"]).trim(),
        format!("{merge} {main} {}", w.rev(&branch)),
        "a merge commit of the source branch into main"
    );
    assert_eq!(w.show("main:a.txt"), "b\n");
    let url = pr["url"].as_str().unwrap();
    assert_eq!(url, format!("{}/pull/1", w.url.trim_end_matches(".git")));
    let state = &p["status"]["state"];
    assert_eq!(state["open-pr"], json!({"pr": {"id": 1, "url": url}}));
    assert_eq!(
        state["wait"],
        json!({"pr": {"id": 1, "url": url, "open": false, "merged": true}, "commit": merge})
    );
}

#[tokio::test]
async fn git_merge_pr_merges_and_outputs_the_merge_commit() {
    if !git_available() {
        return;
    }
    let w = world(&[("a.txt", "a\n")], None).await;
    let p = w
        .promote(pr_steps(
            &w.url,
            json!({"uses": "git-merge-pr", "as": "merge", "config": {"repoURL": w.url,
                "prNumber": "${{ outputs['open-pr'].pr.id }}"}}),
        ))
        .await;
    assert_succeeded(&p, 6);
    assert_eq!(w.show("main:a.txt"), "b\n");
    assert_eq!(
        p["status"]["state"]["merge"],
        json!({"commit": w.rev("main")})
    );
    let (ok, out, _) = cli(&w.sandbox, &["pr", "list", "--repo", "gitops"]).await;
    assert!(ok);
    let prs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(prs[0]["state"], "merged");
    assert_eq!(prs[0]["mergeCommit"], w.rev("main").as_str());
}

#[tokio::test]
async fn git_wait_for_pr_fails_when_the_pull_request_is_closed() {
    if !git_available() {
        return;
    }
    let w = world(&[("a.txt", "a\n")], None).await;
    let main = w.rev("main");
    let name = start_waiting_for_pr(&w).await;
    until_pr_opened(&w).await;
    let (ok, _, err) = cli(
        &w.sandbox,
        &["pr", "close", "--repo", "gitops", "--number", "1"],
    )
    .await;
    assert!(ok, "{err}");
    let p = finished(&w.client, &name).await;
    let message = "step \"wait\": pull request 1 was closed without being merged";
    assert_eq!(p["status"]["phase"], "Failed", "{p:#}");
    assert_eq!(p["status"]["message"], message);
    assert_eq!(p["status"]["currentStep"], 5);
    assert_eq!(
        step_results(&p)[5],
        ("Failed".to_string(), message.to_string())
    );
    assert_eq!(
        p["status"]["state"]["wait"],
        json!({"pr": {"id": 1, "url": format!("{}/pull/1", w.url.trim_end_matches(".git")),
                      "open": false, "merged": false}})
    );
    assert_eq!(w.rev("main"), main);
}

/// A failure case: steps run against a repository (`private` with user `bot`/`s3cret`), the
/// step expected to end the Promotion, its status and message.
struct Failure {
    name: &'static str,
    private: bool,
    /// Credentials Secrets: (namespace, data).
    secrets: Vec<(&'static str, Vec<(&'static str, String)>)>,
    steps: fn(&str) -> Value,
    /// Whether another writer moves `main` just before the next push.
    race: bool,
    step: usize,
    status: &'static str,
    /// From the repository URL and the Promotion's work directory.
    message: fn(&str, &Path) -> String,
}

fn clone_main(url: &str) -> Value {
    json!({"uses": "git-clone", "as": "clone", "config": {"repoURL": url, "checkout": [{"branch": "main", "path": "./out"}]}})
}

#[tokio::test]
async fn failure_paths_give_kargos_messages() {
    if !git_available() {
        return;
    }
    let cases = vec![
        Failure {
            name: "git-clone without a checkout",
            private: false,
            secrets: vec![],
            race: false,
            steps: |url| json!([{"uses": "git-clone", "as": "clone", "config": {"repoURL": url}}]),
            step: 0,
            status: "Failed",
            message: |_, _| {
                "step \"clone\": invalid git-clone config: (root): checkout is required".into()
            },
        },
        Failure {
            name: "git-commit with messageFromSteps, which Kargo v1.11 no longer has",
            private: false,
            secrets: vec![],
            race: false,
            steps: |url| {
                json!([clone_main(url),
                {"uses": "git-commit", "as": "commit", "config": {"path": "./out", "messageFromSteps": ["clone"]}}])
            },
            step: 1,
            status: "Failed",
            message: |_, _| {
                "step \"commit\": invalid git-commit config: (root): message is required\n(root): Additional property messageFromSteps is not allowed".into()
            },
        },
        Failure {
            name: "a missing branch without create",
            private: false,
            secrets: vec![],
            race: false,
            steps: |url| {
                json!([{"uses": "git-clone", "as": "clone", "config": {"repoURL": url,
                "checkout": [{"branch": "env/prod", "path": "./out"}]}}])
            },
            step: 0,
            status: "Errored",
            message: |url, _| {
                format!(
                    "step \"clone\" met error threshold of 1: error running step \"clone\": error ensuring existence of remote branch env/prod: remote branch \"env/prod\" of repo {url} does not exist; set create=true if you'd like a non-existent remote branch to be automatically created at checkout"
                )
            },
        },
        Failure {
            name: "two checkouts into one path",
            private: false,
            secrets: vec![],
            race: false,
            steps: |url| {
                json!([{"uses": "git-clone", "as": "clone", "config": {"repoURL": url,
                "checkout": [{"branch": "main", "path": "./out"}, {"branch": "main", "path": "./out"}]}}])
            },
            step: 0,
            status: "Errored",
            message: |url, work| {
                format!(
                    "step \"clone\" met error threshold of 1: error running step \"clone\": error adding work tree ./out to repo {url}: working tree already exists at {:?}",
                    work.join("out").to_string_lossy()
                )
            },
        },
        Failure {
            name: "a checkout into the clone's own directory",
            private: false,
            secrets: vec![],
            race: false,
            steps: |url| {
                json!([{"uses": "git-clone", "as": "clone", "config": {"repoURL": url,
                "checkout": [{"branch": "main", "path": "./repo-1/repo"}]}}])
            },
            step: 0,
            status: "Errored",
            message: |url, work| {
                format!(
                    "step \"clone\" met error threshold of 1: error running step \"clone\": error adding work tree ./repo-1/repo to repo {url}: working tree already exists at {:?}",
                    work.join("repo-1/repo").to_string_lossy()
                )
            },
        },
        Failure {
            name: "yaml-update of a missing file",
            private: false,
            secrets: vec![],
            race: false,
            steps: |url| {
                json!([clone_main(url), {"uses": "yaml-update", "as": "update", "config": {"path": "./out/missing.yaml",
                "updates": [{"key": "a", "value": "b"}]}}])
            },
            step: 1,
            status: "Errored",
            message: |_, work| {
                let file = work.join("out/missing.yaml");
                format!(
                    "step \"update\" met error threshold of 1: error running step \"update\": values file update failed: error updating image references in values file \"./out/missing.yaml\": error reading file {:?}: open {}: no such file or directory",
                    file.display().to_string(),
                    file.display()
                )
            },
        },
        Failure {
            name: "a private repository without credentials",
            private: true,
            secrets: vec![],
            race: false,
            steps: |url| json!([clone_main(url)]),
            step: 0,
            status: "Errored",
            message: |url, work| {
                let dir = work.join("repo-1/repo");
                let host = url.trim_end_matches("/git/gitops.git");
                format!(
                    "step \"clone\" met error threshold of 1: error running step \"clone\": error cloning {url}: error cloning repo \"{url}\" into {:?}: error executing cmd [{} clone --bare {url} {}]: Cloning into bare repository '{}'...\nfatal: could not read Username for '{host}': terminal prompts disabled\n",
                    dir.display().to_string(),
                    git_path(),
                    dir.display(),
                    dir.display()
                )
            },
        },
        Failure {
            name: "a private repository with a wrong password (401)",
            private: true,
            secrets: vec![(
                "p",
                vec![
                    ("repoURL", String::new()),
                    ("username", "bot".into()),
                    ("password", "wrong".into()),
                ],
            )],
            race: false,
            steps: |url| json!([clone_main(url)]),
            step: 0,
            status: "Errored",
            message: |url, work| {
                let dir = work.join("repo-1/repo");
                let access = url.replacen("https://", "https://bot@", 1);
                format!(
                    "step \"clone\" met error threshold of 1: error running step \"clone\": error cloning {url}: error cloning repo \"{url}\" into {:?}: error executing cmd [{} clone --bare {access} {}]: Cloning into bare repository '{}'...\nremote: authentication required\nfatal: Authentication failed for '{url}/'\n",
                    dir.display().to_string(),
                    git_path(),
                    dir.display(),
                    dir.display()
                )
            },
        },
        Failure {
            name: "a push rejected because the branch moved, with no attempt left",
            private: false,
            secrets: vec![],
            race: true,
            steps: |url| {
                json!([clone_main(url),
                {"uses": "file-write", "config": {"path": "./out/b.txt", "contents": "b\n"}},
                {"uses": "git-commit", "config": {"path": "./out", "message": "add b"}},
                {"uses": "git-push", "as": "push", "config": {"path": "./out", "maxAttempts": 1}}])
            },
            step: 3,
            status: "Errored",
            message: |_, _| {
                "step \"push\" met error threshold of 1: error running step \"push\": error pushing commits to remote: error pushing branch: non-fast-forward".into()
            },
        },
    ];
    for case in cases {
        eprintln!("case: {}", case.name);
        let auth = case.private.then(|| BasicAuth {
            username: "bot".into(),
            password: "s3cret".into(),
        });
        let w = world(&[("a.txt", "a\n")], auth).await;
        pipeline(&w.client, (case.steps)(&w.url)).await;
        for (i, (ns, data)) in case.secrets.iter().enumerate() {
            let data: Vec<(&str, &str)> = data
                .iter()
                .map(|(k, v)| {
                    (
                        *k,
                        if *k == "repoURL" && v.is_empty() {
                            w.url.as_str()
                        } else {
                            v.as_str()
                        },
                    )
                })
                .collect();
            if *ns != "p" {
                core_support::namespace(&w.client, ns).await;
            }
            git_secret(&w.client, ns, &format!("creds-{i}"), &data).await;
        }
        if case.race {
            w.sandbox.git().arm_race("gitops", "main", None).unwrap();
        }
        let name = w.promote_now().await;
        let p = finished(&w.client, &name).await;
        let expected = (case.message)(&w.url, &w.sandbox.git().work_dir("p", &name));
        let results = step_results(&p);
        assert_eq!(
            results.get(case.step),
            Some(&(case.status.to_string(), expected.clone())),
            "{}: {p:#}",
            case.name
        );
        // Kargo's status leaves a zero `currentStep` out (`omitempty`).
        assert_eq!(
            p["status"]["currentStep"].as_u64().unwrap_or(0),
            case.step as u64,
            "{}",
            case.name
        );
        assert_eq!(p["status"]["message"], expected.as_str(), "{}", case.name);
        assert_eq!(
            p["status"]["phase"],
            if case.status == "Failed" {
                "Failed"
            } else {
                "Errored"
            },
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn credentials_come_from_the_project_then_the_shared_namespace() {
    if !git_available() {
        return;
    }
    // (namespace, repoURL, whether it is a regex): each alone lets the promotion push.
    type RepoUrlOf = fn(&str) -> String;
    let cases: [(&str, RepoUrlOf, bool); 4] = [
        ("p", |url| url.to_string(), false),
        (
            "p",
            |url| {
                url.trim_end_matches(".git")
                    .to_uppercase()
                    .replace("HTTPS", "https")
            },
            false,
        ),
        (
            "kargo-shared-resources",
            |_| r"^https://127\.0\.0\.1:\d+/git/.*$".into(),
            true,
        ),
        ("kargo-shared-resources", |url| url.to_string(), false),
    ];
    for (ns, repo_url, regex) in cases {
        let auth = BasicAuth {
            username: "bot".into(),
            password: "s3cret".into(),
        };
        let w = world(&[("a.txt", "a\n")], Some(auth)).await;
        pipeline(
            &w.client,
            json!([
                clone_main(&w.url),
                {"uses": "file-write", "config": {"path": "./out/b.txt", "contents": "b\n"}},
                {"uses": "git-commit", "config": {"path": "./out", "message": "add b"}},
                {"uses": "git-push", "config": {"path": "./out"}},
            ]),
        )
        .await;
        if ns != "p" {
            core_support::namespace(&w.client, ns).await;
        }
        let repo_url = repo_url(&w.url);
        let mut data = vec![
            ("repoURL", repo_url.as_str()),
            ("username", "bot"),
            ("password", "s3cret"),
        ];
        if regex {
            data.push(("repoURLIsRegex", "true"));
        }
        git_secret(&w.client, ns, "creds", &data).await;
        let name = w.promote_now().await;
        let p = finished(&w.client, &name).await;
        assert_succeeded(&p, 4);
        assert_eq!(w.show("main:b.txt"), "b\n", "{ns} {repo_url}");
    }
}

#[tokio::test]
async fn a_push_to_a_branch_another_writer_moved_is_rebased_and_retried() {
    if !git_available() {
        return;
    }
    let w = world(&[("a.txt", "a\n")], None).await;
    let (ok, out, err) = cli(
        &w.sandbox,
        &["git", "race", "--repo", "gitops", "--branch", "main"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "armed: the next push to gitops finds main moved\n");
    let p = w
        .promote(json!([
            clone_main(&w.url),
            {"uses": "file-write", "config": {"path": "./out/b.txt", "contents": "b\n"}},
            {"uses": "git-commit", "config": {"path": "./out", "message": "add b"}},
            {"uses": "git-push", "as": "push", "config": {"path": "./out"}},
        ]))
        .await;
    // Kargo v1.11 (AlwaysRebase): the rejected push pulls with rebase and pushes again.
    assert_succeeded(&p, 4);
    assert_eq!(
        w.git(&["log", "--format=%s", "main"]),
        "add b\nA concurrent change by another writer\nInitial commit\n"
    );
    assert_eq!(
        p["status"]["state"]["push"],
        json!({"branch": "main", "commit": w.rev("main")})
    );
}

#[tokio::test]
async fn a_push_that_conflicts_with_another_writer_fails_with_a_merge_conflict() {
    if !git_available() {
        return;
    }
    let w = world(&[("a.txt", "a\n")], None).await;
    let (ok, _, err) = cli(
        &w.sandbox,
        &[
            "git",
            "race",
            "--repo",
            "gitops",
            "--branch",
            "main",
            "--file",
            "a.txt",
            "--contents",
            "theirs\n",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let p = w
        .promote(json!([
            clone_main(&w.url),
            {"uses": "file-write", "config": {"path": "./out/a.txt", "contents": "ours\n", "overwrite": true}},
            {"uses": "git-commit", "config": {"path": "./out", "message": "ours"}},
            {"uses": "git-push", "as": "push", "config": {"path": "./out"}},
        ]))
        .await;
    // Kargo v1.11: the rebase onto the moved branch conflicts; no retry fixes that.
    let message = "step \"push\": merge conflict";
    assert_eq!(p["status"]["phase"], "Failed", "{p:#}");
    assert_eq!(p["status"]["message"], message);
    assert_eq!(
        step_results(&p)[3],
        ("Failed".to_string(), message.to_string())
    );
    assert_eq!(
        w.show("main:a.txt"),
        "theirs\n",
        "the other writer's change stays"
    );
    assert_eq!(
        w.git(&["log", "--format=%s", "main"]),
        "A concurrent change by another writer\nInitial commit\n"
    );
}
