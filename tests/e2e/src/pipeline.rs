//! The promotion pipeline most end-to-end tests start from (project `shop`, image warehouse
//! `app`, stages built to order) as HCL, and what tests do to it in Kargo: publish, promote, wait.

use std::fmt;
use std::ops::Deref;
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::json;

use crate::Env;
use crate::env::{KARGO, Transport};

/// The project every [`Pipeline`] declares (as `kargo_project.p`).
pub const PROJECT: &str = "shop";
/// Its image warehouse (`kargo_warehouse.app`).
pub const WAREHOUSE: &str = "app";
/// The image that warehouse subscribes to.
pub const IMAGE: &str = "ghcr.io/acme/app";
/// How long a test waits for Kargo to reach a state before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The project `shop`, its image warehouse `app` and the clone-and-push steps stages promote
/// with; the project has no auto-promotion, so each test decides what every stage holds.
const BASE: &str = r#"
resource "kargo_project" "p" {
  name = "shop"
}

resource "kargo_warehouse" "app" {
  project = kargo_project.p.name
  name    = "app"
  subscriptions {
    image { repo_url = "ghcr.io/acme/app" }
  }
}

locals {
  steps = [
    {
      uses   = "git-clone"
      as     = "clone"
      config = jsonencode({ repoURL = "https://github.com/acme/manifests", checkout = [{ branch = "main", path = "./out" }] })
    },
    { uses = "git-push", as = "push", config = jsonencode({ path = "./out" }) },
  ]
}
"#;

/// The promotion template of every stage with steps: the shared steps of `local.steps`, one
/// `steps` block each, written with a `dynamic` block.
const STEPS_FROM_LOCALS: &str = "  promotion_template {
    dynamic \"steps\" {
      for_each = local.steps
      content {
        uses   = steps.value.uses
        as     = steps.value.as
        config = steps.value.config
      }
    }
  }
";

/// A pipeline configuration, built stage by stage.
///
/// ```no_run
/// use kargo_e2e::pipeline::{Pipeline, Sources, applied};
///
/// // `dev` takes freight straight from the warehouse, `prod` once it has been through `dev`
/// // and soaked for an hour.
/// let env = applied(
///     &Pipeline::new()
///         .stage("dev", Sources::direct())
///         .stage("prod", Sources::after("dev").soak("1h"))
///         .hcl(),
/// );
/// ```
pub struct Pipeline {
    hcl: String,
}

impl Pipeline {
    /// The project and its image warehouse, no stages yet.
    pub fn new() -> Self {
        Self {
            hcl: BASE.to_string(),
        }
    }

    /// Adds a warehouse subscribed to the `main` branch of the Git repository `repo_url`.
    pub fn git_warehouse(mut self, name: &str, repo_url: &str) -> Self {
        self.hcl.push_str(&format!(
            "\nresource \"kargo_warehouse\" \"{name}\" {{\n  project = kargo_project.p.name\n  name    = \"{name}\"\n  subscriptions {{\n    git {{\n      repo_url = \"{repo_url}\"\n      branch   = \"main\"\n    }}\n  }}\n}}\n"
        ));
        self
    }

    /// Adds a stage that takes freight from `sources` and promotes with the shared steps.
    pub fn stage(self, name: &str, sources: Sources) -> Self {
        self.add_stage(name, sources, STEPS_FROM_LOCALS)
    }

    /// Adds a control-flow stage: one with no promotion steps.
    pub fn control_flow_stage(self, name: &str, sources: Sources) -> Self {
        self.add_stage(name, sources, "")
    }

    fn add_stage(mut self, name: &str, sources: Sources, template: &str) -> Self {
        let Sources { warehouse, hcl } = sources;
        self.hcl.push_str(&format!(
            "\nresource \"kargo_stage\" \"{name}\" {{\n  project = kargo_project.p.name\n  name    = \"{name}\"\n  requested_freight {{\n    origin {{ name = kargo_warehouse.{warehouse}.name }}\n    sources {{\n      {hcl}\n    }}\n  }}\n{template}}}\n"
        ));
        self
    }

