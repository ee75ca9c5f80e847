//! Drives the Terraform CLI in a scratch directory with a dev_overrides CLI config pointing
//! at the provider binary built from this workspace; no `terraform init` is needed.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value as Json;

/// Outcome of one CLI run.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }
    /// stdout and stderr together, for asserting on what a user sees.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    /// stdout and stderr with Terraform's line wrapping and box drawing folded into single
    /// spaces, so assertions can match whole sentences.
    pub fn flat(&self) -> String {
        self.all()
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// The diagnostics of a failed run, one [`flat`](Self::flat) text per `Error:` block
    /// (its summary first, then where and its detail).
    pub fn errors(&self) -> Vec<String> {
        self.flat()
            .split("Error: ")
            .skip(1)
            .map(str::to_string)
            .collect()
    }
    /// Asserts one `Error:` block is on `resource` (an address such as `kargo_stage.s`) and
    /// contains every one of `texts` (e.g. its summary and its detail).
    #[track_caller]
    pub fn assert_error(&self, resource: &str, texts: &[&str]) {
        let errors = self.errors();
        let with = format!("with {resource},");
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&with) && texts.iter().all(|t| e.contains(t))),
            "no error on {resource} saying {texts:?} in:\n{}",
            errors.join("\n---\n")
        );
    }
    /// The diagnostics of a `-json` run (`validate -json` prints one document, `plan -json`
    /// and `apply -json` one message per line), each as severity, resource address, summary
    /// and detail; without the warning that the provider is a development override.
    pub fn json_diagnostics(&self) -> Vec<Diagnostic> {
        self.json_diagnostics_at()
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    }

    /// [`json_diagnostics`](Self::json_diagnostics), each with where in the configuration
    /// Terraform shows it (for a diagnostic on an attribute, that attribute's value).
    pub fn json_diagnostics_at(&self) -> Vec<(Diagnostic, At)> {
        let one = |d: &Json| {
            let diagnostic = Diagnostic {
                severity: d["severity"].as_str().unwrap_or_default().to_string(),
                address: d["address"].as_str().unwrap_or_default().to_string(),
                summary: d["summary"].as_str().unwrap_or_default().to_string(),
                detail: d["detail"].as_str().unwrap_or_default().to_string(),
            };
            let snippet = &d["snippet"];
            let code = snippet["code"].as_str().unwrap_or_default();
            let offset = |key: &str| snippet[key].as_u64().unwrap_or_default() as usize;
            let at = At {
                file: d["range"]["filename"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                line: d["range"]["start"]["line"].as_u64().unwrap_or_default() as usize,
                text: code
                    .get(offset("highlight_start_offset")..offset("highlight_end_offset"))
                    .unwrap_or_default()
                    .to_string(),
            };
            (diagnostic, at)
        };
        let mut found: Vec<(Diagnostic, At)> = match serde_json::from_str::<Json>(&self.stdout) {
            Ok(doc) if doc.get("diagnostics").is_some() => doc["diagnostics"]
                .as_array()
                .into_iter()
                .flatten()
                .map(one)
                .collect(),
            _ => self
                .stdout
                .lines()
                .filter_map(|l| serde_json::from_str::<Json>(l).ok())
                .filter(|m| m["type"] == "diagnostic")
                .map(|m| one(&m["diagnostic"]))
                .collect(),
        };
        found.retain(|(d, _)| d.summary != "Provider development overrides are in effect");
        found
    }

    /// Panics with the full output unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.success(),
            "command failed (exit {}):\n{}",
            self.code,
            self.all()
        );
        self
    }
    /// Panics with the full output unless the command failed.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(
            !self.success(),
            "command unexpectedly succeeded:\n{}",
            self.all()
        );
        self
    }
}

/// One diagnostic of a `-json` run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub severity: String,
    pub address: String,
    pub summary: String,
    pub detail: String,
}

/// Where a diagnostic of a `-json` run points: the file, the line its range starts on, and
/// the text Terraform highlights (empty when it points at no configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    pub file: String,
    pub line: usize,
    pub text: String,
}

