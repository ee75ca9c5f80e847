//! Broken promotion templates caught by `terraform validate` and `plan`, with no cluster
//! involved: one case per rule, each asserting the exact diagnostics a user gets.

use std::collections::BTreeSet;

use kargo_e2e::{Diagnostic, Env, Output};

/// When a rule can fire: `validate` (and the plan, which validates first), only at `plan`
/// (it needs values of other resources), or only at `apply` (a value unknown at plan).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Validate,
    Plan,
    Apply,
}

struct Case {
    rule: &'static str,
    phase: Phase,
    hcl: &'static str,
    /// (severity, address, summary, detail)
    expect: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

const SYNTAX_CARET: &str = "                                        ^";

const CASES: &[Case] = &[
    Case {
        rule: "unknown key, with the spelling it resembles",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "unknown_key" {
  project = "sv"
  name    = "unknown-key"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses   = "git-clone"
      config = jsonencode({ repoURL = "https://github.com/acme/manifests", checkout = [{ path = "./src", brnch = "main" }] })
    }
  }
}
"#,
        expect: &[(
            "error",
            "kargo_stage.unknown_key",
            "Invalid git-clone config",
            "`promotion_template.steps[0].config`: unknown key \"brnch\" in checkout[0]; did you mean \"branch\"?",
        )],
    },
    Case {
        rule: "required key, in a promotion task",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_promotion_task" "required" {
  project = "sv"
  name    = "required"
  steps {
    uses   = "git-clone"
    config = jsonencode({ repoURL = "https://github.com/acme/manifests", checkout = [{ branch = "main" }] })
  }
}
"#,
        expect: &[(
            "error",
            "kargo_promotion_task.required",
            "Invalid git-clone config",
            "`steps[0].config`: \"path\" is required in checkout[0]",
        )],
    },
    Case {
        rule: "enum, in a cluster promotion task",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_cluster_promotion_task" "enum" {
  name = "enum"
  steps {
    uses   = "git-open-pr"
    config = jsonencode({ repoURL = "https://github.com/acme/manifests", provider = "GitHub", sourceBranch = "next", targetBranch = "main" })
  }
}
"#,
        expect: &[(
            "error",
            "kargo_cluster_promotion_task.enum",
            "Invalid git-open-pr config",
            "`steps[0].config`: \"provider\" must be one of \"azure\", \"bitbucket\", \"gitea\", \"github\" or \"gitlab\" (got \"GitHub\"; did you mean \"github\"?)",
        )],
    },
    Case {
        rule: "type, in config written as a literal string; an expression may stand for a number",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "literal" {
  project = "sv"
  name    = "literal"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses   = "git-open-pr"
      as     = "open-pr"
      config = jsonencode({ repoURL = "https://github.com/acme/manifests", sourceBranch = "next", targetBranch = "main" })
    }
    steps {
      uses   = "git-wait-for-pr"
      config = "{\"repoURL\": \"https://github.com/acme/manifests\", \"prNumber\": \"$${{ outputs['open-pr'].pr.id }}\"}"
    }
    steps {
      uses   = "git-wait-for-pr"
      config = <<-EOT
          {"repoURL": "https://github.com/acme/manifests", "prNumber": "7"}
        EOT
    }
  }
}
"#,
        expect: &[(
            "error",
            "kargo_stage.literal",
            "Invalid git-wait-for-pr config",
            "`promotion_template.steps[2].config`: \"prNumber\" must be an integer, not a string; write the value without quotes",
        )],
    },
    Case {
        rule: "oneOf: mutually exclusive keys",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "exclusive" {
  project = "sv"
  name    = "exclusive"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses   = "git-clone"
      config = jsonencode({ repoURL = "https://github.com/acme/manifests", checkout = [{ path = "./src", branch = "main", tag = "v1.0.0" }] })
    }
  }
}
"#,
        expect: &[(
            "error",
            "kargo_stage.exclusive",
            "Invalid git-clone config",
            "`promotion_template.steps[0].config`: \"branch\" and \"tag\" cannot be set together in checkout[0]; set only one of \"branch\", \"commit\", \"tag\"",
        )],
    },
    Case {
        rule: "expression syntax, with its column",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "syntax" {
  project = "sv"
  name    = "syntax"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    vars {
      name  = "image"
      value = "ghcr.io/acme/api"
    }
    steps {
      uses   = "git-commit"
      config = jsonencode({ path = "./src", message = "promote $${{ imageFrom(vars.image).Tag + }}" })
    }
  }
}
"#,
        expect: &[(
            "error",
            "kargo_stage.syntax",
            "Invalid expression",
            "@SYNTAX@",
        )],
    },
    Case {
        rule: "if: an expression, parsed like any other",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "condition" {
  project = "sv"
  name    = "condition"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses   = "git-clear"
      if     = "true"
      config = jsonencode({ path = "./out" })
    }
    steps {
      uses   = "git-clear"
      if     = "$${{ vars.open == }}"
      config = jsonencode({ path = "./out" })
    }
  }
}
"#,
        expect: &[
            (
                "error",
                "kargo_stage.condition",
                "Condition is not an expression",
                "`promotion_template.steps[0].if`: `if` must be an expression that evaluates to true or false, such as `${{ vars.enabled == 'true' }}`; Kargo fails the step when the condition is a plain string like \"true\".",
            ),
            (
                "error",
                "kargo_stage.condition",
                "Invalid expression",
                "`promotion_template.steps[1].if`: In the condition, column 18: the expression ends where a value is expected.\n\n    ${{ vars.open == }}\n                     ^",
            ),
        ],
    },
    Case {
        rule: "outputs name an earlier step's alias",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "outputs" {
  project = "sv"
  name    = "outputs"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses   = "git-clone"
      as     = "clone"
      config = jsonencode({ repoURL = "https://github.com/acme/manifests", checkout = [{ path = "./src", branch = "$${{ outputs.push.branch }}" }] })
    }
    steps {
      uses   = "git-push"
      as     = "push"
      config = jsonencode({ path = "./src", targetBranch = "$${{ outputs.clon.branch }}" })
    }
  }
}
"#,
        expect: &[
            (
                "error",
                "kargo_stage.outputs",
                "Step output read before the step runs",
                "`promotion_template.steps[0].config`: `outputs.push` in checkout[0].branch names step 1, which runs after this one (step 0); a step can only read the outputs of the steps before it.",
            ),
            (
                "error",
                "kargo_stage.outputs",
                "Unknown step alias",
                "`promotion_template.steps[1].config`: `outputs.clon` in targetBranch: no step before this one has the alias \"clon\"; give the step that produces it `as = \"clon\"`. Did you mean `outputs.clone`?",
            ),
        ],
    },
    Case {
        rule: "task.outputs only inside a task",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "task_outputs" {
  project = "sv"
  name    = "task-outputs"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses   = "git-push"
      config = jsonencode({ path = "./src", targetBranch = "$${{ task.outputs.x.branch }}" })
    }
  }
}
"#,
        expect: &[(
            "error",
            "kargo_stage.task_outputs",
            "task.outputs outside a task",
            "`promotion_template.steps[0].config`: `task.outputs.x` in targetBranch: `task` is only defined for the steps of a promotion task; a stage's steps read outputs as `outputs.x`.",
        )],
    },
    Case {
        rule: "inside a task: task.outputs for its steps; vars declared by the task",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_promotion_task" "in_task" {
  project = "sv"
  name    = "in-task"
  steps {
    uses   = "git-push"
    as     = "push"
    config = jsonencode({ path = "./out", generateTargetBranch = true })
  }
  steps {
    uses   = "git-open-pr"
    config = jsonencode({ repoURL = "$${{ vars.repo }}", sourceBranch = "$${{ outputs.push.branch }}", targetBranch = "main" })
  }
}
"#,
        expect: &[
            (
                "error",
                "kargo_promotion_task.in_task",
                "Task step outputs are read with task.outputs",
                "`steps[1].config`: `outputs.push` in sourceBranch: inside a promotion task, Kargo prefixes the aliases of the task's steps, so a step reads another's outputs as `task.outputs.push`.",
            ),
            (
                "warning",
                "kargo_promotion_task.in_task",
                "Variable not declared by the task",
                "`steps[1].config`: `vars.repo` in repoURL is not declared in the task's `vars` or the step's; every stage that runs the task must define it. Declare it in the task's `vars` (without a value to require it from the stage).",
            ),
        ],
    },
    Case {
        rule: "vars defined by the stage, the template or the step",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "vars" {
  project = "sv"
  name    = "vars"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    vars {
      name  = "gitRepo"
      value = "https://github.com/acme/manifests"
    }
    steps {
      uses   = "git-clone"
      config = jsonencode({ repoURL = "$${{ vars.gitrepo }}", checkout = [{ path = "./src" }] })
    }
  }
}
"#,
        expect: &[(
            "error",
            "kargo_stage.vars",
            "Undefined variable",
            "`promotion_template.steps[0].config`: `vars.gitrepo` in repoURL is not defined by the stage, its promotion template or the step; Kargo would evaluate it to null. Define it in `vars`. Did you mean `vars.gitRepo`?",
        )],
    },
    Case {
        rule: "a step that is not a built-in: a warning, no schema error",
        phase: Phase::Validate,
        hcl: r#"
resource "kargo_stage" "custom" {
  project = "sv"
  name    = "custom"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses   = "acme-notify"
      config = jsonencode({ channel = "deploys" })
    }
  }
}
"#,
        expect: &[(
            "warning",
            "kargo_stage.custom",
            "Step config not checked",
            "`promotion_template.steps[0].config`: \"acme-notify\" is not a built-in step of Kargo v1.11.2 (a custom or Akuity Platform step?), so its config cannot be checked before a promotion runs it.",
        )],
    },
    Case {
        rule: "a task's variables supplied by the stage that runs it (the task in the same configuration)",
        phase: Phase::Plan,
        hcl: r#"
resource "kargo_promotion_task" "deploy" {
  project = kargo_project.sv.name
  name    = "deploy"
  vars { name = "region" }
  vars {
    name  = "image"
    value = "ghcr.io/acme/api"
  }
  steps {
    uses   = "kustomize-set-image"
    config = jsonencode({
      path   = "./src/$${{ vars.region }}/$${{ vars.env }}"
      images = [{ image = "$${{ vars.image }}", tag = "$${{ imageFrom(vars.image).Tag }}" }]
    })
  }
}

resource "kargo_stage" "runs_task" {
  project = kargo_project.sv.name
  name    = "runs-task"
  requested_freight {
    origin { name = kargo_warehouse.app.name }
    sources { direct = true }
  }
  promotion_template {
    steps {
      task { name = kargo_promotion_task.deploy.name }
    }
    steps {
      uses   = "fail"
      config = jsonencode({ message = "$${{ imageFrom('ghcr.io/acme/web').Tag }}" })
    }
  }
}
"#,
        expect: &[
            (
                "warning",
                "kargo_promotion_task.deploy",
                "Variable not declared by the task",
                "`steps[0].config`: `vars.env` in path is not declared in the task's `vars` or the step's; every stage that runs the task must define it. Declare it in the task's `vars` (without a value to require it from the stage).",
            ),
            (
                "error",
                "kargo_stage.runs_task",
                "Missing task variable",
                "`promotion_template.steps[0].task`: The task \"deploy\" needs a value for its variable \"region\", which has no default: set it in this step's `vars` (or the stage's). Kargo refuses to create the promotion otherwise.",
            ),
            (
                "error",
                "kargo_stage.runs_task",
                "Variable missing for the task",
                "`promotion_template.steps[0].task`: Step 0 of the task \"deploy\" reads `vars.env`, which neither the task nor this stage defines: add it to this step's `vars`.",
            ),
            (
                "warning",
                "kargo_stage.runs_task",
                "No warehouse subscribes to this repository",
                "`promotion_template.steps[1].config`: imageFrom(\"ghcr.io/acme/web\") reads an image repository that none of the warehouses this stage requests freight from (\"app\") subscribes to, so it finds nothing when the promotion runs. Subscribe a warehouse to it, or correct the repository.",
            ),
        ],
    },
    Case {
        rule: "config from jsonencode over a map with a value unknown until apply",
        phase: Phase::Apply,
        hcl: r#"
resource "terraform_data" "dir" {
  input = "./out"
}

resource "kargo_stage" "late" {
  project = kargo_project.sv.name
  name    = "late"
  requested_freight {
    origin { name = kargo_warehouse.app.name }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses   = "git-clear"
      config = jsonencode({ path = terraform_data.dir.output, keep = true })
    }
  }
}
"#,
        expect: &[(
            "error",
            "kargo_stage.late",
            "Invalid git-clear config",
            "`promotion_template.steps[0].config`: unknown key \"keep\"; the keys are \"path\"",
        )],
    },
];

