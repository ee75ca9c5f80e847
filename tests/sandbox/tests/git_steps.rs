//! Promotions that really change Git: Kargo's steps run against repositories the sandbox
//! serves, driven through the Kubernetes API, asserted on the bytes they leave in the
//! repository and on their outputs.

mod core_support;
mod git_support;

use std::time::Instant;

use core_support::start_kargo;
use git_support::*;
use serde_json::json;

const VALUES: &str = "# Helm values for the app\nimage:\n  repository: ghcr.io/acme/app  # the image\n  tag: 1.0.0\nreplicas: 2\n";
const KUSTOMIZATION: &str = "# the base\nresources:\n- deployment.yaml\nimages:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0\nnamespace: app\n";
const CONFIG: &str = "{\n  \"name\": \"app\",\n  \"version\": \"1.0.0\",\n  \"replicas\": 2\n}\n";

fn gitops_seed() -> tempfile::TempDir {
    seed(&[
        ("values.yaml", VALUES),
        ("base/kustomization.yaml", KUSTOMIZATION),
        ("base/deployment.yaml", "kind: Deployment\n"),
        ("config.json", CONFIG),
        ("old/stale.txt", "stale\n"),
        (
            "Chart.yaml",
            "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n- name: app\n  repository: https://charts.example.com\n  version: 1.0.0  # pinned\n",
        ),
    ])
}

