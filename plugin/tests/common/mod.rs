//! Shared by the end-to-end tests: the example provider binary and a Terraform working
//! directory whose CLI configuration points Terraform at it (no `terraform init` needed).

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::Output;

pub const PROVIDER: &str = "registry.terraform.io/example/echo";

/// The example provider, which `cargo test` / `cargo nextest` build next to the test binaries.
pub fn echo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>/examples/terraform-provider-echo
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("examples").join(format!(
        "terraform-provider-echo{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` and `cargo nextest run` build it; after `cargo test --test …` \
         run `cargo build -p tfplugin --example terraform-provider-echo` first",
        bin.display()
    );
    bin
}

/// A working directory with `main.tf` and a CLI config whose dev_overrides point Terraform at
/// the example provider.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(main_tf: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin_dir = echo_binary()
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
        let ws = Self { dir };
        ws.write_main(main_tf);
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_main(&self, body: &str) {
        std::fs::write(
            self.path().join("main.tf"),
            format!(
                "terraform {{\n  required_providers {{\n    echo = {{ source = \"example/echo\" }}\n  }}\n}}\n\n{body}"
            ),
        )
        .expect("write main.tf");
    }

    /// `terraform <args>` here, with a clean environment plus `env`.
    pub fn terraform(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new("terraform");
        cmd.args(args).current_dir(self.path());
        for var in [
            "TF_LOG",
            "TF_LOG_PROVIDER",
            "TF_LOG_CORE",
            "TF_LOG_PATH",
            "TF_REATTACH_PROVIDERS",
            "TF_DISABLE_PLUGIN_TLS",
            "TF_PLUGIN_CACHE_DIR",
            "ECHO_PLUGIN_NETWORK",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("TF_CLI_CONFIG_FILE", self.path().join("cli.tfrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        match cmd.output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "the `terraform` binary is not on PATH: these tests drive the real Terraform CLI \
                 (1.x) against the example provider; install it and re-run"
            ),
            Err(e) => panic!("could not run terraform: {e}"),
        }
    }

    /// `terraform show -json` of the state.
    pub fn state(&self) -> serde_json::Value {
        let out = self.terraform(&["show", "-json"], &[]);
        assert_success("terraform show -json", &out);
        serde_json::from_slice(&out.stdout).expect("state JSON")
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}
