//! The sandbox as a tool: start-up, kubeconfig, installing Kargo later, persistence,
//! HTTP faults, the request log, restricted users, the clock and the CLI's control commands.

mod core_support;

use std::time::{Duration, Instant};

use core_support::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kargo_sandbox::rbac::{Access, Identity};
use kargo_sandbox::{HttpFault, Options, User};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn starts_quickly_with_a_complete_kubeconfig() {
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let sandbox = kargo_sandbox::Sandbox::start(Options::default())
            .await
            .unwrap();
        times.push(t.elapsed());
        drop(sandbox);
    }
    eprintln!("start-up times (5 starts): {times:?}");

    let sandbox = start(Options::default().token("fixed-token")).await;
    let doc: Value =
        serde_yaml::from_str(&std::fs::read_to_string(sandbox.kubeconfig_path()).unwrap()).unwrap();
    assert_eq!(doc["current-context"], "sandbox");
    assert_eq!(doc["contexts"][0]["name"], "sandbox");
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"],
        sandbox.server_url()
    );
    assert!(sandbox.server_url().starts_with("https://127.0.0.1:"));
    assert!(
        doc["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .is_some_and(|s| s.len() > 100)
    );
    assert_eq!(doc["users"][0]["user"]["token"], "fixed-token");
    let version = client(&sandbox).await.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );

    let path = sandbox.kubeconfig_path().to_path_buf();
    sandbox.shutdown().await;
    assert!(
        !path.exists(),
        "the private kubeconfig directory is removed"
    );
}

#[tokio::test]
async fn without_kargo_the_group_is_absent_until_installed() {
    let sandbox = start(Options::default().without_kargo()).await;
    let client = client(&sandbox).await;
    let groups = client.list_api_groups().await.unwrap();
    assert!(!groups.groups.iter().any(|g| g.name == "kargo.akuity.io"));
    let stages = kargo_api(&client, "x", "Stage", "stages");
    let e = api_error(stages.list(&Default::default()).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "the server could not find the requested resource")
    );

    let (ok, out, err) = cli(&sandbox, &["install-kargo"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("\"served\": true"), "{out}");
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "kargo.akuity.io"));
    namespace(&client, "x").await;
    assert!(
        stages
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Uninstalling stops Kargo but keeps the CRDs and objects.
    let (ok, out, _) = cli(&sandbox, &["uninstall-kargo"]).await;
    assert!(ok && out.contains("\"running\": false"), "{out}");
    assert!(
        client
            .list_api_groups()
            .await
            .unwrap()
            .groups
            .iter()
            .any(|g| g.name == "kargo.akuity.io")
    );
}

#[tokio::test]
async fn state_dir_keeps_objects_versions_and_credentials() {
    let state = tempfile::tempdir().unwrap();
    let kubeconfig = state.path().join("kubeconfig");
    let opts = || {
        Options::default()
            .state_dir(state.path())
            .kubeconfig(&kubeconfig)
    };
    let first = start(opts()).await;
    let (token, ca, url) = (
        first.token().to_string(),
        first.ca_pem().to_string(),
        first.server_url().to_string(),
    );
    let client = client(&first).await;
    namespace(&client, "keep").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "keep");
    let created = cms
        .create(&PostParams::default(), &config_map("c"))
        .await
        .unwrap();
    let rv: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
    first.shutdown().await;

    let second = start(opts()).await;
    assert_eq!(second.token(), token, "the token survives");
    assert_eq!(second.ca_pem(), ca, "the CA survives");
    assert_eq!(
        second.server_url(),
        url,
        "the port is reused, so old kubeconfigs keep working"
    );
    let cms: Api<ConfigMap> = Api::namespaced(core_support::client(&second).await, "keep");
    let kept = cms.get("c").await.unwrap();
    assert_eq!(kept.data.unwrap()["k"], "v");
    let next = cms
        .create(&PostParams::default(), &config_map("d"))
        .await
        .unwrap();
    let next_rv: u64 = next.metadata.resource_version.unwrap().parse().unwrap();
    assert!(next_rv > rv, "resourceVersion continues: {next_rv} > {rv}");
}

