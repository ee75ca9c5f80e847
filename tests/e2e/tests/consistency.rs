//! The rules every resource follows alike, end to end with one object of each kind: an object
//! being deleted (terminating) is gone to the refresh, and a refresh that cannot reach the
//! cluster keeps the state with the same warning saying what to do.

use kargo_e2e::pipeline::{Pipeline, Sources, applied, publish, wait_holds};
use kargo_e2e::{Env, explicit_provider};
use serde_json::{Value as Json, json};

const KARGO: &str = "kargo.akuity.io";

/// Resources of every kind, with objects in the sandbox: the project `shop`, its warehouse and
/// the stages `dev` and `prod` (the pipeline), a promotion task, a cluster promotion task, an
/// approval of `freight` for `prod` and a promotion of it into `dev`.
fn every_kind(freight: &str) -> String {
    format!(
        r#"{}
resource "kargo_promotion_task" "update" {{
  project = kargo_project.p.name
  name    = "update"
  steps {{
    uses   = "git-clone"
    config = jsonencode({{ repoURL = "https://github.com/acme/gitops", checkout = [{{ branch = "main", path = "./src" }}] }})
  }}
}}

resource "kargo_cluster_promotion_task" "notify" {{
  name = "notify"
  steps {{
    uses   = "http"
    config = jsonencode({{ url = "https://hooks.example.com", method = "POST" }})
  }}
}}

resource "kargo_freight_approval" "prod" {{
  project = kargo_project.p.name
  stage   = kargo_stage.prod.name
  freight = "{freight}"
}}

resource "kargo_promotion" "dev" {{
  project = kargo_project.p.name
  stage   = kargo_stage.dev.name
  freight = "{freight}"
  preview = false
}}
"#,
        Pipeline::new()
            .stage("dev", Sources::direct())
            .stage("prod", Sources::after("dev"))
            .hcl()
    )
}

/// Every kind applied; returns the environment and the freight promoted and approved.
fn applied_every_kind() -> (Env, String) {
    let env = applied(&Pipeline::new().hcl());
    let (freight, _) = publish(&env, "1.0.0");
    env.config(&every_kind(&freight));
    env.tf.apply().ok();
    wait_holds(&env, "dev", &freight);
    env.tf.assert_no_changes();
    (env, freight)
}

/// What `terraform plan -refresh-only` found changed outside Terraform, by address.
fn refresh_drift(env: &Env) -> Vec<(String, Json)> {
    env.tf
        .run(&["plan", "-refresh-only", "-out=refresh.tfplan"])
        .ok();
    let out = env.tf.run(&["show", "-json", "refresh.tfplan"]).ok();
    let plan: Json = serde_json::from_str(&out.stdout).expect("plan JSON");
    let mut drift: Vec<(String, Json)> = plan["resource_drift"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["address"].as_str().unwrap_or_default().to_string(),
                d["change"]["actions"].clone(),
            )
        })
        .collect();
    drift.sort_by(|a, b| a.0.cmp(&b.0));
    drift
}

