//! The provider binary's entry point: [`ServeOptions`] names the provider and its settings,
//! and [`ServeOptions::run`] handles the command line, logging, the runtime and the handshake.

use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use crate::Provider;
use crate::error::{Error, Result};
use crate::handshake::{self, DebugServer, Network, PluginEnv};
use crate::logging::{self, LogTarget};

/// How a provider binary presents itself: its registry address, version, the variable that
/// forces the listener kind, the text shown when someone runs it by hand, and its log target.
/// Everything but the address has a default derived from it.
///
/// ```no_run
/// use std::sync::Arc;
/// use tfplugin::{Context, DataSource, Diagnostics, Provider, Resource, Schema, ServeOptions, Value};
///
/// struct Echo;
///
/// #[async_trait::async_trait]
/// impl Provider for Echo {
///     fn schema(&self) -> Schema { Schema::default() }
///     async fn configure(&self, _: &Context, _: &Value, _: &str) -> Diagnostics { Diagnostics::default() }
///     fn resources(&self) -> Vec<Arc<dyn Resource>> { Vec::new() }
///     fn data_sources(&self) -> Vec<Arc<dyn DataSource>> { Vec::new() }
/// }
///
/// fn main() -> std::process::ExitCode {
///     ServeOptions::new("registry.terraform.io/example/echo")
///         .version(env!("CARGO_PKG_VERSION"))
///         .run(|| Echo)
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ServeOptions {
    provider_address: String,
    binary_name: String,
    version: Option<String>,
    network_variable: String,
    help: Option<String>,
    log_target: LogTarget,
}

impl ServeOptions {
    /// Options for the provider Terraform knows as `provider_address`
    /// (`registry.terraform.io/<namespace>/<type>`, or another host's address).
    ///
    /// The defaults follow the provider's type name, here `echo`: binary
    /// `terraform-provider-echo`, network variable `ECHO_PLUGIN_NETWORK`, log target
    /// `terraform_provider_echo` shown as module `echo`, and a generic help text.
    ///
    /// ```
    /// use tfplugin::ServeOptions;
    ///
    /// let options = ServeOptions::new("registry.terraform.io/example/echo");
    /// assert!(options.usage().starts_with("Usage: terraform-provider-echo [options]"));
    /// assert!(options.usage().contains("ECHO_PLUGIN_NETWORK"));
    /// assert!(options.help_text().contains(r#"echo = { source = "example/echo" }"#));
    /// ```
    pub fn new(provider_address: impl Into<String>) -> Self {
        let provider_address = provider_address.into();
        let type_name = provider_address
            .rsplit('/')
            .next()
            .unwrap_or(&provider_address)
            .to_string();
        Self {
            binary_name: format!("terraform-provider-{type_name}"),
            version: None,
            network_variable: format!(
                "{}_PLUGIN_NETWORK",
                type_name.to_ascii_uppercase().replace('-', "_")
            ),
            help: None,
            log_target: LogTarget::new(
                format!("terraform_provider_{}", type_name.replace('-', "_")),
                type_name,
            ),
            provider_address,
        }
    }

    /// The version `-version` prints (normally `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The binary's name in messages and `-version` output.
    pub fn binary_name(mut self, name: impl Into<String>) -> Self {
        self.binary_name = name.into();
        self
    }

    /// The environment variable that forces how Terraform connects: `unix` (the default on
    /// Unix, like go-plugin) or `tcp`.
    pub fn network_variable(mut self, variable: impl Into<String>) -> Self {
        self.network_variable = variable.into();
        self
    }

    /// The text printed on stderr when the binary is run by hand rather than by Terraform.
    pub fn help_when_run_by_hand(mut self, text: impl Into<String>) -> Self {
        self.help = Some(text.into());
        self
    }

    /// The provider's `tracing` target (its crate name, `_` for `-`) and the `@module` name
    /// its events carry in Terraform's log; see [`LogTarget`].
    pub fn log_target(mut self, target: impl Into<String>, module: impl Into<String>) -> Self {
        self.log_target = LogTarget::new(target, module);
        self
    }

    /// The address Terraform knows the provider by.
    pub fn provider_address(&self) -> &str {
        &self.provider_address
    }

    /// The text shown when the binary is run by hand: the one given, or a generic one naming
    /// the provider's source address.
    pub fn help_text(&self) -> String {
        match &self.help {
            Some(text) => text.clone(),
            None => default_help(&self.provider_address),
        }
    }

