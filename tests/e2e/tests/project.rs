//! kargo_project end to end: the real terraform binary against a fresh sandbox.

use kargo_e2e::{At, Diagnostic, Env, Output, Transport, actions, planned_actions, planned_after};
use kargo_sandbox::HttpFault;
use serde_json::json;

kargo_e2e::over_both_transports!(
    project_lifecycle_apply_update_replace_import_destroy,
    out_of_band_label_change_shows_as_drift,
    webhook_receivers_and_links_apply_publish_urls_update_and_import,
    every_combination_of_project_config_lists_applies_to_an_empty_plan
);

/// Plans after an out-of-band change and asserts the plan shows it; returns the plan output.
#[track_caller]
fn plan_shows_drift(env: &Env) -> Output {
    let out = env.tf.plan_code();
    assert_eq!(out.code, 2, "drift must show in the plan:\n{}", out.all());
    out
}

/// Makes every write of a ProjectConfig fail with 503 until the faults are cleared.
fn fail_project_config_writes(env: &Env) {
    env.sandbox
        .inject_fault(
            HttpFault::unavailable()
                .verb("patch")
                .resource("projectconfigs"),
        )
        .expect("inject fault");
}

/// Applies, expecting the ProjectConfig write to fail and the error to say so.
#[track_caller]
fn apply_fails_to_write_project_config(env: &Env) {
    let out = env.tf.apply().failed();
    assert!(
        out.flat()
            .contains("Failed to write the project's ProjectConfig"),
        "{}",
        out.all()
    );
}

fn project_lifecycle_apply_update_replace_import_destroy(transport: Transport) {
    let env = Env::over(transport);
    env.config(
        r#"
resource "kargo_project" "p" {
  name   = "guestbook"
  labels = { team = "platform" }
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "dev" }
  }
}
"#,
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    let project = env
        .get("projects", None, "guestbook")
        .expect("project exists in the sandbox");
    assert_eq!(project["metadata"]["labels"]["team"], "platform");
    let ns = env
        .get("namespaces", None, "guestbook")
        .expect("Kargo created the project namespace");
    assert_eq!(ns["metadata"]["labels"]["kargo.akuity.io/project"], "true");
    let pc = env
        .get("projectconfigs", Some("guestbook"), "guestbook")
        .expect("policies live in the ProjectConfig");
    assert_eq!(
        pc["spec"]["promotionPolicies"][0]["stageSelector"]["name"],
        "dev"
    );
    assert_eq!(
        pc["spec"]["promotionPolicies"][0]["autoPromotionEnabled"],
        true
    );
    let state = env.tf.resource("kargo_project.p");
    assert_eq!(state["namespace"], "guestbook");
    assert_eq!(state["ready"], true);
    assert_eq!(state["id"], "guestbook");

    // In-place update: labels and policies change, nothing is replaced.
    env.config(
        r#"
resource "kargo_project" "p" {
  name   = "guestbook"
  labels = { team = "apps" }
}
"#,
    );
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_project.p"),
        actions(&["update"])
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("projects", None, "guestbook").unwrap()["metadata"]["labels"]["team"],
        "apps"
    );
    assert!(
        env.get("projectconfigs", Some("guestbook"), "guestbook")
            .is_none(),
        "dropping the policies removes the ProjectConfig"
    );

    // Rename: replaced.
    env.config(
        r#"
resource "kargo_project" "p" {
  name   = "guestbook2"
  labels = { team = "apps" }
}
"#,
    );
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_project.p"),
        actions(&["delete", "create"])
    );
    env.tf.apply().ok();
    assert!(
        env.get("projects", None, "guestbook").is_none(),
        "old project deleted"
    );
    assert!(
        env.get("namespaces", None, "guestbook").is_none(),
        "old namespace deleted"
    );
    assert!(env.get("projects", None, "guestbook2").is_some());
    env.tf.assert_no_changes();

    // Import round trip: forget it, adopt it with an import block, expect an empty plan.
    env.import_round_trip(
        "kargo_project.p",
        "guestbook2",
        r#"
resource "kargo_project" "p" {
  name   = "guestbook2"
  labels = { team = "apps" }
}
"#,
    );

    env.destroy_and_assert_gone("guestbook2", &[]);
}

