//! The real `kubectl` against a sandbox: discovery, create/apply (client- and server-side),
//! get with output formats and selectors, watch, patch, describe and delete.

mod core_support;

use std::process::Stdio;
use std::time::Duration;

use core_support::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const WAREHOUSE: &str = "\
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: app
  namespace: shop
  labels:
    team: a
spec:
  subscriptions:
  - image:
      repoURL: ghcr.io/example/app
";

const STAGE: &str = "\
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: dev
  namespace: shop
spec:
  requestedFreight:
  - origin: {kind: Warehouse, name: app}
    sources: {direct: true}
";

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn kubectl_round_trips_on_namespaces_and_kargo_kinds() {
    let sandbox = start_plain().await;
    let dir = tempfile::tempdir().unwrap();

    let resources = kubectl_ok(&sandbox, &["api-resources"]).await;
    let stages_line = resources
        .lines()
        .find(|l| l.starts_with("stages "))
        .expect("stages listed");
    assert!(
        stages_line.contains("kargo.akuity.io/v1alpha1") && stages_line.contains("Stage"),
        "{stages_line}"
    );
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("promotions") && l.contains("promo,promos")),
        "{resources}"
    );
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("namespaces") && l.contains(" ns ")),
        "{resources}"
    );

    // Namespaces (kubectl sends these as protobuf).
    assert_eq!(
        kubectl_ok(&sandbox, &["create", "namespace", "shop"])
            .await
            .trim(),
        "namespace/shop created"
    );
    let ns: Value =
        serde_json::from_str(&kubectl_ok(&sandbox, &["get", "ns", "shop", "-o", "json"]).await)
            .unwrap();
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "shop"
    );
    let table = kubectl_ok(&sandbox, &["get", "namespaces"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("shop   Active"),
        "{table}"
    );

    // Client-side apply creates, then patches.
    let wh = file(&dir, "warehouse.yaml", WAREHOUSE);
    assert_eq!(
        kubectl_ok(&sandbox, &["apply", "-f", &wh]).await.trim(),
        "warehouse.kargo.akuity.io/app created"
    );
    let yaml = kubectl_ok(
        &sandbox,
        &["get", "warehouse", "app", "-n", "shop", "-o", "yaml"],
    )
    .await;
    assert!(
        yaml.contains("interval: 5m0s")
            && yaml.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{yaml}"
    );
    let again = kubectl_ok(&sandbox, &["apply", "-f", &wh]).await;
    assert!(again.contains("warehouse.kargo.akuity.io/app"), "{again}");

    // Label selectors.
    let selected = kubectl_ok(
        &sandbox,
        &["get", "warehouses", "-A", "-l", "team=a", "-o", "name"],
    )
    .await;
    assert_eq!(selected.trim(), "warehouse.kargo.akuity.io/app");
    let (ok, out, err) = kubectl(
        &sandbox,
        &["get", "warehouses", "-n", "shop", "-l", "team notin (a)"],
    )
    .await;
    assert!(
        ok && out.is_empty() && err.contains("No resources found"),
        "{out}{err}"
    );

    // Server-side apply takes over (forcing past the client-side manager).
    let ssa = kubectl_ok(
        &sandbox,
        &["apply", "--server-side", "--force-conflicts", "-f", &wh],
    )
    .await;
    assert_eq!(
        ssa.trim(),
        "warehouse.kargo.akuity.io/app serverside-applied"
    );
    let managed = kubectl_ok(
        &sandbox,
        &[
            "get",
            "warehouse",
            "app",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    )
    .await;
    assert!(
        managed.split_whitespace().any(|m| m == "kubectl"),
        "{managed}"
    );

    // Merge and JSON patches; each spec change bumps generation.
    kubectl_ok(
        &sandbox,
        &[
            "patch",
            "warehouse",
            "app",
            "-n",
            "shop",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"interval":"10m"}}"#,
        ],
    )
    .await;
    kubectl_ok(
        &sandbox,
        &[
            "patch",
            "warehouse",
            "app",
            "-n",
            "shop",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/interval","value":"15m"}]"#,
        ],
    )
    .await;
    let state = kubectl_ok(
        &sandbox,
        &[
            "get",
            "warehouse",
            "app",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.interval} {.metadata.generation}",
        ],
    )
    .await;
    let (interval, generation) = state.split_once(' ').unwrap();
    assert_eq!(interval, "15m");
    assert!(generation.parse::<i64>().unwrap() >= 3, "{state}");
    let (ok, _, err) = kubectl(
        &sandbox,
        &[
            "patch",
            "warehouse",
            "app",
            "-n",
            "shop",
            "--type",
            "strategic",
            "-p",
            "{}",
        ],
    )
    .await;
    assert!(!ok && err.contains("strategic-merge-patch"), "{err}");

    let described = kubectl_ok(&sandbox, &["describe", "warehouse", "app", "-n", "shop"]).await;
    assert!(
        described.contains("Name:         app") && described.contains("Interval:"),
        "{described}"
    );
    let described_ns = kubectl_ok(&sandbox, &["describe", "namespace", "shop"]).await;
    assert!(
        described_ns.contains("Status:       Active"),
        "{described_ns}"
    );

    // Watch: start `get -w`, create a Stage, read its row.
    let mut watch = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sandbox.kubeconfig_path())
        .args(["get", "stages", "-n", "shop", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // `kubectl get -w` lists before it watches; wait for that watch to be open.
    let watching = eventually(Duration::from_secs(10), async || {
        sandbox
            .requests()
            .iter()
            .any(|r| r.verb == "watch" && r.resource == "stages")
            .then_some(())
    })
    .await;
    assert!(watching.is_some(), "kubectl never started watching");
    let stage = file(&dir, "stage.yaml", STAGE);
    assert_eq!(
        kubectl_ok(&sandbox, &["create", "-f", &stage]).await.trim(),
        "stage.kargo.akuity.io/dev created"
    );
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line.as_deref(), Some("stage.kargo.akuity.io/dev"));
    watch.kill().await.unwrap();

    // Delete (kubectl waits for the object to be gone) and the NotFound that follows.
    let deleted = kubectl_ok(&sandbox, &["delete", "-f", &wh]).await;
    assert_eq!(deleted.trim(), "warehouse.kargo.akuity.io \"app\" deleted");
    let (ok, _, err) = kubectl(&sandbox, &["get", "warehouse", "app", "-n", "shop"]).await;
    assert!(!ok, "gone");
    assert!(
        err.contains("warehouses.kargo.akuity.io \"app\" not found"),
        "{err}"
    );
    kubectl_ok(&sandbox, &["delete", "namespace", "shop"]).await;
    let (ok, _, err) = kubectl(&sandbox, &["get", "namespace", "shop"]).await;
    assert!(
        !ok && err.contains("namespaces \"shop\" not found"),
        "{err}"
    );
}