/// The project and warehouse the plan- and apply-time cases refer to.
const PIPELINE: &str = r#"
resource "kargo_project" "sv" {
  name = "sv"
}

resource "kargo_warehouse" "app" {
  project = kargo_project.sv.name
  name    = "app"
  subscriptions {
    image { repo_url = "ghcr.io/acme/api" }
  }
}
"#;

fn syntax_detail() -> String {
    format!(
        "`promotion_template.steps[0].config`: In message, column 41: the expression ends where a \
         value is expected.\n\n    promote ${{{{ imageFrom(vars.image).Tag + }}}}\n    {SYNTAX_CARET}"
    )
}

fn expected(phase: Phase) -> BTreeSet<Diagnostic> {
    CASES
        .iter()
        .filter(|c| c.phase == phase)
        .flat_map(|c| c.expect.iter())
        .map(|(severity, address, summary, detail)| Diagnostic {
            severity: severity.to_string(),
            address: address.to_string(),
            summary: summary.to_string(),
            detail: if *detail == "@SYNTAX@" {
                syntax_detail()
            } else {
                detail.to_string()
            },
        })
        .collect()
}

fn hcl(phase: Phase) -> String {
    CASES
        .iter()
        .filter(|c| c.phase == phase)
        .map(|c| format!("# {}\n{}", c.rule, c.hcl))
        .collect()
}