fn out_of_band_label_change_shows_as_drift(transport: Transport) {
    let env = Env::over(transport);
    env.config(
        r#"
resource "kargo_project" "p" {
  name   = "drift"
  labels = { team = "a" }
}
"#,
    );
    env.tf.apply().ok();
    env.sandbox.with_txn(|txn| {
        let mut p = txn.get(KARGO_GROUP, "projects", None, "drift").unwrap();
        p["metadata"]["labels"]["team"] = json!("changed");
        txn.update(p).unwrap();
    });
    let out = plan_shows_drift(&env);
    assert!(
        out.stdout.contains("\"changed\" -> \"a\""),
        "plan names the drifted value:\n{}",
        out.stdout
    );
}

const KARGO_GROUP: &str = "kargo.akuity.io";

#[test]
fn invalid_name_is_rejected_at_plan_on_the_attribute() {
    let env = Env::new();
    env.config(r#"resource "kargo_project" "p" { name = "Not_A_Label" }"#);
    let out = env.tf.run(&["plan"]).failed();
    out.assert_error(
        "kargo_project.p",
        &[
            "Invalid name",
            "\"Not_A_Label\" is not a valid DNS-1123 label",
        ],
    );
    env.assert_no_requests("validation needs no cluster");
}

#[test]
fn namespace_without_the_project_label_is_refused_with_the_label_to_add() {
    let env = Env::new();
    env.sandbox.with_txn(|txn| {
        txn.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "taken"}}))
            .unwrap();
    });
    env.config(r#"resource "kargo_project" "p" { name = "taken" }"#);
    let out = env.tf.apply().failed();
    assert!(
        out.stderr.contains("kargo.akuity.io/project=true"),
        "{}",
        out.stderr
    );

    // Labelled, the namespace is adopted.
    env.sandbox.with_txn(|txn| {
        let mut ns = txn.get("", "namespaces", None, "taken").unwrap();
        ns["metadata"]["labels"] = json!({"kargo.akuity.io/project": "true"});
        txn.update(ns).unwrap();
    });
    env.tf.apply().ok();
    env.tf.assert_no_changes();
}

const RECEIVERS: &str = r#"
resource "kargo_project" "p" {
  name = "hooks"
  webhook_receivers {
    name = "github"
    github {
      secret_ref { name = "gh" }
    }
  }
  webhook_receivers {
    name = "hub"
    dockerhub {
      secret_ref { name = "hub" }
    }
  }
  webhook_receivers {
    name = "jfrog"
    artifactory {
      virtual_repo_name = "proj-virtual"
      secret_ref { name = "jfrog" }
    }
  }
  webhook_receivers {
    name = "ci"
    generic {
      secret_ref { name = "ci" }
      actions {
        when_expression = "request.header('X-Event-Type') == 'push'"
        parameters      = { source = "$${{ request.body.source }}" }
        target_selection_criteria { name = "$${{ request.body.warehouse }}" }
        target_selection_criteria {
          label_selector {
            match_expressions {
              key      = "team"
              operator = "In"
              values   = ["shop"]
            }
          }
          index_selector {
            match_indices {
              key      = "subscribedURLs"
              operator = "Equals"
              value    = "$${{ normalizeGit(request.body.repo) }}"
            }
          }
        }
      }
    }
  }
  freight_links {
    title = "Build"
    url   = "https://ci.example.com/{{ .freight.metadata.name }}"
  }
  stage_links {
    title       = "Dashboard"
    url         = "https://grafana.example.com/d/{{ .stage.metadata.name }}"
    description = "Service dashboard"
    if          = "stage.metadata.name != 'dev'"
  }
}