#[tokio::test]
async fn http_faults_fail_delay_and_refuse() {
    let sandbox = start_plain().await;
    let client = client_without_retries(&sandbox).await;
    namespace(&client, "f").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "f");
    cms.create(&PostParams::default(), &config_map("c"))
        .await
        .unwrap();

    // 503 for the next matching request only.
    sandbox
        .inject_fault(
            HttpFault::unavailable()
                .verb("get")
                .resource("configmaps")
                .times(1),
        )
        .unwrap();
    cms.list(&Default::default())
        .await
        .expect("a list does not match the fault");
    let e = api_error(cms.get("c").await);
    assert_eq!((e.code, e.reason.as_str()), (503, "ServiceUnavailable"));
    cms.get("c").await.expect("the fault was used up");

    // kube-rs's default client retries a 503 by itself: one call, two requests.
    sandbox
        .inject_fault(
            HttpFault::unavailable()
                .verb("get")
                .resource("configmaps")
                .times(1),
        )
        .unwrap();
    sandbox.reset_requests();
    Api::<ConfigMap>::namespaced(core_support::client(&sandbox).await, "f")
        .get("c")
        .await
        .unwrap();
    let codes: Vec<u16> = sandbox.requests().iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![503, 200]);

    // The CLI sets a timed one.
    let (ok, _, err) = cli(
        &sandbox,
        &[
            "fault",
            "http",
            "unavailable",
            "--for",
            "30s",
            "--resource",
            "configmaps",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(api_error(cms.get("c").await).code, 503);
    let (ok, _, err) = cli(&sandbox, &["clear-faults"]).await;
    assert!(ok, "{err}");
    cms.get("c").await.expect("faults cleared");

    // Delays.
    sandbox
        .inject_fault(HttpFault::delay(Duration::from_millis(300)).verb("get"))
        .unwrap();
    let t = Instant::now();
    cms.get("c").await.unwrap();
    let slow = t.elapsed();
    assert!(slow >= Duration::from_millis(300), "{slow:?}");
    sandbox.clear_faults().unwrap();

    // Refused connections, then recovery.
    sandbox
        .inject_fault(HttpFault::refuse(Duration::from_millis(600)))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = client_for(sandbox.kubeconfig_path()).await;
    let refused = Api::<ConfigMap>::namespaced(fresh.clone(), "f")
        .get("c")
        .await;
    assert!(
        matches!(
            refused,
            Err(kube::Error::HyperError(_) | kube::Error::Service(_))
        ),
        "{refused:?}"
    );
    let back = eventually(Duration::from_secs(5), async || {
        Api::<ConfigMap>::namespaced(fresh.clone(), "f")
            .get("c")
            .await
            .ok()
    })
    .await;
    assert!(back.is_some(), "the API accepts connections again");
}

#[tokio::test]
async fn write_faults_store_the_object_and_lose_the_answer() {
    let sandbox = start_plain().await;
    let client = client_without_retries(&sandbox).await;
    namespace(&client, "w").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "w");
    let created = |name: &str| {
        sandbox
            .get("", "configmaps", Some("w"), name)
            .is_some_and(|o| o["data"]["k"] == "v")
    };
    let last = || {
        let r = sandbox.requests().pop().expect("logged");
        (r.verb, r.resource, r.name, r.code)
    };

    // Stored, then 504: the client sees a timeout for a write that happened.
    sandbox
        .inject_fault(
            HttpFault::timeout_after_write()
                .verb("create")
                .resource("configmaps")
                .times(1),
        )
        .unwrap();
    let e = api_error(cms.create(&PostParams::default(), &config_map("t")).await);
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded"
        )
    );
    assert!(created("t"), "the object was stored before the 504");
    assert_eq!(last(), ("create".into(), "configmaps".into(), None, 504));
    cms.create(&PostParams::default(), &config_map("t2"))
        .await
        .expect("the fault was for one request");

    // Stored, then the connection is reset: no answer at all.
    sandbox
        .inject_fault(HttpFault::reset_after_write().verb("create").times(1))
        .unwrap();
    let reset = cms.create(&PostParams::default(), &config_map("r")).await;
    assert!(
        matches!(reset, Err(kube::Error::Service(_)))
            && format!("{reset:?}").contains("kind: ConnectionReset"),
        "a connection reset, not an answer: {reset:?}"
    );
    assert!(created("r"), "the object was stored before the reset");
    assert_eq!(last(), ("create".into(), "configmaps".into(), None, 0));
    cms.get("r").await.expect("the client reconnects");

    // Stored at once, answered past the client's deadline. The request log shows the write
    // while the client still waits, so a test can act at that moment.
    let mut config = config_for(sandbox.kubeconfig_path()).await;
    config.default_retry = false;
    config.read_timeout = Some(Duration::from_millis(500));
    let impatient: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), "w");
    sandbox
        .inject_fault(HttpFault::delay_response(Duration::from_secs(3)).verb("create"))
        .unwrap();
    sandbox.reset_requests();
    let t = Instant::now();
    let pending = tokio::spawn(async move {
        impatient
            .create(&PostParams::default(), &config_map("d"))
            .await
    });
    let seen = eventually(Duration::from_secs(2), async || {
        sandbox
            .requests()
            .iter()
            .any(|r| r.verb == "create" && r.code == 201)
            .then_some(())
    })
    .await;
    assert!(seen.is_some(), "the create is logged before its answer");
    assert!(created("d"), "stored while the answer is held back");
    let gave_up = pending.await.unwrap();
    assert!(
        matches!(
            gave_up,
            Err(kube::Error::HyperError(_) | kube::Error::Service(_))
        ),
        "the client's deadline passed: {gave_up:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    sandbox.clear_faults().unwrap();

    // The CLI injects the same faults.
    let (ok, out, err) = cli(
        &sandbox,
        &[
            "fault",
            "http",
            "timeout-after-write",
            "--verb",
            "create",
            "--count",
            "1",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("\"kind\": \"timeoutAfterWrite\""), "{out}");
    let e = api_error(cms.create(&PostParams::default(), &config_map("c")).await);
    assert_eq!(e.code, 504);
    assert!(created("c"));
    let (ok, _, err) = cli(
        &sandbox,
        &["fault", "http", "delay-response", "--verb", "get"],
    )
    .await;
    assert!(
        !ok && err.contains("fault http delay-response needs --ms"),
        "{err}"
    );
}

#[tokio::test]
async fn request_log_counts_verbs_and_resources() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "r").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "r");
    cms.create(&PostParams::default(), &config_map("c"))
        .await
        .unwrap();
    sandbox.reset_requests();
    cms.get("c").await.unwrap();
    cms.get("c").await.unwrap();
    cms.list(&Default::default()).await.unwrap();
    cms.delete("c", &DeleteParams::default()).await.unwrap();
    let counts = sandbox.request_counts();
    assert_eq!(counts.get("get", "configmaps"), 2);
    assert_eq!(counts.get("list", "configmaps"), 1);
    assert_eq!(counts.get("delete", "configmaps"), 1);
    assert_eq!(counts.total(), 4);
    let log = sandbox.requests();
    assert_eq!(log[0].name.as_deref(), Some("c"));
    assert_eq!(log[0].namespace.as_deref(), Some("r"));
    assert_eq!(log[3].code, 200);

    let (ok, out, err) = cli(&sandbox, &["stats", "--reset"]).await;
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["get"]["configmaps"], 2);
    assert_eq!(
        sandbox.request_counts().total(),
        0,
        "--reset cleared the counters"
    );
}

