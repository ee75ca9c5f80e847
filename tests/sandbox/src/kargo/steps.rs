//! The seam through which Promotion steps run. The default runner simulates Kargo's built-in
//! steps (each succeeds, `fail` fails with its message); a runner doing real work plugs in here.

use serde_json::Value;

use super::util::str_at;

/// Everything a step sees when it runs.
pub struct StepContext<'a> {
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

/// How a step ended (or that it needs more time).
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    Succeeded {
        output: Value,
    },
    /// A business failure; the message becomes the step's and the Promotion's.
    Failed(String),
    /// A technical failure.
    Errored(String),
    /// Not finished yet; the controller calls the runner again later.
    Running,
}

/// Runs one Promotion step. It is called with the store locked, so slow work (network,
/// disk) belongs on another thread: answer `Running` until it is done and the controller
/// asks again on a later tick.
pub trait StepRunner: Send + Sync {
    fn run(&self, ctx: &StepContext<'_>, step: &Value) -> StepOutcome;
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
            "compose-output" => StepOutcome::Succeeded {
                output: step
                    .get("config")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default())),
            },
            _ => StepOutcome::Succeeded {
                output: Value::Object(Default::default()),
            },
        }
    }
}

/// Evaluates a step's `if`. Only the status functions and literals are understood; anything
/// else is an error rather than a guess.
pub fn evaluate_if(expr: &str, had_failure: bool) -> Result<bool, String> {
    let trimmed = expr.trim();
    let inner = trimmed
        .strip_prefix("${{")
        .and_then(|s| s.strip_suffix("}}"))
        .map(str::trim)
        .unwrap_or(trimmed);
    let (negate, body) = match inner.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, inner),
    };
    let value = match body {
        "true" => true,
        "false" => false,
        "always()" => true,
        "success()" => !had_failure,
        "failure()" => had_failure,
        _ => {
            return Err(format!(
                "expression {expr:?} cannot be evaluated by the sandbox"
            ));
        }
    };
    Ok(value != negate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(freight: &'a Value, state: &'a Value) -> StepContext<'a> {
        StepContext {
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
        let (f, s) = (json!({}), json!({}));
        let r = SimulatedSteps;
        assert_eq!(
            r.run(
                &ctx(&f, &s),
                &json!({"uses": "fail", "config": {"message": "nope"}})
            ),
            StepOutcome::Failed("failed: nope".into())
        );
        assert_eq!(
            r.run(&ctx(&f, &s), &json!({"uses": "fail"})),
            StepOutcome::Failed("failed".into())
        );
        assert!(matches!(
            r.run(&ctx(&f, &s), &json!({"uses": "git-clone"})),
            StepOutcome::Succeeded { .. }
        ));
    }

    #[test]
    fn if_expressions() {
        assert_eq!(evaluate_if("${{ always() }}", true), Ok(true));
        assert_eq!(evaluate_if("${{ failure() }}", false), Ok(false));
        assert_eq!(evaluate_if("${{ success() }}", false), Ok(true));
        assert_eq!(evaluate_if("${{ !success() }}", true), Ok(true));
        assert_eq!(evaluate_if("false", false), Ok(false));
        assert!(evaluate_if("${{ vars.x == 'y' }}", false).is_err());
    }
}
