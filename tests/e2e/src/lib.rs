//! End-to-end harness: runs the real `terraform` (or `tofu`) binary against the locally
//! built provider and an in-process sandbox, and reads back what a user would see.

pub mod env;
pub mod pipeline;
pub mod terraform;

pub use env::{Env, Transport, api_server_provider, example_dir, explicit_provider};
pub use terraform::{
    At, Diagnostic, Output, Terraform, actions, planned_actions, planned_after, state_entry,
};
