//! The provider binary as a plugin: run by hand it explains itself; with `-debug` it serves
//! for Terraform's reattach mode, which drives a real plan and apply against the sandbox; its
//! version, network variable and log module are its own (the generic handshake is tested
//! with the plugin crate).

use std::process::{Command, Stdio};

use kargo_e2e::Env;
use kargo_e2e::terraform::{provider_dir, reattach_providers};

const ADDRESS: &str = "registry.terraform.io/dokaseca/kargo";

#[test]
fn run_by_hand_it_explains_and_prints_nothing_on_stdout() {
    let out = Command::new(provider_dir().join("terraform-provider-kargo"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "stdout is reserved for the handshake line"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("This binary is the Kargo provider for Terraform and OpenTofu."),
        "{stderr}"
    );
    assert!(stderr.contains("Terraform starts it"), "{stderr}");
    assert!(
        stderr.contains(r#"kargo = { source = "dokaseca/kargo" }"#),
        "{stderr}"
    );
    assert!(stderr.contains("-debug"), "{stderr}");
    assert!(stderr.contains("TF_REATTACH_PROVIDERS"), "{stderr}");
}

#[test]
fn version_flag_prints_the_provider_version() {
    let out = Command::new(provider_dir().join("terraform-provider-kargo"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("terraform-provider-kargo {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn kargo_plugin_network_chooses_tcp_and_logs_go_under_the_kargo_module() {
    let mut tf = kargo_e2e::Terraform::new();
    tf.env("TF_DISABLE_PLUGIN_TLS", "1")
        .env("KARGO_PLUGIN_NETWORK", "tcp")
        .env("TF_LOG", "debug");
    tf.write_main(
        "terraform {\n  required_providers {\n    kargo = { source = \"dokaseca/kargo\" }\n  }\n}\n\nprovider \"kargo\" {}\n",
    );
    let out = tf.run(&["providers", "schema", "-json"]).ok();
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).expect("schema JSON");
    assert!(
        schema["provider_schemas"][ADDRESS]["resource_schemas"]["kargo_warehouse"].is_object(),
        "{schema}"
    );
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("plugin listening"))
        .unwrap_or_else(|| panic!("no `plugin listening` line in:\n{}", out.stderr));
    assert!(line.contains("network=tcp"), "{line}");
    assert!(line.contains("address=127.0.0.1:"), "{line}");
    assert!(line.contains("tls=false"), "{line}");
    assert!(line.contains("@module=kargo.plugin.handshake"), "{line}");
}

#[test]
fn debug_mode_serves_terraform_through_reattach() {
    let env = Env::new();
    let mut child = Command::new(provider_dir().join("terraform-provider-kargo"))
        .arg("-debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reattach =
        reattach_providers(stdout).expect("the -debug banner prints TF_REATTACH_PROVIDERS");
    let parsed: serde_json::Value =
        serde_json::from_str(&reattach).expect("reattach value is JSON");
    assert_eq!(parsed[ADDRESS]["ProtocolVersion"], 6);

    // No CLI config at all: reattach replaces provider installation.
    let mut tf = kargo_e2e::Terraform::new();
    tf.env("TF_REATTACH_PROVIDERS", &reattach);
    tf.env("TF_CLI_CONFIG_FILE", "/dev/null");
    tf.write_main(&format!(
        "{}\nresource \"kargo_project\" \"p\" {{\n  name = \"reattached\"\n}}\n",
        env.provider_block()
    ));
    tf.apply().ok();
    assert!(env.get("projects", None, "reattached").is_some());
    tf.destroy().ok();
    let _ = child.kill();
    let _ = child.wait();
}
