//! The DoKa Seca RustFS add-on pipeline (thatmlopsguy/dokaseca-addons, kargo/rustfs) promoted
//! end to end: its two PromotionTasks (json-parse, json-update, git-commit, git-push,
//! git-open-pr, git-wait-for-pr) against a repository laid out like theirs, each pull request
//! merged as a reviewer would. The objects below are written from their manifests; when
//! `../shared` holds those, they are compared with them.

mod core_support;
mod git_support;

use core_support::{cli, create, get, start_kargo, wait_until};
use git_support::{git, git_available, seed};
use kargo_sandbox::Sandbox;
use serde_json::{Value, json};

const PROJECT: &str = "rustfs-addon";
const THEIR_REPO: &str = "https://github.com/thatmlopsguy/dokaseca-addons.git";
const CHART_VERSION: &str =
    "${{ chartFrom('https://charts.rustfs.com', 'rustfs', warehouse('rustfs-charts')).Version }}";

/// One of their two tasks: the environment one edits `environments/<stage>`, the regional
/// one `regions/<vars.region>`.
fn task(name: &str, repo_url: &str, regional: bool) -> Value {
    let (dir, target, label) = if regional {
        (
            "regions/${{ vars.region }}",
            "region: ${{ vars.region }}",
            "${{ vars.region }}",
        )
    } else {
        (
            "environments/${{ ctx.stage }}",
            "${{ ctx.stage }}",
            "${{ ctx.stage }}",
        )
    };
    let file = format!("./out/configs/appsets/{dir}/rustfs.json");
    let title = format!("kargo: promote RustFS addon to {CHART_VERSION} ({target})");
    let open_pr = "${{ vars.openPR == 'true' }}";
    let mut vars = vec![
        json!({"name": "gitRepoURL", "value": repo_url}),
        json!({"name": "openPR", "value": "true"}),
    ];
    if regional {
        vars.push(json!({"name": "region", "value": ""}));
    }
    json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "PromotionTask",
    "metadata": {"name": name, "namespace": PROJECT},
    "spec": {"vars": vars, "steps": [
        {"uses": "git-clone", "as": "clone-repo", "config": {"repoURL": "${{ vars.gitRepoURL }}",
            "checkout": [{"branch": "main", "path": "./out"}]}},
        {"uses": "json-parse", "as": "current-version", "config": {"path": file,
            "outputs": [{"name": "addonChartVersion", "fromExpression": "addonChartVersion"}]}},
        {"uses": "json-update", "as": "update-settings", "config": {"path": file,
            "updates": [{"key": "addonChartVersion", "value": CHART_VERSION}]}},
        {"uses": "git-commit", "as": "commit", "config": {"path": "./out", "message": title}},
        {"uses": "git-push", "as": "push", "if": open_pr, "config": {"path": "./out", "generateTargetBranch": true}},
        {"uses": "git-open-pr", "as": "open-pr", "if": open_pr, "config": {
            "repoURL": "${{ vars.gitRepoURL }}", "provider": "github",
            "sourceBranch": "${{ task.outputs['push'].branch }}", "targetBranch": "main",
            "title": title, "labels": ["kargo", "addon-promotion", "rustfs", label]}},
        {"uses": "git-wait-for-pr", "as": "wait-for-pr", "if": open_pr, "config": {
            "repoURL": "${{ vars.gitRepoURL }}", "prNumber": "${{ task.outputs['open-pr'].pr.id }}"}},
    ]}})
}

/// One of their stages: `(name, upstream, color, var, value, task)`.
fn stage(name: &str, upstream: Option<&str>, color: &str, var: (&str, &str), task: &str) -> Value {
    let sources = match upstream {
        None => json!({"direct": true}),
        Some(u) => json!({"stages": [u]}),
    };
    json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
    "metadata": {"name": name, "namespace": PROJECT, "annotations": {"kargo.akuity.io/color": color}},
    "spec": {
        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "rustfs-charts"}, "sources": sources}],
        "promotionTemplate": {"spec": {
            "vars": [{"name": "openPR", "value": "true"}, {"name": var.0, "value": var.1}],
            "steps": [{"task": {"name": task}}],
        }},
    }})
}

