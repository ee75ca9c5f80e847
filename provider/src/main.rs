//! The `terraform-provider-kargo` binary: started by Terraform through go-plugin's handshake,
//! or by hand with `-debug` to serve for `TF_REATTACH_PROVIDERS`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use terraform_provider_kargo::plugin::handshake::{
    self, DebugServer, HandshakeError, Network, PluginEnv,
};
use terraform_provider_kargo::plugin::{Provider, logging};
use terraform_provider_kargo::provider::KargoProvider;

const USAGE: &str = "\
Usage: terraform-provider-kargo [options]

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
  KARGO_PLUGIN_NETWORK     \"unix\" (default) or \"tcp\": how Terraform connects.";

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

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("terraform-provider-kargo: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match mode {
        Mode::Version => {
            println!("terraform-provider-kargo {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Mode::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Mode::Plugin => {
            let env = PluginEnv::from_process();
            // Checked before anything else so that a person running the binary gets a plain
            // explanation and no stray output.
            if let Err(e) = handshake::check_cookie(&env) {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            run(|provider| async move { handshake::serve_managed(provider, &env).await })
        }
        Mode::Debug(network) => run(move |provider| debug(provider, network)),
    }
}

/// Sets up TLS, logging and the runtime, then runs `serve` with the provider.
fn run<F, Fut>(serve: F) -> ExitCode
where
    F: FnOnce(Arc<dyn Provider>) -> Fut,
    Fut: Future<Output = Result<(), HandshakeError>>,
{
    // kube-rs and the plugin's TLS both use rustls; pinning ring as the process default keeps a
    // second backend, should one ever be compiled in, from making rustls refuse to pick.
    let _ = rustls::crypto::ring::default_provider().install_default();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("terraform-provider-kargo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let provider: Arc<dyn Provider> = Arc::new(KargoProvider::new());
        serve(provider).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "provider stopped with an error");
            eprintln!("terraform-provider-kargo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn debug(provider: Arc<dyn Provider>, network: Network) -> Result<(), HandshakeError> {
    // Installed before the reattach line is printed: whoever reads it may signal at once, and a
    // background process started by a shell inherits SIGINT as ignored until a handler exists.
    let mut stop_signals = StopSignals::install().map_err(HandshakeError::Signals)?;
    let server = DebugServer::start(provider, network).await?;
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
    .map_err(HandshakeError::Stdout)?;
    drop(stdout);

    let stopped = server.shutdown_token();
    tokio::select! {
        _ = stop_signals.recv() => tracing::info!("interrupted; stopping"),
        _ = stopped.cancelled() => {}
    }
    server.shutdown();
    server.wait().await
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
        assert!(parse(&["-debug-network=udp"]).is_err());
        assert!(parse(&["serve"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
    }
}