impl At {
    /// The `occurrence`-th (from 1) place `text` is written in `file` of the working
    /// directory `dir`, as Terraform would point at it.
    pub fn nth(dir: &Path, file: &str, text: &str, occurrence: usize) -> Self {
        let source = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{file} cannot be read: {e}"));
        let line = source
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(text))
            .nth(occurrence - 1)
            .map(|(i, _)| i + 1)
            .unwrap_or_else(|| panic!("{text:?} is not written {occurrence} times in {file}"));
        Self {
            file: file.to_string(),
            line,
            text: text.to_string(),
        }
    }
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The Terraform-compatible binary: `$TF_BINARY`, else `terraform`, else `tofu`.
pub fn binary() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let candidates = [std::env::var("TF_BINARY").unwrap_or_default(), "terraform".into(), "tofu".into()];
        for c in candidates.iter().filter(|c| !c.is_empty()) {
            if Command::new(c).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
                return c.clone();
            }
        }
        panic!("neither `terraform` (>= 1.5) nor `tofu` is on PATH: the end-to-end tests need one of them (or TF_BINARY)");
    })
}

/// The workspace's target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// Directory holding the freshly built `terraform-provider-kargo` (debug build).
pub fn provider_dir() -> PathBuf {
    let dir = std::env::var("KARGO_PROVIDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target_dir().join("debug"));
    let bin = dir.join("terraform-provider-kargo");
    assert!(
        bin.exists(),
        "provider binary not found at {}: build it first (`make build` or `cargo build -p terraform-provider-kargo`)",
        bin.display()
    );
    dir
}

/// The `kargo-sandbox` binary next to the provider (for tests that use its CLI).
pub fn sandbox_bin() -> PathBuf {
    let bin = provider_dir().join("kargo-sandbox");
    assert!(
        bin.exists(),
        "kargo-sandbox not found at {}: run `make build`",
        bin.display()
    );
    bin
}

/// The `TF_REATTACH_PROVIDERS` value in the banner a provider started with `-debug` prints on
/// `stdout`: what tells Terraform to use that running provider instead of starting one.
pub fn reattach_providers(stdout: impl Read) -> Option<String> {
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("TF_REATTACH_PROVIDERS='")
                .map(|v| v.trim_end_matches('\'').to_string())
        })
}

/// A Terraform working directory with its own CLI config and environment.
pub struct Terraform {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Terraform {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kargo-e2e-")
            .tempdir()
            .expect("create temp dir");
        let rc = dir.path().join("dev.tfrc");
        let overrides = provider_dir();
        std::fs::write(
            &rc,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"registry.terraform.io/dokaseca/kargo\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                overrides.display()
            ),
        )
        .expect("write CLI config");
        let env = vec![
            ("TF_CLI_CONFIG_FILE".to_string(), rc.display().to_string()),
            ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
            ("TF_INPUT".to_string(), "0".to_string()),
            ("CHECKPOINT_DISABLE".to_string(), "1".to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
        ];
        Self { dir, env }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an environment variable for every later run.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Writes `main.tf` (and removes nothing else).
    pub fn write_main(&self, hcl: &str) {
        self.write("main.tf", hcl);
    }

    pub fn write(&self, file: &str, content: &str) {
        std::fs::write(self.dir.path().join(file), content).expect("write config file");
    }

    /// Runs the CLI with `args` (`-no-color` is added where Terraform accepts it).
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run terraform").into()
    }

    /// A prepared command, for tests that need to signal the process (Ctrl-C).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.current_dir(self.dir.path());
        cmd.args(args);
        if args.first().is_some_and(|a| {
            [
                "plan", "apply", "destroy", "import", "refresh", "show", "validate", "output",
            ]
            .contains(a)
        }) {
            cmd.arg("-no-color");
        }
        cmd.env_remove("TF_LOG").env_remove("TF_LOG_PROVIDER");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn apply(&self) -> Output {
        self.run(&["apply", "-auto-approve"])
    }

    pub fn destroy(&self) -> Output {
        self.run(&["destroy", "-auto-approve"])
    }

