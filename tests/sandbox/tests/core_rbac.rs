//! RBAC as on a cluster: the provider's documented least-privilege ClusterRole, applied with
//! kubectl straight from the docs, checked with `kubectl auth can-i --as` and enforced on the
//! requests made as the identities it is bound to (impersonated or with their own token).

mod core_support;

use core_support::*;
use serde_json::{Value, json};

/// The service account the docs bind the ClusterRole to.
const SA: &str = "system:serviceaccount:platform:terraform";
const ROLE: &str = "terraform-provider-kargo";

/// The manifests of the docs' "Least-privilege RBAC" section, exactly as written there.
fn documented_rbac() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/index.md"))
        .expect("docs/index.md");
    let section = doc
        .split_once("## Least-privilege RBAC")
        .expect("the docs have a least-privilege RBAC section")
        .1;
    let block = section.split_once("```yaml\n").expect("a YAML block").1;
    block
        .split_once("```")
        .expect("a closed YAML block")
        .0
        .to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// A Kargo sandbox with project `shop`, namespace `other` and the docs' RBAC applied.
async fn sandbox_with_documented_rbac(dir: &tempfile::TempDir) -> kargo_sandbox::Sandbox {
    let (sandbox, client) = start_kargo().await;
    create(
        &client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "shop"}}),
    )
    .await
    .unwrap();
    namespace(&client, "other").await;
    let rbac = write(dir, "rbac.yaml", &documented_rbac());
    assert_eq!(
        kubectl_ok(&sandbox, &["apply", "-f", &rbac]).await,
        format!(
            "clusterrole.rbac.authorization.k8s.io/{ROLE} created\n\
             clusterrolebinding.rbac.authorization.k8s.io/{ROLE} created\n"
        )
    );
    sandbox
}

#[tokio::test]
async fn kubectl_auth_can_i_checks_the_documented_least_privilege_cluster_role() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox_with_documented_rbac(&dir).await;

    // Stored as applied, and listed by kubectl like any other object.
    let stored: Value = serde_json::from_str(
        &kubectl_ok(&sandbox, &["get", "clusterrole", ROLE, "-o", "json"]).await,
    )
    .unwrap();
    let documented: Value =
        serde_yaml::from_str(documented_rbac().split("\n---\n").next().unwrap()).unwrap();
    assert_eq!(stored["rules"], documented["rules"]);
    let bindings = kubectl_ok(&sandbox, &["get", "clusterrolebindings", "-o", "name"]).await;
    assert_eq!(
        bindings,
        format!("clusterrolebinding.rbac.authorization.k8s.io/{ROLE}\n")
    );

    // (verb, resource and flags, answer) for the service account the docs bind.
    let cases: &[(&str, &[&str], &str)] = &[
        // What the provider does.
        (
            "create",
            &["promotions.kargo.akuity.io", "-n", "shop"],
            "yes",
        ),
        (
            "patch",
            &["warehouses.kargo.akuity.io", "-n", "shop"],
            "yes",
        ),
        ("delete", &["stages.kargo.akuity.io", "-n", "shop"], "yes"),
        (
            "promote",
            &["stages.kargo.akuity.io/dev", "-n", "shop"],
            "yes",
        ),
        ("watch", &["freights.kargo.akuity.io", "-n", "shop"], "yes"),
        (
            "patch",
            &[
                "freights.kargo.akuity.io",
                "--subresource",
                "status",
                "-n",
                "shop",
            ],
            "yes",
        ),
        ("create", &["projects.kargo.akuity.io"], "yes"),
        ("delete", &["clusterpromotiontasks.kargo.akuity.io"], "yes"),
        ("get", &["namespaces/shop"], "yes"),
        // Namespaced rules of a ClusterRoleBinding hold in every namespace.
        (
            "list",
            &["warehouses.kargo.akuity.io", "-n", "other"],
            "yes",
        ),
        // Nothing else.
        ("delete", &["secrets", "-n", "shop"], "no"),
        ("get", &["secrets", "-n", "shop"], "no"),
        (
            "delete",
            &["promotions.kargo.akuity.io", "-n", "shop"],
            "no",
        ),
        (
            "update",
            &["warehouses.kargo.akuity.io", "-n", "shop"],
            "no",
        ),
        ("patch", &["freights.kargo.akuity.io", "-n", "shop"], "no"),
        (
            "patch",
            &[
                "stages.kargo.akuity.io",
                "--subresource",
                "status",
                "-n",
                "shop",
            ],
            "no",
        ),
        ("create", &["namespaces"], "no"),
        ("create", &["clusterroles.rbac.authorization.k8s.io"], "no"),
        (
            "promote",
            &["warehouses.kargo.akuity.io", "-n", "shop"],
            "no",
        ),
    ];
    for (verb, rest, want) in cases {
        let mut args = vec!["auth", "can-i", verb];
        args.extend_from_slice(rest);
        args.extend_from_slice(&["--as", SA]);
        let (_, out, err) = kubectl(&sandbox, &args).await;
        assert_eq!(out, format!("{want}\n"), "kubectl {args:?}: {err}");
    }

    // Another service account of that name, in another namespace, is not bound.
    let (_, out, _) = kubectl(
        &sandbox,
        &[
            "auth",
            "can-i",
            "create",
            "promotions.kargo.akuity.io",
            "-n",
            "shop",
            "--as",
            "system:serviceaccount:other:terraform",
        ],
    )
    .await;
    assert_eq!(out, "no\n");
    // A group given with --as-group replaces the service account's own groups; system:masters
    // may do everything.
    let (_, out, _) = kubectl(
        &sandbox,
        &[
            "auth",
            "can-i",
            "delete",
            "secrets",
            "-n",
            "shop",
            "--as",
            "bob",
            "--as-group",
            "system:masters",
        ],
    )
    .await;
    assert_eq!(out, "yes\n");

    // The rules review lists the role's rules for the namespace.
    let list = kubectl_ok(
        &sandbox,
        &["auth", "can-i", "--list", "-n", "shop", "--as", SA],
    )
    .await;
    let promotions = list
        .lines()
        .find(|l| l.starts_with("promotions.kargo.akuity.io "))
        .unwrap_or_else(|| panic!("promotions listed:\n{list}"));
    assert!(
        promotions.ends_with("[get list watch create patch]"),
        "{promotions}"
    );
    assert!(!list.contains("secrets"), "{list}");

    let who: Value = serde_json::from_str(
        &kubectl_ok(&sandbox, &["auth", "whoami", "-o", "json", "--as", SA]).await,
    )
    .unwrap();
    assert_eq!(
        who["status"]["userInfo"],
        json!({"username": SA, "groups": [
            "system:serviceaccounts", "system:serviceaccounts:platform", "system:authenticated"
        ]})
    );
}

