//! A typo is an error: one misspelt key at each depth of each resource and data source fails
//! `terraform validate` (no cluster needed) with Terraform's own message, on the line that has
//! it, instead of being dropped on the way to the provider.

use kargo_e2e::Env;
use serde_json::Value as Json;

/// One configuration with every resource and data source and every nested block once, valid
/// as it stands. Each case below misspells one line of it.
const BASE: &str = r##"
resource "kargo_project" "p" {
  name           = "shop"
  keep_namespace = false

  promotion_policies {
    auto_promotion_enabled = true
    stage_selector {
      name = "glob:dev*"
      match_expressions {
        key      = "tier"
        operator = "In"
        values   = ["dev"]
      }
    }
  }

  webhook_receivers {
    name = "gh"
    github {
      secret_ref { name = "gh-secret" }
    }
  }
  webhook_receivers {
    name = "jfrog"
    artifactory {
      virtual_repo_name = "virtual"
      secret_ref { name = "jfrog-secret" }
    }
  }
  webhook_receivers {
    name = "ci"
    generic {
      secret_ref { name = "ci-secret" }
      actions {
        when_expression = "true"
        target_selection_criteria {
          name = "app"
          label_selector {
            match_labels = { team = "shop" }
            match_expressions {
              key      = "team"
              operator = "Exists"
            }
          }
          index_selector {
            match_indices {
              key      = "subscribedURLs"
              operator = "Equals"
              value    = "ghcr.io/acme/app"
            }
          }
        }
      }
    }
  }

  freight_links {
    title = "Build"
    url   = "https://ci.example.com/{{ .freight.metadata.name }}"
  }
  stage_links {
    title       = "Logs"
    url         = "https://logs.example.com"
    description = "Stage logs"
  }

  timeouts { create = "5m" }
}

resource "kargo_warehouse" "w" {
  project  = kargo_project.p.name
  name     = "app"
  interval = "10m"
  freight_creation_criteria { expression = "true" }

  subscriptions {
    image {
      repo_url       = "ghcr.io/acme/app"
      strict_semvers = false
    }
  }
  subscriptions {
    git {
      repo_url = "https://github.com/acme/app.git"
      branch   = "main"
    }
  }
  subscriptions {
    chart {
      repo_url          = "oci://ghcr.io/acme/charts/app"
      semver_constraint = "^1.0.0"
    }
  }
  subscriptions {
    generic {
      type   = "s3"
      name   = "bundles"
      config = jsonencode({ bucket = "acme" })
    }
  }

  timeouts { delete = "5m" }
}

resource "kargo_promotion_task" "t" {
  project = kargo_project.p.name
  name    = "update"

  vars { name = "repo" }
  steps {
    uses   = "git-clone"
    config = jsonencode({ repoURL = "$${{ vars.repo }}", checkout = [{ branch = "main", path = "./src" }] })
    retry { error_threshold = 3 }
    vars {
      name  = "depth"
      value = "1"
    }
  }

  timeouts { create = "1m" }
}

resource "kargo_cluster_promotion_task" "c" {
  name = "notify"

  vars {
    name  = "channel"
    value = "#deploys"
  }
  steps {
    uses              = "http"
    continue_on_error = true
    config            = jsonencode({ url = "https://hooks.example.com" })
  }
}

resource "kargo_stage" "s" {
  project = kargo_project.p.name
  name    = "prod"
  shard   = "eu"

  vars {
    name  = "env"
    value = "prod"
  }

  requested_freight {
    origin { name = kargo_warehouse.w.name }
    sources {
      stages             = ["staging"]
      required_soak_time = "30m"
      auto_promotion_options { selection_policy = "MatchUpstream" }
    }
  }

  promotion_template {
    vars {
      name  = "region"
      value = ""
    }
    steps {
      uses   = "git-clone"
      as     = "clone"
      config = jsonencode({ repoURL = "https://github.com/acme/gitops.git", checkout = [{ branch = "main", path = "./src" }] })
      retry { timeout = "10m" }
    }
    steps {
      task {
        name = kargo_promotion_task.t.name
        kind = "PromotionTask"
      }
      vars {
        name  = "repo"
        value = "https://github.com/acme/gitops.git"
      }
    }
  }

  verification {
    analysis_templates { name = "smoke" }
    analysis_run_metadata { labels = { team = "shop" } }
    args {
      name  = "url"
      value = "https://prod.example.com"
    }
  }

  timeouts { create = "3m" }
}

