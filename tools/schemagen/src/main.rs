//! The `kargo-schemagen` command: turns Kargo's published schemas (kept outside the
//! repository) into the data the provider embeds, one subcommand per kind of schema.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
kargo-schemagen: the provider's data, generated from Kargo's published schemas

USAGE:
  kargo-schemagen steps [--from DIR] [--out FILE] [--check]
      prune Kargo's step config schemas (DIR, default ../shared/kargo/v1.11.2/step-schemas)
      into FILE (default provider/data/step-schemas.json); with --check, write nothing and
      fail when FILE differs from what would be written

Run from the repository root.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("kargo-schemagen: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| format!("a command is required\n\n{USAGE}"))?;
    match command.as_str() {
        "steps" => steps(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
}

fn steps(args: &[String]) -> Result<ExitCode, String> {
    let mut from = PathBuf::from(kargo_schemagen::steps::DEFAULT_SOURCE);
    let mut out = PathBuf::from(kargo_schemagen::steps::DEFAULT_OUTPUT);
    let mut check = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--from" => from = rest.next().ok_or("--from needs a directory")?.into(),
            "--out" => out = rest.next().ok_or("--out needs a file")?.into(),
            "--check" => check = true,
            other => return Err(format!("unexpected argument {other:?}\n\n{USAGE}")),
        }
    }
    let generated = kargo_schemagen::steps::generate(&from)?;
    if check {
        let committed = std::fs::read_to_string(&out)
            .map_err(|e| format!("{} cannot be read: {e}", out.display()))?;
        if committed != generated {
            eprintln!(
                "{} differs from what {} generates; run `make generate-steps`",
                out.display(),
                from.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        println!("{} is up to date", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::write(&out, generated)
        .map_err(|e| format!("{} cannot be written: {e}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}