    /// `--help` output: the flags [`run`](Self::run) accepts and the environment it reads.
    pub fn usage(&self) -> String {
        format!(
            "\
Usage: {name} [options]

Terraform starts this provider itself; run it by hand only to debug it.

Options:
  -debug                 Serve in plaintext on a local address and print the
                         TF_REATTACH_PROVIDERS value for terraform; stop with Ctrl-C.
  -debug-network=NET     With -debug: \"tcp\" (127.0.0.1, the default) or \"unix\".
  -version, --version    Print the provider version.
  -h, -help, --help      Print this help.

Environment:
  TF_LOG_PROVIDER, TF_LOG  Log level (TRACE, DEBUG, INFO, WARN, ERROR, OFF); logs go to
                           stderr as JSON lines, which Terraform files under the provider.
  {network:<23}  \"unix\" (default) or \"tcp\": how Terraform connects.",
            name = self.binary_name,
            network = self.network_variable,
        )
    }

    /// The whole `main` of a provider binary. Reads the command line: with no arguments it
    /// serves Terraform (checking that Terraform started it, else printing the help text);
    /// `-debug` serves for `TF_REATTACH_PROVIDERS` until Ctrl-C; `-version` and `-help` print.
    /// Logs go to stderr as hclog JSON at `TF_LOG_PROVIDER` / `TF_LOG`'s level.
    /// `provider` is called once, inside the async runtime.
    pub fn run<P, F>(self, provider: F) -> ExitCode
    where
        P: Provider,
        F: FnOnce() -> P,
    {
        let mode = match parse_args(std::env::args().skip(1)) {
            Ok(mode) => mode,
            Err(message) => {
                eprintln!("{}: {message}\n\n{}", self.binary_name, self.usage());
                return ExitCode::from(2);
            }
        };
        match mode {
            Mode::Version => {
                match &self.version {
                    Some(version) => println!("{} {version}", self.binary_name),
                    None => println!("{}", self.binary_name),
                }
                ExitCode::SUCCESS
            }
            Mode::Help => {
                println!("{}", self.usage());
                ExitCode::SUCCESS
            }
            Mode::Plugin => {
                let env = PluginEnv::from_process(&self.network_variable);
                // Checked before anything else so that a person running the binary gets a
                // plain explanation and no stray output.
                if handshake::check_cookie(&env).is_err() {
                    eprintln!("{}", self.help_text());
                    return ExitCode::FAILURE;
                }
                self.run_with(provider, |options, provider| async move {
                    options.serve(provider, &env).await
                })
            }
            Mode::Debug(network) => self.run_with(provider, move |options, provider| async move {
                options.serve_debug(provider, network).await
            }),
        }
    }

    /// Sets up logging and the runtime, then runs `serve` with the provider.
    fn run_with<P, F, S, Fut>(self, provider: F, serve: S) -> ExitCode
    where
        P: Provider,
        F: FnOnce() -> P,
        S: FnOnce(Self, Arc<dyn Provider>) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        logging::init(self.log_target.clone());
        let binary_name = self.binary_name.clone();
        let result = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)
            .and_then(|runtime| {
                runtime.block_on(async {
                    let provider: Arc<dyn Provider> = Arc::new(provider());
                    serve(self, provider).await
                })
            });
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "provider stopped with an error");
                eprintln!("{binary_name}: {e}");
                ExitCode::FAILURE
            }
        }
    }

    /// Serves `provider` the way Terraform expects when it starts the binary (see
    /// [`handshake::serve_managed`]), until Terraform's Shutdown call.
    pub async fn serve(&self, provider: Arc<dyn Provider>, env: &PluginEnv) -> Result<()> {
        handshake::serve_managed(provider, env).await
    }

    /// `-debug`: serves in plaintext on `network`, prints the `TF_REATTACH_PROVIDERS` banner on
    /// stdout, and stops on SIGINT / SIGTERM or Terraform's Shutdown call.
    pub async fn serve_debug(&self, provider: Arc<dyn Provider>, network: Network) -> Result<()> {
        // Installed before the reattach line is printed: whoever reads it may signal at once,
        // and a background process started by a shell inherits SIGINT as ignored until a
        // handler exists.
        let mut stop_signals = StopSignals::install().map_err(Error::Signals)?;
        let server = DebugServer::start(self.provider_address.clone(), provider, network).await?;
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "Provider serving in debug mode on {} {}.\n\
             To use it, set this in the shell where you run terraform (no `terraform init` needed),\n\
             then press Ctrl-C here when done:\n\n\
             TF_REATTACH_PROVIDERS='{}'",
            server.network().as_str(),
            server.address(),
            server.reattach_json()
        )
        .and_then(|_| stdout.flush())
        .map_err(Error::Stdout)?;
        drop(stdout);

        let stopped = server.shutdown_token();
        tokio::select! {
            _ = stop_signals.recv() => tracing::info!("interrupted; stopping"),
            _ = stopped.cancelled() => {}
        }
        server.shutdown();
        server.wait().await
    }
}

