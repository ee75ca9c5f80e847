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
    required_under_ci(found, rel, std::env::var_os("CI").is_some())
}

/// `found`; when it is absent, a panic under CI (`ci`), else a SKIPPED line and `None`.
fn required_under_ci(found: Option<PathBuf>, rel: &str, ci: bool) -> Option<PathBuf> {
    if found.is_none() {
        let why = format!(
            "../shared/{rel} is absent (a `shared` directory beside the repository, or ${ENV})"
        );
        if ci {
            panic!("{why}, and CI is set: this comparison with upstream files must run in CI");
        }
        eprintln!("SKIPPED: {why}, so this comparison with upstream files did not run");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(
        expected = "../shared/fixtures/real-world is absent (a `shared` directory beside the \
                    repository, or $KARGO_SHARED_DIR), and CI is set: this comparison with \
                    upstream files must run in CI"
    )]
    fn an_absent_shared_directory_fails_the_test_under_ci() {
        required_under_ci(None, "fixtures/real-world", true);
    }

    #[test]
    fn an_absent_shared_directory_skips_the_comparison_outside_ci() {
        assert_eq!(required_under_ci(None, "fixtures/real-world", false), None);
    }

    #[test]
    fn a_present_shared_directory_is_used_either_way() {
        let dir = PathBuf::from("/somewhere/shared/fixtures/real-world");
        for ci in [false, true] {
            assert_eq!(
                required_under_ci(Some(dir.clone()), "fixtures/real-world", ci),
                Some(dir.clone())
            );
        }
    }
}