    /// The addresses in state (`terraform state list`); none when there is no state yet.
    /// Panics on any other failure.
    #[track_caller]
    pub fn state_list(&self) -> Vec<String> {
        let out = self.run(&["state", "list"]);
        if !out.success() {
            assert!(
                out.all().contains("No state file was found"),
                "state list failed (exit {}):\n{}",
                out.code,
                out.all()
            );
            return Vec::new();
        }
        out.stdout.lines().map(str::to_string).collect()
    }

    /// `plan -detailed-exitcode`: 0 no changes, 2 changes, 1 error.
    pub fn plan_code(&self) -> Output {
        self.run(&["plan", "-detailed-exitcode"])
    }

    /// Asserts the plan is empty (the invariant after every apply).
    #[track_caller]
    pub fn assert_no_changes(&self) {
        let out = self.plan_code();
        assert_eq!(
            out.code,
            0,
            "expected an empty plan, got exit {}:\n{}",
            out.code,
            out.all()
        );
    }

    /// Saves a plan and returns `terraform show -json` of it.
    #[track_caller]
    pub fn plan_json(&self) -> Json {
        self.run(&["plan", "-out=e2e.tfplan"]).ok();
        let out = self.run(&["show", "-json", "e2e.tfplan"]).ok();
        serde_json::from_str(&out.stdout).expect("plan JSON")
    }

    /// `terraform show -json` of the state.
    #[track_caller]
    pub fn state_json(&self) -> Json {
        let out = self.run(&["show", "-json"]).ok();
        serde_json::from_str(&out.stdout).expect("state JSON")
    }

    /// The `values` of one resource in state, by address (e.g. `kargo_project.demo`).
    #[track_caller]
    pub fn resource(&self, address: &str) -> Json {
        find_resource(&self.state_json()["values"]["root_module"], address)
            .unwrap_or_else(|| panic!("{address} is not in state"))
    }

    /// The root module's outputs as name → value (`terraform output -json` without the
    /// `sensitive` and `type` beside each value).
    #[track_caller]
    pub fn outputs(&self) -> Json {
        let out = self.run(&["output", "-json"]).ok();
        let all: Json = serde_json::from_str(&out.stdout).expect("outputs JSON");
        let values = all
            .as_object()
            .expect("outputs")
            .iter()
            .map(|(name, output)| (name.clone(), output["value"].clone()))
            .collect();
        Json::Object(values)
    }
}

impl Default for Terraform {
    fn default() -> Self {
        Self::new()
    }
}

/// The `values` of `address` in a `show -json` module (searching child modules too).
fn find_resource(module: &Json, address: &str) -> Option<Json> {
    for r in module["resources"].as_array().into_iter().flatten() {
        if r["address"] == address {
            return Some(r["values"].clone());
        }
    }
    for child in module["child_modules"].as_array().into_iter().flatten() {
        if let Some(v) = find_resource(child, address) {
            return Some(v);
        }
    }
    None
}

/// The state entry (not only its values) of `address` in the root module of `tf`'s state,
/// e.g. to see whether it is tainted.
#[track_caller]
pub fn state_entry(tf: &Terraform, address: &str) -> Json {
    tf.state_json()["values"]["root_module"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["address"] == address)
        .cloned()
        .unwrap_or_else(|| panic!("{address} is not in state"))
}

/// The actions planned for `address` in a `show -json` plan (e.g. `["update"]`,
/// `["delete","create"]`), or `None` when the plan does not mention it.
pub fn planned_actions(plan: &Json, address: &str) -> Option<Vec<String>> {
    plan["resource_changes"]
        .as_array()?
        .iter()
        .find(|c| c["address"] == address)
        .map(|c| {
            c["change"]["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(String::from))
                .collect()
        })
}

/// `names` as [`planned_actions`] returns them, e.g. `actions(&["create"])`.
pub fn actions(names: &[&str]) -> Option<Vec<String>> {
    Some(names.iter().map(|s| s.to_string()).collect())
}

/// The planned `after` values of `address`.
pub fn planned_after(plan: &Json, address: &str) -> Option<Json> {
    plan["resource_changes"]
        .as_array()?
        .iter()
        .find(|c| c["address"] == address)
        .map(|c| c["change"]["after"].clone())
}
