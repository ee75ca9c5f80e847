//! One test's world: a fresh in-process sandbox and a Terraform working directory whose
//! provider block points at it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kargo_sandbox::{Options, Sandbox};
use serde_json::{Value as Json, json};

use crate::terraform::Terraform;

pub const KARGO: &str = "kargo.akuity.io";

/// The kinds a pipeline is made of, by plural, with the resource type that manages each (the
/// ProjectConfig is part of `kargo_project`).
const ADOPTABLE: [(&str, &str); 5] = [
    ("projects", "kargo_project"),
    ("warehouses", "kargo_warehouse"),
    ("promotiontasks", "kargo_promotion_task"),
    ("clusterpromotiontasks", "kargo_cluster_promotion_task"),
    ("stages", "kargo_stage"),
];

/// The `terraform` block every configuration starts with: the provider under test.
const REQUIRED_PROVIDERS: &str =
    "terraform {\n  required_providers {\n    kargo = { source = \"dokaseca/kargo\" }\n  }\n}\n\n";

pub struct Env {
    pub sandbox: Sandbox,
    pub tf: Terraform,
    /// Which API the provider block connects through.
    pub transport: Transport,
}

/// The two ways the provider connects: the Kubernetes API (a kubeconfig) or Kargo's own API
/// server (the `api_server` block, logged in as admin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Kubernetes,
    ApiServer,
}

