//! The plan-time preview of `kargo_promotion`: the plan shows the manifest diff a promotion
//! would commit, computed by a local dry run of the stage's steps, and the commit the
//! promotion then pushes (the sandbox runs Kargo's steps for real) has exactly that diff.
//! Partial and unavailable previews say why; credentials never leak.

use std::path::Path;
use std::process::Command;

use kargo_e2e::pipeline::{Pipeline, publish};
use kargo_e2e::{Env, planned_after};
use kargo_sandbox::git::BasicAuth;
use serde_json::{Value as Json, json};

const VALUES: &str = "# Helm values for the app\nimage:\n  repository: ghcr.io/acme/app  # the image\n  tag: 1.0.0\nreplicas: 2\nresources:\n  limits:\n    cpu: 500m\n    memory: 256Mi\n";
const KUSTOMIZATION: &str = "# the base\nresources:\n- deployment.yaml\nimages:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0\nnamespace: app\ncommonLabels:\n  team: shop\n  tier: web\n";
const CONFIG: &str = "{\n  \"name\": \"app\",\n  \"version\": \"1.0.0\",\n  \"replicas\": 2,\n  \"features\": [\"a\", \"b\"],\n  \"owner\": \"shop\"\n}\n";

/// A served repository `name` holding the manifests the steps edit; returns its URL.
fn manifests_repo(env: &Env, name: &str, auth: Option<BasicAuth>) -> String {
    let seed = tempfile::tempdir().unwrap();
    for (path, contents) in [
        ("values.yaml", VALUES),
        ("base/kustomization.yaml", KUSTOMIZATION),
        ("base/deployment.yaml", "kind: Deployment\n"),
        ("config.json", CONFIG),
        ("README.md", "manifests\n"),
    ] {
        let p = seed.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    env.sandbox
        .git_create(name, Some(seed.path()), "main", auth)
        .unwrap()
}

/// The provider block with the sandbox's CA trusted for Git, plus `extra` inside
/// `promotion_preview`.
fn provider(env: &Env, extra: &str) -> String {
    format!(
        "{}\n",
        env.provider_block().replace(
            "config_path",
            &format!(
                "promotion_preview {{\n    ca_file = \"{}\"\n    {extra}\n  }}\n  config_path",
                env.sandbox.git().ca_file().display()
            )
        )
    )
}

/// A step block; `config` is HCL for `jsonencode`.
fn step(uses: &str, alias: &str, config: &str) -> String {
    format!(
        "    steps {{\n      uses   = \"{uses}\"\n      as     = \"{alias}\"\n      config = jsonencode({config})\n    }}\n"
    )
}

/// The file steps every stage here runs, between clone and commit.
fn edits() -> String {
    [
        step(
            "kustomize-set-image",
            "image",
            r#"{ path = "./out/base", images = [{ image = "ghcr.io/acme/app", tag = "$${{ imageFrom('ghcr.io/acme/app').Tag }}" }] }"#,
        ),
        step(
            "yaml-update",
            "values",
            r#"{ path = "./out/values.yaml", updates = [{ key = "image.tag", value = "$${{ imageFrom('ghcr.io/acme/app').Tag }}" }] }"#,
        ),
        step(
            "json-update",
            "json",
            r#"{ path = "./out/config.json", updates = [{ key = "version", value = "$${{ quote(imageFrom('ghcr.io/acme/app').Tag) }}" }] }"#,
        ),
    ]
    .concat()
}

/// Stage `dev` promoting with clone, `middle`, commit and push, then `after`.
fn stage(url: &str, middle: &str, after: &str) -> String {
    format!(
        "resource \"kargo_stage\" \"dev\" {{\n  project = kargo_project.p.name\n  name    = \"dev\"\n  requested_freight {{\n    origin {{ name = kargo_warehouse.app.name }}\n    sources {{ direct = true }}\n  }}\n  promotion_template {{\n{}{middle}{}{}{after}  }}\n}}\n",
        step(
            "git-clone",
            "clone",
            &format!(
                r#"{{ repoURL = "{url}", checkout = [{{ branch = "main", path = "./out" }}] }}"#
            )
        ),
        step(
            "git-commit",
            "commit",
            r#"{ path = "./out", message = "promote $${{ imageFrom('ghcr.io/acme/app').Tag }}" }"#
        ),
        step("git-push", "push", r#"{ path = "./out" }"#),
    )
}

fn promotion(freight: &str, extra: &str) -> String {
    format!(
        "resource \"kargo_promotion\" \"dev\" {{\n  project = kargo_project.p.name\n  stage   = kargo_stage.dev.name\n  freight = \"{freight}\"\n  {extra}\n}}\n"
    )
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A unified diff without what tells Git's and the provider's apart: the `diff --git` and
/// `index` lines and the section text Git puts after a hunk's `@@`.
fn hunks(diff: &str) -> String {
    diff.lines()
        .filter(|l| {
            !l.starts_with("diff --git")
                && !l.starts_with("index ")
                && !l.starts_with("new file mode")
                && !l.starts_with("deleted file mode")
        })
        .map(|l| match l.strip_prefix("@@") {
            Some(rest) => format!("@@{}@@", rest.split("@@").next().unwrap()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn planned(env: &Env) -> Json {
    let plan = env.tf.plan_json();
    planned_after(&plan, "kargo_promotion.dev").expect("the promotion is planned")
}

/// The pipeline with stage `dev` applied and freight 1.1.0 published; returns the freight.
fn applied_stage(env: &Env, provider_block: &str, stage_hcl: &str) -> String {
    env.tf.write_main(&format!(
        "{provider_block}{}{stage_hcl}",
        Pipeline::new().hcl()
    ));
    env.tf.apply().ok();
    publish(env, "1.1.0").0
}

#[test]
fn the_plan_shows_the_diff_the_promotion_then_pushes_file_by_file() {
    let env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let block = provider(&env, "");
    let stage_hcl = stage(&url, &edits(), "");
    let freight = applied_stage(&env, &block, &stage_hcl);
    let config = format!(
        "{block}{}{stage_hcl}{}",
        Pipeline::new().hcl(),
        promotion(&freight, "")
    );
    env.tf.write_main(&config);

    let after = planned(&env);
    assert_eq!(
        after["preview_result"],
        json!({"status": "complete", "reasons": [], "actions": [format!("git-push: would push to branch main of {url}")]})
    );
    let changes = after["manifest_changes"].as_array().unwrap().clone();
    let listed: Vec<(String, String, String, String)> = changes
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("repo_url"), s("branch"), s("path"), s("action"))
        })
        .collect();
    let m = |p: &str| {
        (
            url.clone(),
            "main".to_string(),
            p.to_string(),
            "modified".to_string(),
        )
    };
    assert_eq!(
        listed,
        vec![
            m("base/kustomization.yaml"),
            m("config.json"),
            m("values.yaml")
        ]
    );
    assert_eq!(
        changes[2]["diff"],
        "--- a/values.yaml\n+++ b/values.yaml\n@@ -1,7 +1,7 @@\n # Helm values for the app\n image:\n   repository: ghcr.io/acme/app  # the image\n-  tag: 1.0.0\n+  tag: 1.1.0\n replicas: 2\n resources:\n   limits:\n",
        "a one-value change is a one-line diff with 3 lines of context"
    );
    // The human-readable plan shows the diff too.
    let text = env.tf.run(&["plan", "-no-color"]).ok().stdout;
    assert!(text.contains("-  tag: 1.0.0"), "{text}");
    assert!(text.contains("+  tag: 1.1.0"), "{text}");

    let before = git(
        &env.sandbox.git().repo_dir("gitops").unwrap(),
        &["rev-parse", "main"],
    );
    env.tf.apply().ok();
    let bare = env.sandbox.git().repo_dir("gitops").unwrap();
    assert_eq!(
        git(&bare, &["rev-parse", "main~1"]),
        before,
        "the promotion pushed one commit"
    );
    assert_eq!(
        git(&bare, &["diff", "--name-status", "main~1", "main"]),
        "M\tbase/kustomization.yaml\nM\tconfig.json\nM\tvalues.yaml\n",
        "the commit changes exactly the files the plan listed"
    );
    for change in &changes {
        let path = change["path"].as_str().unwrap();
        let pushed = git(
            &bare,
            &["diff", "--no-color", "-U3", "main~1", "main", "--", path],
        );
        assert_eq!(
            hunks(change["diff"].as_str().unwrap()),
            hunks(&pushed),
            "the planned diff of {path} is the pushed commit's"
        );
    }
    let state = env.tf.resource("kargo_promotion.dev");
    assert_eq!(
        state["manifest_changes"], after["manifest_changes"],
        "kept as planned"
    );
    assert_eq!(state["preview_result"], after["preview_result"]);
    env.tf.assert_no_changes();
}

#[test]
fn steps_the_preview_cannot_run_make_it_partial_and_other_changes_still_show() {
    let env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let block = provider(&env, "");
    let middle = format!(
        "{}{}",
        step("argocd-update", "sync", r#"{ apps = [{ name = "app" }] }"#),
        step(
            "file-write",
            "notes",
            r#"{ path = "./out/NOTES.txt", contents = "synced $${{ outputs.sync }}\n" }"#
        ),
    );
    let middle = format!("{middle}{}", edits());
    let stage_hcl = stage(&url, &middle, "");
    let freight = applied_stage(&env, &block, &stage_hcl);
    env.tf.write_main(&format!(
        "{block}{}{stage_hcl}{}",
        Pipeline::new().hcl(),
        promotion(&freight, "")
    ));
    let out = env.tf.run(&["plan", "-no-color"]).ok();
    assert!(
        out.all().contains("Promotion preview partial"),
        "{}",
        out.all()
    );
    let after = planned(&env);
    assert_eq!(after["preview_result"]["status"], "partial");
    assert_eq!(
        after["preview_result"]["reasons"],
        json!([
            "argocd-update: needs Argo CD",
            "notes: needs the outputs of sync, which did not run"
        ])
    );
    let paths: Vec<&str> = after["manifest_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["base/kustomization.yaml", "config.json", "values.yaml"],
        "steps after the one not run still show"
    );
}

#[test]
fn refused_or_missing_credentials_make_it_unavailable_and_nothing_leaks() {
    let mut env = Env::new();
    let auth = BasicAuth {
        username: "kargo".into(),
        password: "right-password".into(),
    };
    let url = manifests_repo(&env, "private", Some(auth));
    env.tf.env("GIT_CONFIG_NOSYSTEM", "1");
    env.tf.env("GIT_CONFIG_GLOBAL", "/dev/null");
    let prefix = url.trim_end_matches("private.git");
    let wrong = format!(
        "git_credentials {{\n      url_prefix = \"{prefix}\"\n      username = \"kargo\"\n      password = \"Wr0ng-s3cret-value\"\n    }}"
    );
    let stage_hcl = stage(&url, &edits(), "");
    let freight = applied_stage(&env, &provider(&env, &wrong), &stage_hcl);
    env.tf.write_main(&format!(
        "{}{}{stage_hcl}{}",
        provider(&env, &wrong),
        Pipeline::new().hcl(),
        promotion(&freight, "")
    ));
    env.tf.env("TF_LOG", "TRACE");
    let out = env.tf.run(&["plan", "-out=e2e.tfplan"]).ok();
    assert!(
        !out.all().contains("Wr0ng-s3cret-value"),
        "the password leaked at TF_LOG=TRACE"
    );
    assert!(
        out.all().contains("Promotion preview unavailable"),
        "{}",
        out.all()
    );
    env.tf.env("TF_LOG", "");
    let shown: Json =
        serde_json::from_str(&env.tf.run(&["show", "-json", "e2e.tfplan"]).ok().stdout).unwrap();
    let after = planned_after(&shown, "kargo_promotion.dev").unwrap();
    assert_eq!(
        after["preview_result"],
        json!({"status": "unavailable", "actions": [], "reasons": [format!(
            "{url}/info/refs?service=git-upload-pack refused access (HTTP 401) with credentials from promotion_preview.git_credentials (url_prefix \"{prefix}\", username \"kargo\")"
        )]})
    );
    assert_eq!(after["manifest_changes"], json!([]));

    // The right password: the preview runs.
    let right = wrong.replace("Wr0ng-s3cret-value", "right-password");
    env.tf.write_main(&format!(
        "{}{}{stage_hcl}{}",
        provider(&env, &right),
        Pipeline::new().hcl(),
        promotion(&freight, "")
    ));
    let after = planned(&env);
    assert_eq!(after["preview_result"]["status"], "complete", "{after:#}");
    assert_eq!(after["manifest_changes"].as_array().unwrap().len(), 3);

    // No credentials at all.
    env.tf.write_main(&format!(
        "{}{}{stage_hcl}{}",
        provider(&env, ""),
        Pipeline::new().hcl(),
        promotion(&freight, "")
    ));
    let after = planned(&env);
    assert_eq!(
        after["preview_result"]["reasons"],
        json!([format!(
            "{url}/info/refs?service=git-upload-pack refused access (HTTP 401) with no credentials (no promotion_preview.git_credentials entry matches; Kargo's credential Secrets are not read (read_kargo_credentials is off); the Git credential helper gave none)"
        )])
    );
}

#[test]
fn repositories_that_cannot_be_fetched_make_it_unavailable() {
    let env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let missing = url.replace("gitops.git", "missing.git");
    let block = provider(&env, "timeout = \"5s\"");
    for (repo, reason) in [
        (
            missing.clone(),
            format!("{missing}/info/refs?service=git-upload-pack: repository not found (HTTP 404)"),
        ),
        (
            "https://127.0.0.1:1/git/closed.git".to_string(),
            "https://127.0.0.1:1/git/closed.git/info/refs?service=git-upload-pack is unreachable: "
                .to_string(),
        ),
    ] {
        let stage_hcl = stage(&repo, &edits(), "");
        env.tf
            .write_main(&format!("{block}{}{stage_hcl}", Pipeline::new().hcl()));
        env.tf.apply().ok();
        let freight = publish(&env, "1.1.0").0;
        env.tf.write_main(&format!(
            "{block}{}{stage_hcl}{}",
            Pipeline::new().hcl(),
            promotion(&freight, "")
        ));
        let after = planned(&env);
        assert_eq!(after["preview_result"]["status"], "unavailable");
        let told = after["preview_result"]["reasons"][0].as_str().unwrap();
        assert!(told.starts_with(&reason), "{told}");
        assert_eq!(after["manifest_changes"], json!([]));
    }
}

#[test]
fn a_stage_created_by_the_same_apply_is_not_previewed_and_the_next_plan_is_empty() {
    let env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let block = provider(&env, "");
    env.tf
        .write_main(&format!("{block}{}", Pipeline::new().hcl()));
    env.tf.apply().ok();
    let freight = publish(&env, "1.1.0").0;
    let stage_hcl = stage(&url, &edits(), "");
    env.tf.write_main(&format!(
        "{block}{}{stage_hcl}{}",
        Pipeline::new().hcl(),
        promotion(&freight, "")
    ));
    let out = env.tf.run(&["plan", "-no-color", "-out=e2e.tfplan"]).ok();
    assert!(
        out.flat().contains("Promotion preview unavailable") && out.flat().contains("- Stage \"dev\" does not exist in project \"shop\" yet (it may be created by this apply)."),
        "{}",
        out.all()
    );
    // The plan Terraform makes again at apply, with the stage there, previews it.
    assert_preview_left_to_apply(&env);
}

#[test]
fn previews_are_off_with_preview_false_or_the_provider_block() {
    let env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let stage_hcl = stage(&url, &edits(), "");
    let on = provider(&env, "");
    let freight = applied_stage(&env, &on, &stage_hcl);
    for (block, extra) in [
        (on.clone(), "preview = false"),
        (provider(&env, "enabled = false"), ""),
    ] {
        env.tf.write_main(&format!(
            "{block}{}{stage_hcl}{}",
            Pipeline::new().hcl(),
            promotion(&freight, extra)
        ));
        let after = planned(&env);
        assert_eq!(after["manifest_changes"], Json::Null, "{extra}");
        assert_eq!(after["preview_result"], Json::Null);
        assert_eq!(
            after["summary"].as_str().map(|s| s.starts_with("dev: ")),
            Some(true),
            "the plan still works"
        );
    }
    // Off, applied, then the next plan is empty.
    env.tf.apply().ok();
    env.tf.assert_no_changes();
}

/// Compares each planned file diff of `address` with the pushed commit `rev` of the served
/// repository `repo` (against its parent).
fn assert_pushed_as_planned(env: &Env, planned: &Json, repo: &str, rev: &str) {
    let bare = env.sandbox.git().repo_dir(repo).unwrap();
    let changes = planned["manifest_changes"].as_array().unwrap();
    let mut by_path: Vec<&Json> = changes.iter().collect();
    by_path.sort_by_key(|c| c["path"].as_str().unwrap());
    let listed: Vec<String> = by_path
        .iter()
        .map(|c| {
            let code = match c["action"].as_str().unwrap() {
                "modified" => "M",
                "added" => "A",
                _ => "D",
            };
            format!("{code}\t{}\n", c["path"].as_str().unwrap())
        })
        .collect();
    let parent = format!("{rev}~1");
    assert_eq!(
        git(
            &bare,
            &["diff", "--no-renames", "--name-status", &parent, rev]
        ),
        listed.concat()
    );
    for change in changes {
        let path = change["path"].as_str().unwrap();
        let pushed = git(
            &bare,
            &[
                "diff",
                "--no-renames",
                "--no-color",
                "-U3",
                &parent,
                rev,
                "--",
                path,
            ],
        );
        assert_eq!(
            hunks(change["diff"].as_str().unwrap()),
            hunks(&pushed),
            "{path}"
        );
    }
}

#[test]
fn a_task_with_vars_previews_like_the_pushed_commit_and_the_repository_is_fetched_once_per_plan() {
    let mut env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let block = provider(&env, "");
    let task = r#"
resource "kargo_promotion_task" "update" {
  project = kargo_project.p.name
  name    = "update"
  vars { name = "gitRepo" }
  vars { name = "imageRepo" }
  vars {
    name  = "branch"
    value = "main"
  }
  steps {
    uses   = "git-clone"
    as     = "clone"
    config = jsonencode({ repoURL = "$${{ vars.gitRepo }}", checkout = [{ branch = "$${{ vars.branch }}", path = "./src" }] })
  }
  steps {
    uses   = "kustomize-set-image"
    as     = "image"
    config = jsonencode({ path = "./src/base", images = [{ image = "$${{ vars.imageRepo }}", tag = "$${{ imageFrom(vars.imageRepo).Tag }}" }] })
  }
  steps {
    uses   = "json-update"
    as     = "json"
    config = jsonencode({ path = "./src/config.json", updates = [{ key = "version", value = "$${{ quote(imageFrom(vars.imageRepo).Tag) }}" }] })
  }
  steps {
    uses   = "git-commit"
    as     = "commit"
    config = jsonencode({ path = "./src", message = "$${{ task.outputs.image.commitMessage }}" })
  }
  steps {
    uses   = "git-push"
    config = jsonencode({ path = "./src" })
  }
}
"#;
    let dev = format!(
        r#"
resource "kargo_stage" "dev" {{
  project = kargo_project.p.name
  name    = "dev"
  requested_freight {{
    origin {{ name = kargo_warehouse.app.name }}
    sources {{ direct = true }}
  }}
  promotion_template {{
    steps {{
      task {{ name = kargo_promotion_task.update.name }}
      as = "update"
      vars {{
        name  = "gitRepo"
        value = "{url}"
      }}
      vars {{
        name  = "imageRepo"
        value = "ghcr.io/acme/app"
      }}
    }}
  }}
}}
"#
    );
    let qa = format!(
        "resource \"kargo_stage\" \"qa\" {{\n  project = kargo_project.p.name\n  name    = \"qa\"\n  requested_freight {{\n    origin {{ name = kargo_warehouse.app.name }}\n    sources {{ direct = true }}\n  }}\n  promotion_template {{\n{}{}{}{}  }}\n}}\n",
        step(
            "git-clone",
            "clone",
            &format!(
                r#"{{ repoURL = "{url}", checkout = [{{ branch = "main", path = "./out" }}] }}"#
            )
        ),
        step(
            "yaml-update",
            "values",
            r#"{ path = "./out/values.yaml", updates = [{ key = "image.tag", value = "$${{ imageFrom('ghcr.io/acme/app').Tag }}" }] }"#
        ),
        step(
            "git-commit",
            "commit",
            r#"{ path = "./out", message = "qa" }"#
        ),
        step(
            "git-push",
            "push",
            r#"{ path = "./out", targetBranch = "qa" }"#
        ),
    );
    let pipeline = format!("{block}{}{task}{dev}{qa}", Pipeline::new().hcl());
    env.tf.write_main(&pipeline);
    env.tf.apply().ok();
    let freight = publish(&env, "1.1.0").0;
    let qa_promotion = promotion(&freight, "")
        .replace("\"dev\"", "\"qa\"")
        .replace("kargo_stage.dev", "kargo_stage.qa");
    env.tf.write_main(&format!(
        "{pipeline}{}{qa_promotion}",
        promotion(&freight, "")
    ));

    env.tf.env("TF_LOG", "INFO");
    let out = env.tf.run(&["plan", "-out=e2e.tfplan"]).ok();
    assert_eq!(
        out.all()
            .matches("promotion preview fetched a Git repository")
            .count(),
        1,
        "one fetch of the repository for both promotions of the plan"
    );
    env.tf.env("TF_LOG", "");
    let plan: Json =
        serde_json::from_str(&env.tf.run(&["show", "-json", "e2e.tfplan"]).ok().stdout).unwrap();
    let dev_plan = planned_after(&plan, "kargo_promotion.dev").unwrap();
    let qa_plan = planned_after(&plan, "kargo_promotion.qa").unwrap();
    assert_eq!(
        dev_plan["preview_result"]["status"], "complete",
        "{dev_plan:#}"
    );
    assert_eq!(
        qa_plan["preview_result"]["status"], "complete",
        "{qa_plan:#}"
    );
    assert_eq!(
        qa_plan["manifest_changes"][0]["branch"], "qa",
        "the branch the promotion pushes to"
    );

    env.tf.run(&["apply", "e2e.tfplan"]).ok();
    assert_pushed_as_planned(&env, &dev_plan, "gitops", "main");
    assert_pushed_as_planned(&env, &qa_plan, "gitops", "qa");
    env.tf.assert_no_changes();
}

/// A Git credentials Secret as Kargo reads them (`repoURL`, optionally a regex).
fn kargo_git_secret(
    env: &Env,
    namespace: &str,
    name: &str,
    repo_url: &str,
    regex: bool,
    password: &str,
) {
    env.sandbox.with_txn(|txn| {
        if txn.get("", "namespaces", None, namespace).is_none() {
            txn.create(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            )
            .unwrap();
        }
        let mut data = json!({"repoURL": repo_url, "username": "kargo", "password": password});
        if regex {
            data["repoURLIsRegex"] = json!("true");
        }
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"kargo.akuity.io/cred-type": "git"}},
            "stringData": data});
        match txn.get("", "secrets", Some(namespace), name) {
            Some(old) => {
                let mut updated = secret.clone();
                updated["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                txn.update(updated).unwrap();
            }
            None => {
                txn.create(secret).unwrap();
            }
        }
    });
}

/// A Git configuration whose credential helper (`store`) answers `password` for the host of
/// `url`; returns its path for `GIT_CONFIG_GLOBAL`.
fn credential_helper_config(dir: &Path, url: &str, password: &str) -> String {
    let host = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap();
    let store = dir.join(format!("store-{password}"));
    std::fs::write(&store, format!("https://kargo:{password}@{host}\n")).unwrap();
    let config = dir.join(format!("gitconfig-{password}"));
    std::fs::write(
        &config,
        format!(
            "[credential]\n\thelper = store --file={}\n",
            store.display()
        ),
    )
    .unwrap();
    config.display().to_string()
}

#[test]
fn every_credential_source_opens_a_private_repository_and_refusals_name_the_source() {
    let mut env = Env::new();
    let scratch = tempfile::tempdir().unwrap();
    let empty_config = scratch.path().join("gitconfig-empty");
    std::fs::write(&empty_config, "").unwrap();
    env.tf.env("GIT_CONFIG_NOSYSTEM", "1");
    env.tf
        .env("GIT_CONFIG_GLOBAL", empty_config.to_str().unwrap());
    let auth = BasicAuth {
        username: "kargo".into(),
        password: "right-password".into(),
    };
    let url = manifests_repo(&env, "private", Some(auth));
    let stage_hcl = stage(&url, &edits(), "");
    let freight = applied_stage(&env, &provider(&env, ""), &stage_hcl);
    let write = |env: &Env, block: &str| {
        env.tf.write_main(&format!(
            "{block}{}{stage_hcl}{}",
            Pipeline::new().hcl(),
            promotion(&freight, "")
        ))
    };
    let no_helper = "git_credential_helper = false";

    // promotion_preview.git_credentials by regular expression.
    write(
        &env,
        &provider(
            &env,
            "git_credentials {\n      url_regex = \"/git/priv[a-z]+\\\\.git$\"\n      username = \"kargo\"\n      password = \"right-password\"\n    }",
        ),
    );
    let after = planned(&env);
    assert_eq!(
        after["preview_result"]["status"], "complete",
        "url_regex: {after:#}"
    );
    assert_eq!(after["manifest_changes"].as_array().unwrap().len(), 3);

    // The user's Git credential helper, asked when the host refuses anonymous access.
    let right_helper = credential_helper_config(scratch.path(), &url, "right-password");
    env.tf.env("GIT_CONFIG_GLOBAL", &right_helper);
    write(&env, &provider(&env, ""));
    let after = planned(&env);
    assert_eq!(
        after["preview_result"]["status"], "complete",
        "helper: {after:#}"
    );
    // ... and not asked when it is off.
    write(&env, &provider(&env, no_helper));
    let after = planned(&env);
    assert_eq!(
        after["preview_result"]["reasons"],
        json!([format!(
            "{url}/info/refs?service=git-upload-pack refused access (HTTP 401) with no credentials (no promotion_preview.git_credentials entry matches; Kargo's credential Secrets are not read (read_kargo_credentials is off); the Git credential helper is off)"
        )])
    );
    env.tf
        .env("GIT_CONFIG_GLOBAL", empty_config.to_str().unwrap());

    // Kargo's Secrets: a regex in the shared namespace...
    kargo_git_secret(
        &env,
        "kargo-shared-resources",
        "shared-git",
        r"^https://127\.0\.0\.1:[0-9]+/git/",
        true,
        "right-password",
    );
    let kargo_block = provider(
        &env,
        &format!("read_kargo_credentials = true\n    {no_helper}"),
    );
    write(&env, &kargo_block);
    let after = planned(&env);
    assert_eq!(
        after["preview_result"]["status"], "complete",
        "shared Secret: {after:#}"
    );
    // ... and the project's own Secret first, matched on the normalised URL: here wrong.
    let normalised = url
        .trim_end_matches(".git")
        .to_uppercase()
        .replace("HTTPS://", "https://");
    kargo_git_secret(
        &env,
        "shop",
        "private-repo",
        &normalised,
        false,
        "Wr0ng-kargo-secret",
    );
    env.tf.env("TF_LOG", "TRACE");
    let out = env.tf.run(&["plan", "-out=e2e.tfplan"]).ok();
    env.tf.env("TF_LOG", "");
    assert!(
        !out.all().contains("Wr0ng-kargo-secret"),
        "a Kargo Secret's password leaked at TF_LOG=TRACE"
    );
    assert!(
        !out.all().contains("right-password"),
        "a Kargo Secret's password leaked at TF_LOG=TRACE"
    );
    let shown: Json =
        serde_json::from_str(&env.tf.run(&["show", "-json", "e2e.tfplan"]).ok().stdout).unwrap();
    let after = planned_after(&shown, "kargo_promotion.dev").unwrap();
    assert_eq!(
        after["preview_result"]["reasons"],
        json!([format!(
            "{url}/info/refs?service=git-upload-pack refused access (HTTP 401) with credentials from Kargo's Secret shop/private-repo (username \"kargo\")"
        )])
    );

    // A wrong answer from the credential helper is named as the helper's.
    env.tf.env(
        "GIT_CONFIG_GLOBAL",
        &credential_helper_config(scratch.path(), &url, "Wr0ng-helper-secret"),
    );
    write(&env, &provider(&env, ""));
    env.tf.env("TF_LOG", "TRACE");
    let out = env.tf.run(&["plan", "-out=e2e.tfplan"]).ok();
    env.tf.env("TF_LOG", "");
    assert!(
        !out.all().contains("Wr0ng-helper-secret"),
        "the helper's password leaked at TF_LOG=TRACE"
    );
    let shown: Json =
        serde_json::from_str(&env.tf.run(&["show", "-json", "e2e.tfplan"]).ok().stdout).unwrap();
    let after = planned_after(&shown, "kargo_promotion.dev").unwrap();
    assert_eq!(
        after["preview_result"]["reasons"],
        json!([format!(
            "{url}/info/refs?service=git-upload-pack refused access (HTTP 401) with credentials from the Git credential helper (username \"kargo\")"
        )])
    );
    env.tf
        .env("GIT_CONFIG_GLOBAL", empty_config.to_str().unwrap());

    // The project's Secret put right: the preview uses it, and so does the promotion, whose
    // pushed commit is the planned diff.
    kargo_git_secret(
        &env,
        "shop",
        "private-repo",
        &normalised,
        false,
        "right-password",
    );
    write(&env, &kargo_block);
    let after = planned(&env);
    assert_eq!(
        after["preview_result"]["status"], "complete",
        "project Secret: {after:#}"
    );
    env.tf.apply().ok();
    assert_pushed_as_planned(&env, &after, "private", "main");
    let state = std::fs::read_to_string(env.tf.path().join("terraform.tfstate")).unwrap();
    assert!(
        !state.contains("right-password"),
        "no credential in the state"
    );
    env.tf.assert_no_changes();
}

#[test]
fn helm_update_chart_and_a_rendered_branch_from_copy_and_git_clear_push_what_was_planned() {
    let env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let bare = env.sandbox.git().repo_dir("gitops").unwrap();
    // An umbrella chart on main, and a branch of rendered manifests that is cleared and
    // written again on each promotion.
    let seed = tempfile::tempdir().unwrap();
    git(seed.path(), &["clone", "-q", bare.to_str().unwrap(), "w"]);
    let work = seed.path().join("w");
    std::fs::create_dir_all(work.join("chart")).unwrap();
    std::fs::write(
        work.join("chart/Chart.yaml"),
        "apiVersion: v2\nname: umbrella\nversion: 0.1.0\n# pinned dependencies\ndependencies:\n- name: app\n  repository: https://charts.example.com\n  version: 1.0.0\n- name: redis\n  repository: oci://registry.example.com/charts\n  version: \"18.1.0\"\n",
    )
    .unwrap();
    for (args, _) in [
        (vec!["add", "chart"], ()),
        (
            vec![
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
                "commit",
                "-qm",
                "chart",
            ],
            (),
        ),
        (vec!["push", "-q", "origin", "main"], ()),
        (vec!["push", "-q", "origin", "main:rendered"], ()),
    ] {
        git(&work, &args);
    }
    let block = provider(&env, "");
    let helm = step(
        "helm-update-chart",
        "chart",
        r#"{ path = "./out/chart", charts = [{ repository = "https://charts.example.com", name = "app", version = "2.0.0" }] }"#,
    );
    let rendered = format!(
        "resource \"kargo_stage\" \"qa\" {{\n  project = kargo_project.p.name\n  name    = \"qa\"\n  requested_freight {{\n    origin {{ name = kargo_warehouse.app.name }}\n    sources {{ direct = true }}\n  }}\n  promotion_template {{\n{}{}{}{}{}{}  }}\n}}\n",
        step(
            "git-clone",
            "clone",
            &format!(
                r#"{{ repoURL = "{url}", checkout = [{{ branch = "main", path = "./src" }}, {{ branch = "rendered", path = "./out" }}] }}"#
            )
        ),
        step("git-clear", "clear", r#"{ path = "./out" }"#),
        step(
            "copy",
            "copy",
            r#"{ inPath = "./src/base", outPath = "./out/$${{ ctx.stage }}" }"#
        ),
        step(
            "kustomize-set-image",
            "image",
            r#"{ path = "./out/$${{ ctx.stage }}", images = [{ image = "ghcr.io/acme/app", tag = "$${{ imageFrom('ghcr.io/acme/app').Tag }}" }] }"#
        ),
        step(
            "git-commit",
            "commit",
            r#"{ path = "./out", message = "render" }"#
        ),
        step("git-push", "push", r#"{ path = "./out" }"#),
    );
    let stage_hcl = stage(&url, &helm, "");
    let pipeline = format!("{block}{}{stage_hcl}{rendered}", Pipeline::new().hcl());
    env.tf.write_main(&pipeline);
    env.tf.apply().ok();
    let freight = publish(&env, "1.1.0").0;
    let qa = promotion(&freight, "")
        .replace("\"dev\"", "\"qa\"")
        .replace("kargo_stage.dev", "kargo_stage.qa");
    env.tf
        .write_main(&format!("{pipeline}{}{qa}", promotion(&freight, "")));
    let plan = env.tf.plan_json();
    let dev = planned_after(&plan, "kargo_promotion.dev").unwrap();
    let qa = planned_after(&plan, "kargo_promotion.qa").unwrap();
    assert_eq!(
        dev["preview_result"]["reasons"],
        json!([
            "helm-update-chart: Chart.lock and charts/ are not previewed (the preview does not run helm dependency update)"
        ])
    );
    assert_eq!(
        dev["manifest_changes"][0]["diff"],
        "--- a/chart/Chart.yaml\n+++ b/chart/Chart.yaml\n@@ -5,7 +5,7 @@\n dependencies:\n - name: app\n   repository: https://charts.example.com\n-  version: 1.0.0\n+  version: 2.0.0\n - name: redis\n   repository: oci://registry.example.com/charts\n   version: \"18.1.0\"\n"
    );
    assert_eq!(qa["preview_result"]["status"], "complete", "{qa:#}");
    let actions: Vec<(String, String)> = qa["manifest_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("values.yaml".into(), "deleted".into()))
            && actions.contains(&("qa/kustomization.yaml".into(), "added".into())),
        "git-clear removed the old files and copy added the rendered ones: {actions:?}"
    );
    assert!(
        qa["manifest_changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["branch"] == "rendered")
    );

    env.tf.apply().ok();
    assert_pushed_as_planned(&env, &dev, "gitops", "main");
    assert_pushed_as_planned(&env, &qa, "gitops", "rendered");
    env.tf.assert_no_changes();
}

#[test]
fn the_dokaseca_pipeline_previews_the_pull_request_it_then_opens() {
    let env = Env::new();
    let seed = tempfile::tempdir().unwrap();
    let settings = |version: &str| {
        format!(
            "{{\n  \"addonChartName\": \"rustfs\",\n  \"addonChartRepository\": \"https://charts.rustfs.com\",\n  \"addonChartVersion\": \"{version}\",\n  \"namespace\": \"rustfs\"\n}}\n"
        )
    };
    for place in ["environments/dev", "environments/stg", "regions/eu"] {
        let p = seed
            .path()
            .join(format!("configs/appsets/{place}/rustfs.json"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, settings("0.0.76")).unwrap();
    }
    let url = env
        .sandbox
        .git_create("dokaseca-addons", Some(seed.path()), "main", None)
        .unwrap();
    let theirs = include_str!("../real-world/dokaseca-rustfs.tf")
        .replace("https://github.com/thatmlopsguy/dokaseca-addons.git", &url);
    let block = provider(&env, "");
    env.tf.write_main(&format!("{block}{theirs}"));
    env.tf.apply().ok();
    let published = env
        .sandbox
        .control(
            "publish",
            &json!({"project": "rustfs-addon", "warehouse": "rustfs-charts",
                "charts": [{"repoURL": "https://charts.rustfs.com", "name": "rustfs", "version": "0.0.77"}]}),
        )
        .unwrap();
    let freight = published["name"].as_str().unwrap();
    // The promotion waits for its pull request to be merged, so the apply does not.
    env.tf.write_main(&format!(
        "{block}{theirs}\nresource \"kargo_promotion\" \"dev\" {{\n  project = kargo_project.rustfs.name\n  stage   = kargo_stage.rustfs[\"dev\"].name\n  freight = \"{freight}\"\n  wait    = false\n}}\n"
    ));
    let after = planned(&env);
    assert_eq!(
        after["preview_result"],
        json!({"status": "complete", "reasons": [], "actions": [
            format!("git-push: would push to a generated branch of {url}"),
            format!("git-open-pr: would open a pull request into main of {url}"),
        ]})
    );
    assert_eq!(
        after["manifest_changes"],
        json!([{
            "repo_url": url,
            "branch": "generated",
            "path": "configs/appsets/environments/dev/rustfs.json",
            "action": "modified",
            "diff": "--- a/configs/appsets/environments/dev/rustfs.json\n+++ b/configs/appsets/environments/dev/rustfs.json\n@@ -1,6 +1,6 @@\n {\n   \"addonChartName\": \"rustfs\",\n   \"addonChartRepository\": \"https://charts.rustfs.com\",\n-  \"addonChartVersion\": \"0.0.76\",\n+  \"addonChartVersion\": \"0.0.77\",\n   \"namespace\": \"rustfs\"\n }\n",
        }])
    );
    env.tf.apply().ok();
    let name = env.tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    let branch = format!("kargo/promotion/{name}");
    let mut opened = None;
    env.eventually(
        "the promotion's pull request",
        std::time::Duration::from_secs(60),
        |e| {
            opened = e
                .sandbox
                .git()
                .pull_requests(Some(&url))
                .into_iter()
                .find(|p| p.source_branch == branch);
            opened.is_some()
        },
    );
    let pr = opened.unwrap();
    assert_eq!(pr.target_branch, "main");
    assert_pushed_as_planned(&env, &after, "dokaseca-addons", &pr.head_commit);
    env.tf.assert_no_changes();
}

#[test]
fn helm_template_is_not_run_and_the_rest_of_the_preview_still_shows() {
    let env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let block = provider(&env, "");
    let middle = format!(
        "{}{}",
        step(
            "helm-template",
            "render",
            r#"{ path = "./out/chart", outPath = "./out/rendered.yaml", releaseName = "app" }"#
        ),
        edits()
    );
    let stage_hcl = stage(&url, &middle, "");
    let freight = applied_stage(&env, &block, &stage_hcl);
    env.tf.write_main(&format!(
        "{block}{}{stage_hcl}{}",
        Pipeline::new().hcl(),
        promotion(&freight, "")
    ));
    let after = planned(&env);
    assert_eq!(
        after["preview_result"]["reasons"],
        json!(["helm-template: needs Helm to render the chart (the preview renders no charts)"])
    );
    assert_eq!(after["preview_result"]["status"], "partial");
    let paths: Vec<&str> = after["manifest_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["base/kustomization.yaml", "config.json", "values.yaml"],
        "the steps that do not read its output still show"
    );
}

#[test]
fn a_git_host_that_never_answers_makes_the_preview_unavailable_within_the_timeout() {
    let env = Env::new();
    // A Git host that accepts connections and never answers; each connection is recorded.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, connections) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            let _ = accepted.send(());
            held.push(conn);
        }
    });
    let url = format!("http://127.0.0.1:{port}/git/hangs.git");
    let block = provider(&env, "timeout = \"2s\"");
    let stage_hcl = stage(&url, &edits(), "");
    let freight = applied_stage(&env, &block, &stage_hcl);
    env.tf.write_main(&format!(
        "{block}{}{stage_hcl}{}",
        Pipeline::new().hcl(),
        promotion(&freight, "")
    ));
    let started = std::time::Instant::now();
    let out = env.tf.run(&["plan", "-no-color", "-out=e2e.tfplan"]).ok();
    let took = started.elapsed();
    assert!(
        connections.try_recv().is_ok(),
        "the preview asked the Git host"
    );
    assert!(
        out.flat().contains("Promotion preview unavailable"),
        "{}",
        out.all()
    );
    assert!(
        took < std::time::Duration::from_secs(60),
        "the plan is bounded by the preview timeout: {took:?}"
    );
    let plan: Json =
        serde_json::from_str(&env.tf.run(&["show", "-json", "e2e.tfplan"]).ok().stdout).unwrap();
    let after = planned_after(&plan, "kargo_promotion.dev").unwrap();
    assert_eq!(
        after["preview_result"],
        json!({"status": "unavailable", "actions": [], "reasons": [format!(
            "fetching {url}/info/refs?service=git-upload-pack did not finish within promotion_preview.timeout"
        )]})
    );
}

#[test]
fn an_unreachable_cluster_leaves_the_preview_to_the_plan_made_at_apply() {
    let env = Env::new();
    let url = manifests_repo(&env, "gitops", None);
    let block = provider(&env, "");
    let stage_hcl = stage(&url, &edits(), "");
    let freight = applied_stage(&env, &block, &stage_hcl);
    env.tf.write_main(&format!(
        "{block}{}{stage_hcl}{}",
        Pipeline::new().hcl(),
        promotion(&freight, "")
    ));
    env.sandbox
        .inject_fault(kargo_sandbox::HttpFault::refuse(
            std::time::Duration::from_secs(300),
        ))
        .unwrap();
    let out = env.tf.run(&["plan", "-no-color", "-out=e2e.tfplan"]).ok();
    env.sandbox.clear_faults().unwrap();
    assert!(
        out.flat().contains("Promotion preview unavailable"),
        "{}",
        out.all()
    );
    // With the cluster back, the plan made at apply previews the promotion.
    assert_preview_left_to_apply(&env);
}

#[test]
fn previews_run_concurrently_across_promotions_but_no_more_than_two_at_once() {
    use std::io::Read as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = Env::new();
    // A Git host that never answers and counts the connections open at once: each preview
    // holds one until its timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (closed, closings) = std::sync::mpsc::channel();
    {
        let (open, most) = (open.clone(), most.clone());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let (open, closed) = (open.clone(), closed.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = closed.send(());
                });
            }
        });
    }
    let block = provider(&env, "timeout = \"2s\"");
    let mut hcl = format!("{block}{}", Pipeline::new().hcl());
    let stages = ["s1", "s2", "s3", "s4"];
    for name in stages {
        hcl.push_str(
            &stage(
                &format!("http://127.0.0.1:{port}/git/{name}.git"),
                &edits(),
                "",
            )
            .replace("\"dev\"", &format!("\"{name}\"")),
        );
    }
    env.tf.write_main(&hcl);
    env.tf.apply().ok();
    let freight = publish(&env, "1.1.0").0;
    for name in stages {
        hcl.push_str(
            &promotion(&freight, "")
                .replace("\"dev\"", &format!("\"{name}\""))
                .replace("kargo_stage.dev", &format!("kargo_stage.{name}")),
        );
    }
    env.tf.write_main(&hcl);
    let plan = env.tf.plan_json();
    for name in stages {
        let after = planned_after(&plan, &format!("kargo_promotion.{name}")).unwrap();
        assert_eq!(after["preview_result"]["status"], "unavailable", "{name}");
    }
    // Every preview asked its host and gave up: four connections opened and closed.
    for _ in stages {
        closings
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a preview's connection closed");
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "previews overlap (Terraform plans the promotions in parallel) within the bound"
    );
}

/// The saved plan `e2e.tfplan` leaves the preview of `kargo_promotion.dev` to the plan Terraform
/// makes again at apply (a known value could not be kept by it); that apply previews the
/// promotion completely (its three files), and the next plan is empty.
fn assert_preview_left_to_apply(env: &Env) {
    let plan: Json =
        serde_json::from_str(&env.tf.run(&["show", "-json", "e2e.tfplan"]).ok().stdout).unwrap();
    let change = plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "kargo_promotion.dev")
        .unwrap()["change"]
        .clone();
    assert_eq!(
        change["after_unknown"]["manifest_changes"], true,
        "known only at apply"
    );
    assert_eq!(change["after_unknown"]["preview_result"], true);
    env.tf.apply().ok();
    let state = env.tf.resource("kargo_promotion.dev");
    assert_eq!(state["preview_result"]["status"], "complete", "{state:#}");
    assert_eq!(state["manifest_changes"].as_array().unwrap().len(), 3);
    env.tf.assert_no_changes();
}
