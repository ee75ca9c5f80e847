//! Helpers for the Git promotion suites: repositories seeded from files, reading what a
//! branch holds, pipelines created through the Kubernetes API and promotions awaited.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kargo_sandbox::Sandbox;
use serde_json::{Value, json};

use crate::core_support::{create, get, wait_until};

/// Whether `git` is on PATH; without it the caller returns early after a SKIPPED line (and
/// fails under CI, where git is part of the toolchain).
pub fn git_available() -> bool {
    let ok = Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "git is not on PATH and CI is set: the Git suites must run in CI"
        );
        eprintln!("SKIPPED: git is not on PATH, so this Git promotion test did not run");
    }
    ok
}

/// The absolute path of `git`, as Kargo's command errors print it.
pub fn git_path() -> String {
    kargo_sandbox::git::git_binary()
        .expect("git on PATH")
        .display()
        .to_string()
}

/// Runs `git args…` in `dir` with a fixed identity; returns stdout (panics on failure).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory holding `files` (path → contents).
pub fn seed(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, contents) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("dirs");
        std::fs::write(p, contents).expect("write");
    }
    dir
}

/// The bare repository directory of a served repository.
pub fn bare(sandbox: &Sandbox, name: &str) -> PathBuf {
    sandbox.git().repo_dir(name).expect("the repository exists")
}

/// `git show <rev>:<path>` in a served repository.
pub fn show(sandbox: &Sandbox, name: &str, rev_path: &str) -> String {
    git(&bare(sandbox, name), &["show", rev_path])
}

/// `git rev-parse <rev>` in a served repository.
pub fn rev(sandbox: &Sandbox, name: &str, rev: &str) -> String {
    git(&bare(sandbox, name), &["rev-parse", rev])
        .trim()
        .to_string()
}

/// A project `p` with warehouse `w` subscribed to image `ghcr.io/acme/app` and chart
/// `https://charts.example.com/app`, and a stage `dev` with `steps`.
pub async fn pipeline(client: &kube::Client, steps: Value) {
    pipeline_with(client, steps, json!([])).await;
}

/// [`pipeline`] with Stage-level promotion-template `vars`.
pub async fn pipeline_with(client: &kube::Client, steps: Value, vars: Value) {
    create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "p"}}),
    )
    .await
    .expect("project created");
    create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": "w", "namespace": "p"},
        "spec": {"subscriptions": [
            {"image": {"repoURL": "ghcr.io/acme/app"}},
            {"chart": {"repoURL": "https://charts.example.com", "name": "app"}},
        ]}}),
    )
    .await
    .expect("warehouse created");
    let mut template = json!({"steps": steps});
    if vars.as_array().is_some_and(|v| !v.is_empty()) {
        template["vars"] = vars;
    }
    create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": "dev", "namespace": "p"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true}}],
                     "promotionTemplate": {"spec": template}}}),
    )
    .await
    .expect("stage created");
}

/// Publishes image `ghcr.io/acme/app:<tag>` (and chart version `<tag>`); returns the
/// Freight's name.
pub fn publish(sandbox: &Sandbox, tag: &str) -> String {
    let out = sandbox
        .control(
            "publish",
            &json!({"project": "p", "warehouse": "w",
                "images": [{"repoURL": "ghcr.io/acme/app", "tag": tag}],
                "charts": [{"repoURL": "https://charts.example.com", "name": "app", "version": tag}]}),
        )
        .expect("publish");
    out["name"].as_str().expect("a name").to_string()
}

/// Creates a Promotion of `freight` into `stage` through the Kubernetes API; returns its name.
pub async fn promote(client: &kube::Client, stage: &str, freight: &str) -> String {
    let created = create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"namespace": "p", "generateName": format!("{stage}-")},
            "spec": {"stage": stage, "freight": freight}}),
    )
    .await
    .expect("promotion created");
    created["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string()
}

/// Waits until the Promotion reaches a phase in `phases`; returns it.
pub async fn until_phase(client: &kube::Client, name: &str, phases: &[&str]) -> Value {
    wait_until(
        30,
        &format!("promotion {name} to reach {phases:?}"),
        async || {
            let p = get(client, "Promotion", Some("p"), name).await?;
            let phase = p["status"]["phase"].as_str().unwrap_or_default();
            phases.contains(&phase).then_some(p)
        },
    )
    .await
}

/// Waits until the Promotion ends (Succeeded, Failed, Errored or Aborted).
pub async fn finished(client: &kube::Client, name: &str) -> Value {
    until_phase(client, name, &["Succeeded", "Failed", "Errored", "Aborted"]).await
}

/// The (status, message) of each step, for whole-list assertions.
pub fn step_results(promotion: &Value) -> Vec<(String, String)> {
    promotion["status"]["stepExecutionMetadata"]
        .as_array()
        .map(|metas| {
            metas
                .iter()
                .map(|m| {
                    (
                        m["status"].as_str().unwrap_or_default().to_string(),
                        m["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A Secret in `namespace` holding Git credentials for `repo_url`.
pub async fn git_secret(client: &kube::Client, namespace: &str, name: &str, data: &[(&str, &str)]) {
    use k8s_openapi::api::core::v1::Secret;
    let mut string_data = serde_json::Map::new();
    for (k, v) in data {
        string_data.insert(k.to_string(), json!(v));
    }
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"kargo.akuity.io/cred-type": "git"}},
        "stringData": string_data,
    }))
    .expect("a secret");
    kube::Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&Default::default(), &secret)
        .await
        .expect("secret created");
}
