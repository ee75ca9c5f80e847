//! The committed step schemas are what `kargo-schemagen steps` makes of Kargo's published
//! ones: a stale or hand-edited copy fails here while `../shared` is present.

use std::path::Path;

#[test]
fn committed_step_schemas_match_the_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let source = root.join(kargo_schemagen::steps::DEFAULT_SOURCE);
    if !source.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is absent in CI: the committed step schemas cannot be checked",
            source.display()
        );
        println!(
            "SKIPPED: {} is absent, so the committed step schemas were not compared with Kargo's",
            source.display()
        );
        return;
    }
    let generated = kargo_schemagen::steps::generate(&source).expect("the schemas generate");
    let committed = std::fs::read_to_string(root.join(kargo_schemagen::steps::DEFAULT_OUTPUT))
        .expect("provider/data/step-schemas.json is committed");
    assert!(
        committed == generated,
        "provider/data/step-schemas.json differs from what Kargo's schemas generate; run \
         `make generate-steps` and commit the result"
    );
}
