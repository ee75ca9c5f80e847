//! The provider binary as Terraform runs it: the go-plugin handshake (AutoMTLS over a unix
//! socket, plaintext over TCP), `-debug` with `TF_REATTACH_PROVIDERS`, and running it by hand.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PROVIDER: &str = "registry.terraform.io/dokaseca/kargo";

fn provider_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-kargo"))
}

/// A working directory with a configuration that uses the provider and a CLI config whose
/// dev_overrides point Terraform at the freshly built binary (no `terraform init` needed).
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin_dir = provider_binary()
            .parent()
            .expect("binary directory")
            .to_path_buf();
        std::fs::write(
            dir.path().join("cli.tfrc"),
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"{PROVIDER}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                bin_dir.display()
            ),
        )
        .expect("write CLI config");
        std::fs::write(
            dir.path().join("main.tf"),
            "terraform {\n  required_providers {\n    kargo = { source = \"dokaseca/kargo\" }\n  }\n}\n\nprovider \"kargo\" {}\n",
        )
        .expect("write main.tf");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `terraform <args>` in this workspace with a clean, offline-friendly environment.
    fn terraform(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("terraform");
        cmd.args(args).current_dir(self.path());
        for var in [
            "TF_LOG",
            "TF_LOG_PROVIDER",
            "TF_LOG_CORE",
            "TF_LOG_PATH",
            "TF_REATTACH_PROVIDERS",
            "TF_DISABLE_PLUGIN_TLS",
            "TF_PLUGIN_CACHE_DIR",
            "KARGO_PLUGIN_NETWORK",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("TF_CLI_CONFIG_FILE", self.path().join("cli.tfrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        match cmd.output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "the `terraform` binary is not on PATH: these tests drive the real Terraform CLI \
                 (1.x) against the provider; install it and re-run"
            ),
            Err(e) => panic!("could not run terraform: {e}"),
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Asserts that `providers schema -json` output describes this provider's configuration block.
fn assert_provider_schema(stdout: &[u8]) {
    let schema: serde_json::Value = serde_json::from_slice(stdout).expect("schema output is JSON");
    let provider = &schema["provider_schemas"][PROVIDER];
    assert!(provider.is_object(), "no schema for {PROVIDER} in {schema}");
    let block = &provider["provider"]["block"];
    assert!(
        block.is_object(),
        "the provider schema has no configuration block: {provider}"
    );
    assert!(
        block["attributes"]
            .as_object()
            .is_some_and(|a| !a.is_empty()),
        "the provider block has no attributes: {block}"
    );
}

/// The provider's own hclog line `plugin listening`, as Terraform's log shows it.
fn listening_line(terraform_log: &str) -> String {
    terraform_log
        .lines()
        .find(|l| l.contains("plugin listening"))
        .unwrap_or_else(|| {
            panic!("the provider's `plugin listening` log line is missing:\n{terraform_log}")
        })
        .to_string()
}

#[test]
fn terraform_reads_the_schema_and_plans_over_automtls() {
    let ws = Workspace::new();
    let out = ws.terraform(&["providers", "schema", "-json"], &[]);
    assert_success("terraform providers schema -json", &out);
    assert_provider_schema(&out.stdout);

    // Terraform sets PLUGIN_CLIENT_CERT (AutoMTLS) unless told not to; the provider's debug log
    // reaches Terraform's log through go-plugin's stderr parsing.
    let out = ws.terraform(
        &["plan", "-input=false", "-no-color"],
        &[("TF_LOG", "debug")],
    );
    assert_success("terraform plan", &out);
    assert!(
        text(&out.stdout).contains("No changes."),
        "{}",
        text(&out.stdout)
    );
    let log = text(&out.stderr);
    let line = listening_line(&log);
    assert!(line.contains("tls=true"), "{line}");
    assert!(line.contains("network=unix"), "{line}");
    assert!(
        log.contains("GetProviderSchema finished"),
        "RPC log line missing:\n{log}"
    );
}

#[test]
fn terraform_works_without_tls_over_tcp() {
    let ws = Workspace::new();
    let env = [
        ("TF_DISABLE_PLUGIN_TLS", "1"),
        ("KARGO_PLUGIN_NETWORK", "tcp"),
        ("TF_LOG", "debug"),
    ];
    let out = ws.terraform(&["providers", "schema", "-json"], &env);
    assert_success("terraform providers schema -json", &out);
    assert_provider_schema(&out.stdout);
    let line = listening_line(&text(&out.stderr));
    assert!(line.contains("tls=false"), "{line}");
    assert!(
        line.contains("network=tcp") && line.contains("address=127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn run_by_hand_it_explains_itself_and_prints_nothing_on_stdout() {
    let out = Command::new(provider_binary())
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .stdin(Stdio::null())
        .output()
        .expect("run the provider binary");
    assert_eq!(out.status.code(), Some(1), "exit status");
    assert!(
        out.stdout.is_empty(),
        "nothing may go to stdout, got: {:?}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Terraform starts it"), "{stderr}");
    assert!(stderr.contains("-debug"), "{stderr}");
    assert!(stderr.contains("TF_REATTACH_PROVIDERS"), "{stderr}");
}

#[test]
fn a_wrong_cookie_is_refused_too() {
    let out = Command::new(provider_binary())
        .env("TF_PLUGIN_MAGIC_COOKIE", "not-the-cookie")
        .stdin(Stdio::null())
        .output()
        .expect("run the provider binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{:?}", text(&out.stdout));
}

#[test]
fn version_flag_prints_the_version() {
    let out = Command::new(provider_binary())
        .arg("--version")
        .output()
        .expect("run the provider binary");
    assert_success("--version", &out);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("terraform-provider-kargo {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Kills the `-debug` child if a test assertion fails before it is stopped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn debug_mode_serves_terraform_through_tf_reattach_providers() {
    for network in ["tcp", "unix"] {
        let mut child = Child(
            Command::new(provider_binary())
                .arg("-debug")
                .arg(format!("-debug-network={network}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the provider in debug mode"),
        );
        let stdout = child.0.stdout.take().expect("piped stdout");
        let reattach = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("TF_REATTACH_PROVIDERS='")
                    .and_then(|rest| rest.strip_suffix('\''))
                    .map(String::from)
            })
            .expect("debug mode prints a TF_REATTACH_PROVIDERS line");
        let config: serde_json::Value =
            serde_json::from_str(&reattach).expect("reattach value is JSON");
        let entry = &config[PROVIDER];
        assert_eq!(entry["ProtocolVersion"], 6, "{config}");
        assert_eq!(entry["Addr"]["Network"], network, "{config}");
        assert_eq!(entry["Pid"], child.0.id(), "{config}");

        // No dev_overrides and no init: reattach alone must be enough.
        let ws = Workspace::new();
        std::fs::remove_file(ws.path().join("cli.tfrc")).expect("remove CLI config");
        let empty_cli_config = ws.path().join("empty.tfrc");
        std::fs::write(&empty_cli_config, "").expect("write empty CLI config");
        let out = ws.terraform(
            &["providers", "schema", "-json"],
            &[
                ("TF_REATTACH_PROVIDERS", &reattach),
                ("TF_CLI_CONFIG_FILE", &empty_cli_config.to_string_lossy()),
            ],
        );
        assert_success(
            "terraform providers schema -json with TF_REATTACH_PROVIDERS",
            &out,
        );
        assert_provider_schema(&out.stdout);

        // Terraform leaves a reattached provider running; SIGTERM stops it cleanly.
        assert!(
            matches!(child.0.try_wait(), Ok(None)),
            "the provider exited after terraform finished"
        );
        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(child.0.id().to_string())
            .status()
            .expect("run kill");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("wait for the provider") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the provider did not stop within 10s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "debug mode should exit cleanly on SIGTERM, got {status}"
        );
    }
}