fn pipeline(repo_url: &str) -> Vec<Value> {
    let env = "addon-version-promote";
    let region = "addon-version-promote-region";
    let mut objects = vec![
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project",
            "metadata": {"name": PROJECT, "annotations": {
                "kargo.akuity.io/description": "RustFS addon chart version promotion project"}}}),
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
            "metadata": {"name": "rustfs-charts", "namespace": PROJECT},
            "spec": {"subscriptions": [{"chart": {"repoURL": "https://charts.rustfs.com", "name": "rustfs"}}]}}),
        task(env, repo_url, false),
        task(region, repo_url, true),
        stage("dev", None, "green", ("environment", "dev"), env),
        stage("stg", Some("dev"), "yellow", ("environment", "stg"), env),
        stage("prod", Some("stg"), "red", ("environment", "prod"), env),
    ];
    for r in ["apac", "eu", "us", "local"] {
        objects.push(stage(
            &format!("prod-{r}"),
            Some("prod"),
            "red",
            ("region", r),
            region,
        ));
    }
    objects
}

/// Their settings file for one environment or region (the fields the pipeline reads and
/// writes, and neighbours it must leave alone).
fn settings(version: &str) -> String {
    format!(
        "{{\n  \"addonChartName\": \"rustfs\",\n  \"addonChartRepository\": \"https://charts.rustfs.com\",\n  \"addonChartVersion\": \"{version}\",\n  \"namespace\": \"rustfs\"\n}}\n"
    )
}

#[test]
fn the_objects_are_theirs_but_for_the_repository_url() {
    let rel = "fixtures/real-world";
    let Some(dir) = kargo_sandbox::reference::for_test(rel) else {
        return;
    };
    let mut theirs = Vec::new();
    for file in ["project", "warehouse", "promotion", "stages"] {
        let path = dir.join(format!(
            "thatmlopsguy_dokaseca-addons__kargo_rustfs_{file}.yaml"
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if !v.is_null() {
                theirs.push(v);
            }
        }
    }
    let key = |v: &Value| format!("{}/{}", v["kind"], v["metadata"]["name"]);
    theirs.sort_by_key(key);
    let mut ours = pipeline(THEIR_REPO);
    ours.sort_by_key(key);
    assert_eq!(ours, theirs);
}

/// Publishes RustFS chart `version`; returns the Freight's name.
fn publish(sandbox: &Sandbox, version: &str) -> String {
    let out = sandbox
        .control(
            "publish",
            &json!({"project": PROJECT, "warehouse": "rustfs-charts",
                "charts": [{"repoURL": "https://charts.rustfs.com", "name": "rustfs", "version": version}]}),
        )
        .unwrap();
    out["name"].as_str().unwrap().to_string()
}

/// Promotes `freight` into `stage`, merges the pull request the promotion opens (checking it
/// names what it promotes) and returns the finished Promotion.
async fn promote_and_merge(
    sandbox: &Sandbox,
    client: &kube::Client,
    stage: &str,
    freight: &str,
    title: &str,
    label: &str,
) -> Value {
    let created = create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"namespace": PROJECT, "generateName": format!("{stage}-")},
            "spec": {"stage": stage, "freight": freight}}),
    )
    .await
    .unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    let branch = format!("kargo/promotion/{name}");
    let pr = wait_until(30, &format!("the pull request of {name}"), async || {
        let (ok, out, err) = cli(sandbox, &["pr", "list", "--repo", "dokaseca-addons"]).await;
        assert!(ok, "{err}");
        let prs: Vec<Value> = serde_json::from_str(&out).unwrap();
        prs.into_iter()
            .find(|p| p["sourceBranch"] == branch.as_str())
    })
    .await;
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["targetBranch"], "main");
    assert_eq!(pr["title"], title);
    assert_eq!(
        pr["labels"],
        json!(["kargo", "addon-promotion", "rustfs", label])
    );
    let number = pr["number"].to_string();
    let (ok, _, err) = cli(
        sandbox,
        &[
            "pr",
            "merge",
            "--repo",
            "dokaseca-addons",
            "--number",
            &number,
        ],
    )
    .await;
    assert!(ok, "{err}");
    wait_until(30, &format!("promotion {name} to end"), async || {
        let p = get(client, "Promotion", Some(PROJECT), &name).await?;
        let phase = p["status"]["phase"].as_str().unwrap_or_default();
        ["Succeeded", "Failed", "Errored", "Aborted"]
            .contains(&phase)
            .then_some(p)
    })
    .await
}

