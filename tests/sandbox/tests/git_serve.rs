//! The sandbox as a Git host: repositories served over smart HTTPS with its CA, private ones
//! behind basic auth, created from Rust or from the command line.

mod core_support;
mod git_support;

use std::process::Command;

use core_support::{cli, start_kargo};
use git_support::{git, git_available, seed};
use kargo_sandbox::git::BasicAuth;

/// Runs `git` with the sandbox CA trusted and no stored credentials; returns (ok, stderr).
fn git_with_ca(
    sandbox: &kargo_sandbox::Sandbox,
    dir: &std::path::Path,
    args: &[&str],
) -> (bool, String) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_SSL_CAINFO", sandbox.git().ca_file())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn repositories_clone_fetch_and_push_over_https() {
    if !git_available() {
        return;
    }
    let (sandbox, _) = start_kargo().await;
    let files = seed(&[
        ("README.md", "hello\n"),
        ("base/kustomization.yaml", "resources: []\n"),
    ]);
    let url = sandbox
        .git_create("gitops", Some(files.path()), "main", None)
        .expect("created");
    assert_eq!(url, format!("{}/git/gitops.git", sandbox.server_url()));
    let work = tempfile::tempdir().unwrap();
    let (ok, err) = git_with_ca(&sandbox, work.path(), &["clone", &url, "c"]);
    assert!(ok, "{err}");
    let clone = work.path().join("c");
    assert_eq!(
        std::fs::read_to_string(clone.join("README.md")).unwrap(),
        "hello\n"
    );
    assert_eq!(git(&clone, &["log", "--format=%s"]), "Initial commit\n");
    std::fs::write(clone.join("README.md"), "hello again\n").unwrap();
    git(&clone, &["commit", "-qam", "second"]);
    let (ok, err) = git_with_ca(&sandbox, &clone, &["push", "origin", "main"]);
    assert!(ok, "{err}");
    assert_eq!(
        git_support::show(&sandbox, "gitops", "main:README.md"),
        "hello again\n"
    );
    let (ok, err) = git_with_ca(&sandbox, &clone, &["fetch", "origin"]);
    assert!(ok, "{err}");
    // A repository that does not exist is a 404.
    let (ok, err) = git_with_ca(
        &sandbox,
        work.path(),
        &[
            "ls-remote",
            &format!("{}/git/nope.git", sandbox.server_url()),
        ],
    );
    assert!(!ok);
    assert!(err.contains("not found") || err.contains("404"), "{err}");
    // Names are validated and unique.
    assert_eq!(
        sandbox
            .git_create("gitops", None, "main", None)
            .unwrap_err(),
        "repository \"gitops\" already exists"
    );
    assert_eq!(
        sandbox.git_create("../x", None, "main", None).unwrap_err(),
        "invalid repository name \"../x\": use letters, digits, '.', '_' and '-'"
    );
}

#[tokio::test]
async fn private_repositories_answer_401_without_the_right_credentials() {
    if !git_available() {
        return;
    }
    let (sandbox, _) = start_kargo().await;
    let files = seed(&[("a.txt", "a\n")]);
    let auth = BasicAuth {
        username: "bot".into(),
        password: "s3cret".into(),
    };
    let url = sandbox
        .git_create("private", Some(files.path()), "main", Some(auth))
        .expect("created");
    let work = tempfile::tempdir().unwrap();
    let (ok, err) = git_with_ca(&sandbox, work.path(), &["ls-remote", &url]);
    assert!(!ok);
    let host = sandbox.server_url();
    assert_eq!(
        err,
        format!("fatal: could not read Username for '{host}': terminal prompts disabled\n")
    );
    let wrong = url.replace("https://", "https://bot:nope@");
    let (ok, err) = git_with_ca(&sandbox, work.path(), &["ls-remote", &wrong]);
    assert!(!ok);
    assert!(
        err.contains("Authentication failed"),
        "a wrong password is refused: {err}"
    );
    let right = url.replace("https://", "https://bot:s3cret@");
    let (ok, err) = git_with_ca(&sandbox, work.path(), &["clone", &right, "c"]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("c/a.txt")).unwrap(),
        "a\n"
    );
}

#[tokio::test]
async fn the_command_line_creates_repositories_and_prints_their_url() {
    if !git_available() {
        return;
    }
    let (sandbox, _) = start_kargo().await;
    let files = seed(&[("x.yaml", "x: 1\n")]);
    let from = files.path().to_string_lossy().into_owned();
    let (ok, out, err) = cli(
        &sandbox,
        &[
            "git",
            "create",
            "manifests",
            "--from",
            &from,
            "--branch",
            "trunk",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, format!("{}/git/manifests.git\n", sandbox.server_url()));
    assert_eq!(
        git_support::show(&sandbox, "manifests", "trunk:x.yaml"),
        "x: 1\n"
    );
    let (ok, _, err) = cli(
        &sandbox,
        &["git", "create", "p2", "--private", "--username", "u"],
    )
    .await;
    assert!(!ok);
    assert_eq!(err, "error: --private needs --username and --password\n");
    let (ok, out, err) = cli(&sandbox, &["pr", "list"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "[]\n");
}
