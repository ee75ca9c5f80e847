//! `make bench`: measures the provider against its performance budget and prints one table
//! of times, ratios, request counts and memory. Informational; never part of `make test`.
//!
//! The budget: start-up + handshake under 20 ms; `terraform plan` of N Kargo resources within
//! 1.5x of the same plan over N `terraform_data` (N = 10, 100, 1000); one GET per resource per
//! refresh and one PATCH per create; provider peak RSS under 40 MB at N = 1000. It also shows
//! what checking promotion templates costs: validate and plan of 100 six-step stages, checks
//! on and off, and what the plan-time promotion preview costs: the quickstart's plan with the
//! preview on and off, and how often a plan fetches each Git repository (at most once)
//! (`bench preview` runs only that part). Last, the shared reads: the requests and time of one
//! plan of N promotions, approvals and freight data sources (also alone: `bench reads`,
//! `make bench BENCH=reads`). And the two transports side by side: the same workloads through
//! the Kubernetes API and through Kargo's API server (also alone: `bench rest`,
//! `make bench BENCH=rest`).
//!
//! Beside kargo and the built-in `terraform_data`, every workload also runs on the example
//! provider of the plugin crate (`terraform-provider-echo`, whose resource stores what it is
//! given): a plugin provider with a schema of the same shape and no API behind it. It pays
//! what every plugin provider pays (start-up, AutoMTLS, schema, RPCs) and `terraform_data`
//! does not, so kargo / echo is the provider's own cost and echo / terraform_data Terraform's
//! cost of a plugin.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use kargo_e2e::terraform::{binary, provider_dir, reattach_providers};
use kargo_e2e::{Env, Output, Terraform};

/// go-plugin's handshake cookie for Terraform providers (a fixed public value).
const MAGIC_COOKIE: (&str, &str) = (
    "TF_PLUGIN_MAGIC_COOKIE",
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
);
const STARTS: usize = 21;
const PLAN_RUNS: usize = 5;
const SIZES: [usize; 3] = [10, 100, 1000];
const TEMPLATE_STAGES: usize = 100;
const TEMPLATE_STEPS: usize = 6;

const PREVIEW_RATIO_BUDGET: f64 = 1.5;
const STARTUP_BUDGET: Duration = Duration::from_millis(20);
const PLAN_RATIO_BUDGET: f64 = 1.5;
const RSS_BUDGET_KB: u64 = 40 * 1024;

/// The example provider of the plugin crate, built next to the provider's release build.
const ECHO_ADDRESS: &str = "registry.terraform.io/example/echo";

fn echo_dir() -> PathBuf {
    provider_dir().join("examples")
}

/// One line of the report.
struct Row {
    what: String,
    value: String,
    budget: String,
    met: Option<bool>,
}

impl Row {
    fn new(what: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            value: value.into(),
            budget: String::new(),
            met: None,
        }
    }

    fn budget(mut self, budget: impl Into<String>, met: bool) -> Self {
        self.budget = budget.into();
        self.met = Some(met);
        self
    }
}

