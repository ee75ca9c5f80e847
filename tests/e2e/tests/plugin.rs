//! The provider binary as a plugin: run by hand it explains itself; with `-debug` it serves
//! for Terraform's reattach mode, which drives a real plan and apply against the sandbox.

use std::process::{Command, Stdio};

use kargo_e2e::Env;
use kargo_e2e::terraform::{provider_dir, reattach_providers};

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
    assert!(stderr.contains("Terraform starts it"), "{stderr}");
    assert!(stderr.contains("-debug"), "{stderr}");
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
    assert_eq!(
        parsed["registry.terraform.io/dokaseca/kargo"]["ProtocolVersion"],
        6
    );

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