    /// The configuration, to follow the provider block.
    pub fn hcl(self) -> String {
        self.hcl
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a stage takes its freight from: the `sources` of its one requested freight.
pub struct Sources {
    warehouse: String,
    hcl: String,
}

impl Sources {
    /// Freight straight from the warehouse `app`.
    pub fn direct() -> Self {
        Self {
            warehouse: WAREHOUSE.to_string(),
            hcl: "direct = true".to_string(),
        }
    }

    /// Freight from warehouse `app` once it has been through `stage`.
    pub fn after(stage: &str) -> Self {
        Self {
            warehouse: WAREHOUSE.to_string(),
            hcl: format!("stages = [kargo_stage.{stage}.name]"),
        }
    }

    /// Freight that has also soaked for `duration` (a Kargo duration such as `10m`).
    pub fn soak(mut self, duration: &str) -> Self {
        self.hcl
            .push_str(&format!("\n      required_soak_time = \"{duration}\""));
        self
    }

    /// Freight from `warehouse` instead of `app`.
    pub fn from_warehouse(mut self, warehouse: &str) -> Self {
        self.warehouse = warehouse.to_string();
        self
    }
}

/// HCL built on first use and then used like a string constant (`{PIPELINE}` in a format
/// string, `&PIPELINE` as a `&str`), so a test file names its configuration once:
/// `static PIPELINE: Hcl = Hcl::new(|| Pipeline::new().stage(...).hcl());`.
pub struct Hcl(LazyLock<String>);

impl Hcl {
    pub const fn new(build: fn() -> String) -> Self {
        Self(LazyLock::new(build))
    }
}

impl Deref for Hcl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// A fresh sandbox with `resources` applied.
pub fn applied(resources: &str) -> Env {
    applied_over(resources, Transport::Kubernetes)
}

/// A fresh sandbox with `resources` applied by a provider that connects through `transport`.
pub fn applied_over(resources: &str, transport: Transport) -> Env {
    let env = Env::over(transport);
    env.config(resources);
    env.tf.apply().ok();
    env
}

/// A registry publishes `image:tag` for `warehouse` of `project`; returns the new freight's
/// (name, alias).
pub fn publish_image(
    env: &Env,
    project: &str,
    warehouse: &str,
    image: &str,
    tag: &str,
) -> (String, String) {
    let out = env
        .sandbox
        .control(
            "publish",
            &json!({"project": project, "warehouse": warehouse,
                    "images": [{"repoURL": image, "tag": tag}]}),
        )
        .unwrap_or_else(|e| panic!("publish {image}:{tag}: {e:?}"));
    (
        out["name"].as_str().expect("freight name").to_string(),
        out["alias"].as_str().expect("freight alias").to_string(),
    )
}

/// A registry publishes `ghcr.io/acme/app:<tag>`; returns the new freight's (name, alias).
pub fn publish(env: &Env, tag: &str) -> (String, String) {
    publish_image(env, PROJECT, WAREHOUSE, IMAGE, tag)
}

/// Promotes `freight` into `stage` as Kargo's UI would; returns the Promotion's name.
pub fn promote(env: &Env, stage: &str, freight: &str) -> String {
    let out = env
        .sandbox
        .control(
            "promote",
            &json!({"project": PROJECT, "stage": stage, "freight": freight}),
        )
        .expect("promote");
    out["name"].as_str().expect("promotion name").to_string()
}

/// Waits until Kargo has verified `freight` in `stage`.
#[track_caller]
pub fn wait_verified(env: &Env, freight: &str, stage: &str) {
    env.eventually(&format!("{freight} verified in {stage}"), WAIT, |e| {
        e.get("freights", Some(PROJECT), freight)
            .is_some_and(|f| f["status"]["verifiedIn"].get(stage).is_some())
    });
}

/// The freight `stage` of `project` holds from `warehouse`: its newest freight history entry.
pub fn held_in(env: &Env, project: &str, warehouse: &str, stage: &str) -> Option<String> {
    env.get("stages", Some(project), stage)?["status"]["freightHistory"][0]["items"]
        [format!("Warehouse/{warehouse}")]["name"]
        .as_str()
        .map(str::to_string)
}

/// The freight `stage` of the pipeline holds from its warehouse `app`.
pub fn held(env: &Env, stage: &str) -> Option<String> {
    held_in(env, PROJECT, WAREHOUSE, stage)
}

/// Waits until `stage` of the pipeline holds `freight`.
#[track_caller]
pub fn wait_holds(env: &Env, stage: &str, freight: &str) {
    env.eventually(&format!("stage {stage} to hold {freight}"), WAIT, |e| {
        held(e, stage).as_deref() == Some(freight)
    });
}

/// Records (`approved`) or withdraws `freight`'s approval for `stage` in its status, as
/// `kargo approve` would, without the provider; withdrawing asserts it was approved.
#[track_caller]
pub fn set_approval(env: &Env, freight: &str, stage: &str, approved: bool) {
    env.sandbox.with_txn(|txn| {
        let mut f = txn
            .get(KARGO, "freights", Some(PROJECT), freight)
            .unwrap_or_else(|| panic!("freight {freight} not in the sandbox"));
        if approved {
            f["status"]["approvedFor"][stage] = json!({"approvedAt": "2025-01-01T00:00:00Z"});
        } else {
            let withdrawn = f["status"]["approvedFor"]
                .as_object_mut()
                .and_then(|approvals| approvals.remove(stage));
            assert!(
                withdrawn.is_some(),
                "{freight} was not approved for {stage}: {}",
                f["status"]
            );
        }
        txn.update_status(f).expect("approval recorded");
    });
}