#[track_caller]
fn assert_diagnostics(out: &Output, expect: &BTreeSet<Diagnostic>) {
    let found: BTreeSet<Diagnostic> = out.json_diagnostics().into_iter().collect();
    let missing: Vec<_> = expect.difference(&found).collect();
    let extra: Vec<_> = found.difference(expect).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing:\n{missing:#?}\nunexpected:\n{extra:#?}\noutput:\n{}",
        out.all()
    );
}

#[test]
fn broken_templates_fail_validate_and_plan_with_exact_diagnostics() {
    let env = Env::new();

    // Rules a resource's own configuration decides: validate and plan say the same.
    env.config(&hcl(Phase::Validate));
    let expect = expected(Phase::Validate);
    assert!(expect.len() >= 14, "every validate-time rule has a case");
    let validate = env.tf.run(&["validate", "-json"]).failed();
    assert_diagnostics(&validate, &expect);
    let plan = env.tf.run(&["plan", "-json"]).failed();
    assert_diagnostics(&plan, &expect);

    // Rules across resources: validate cannot know the task's and the warehouse's values
    // (they are references), the plan does.
    env.config(&format!("{PIPELINE}{}", hcl(Phase::Plan)));
    let validate = env.tf.run(&["validate", "-json"]).ok();
    let task_only: BTreeSet<Diagnostic> = expected(Phase::Plan)
        .into_iter()
        .filter(|d| d.address.starts_with("kargo_promotion_task."))
        .collect();
    assert_diagnostics(&validate, &task_only);
    let plan = env.tf.run(&["plan", "-json"]).failed();
    assert_diagnostics(&plan, &expected(Phase::Plan));
    env.assert_no_requests("planning new pipeline objects reads nothing from the cluster");

    // A config built from a value known only at apply: skipped by validate and plan, checked
    // by the plan Terraform makes at apply once the value is known, before anything is written.
    env.config(&format!("{PIPELINE}{}", hcl(Phase::Apply)));
    let validate = env.tf.run(&["validate", "-json"]).ok();
    assert_diagnostics(&validate, &BTreeSet::new());
    let plan = env.tf.run(&["plan", "-json"]).ok();
    assert_diagnostics(&plan, &BTreeSet::new());
    let apply = env.tf.run(&["apply", "-auto-approve", "-json"]).failed();
    assert_diagnostics(&apply, &expected(Phase::Apply));
    assert!(env.get("warehouses", Some("sv"), "app").is_some());
    assert!(
        env.get("stages", Some("sv"), "late").is_none(),
        "the stage with the broken config is never written"
    );
}