resource "kargo_promotion" "to_prod" {
  project = kargo_project.p.name
  stage   = kargo_stage.s.name
  wait    = false

  freight_selector {
    warehouse          = kargo_warehouse.w.name
    version_constraint = "^1.0"
    image { repo_url = "ghcr.io/acme/app" }
  }

  timeouts { create = "30m" }
}

resource "kargo_freight_approval" "hotfix" {
  project = kargo_project.p.name
  stage   = kargo_stage.s.name

  freight_selector {
    warehouse = kargo_warehouse.w.name
    chart {
      repo_url = "https://charts.example.com"
      name     = "app-chart"
    }
  }

  timeouts { delete = "2m" }
}

resource "kargo_promotion" "by_commit" {
  project = kargo_project.p.name
  stage   = kargo_stage.s.name

  freight_selector {
    warehouse = "app"
    git { repo_url = "https://github.com/acme/app.git" }
  }
}

data "kargo_freight" "newest" {
  project           = "shop"
  verified_in_stage = "staging"

  freight_selector {
    warehouse = "api"
    image { repo_url = "ghcr.io/acme/api" }
  }
}

data "kargo_stage" "prod" {
  project = "shop"
  name    = "production"
}

data "kargo_warehouse" "app" {
  project = "shop"
  name    = "app"
}
"##;

