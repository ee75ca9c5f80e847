//! Turns Kargo's published schemas into the facts the project commits (no upstream prose),
//! so that the sandbox and its checks never depend on `../shared` at run time.

pub mod crds;

use std::path::PathBuf;

/// The repository root (this crate lives in `tools/schemagen`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