#[test]
fn a_terminating_object_is_gone_for_every_resource() {
    let (env, freight) = applied_every_kind();
    let promotion = env.tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    // Someone deletes each object; another controller's finalizer keeps it terminating.
    let objects: [(&str, Option<&str>, &str); 6] = [
        ("warehouses", Some("shop"), "app"),
        ("stages", Some("shop"), "prod"),
        ("promotiontasks", Some("shop"), "update"),
        ("clusterpromotiontasks", None, "notify"),
        ("freights", Some("shop"), &freight),
        ("promotions", Some("shop"), &promotion),
    ];
    env.sandbox.with_txn(|txn| {
        for (resource, ns, name) in objects {
            let mut object = txn.get(KARGO, resource, ns, name).unwrap();
            let finalizers = object["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut held = finalizers;
            held.push(json!("example.com/hold"));
            object["metadata"]["finalizers"] = json!(held);
            txn.update(object).unwrap();
            txn.delete(KARGO, resource, ns, name).unwrap();
        }
    });
    for (resource, ns, name) in objects {
        let object = env
            .get(resource, ns, name)
            .expect("still there, terminating");
        assert!(
            object["metadata"]["deletionTimestamp"].is_string(),
            "{resource}/{name} is terminating"
        );
    }

    let gone: Vec<String> = refresh_drift(&env)
        .into_iter()
        .filter(|(_, actions)| *actions == json!(["delete"]))
        .map(|(address, _)| address)
        .collect();
    assert_eq!(
        gone,
        [
            "kargo_cluster_promotion_task.notify",
            "kargo_freight_approval.prod",
            "kargo_promotion_task.update",
            "kargo_stage.prod",
            "kargo_warehouse.app",
        ],
        "each object on its way out is gone to the refresh; the promotion stays, as for a \
         garbage-collected Promotion, while the stage holds its freight"
    );
    env.tf
        .run(&["apply", "-refresh-only", "-auto-approve"])
        .ok();
    let state = env.tf.resource("kargo_promotion.dev");
    assert_eq!(
        state["message"],
        json!(format!(
            "Promotion {promotion:?} no longer exists: Kargo garbage-collects old promotions. \
             The stage's freight tells whether it is still in place."
        ))
    );
    assert_eq!(state["freight_name"], json!(freight));
}

#[test]
fn a_refresh_that_cannot_reach_the_cluster_warns_the_same_for_every_resource() {
    let (env, freight) = applied_every_kind();
    // The same state, planned through a host that does not answer.
    let hcl = explicit_provider(&env, "https://127.0.0.1:1", env.sandbox.token());
    env.tf
        .write_main(&format!("{hcl}\n{}", every_kind(&freight)));
    let out = env.tf.run(&["plan", "-json", "-detailed-exitcode"]);
    assert_eq!(
        out.code,
        0,
        "the state is kept: nothing to do\n{}",
        out.all()
    );
    let promotion = env.tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut found: Vec<(String, String, String)> = out
        .json_diagnostics()
        .into_iter()
        .map(|d| (d.severity, d.address, d.summary + ": " + &d.detail))
        .collect();
    found.sort();
    let warning = |address: &str, kind: &str, what: &str| {
        (
            "warning".to_string(),
            address.to_string(),
            format!(
                "{kind} not refreshed: Could not read {what}, so the state is kept as it was: \
                 {UNREACHABLE} The plan shows only changes of the configuration; plan again \
                 once the cluster answers to see changes made in it."
            ),
        )
    };
    let mut expected = vec![
        warning(
            "kargo_cluster_promotion_task.notify",
            "ClusterPromotionTask",
            "ClusterPromotionTask \"notify\"",
        ),
        warning(
            "kargo_freight_approval.prod",
            "Freight approval",
            &format!("freight {freight:?} in project \"shop\""),
        ),
        warning("kargo_project.p", "Project", "project \"shop\""),
        warning(
            "kargo_promotion.dev",
            "Promotion",
            &format!("promotion {promotion:?}"),
        ),
        warning(
            "kargo_promotion_task.update",
            "PromotionTask",
            "PromotionTask \"shop/update\"",
        ),
        warning("kargo_stage.dev", "Stage", "Stage \"shop/dev\""),
        warning("kargo_stage.prod", "Stage", "Stage \"shop/prod\""),
        warning("kargo_warehouse.app", "Warehouse", "Warehouse \"shop/app\""),
    ];
    expected.sort();
    assert_eq!(found, expected, "{}", out.all());
}

/// How every refresh above names the API server it could not reach, and what to check.
const UNREACHABLE: &str = "could not reach the Kubernetes API at https://127.0.0.1:1: client \
    error (Connect): tcp connect error: Connection refused (os error 111). Check the \
    provider's `host` (or the kubeconfig's cluster server), the network path, proxy and TLS \
    settings.";
