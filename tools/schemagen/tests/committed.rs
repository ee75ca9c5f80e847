//! The facts committed under tests/sandbox/data are what the tool generates from the upstream
//! files in ../shared (when present; under CI they must be).

#[test]
fn committed_crd_facts_are_what_the_crds_generate() {
    let Some(from) = kargo_sandbox::reference::for_test("kargo/v1.11.2/crds") else {
        return;
    };
    let generated = kargo_schemagen::crds::generate(&from).expect("the CRDs reduce");
    assert_eq!(generated.len(), 9);
    let diffs =
        kargo_schemagen::crds::differences(&kargo_schemagen::crds::default_out(), &generated);
    assert!(
        diffs.is_empty(),
        "the committed CRD facts are stale; run `make generate`:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn committed_step_schemas_are_what_the_step_schemas_generate() {
    let Some(from) = kargo_sandbox::reference::for_test("kargo/v1.11.2/step-schemas") else {
        return;
    };
    let generated = kargo_schemagen::steps::generate(&from).expect("the step schemas prune");
    let root = kargo_schemagen::repo_root();
    for out in kargo_schemagen::steps::OUTPUTS {
        let committed = std::fs::read_to_string(root.join(out))
            .unwrap_or_else(|e| panic!("{out} is committed: {e}"));
        assert!(
            committed == generated,
            "{out} differs from what Kargo's step schemas generate; run `make generate`"
        );
    }
}
