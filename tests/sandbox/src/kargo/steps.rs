//! The seam through which Promotion steps run. The default runner simulates Kargo's built-in
//! steps (each succeeds, `fail` fails with its message); the real one (`runner`) plugs in here.

use serde_json::Value;

use super::util::str_at;
use crate::hooks::Txn;

/// Everything a step sees when it runs.
pub struct StepContext<'a> {
    /// The store, read-only: Secrets for credentials, Warehouses for the `*From` functions.
    pub txn: &'a dyn Txn,
    /// The Promotion object (vars, freight collection, actor).
    pub object: &'a Value,
    /// `status.stepExecutionMetadata` so far (the current step's entry included).
    pub metas: &'a [Value],
    pub project: &'a str,
    pub stage: &'a str,
    pub promotion: &'a str,
    /// The Freight being promoted (the full object).
    pub freight: &'a Value,
    /// Promotion vars followed by the step's own vars (`[{name, value}]`).
    pub vars: Vec<Value>,
    /// Outputs of the steps that ran before, keyed by alias.
    pub state: &'a Value,
    pub alias: &'a str,
    /// 0-based position in the inflated step list.
    pub index: usize,
}

/// How a step ended (or that it needs more time), as Kargo's engine tells the cases apart.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// Done; `message` (usually empty) says what the sandbox only emulated.
    Succeeded { output: Value, message: String },
    /// The step decided there was nothing to do (e.g. `git-commit` without changes).
    Skipped { output: Value },
    /// A business failure that no retry fixes; the message becomes the step's and the
    /// Promotion's (`step "<alias>": <message>`).
    Failed(String),
    /// A technical failure; it counts towards the step's error threshold and is retried
    /// below it (`error running step "<alias>": <message>`).
    Errored(String),
    /// A technical failure no retry fixes (`an unrecoverable error occurred: …`).
    Unrecoverable(String),
    /// The step could not even be prepared (its config's expressions failed); the message is
    /// the step's as it is.
    Invalid(String),
    /// Not finished yet; the controller calls the runner again later.
    Running,
    /// Ran, and waits for something outside (a pull request to be merged): Kargo's `Running`
    /// with an output, which goes into the state at once.
    Waiting { output: Value },
    /// A business failure with an output for the state (Kargo's `Failed` result that carries
    /// one, e.g. `git-wait-for-pr` on a closed pull request).
    FailedWith { message: String, output: Value },
}

impl StepOutcome {
    pub fn succeeded(output: Value) -> StepOutcome {
        StepOutcome::Succeeded {
            output,
            message: String::new(),
        }
    }
}

/// Runs one Promotion step. It is called with the store locked, so slow work (network,
/// disk) belongs on another thread: answer `Running` until it is done and the controller
/// asks again on a later tick.
pub trait StepRunner: Send + Sync {
    fn run(&self, ctx: &StepContext<'_>, step: &Value) -> StepOutcome;

    /// Whether the controller holds each step `Running` for the configured step duration
    /// before asking this runner (so clients can watch simulated steps run).
    fn paced(&self, _ctx: &StepContext<'_>) -> bool {
        true
    }

    /// The Promotion ended or went away: drop whatever the runner keeps for it.
    fn forget(&self, _project: &str, _promotion: &str) {}
}

/// Kargo v1.11's open-source built-in step kinds.
pub const BUILTIN_STEPS: &[&str] = &[
    "argocd-update",
    "argocd-wait",
    "compose-output",
    "copy",
    "delete",
    "fail",
    "file-write",
    "git-clear",
    "git-clone",
    "git-commit",
    "git-merge-pr",
    "git-open-pr",
    "git-push",
    "git-tag",
    "git-wait-for-pr",
    "github-push",
    "helm-template",
    "helm-update-chart",
    "http",
    "http-download",
    "json-parse",
    "json-update",
    "kustomize-build",
    "kustomize-set-image",
    "oci-download",
    "oci-push",
    "set-freight-alias",
    "set-metadata",
    "toml-parse",
    "toml-update",
    "untar",
    "yaml-merge",
    "yaml-parse",
    "yaml-update",
];

/// The message Kargo gives a step whose kind no runner is registered for.
pub fn unregistered_message(kind: &str) -> String {
    format!(
        "step kind {kind:?} is not registered; verify the kind is correct; if you are a Kargo Enterprise user, you may need to enable the promotion controller"
    )
}

/// Succeeds every built-in step except `fail`, which fails with `failed: <config.message>`.
#[derive(Default)]
pub struct SimulatedSteps;

impl StepRunner for SimulatedSteps {
    fn run(&self, _ctx: &StepContext<'_>, step: &Value) -> StepOutcome {
        match str_at(step, "uses") {
            "fail" => {
                let message = str_at(step, "config.message");
                StepOutcome::Failed(if message.is_empty() {
                    "failed".to_string()
                } else {
                    format!("failed: {message}")
                })
            }
            "compose-output" => StepOutcome::succeeded(
                step.get("config")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default())),
            ),
            _ => StepOutcome::succeeded(Value::Object(Default::default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kargo::testkit::FakeTxn;
    use serde_json::json;

    fn ctx<'a>(txn: &'a FakeTxn, freight: &'a Value, state: &'a Value) -> StepContext<'a> {
        StepContext {
            txn,
            object: freight,
            metas: &[],
            project: "p",
            stage: "s",
            promotion: "x",
            freight,
            vars: vec![],
            state,
            alias: "step-1",
            index: 0,
        }
    }

    #[test]
    fn simulated_runner() {
        let (f, s, t) = (json!({}), json!({}), FakeTxn::new());
        let r = SimulatedSteps;
        assert_eq!(
            r.run(
                &ctx(&t, &f, &s),
                &json!({"uses": "fail", "config": {"message": "nope"}})
            ),
            StepOutcome::Failed("failed: nope".into())
        );
        assert_eq!(
            r.run(&ctx(&t, &f, &s), &json!({"uses": "fail"})),
            StepOutcome::Failed("failed".into())
        );
        assert!(matches!(
            r.run(&ctx(&t, &f, &s), &json!({"uses": "git-clone"})),
            StepOutcome::Succeeded { .. }
        ));
    }
}