output "github_url" {
  value     = kargo_project.p.webhook_receiver_urls["github"]
  sensitive = true
}
"#;

fn receiver_secrets() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("gh", "secret", "s3cr3t"),
        ("hub", "secret", "hub-token"),
        ("jfrog", "secret-token", "jfrog-token"),
        ("ci", "secret", "ci-token"),
        ("gl", "secret-token", "gitlab-token"),
    ]
}

/// `status.webhookReceivers` of the sandbox's ProjectConfig as name → url.
fn published_urls(env: &Env, project: &str) -> std::collections::BTreeMap<String, String> {
    let pc = env
        .get("projectconfigs", Some(project), project)
        .expect("ProjectConfig exists");
    pc["status"]["webhookReceivers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["url"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn webhook_receivers_and_links_apply_publish_urls_update_and_import(transport: Transport) {
    let env = Env::over(transport);
    env.project_namespace("hooks", &receiver_secrets());
    env.config(RECEIVERS);
    let out = env.tf.apply().ok();
    assert!(
        !out.all().contains("without a URL"),
        "every Secret exists, so no warning:\n{}",
        out.all()
    );
    env.tf.assert_no_changes();

    let pc = env
        .get("projectconfigs", Some("hooks"), "hooks")
        .expect("receivers live in the ProjectConfig");
    let spec = &pc["spec"];
    assert_eq!(
        spec["webhookReceivers"][0],
        json!({"name": "github", "github": {"secretRef": {"name": "gh"}}})
    );
    assert_eq!(
        spec["webhookReceivers"][2]["artifactory"],
        json!({"secretRef": {"name": "jfrog"}, "virtualRepoName": "proj-virtual"})
    );
    assert_eq!(
        spec["webhookReceivers"][3]["generic"]["actions"][0],
        json!({
            "action": "Refresh",
            "whenExpression": "request.header('X-Event-Type') == 'push'",
            "parameters": {"source": "${{ request.body.source }}"},
            "targetSelectionCriteria": [
                {"kind": "Warehouse", "name": "${{ request.body.warehouse }}"},
                {"kind": "Warehouse",
                 "labelSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["shop"]}]},
                 "indexSelector": {"matchIndices": [{"key": "subscribedURLs", "operator": "Equals", "value": "${{ normalizeGit(request.body.repo) }}"}]}},
            ],
        })
    );
    assert_eq!(
        spec["freightLinks"],
        json!([{"title": "Build", "url": "https://ci.example.com/{{ .freight.metadata.name }}"}])
    );
    assert_eq!(
        spec["stageLinks"][0]["if"], "stage.metadata.name != 'dev'",
        "{spec}"
    );

    // The URLs in state are the ones Kargo published.
    let published = published_urls(&env, "hooks");
    assert_eq!(published.len(), 4, "{published:?}");
    assert!(
        published["github"].starts_with("https://kargo-webhooks.sandbox.local/github/"),
        "{published:?}"
    );
    let state = env.tf.resource("kargo_project.p");
    for (i, name) in ["github", "hub", "jfrog", "ci"].iter().enumerate() {
        assert_eq!(state["webhook_receivers"][i]["url"], published[*name]);
        assert_eq!(state["webhook_receiver_urls"][*name], published[*name]);
        assert!(
            published[*name].ends_with(state["webhook_receivers"][i]["path"].as_str().unwrap()),
            "path is the URL's path"
        );
    }
    let output = env.tf.run(&["output", "-raw", "github_url"]).ok();
    assert_eq!(output.stdout, published["github"]);

    // Update: a receiver added and one removed; the untouched ones keep their URLs in the
    // plan, the new one is known after apply.
    let hub = "    name = \"hub\"\n    dockerhub {\n      secret_ref { name = \"hub\" }";
    assert!(RECEIVERS.contains(hub), "{RECEIVERS}");
    let updated = RECEIVERS.replace(
        hub,
        "    name = \"gitlab\"\n    gitlab {\n      secret_ref { name = \"gl\" }",
    );
    env.config(&updated);
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_project.p"),
        actions(&["update"])
    );
    let after = planned_after(&plan, "kargo_project.p").expect("planned");
    assert_eq!(after["webhook_receivers"][0]["url"], published["github"]);
    assert_eq!(
        after["webhook_receiver_urls"]["github"],
        published["github"]
    );
    let unknown = plan["resource_changes"][0]["change"]["after_unknown"].clone();
    assert_eq!(
        unknown["webhook_receivers"][1]["url"], true,
        "the new receiver's URL is known after apply: {unknown}"
    );
    assert_eq!(
        unknown["webhook_receiver_urls"]["gitlab"], true,
        "{unknown}"
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let published = published_urls(&env, "hooks");
    assert_eq!(
        published.keys().collect::<Vec<_>>(),
        vec!["ci", "github", "gitlab", "jfrog"]
    );
    let state = env.tf.resource("kargo_project.p");
    assert_eq!(
        state["webhook_receiver_urls"]["gitlab"],
        published["gitlab"]
    );
    assert!(
        published["gitlab"].starts_with("https://kargo-webhooks.sandbox.local/gitlab/"),
        "{published:?}"
    );

    // Import round trip: everything, URLs included, comes back from the ProjectConfig.
    env.import_round_trip("kargo_project.p", "hooks", &updated);
    let imported = env.tf.resource("kargo_project.p");
    assert_eq!(
        imported["webhook_receiver_urls"],
        state["webhook_receiver_urls"]
    );
    assert_eq!(imported["stage_links"], state["stage_links"]);

    env.destroy_and_assert_gone("hooks", &[]);
}

/// One receiver of each type Kargo knows, as (type, receiver name, Secret, data key the type
/// reads its token from).
const EVERY_RECEIVER_TYPE: [(&str, &str, &str, &str); 10] = [
    ("github", "gh", "gh-secret", "secret"),
    ("gitlab", "gl", "gl-secret", "secret-token"),
    ("bitbucket", "bb", "bb-secret", "secret"),
    ("dockerhub", "hub", "hub-secret", "secret"),
    ("quay", "quay", "quay-secret", "secret"),
    ("harbor", "harbor", "harbor-secret", "auth-header"),
    ("artifactory", "jfrog", "jfrog-secret", "secret-token"),
    ("azure", "acr", "acr-secret", "secret"),
    ("gitea", "gitea", "gitea-secret", "secret"),
    ("generic", "ci", "ci-secret", "secret"),
];

#[test]
fn every_receiver_type_round_trips_with_the_url_kargo_publishes() {
    let env = Env::new();
    let secrets: Vec<(&str, &str, &str)> = EVERY_RECEIVER_TYPE
        .iter()
        .map(|(kind, _, secret, key)| (*secret, *key, *kind))
        .collect();
    env.project_namespace("every", &secrets);
    let receivers: Vec<String> = EVERY_RECEIVER_TYPE
        .iter()
        .map(|(kind, name, secret, _)| {
            format!("  webhook_receivers {{\n    name = \"{name}\"\n    {kind} {{\n      secret_ref {{ name = \"{secret}\" }}\n    }}\n  }}")
        })
        .collect();
    let config = format!(
        "resource \"kargo_project\" \"p\" {{\n  name = \"every\"\n{}\n}}\n",
        receivers.join("\n")
    );
    env.config(&config);
    let out = env.tf.apply().ok();
    assert!(
        !out.all().contains("without a URL"),
        "every Secret holds the key its type reads, so no warning:\n{}",
        out.all()
    );
    env.tf.assert_no_changes();

    let pc = env
        .get("projectconfigs", Some("every"), "every")
        .expect("receivers live in the ProjectConfig");
    let published = published_urls(&env, "every");
    let state = env.tf.resource("kargo_project.p");
    for (i, (kind, name, secret, _)) in EVERY_RECEIVER_TYPE.iter().enumerate() {
        assert_eq!(
            pc["spec"]["webhookReceivers"][i],
            json!({"name": name, *kind: {"secretRef": {"name": secret}}})
        );
        let url = published
            .get(*name)
            .unwrap_or_else(|| panic!("Kargo published no URL for {name}: {published:?}"));
        assert!(
            url.starts_with(&format!("https://kargo-webhooks.sandbox.local/{kind}/")),
            "{url}"
        );
        assert_eq!(state["webhook_receivers"][i]["url"], *url, "{kind}");
        assert_eq!(state["webhook_receiver_urls"][*name], *url, "{kind}");
        assert_eq!(
            state["webhook_receivers"][i][*kind]["secret_ref"]["name"],
            *secret
        );
    }
    assert_eq!(published.len(), EVERY_RECEIVER_TYPE.len(), "{published:?}");

    // Import: every type reads back from Kargo's spelling into the same state.
    env.import_round_trip("kargo_project.p", "every", &config);
    let imported = env.tf.resource("kargo_project.p");
    assert_eq!(imported["webhook_receivers"], state["webhook_receivers"]);
    assert_eq!(
        imported["webhook_receiver_urls"],
        state["webhook_receiver_urls"]
    );

    env.destroy_and_assert_gone("every", &[]);
}

#[test]
fn a_receiver_whose_secret_is_missing_warns_and_its_url_arrives_with_the_secret() {
    let env = Env::new();
    env.config(
        r#"
resource "kargo_project" "p" {
  name = "later"
  webhook_receivers {
    name = "ghcr"
    github {
      secret_ref { name = "gh-webhook" }
    }
  }
}
"#,
    );
    let out = env.tf.apply().ok();
    let text = out.flat();
    assert!(
        text.contains("Webhook receivers without a URL")
            && text.contains("\"ghcr\"")
            && text.contains("github reads `secret`"),
        "the warning names the receiver and the data key: {text}"
    );
    assert!(
        text.contains("gh-webhook"),
        "Kargo's reason is passed on: {text}"
    );
    let state = env.tf.resource("kargo_project.p");
    assert!(state["webhook_receivers"][0]["url"].is_null(), "{state}");
    assert_eq!(
        state["webhook_receiver_urls"],
        json!({"ghcr": null}),
        "the key is there, so references to it keep working"
    );
    env.tf.assert_no_changes();

    // The Secret arrives (e.g. from kubernetes_secret, which needs the namespace first).
    env.secret("later", "gh-webhook", "secret", "s3cr3t");
    env.eventually(
        "Kargo to publish the URL",
        std::time::Duration::from_secs(10),
        |env| published_urls(env, "later").contains_key("ghcr"),
    );
    env.tf.assert_no_changes();
    env.tf
        .run(&["apply", "-refresh-only", "-auto-approve"])
        .ok();
    let state = env.tf.resource("kargo_project.p");
    assert_eq!(
        state["webhook_receivers"][0]["url"],
        published_urls(&env, "later")["ghcr"]
    );
    env.tf.assert_no_changes();
}

#[test]
fn out_of_band_changes_to_receivers_and_links_show_and_only_declared_lists_are_owned() {
    let env = Env::new();
    env.project_namespace("owned", &[("gh", "secret", "x")]);
    env.config(
        r#"
resource "kargo_project" "p" {
  name = "owned"
  webhook_receivers {
    name = "github"
    github {
      secret_ref { name = "gh" }
    }
  }
  stage_links {
    title = "Logs"
    url   = "https://logs.example.com/{{ .stage.metadata.name }}"
  }
}
"#,
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    // Someone edits the link and the receiver, and adds freight links, by hand.
    env.sandbox.with_txn(|txn| {
        let mut pc = txn
            .get(KARGO_GROUP, "projectconfigs", Some("owned"), "owned")
            .unwrap();
        pc["spec"]["stageLinks"][0]["title"] = json!("Edited");
        pc["spec"]["webhookReceivers"][0]["github"]["secretRef"]["name"] = json!("other");
        pc["spec"]["freightLinks"] = json!([{"title": "Theirs", "url": "https://example.com"}]);
        txn.update(pc).unwrap();
    });
    let out = plan_shows_drift(&env);
    assert!(
        out.stdout.contains("\"Edited\" -> \"Logs\"") && out.stdout.contains("\"other\" -> \"gh\""),
        "plan names the drifted values:\n{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("Theirs"),
        "lists this configuration does not declare are not its business:\n{}",
        out.stdout
    );
    // A hand edit is drift: apply takes the declared fields back from its author.
    let forced = env
        .provider_block()
        .replace("config_path = ", "force_conflicts = true\n  config_path = ");
    let config = std::fs::read_to_string(env.tf.path().join("main.tf")).expect("main.tf");
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    env.tf
        .write_main(&config.replace(&env.provider_block(), &forced));
    env.tf.assert_no_changes();
    let pc = env.get("projectconfigs", Some("owned"), "owned").unwrap();
    assert_eq!(pc["spec"]["stageLinks"][0]["title"], "Logs");
    assert_eq!(
        pc["spec"]["webhookReceivers"][0]["github"]["secretRef"]["name"],
        "gh"
    );

    // Removing every ProjectConfig list releases them; what others set stays.
    env.tf.write_main(&format!(
        "{forced}\nresource \"kargo_project\" \"p\" {{\n  name = \"owned\"\n}}\n"
    ));
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let pc = env
        .get("projectconfigs", Some("owned"), "owned")
        .expect("the ProjectConfig still holds someone else's links");
    assert_eq!(
        pc["spec"],
        json!({"freightLinks": [{"title": "Theirs", "url": "https://example.com"}]})
    );
    let state = env.tf.resource("kargo_project.p");
    assert!(state["webhook_receiver_urls"].is_null(), "{state}");
}

#[test]
fn invalid_receivers_and_links_are_rejected_at_plan_on_their_attributes() {
    let env = Env::new();
    env.config(
        r#"
resource "kargo_project" "p" {
  name = "bad"
  webhook_receivers {
    name = "dup"
    github {
      secret_ref { name = "gh" }
    }
  }
  webhook_receivers {
    name = "dup"
    quay {
      secret_ref { name = "q" }
    }
  }
  webhook_receivers {
    name = "two"
    github {
      secret_ref { name = "gh" }
    }
    gitlab {
      secret_ref { name = "gl" }
    }
  }
  webhook_receivers { name = "none" }
  webhook_receivers {
    name = "Not_DNS"
    harbor {
      secret_ref { name = "h" }
    }
  }
  webhook_receivers {
    name = "gen"
    generic {
      secret_ref { name = "g" }
      actions {
        action = "Sync"
        target_selection_criteria {
          kind = "Promotion"
          name = "x"
        }
        target_selection_criteria {
          label_selector {}
        }
        target_selection_criteria {
          index_selector {
            match_indices {
              key      = "repoURL"
              operator = "Equal"
              value    = "v"
            }
          }
        }
      }
    }
  }
  freight_links {
    title = ""
    url   = "https://example.com"
  }
}
"#,
    );
    let out = env.tf.run(&["plan"]).failed();
    let text = out.flat();
    for expected in [
        "`webhook_receivers[1].name`: \"dup\" is already the name of webhook_receivers[0]",
        "`webhook_receivers[2]`: Only one of \"github\", \"gitlab\", \"bitbucket\"",
        "\"github\", \"gitlab\" are set",
        "`webhook_receivers[3]`: Exactly one of",
        "`webhook_receivers[5].generic.actions[0].action` is \"Sync\"; allowed values are \"Refresh\"",
        "`webhook_receivers[5].generic.actions[0].target_selection_criteria[0].kind` is \"Promotion\"",
        "`webhook_receivers[5].generic.actions[0].target_selection_criteria[1]`: Set `name`, `label_selector` or `index_selector`",
        "match_indices[0].key` is \"repoURL\"; allowed values are \"subscribedURLs\", \"receiverPaths\"",
        "match_indices[0].operator` is \"Equal\"; allowed values are \"Equals\", \"NotEquals\"",
        "`freight_links[0].title` must not be empty",
        "`webhook_receivers[4].name`: \"Not_DNS\" is not a valid DNS-1123 subdomain",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    env.assert_no_requests("validation needs no cluster");
}

fn every_combination_of_project_config_lists_applies_to_an_empty_plan(transport: Transport) {
    let env = Env::over(transport);
    env.project_namespace("combo", &[("gh", "secret", "x")]);
    let policies = r#"promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "dev" }
  }"#;
    let receivers = r#"webhook_receivers {
    name = "gh"
    github {
      secret_ref { name = "gh" }
    }
  }"#;
    let freight = r#"freight_links {
    title = "F"
    url   = "https://f.example.com"
  }"#;
    let stage = r#"stage_links {
    title = "S"
    url   = "https://s.example.com"
    if    = "true"
  }"#;
    let lists = [
        ("promotionPolicies", policies),
        ("webhookReceivers", receivers),
        ("freightLinks", freight),
        ("stageLinks", stage),
    ];
    // Every subset, in an order where each step adds and removes lists.
    for mask in [
        0b0001, 0b0110, 0b1111, 0b1000, 0b0101, 0b0010, 0b1010, 0b0000, 0b0111,
    ] {
        let declared: Vec<&(&str, &str)> = lists
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, l)| l)
            .collect();
        let body: Vec<&str> = declared.iter().map(|(_, hcl)| *hcl).collect();
        env.config(&format!(
            "resource \"kargo_project\" \"p\" {{\n  name = \"combo\"\n  {}\n}}\n",
            body.join("\n  ")
        ));
        env.tf.apply().ok();
        env.tf.assert_no_changes();
        let keys: Vec<String> = env
            .get("projectconfigs", Some("combo"), "combo")
            .map(|pc| {
                pc["spec"]
                    .as_object()
                    .map(|spec| spec.keys().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let mut expected: Vec<String> = declared.iter().map(|(k, _)| k.to_string()).collect();
        expected.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, expected, "lists declared: {mask:04b}");
        let state = env.tf.resource("kargo_project.p");
        assert_eq!(
            state["webhook_receiver_urls"].is_null(),
            mask & 0b0010 == 0,
            "{state}"
        );
    }
    assert!(
        env.get("projectconfigs", Some("combo"), "combo").is_some(),
        "the last step declares lists again"
    );
}

