//! `make bench`: measures the provider against its performance budget and prints one table
//! of times, ratios, request counts and memory. Informational; never part of `make test`.
//!
//! The budget: start-up + handshake under 20 ms; `terraform plan` of N Kargo resources within
//! 1.5x of the same plan over N `terraform_data` (N = 10, 100, 1000); one GET per resource per
//! refresh and one PATCH per create; provider peak RSS under 40 MB at N = 1000. It also shows
//! what checking promotion templates costs: validate and plan of 100 six-step stages, checks
//! on and off.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

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

const STARTUP_BUDGET: Duration = Duration::from_millis(20);
const PLAN_RATIO_BUDGET: f64 = 1.5;
const RSS_BUDGET_KB: u64 = 40 * 1024;

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
    match run() {
        Ok(rows) => {
            print_table(&rows);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<Vec<Row>, String> {
    let provider = provider_dir().join("terraform-provider-kargo");
    if !provider_dir().ends_with("release") {
        return Err(format!(
            "the bench measures the release build, but {} is not one: set KARGO_PROVIDER_DIR \
             to target/release (`make bench` does)",
            provider.display()
        ));
    }
    eprintln!(
        "provider: {}\nterraform: {}",
        provider.display(),
        terraform_version()
    );
    let mut rows = Vec::new();

    eprintln!("measuring provider start-up and handshake ({STARTS} starts)…");
    let startup = median(
        (0..STARTS)
            .map(|_| time_to_handshake(&provider))
            .collect::<Result<Vec<_>, _>>()?,
    );
    rows.push(
        Row::new(
            format!("provider start + handshake (AutoMTLS, median of {STARTS})"),
            format!("{:.1} ms", ms(startup)),
        )
        .budget("< 20 ms", startup < STARTUP_BUDGET),
    );

    eprintln!("fixed cost of a plan (no warehouses)…");
    let (kargo_fixed, builtin_fixed) = fixed_cost()?;
    rows.push(Row::new(
        "N=0    plan, project only      kargo / terraform_data",
        format!(
            "{:.2} s / {:.2} s = {:.2}x",
            kargo_fixed.as_secs_f64(),
            builtin_fixed.as_secs_f64(),
            kargo_fixed.as_secs_f64() / builtin_fixed.as_secs_f64()
        ),
    ));

    for n in SIZES {
        eprintln!("N = {n}: terraform_data…");
        let builtin = measure_terraform_data(n)?;
        eprintln!("N = {n}: kargo_warehouse…");
        let kargo = measure_kargo(n)?;
        let ratio = |k: Duration, b: Duration| k.as_secs_f64() / b.as_secs_f64();
        let plan_create = ratio(kargo.plan_create, builtin.plan_create);
        let plan_refresh = ratio(kargo.plan_refresh, builtin.plan_refresh);
        let apply = ratio(kargo.apply, builtin.apply);
        rows.push(
            Row::new(
                format!("N={n:<4} plan, new resources   kargo / terraform_data"),
                format!(
                    "{:.2} s / {:.2} s = {plan_create:.2}x",
                    kargo.plan_create.as_secs_f64(),
                    builtin.plan_create.as_secs_f64()
                ),
            )
            .budget("<= 1.5x", plan_create <= PLAN_RATIO_BUDGET),
        );
        rows.push(
            Row::new(
                format!("N={n:<4} plan, after apply     kargo / terraform_data"),
                format!(
                    "{:.2} s / {:.2} s = {plan_refresh:.2}x",
                    kargo.plan_refresh.as_secs_f64(),
                    builtin.plan_refresh.as_secs_f64()
                ),
            )
            .budget("<= 1.5x", plan_refresh <= PLAN_RATIO_BUDGET),
        );
        rows.push(Row::new(
            format!("N={n:<4} apply (create)        kargo / terraform_data"),
            format!(
                "{:.2} s / {:.2} s = {apply:.2}x",
                kargo.apply.as_secs_f64(),
                builtin.apply.as_secs_f64()
            ),
        ));
        let gets = kargo.refresh_gets as f64 / (n + 1) as f64;
        rows.push(
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
        rows.push(
            Row::new(
                format!("N={n:<4} PATCHes per warehouse created"),
                format!("{patches:.2}"),
            )
            .budget("1", kargo.create_patches == n as u64),
        );
    }

    eprintln!("{TEMPLATE_STAGES} stages of {TEMPLATE_STEPS} steps: template checks on and off…");
    rows.extend(step_check_rows()?);

    eprintln!("N = 1000: provider peak memory in -debug (reattach) mode…");
    match peak_rss_kb(&provider, 1000)? {
        Some(kb) => rows.push(
            Row::new(
                "N=1000 provider peak RSS (VmHWM, plan + apply + plan)",
                format!("{:.1} MB", kb as f64 / 1024.0),
            )
            .budget("< 40 MB", kb < RSS_BUDGET_KB),
        ),
        None => rows.push(Row::new("N=1000 provider peak RSS", "n/a (needs /proc)")),
    }
    Ok(rows)
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
fn time_to_handshake(provider: &std::path::Path) -> Result<Duration, String> {
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
/// kinds. The terraform_data twin has the same values and the same dependency graph.
fn kargo_config(n: usize) -> String {
    format!(
        r#"
resource "kargo_project" "bench" {{
  name = "bench"
}}

resource "kargo_warehouse" "w" {{
  count    = {n}
  project  = kargo_project.bench.name
  name     = "w-${{count.index}}"
  interval = "10m"
  subscriptions = [
    {{ image = {{ repo_url = "ghcr.io/acme/app-${{count.index}}", constraint = "^1.0.0" }} }},
  ]
}}
"#
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

/// A plan with no warehouses: what every command costs before the first resource. Terraform
/// runs built-in `terraform_data` in its own process but launches a plugin provider three
/// times per plan (schema, validate, plan), each with a fresh AutoMTLS certificate.
fn fixed_cost() -> Result<(Duration, Duration), String> {
    let env = Env::new();
    env.config(&kargo_config(0));
    let kargo = median_plan(&env.tf)?;
    let tf = Terraform::new();
    tf.write_main(&terraform_data_config(0));
    Ok((kargo, median_plan(&tf)?))
}

fn measure_terraform_data(n: usize) -> Result<Timings, String> {
    let tf = Terraform::new();
    tf.write_main(&terraform_data_config(n));
    let plan_create = median_plan(&tf)?;
    let apply = timed(|| tf.apply())?;
    let plan_refresh = median_plan(&tf)?;
    Ok(Timings {
        plan_create,
        apply,
        plan_refresh,
        refresh_gets: 0,
        refresh_requests: 0,
        create_patches: 0,
    })
}

fn measure_kargo(n: usize) -> Result<Timings, String> {
    let env = Env::new();
    env.config(&kargo_config(n));
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

/// `n` stages whose promotion templates have six steps each, every config full of
/// expressions, reading outputs and variables, the way the hub-cluster example's do.
fn template_config(n: usize) -> String {
    format!(
        r#"
resource "kargo_project" "bench" {{
  name = "bench"
}}

resource "kargo_warehouse" "app" {{
  project       = kargo_project.bench.name
  name          = "app"
  subscriptions = [{{ image = {{ repo_url = "ghcr.io/acme/app" }} }}]
}}

resource "kargo_stage" "s" {{
  count             = {n}
  project           = kargo_project.bench.name
  name              = "s-${{count.index}}"
  requested_freight = [{{ origin = {{ name = kargo_warehouse.app.name }}, sources = {{ direct = true }} }}]
  promotion_template = {{
    vars = [
      {{ name = "repoURL", value = "https://github.com/acme/manifests" }},
      {{ name = "image", value = "ghcr.io/acme/app" }},
    ]
    steps = [
      {{
        uses   = "git-clone"
        config = jsonencode({{ repoURL = "$${{{{ vars.repoURL }}}}", checkout = [{{ branch = "main", path = "./src" }}] }})
      }},
      {{
        uses = "kustomize-set-image"
        as   = "set-image"
        config = jsonencode({{
          path   = "./src/envs/$${{{{ ctx.stage }}}}"
          images = [{{ image = "$${{{{ vars.image }}}}", tag = "$${{{{ imageFrom(vars.image).Tag }}}}" }}]
        }})
      }},
      {{
        uses   = "git-commit"
        as     = "commit"
        config = jsonencode({{ path = "./src", message = "$${{{{ outputs['set-image'].commitMessage }}}}" }})
      }},
      {{
        uses   = "git-push"
        as     = "push"
        config = jsonencode({{ path = "./src", generateTargetBranch = true }})
      }},
      {{
        uses = "git-open-pr"
        as   = "open-pr"
        if   = "$${{{{ vars.repoURL != '' }}}}"
        config = jsonencode({{
          repoURL      = "$${{{{ vars.repoURL }}}}"
          sourceBranch = "$${{{{ outputs.push.branch }}}}"
          targetBranch = "main"
          title        = "promote $${{{{ imageFrom(vars.image).Tag }}}} to $${{{{ ctx.stage }}}}"
        }})
      }},
      {{
        uses = "argocd-update"
        config = jsonencode({{
          apps = [{{
            name    = "app-$${{{{ ctx.stage }}}}"
            sources = [{{ repoURL = "$${{{{ vars.repoURL }}}}", desiredRevision = "$${{{{ outputs.commit.commit }}}}" }}]
          }}]
        }})
      }},
    ]
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
    if !plan_out.success() || plan_out.all().contains("Warning:") {
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
    Ok(vec![
        row("validate", on.0, off.0),
        row("plan", on.1, off.1),
    ])
}

/// Runs plan, apply and plan of `n` warehouses against a provider this bench started in
/// `-debug` mode (Terraform reattaches instead of spawning it), then reads its peak RSS.
fn peak_rss_kb(provider: &std::path::Path, n: usize) -> Result<Option<u64>, String> {
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
    let mut env = Env::new();
    env.tf.env("TF_REATTACH_PROVIDERS", &reattach);
    env.config(&kargo_config(n));
    for args in [
        &["plan", "-input=false"][..],
        &["apply", "-auto-approve"][..],
        &["plan", "-input=false"][..],
    ] {
        timed(|| env.tf.run(args))?;
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
    println!(
        "\nWorkload: one kargo_project and N kargo_warehouse (image subscription) against the \
         in-process sandbox, versus the same values in N terraform_data. Plans are medians of \
         {PLAN_RUNS}; the N=0 row is the fixed cost of launching a plugin provider, which the \
         built-in terraform_data does not pay."
    );
}