#[tokio::test]
async fn requests_as_a_bound_identity_are_refused_where_rbac_does_not_allow_them() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox_with_documented_rbac(&dir).await;
    kubectl_ok(
        &sandbox,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "shop",
            "--from-literal=password=s3cret",
        ],
    )
    .await;

    // Impersonated: what the role grants works, the rest is refused with RBAC's 403.
    let (ok, out, err) = kubectl(&sandbox, &["get", "warehouses", "-n", "shop", "--as", SA]).await;
    assert!(ok, "{err}");
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("", "No resources found in shop namespace.\n")
    );
    let (ok, _, err) = kubectl(
        &sandbox,
        &["delete", "secret", "creds", "-n", "shop", "--as", SA],
    )
    .await;
    assert!(!ok);
    assert_eq!(
        err,
        format!(
            "Error from server (Forbidden): secrets \"creds\" is forbidden: User \"{SA}\" cannot \
             delete resource \"secrets\" in API group \"\" in the namespace \"shop\"\n"
        )
    );
    let refused = sandbox
        .requests()
        .into_iter()
        .find(|r| r.verb == "delete" && r.resource == "secrets")
        .expect("the delete reached the API server");
    assert_eq!((refused.code, refused.user.as_deref()), (403, Some(SA)));
    kubectl_ok(&sandbox, &["get", "secret", "creds", "-n", "shop"]).await;

    // With its own token: a user whose access RBAC decides, bound in one namespace by a
    // RoleBinding to the same ClusterRole.
    let (ok, out, err) = cli(
        &sandbox,
        &[
            "add-user",
            "--name",
            "ravi",
            "--token",
            "ravi-token",
            "--rbac",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(added, json!({"name": "ravi", "deny": [], "rbac": true}));
    let binding = write(
        &dir,
        "binding.yaml",
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  \
             name: ravi\n  namespace: shop\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  \
             kind: ClusterRole\n  name: {ROLE}\nsubjects:\n- kind: User\n  name: ravi\n  \
             apiGroup: rbac.authorization.k8s.io\n"
        ),
    );
    kubectl_ok(&sandbox, &["apply", "-f", &binding]).await;
    let warehouse = write(
        &dir,
        "warehouse.yaml",
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: w\n  \
         namespace: shop\nspec:\n  subscriptions:\n  - image:\n      repoURL: ghcr.io/acme/app\n",
    );
    let as_ravi = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--token", "ravi-token"]);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = async |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl(&sandbox, &args).await
    };
    let (ok, out, err) = run(as_ravi(&["create", "-f", &warehouse])).await;
    assert!(ok, "{err}");
    assert_eq!(out, "warehouse.kargo.akuity.io/w created\n");
    let forbidden = [
        (
            as_ravi(&["get", "warehouses", "-n", "other"]),
            "warehouses.kargo.akuity.io is forbidden: User \"ravi\" cannot list resource \
             \"warehouses\" in API group \"kargo.akuity.io\" in the namespace \"other\"",
        ),
        (
            as_ravi(&["get", "projects"]),
            "projects.kargo.akuity.io is forbidden: User \"ravi\" cannot list resource \
             \"projects\" in API group \"kargo.akuity.io\" at the cluster scope",
        ),
        (
            as_ravi(&["get", "secret", "creds", "-n", "shop"]),
            "secrets \"creds\" is forbidden: User \"ravi\" cannot get resource \"secrets\" in \
             API group \"\" in the namespace \"shop\"",
        ),
    ];
    for (args, message) in forbidden {
        let (ok, _, err) = run(args.clone()).await;
        assert!(!ok, "{args:?}");
        assert_eq!(
            err,
            format!("Error from server (Forbidden): {message}\n"),
            "{args:?}"
        );
    }
    // A user the sandbox knows may not impersonate, RBAC user or not.
    let (ok, _, err) = run(as_ravi(&["get", "warehouses", "-n", "shop", "--as", SA])).await;
    assert!(!ok);
    assert!(
        err.contains("User \"ravi\" cannot impersonate resource \"users\""),
        "{err}"
    );
}

