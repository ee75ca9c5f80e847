//! examples/quickstart, applied as written against a sandbox the way `make demo` runs it:
//! its manifests served as a Git repository, the pipeline, a promotion into dev, the
//! plan-time diff when a newer image appears, and the commit each promotion pushed.

use std::path::Path;
use std::process::Command;

use kargo_e2e::pipeline::{held_in, publish_image};
use kargo_e2e::{Env, Transport, actions, example_dir, planned_actions, planned_after};

const IMAGE: &str = "ghcr.io/akuity/guestbook";

/// `git args…` in `dir`; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The added and removed lines of a unified diff (no file headers).
fn diff_lines(diff: &str) -> Vec<String> {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .map(str::to_string)
        .collect()
}

/// The added and removed lines of the last commit on `branch`.
fn changed_lines(repo: &Path, branch: &str) -> Vec<String> {
    diff_lines(&git(repo, &["show", "-U0", "--format=", branch]))
}

kargo_e2e::over_both_transports!(
    the_quickstart_applies_promotes_and_shows_the_next_promotion_at_plan
);

fn the_quickstart_applies_promotes_and_shows_the_next_promotion_at_plan(transport: Transport) {
    if Command::new("git").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "git is not on PATH and CI is set: the quickstart must run in CI"
        );
        eprintln!("SKIPPED: git is not on PATH, so the quickstart (it pushes to Git) did not run");
        return;
    }
    let mut env = Env::over(transport);
    let quickstart = example_dir("quickstart");
    let main =
        std::fs::read_to_string(quickstart.join("main.tf")).expect("examples/quickstart/main.tf");
    env.tf.write_main(&main);
    env.connect_example();
    let kubeconfig = env.sandbox.kubeconfig_path().display().to_string();
    env.tf.env("TF_VAR_kubeconfig", &kubeconfig);
    // As `make demo` does: the quickstart's manifests served as a repository it promotes into.
    let url = env
        .sandbox
        .git_create(
            "guestbook-gitops",
            Some(&quickstart.join("gitops")),
            "main",
            None,
        )
        .expect("repository created");
    env.tf.env("TF_VAR_gitops_repo_url", &url);
    let ca_file = env.sandbox.git().ca_file().display().to_string();
    env.tf.env("TF_VAR_git_ca_file", &ca_file);
    let repo = env
        .sandbox
        .git()
        .repo_dir("guestbook-gitops")
        .expect("the repository exists");
    let base = std::fs::read_to_string(quickstart.join("gitops/base/kustomization.yaml"))
        .expect("the quickstart's kustomization");

    // The pipeline alone: no promotion is declared while dev_version is null.
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    for stage in ["dev", "staging"] {
        assert!(
            env.get("stages", Some("kargo-demo"), stage).is_some(),
            "stage {stage} created"
        );
    }

    let (first, first_alias) = publish_image(&env, "kargo-demo", "guestbook", IMAGE, "1.0.0");
    env.tf.env("TF_VAR_dev_version", "^1.0.0");
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let promotion = env.tf.resource("kargo_promotion.dev[0]");
    assert_eq!(promotion["freight_name"], first.as_str());
    assert_eq!(promotion["phase"], "Succeeded");
    assert_eq!(
        held_in(&env, "kargo-demo", "guestbook", "dev").as_deref(),
        Some(first.as_str()),
        "dev runs the promoted freight"
    );
    // The promotion pushed the base, with the image tag set, to the stage's own branch.
    assert_eq!(
        git(&repo, &["show", "stage/dev:base/kustomization.yaml"]),
        base.replace("newTag: 0.0.1", "newTag: 1.0.0")
    );
    assert_eq!(
        git(&repo, &["ls-tree", "-r", "--name-only", "stage/dev"]),
        "base/deployment.yaml\nbase/kustomization.yaml\n"
    );
    let first_push = git(&repo, &["rev-parse", "stage/dev"]);

    // A newer image: the plan names the freight that moves and what it changes.
    let (second, second_alias) = publish_image(&env, "kargo-demo", "guestbook", IMAGE, "1.1.0");
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_promotion.dev[0]"),
        actions(&["delete", "create"]),
        "a new target is a new promotion"
    );
    let after = planned_after(&plan, "kargo_promotion.dev[0]").expect("planned promotion");
    assert_eq!(after["freight_name"], second.as_str());
    assert_eq!(after["stage_freight"]["alias"], first_alias.as_str());
    assert_eq!(after["changes"][0]["from"], "1.0.0");
    assert_eq!(after["changes"][0]["to"], "1.1.0");
    let summary = after["summary"].as_str().expect("summary known at plan");
    assert!(
        summary.contains(&first_alias) && summary.contains(&second_alias),
        "the summary names both freights: {summary}"
    );

    // And the manifest change the promotion will push, previewed from the repository.
    assert_eq!(
        after["preview_result"]["status"], "complete",
        "{:#}",
        after["preview_result"]
    );
    let previewed = after["manifest_changes"]
        .as_array()
        .expect("manifest changes known at plan");
    assert_eq!(previewed.len(), 1, "{previewed:#?}");
    assert_eq!(previewed[0]["repo_url"], url.as_str());
    assert_eq!(previewed[0]["branch"], "stage/dev");
    assert_eq!(previewed[0]["path"], "base/kustomization.yaml");
    assert_eq!(previewed[0]["action"], "modified");
    assert_eq!(
        diff_lines(previewed[0]["diff"].as_str().expect("a diff")),
        vec!["-  newTag: 1.0.0", "+  newTag: 1.1.0"]
    );

    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let outputs = env.tf.outputs();
    assert_eq!(outputs["dev_promotion"]["freight"], second_alias.as_str());
    assert_eq!(outputs["dev_promotion"]["phase"], "Succeeded");
    // What `make demo` shows last: the commit of the second promotion is the one-line tag
    // change, on top of the first promotion's commit, with the step's commit message.
    assert_eq!(
        git(&repo, &["rev-parse", "stage/dev~1"]),
        first_push,
        "one commit per promotion"
    );
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>%n%B", "stage/dev"]),
        "Kargo <no-reply@kargo.io>\nUpdated ./out/base to use new image\n\n- ghcr.io/akuity/guestbook:1.1.0\n\n"
    );
    assert_eq!(
        git(&repo, &["show", "--name-only", "--format=", "stage/dev"]),
        "base/kustomization.yaml\n"
    );
    assert_eq!(
        changed_lines(&repo, "stage/dev"),
        vec!["-  newTag: 1.0.0", "+  newTag: 1.1.0"]
    );
    assert_eq!(
        git(&repo, &["rev-list", "--count", "main"]),
        "1\n",
        "main holds only its initial commit"
    );

    env.tf.destroy().ok();
    assert!(env.get("projects", None, "kargo-demo").is_none());
    env.assert_went_through_transport();
}