fn main() -> ExitCode {
    let outcome = match std::env::args().nth(1).as_deref() {
        // `bench reads` (`make bench BENCH=reads`): only the shared-reads budget.
        Some("reads") => reads::run(),
        // `bench rest` (`make bench BENCH=rest`): only the two transports side by side.
        Some("rest") => rest::run(),
        _ => run().and_then(|report| {
            print_report(&report);
            if report.side_by_side.is_empty() {
                // `bench preview`: that part alone.
                return Ok(());
            }
            println!();
            reads::run()?;
            println!();
            rest::run()
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The two tables of the report: plan and apply times side by side, and the budget.
struct Report {
    side_by_side: Vec<SideBySide>,
    budget: Vec<Row>,
}

/// One measure of the same workload on the three providers.
struct SideBySide {
    n: usize,
    what: &'static str,
    kargo: Duration,
    echo: Duration,
    builtin: Duration,
    /// The ARCHITECTURE.md budget for kargo / terraform_data, when there is one.
    budget: Option<f64>,
}

fn run() -> Result<Report, String> {
    let provider = provider_dir().join("terraform-provider-kargo");
    if !provider_dir().ends_with("release") {
        return Err(format!(
            "the bench measures the release build, but {} is not one: set KARGO_PROVIDER_DIR \
             to target/release (`make bench` does)",
            provider.display()
        ));
    }
    let echo = echo_dir().join("terraform-provider-echo");
    if !echo.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p tfplugin --example \
             terraform-provider-echo` (`make bench` does)",
            echo.display()
        ));
    }
    if std::env::args().nth(1).as_deref() == Some("preview") {
        eprintln!("the quickstart's plan with the promotion preview on and off…");
        return Ok(Report {
            side_by_side: Vec::new(),
            budget: preview_rows()?,
        });
    }
    eprintln!(
        "provider: {}\nexample provider: {}\nterraform: {}",
        provider.display(),
        echo.display(),
        terraform_version()
    );
    let mut budget = Vec::new();
    let mut side_by_side = Vec::new();

    eprintln!("measuring provider start-up and handshake ({STARTS} starts each)…");
    let startup = median_startup(&provider)?;
    let echo_startup = median_startup(&echo)?;
    budget.push(
        Row::new(
            format!("provider start + handshake (AutoMTLS, median of {STARTS})"),
            format!("{:.1} ms (echo: {:.1} ms)", ms(startup), ms(echo_startup)),
        )
        .budget("< 20 ms", startup < STARTUP_BUDGET),
    );

    eprintln!("fixed cost of a plan (no warehouses)…");
    let (kargo_fixed, echo_fixed, builtin_fixed) = fixed_cost()?;
    side_by_side.push(SideBySide {
        n: 0,
        what: "plan (project only)",
        kargo: kargo_fixed,
        echo: echo_fixed,
        builtin: builtin_fixed,
        budget: None,
    });

    for n in SIZES {
        eprintln!("N = {n}: terraform_data…");
        let builtin = measure_terraform_data(n)?;
        eprintln!("N = {n}: echo_store…");
        let echo = measure_echo(n)?;
        eprintln!("N = {n}: kargo_warehouse…");
        let kargo = measure_kargo(n)?;
        for (what, pick, limit) in [
            (
                "plan, new resources",
                (|t: &Timings| t.plan_create) as fn(&Timings) -> Duration,
                Some(PLAN_RATIO_BUDGET),
            ),
            (
                "plan, after apply",
                |t: &Timings| t.plan_refresh,
                Some(PLAN_RATIO_BUDGET),
            ),
            ("apply (create)", |t: &Timings| t.apply, None),
        ] {
            side_by_side.push(SideBySide {
                n,
                what,
                kargo: pick(&kargo),
                echo: pick(&echo),
                builtin: pick(&builtin),
                budget: limit,
            });
        }
        let gets = kargo.refresh_gets as f64 / (n + 1) as f64;
        budget.push(
            Row::new(
                format!("N={n:<4} GETs per resource per refresh"),
                format!(
                    "{gets:.2} ({} requests in all for {} resources)",
                    kargo.refresh_requests,
                    n + 1
                ),
            )
            .budget(
                "1",
                kargo.refresh_gets == n as u64 + 1 && kargo.refresh_requests == n as u64 + 1,
            ),
        );
        let patches = kargo.create_patches as f64 / n as f64;
        budget.push(
            Row::new(
                format!("N={n:<4} PATCHes per warehouse created"),
                format!("{patches:.2}"),
            )
            .budget("1", kargo.create_patches == n as u64),
        );
    }

    eprintln!("{TEMPLATE_STAGES} stages of {TEMPLATE_STEPS} steps: template checks on and off…");
    budget.extend(step_check_rows()?);

    eprintln!("the quickstart's plan with the promotion preview on and off…");
    budget.extend(preview_rows()?);

    eprintln!("N = 1000: provider peak memory in -debug (reattach) mode…");
    let kargo_rss = {
        let env = Env::new();
        let config = kargo_config(&env, 1000);
        // The sandbox stays up until the end of this block.
        let Env { sandbox, tf, .. } = env;
        let rss = peak_rss_kb(&provider, tf, &config)?;
        drop(sandbox);
        rss
    };
    eprintln!("N = 1000: example provider peak memory…");
    let echo_rss = {
        let tf = echo_terraform("");
        peak_rss_kb(&echo, tf, &echo_config(1000))?
    };
    match (kargo_rss, echo_rss) {
        (Some(kb), Some(echo_kb)) => budget.push(
            Row::new(
                "N=1000 provider peak RSS (VmHWM, plan + apply + plan)",
                format!(
                    "{:.1} MB (echo: {:.1} MB)",
                    kb as f64 / 1024.0,
                    echo_kb as f64 / 1024.0
                ),
            )
            .budget("< 40 MB", kb < RSS_BUDGET_KB),
        ),
        _ => budget.push(Row::new("N=1000 provider peak RSS", "n/a (needs /proc)")),
    }
    Ok(Report {
        side_by_side,
        budget,
    })
}

fn median_startup(binary: &Path) -> Result<Duration, String> {
    Ok(median(
        (0..STARTS)
            .map(|_| time_to_handshake(binary))
            .collect::<Result<Vec<_>, _>>()?,
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn terraform_version() -> String {
    Command::new(binary())
        .arg("version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Kills and reaps a process this bench started.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns the provider as Terraform does (cookie, protocol 6, a client certificate for
/// AutoMTLS) and times until its handshake line is on stdout.
fn time_to_handshake(provider: &Path) -> Result<Duration, String> {
    // Any PEM certificate does as the host's: the provider only pins it. The sandbox's CA
    // is a real one, so the provider builds its own TLS identity exactly as it does for Terraform.
    static CLIENT_CERT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let cert = CLIENT_CERT.get_or_init(|| Env::new().sandbox.ca_pem().to_string());
    let socket_dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let started = Instant::now();
    let child = Command::new(provider)
        .env(MAGIC_COOKIE.0, MAGIC_COOKIE.1)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env("PLUGIN_CLIENT_CERT", cert)
        .env("PLUGIN_UNIX_SOCKET_DIR", socket_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", provider.display()))?;
    let mut child = Reaped(child);
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("read the handshake: {e}"))?;
    let elapsed = started.elapsed();
    if !line.starts_with("1|6|") {
        return Err(format!("unexpected handshake line {line:?}"));
    }
    Ok(elapsed)
}

struct Timings {
    plan_create: Duration,
    apply: Duration,
    plan_refresh: Duration,
    /// GET requests (and all requests) of one plan after apply.
    refresh_gets: u64,
    refresh_requests: u64,
    /// PATCH requests on warehouses during the apply.
    create_patches: u64,
}

fn timed(f: impl FnOnce() -> Output) -> Result<Duration, String> {
    let started = Instant::now();
    let out = f();
    let elapsed = started.elapsed();
    if out.success() {
        Ok(elapsed)
    } else {
        Err(format!(
            "terraform failed (exit {}):\n{}",
            out.code,
            out.all()
        ))
    }
}

fn median_plan(tf: &Terraform) -> Result<Duration, String> {
    let samples = (0..PLAN_RUNS)
        .map(|_| timed(|| tf.run(&["plan", "-input=false"])))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(median(samples))
}

/// The representative Kargo workload: one project and N warehouses in it. Warehouses are
/// the resource a pipeline has most of, and their schema is the largest of the pipeline
/// kinds. The echo_store and terraform_data twins have the same values and the same
/// dependency graph.
fn workload(project_type: &str, warehouse_type: &str, n: usize) -> String {
    format!(
        r#"
resource "{project_type}" "bench" {{
  name = "bench"
}}

resource "{warehouse_type}" "w" {{
  count    = {n}
  project  = {project_type}.bench.name
  name     = "w-${{count.index}}"
  interval = "10m"
  subscriptions {{
    image {{
      repo_url   = "ghcr.io/acme/app-${{count.index}}"
      constraint = "^1.0.0"
    }}
  }}
}}
"#
    )
}

fn kargo_config(env: &Env, n: usize) -> String {
    format!(
        "{}{}",
        env.provider_block(),
        workload("kargo_project", "kargo_warehouse", n)
    )
}

/// The workload on the example provider: its one resource type plays both parts.
fn echo_config(n: usize) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    echo = {{ source = \"example/echo\" }}\n  }}\n}}\n{}",
        workload("echo_store", "echo_store", n)
    )
}

fn terraform_data_config(n: usize) -> String {
    format!(
        r#"
resource "terraform_data" "project" {{
  input = {{ name = "bench" }}
}}

resource "terraform_data" "w" {{
  count = {n}
  input = {{
    project  = terraform_data.project.output.name
    name     = "w-${{count.index}}"
    interval = "10m"
    subscriptions = [
      {{ image = {{ repo_url = "ghcr.io/acme/app-${{count.index}}", constraint = "^1.0.0" }} }},
    ]
  }}
}}
"#
    )
}

/// A Terraform directory whose CLI configuration points at the example provider.
fn echo_terraform(config: &str) -> Terraform {
    let mut tf = Terraform::new();
    let rc = tf.path().join("echo.tfrc");
    tf.write(
        "echo.tfrc",
        &format!(
            "provider_installation {{\n  dev_overrides {{\n    \"{ECHO_ADDRESS}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            echo_dir().display()
        ),
    );
    tf.env("TF_CLI_CONFIG_FILE", &rc.display().to_string());
    tf.write_main(config);
    tf
}

/// A plan with no warehouses: what every command costs before the first resource. Terraform
/// runs built-in `terraform_data` in its own process but launches a plugin provider three
/// times per plan (schema, validate, plan), each with a fresh AutoMTLS certificate.
fn fixed_cost() -> Result<(Duration, Duration, Duration), String> {
    let env = Env::new();
    env.tf.write_main(&kargo_config(&env, 0));
    let kargo = median_plan(&env.tf)?;
    let echo = median_plan(&echo_terraform(&echo_config(0)))?;
    let tf = Terraform::new();
    tf.write_main(&terraform_data_config(0));
    Ok((kargo, echo, median_plan(&tf)?))
}

/// Plan, apply and plan again of a workload that has no API to count requests on.
fn measure_without_api(tf: &Terraform) -> Result<Timings, String> {
    let plan_create = median_plan(tf)?;
    let apply = timed(|| tf.apply())?;
    let plan_refresh = median_plan(tf)?;
    Ok(Timings {
        plan_create,
        apply,
        plan_refresh,
        refresh_gets: 0,
        refresh_requests: 0,
        create_patches: 0,
    })
}

fn measure_echo(n: usize) -> Result<Timings, String> {
    measure_without_api(&echo_terraform(&echo_config(n)))
}

fn measure_terraform_data(n: usize) -> Result<Timings, String> {
    let tf = Terraform::new();
    tf.write_main(&terraform_data_config(n));
    measure_without_api(&tf)
}

fn measure_kargo(n: usize) -> Result<Timings, String> {
    let env = Env::new();
    env.tf.write_main(&kargo_config(&env, n));
    let plan_create = median_plan(&env.tf)?;
    env.sandbox.reset_requests();
    let apply = timed(|| env.tf.apply())?;
    let create_patches = env.sandbox.request_counts().get("patch", "warehouses");
    env.sandbox.reset_requests();
    let refresh = timed(|| env.tf.run(&["plan", "-input=false"]))?;
    let counts = env.sandbox.request_counts();
    let refresh_gets = counts.verb("get");
    let refresh_requests = counts.total();
    let mut samples = vec![refresh];
    for _ in 1..PLAN_RUNS {
        samples.push(timed(|| env.tf.run(&["plan", "-input=false"]))?);
    }
    let plan_refresh = median(samples);
    Ok(Timings {
        plan_create,
        apply,
        plan_refresh,
        refresh_gets,
        refresh_requests,
        create_patches,
    })
}

/// Runs plan, apply and plan of `config` in `tf` against a provider this bench started in
/// `n` stages whose promotion templates have six steps each, every config full of
/// expressions, reading outputs and variables, the way the hub-cluster example's do.
fn template_config(n: usize) -> String {
    format!(
        r#"
resource "kargo_project" "bench" {{
  name = "bench"
}}

resource "kargo_warehouse" "app" {{
  project = kargo_project.bench.name
  name    = "app"
  subscriptions {{
    image {{ repo_url = "ghcr.io/acme/app" }}
  }}
}}

resource "kargo_stage" "s" {{
  count   = {n}
  project = kargo_project.bench.name
  name    = "s-${{count.index}}"
  requested_freight {{
    origin {{ name = kargo_warehouse.app.name }}
    sources {{ direct = true }}
  }}
  promotion_template {{
    vars {{
      name  = "repoURL"
      value = "https://github.com/acme/manifests"
    }}
    vars {{
      name  = "image"
      value = "ghcr.io/acme/app"
    }}
    steps {{
      uses   = "git-clone"
      config = jsonencode({{ repoURL = "$${{{{ vars.repoURL }}}}", checkout = [{{ branch = "main", path = "./src" }}] }})
    }}
    steps {{
      uses = "kustomize-set-image"
      as   = "set-image"
      config = jsonencode({{
        path   = "./src/envs/$${{{{ ctx.stage }}}}"
        images = [{{ image = "$${{{{ vars.image }}}}", tag = "$${{{{ imageFrom(vars.image).Tag }}}}" }}]
      }})
    }}
    steps {{
      uses   = "git-commit"
      as     = "commit"
      config = jsonencode({{ path = "./src", message = "$${{{{ outputs['set-image'].commitMessage }}}}" }})
    }}
    steps {{
      uses   = "git-push"
      as     = "push"
      config = jsonencode({{ path = "./src", generateTargetBranch = true }})
    }}
    steps {{
      uses = "git-open-pr"
      as   = "open-pr"
      if   = "$${{{{ vars.repoURL != '' }}}}"
      config = jsonencode({{
        repoURL      = "$${{{{ vars.repoURL }}}}"
        sourceBranch = "$${{{{ outputs.push.branch }}}}"
        targetBranch = "main"
        title        = "promote $${{{{ imageFrom(vars.image).Tag }}}} to $${{{{ ctx.stage }}}}"
      }})
    }}
    steps {{
      uses = "argocd-update"
      config = jsonencode({{
        apps = [{{
          name    = "app-$${{{{ ctx.stage }}}}"
          sources = [{{ repoURL = "$${{{{ vars.repoURL }}}}", desiredRevision = "$${{{{ outputs.commit.commit }}}}" }}]
        }}]
      }})
    }}
  }}
}}
"#
    )
}

/// `terraform validate` and `plan` of [`template_config`] with the provider's template checks
/// and with them turned off (`KARGO_STEP_CHECKS=off`), in one run: what the checks cost.
fn step_check_rows() -> Result<Vec<Row>, String> {
    let mut env = Env::new();
    env.config(&template_config(TEMPLATE_STAGES));
    let validate = |tf: &Terraform| -> Result<Duration, String> {
        let samples = (0..PLAN_RUNS)
            .map(|_| timed(|| tf.run(&["validate"])))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(median(samples))
    };
    let plan_out = env.tf.run(&["plan", "-input=false"]);
    // Terraform's own warning about the development override is expected; any other is not.
    let all = plan_out.all();
    let warnings = all.matches("Warning:").count()
        - all
            .matches("Warning: Provider development overrides are in effect")
            .count();
    if !plan_out.success() || warnings > 0 {
        return Err(format!(
            "the bench's templates must plan cleanly with the checks on:\n{}",
            plan_out.all()
        ));
    }
    let on = (validate(&env.tf)?, median_plan(&env.tf)?);
    env.tf.env("KARGO_STEP_CHECKS", "off");
    let off = (validate(&env.tf)?, median_plan(&env.tf)?);
    let row = |what: &str, on: Duration, off: Duration| {
        let ratio = on.as_secs_f64() / off.as_secs_f64();
        Row::new(
            format!("{TEMPLATE_STAGES} stages x {TEMPLATE_STEPS} steps {what:<9} checks on / off"),
            format!(
                "{:.2} s / {:.2} s = {ratio:.2}x",
                on.as_secs_f64(),
                off.as_secs_f64()
            ),
        )
    };
    Ok(vec![row("validate", on.0, off.0), row("plan", on.1, off.1)])
}

/// The quickstart with its promotion into dev applied and a newer image published, so the
/// plan previews the next promotion from the served repository: the median plan with the
/// preview on and off, and the Git fetches per repository in one plan (from the provider's
/// `promotion preview fetched a Git repository` log line).
fn preview_rows() -> Result<Vec<Row>, String> {
    let mut env = Env::new();
    let quickstart = kargo_e2e::example_dir("quickstart");
    let main = std::fs::read_to_string(quickstart.join("main.tf"))
        .map_err(|e| format!("examples/quickstart/main.tf: {e}"))?;
    let url = env
        .sandbox
        .git_create(
            "guestbook-gitops",
            Some(&quickstart.join("gitops")),
            "main",
            None,
        )
        .map_err(|e| format!("the quickstart's repository: {e}"))?;
    let kubeconfig = env.sandbox.kubeconfig_path().display().to_string();
    let ca_file = env.sandbox.git().ca_file().display().to_string();
    env.tf.env("TF_VAR_kubeconfig", &kubeconfig);
    env.tf.env("TF_VAR_gitops_repo_url", &url);
    env.tf.env("TF_VAR_git_ca_file", &ca_file);
    env.tf.write_main(&main);
    let publish = |tag: &str| {
        env.sandbox
            .control(
                "publish",
                &serde_json::json!({"project": "kargo-demo", "warehouse": "guestbook",
                    "images": [{"repoURL": "ghcr.io/akuity/guestbook", "tag": tag}]}),
            )
            .map_err(|e| format!("publish {tag}: {e:?}"))
    };
    let must = |out: Output, what: &str| {
        if out.success() {
            Ok(out)
        } else {
            Err(format!("{what} failed:\n{}", out.all()))
        }
    };
    must(
        env.tf.run(&["apply", "-auto-approve", "-input=false"]),
        "apply",
    )?;
    publish("1.0.0")?;
    env.tf.env("TF_VAR_dev_version", "^1.0.0");
    must(
        env.tf.run(&["apply", "-auto-approve", "-input=false"]),
        "apply",
    )?;
    publish("1.1.0")?;
    env.tf.env("TF_LOG_PROVIDER", "INFO");
    let logged = must(env.tf.run(&["plan", "-input=false"]), "plan")?.all();
    env.tf.env("TF_LOG_PROVIDER", "");
    let fetches = logged
        .lines()
        .filter(|l| l.contains("promotion preview fetched a Git repository"))
        .filter(|l| l.contains(&url))
        .count();
    if !logged.contains("+  newTag: 1.1.0") && !logged.contains("+  newTag: \"1.1.0\"") {
        return Err(format!(
            "the quickstart's plan should preview the new image tag:\n{logged}"
        ));
    }
    let on = median_plan(&env.tf)?;
    env.tf.write_main(&main.replace(
        "promotion_preview {",
        "promotion_preview {\n    enabled = false",
    ));
    let off = median_plan(&env.tf)?;
    let ratio = on.as_secs_f64() / off.as_secs_f64();
    Ok(vec![
        Row::new(
            "quickstart plan, promotion preview on / off",
            format!(
                "{:.2} s / {:.2} s = {ratio:.2}x",
                on.as_secs_f64(),
                off.as_secs_f64()
            ),
        )
        .budget(
            format!("<= {PREVIEW_RATIO_BUDGET}x"),
            ratio <= PREVIEW_RATIO_BUDGET,
        ),
        Row::new(
            "quickstart plan, Git fetches of its repository",
            fetches.to_string(),
        )
        .budget("<= 1 per repository per plan", fetches <= 1),
    ])
}

/// Runs plan, apply and plan of `n` warehouses against a provider this bench started in
/// `-debug` mode (Terraform reattaches instead of spawning it), then reads its peak RSS.
fn peak_rss_kb(provider: &Path, mut tf: Terraform, config: &str) -> Result<Option<u64>, String> {
    let child = Command::new(provider)
        .arg("-debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {} -debug: {e}", provider.display()))?;
    let mut child = Reaped(child);
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let reattach = reattach_providers(stdout)
        .ok_or("the -debug banner did not print TF_REATTACH_PROVIDERS")?;
    tf.env("TF_REATTACH_PROVIDERS", &reattach);
    tf.write_main(config);
    for args in [
        &["plan", "-input=false"][..],
        &["apply", "-auto-approve"][..],
        &["plan", "-input=false"][..],
    ] {
        timed(|| tf.run(args))?;
    }
    let status = match std::fs::read_to_string(format!("/proc/{}/status", child.0.id())) {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
}

fn print_report(report: &Report) {
    if report.side_by_side.is_empty() {
        print_table(&report.budget);
        return;
    }
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let header = [
        "N",
        "measure",
        "kargo",
        "echo",
        "terraform_data",
        "kargo/echo",
        "echo/tf_data",
        "kargo/tf_data",
        "budget",
        "met",
    ];
    let rows: Vec<Vec<String>> = report
        .side_by_side
        .iter()
        .map(|r| {
            let kargo_vs_builtin = ratio(r.kargo, r.builtin);
            vec![
                r.n.to_string(),
                r.what.to_string(),
                secs(r.kargo),
                secs(r.echo),
                secs(r.builtin),
                format!("{:.2}x", ratio(r.kargo, r.echo)),
                format!("{:.2}x", ratio(r.echo, r.builtin)),
                format!("{kargo_vs_builtin:.2}x"),
                r.budget.map(|b| format!("<= {b}x")).unwrap_or_default(),
                match r.budget {
                    Some(b) if kargo_vs_builtin <= b => "yes".into(),
                    Some(_) => "NO".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(&header.map(String::from)));
    println!(
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
    );
    for r in &rows {
        println!("{}", line(r));
    }
    println!();
    print_table(&report.budget);
    println!(
        "\nWorkload: one project and N warehouses (image subscription): kargo_project and \
         kargo_warehouse against the in-process sandbox, echo_store (the plugin crate's example \
         provider, which stores what it is given) and terraform_data with the same values and \
         dependency graph. Plans are medians of {PLAN_RUNS}. kargo/echo is the provider's own \
         cost; echo/tf_data is what Terraform charges any plugin provider (start-ups, AutoMTLS, \
         schema, RPCs) that the built-in terraform_data does not pay."
    );
}

fn print_table(rows: &[Row]) {
    let w_what = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    let w_value = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
    let w_budget = rows
        .iter()
        .map(|r| r.budget.len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "{:<w_what$}  {:<w_value$}  {:<w_budget$}  met",
        "measure", "value", "budget"
    );
    println!("{}", "-".repeat(w_what + w_value + w_budget + 9));
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "{:<w_what$}  {:<w_value$}  {:<w_budget$}  {met}",
            r.what, r.value, r.budget
        );
    }
}

/// What `make bench BENCH=reads` measures: how many requests one plan of N promotions,
/// approvals or freight data sources sends, against the budget of shared reads, and what a
/// slow API server (each answer 20 ms late) does to the plan's time.
mod reads {
    use std::time::{Duration, Instant};

    use kargo_e2e::{Env, Terraform, Transport};
    use kargo_sandbox::HttpFault;
    use serde_json::json;

    use super::{Row, print_table, timed};

    const SIZES: [usize; 3] = [10, 100, 1000];
    /// Plans after apply (a refresh of N managed objects) are measured up to this size: an
    /// apply of 1000 promotions, each started and waited for, is more than a bench run should
    /// wait for (it took over ten minutes when each create still listed all of the project's
    /// promotions; it now reads only its own attempts, by their label).
    const REFRESH_UP_TO: usize = 100;
    const DELAY: Duration = Duration::from_millis(20);
    /// Requests any plan may send besides its reads: discovery, the clock when no answer
    /// has brought it yet, the list of promotions a new promotion is looked up in.
    const CONSTANT: u64 = 5;

    #[derive(Clone, Copy)]
    pub(super) enum Workload {
        Promotion,
        Approval,
        FreightData,
    }

    impl Workload {
        pub(super) fn name(self) -> &'static str {
            match self {
                Workload::Promotion => "kargo_promotion",
                Workload::Approval => "kargo_freight_approval",
                Workload::FreightData => "data.kargo_freight",
            }
        }

        /// N of this workload, each on its own stage `s-<i>`, all of one freight.
        pub(super) fn hcl(self, n: usize, freight: &str, alias: &str) -> String {
            match self {
                Workload::Promotion => format!(
                    r#"
resource "kargo_promotion" "r" {{
  count         = {n}
  project       = "bench"
  stage         = "s-${{count.index}}"
  freight_alias = "{alias}"
  preview       = false
  wait          = false
}}
"#
                ),
                Workload::Approval => format!(
                    r#"
resource "kargo_freight_approval" "r" {{
  count   = {n}
  project = "bench"
  stage   = "s-${{count.index}}"
  freight = "{freight}"
}}
"#
                ),
                Workload::FreightData => format!(
                    r#"
data "kargo_freight" "r" {{
  count              = {n}
  project            = "bench"
  available_to_stage = "s-${{count.index}}"
  freight_selector {{
    warehouse          = "app"
    version_constraint = "^1.0"
    image {{ repo_url = "ghcr.io/acme/app" }}
  }}
}}
"#
                ),
            }
        }

        /// The same N as `terraform_data`, with the same values.
        fn twin(self, n: usize, freight: &str) -> String {
            format!(
                r#"
resource "terraform_data" "r" {{
  count = {n}
  input = {{
    project = "bench"
    stage   = "s-${{count.index}}"
    freight = "{freight}"
    kind    = "{}"
  }}
}}
"#,
                self.name()
            )
        }

        fn managed(self) -> bool {
            !matches!(self, Workload::FreightData)
        }
    }

    /// The project and warehouse every workload's configuration starts with.
    pub(super) const BASE: &str = r#"
resource "kargo_project" "bench" {
  name = "bench"
}

resource "kargo_warehouse" "app" {
  project = kargo_project.bench.name
  name    = "app"
  subscriptions {
    image { repo_url = "ghcr.io/acme/app" }
  }
}
"#;

    /// A project `bench`, its warehouse `app` (applied through `transport`), one freight, and
    /// `n` stages taking it directly (written straight into the sandbox: only their reads are
    /// measured).
    pub(super) fn world(transport: Transport, n: usize) -> Result<(Env, String, String), String> {
        let env = Env::over(transport);
        env.config(BASE);
        timed(|| env.tf.apply())?;
        let out = env
            .sandbox
            .control(
                "publish",
                &json!({"project": "bench", "warehouse": "app",
                        "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0"}]}),
            )
            .map_err(|e| format!("publish: {e:?}"))?;
        let freight = out["name"].as_str().unwrap_or_default().to_string();
        let alias = out["alias"].as_str().unwrap_or_default().to_string();
        env.sandbox.with_txn(|txn| {
            for i in 0..n {
                txn.create(json!({
                    "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
                    "metadata": {"name": format!("s-{i}"), "namespace": "bench"},
                    "spec": {
                        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"},
                                              "sources": {"direct": true}}],
                        "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone", "config": {
                            "repoURL": "https://github.com/acme/manifests",
                            "checkout": [{"branch": "main", "path": "./out"}]}}]}}
                    }
                }))
                .map_err(|e| format!("create stage s-{i}: {e:?}"))?;
            }
            Ok::<(), String>(())
        })?;
        Ok((env, freight, alias))
    }

    /// One measured plan: its requests (all verbs) and time, then its time with every answer
    /// [`DELAY`] late.
    fn plan(env: &Env) -> Result<(u64, Duration, Duration), String> {
        env.sandbox.reset_requests();
        let plain = timed(|| env.tf.run(&["plan", "-input=false"]))?;
        let requests = env.sandbox.request_counts().total();
        env.sandbox
            .inject_fault(HttpFault::delay(DELAY))
            .map_err(|e| format!("delay fault: {e:?}"))?;
        let slow = timed(|| env.tf.run(&["plan", "-input=false"]));
        env.sandbox
            .clear_faults()
            .map_err(|e| format!("clear faults: {e:?}"))?;
        Ok((requests, plain, slow?))
    }

    fn twin_plan(tf: &Terraform) -> Result<Duration, String> {
        timed(|| tf.run(&["plan", "-input=false"]))
    }

    struct Measured {
        workload: Workload,
        n: usize,
        what: &'static str,
        requests: u64,
        budget: u64,
        plain: Duration,
        slow: Duration,
        builtin: Duration,
    }

    pub fn run() -> Result<(), String> {
        let mut rows = Vec::new();
        for n in SIZES {
            for workload in [
                Workload::Promotion,
                Workload::Approval,
                Workload::FreightData,
            ] {
                eprintln!("reads: N = {n} {}…", workload.name());
                let started = Instant::now();
                let (env, freight, alias) = world(Transport::Kubernetes, n)?;
                let twin = Terraform::new();
                twin.write_main(&workload.twin(n, &freight));
                env.config(&format!("{BASE}{}", workload.hcl(n, &freight, &alias)));
                // N stages, the warehouse, the freight list, and the constant.
                let shared = n as u64 + 1 + 1 + CONSTANT;
                // Refreshing the project and the warehouse of the configuration.
                let base = 2;
                let (requests, plain, slow) = plan(&env)?;
                let builtin = twin_plan(&twin)?;
                rows.push(Measured {
                    workload,
                    n,
                    what: if workload.managed() {
                        "plan, new"
                    } else {
                        "plan (read)"
                    },
                    requests,
                    budget: base + shared,
                    plain,
                    slow,
                    builtin,
                });
                if workload.managed() && n <= REFRESH_UP_TO {
                    timed(|| env.tf.apply())?;
                    timed(|| twin.apply())?;
                    let (requests, plain, slow) = plan(&env)?;
                    let builtin = twin_plan(&twin)?;
                    rows.push(Measured {
                        workload,
                        n,
                        what: "plan, after apply",
                        requests,
                        // One read of each managed object besides.
                        budget: base + n as u64 + shared,
                        plain,
                        slow,
                        builtin,
                    });
                }
                eprintln!("  ({:.1} s)", started.elapsed().as_secs_f64());
            }
        }
        print(&rows);
        Ok(())
    }

    fn print(rows: &[Measured]) {
        let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
        let table: Vec<Row> = rows
            .iter()
            .map(|m| {
                Row::new(
                    format!("N={:<4} {:<22} {:<17}", m.n, m.workload.name(), m.what),
                    format!(
                        "{:>5} requests ({:.2}/resource); {} vs terraform_data {} = {:.2}x; \
                         20 ms late answers: {} = {:.2}x",
                        m.requests,
                        m.requests as f64 / m.n as f64,
                        secs(m.plain),
                        secs(m.builtin),
                        m.plain.as_secs_f64() / m.builtin.as_secs_f64(),
                        secs(m.slow),
                        m.slow.as_secs_f64() / m.plain.as_secs_f64(),
                    ),
                )
                .budget(format!("<= {} requests", m.budget), m.requests <= m.budget)
            })
            .collect();
        println!("Shared reads: one plan's requests (sandbox request log) and time");
        print_table(&table);
        println!(
            "\nWorkload: project `bench`, warehouse `app`, one freight and N stages taking it \
             directly; N kargo_promotion (by alias), N kargo_freight_approval (by name) or N \
             kargo_freight data sources (a selector, available_to_stage), one per stage. \
             Budget: the managed objects (project, warehouse and, after apply, the N \
             resources' own objects) + one read per stage + one of the warehouse + one list of \
             freight + {CONSTANT}. The plans after apply are measured up to N = {REFRESH_UP_TO}. \
             20 ms late answers: the sandbox's delay fault on every request; the ratio is to \
             the same plan without it. A plan that read each object once per resource would \
             pay 20 ms per request in sequence; shared reads pay it about once per object."
        );
    }
}

/// What `make bench BENCH=rest` measures: the same workloads through the Kubernetes API (a
/// kubeconfig provider block) and through Kargo's API server (an `api_server` block, logged in
/// as admin) against the same kind of sandbox, which serves both on one port: plan, apply and
/// plan after apply, side by side, with the ratio and each one's requests.
mod rest {
    use std::time::Duration;

    use kargo_e2e::{Env, Output, Transport};

    use super::reads::{BASE, Workload, world};
    use super::{PLAN_RUNS, median, timed, workload};

    const SIZES: [usize; 2] = [10, 100];

    /// Plan (new), apply and plan after apply of one workload through one transport.
    type Run = fn(Transport, usize) -> Result<[Sample; 3], String>;

    /// One measure through one transport: its time and the requests the sandbox logged.
    #[derive(Clone, Copy)]
    struct Sample {
        time: Duration,
        requests: u64,
    }

    struct Measured {
        n: usize,
        workload: &'static str,
        what: &'static str,
        kubernetes: Sample,
        api_server: Sample,
    }

    /// The median of [`PLAN_RUNS`] plans, and the requests of the first.
    fn plan(env: &Env) -> Result<Sample, String> {
        env.sandbox.reset_requests();
        let first = timed(|| env.tf.run(&["plan", "-input=false"]))?;
        let requests = env.sandbox.request_counts().total();
        let mut samples = vec![first];
        for _ in 1..PLAN_RUNS {
            samples.push(timed(|| env.tf.run(&["plan", "-input=false"]))?);
        }
        Ok(Sample {
            time: median(samples),
            requests,
        })
    }

    fn apply(env: &Env) -> Result<Sample, String> {
        env.sandbox.reset_requests();
        let time = timed(|| env.tf.apply())?;
        Ok(Sample {
            time,
            requests: env.sandbox.request_counts().total(),
        })
    }

    /// Fails unless a plan right after the apply is empty: the figures of a transport that
    /// wrote something else than configured would mean nothing.
    fn assert_no_changes(env: &Env, transport: Transport) -> Result<(), String> {
        let out: Output = env.tf.run(&["plan", "-input=false", "-detailed-exitcode"]);
        match out.code {
            0 => Ok(()),
            _ => Err(format!(
                "the plan after apply through {transport:?} is not empty (exit {}):\n{}",
                out.code,
                out.all()
            )),
        }
    }

    /// Plan (new), apply, and plan after apply of `config` in `env`.
    fn measure(env: &Env, transport: Transport) -> Result<[Sample; 3], String> {
        let new = plan(env)?;
        let applied = apply(env)?;
        assert_no_changes(env, transport)?;
        let after = plan(env)?;
        Ok([new, applied, after])
    }

    /// One project and N warehouses: the workload of the main table.
    fn warehouses(transport: Transport, n: usize) -> Result<[Sample; 3], String> {
        let env = Env::over(transport);
        env.config(&workload("kargo_project", "kargo_warehouse", n));
        measure(&env, transport)
    }

    /// N promotions (by alias, not waited for) into N stages of one project.
    fn promotions(transport: Transport, n: usize) -> Result<[Sample; 3], String> {
        let (env, freight, alias) = world(transport, n)?;
        env.config(&format!(
            "{BASE}{}",
            Workload::Promotion.hcl(n, &freight, &alias)
        ));
        measure(&env, transport)
    }

    pub fn run() -> Result<(), String> {
        let mut rows = Vec::new();
        for n in SIZES {
            let workloads: [(&'static str, Run); 2] = [
                ("kargo_warehouse", warehouses),
                (Workload::Promotion.name(), promotions),
            ];
            for (name, run) in workloads {
                eprintln!("rest: N = {n} {name} through the Kubernetes API…");
                let kubernetes = run(Transport::Kubernetes, n)?;
                eprintln!("rest: N = {n} {name} through Kargo's API server…");
                let api_server = run(Transport::ApiServer, n)?;
                for (i, what) in ["plan, new", "apply", "plan, after apply"]
                    .into_iter()
                    .enumerate()
                {
                    rows.push(Measured {
                        n,
                        workload: name,
                        what,
                        kubernetes: kubernetes[i],
                        api_server: api_server[i],
                    });
                }
            }
        }
        print(&rows);
        Ok(())
    }

    fn print(rows: &[Measured]) {
        let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
        let header = [
            "N",
            "workload",
            "measure",
            "kubernetes",
            "api server",
            "api/kube",
            "requests kube",
            "requests api",
        ];
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|m| {
                vec![
                    m.n.to_string(),
                    m.workload.to_string(),
                    m.what.to_string(),
                    secs(m.kubernetes.time),
                    secs(m.api_server.time),
                    format!(
                        "{:.2}x",
                        m.api_server.time.as_secs_f64() / m.kubernetes.time.as_secs_f64()
                    ),
                    m.kubernetes.requests.to_string(),
                    m.api_server.requests.to_string(),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                table
                    .iter()
                    .map(|r| r[i].len())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        println!("Transports: the Kubernetes API and Kargo's API server, same workloads");
        println!("{}", line(&header.map(String::from)));
        println!(
            "{}",
            "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
        );
        for r in &table {
            println!("{}", line(r));
        }
        println!(
            "\nWorkloads: one project and N warehouses (image subscription); and N \
             kargo_promotion (by alias, wait = false) into N stages of one project with one \
             freight. Each runs once with a kubeconfig provider block and once with an \
             api_server block (admin password, the sandbox's CA) against a fresh sandbox, which \
             serves the Kubernetes API and Kargo's REST API on one port. Plans are medians of \
             {PLAN_RUNS}; requests are those of one plan or of the apply (sandbox request log, \
             the admin login included). A plan right after each apply is checked empty."
        );
    }
}