#[tokio::test]
async fn kargos_promotion_webhook_asks_rbac_for_the_promote_verb() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox_with_documented_rbac(&dir).await;
    let stage = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: w\n  \
                 namespace: shop\nspec:\n  subscriptions:\n  - image:\n      repoURL: \
                 ghcr.io/acme/app\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\n\
                 metadata:\n  name: dev\n  namespace: shop\nspec:\n  requestedFreight:\n  - \
                 origin: {kind: Warehouse, name: w}\n    sources: {direct: true}\n  \
                 promotionTemplate:\n    spec:\n      steps:\n      - uses: argocd-update\n        \
                 config: {apps: [{name: app}]}\n";
    let stage = write(&dir, "stage.yaml", stage);
    kubectl_ok(&sandbox, &["apply", "-f", &stage]).await;
    let freight = sandbox
        .control(
            "publish",
            &json!({"project": "shop", "warehouse": "w",
                    "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0"}]}),
        )
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    // A role that may create Promotions but lacks `promote` on the Stage.
    let creator = write(
        &dir,
        "creator.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: creator\n  \
         namespace: shop\nrules:\n- apiGroups: [kargo.akuity.io]\n  resources: [promotions]\n  \
         verbs: [create]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
         metadata:\n  name: creator\n  namespace: shop\nroleRef:\n  apiGroup: \
         rbac.authorization.k8s.io\n  kind: Role\n  name: creator\nsubjects:\n- kind: User\n  \
         name: pat\n  apiGroup: rbac.authorization.k8s.io\n",
    );
    kubectl_ok(&sandbox, &["apply", "-f", &creator]).await;
    let promotion = |name: &str| {
        write(
            &dir,
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: \
                 {name}\n  namespace: shop\nspec:\n  stage: dev\n  freight: {freight}\n  steps:\n  \
                 - uses: argocd-update\n"
            ),
        )
    };
    let (ok, _, err) = kubectl(
        &sandbox,
        &["create", "-f", &promotion("by-pat"), "--as", "pat"],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("subject \"pat\" is not permitted to create Promotions for Stage \"dev\""),
        "{err}"
    );
    // The documented role has `promote` on stages, so its service account may promote (Kargo
    // names the Promotion itself).
    let out = kubectl_ok(
        &sandbox,
        &["create", "-f", &promotion("by-terraform"), "--as", SA],
    )
    .await;
    assert!(
        out.starts_with("promotion.kargo.akuity.io/dev.") && out.ends_with(" created\n"),
        "{out}"
    );
}
