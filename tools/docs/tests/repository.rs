//! The generator against this repository: the provider's real schemas (read without a
//! cluster), the committed templates and examples.

use std::path::{Path, PathBuf};

use kargo_docs::{Catalog, build_site};
use terraform_provider_kargo::provider::KargoProvider;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_registered_type_is_read_in_process_and_sorted() {
    let catalog = Catalog::from_provider(&KargoProvider::new());
    let names: Vec<&str> = catalog
        .resources
        .iter()
        .map(|e| e.type_name.as_str())
        .collect();
    assert!(names.contains(&"kargo_project"), "{names:?}");
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    assert!(
        catalog.provider.block.attribute("config_path").is_some(),
        "the provider block's schema is read too"
    );
}

#[test]
fn the_repository_templates_render_and_only_missing_examples_may_hold_pages_back() {
    let root = root();
    let catalog = Catalog::from_provider(&KargoProvider::new());
    let first = build_site(&root, &catalog);
    for problem in &first.problems.0 {
        assert!(
            problem.starts_with("examples/") && problem.contains(" is missing: "),
            "templates, descriptions and import scripts must be complete: {problem}"
        );
    }
    assert!(first.pages.contains_key("index.md"), "{}", first.problems);
    for guide in [
        "guides/enable-kargo-pipeline.md",
        "guides/plan-time-promotion-diffs.md",
        "guides/migrating-from-kubernetes-manifest.md",
    ] {
        assert!(first.pages.contains_key(guide), "{guide} is generated");
    }
    let project = &first.pages["resources/project.md"];
    assert!(project.contains("# kargo_project (Resource)"));
    assert!(project.contains("terraform import kargo_project.guestbook guestbook"));
    // Every type is either generated or held back by a named problem.
    for entry in &catalog.resources {
        let page = format!(
            "resources/{}.md",
            kargo_docs::site::page_name(&entry.type_name)
        );
        assert!(
            first.pages.contains_key(&page) || first.pending.contains(&page),
            "{page} is neither generated nor pending"
        );
    }
    let second = build_site(&root, &catalog);
    assert_eq!(first.pages, second.pages, "generation is deterministic");
}