#[tokio::test]
async fn object_names_lists_what_is_stored_by_group() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "left").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "left");
    cms.create(&PostParams::default(), &config_map("over"))
        .await
        .unwrap();
    let core = sandbox.object_names("");
    assert!(core.contains(&"namespaces/left".to_string()), "{core:?}");
    assert!(
        core.contains(&"configmaps/left/over".to_string()),
        "{core:?}"
    );
    assert!(
        sandbox.object_names("kargo.akuity.io").is_empty(),
        "no Kargo objects were created"
    );
    cms.delete("over", &DeleteParams::default()).await.unwrap();
    assert!(
        !sandbox
            .object_names("")
            .contains(&"configmaps/left/over".to_string())
    );
}

#[tokio::test]
async fn restricted_users_are_forbidden_like_rbac() {
    let sandbox = start_plain().await;
    let admin = client(&sandbox).await;
    namespace(&admin, "p").await;
    let (ok, _, err) = cli(
        &sandbox,
        &[
            "add-user",
            "--name",
            "dev",
            "--token",
            "dev-token",
            "--deny",
            "delete:stages",
            "--deny",
            "promote:stages",
        ],
    )
    .await;
    assert!(ok, "{err}");
    sandbox.add_user(User::new("viewer", "viewer-token").deny("*", "configmaps"));

    let text = std::fs::read_to_string(sandbox.kubeconfig_path())
        .unwrap()
        .replace(sandbox.token(), "dev-token");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev");
    std::fs::write(&path, text).unwrap();
    let dev = client_for(&path).await;
    let stages = kargo_api(&dev, "p", "Stage", "stages");
    let stage = dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": "x", "namespace": "p"},
        "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true}}]}}),
    );
    stages
        .create(&PostParams::default(), &stage)
        .await
        .expect("dev may create stages");
    let e = api_error(stages.delete("x", &DeleteParams::default()).await);
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "stages.kargo.akuity.io \"x\" is forbidden: User \"dev\" cannot delete resource \"stages\" in API group \
         \"kargo.akuity.io\" in the namespace \"p\""
    );
    let can = |user: &str, verb: &str, group: &str, resource: &str, name: &str| {
        let who = Identity::authenticated(user, user == "sandbox-admin");
        let access = Access {
            verb,
            group,
            resource,
            namespace: Some("p"),
            name,
            ..Access::default()
        };
        sandbox.with_txn(|txn| txn.can(&who, &access))
    };
    let can = (
        can("dev", "promote", "kargo.akuity.io", "stages", "x"),
        can("dev", "get", "kargo.akuity.io", "stages", "x"),
        can("sandbox-admin", "promote", "kargo.akuity.io", "stages", "x"),
        can("viewer", "list", "", "configmaps", ""),
    );
    assert_eq!(can, (false, true, true, false));
}

