//! Compiles `proto/` into gRPC server code in `OUT_DIR`, entirely in Rust
//! (`protox` parses, `tonic-prost-build` generates), so no `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a compile-time `env!` would pin whichever checkout first built
    // this script into the shared target directory.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let proto_root = PathBuf::from(manifest_dir).join("proto");
    let files = [
        "tfplugin6.proto",
        "plugin/grpc_controller.proto",
        "plugin/grpc_stdio.proto",
        "plugin/grpc_broker.proto",
        "plugin/health.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }

    // protox resolves google/protobuf/*.proto from its bundled copies.
    let descriptors = protox::compile(files, [&proto_root])?;

    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        // Generating the two well-known types used (Empty, Timestamp) keeps
        // prost-types out of the runtime dependencies.
        .compile_well_known_types(true)
        // RPCs the server does not implement answer `Unimplemented`, which
        // Terraform treats as "feature not supported".
        .generate_default_stubs(true)
        .include_file("protos.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
