//! A provider binary built on the crate, as Terraform runs it: the go-plugin handshake
//! (AutoMTLS over a unix socket, plaintext over TCP), `-debug` with `TF_REATTACH_PROVIDERS`,
//! and running it by hand. The binary is the example provider.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{PROVIDER, Workspace, assert_success, echo_binary, text};

const MAIN_TF: &str = "provider \"echo\" {}\n";

/// Asserts that `providers schema -json` output describes the example provider.
fn assert_provider_schema(stdout: &[u8]) {
    let schema: serde_json::Value = serde_json::from_slice(stdout).expect("schema output is JSON");
    let provider = &schema["provider_schemas"][PROVIDER];
    assert_eq!(
        provider["provider"]["block"]["attributes"]["id_prefix"]["type"], "string",
        "no provider block with `id_prefix` for {PROVIDER} in {schema}"
    );
    let store = &provider["resource_schemas"]["echo_store"]["block"];
    assert_eq!(store["attributes"]["name"]["required"], true, "{store}");
    assert_eq!(
        store["block_types"]["subscriptions"]["nesting_mode"], "list",
        "{store}"
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
    let ws = Workspace::new(MAIN_TF);
    let out = ws.terraform(&["providers", "schema", "-json"], &[]);
    assert_success("terraform providers schema -json", &out);
    assert_provider_schema(&out.stdout);

    // Terraform sets PLUGIN_CLIENT_CERT (AutoMTLS) unless told not to; the provider's debug log
    // reaches Terraform's log through go-plugin's stderr parsing, under the provider's module.
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
    assert!(line.contains("@module=echo.plugin.handshake"), "{line}");
    assert!(
        log.contains("GetProviderSchema finished"),
        "RPC log line missing:\n{log}"
    );
}

#[test]
fn terraform_works_without_tls_over_tcp_chosen_by_the_network_variable() {
    let ws = Workspace::new(MAIN_TF);
    let env = [
        ("TF_DISABLE_PLUGIN_TLS", "1"),
        ("ECHO_PLUGIN_NETWORK", "tcp"),
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
fn a_bad_network_variable_stops_the_provider_with_a_logged_error() {
    let ws = Workspace::new(MAIN_TF);
    let out = ws.terraform(
        &["providers", "schema", "-json"],
        &[("ECHO_PLUGIN_NETWORK", "udp"), ("TF_LOG", "error")],
    );
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Failed to load plugin schemas"), "{stderr}");
    // Terraform shows a plugin's own words only in its log.
    let line = stderr
        .lines()
        .find(|l| {
            l.contains("[ERROR] provider.terraform-provider-echo: provider stopped with an error:")
        })
        .unwrap_or_else(|| panic!("the provider's error is not in Terraform's log:\n{stderr}"));
    assert!(
        line.contains(
            r#"error="invalid plugin environment: ECHO_PLUGIN_NETWORK must be \"unix\" or \"tcp\", not \"udp\"""#
        ),
        "{line}"
    );
    assert!(line.contains("@module=echo.plugin.serve"), "{line}");
}

#[test]
fn run_by_hand_it_explains_itself_and_prints_nothing_on_stdout() {
    let out = Command::new(echo_binary())
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
        stderr.starts_with(
            "This binary is the Terraform provider registry.terraform.io/example/echo."
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"echo = { source = "example/echo" }"#),
        "{stderr}"
    );
    assert!(stderr.contains("-debug"), "{stderr}");
    assert!(stderr.contains("TF_REATTACH_PROVIDERS"), "{stderr}");
}

#[test]
fn a_wrong_cookie_is_refused_too() {
    let out = Command::new(echo_binary())
        .env("TF_PLUGIN_MAGIC_COOKIE", "not-the-cookie")
        .stdin(Stdio::null())
        .output()
        .expect("run the provider binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{:?}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("Terraform (or OpenTofu)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn version_and_help_flags_print_on_stdout() {
    let out = Command::new(echo_binary())
        .arg("--version")
        .output()
        .expect("run the provider binary");
    assert_success("--version", &out);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("terraform-provider-echo {}", env!("CARGO_PKG_VERSION"))
    );

    let out = Command::new(echo_binary())
        .arg("-help")
        .output()
        .expect("run the provider binary");
    assert_success("-help", &out);
    let usage = text(&out.stdout);
    assert!(
        usage.starts_with("Usage: terraform-provider-echo [options]"),
        "{usage}"
    );
    assert!(usage.contains("ECHO_PLUGIN_NETWORK"), "{usage}");
}

#[test]
fn an_unknown_flag_prints_the_usage_and_exits_2() {
    let out = Command::new(echo_binary())
        .arg("--frobnicate")
        .output()
        .expect("run the provider binary");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{:?}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("terraform-provider-echo: unknown argument \"--frobnicate\"\n\nUsage:"),
        "{stderr}"
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
            Command::new(echo_binary())
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
        let ws = Workspace::new(MAIN_TF);
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