#[tokio::test]
async fn file_steps_edit_in_place_and_git_steps_commit_and_push() {
    if !git_available() {
        return;
    }
    let started = Instant::now();
    let (sandbox, client) = start_kargo().await;
    eprintln!("sandbox start-up (measured): {:?}", started.elapsed());
    let files = gitops_seed();
    let url = sandbox
        .git_create("gitops", Some(files.path()), "main", None)
        .unwrap();
    pipeline(
        &client,
        json!([
            {"uses": "git-clone", "as": "clone", "config": {"repoURL": url, "checkout": [{"branch": "main", "path": "./out"}]}},
            {"uses": "yaml-update", "as": "values", "config": {"path": "./out/values.yaml",
                "updates": [{"key": "image.tag", "value": "${{ imageFrom('ghcr.io/acme/app').Tag }}"}]}},
            {"uses": "kustomize-set-image", "as": "image", "config": {"path": "./out/base",
                "images": [{"image": "ghcr.io/acme/app", "tag": "${{ imageFrom('ghcr.io/acme/app').Tag }}"}]}},
            {"uses": "json-update", "as": "json", "config": {"path": "./out/config.json",
                "updates": [{"key": "version", "value": "${{ quote(imageFrom('ghcr.io/acme/app').Tag) }}"}]}},
            {"uses": "helm-update-chart", "as": "chart", "config": {"path": "./out",
                "charts": [{"repository": "https://charts.example.com", "name": "app",
                            "version": "${{ chartFrom('https://charts.example.com', 'app').Version }}"}]}},
            {"uses": "file-write", "as": "write", "config": {"path": "out/NOTES.txt", "contents": "promoted ${{ ctx.targetFreight.name }}\n"}},
            {"uses": "copy", "as": "copy", "config": {"inPath": "./out/base", "outPath": "./out/copy-of-base"}},
            {"uses": "delete", "as": "delete", "config": {"path": "./out/old"}},
            {"uses": "git-commit", "as": "commit", "config": {"path": "./out", "message": "promote ${{ imageFrom('ghcr.io/acme/app').Tag }} into ${{ ctx.stage }}"}},
            {"uses": "git-push", "as": "push", "config": {"path": "./out"}},
        ]),
    )
    .await;
    let freight = publish(&sandbox, "1.1.0");
    let t = Instant::now();
    let name = promote(&client, "dev", &freight).await;
    let done = finished(&client, &name).await;
    eprintln!(
        "promotion with Git steps on a small repository (measured): {:?}",
        t.elapsed()
    );
    assert_eq!(
        step_results(&done),
        vec![
            ("Succeeded".into(), String::new()),
            ("Succeeded".into(), String::new()),
            ("Succeeded".into(), String::new()),
            ("Succeeded".into(), String::new()),
            ("Succeeded".into(), "Chart.yaml updated; the sandbox reaches no chart repository, so it did not run `helm dependency update` (Chart.lock and charts/ are unchanged)".into()),
            ("Succeeded".into(), String::new()),
            ("Succeeded".into(), String::new()),
            ("Succeeded".into(), String::new()),
            ("Succeeded".into(), String::new()),
            ("Succeeded".into(), String::new()),
        ],
        "{done:#}"
    );
    assert_eq!(done["status"]["phase"], "Succeeded");
    let head = rev(&sandbox, "gitops", "main");
    let state = &done["status"]["state"];
    assert_eq!(state["push"], json!({"commit": head, "branch": "main"}));
    assert_eq!(state["commit"], json!({"commit": head}));
    let initial = rev(&sandbox, "gitops", "main~1");
    assert_eq!(state["clone"], json!({"commits": {"./out": initial}}));
    assert_eq!(
        state["values"]["commitMessage"],
        "Updated ./out/values.yaml\n\n- image.tag: 1.1.0"
    );
    assert_eq!(
        state["json"]["commitMessage"],
        "Updated ./out/config.json\n\n- version: \"1.1.0\""
    );
    assert_eq!(
        state["image"]["commitMessage"],
        "Updated ./out/base to use new image\n\n- ghcr.io/acme/app:1.1.0"
    );
    // Every edit is the one-line change Kargo makes; untouched lines keep their bytes.
    let bare = bare(&sandbox, "gitops");
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>%n%s", "main"]),
        "Kargo <no-reply@kargo.io>\npromote 1.1.0 into dev\n"
    );
    assert_eq!(
        git(&bare, &["diff", "--name-status", "main~1", "main"]),
        "M\tChart.yaml\nA\tNOTES.txt\nM\tbase/kustomization.yaml\nM\tconfig.json\nA\tcopy-of-base/deployment.yaml\nA\tcopy-of-base/kustomization.yaml\nD\told/stale.txt\nM\tvalues.yaml\n"
    );
    assert_eq!(
        git(
            &bare,
            &[
                "diff",
                "--numstat",
                "main~1",
                "main",
                "--",
                "values.yaml",
                "base",
                "config.json",
                "Chart.yaml"
            ]
        ),
        "1\t1\tChart.yaml\n1\t1\tbase/kustomization.yaml\n1\t1\tconfig.json\n1\t1\tvalues.yaml\n",
        "a one-value change is a one-line diff"
    );
    assert_eq!(
        show(&sandbox, "gitops", "main:values.yaml"),
        VALUES.replace("tag: 1.0.0", "tag: 1.1.0")
    );
    assert_eq!(
        show(&sandbox, "gitops", "main:base/kustomization.yaml"),
        KUSTOMIZATION.replace("newTag: 1.0.0", "newTag: 1.1.0")
    );
    assert_eq!(
        show(&sandbox, "gitops", "main:config.json"),
        CONFIG.replace("\"1.0.0\"", "\"1.1.0\"")
    );
    assert_eq!(
        show(&sandbox, "gitops", "main:Chart.yaml"),
        "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n- name: app\n  repository: https://charts.example.com\n  version: 1.1.0\n"
    );
    assert_eq!(
        show(&sandbox, "gitops", "main:NOTES.txt"),
        format!("promoted {freight}\n")
    );
    assert_eq!(
        show(&sandbox, "gitops", "main:copy-of-base/kustomization.yaml"),
        KUSTOMIZATION.replace("newTag: 1.0.0", "newTag: 1.1.0")
    );
    // The work directory goes with the Promotion.
    assert!(!sandbox.git().work_dir("p", &name).exists());
}