#[test]
fn a_failed_project_config_write_is_reported_and_retried_by_the_next_apply() {
    let env = Env::new();
    let links = r#"
resource "kargo_project" "p" {
  name = "flaky"
  stage_links {
    title = "Logs"
    url   = "https://logs.example.com"
  }
}
"#;
    // Create: the project exists but its ProjectConfig cannot be written.
    fail_project_config_writes(&env);
    env.config(links);
    apply_fails_to_write_project_config(&env);
    assert!(env.get("projects", None, "flaky").is_some());
    assert!(
        env.tf.state_list().contains(&"kargo_project.p".to_string()),
        "the project that exists stays in state"
    );
    env.sandbox.clear_faults().expect("clear faults");
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("projectconfigs", Some("flaky"), "flaky").unwrap()["spec"]["stageLinks"][0]["title"],
        "Logs"
    );

    // Update of both objects: the Project is written, the ProjectConfig is not. The state
    // records exactly that, so only the link is still to do.
    fail_project_config_writes(&env);
    env.config(&links.replace("\"Logs\"", "\"Logs (all stages)\"").replace(
        "name = \"flaky\"",
        "name = \"flaky\"\n  labels = { team = \"payments\" }",
    ));
    apply_fails_to_write_project_config(&env);
    assert_eq!(
        env.get("projects", None, "flaky").unwrap()["metadata"]["labels"]["team"],
        "payments",
        "the Project was written"
    );
    let state = env.tf.resource("kargo_project.p");
    assert_eq!(state["labels"], json!({"team": "payments"}), "{state}");
    assert_eq!(state["stage_links"][0]["title"], "Logs", "{state}");
    let out = env.tf.plan_code();
    assert_eq!(out.code, 2, "the change is still to do:\n{}", out.all());
    assert!(
        out.stdout.contains("\"Logs\" -> \"Logs (all stages)\"") && !out.stdout.contains("team"),
        "only the ProjectConfig's change is left:\n{}",
        out.stdout
    );
    env.sandbox.clear_faults().expect("clear faults");
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("projectconfigs", Some("flaky"), "flaky").unwrap()["spec"]["stageLinks"][0]["title"],
        "Logs (all stages)"
    );
}