/// The generic text shown when the binary is run by hand.
fn default_help(provider_address: &str) -> String {
    let type_name = provider_address
        .rsplit('/')
        .next()
        .unwrap_or(provider_address);
    // The public registry's host is implied in a `source` address.
    let source = provider_address
        .strip_prefix("registry.terraform.io/")
        .unwrap_or(provider_address);
    format!(
        "\
This binary is the Terraform provider {provider_address}. Terraform (or OpenTofu)
starts it itself when a configuration uses the provider; it is not meant to be run directly.

To use it, declare it in your configuration and run terraform:

    terraform {{
      required_providers {{
        {type_name} = {{ source = \"{source}\" }}
      }}
    }}

To debug it, run it with -debug: it then serves on a local address and prints a
TF_REATTACH_PROVIDERS value; export that in the shell where you run terraform.
Run it with --help for all options."
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Plugin,
    Debug(Network),
    Version,
    Help,
}

/// Accepts Go-style single-dash flags as well as double-dash ones, like Go providers do.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let mut debug = false;
    let mut network = Network::Tcp;
    let mut mode = None;
    for arg in args {
        let flag = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .unwrap_or("");
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        match (name, value) {
            ("debug", None | Some("true")) => debug = true,
            ("debug", Some("false")) => debug = false,
            ("debug-network", Some(v)) => {
                network = Network::parse(v)
                    .ok_or_else(|| format!("-debug-network must be tcp or unix, not {v:?}"))?;
            }
            ("version" | "v", None) => mode = Some(Mode::Version),
            ("help" | "h", None) => mode = Some(Mode::Help),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(mode.unwrap_or(if debug {
        Mode::Debug(network)
    } else {
        Mode::Plugin
    }))
}

/// SIGINT (Ctrl-C) and SIGTERM, which end a `-debug` session.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Mode, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn flags() {
        assert_eq!(parse(&[]), Ok(Mode::Plugin));
        assert_eq!(parse(&["-debug"]), Ok(Mode::Debug(Network::Tcp)));
        assert_eq!(
            parse(&["--debug", "-debug-network=unix"]),
            Ok(Mode::Debug(Network::Unix))
        );
        assert_eq!(parse(&["-debug=false"]), Ok(Mode::Plugin));
        assert_eq!(parse(&["--version"]), Ok(Mode::Version));
        assert_eq!(parse(&["-version"]), Ok(Mode::Version));
        assert_eq!(parse(&["-h"]), Ok(Mode::Help));
        assert_eq!(
            parse(&["-debug-network=udp"]),
            Err("-debug-network must be tcp or unix, not \"udp\"".to_string())
        );
        assert_eq!(
            parse(&["serve"]),
            Err("unknown argument \"serve\"".to_string())
        );
        assert!(parse(&["--frobnicate"]).is_err());
    }

    #[test]
    fn defaults_follow_the_provider_type() {
        let options = ServeOptions::new("registry.terraform.io/acme/my-thing");
        assert_eq!(
            options.provider_address(),
            "registry.terraform.io/acme/my-thing"
        );
        assert_eq!(options.binary_name, "terraform-provider-my-thing");
        assert_eq!(options.network_variable, "MY_THING_PLUGIN_NETWORK");
        assert_eq!(
            options.log_target,
            LogTarget::new("terraform_provider_my_thing", "my-thing")
        );
        let help = options.help_text();
        assert!(
            help.contains(r#"my-thing = { source = "acme/my-thing" }"#),
            "{help}"
        );
        assert!(help.contains("-debug"), "{help}");
        assert!(help.contains("TF_REATTACH_PROVIDERS"), "{help}");
    }

    #[test]
    fn other_hosts_keep_their_host_in_the_source_address() {
        let help = ServeOptions::new("tf.example.com/acme/thing").help_text();
        assert!(
            help.contains(r#"thing = { source = "tf.example.com/acme/thing" }"#),
            "{help}"
        );
    }

    #[test]
    fn every_setting_can_be_given() {
        let options = ServeOptions::new("registry.terraform.io/acme/thing")
            .binary_name("thing-provider")
            .version("1.2.3")
            .network_variable("THING_NET")
            .help_when_run_by_hand("Not like this.")
            .log_target("thing_provider", "thing");
        assert_eq!(options.binary_name, "thing-provider");
        assert_eq!(options.version.as_deref(), Some("1.2.3"));
        assert_eq!(options.help_text(), "Not like this.");
        assert_eq!(
            options.log_target,
            LogTarget::new("thing_provider", "thing")
        );
        let usage = options.usage();
        assert!(
            usage.starts_with("Usage: thing-provider [options]"),
            "{usage}"
        );
        assert!(
            usage.contains("  THING_NET                \"unix\" (default) or \"tcp\""),
            "{usage}"
        );
    }
}
