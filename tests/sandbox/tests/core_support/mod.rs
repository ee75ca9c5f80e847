//! Helpers shared by the core test suites: starting sandboxes, kube-rs clients against
//! them, dynamic Kargo APIs, and running the real `kubectl` and `kargo-sandbox` binaries.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use kargo_sandbox::{Options, Sandbox};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// Starts a sandbox and prints how long it took (a measurement, not an assertion).
pub async fn start(opts: Options) -> Sandbox {
    let t = Instant::now();
    let sandbox = Sandbox::start(opts).await.expect("sandbox starts");
    eprintln!("sandbox start-up: {:?}", t.elapsed());
    sandbox
}

/// A sandbox with Kargo's CRDs served but its webhooks and controllers stopped: pure
/// Kubernetes semantics for Kargo kinds, independent of Kargo's own behaviour.
pub async fn start_plain() -> Sandbox {
    let sandbox = start(Options::default()).await;
    sandbox.uninstall_kargo();
    sandbox
}

pub async fn client(sandbox: &Sandbox) -> kube::Client {
    client_for(sandbox.kubeconfig_path()).await
}

pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    kube::Client::try_from(config_for(kubeconfig).await).expect("client")
}

/// A client that does not retry 5xx answers (kube-rs retries 503 by default).
pub async fn client_without_retries(sandbox: &Sandbox) -> kube::Client {
    let mut cfg = config_for(sandbox.kubeconfig_path()).await;
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("client")
}

/// The client configuration of a kubeconfig, to adjust before building a client.
pub async fn config_for(kubeconfig: &Path) -> kube::Config {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config")
}

pub fn kargo_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kargo.akuity.io", "v1alpha1", kind),
        plural,
    )
}

pub fn kargo_api(client: &kube::Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &kargo_resource(kind, plural))
}

pub fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("valid object")
}

/// Creates a namespace through the API.
pub async fn namespace(client: &kube::Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .expect("namespace created");
}

/// The API error of a failed kube-rs call.
pub fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(e)) => *e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Runs `kubectl --kubeconfig <sandbox> args…` and returns (success, stdout, stderr).
pub async fn kubectl(sandbox: &Sandbox, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sandbox.kubeconfig_path())
        .args(args)
        .output()
        .await
        .expect("kubectl runs (is it on PATH?)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like [`kubectl`] but the command must succeed; returns stdout.
pub async fn kubectl_ok(sandbox: &Sandbox, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(sandbox, args).await;
    assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
    out
}

/// Runs the `kargo-sandbox` binary with `args` (plus `--kubeconfig` of `sandbox`).
pub async fn cli(sandbox: &Sandbox, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kargo-sandbox"))
        .args(args)
        .arg("--kubeconfig")
        .arg(sandbox.kubeconfig_path())
        .output()
        .await
        .expect("kargo-sandbox runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub async fn eventually<T>(timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Like [`eventually`], but panics naming `what` when `check` never returns `Some` within
/// `secs` seconds.
pub async fn wait_until<T>(secs: u64, what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually(Duration::from_secs(secs), check)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// A sandbox with Kargo installed and an admin client for it.
pub async fn start_kargo() -> (Sandbox, kube::Client) {
    let sandbox = start(Options::default()).await;
    let client = client(&sandbox).await;
    (sandbox, client)
}

/// The dynamic API of `kind` (a namespace or one of Kargo's kinds), in `ns` or cluster-wide.
pub fn api(client: &kube::Client, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let (group, version, plural) = match kind {
        "Namespace" => ("", "v1", "namespaces"),
        "Project" => ("kargo.akuity.io", "v1alpha1", "projects"),
        "ProjectConfig" => ("kargo.akuity.io", "v1alpha1", "projectconfigs"),
        "Warehouse" => ("kargo.akuity.io", "v1alpha1", "warehouses"),
        "Stage" => ("kargo.akuity.io", "v1alpha1", "stages"),
        "Freight" => ("kargo.akuity.io", "v1alpha1", "freights"),
        "Promotion" => ("kargo.akuity.io", "v1alpha1", "promotions"),
        "PromotionTask" => ("kargo.akuity.io", "v1alpha1", "promotiontasks"),
        other => panic!("no test mapping for {other}"),
    };
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Creates `obj` (its kind and namespace taken from it); returns it as stored.
pub async fn create(client: &kube::Client, obj: Value) -> Result<Value, kube::Error> {
    let kind = obj["kind"]
        .as_str()
        .expect("the object has a kind")
        .to_string();
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
    let created = api(client, &kind, ns.as_deref())
        .create(&PostParams::default(), &dynamic(obj))
        .await?;
    Ok(serde_json::to_value(created).expect("json"))
}

/// The object `kind` `ns`/`name`, if it exists.
pub async fn get(client: &kube::Client, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    let o = api(client, kind, ns)
        .get_opt(name)
        .await
        .expect("get answers");
    o.map(|o| serde_json::to_value(o).expect("json"))
}