/// A project with one promotion policy per stage in `policies` (`(stage, auto_promotion)`).
fn project_with_policies(name: &str, policies: &[(&str, bool)]) -> String {
    let blocks: String = policies
        .iter()
        .map(|(stage, auto)| {
            format!(
                "  promotion_policies {{\n    auto_promotion_enabled = {auto}\n    stage_selector {{ name = \"{stage}\" }}\n  }}\n"
            )
        })
        .collect();
    format!("resource \"kargo_project\" \"p\" {{\n  name = \"{name}\"\n{blocks}}}\n")
}

#[test]
fn a_project_config_update_kargo_refuses_is_reported_at_plan_on_its_block() {
    let env = Env::new();
    env.config(&project_with_policies("policies", &[("dev", true)]));
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let before = env
        .get("projectconfigs", Some("policies"), "policies")
        .unwrap();

    // A second policy for the same stage: the provider's checks and the CRD schema let it
    // through, Kargo's ProjectConfig webhook does not.
    env.config(&project_with_policies(
        "policies",
        &[("dev", true), ("dev", false)],
    ));
    env.tf.run(&["validate"]).ok();
    env.sandbox.reset_requests();
    let out = env.tf.run(&["plan", "-json"]).failed();
    assert_eq!(
        out.json_diagnostics_at(),
        vec![(
            Diagnostic {
                severity: "error".into(),
                address: "kargo_project.p".into(),
                summary: "Failed to write the project's ProjectConfig (server-side dry run)".into(),
                detail: "ProjectConfig \"policies/policies\" was rejected by the cluster: \
                         admission webhook \"projectconfig.kargo.akuity.io\" denied the request: \
                         ProjectConfig.kargo.akuity.io \"policies\" is invalid: \
                         spec.promotionPolicies[1]: Invalid value: \"dev\": stage name already \
                         defined at spec.promotionPolicies[0]"
                    .into(),
            },
            // The second policy's stage name.
            At::nth(env.tf.path(), "main.tf", "\"dev\"", 2)
        )],
        "{}",
        out.all()
    );
    let dry_runs: Vec<u16> = env
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.resource == "projectconfigs" && r.verb == "patch")
        .map(|r| r.code)
        .collect();
    assert_eq!(
        dry_runs,
        [422],
        "the plan asked Kargo (a dry run it refused)"
    );
    let after = env
        .get("projectconfigs", Some("policies"), "policies")
        .unwrap();
    assert_eq!(after, before, "the dry run stored nothing");

    // Put right, the same update plans and applies.
    env.config(&project_with_policies(
        "policies",
        &[("dev", false), ("prod", true)],
    ));
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let pc = env
        .get("projectconfigs", Some("policies"), "policies")
        .unwrap();
    assert_eq!(
        pc["spec"]["promotionPolicies"],
        json!([
            {"autoPromotionEnabled": false, "stageSelector": {"name": "dev"}},
            {"autoPromotionEnabled": true, "stageSelector": {"name": "prod"}}
        ])
    );
}
