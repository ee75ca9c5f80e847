//! The `terraform-provider-kargo` binary: started by Terraform through go-plugin's handshake,
//! or by hand with `-debug` to serve for `TF_REATTACH_PROVIDERS`.

use std::process::ExitCode;

use terraform_provider_kargo::plugin::ServeOptions;
use terraform_provider_kargo::provider::KargoProvider;

/// Shown when someone runs the binary by hand.
const NOT_LAUNCHED_BY_TERRAFORM: &str = "\
This binary is the Kargo provider for Terraform and OpenTofu. Terraform starts it
itself when a configuration uses the provider; it is not meant to be run directly.

To use it, declare it in your configuration and run terraform:

    terraform {
      required_providers {
        kargo = { source = \"dokaseca/kargo\" }
      }
    }

To debug it, run it with -debug: it then serves on a local address and prints a
TF_REATTACH_PROVIDERS value; export that in the shell where you run terraform.
Run it with --help for all options.";

fn main() -> ExitCode {
    // kube-rs and the plugin's TLS both use rustls; pinning ring as the process default keeps a
    // second backend, should one ever be compiled in, from making rustls refuse to pick.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ServeOptions::new("registry.terraform.io/dokaseca/kargo")
        .version(env!("CARGO_PKG_VERSION"))
        .network_variable("KARGO_PLUGIN_NETWORK")
        .help_when_run_by_hand(NOT_LAUNCHED_BY_TERRAFORM)
        .log_target("terraform_provider_kargo", "kargo")
        .run(KargoProvider::new)
}
