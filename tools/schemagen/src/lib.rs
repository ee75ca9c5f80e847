//! Turns Kargo's published schemas (kept outside the repository, in `../shared`) into the facts
//! the project commits, without upstream prose: the CRDs the sandbox applies, and the step
//! config schemas the provider validates templates with and the sandbox checks steps with.

pub mod crds;
pub mod steps;

use std::path::PathBuf;

/// The repository root (this crate lives in `tools/schemagen`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
