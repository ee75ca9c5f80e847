//! The `kargo-release` command: packages a built provider binary for the registry protocol
//! (`package`), then writes the manifest and SHA256SUMS over everything packaged (`sums`).

use std::path::PathBuf;
use std::process::ExitCode;

use kargo_release::{Platform, package, write_manifest, write_sums};

const USAGE: &str = "\
kargo-release: the provider packaged as the Terraform registry protocol expects

USAGE:
  kargo-release package --binary FILE [--platform OS_ARCH] [--version V] [--out DIR]
      zip FILE as terraform-provider-kargo_V_OS_ARCH.zip (binary terraform-provider-kargo_vV)
  kargo-release sums [--version V] [--out DIR]
      write terraform-provider-kargo_V_manifest.json and terraform-provider-kargo_V_SHA256SUMS
      over every archive of V in DIR

Defaults: --platform is this machine's, --version the workspace's (Cargo.toml), --out dist.
Signing the SHA256SUMS file is left to gpg (see `make release`).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kargo-release: {message}");
            ExitCode::from(2)
        }
    }
}

struct Options {
    binary: Option<PathBuf>,
    platform: Platform,
    version: String,
    out: PathBuf,
}

fn parse(rest: &[String]) -> Result<Options, String> {
    let mut options = Options {
        binary: None,
        platform: Platform::host(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        out: PathBuf::from("dist"),
    };
    let mut args = rest.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag.as_str() {
            "--binary" => options.binary = Some(PathBuf::from(value()?)),
            "--platform" => {
                options.platform = Platform::parse(&value()?).map_err(|e| e.to_string())?
            }
            "--version" => options.version = value()?,
            "--out" => options.out = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(options)
}

fn run(args: &[String]) -> Result<(), String> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| format!("a command is required\n\n{USAGE}"))?;
    match command.as_str() {
        "package" => {
            let options = parse(rest)?;
            let binary = options
                .binary
                .ok_or_else(|| format!("package needs --binary FILE\n\n{USAGE}"))?;
            let zip = package(&binary, &options.version, &options.platform, &options.out)
                .map_err(|e| e.to_string())?;
            println!("{}", zip.display());
        }
        "sums" => {
            let options = parse(rest)?;
            let manifest =
                write_manifest(&options.version, &options.out).map_err(|e| e.to_string())?;
            println!("{}", manifest.display());
            let sums = write_sums(&options.version, &options.out).map_err(|e| e.to_string())?;
            println!("{}", sums.display());
        }
        "help" | "--help" | "-h" => print!("{USAGE}"),
        other => return Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
    Ok(())
}
