//! The `kargo-docs` command: `generate` writes `docs/`, `check` fails when the committed
//! `docs/` differ from what the schema, examples and templates generate.

use std::path::PathBuf;
use std::process::ExitCode;

use kargo_docs::{Catalog, build_site, check};
use terraform_provider_kargo::provider::KargoProvider;

const USAGE: &str = "\
kargo-docs: the provider's registry documentation, generated from its schema

USAGE:
  kargo-docs generate [--root DIR]   write docs/ from the schema, examples/ and templates/
  kargo-docs check [--root DIR]      fail when the committed docs/ differ from what generate writes

DIR is the repository root (default: the current directory).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("kargo-docs: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| format!("a command is required\n\n{USAGE}"))?;
    match command.as_str() {
        "generate" | "check" => {}
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        other => return Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
    let root = match rest {
        [] => PathBuf::from("."),
        [flag, dir] if flag == "--root" => PathBuf::from(dir),
        _ => return Err(format!("unexpected arguments {rest:?}\n\n{USAGE}")),
    };
    if !root.join("templates").is_dir() || !root.join("examples").is_dir() {
        return Err(format!(
            "{} is not the repository root (no templates/ or examples/); run from there or pass --root",
            root.display()
        ));
    }
    let docs = root.join("docs");
    let site = build_site(&root, &Catalog::from_provider(&KargoProvider::new()));
    let complete = site.problems.0.is_empty();
    if command == "generate" {
        // Write what can be generated, so one missing example does not hold back the rest;
        // the pages of sources with problems keep their committed version.
        let written = check::write(&docs, &site.pages, &site.pending)
            .map_err(|e| format!("cannot write {}: {e}", docs.display()))?;
        for path in &written {
            println!("updated {}", path.display());
        }
        println!(
            "docs/: {} pages, {} updated",
            site.pages.len(),
            written.len()
        );
        if complete {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "kargo-docs: {} page(s) could not be generated:\n{}",
            site.pending.len(),
            site.problems
        );
        return Ok(ExitCode::FAILURE);
    }
    let diffs = check::compare(&docs, &site.pages, &site.pending)
        .map_err(|e| format!("cannot read {}: {e}", docs.display()))?;
    if diffs.is_empty() && complete {
        println!("docs/ is up to date ({} pages)", site.pages.len());
        return Ok(ExitCode::SUCCESS);
    }
    if !complete {
        eprintln!(
            "kargo-docs: {} page(s) cannot be generated:\n{}",
            site.pending.len(),
            site.problems
        );
    }
    if !diffs.is_empty() {
        eprintln!("docs/ differs from what the schema, examples/ and templates/ generate:\n");
        for d in &diffs {
            eprintln!("{}\n", d.describe());
        }
    }
    eprintln!("fix the sources above, run `make docs` and commit the result");
    Ok(ExitCode::FAILURE)
}