#[tokio::test]
async fn kubectl_reports_validation_errors() {
    let sandbox = start_plain().await;
    let dir = tempfile::tempdir().unwrap();
    kubectl_ok(&sandbox, &["create", "namespace", "shop"]).await;
    let bad = file(
        &dir,
        "bad.yaml",
        &WAREHOUSE.replace("  subscriptions:", "  interval: soon\n  subscriptions:"),
    );
    let (ok, _, err) = kubectl(&sandbox, &["apply", "-f", &bad]).await;
    assert!(!ok);
    assert!(
        err.contains("The Warehouse \"app\" is invalid: spec.interval: Invalid value: \"soon\": spec.interval in body should match"),
        "{err}"
    );
    let legacy = file(
        &dir,
        "legacy.yaml",
        &WAREHOUSE.replace(
            "  subscriptions:",
            "  promotionMechanisms: {}\n  subscriptions:",
        ),
    );
    let (ok, _, err) = kubectl(&sandbox, &["create", "-f", &legacy]).await;
    assert!(
        !ok && err.contains("unknown field \"spec.promotionMechanisms\""),
        "{err}"
    );
    let typo =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\ndatta: {a: b}\n";
    let typo = file(&dir, "cm.yaml", typo);
    let (ok, _, err) = kubectl(&sandbox, &["create", "-f", &typo]).await;
    assert!(!ok && err.contains("unknown field \"datta\""), "{err}");
}