#[tokio::test]
async fn the_clock_moves_forward_on_request() {
    let sandbox = start_plain().await;
    let before = sandbox.now();
    let (ok, out, err) = cli(&sandbox, &["clock", "advance", "1h30m"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("sandbox time is now "), "{out}");
    let moved = sandbox.now().duration_since(before);
    assert!(moved >= jiff::SignedDuration::from_secs(5400), "{moved:?}");
    let txn_now = sandbox.with_txn(|txn| txn.now());
    assert!(txn_now.duration_since(before) >= jiff::SignedDuration::from_secs(5400));
    // New objects are stamped with the sandbox clock.
    let client = client(&sandbox).await;
    namespace(&client, "t").await;
    let ns = Api::<Namespace>::all(client).get("t").await.unwrap();
    let created = ns.metadata.creation_timestamp.unwrap().0;
    assert!(
        created.duration_since(before) >= jiff::SignedDuration::from_secs(5399),
        "{created}"
    );
    let (ok, _, err) = cli(&sandbox, &["clock", "advance", "soon"]).await;
    assert!(!ok && err.contains("invalid duration"), "{err}");
}

#[tokio::test]
async fn kargo_is_wired_in_and_control_commands_reach_it() {
    let sandbox = start(Options::default()).await;
    let client = client(&sandbox).await;
    let projects = Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &kargo_resource("Project", "projects"),
    );
    let project = dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "shop"}}),
    );
    projects
        .create(&PostParams::default(), &project)
        .await
        .unwrap();
    // Kargo's project webhook creates the namespace as a side effect of admission.
    let ns = eventually(Duration::from_secs(5), async || {
        Api::<Namespace>::all(client.clone())
            .get_opt("shop")
            .await
            .unwrap()
    })
    .await
    .expect("the project's namespace");
    assert_eq!(
        ns.metadata
            .labels
            .unwrap_or_default()
            .get("kargo.akuity.io/project")
            .map(String::as_str),
        Some("true")
    );

    let warehouses = kargo_api(&client, "shop", "Warehouse", "warehouses");
    let warehouse = dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/example/app"}}]}}),
    );
    warehouses
        .create(&PostParams::default(), &warehouse)
        .await
        .unwrap();

    let (ok, out, err) = cli(
        &sandbox,
        &[
            "publish",
            "--project",
            "shop",
            "--warehouse",
            "app",
            "--image",
            "ghcr.io/example/app:1.0.0",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let (name, alias) = (field("name"), field("alias"));
    assert!(!name.is_empty() && !alias.is_empty(), "{out}");
    let freight = eventually(Duration::from_secs(5), async || {
        sandbox.get("kargo.akuity.io", "freights", Some("shop"), &name)
    })
    .await;
    assert_eq!(
        freight.expect("published freight is stored")["alias"],
        alias
    );

    // Unknown commands come back as Kargo's error through the control API.
    let e = sandbox.control("no-such-command", &json!({})).unwrap_err();
    assert_eq!(e.code, 404);
    let (ok, _, err) = cli(
        &sandbox,
        &[
            "fault",
            "verification",
            "--project",
            "shop",
            "--stage",
            "dev",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&sandbox, &["clear-faults"]).await;
    assert!(ok, "{err}");
}
