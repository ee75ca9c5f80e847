//! One test's world: a fresh in-process sandbox and a Terraform working directory whose
//! provider block points at it.

use std::time::{Duration, Instant};

use kargo_sandbox::{Options, Sandbox};
use serde_json::Value as Json;

use crate::terraform::Terraform;

pub const KARGO: &str = "kargo.akuity.io";

pub struct Env {
    pub sandbox: Sandbox,
    pub tf: Terraform,
}

fn start(options: Options) -> Sandbox {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(Sandbox::start(options))
        .expect("start the sandbox")
}

impl Env {
    /// A sandbox with Kargo installed.
    pub fn new() -> Self {
        Self::with_options(Options::default())
    }

    /// A sandbox where Kargo is not installed yet (`install_kargo` later).
    pub fn without_kargo() -> Self {
        Self::with_options(Options::default().without_kargo())
    }

    pub fn with_options(options: Options) -> Self {
        Self {
            sandbox: start(options),
            tf: Terraform::new(),
        }
    }

    /// The provider block that connects to this sandbox through its kubeconfig.
    pub fn provider_block(&self) -> String {
        format!(
            "terraform {{\n  required_providers {{\n    kargo = {{ source = \"dokaseca/kargo\" }}\n  }}\n}}\n\nprovider \"kargo\" {{\n  config_path = \"{}\"\n}}\n",
            self.sandbox.kubeconfig_path().display()
        )
    }

    /// Writes `main.tf` as the provider block followed by `resources`.
    pub fn config(&self, resources: &str) {
        self.tf
            .write_main(&format!("{}\n{resources}", self.provider_block()));
    }

    /// An object in the sandbox, as a client would read it.
    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Json> {
        let group = if matches!(resource, "namespaces" | "secrets" | "configmaps") {
            ""
        } else {
            KARGO
        };
        self.sandbox.get(group, resource, namespace, name)
    }

    /// Waits (bounded) for `cond` on the sandbox; panics with `what` when it never holds.
    #[track_caller]
    pub fn eventually(&self, what: &str, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}
