//! The `kargo-schemagen` command: one subcommand per kind of upstream schema it turns into
//! the facts the project carries.

use std::process::ExitCode;

const USAGE: &str = "\
kargo-schemagen: the schema facts the project carries, generated from Kargo's published schemas

USAGE:
  kargo-schemagen crds [--from DIR] [--out DIR] [--check]
      Kargo's CRDs (default DIR: ../shared/kargo/v1.11.2/crds beside the repository) into
      tests/sandbox/data/crds: structure, types, enums, patterns, formats, defaults, bounds,
      required fields, x-kubernetes-* markers and CEL rules, without descriptions.
  kargo-schemagen steps [--from DIR] [--check]
      Kargo's step config schemas (default DIR: ../shared/kargo/v1.11.2/step-schemas), with
      references inlined and prose dropped, into provider/data/step-schemas.json and the
      sandbox's own copy, tests/sandbox/data/step-schemas.json.
  kargo-schemagen all [--check]
      both, from their default directories.

  --check compares instead of writing and fails when the committed files differ.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((cmd, rest)) if cmd == "crds" => kargo_schemagen::crds::run(rest),
        Some((cmd, rest)) if cmd == "steps" => kargo_schemagen::steps::run(rest),
        Some((cmd, rest)) if cmd == "all" => match rest {
            [] => kargo_schemagen::crds::run(&[]).and_then(|()| kargo_schemagen::steps::run(&[])),
            [flag] if flag == "--check" => {
                kargo_schemagen::crds::run(rest).and_then(|()| kargo_schemagen::steps::run(rest))
            }
            _ => Err(format!("all: only --check is accepted\n\n{USAGE}")),
        },
        Some((cmd, _)) if matches!(cmd.as_str(), "help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        Some((cmd, _)) => Err(format!("unknown subcommand {cmd:?}\n\n{USAGE}")),
        None => Err(format!("a subcommand is required\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kargo-schemagen: {message}");
            ExitCode::FAILURE
        }
    }
}
