//! kargo-docs: generates the registry documentation (`docs/`) from the provider's schema,
//! `examples/` and `templates/`, and checks that the committed docs match.
//!
//! ```no_run
//! use std::path::Path;
//! use kargo_docs::{Catalog, build_site, check};
//! use terraform_provider_kargo::provider::KargoProvider;
//!
//! let root = Path::new(".");
//! let site = build_site(root, &Catalog::from_provider(&KargoProvider::new()));
//! assert!(site.problems.0.is_empty(), "{}", site.problems);
//! let diffs = check::compare(&root.join("docs"), &site.pages, &site.pending)
//!     .expect("docs/ is readable");
//! assert!(diffs.is_empty(), "run `make docs`");
//! ```

pub mod check;
pub mod reference;
pub mod site;

pub use site::{Catalog, Pages, Problems, Site, build, build_site};