/// What Terraform says about the misspelt key.
enum Expect {
    /// "Unsupported argument", naming the argument Terraform thinks was meant.
    Argument(&'static str),
    /// "Unsupported argument" with nothing close enough to suggest.
    ArgumentWithoutSuggestion,
    /// "Unsupported block type", naming the block type Terraform thinks was meant.
    Block(&'static str),
}

/// One misspelling: in the block of `address`, the first line of [`BASE`] that reads `line`
/// (trimmed), with `key` written as `typo`.
struct Typo {
    address: &'static str,
    line: &'static str,
    key: &'static str,
    typo: &'static str,
    expect: Expect,
}

const fn typo(
    address: &'static str,
    line: &'static str,
    key: &'static str,
    typo: &'static str,
    expect: Expect,
) -> Typo {
    Typo {
        address,
        line,
        key,
        typo,
        expect,
    }
}

/// `resource "kargo_stage" "s"` for `kargo_stage.s`, `data "kargo_freight" "x"` for
/// `data.kargo_freight.x`: the context line Terraform shows above the snippet.
fn context(address: &str) -> String {
    let parts: Vec<&str> = address.split('.').collect();
    match parts.as_slice() {
        ["data", ty, name] => format!("data \"{ty}\" \"{name}\""),
        [ty, name] => format!("resource \"{ty}\" \"{name}\""),
        _ => panic!("not an address: {address}"),
    }
}

/// The diagnostics of `terraform validate -json` that are errors.
fn validation_errors(env: &Env) -> Vec<Json> {
    let out = env.tf.run(&["validate", "-json"]);
    let report: Json = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("validate -json printed no JSON ({e}):\n{}", out.all()));
    assert_eq!(report["valid"], false, "{report}");
    report["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["severity"] == "error")
        .cloned()
        .collect()
}

/// Writes [`BASE`] with one typo at a time and checks what `terraform validate` says.
fn assert_typos_rejected(cases: &[Typo]) {
    let env = Env::new();
    env.config("");
    env.tf.write("pipeline.tf", BASE);
    let out = env.tf.run(&["validate"]);
    assert!(
        out.success(),
        "the base configuration is valid:\n{}",
        out.all()
    );

    for case in cases {
        let lines: Vec<&str> = BASE.lines().collect();
        let at = (0..lines.len())
            .find(|i| lines[*i].trim() == case.line)
            .unwrap_or_else(|| panic!("{:?} is not a line of BASE", case.line));
        let misspelt = lines[at].replacen(case.key, case.typo, 1);
        assert_ne!(
            misspelt, lines[at],
            "{} is not on {:?}",
            case.key, case.line
        );
        let mut edited = lines.clone();
        edited[at] = &misspelt;
        env.tf.write("pipeline.tf", &edited.join("\n"));

        let errors = validation_errors(&env);
        let what = format!("{} `{}` for `{}`", case.address, case.typo, case.key);
        let (unsupported, others): (Vec<&Json>, Vec<&Json>) = errors.iter().partition(|e| {
            e["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("Unsupported"))
        });
        assert_eq!(
            unsupported.len(),
            1,
            "{what}: one error on the typo: {errors:#?}"
        );
        // Misspelling what is required also leaves it missing, which Terraform says too.
        let missing = [
            (
                "Missing required argument".to_string(),
                format!(
                    "The argument \"{}\" is required, but no definition was found.",
                    case.key
                ),
            ),
            (
                format!("Missing {} block", case.key),
                format!("A block of type \"{}\" is required here.", case.key),
            ),
            (
                format!("Insufficient {} blocks", case.key),
                format!("At least 1 \"{}\" blocks are required.", case.key),
            ),
        ];
        for other in &others {
            let said = (
                other["summary"].as_str().unwrap_or_default().to_string(),
                other["detail"].as_str().unwrap_or_default().to_string(),
            );
            assert!(missing.contains(&said), "{what}: unexpected {other:#}");
        }
        assert!(others.len() <= 1, "{what}: {errors:#?}");
        let error = unsupported[0];
        let (summary, detail) = match case.expect {
            Expect::Argument(meant) => (
                "Unsupported argument",
                format!(
                    "An argument named \"{}\" is not expected here. Did you mean \"{meant}\"?",
                    case.typo
                ),
            ),
            Expect::ArgumentWithoutSuggestion => (
                "Unsupported argument",
                format!("An argument named \"{}\" is not expected here.", case.typo),
            ),
            Expect::Block(meant) => (
                "Unsupported block type",
                format!(
                    "Blocks of type \"{}\" are not expected here. Did you mean \"{meant}\"?",
                    case.typo
                ),
            ),
        };
        assert_eq!(error["summary"], summary, "{what}: {error:#}");
        assert_eq!(error["detail"], detail.as_str(), "{what}: {error:#}");
        // The line in pipeline.tf that has the typo, in the block of that resource.
        assert_eq!(
            error["range"]["filename"], "pipeline.tf",
            "{what}: {error:#}"
        );
        assert_eq!(
            error["range"]["start"]["line"],
            at + 1,
            "{what}: the line with the typo: {error:#}"
        );
        assert_eq!(
            error["snippet"]["context"],
            context(case.address).as_str(),
            "{what}: {error:#}"
        );
        assert_eq!(
            error["snippet"]["code"].as_str().map(str::trim),
            Some(misspelt.trim()),
            "{what}: {error:#}"
        );
    }
    env.assert_no_requests("validation needs no cluster");
}

use Expect::{Argument, ArgumentWithoutSuggestion, Block};

#[test]
fn a_typo_anywhere_in_a_project_is_an_error() {
    let p = "kargo_project.p";
    assert_typos_rejected(&[
        typo(
            p,
            "keep_namespace = false",
            "keep_namespace",
            "keep_namespce",
            Argument("keep_namespace"),
        ),
        typo(
            p,
            "promotion_policies {",
            "promotion_policies",
            "promotion_policie",
            Block("promotion_policies"),
        ),
        typo(
            p,
            "auto_promotion_enabled = true",
            "auto_promotion_enabled",
            "auto_promotion_enable",
            Argument("auto_promotion_enabled"),
        ),
        typo(p, "name = \"glob:dev*\"", "name", "nme", Argument("name")),
        typo(p, "key      = \"tier\"", "key", "kye", Argument("key")),
        typo(p, "github {", "github", "githubb", Block("github")),
        typo(
            p,
            "secret_ref { name = \"gh-secret\" }",
            "secret_ref",
            "secret_rf",
            Block("secret_ref"),
        ),
        typo(
            p,
            "secret_ref { name = \"ci-secret\" }",
            "name",
            "nam",
            Argument("name"),
        ),
        typo(
            p,
            "virtual_repo_name = \"virtual\"",
            "virtual_repo_name",
            "virtual_repo_nam",
            Argument("virtual_repo_name"),
        ),
        typo(
            p,
            "when_expression = \"true\"",
            "when_expression",
            "when_expresion",
            Argument("when_expression"),
        ),
        typo(
            p,
            "target_selection_criteria {",
            "target_selection_criteria",
            "target_selection_criterion",
            Block("target_selection_criteria"),
        ),
        typo(p, "name = \"app\"", "name", "nmae", Argument("name")),
        typo(
            p,
            "match_labels = { team = \"shop\" }",
            "match_labels",
            "match_label",
            Argument("match_labels"),
        ),
        typo(
            p,
            "operator = \"Exists\"",
            "operator",
            "operatr",
            Argument("operator"),
        ),
        typo(
            p,
            "index_selector {",
            "index_selector",
            "index_selectr",
            Block("index_selector"),
        ),
        typo(
            p,
            "value    = \"ghcr.io/acme/app\"",
            "value",
            "vaule",
            Argument("value"),
        ),
        typo(p, "title = \"Build\"", "title", "titel", Argument("title")),
        typo(
            p,
            "description = \"Stage logs\"",
            "description",
            "descripton",
            Argument("description"),
        ),
        typo(
            p,
            "timeouts { create = \"5m\" }",
            "create",
            "creat",
            Argument("create"),
        ),
        typo(
            p,
            "timeouts { create = \"5m\" }",
            "create",
            "on_create",
            ArgumentWithoutSuggestion,
        ),
    ]);
}

#[test]
fn a_typo_anywhere_in_a_warehouse_is_an_error() {
    let w = "kargo_warehouse.w";
    assert_typos_rejected(&[
        typo(
            w,
            "interval = \"10m\"",
            "interval",
            "intervl",
            Argument("interval"),
        ),
        typo(
            w,
            "freight_creation_criteria { expression = \"true\" }",
            "expression",
            "expresion",
            Argument("expression"),
        ),
        typo(
            w,
            "subscriptions {",
            "subscriptions",
            "subscription",
            Block("subscriptions"),
        ),
        // The issue's own example: `strict_semver` for `strict_semvers`.
        typo(
            w,
            "strict_semvers = false",
            "strict_semvers",
            "strict_semver",
            Argument("strict_semvers"),
        ),
        typo(
            w,
            "branch   = \"main\"",
            "branch",
            "brnch",
            Argument("branch"),
        ),
        typo(
            w,
            "semver_constraint = \"^1.0.0\"",
            "semver_constraint",
            "semver_constrant",
            Argument("semver_constraint"),
        ),
        typo(w, "type   = \"s3\"", "type", "tpye", Argument("type")),
        typo(
            w,
            "timeouts { delete = \"5m\" }",
            "delete",
            "delet",
            Argument("delete"),
        ),
    ]);
}

#[test]
fn a_typo_anywhere_in_a_stage_is_an_error() {
    let s = "kargo_stage.s";
    assert_typos_rejected(&[
        typo(s, "shard   = \"eu\"", "shard", "shrd", Argument("shard")),
        typo(s, "value = \"prod\"", "value", "valeu", Argument("value")),
        typo(
            s,
            "requested_freight {",
            "requested_freight",
            "requested_freights",
            Block("requested_freight"),
        ),
        typo(
            s,
            "origin { name = kargo_warehouse.w.name }",
            "origin",
            "orign",
            Block("origin"),
        ),
        typo(
            s,
            "origin { name = kargo_warehouse.w.name }",
            "name",
            "nme",
            Argument("name"),
        ),
        typo(
            s,
            "stages             = [\"staging\"]",
            "stages",
            "stage",
            Argument("stages"),
        ),
        // The issue's own example: a soak time that would have vanished.
        typo(
            s,
            "required_soak_time = \"30m\"",
            "required_soak_time",
            "required_soak_tme",
            Argument("required_soak_time"),
        ),
        typo(
            s,
            "auto_promotion_options { selection_policy = \"MatchUpstream\" }",
            "selection_policy",
            "selection_polcy",
            Argument("selection_policy"),
        ),
        typo(s, "value = \"\"", "value", "vale", Argument("value")),
        typo(s, "as     = \"clone\"", "as", "ass", Argument("as")),
        // The issue's other example: a step with its `config` misspelt.
        typo(
            s,
            "config = jsonencode({ repoURL = \"https://github.com/acme/gitops.git\", checkout = [{ branch = \"main\", path = \"./src\" }] })",
            "config",
            "confg",
            Argument("config"),
        ),
        typo(
            s,
            "retry { timeout = \"10m\" }",
            "timeout",
            "timout",
            Argument("timeout"),
        ),
        typo(
            s,
            "kind = \"PromotionTask\"",
            "kind",
            "knd",
            Argument("kind"),
        ),
        typo(
            s,
            "value = \"https://github.com/acme/gitops.git\"",
            "value",
            "valu",
            Argument("value"),
        ),
        typo(
            s,
            "analysis_templates { name = \"smoke\" }",
            "analysis_templates",
            "analysis_template",
            Block("analysis_templates"),
        ),
        typo(
            s,
            "analysis_run_metadata { labels = { team = \"shop\" } }",
            "labels",
            "label",
            Argument("labels"),
        ),
        typo(
            s,
            "value = \"https://prod.example.com\"",
            "value",
            "vlaue",
            Argument("value"),
        ),
        typo(
            s,
            "timeouts { create = \"3m\" }",
            "create",
            "craete",
            Argument("create"),
        ),
    ]);
}

#[test]
fn a_typo_anywhere_in_a_promotion_task_is_an_error() {
    let t = "kargo_promotion_task.t";
    let c = "kargo_cluster_promotion_task.c";
    assert_typos_rejected(&[
        typo(
            t,
            "vars { name = \"repo\" }",
            "name",
            "naem",
            Argument("name"),
        ),
        typo(
            t,
            "config = jsonencode({ repoURL = \"$${{ vars.repo }}\", checkout = [{ branch = \"main\", path = \"./src\" }] })",
            "config",
            "conifg",
            Argument("config"),
        ),
        typo(
            t,
            "retry { error_threshold = 3 }",
            "error_threshold",
            "error_treshold",
            Argument("error_threshold"),
        ),
        typo(t, "value = \"1\"", "value", "vaue", Argument("value")),
        typo(
            t,
            "timeouts { create = \"1m\" }",
            "timeouts",
            "timeout",
            Block("timeouts"),
        ),
        typo(
            c,
            "value = \"#deploys\"",
            "value",
            "valeu",
            Argument("value"),
        ),
        typo(
            c,
            "continue_on_error = true",
            "continue_on_error",
            "continue_on_eror",
            Argument("continue_on_error"),
        ),
        typo(
            c,
            "uses              = \"http\"",
            "uses",
            "use",
            Argument("uses"),
        ),
    ]);
}

#[test]
fn a_typo_anywhere_in_a_promotion_or_an_approval_is_an_error() {
    let p = "kargo_promotion.to_prod";
    let a = "kargo_freight_approval.hotfix";
    let g = "kargo_promotion.by_commit";
    assert_typos_rejected(&[
        typo(
            p,
            "version_constraint = \"^1.0\"",
            "version_constraint",
            "version_constrant",
            Argument("version_constraint"),
        ),
        typo(
            p,
            "image { repo_url = \"ghcr.io/acme/app\" }",
            "repo_url",
            "repo_ur",
            Argument("repo_url"),
        ),
        typo(
            p,
            "timeouts { create = \"30m\" }",
            "create",
            "creat",
            Argument("create"),
        ),
        typo(
            a,
            "warehouse = kargo_warehouse.w.name",
            "warehouse",
            "warehous",
            Argument("warehouse"),
        ),
        typo(
            a,
            "name     = \"app-chart\"",
            "name",
            "nmae",
            Argument("name"),
        ),
        typo(
            a,
            "timeouts { delete = \"2m\" }",
            "delete",
            "dleete",
            Argument("delete"),
        ),
        typo(
            g,
            "git { repo_url = \"https://github.com/acme/app.git\" }",
            "git",
            "gti",
            Block("git"),
        ),
    ]);
}

#[test]
fn a_typo_anywhere_in_a_data_source_is_an_error() {
    let f = "data.kargo_freight.newest";
    assert_typos_rejected(&[
        typo(
            f,
            "verified_in_stage = \"staging\"",
            "verified_in_stage",
            "verified_in_stag",
            Argument("verified_in_stage"),
        ),
        typo(
            f,
            "warehouse = \"api\"",
            "warehouse",
            "warehose",
            Argument("warehouse"),
        ),
        typo(
            f,
            "image { repo_url = \"ghcr.io/acme/api\" }",
            "image",
            "imag",
            Block("image"),
        ),
        typo(
            "data.kargo_stage.prod",
            "name    = \"production\"",
            "name",
            "nam",
            Argument("name"),
        ),
        typo(
            "data.kargo_warehouse.app",
            "name    = \"app\"",
            "name",
            "nmae",
            Argument("name"),
        ),
    ]);
}

#[test]
fn the_attribute_syntax_of_earlier_versions_asks_for_a_block() {
    // What a configuration written for the provider before blocks gets: a pointer to the
    // block it should be.
    let env = Env::new();
    env.config("");
    env.tf.write(
        "pipeline.tf",
        r#"
resource "kargo_stage" "s" {
  project = "shop"
  name    = "prod"
  requested_freight = [{
    origin  = { name = "app" }
    sources = { direct = true }
  }]
}
"#,
    );
    let errors = validation_errors(&env);
    let summaries: Vec<(&str, &str, i64)> = errors
        .iter()
        .map(|e| {
            (
                e["summary"].as_str().unwrap_or_default(),
                e["detail"].as_str().unwrap_or_default(),
                e["range"]["start"]["line"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        summaries.contains(&(
            "Unsupported argument",
            "An argument named \"requested_freight\" is not expected here. Did you mean to define a block of type \"requested_freight\"?",
            5
        )),
        "{errors:#?}"
    );
    assert!(
        summaries.contains(&(
            "Insufficient requested_freight blocks",
            "At least 1 \"requested_freight\" blocks are required.",
            2
        )),
        "{errors:#?}"
    );
    env.assert_no_requests("validation needs no cluster");
}
