//! Where the upstream reference material (`../shared`: Kargo's CRDs, schemas, real-world
//! manifests) is, for the tests that compare with it; nothing at run time depends on it.

use std::path::PathBuf;

/// Overrides where `../shared` is (set it to a missing directory to run as a fresh clone).
pub const ENV: &str = "KARGO_SHARED_DIR";

/// The `shared` directory: `$KARGO_SHARED_DIR` when set, else a `shared` directory beside an
/// ancestor of this crate (the repository's `../shared`); `None` when it does not exist.
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(ENV) {
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared"))
        .find(|d| d.join("kargo").is_dir())
}

/// `shared/<rel>` for a test that compares with it. When it is absent the test says
/// SKIPPED (shown with `--no-capture`) and gets `None`, except under CI (`CI` set), where
/// the comparison must run: there it panics.
pub fn for_test(rel: &str) -> Option<PathBuf> {
    let found = shared_dir().map(|d| d.join(rel)).filter(|d| d.exists());
    if found.is_none() {
        let why = format!(
            "../shared/{rel} is absent (a `shared` directory beside the repository, or ${ENV})"
        );
        if std::env::var_os("CI").is_some() {
            panic!("{why}, and CI is set: this comparison with upstream files must run in CI");
        }
        eprintln!("SKIPPED: {why}, so this comparison with upstream files did not run");
    }
    found
}