#[tokio::test]
async fn kubectl_auth_can_i_and_whoami_honour_the_users_denied_pairs() {
    let sandbox = start_kargo().await.0;
    sandbox.add_user(
        kargo_sandbox::User::new("alice", "alice-token")
            .deny("delete", "stages")
            .deny("update", "stages/status"),
    );
    // (args, expected stdout): the admin, alice through --as, alice with her own token, and
    // a user the sandbox does not know (who may do nothing).
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "auth",
                "can-i",
                "delete",
                "stages.kargo.akuity.io",
                "-n",
                "p",
            ],
            "yes\n",
        ),
        (
            &[
                "auth",
                "can-i",
                "delete",
                "stages.kargo.akuity.io",
                "-n",
                "p",
                "--as",
                "alice",
            ],
            "no\n",
        ),
        (
            &[
                "auth",
                "can-i",
                "get",
                "stages.kargo.akuity.io",
                "-n",
                "p",
                "--as",
                "alice",
            ],
            "yes\n",
        ),
        (
            &[
                "auth",
                "can-i",
                "update",
                "stages.kargo.akuity.io",
                "--subresource",
                "status",
                "-n",
                "p",
                "--as",
                "alice",
            ],
            "no\n",
        ),
        (
            &[
                "auth",
                "can-i",
                "patch",
                "stages.kargo.akuity.io",
                "-n",
                "p",
                "--as",
                "alice",
            ],
            "yes\n",
        ),
        (
            &[
                "auth",
                "can-i",
                "delete",
                "stages.kargo.akuity.io",
                "--token",
                "alice-token",
            ],
            "no\n",
        ),
        (
            &[
                "auth",
                "can-i",
                "list",
                "warehouses.kargo.akuity.io",
                "--token",
                "alice-token",
            ],
            "yes\n",
        ),
        (
            &[
                "auth",
                "can-i",
                "get",
                "stages.kargo.akuity.io",
                "--as",
                "mallory",
            ],
            "no\n",
        ),
    ];
    for (args, want) in cases {
        let (_, out, err) = kubectl(&sandbox, args).await;
        assert_eq!(out, *want, "kubectl {args:?}: {err}");
    }
    let who = kubectl_ok(&sandbox, &["auth", "whoami", "-o", "json"]).await;
    let who: Value = serde_json::from_str(&who).unwrap();
    assert_eq!(who["kind"], "SelfSubjectReview");
    assert_eq!(
        who["status"]["userInfo"],
        serde_json::json!({"username": "sandbox-admin", "groups": ["system:masters", "system:authenticated"]})
    );
    let who = kubectl_ok(&sandbox, &["auth", "whoami", "-o", "json", "--as", "alice"]).await;
    let who: Value = serde_json::from_str(&who).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "alice");
    // The rules review lists what alice may do on stages: everything but delete.
    let list = kubectl_ok(&sandbox, &["auth", "can-i", "--list", "--as", "alice"]).await;
    let stages = list
        .lines()
        .find(|l| l.starts_with("stages.kargo.akuity.io "))
        .unwrap_or_else(|| panic!("stages listed:\n{list}"));
    assert!(
        stages.ends_with("[create deletecollection get list patch update watch]"),
        "{stages}"
    );
    // Only the admin may act as someone else.
    let (ok, _, err) = kubectl(
        &sandbox,
        &[
            "get",
            "--raw",
            "/apis/kargo.akuity.io/v1alpha1/stages",
            "--token",
            "alice-token",
            "--as",
            "root",
        ],
    )
    .await;
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (Forbidden): users \"root\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope\n"
    );
}

