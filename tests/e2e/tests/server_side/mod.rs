//! Server-side apply through a second client (kube-rs), as `kubectl apply --server-side` or
//! kubernetes_manifest would write objects, for the tests that compare with such writers.
//!
//! A test module rather than part of the e2e library so that kube-rs stays a dev-dependency:
//! the library (and the bench binary built on it) does not compile it.

use kargo_e2e::Env;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value as Json;

/// Server-side applies `manifest` to the sandbox of `env` under the field manager `manager`.
#[allow(dead_code)]
pub fn apply(env: &Env, manager: &str, manifest: &Json) {
    apply_as(env, manager, manifest, false);
}

/// [`apply`] taking fields other managers own, as Argo CD's server-side apply does.
#[allow(dead_code)]
pub fn apply_forced(env: &Env, manager: &str, manifest: &Json) {
    apply_as(env, manager, manifest, true);
}

fn apply_as(env: &Env, manager: &str, manifest: &Json, force: bool) {
    let kubeconfig = env.sandbox.kubeconfig_path().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let kubeconfig = Kubeconfig::read_from(&kubeconfig).expect("sandbox kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("client configuration");
        let client = kube::Client::try_from(config).expect("client");
        let (group, version) = manifest["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .expect("apiVersion group/version");
        let kind = manifest["kind"].as_str().expect("kind");
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let name = manifest["metadata"]["name"].as_str().expect("name");
        let api: Api<DynamicObject> = match manifest["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client, ns, &resource),
            None => Api::all_with(client, &resource),
        };
        let params = PatchParams::apply(manager);
        let params = if force { params.force() } else { params };
        api.patch(name, &params, &Patch::Apply(manifest))
            .await
            .unwrap_or_else(|e| panic!("server-side apply of {kind} {name} as {manager}: {e}"));
    });
}