#[tokio::test]
async fn a_rustfs_chart_version_goes_dev_stg_prod_and_a_region_by_merged_pull_requests() {
    if !git_available() {
        return;
    }
    let (sandbox, client) = start_kargo().await;
    let mut files = Vec::new();
    for env in ["dev", "stg", "prod"] {
        files.push((
            format!("configs/appsets/environments/{env}/rustfs.json"),
            settings("0.0.76"),
        ));
    }
    for region in ["apac", "eu", "us", "local"] {
        files.push((
            format!("configs/appsets/regions/{region}/rustfs.json"),
            settings("0.0.76"),
        ));
    }
    files.push((
        "charts/README.md".to_string(),
        "Add-on charts\n".to_string(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let seeded = seed(&refs);
    let url = sandbox
        .git_create("dokaseca-addons", Some(seeded.path()), "main", None)
        .unwrap();
    let repo = sandbox.git().repo_dir("dokaseca-addons").unwrap();
    for object in pipeline(&url) {
        create(&client, object).await.unwrap();
    }
    let freight = publish(&sandbox, "0.0.77");

    let mut merged = Vec::new();
    for (stage, file, target, label) in [
        ("dev", "environments/dev", "dev", "dev"),
        ("stg", "environments/stg", "stg", "stg"),
        ("prod", "environments/prod", "prod", "prod"),
        ("prod-eu", "regions/eu", "region: eu", "eu"),
    ] {
        let before = git(&repo, &["rev-parse", "main"]).trim().to_string();
        let title = format!("kargo: promote RustFS addon to 0.0.77 ({target})");
        let p = promote_and_merge(&sandbox, &client, stage, &freight, &title, label).await;
        assert_eq!(p["status"]["phase"], "Succeeded", "{stage}: {p:#}");
        let head = git(&repo, &["rev-parse", "main"]).trim().to_string();
        // Kargo names a task's steps `<task alias>::<step alias>`; the task step is `task-1`.
        let state = &p["status"]["state"];
        assert_eq!(
            state["task-1::current-version"],
            json!({"addonChartVersion": "0.0.76"}),
            "{stage}: json-parse read the version before the update"
        );
        assert_eq!(
            state["task-1::wait-for-pr"]["commit"],
            head.as_str(),
            "{stage}"
        );
        assert_eq!(
            state["task-1::wait-for-pr"]["pr"]["merged"], true,
            "{stage}"
        );
        // The merge brought exactly the one-line change of this stage's file.
        let path = format!("configs/appsets/{file}/rustfs.json");
        assert_eq!(
            git(&repo, &["diff", "--numstat", &before, &head]),
            format!("1\t1\t{path}\n"),
            "{stage}"
        );
        assert_eq!(
            git(&repo, &["show", &format!("main:{path}")]),
            settings("0.0.77"),
            "{stage}"
        );
        // The commit the pull request carried, with the task's message.
        assert_eq!(
            git(&repo, &["log", "-1", "--format=%s", "main^2"]),
            format!("{title}\n"),
            "{stage}"
        );
        merged.push(path);
    }
    // The stages not promoted keep their version.
    for untouched in [
        "configs/appsets/regions/apac/rustfs.json",
        "configs/appsets/regions/us/rustfs.json",
        "configs/appsets/regions/local/rustfs.json",
    ] {
        assert_eq!(
            git(&repo, &["show", &format!("main:{untouched}")]),
            settings("0.0.76")
        );
    }
    assert_eq!(merged.len(), 4);
}