/// Generates one `#[test]` per transport for each `fn name(transport: Transport)` named:
/// `name::kubernetes` and `name::api_server`, so one test body covers both.
#[macro_export]
macro_rules! over_both_transports {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn kubernetes() {
                super::$name($crate::env::Transport::Kubernetes);
            }
            #[test]
            fn api_server() {
                super::$name($crate::env::Transport::ApiServer);
            }
        }
    )+};
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

    /// A sandbox started from the state directory `dir` (`kargo-sandbox serve --state-dir`):
    /// the objects saved there, served again.
    pub fn from_state_dir(dir: &Path) -> Self {
        Self::with_options(Options::default().state_dir(dir))
    }

    fn with_options(options: Options) -> Self {
        Self {
            sandbox: start(options),
            tf: Terraform::new(),
            transport: Transport::Kubernetes,
        }
    }

    /// A sandbox with Kargo installed, which the provider block reaches through `transport`.
    /// Kargo's API server offers HTTP/2, as the real one (Go's net/http) does.
    pub fn over(transport: Transport) -> Self {
        Self::over_with(transport, Options::default())
    }

    /// [`Env::without_kargo`], reached through `transport`.
    pub fn without_kargo_over(transport: Transport) -> Self {
        Self::over_with(transport, Options::default().without_kargo())
    }

    fn over_with(transport: Transport, options: Options) -> Self {
        let options = match transport {
            Transport::ApiServer => options.http2(),
            Transport::Kubernetes => options,
        };
        Self {
            transport,
            ..Self::with_options(options)
        }
    }

    /// The provider block that connects to this sandbox: through its kubeconfig, or through
    /// Kargo's API server as admin, trusting the sandbox's CA.
    pub fn provider_block(&self) -> String {
        match self.transport {
            Transport::Kubernetes => format!(
                "{REQUIRED_PROVIDERS}provider \"kargo\" {{\n  config_path = \"{}\"\n}}\n",
                self.sandbox.kubeconfig_path().display()
            ),
            Transport::ApiServer => api_server_provider(self, self.sandbox.admin_password()),
        }
    }

    /// Writes `main.tf` as the provider block followed by `resources`.
    pub fn config(&self, resources: &str) {
        self.tf
            .write_main(&format!("{}\n{resources}", self.provider_block()));
    }

    /// The import round trip: forgets `address`, adopts it again from `resources` plus an
    /// import block for `id`, and asserts the plan is empty afterwards.
    #[track_caller]
    pub fn import_round_trip(&self, address: &str, id: &str, resources: &str) {
        self.tf.run(&["state", "rm", address]).ok();
        self.config(&format!(
            "{resources}\nimport {{\n  to = {address}\n  id = \"{id}\"\n}}\n"
        ));
        self.tf.apply().ok();
        self.tf.assert_no_changes();
    }

    /// Adopts every pipeline object in the sandbox into a fresh working directory, as someone
    /// taking over what exists does: an import block per object, then `terraform plan
    /// -generate-config-out`. Returns that directory, the configuration Terraform generated
    /// and how many objects it imports; the plan has written nothing yet.
    pub fn adopt_with_generated_config(&self) -> (Terraform, String, usize) {
        let mut imports = String::new();
        let mut count = 0;
        for (plural, resource_type) in ADOPTABLE {
            let objects = self.sandbox.with_txn(|txn| txn.list(KARGO, plural, None));
            for object in objects {
                let field = |key: &str| object["metadata"][key].as_str().map(str::to_string);
                let name = field("name").unwrap_or_default();
                let namespace = field("namespace");
                let id = match &namespace {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name.clone(),
                };
                let label: String = id
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                imports.push_str(&format!(
                    "import {{
  to = {resource_type}.o_{label}
  id = \"{id}\"
}}

"
                ));
                count += 1;
            }
        }
        let adopter = Terraform::new();
        adopter.write_main(&format!(
            "{}
{imports}",
            self.provider_block()
        ));
        let out = adopter.run(&["plan", "-generate-config-out=generated.tf"]);
        assert!(
            out.success(),
            "plan -generate-config-out failed (exit {}):\n{}",
            out.code,
            out.all()
        );
        let generated = std::fs::read_to_string(adopter.path().join("generated.tf"))
            .expect("Terraform wrote generated.tf");
        (adopter, generated, count)
    }

    /// Creates a namespace already labelled as a Kargo project's, holding Secrets given as
    /// (name, data key, value), all at once: Kargo adopts the namespace, so the Secrets exist
    /// before the project does.
    pub fn project_namespace(&self, namespace: &str, secrets: &[(&str, &str, &str)]) {
        self.sandbox.with_txn(|txn| {
            txn.create(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {"kargo.akuity.io/project": "true"}}}))
                .expect("create namespace");
            for (name, key, value) in secrets {
                txn.create(secret(namespace, name, key, value))
                    .expect("create secret");
            }
        });
    }

    /// Creates a Secret holding one `key`, as `kubernetes_secret` would.
    pub fn secret(&self, namespace: &str, name: &str, key: &str, value: &str) {
        self.sandbox.with_txn(|txn| {
            txn.create(secret(namespace, name, key, value))
                .expect("create secret");
        });
    }

    /// Asserts that every request the sandbox has logged went through the provider block's
    /// transport: Kargo's REST routes (`/v1beta1/…`) over the API server, never them over the
    /// Kubernetes API.
    #[track_caller]
    pub fn assert_went_through_transport(&self) {
        let requests = self.sandbox.requests();
        let rest = |r: &kargo_sandbox::RequestRecord| r.path.starts_with("/v1beta1/");
        match self.transport {
            Transport::ApiServer => {
                let other: Vec<String> = requests
                    .iter()
                    .filter(|r| !rest(r))
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect();
                assert!(
                    !requests.is_empty() && other.is_empty(),
                    "requests outside Kargo's API server: {other:?}"
                );
            }
            Transport::Kubernetes => {
                let other: Vec<&str> = requests
                    .iter()
                    .filter(|r| rest(r))
                    .map(|r| r.path.as_str())
                    .collect();
                assert!(other.is_empty(), "REST requests: {other:?}");
            }
        }
    }

    /// Asserts the provider has sent nothing to the cluster; `why` says why it needs none.
    #[track_caller]
    pub fn assert_no_requests(&self, why: &str) {
        let requests = self.sandbox.requests();
        assert!(requests.is_empty(), "{why}: {requests:?}");
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

    /// Destroys everything and asserts each of `objects` (resource plural, namespace, name),
    /// the project `project` and its namespace are gone from the cluster.
    #[track_caller]
    pub fn destroy_and_assert_gone(&self, project: &str, objects: &[(&str, Option<&str>, &str)]) {
        self.tf.destroy().ok();
        for (res, ns, name) in objects {
            assert!(
                self.get(res, *ns, name).is_none(),
                "{res}/{name} still present after destroy"
            );
        }
        assert!(
            self.get("projects", None, project).is_none(),
            "project {project} still present after destroy"
        );
        assert!(
            self.get("namespaces", None, project).is_none(),
            "namespace {project} still present after destroy"
        );
        self.assert_went_through_transport();
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

/// A provider block with explicit connection settings instead of the kubeconfig: `host` and
/// `token` as given, and the CA certificate of `env`'s sandbox.
pub fn explicit_provider(env: &Env, host: &str, token: &str) -> String {
    format!(
        "{REQUIRED_PROVIDERS}provider \"kargo\" {{\n  host                   = \"{host}\"\n  token                  = \"{token}\"\n  cluster_ca_certificate = <<-PEM\n{}\nPEM\n}}\n",
        env.sandbox.ca_pem().trim_end()
    )
}

impl Env {
    /// For an example whose provider block connects through a kubeconfig: over the API server,
    /// an override file (merged into its provider block by Terraform) that connects through
    /// Kargo's API server instead; over the Kubernetes API, nothing.
    pub fn connect_example(&self) {
        if self.transport != Transport::ApiServer {
            return;
        }
        self.tf.write(
            "transport_override.tf",
            &format!(
                "provider \"kargo\" {{\n  config_path    = null\n  config_context = null\n  api_server {{\n    url            = \"{}\"\n    admin_password = \"{}\"\n    ca_certificate = <<-PEM\n{}\nPEM\n  }}\n}}\n",
                self.sandbox.server_url(),
                self.sandbox.admin_password(),
                self.sandbox.ca_pem().trim_end()
            ),
        );
    }
}

/// A provider block that works through the sandbox's Kargo API server with `admin_password`.
pub fn api_server_provider(env: &Env, admin_password: &str) -> String {
    format!(
        "{REQUIRED_PROVIDERS}provider \"kargo\" {{\n  api_server {{\n    url            = \"{}\"\n    admin_password = \"{admin_password}\"\n    ca_certificate = <<-PEM\n{}\nPEM\n  }}\n}}\n",
        env.sandbox.server_url(),
        env.sandbox.ca_pem().trim_end()
    )
}

fn secret(namespace: &str, name: &str, key: &str, value: &str) -> Json {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace}, "stringData": {key: value}})
}

/// The directory of the repository's example `name` (`hub-cluster`, `migration`, `resources`).
pub fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}
