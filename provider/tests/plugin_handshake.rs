//! The provider binary's own settings of the generic plugin server: its address, version, the
//! `KARGO_PLUGIN_NETWORK` variable and the text shown when run by hand (the handshake itself is
//! tested with the plugin crate; `-debug` against the sandbox in tests/e2e).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
    assert!(line.contains("@module=kargo.plugin.handshake"), "{line}");
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
    assert!(
        stderr.starts_with("This binary is the Kargo provider for Terraform and OpenTofu."),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"kargo = { source = "dokaseca/kargo" }"#),
        "{stderr}"
    );
    assert!(stderr.contains("-debug"), "{stderr}");
    assert!(stderr.contains("TF_REATTACH_PROVIDERS"), "{stderr}");
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
