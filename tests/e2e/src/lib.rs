//! End-to-end harness: runs the real `terraform` (or `tofu`) binary against the locally
//! built provider and an in-process sandbox, and reads back what a user would see.

pub mod env;
pub mod terraform;

pub use env::Env;
pub use terraform::{Output, Terraform, find_resource, planned_actions, planned_after};