#[tokio::test]
async fn kubectl_get_crd_lists_kargos_nine_once_kargo_is_installed() {
    let sandbox = start(kargo_sandbox::Options {
        with_kargo: false,
        ..Default::default()
    })
    .await;
    let (ok, out, err) = kubectl(&sandbox, &["get", "crd", "-o", "name"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "", "no CRDs before Kargo is installed");
    sandbox.install_kargo();
    let names = kubectl_ok(&sandbox, &["get", "crd", "-o", "name"]).await;
    let expected: String = [
        "clusterconfigs",
        "clusterpromotiontasks",
        "freights",
        "projectconfigs",
        "projects",
        "promotions",
        "promotiontasks",
        "stages",
        "warehouses",
    ]
    .iter()
    .map(|p| format!("customresourcedefinition.apiextensions.k8s.io/{p}.kargo.akuity.io\n"))
    .collect();
    assert_eq!(names, expected);
    let table = kubectl_ok(&sandbox, &["get", "crd", "stages.kargo.akuity.io"]).await;
    assert!(
        table.starts_with("NAME                     CREATED AT\nstages.kargo.akuity.io   "),
        "{table}"
    );
    let crd = kubectl_ok(
        &sandbox,
        &["get", "crd", "stages.kargo.akuity.io", "-o", "json"],
    )
    .await;
    let crd: Value = serde_json::from_str(&crd).unwrap();
    assert_eq!(crd["spec"]["names"]["kind"], "Stage");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    // `all` is a category of the cluster's own kinds (Kargo's CRDs declare none): an empty
    // namespace lists nothing, as on a cluster with nothing running there.
    namespace(&client(&sandbox).await, "p").await;
    let (ok, out, err) = kubectl(&sandbox, &["get", "all", "-n", "p"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("", "No resources found in p namespace.\n")
    );
    let (ok, _, err) = kubectl(&sandbox, &["delete", "crd", "stages.kargo.akuity.io"]).await;
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (MethodNotAllowed): the server does not allow this method on the requested resource\n"
    );
}

#[tokio::test]
async fn kubectl_explain_reads_the_crd_schemas_from_openapi_v3() {
    let sandbox = start_kargo().await.0;
    let out = kubectl_ok(&sandbox, &["explain", "warehouses.spec.subscriptions"]).await;
    assert!(
        out.starts_with("GROUP:      kargo.akuity.io\nKIND:       Warehouse\nVERSION:    v1alpha1\n\nFIELD: subscriptions <[]Object>\n"),
        "{out}"
    );
    let out = kubectl_ok(&sandbox, &["explain", "stages.spec"]).await;
    for field in [
        "promotionTemplate\t<Object>",
        "requestedFreight\t<[]Object> -required-",
        "shard\t<string>",
        "vars\t<[]Object>",
        "verification\t<Object>",
    ] {
        assert!(out.contains(field), "{field} in:\n{out}");
    }
    let (ok, _, err) = kubectl(&sandbox, &["explain", "stages.spec.nope"]).await;
    assert!(!ok);
    assert!(err.contains("field \"nope\" does not exist"), "{err}");
}

const LIST: &str = "\
apiVersion: v1
kind: List
items:
- apiVersion: kargo.akuity.io/v1alpha1
  kind: Project
  metadata:
    name: shop
- apiVersion: kargo.akuity.io/v1alpha1
  kind: Warehouse
  metadata:
    name: app
    namespace: shop
  spec:
    subscriptions:
    - image:
        repoURL: ghcr.io/example/app
";

#[tokio::test]
async fn kubectl_validates_a_list_against_openapi_v2_in_protobuf() {
    let sandbox = start_kargo().await.0;
    let dir = tempfile::tempdir().unwrap();
    // Client-side validation of a List reads /openapi/v2 as protobuf; a defaulted field
    // (spec.interval) is not required of the client.
    let good = file(&dir, "list.yaml", LIST);
    let out = kubectl_ok(&sandbox, &["create", "-f", &good]).await;
    assert_eq!(
        out,
        "project.kargo.akuity.io/shop created\nwarehouse.kargo.akuity.io/app created\n"
    );
    let bad = file(
        &dir,
        "bad.yaml",
        &LIST.replace("subscriptions:", "subscriptionz:"),
    );
    let (ok, _, err) = kubectl(&sandbox, &["apply", "-f", &bad]).await;
    assert!(!ok);
    assert_eq!(
        err,
        format!(
            "error: error validating \"{bad}\": error validating data: [ValidationError(Warehouse.spec): unknown field \"subscriptionz\" in io.akuity.kargo.v1alpha1.Warehouse.spec, ValidationError(Warehouse.spec): missing required field \"subscriptions\" in io.akuity.kargo.v1alpha1.Warehouse.spec]; if you choose to ignore these errors, turn validation off with --validate=false\n"
        )
    );
}
