//! kargo-sandbox: a local Kubernetes API server and Kargo control-plane emulator
//! that real clients (kubectl, kube-rs, the provider) use in tests and demos.
//!
//! Start one per test with [`Sandbox::start`]; it writes a kubeconfig any client can use:
//!
//! ```no_run
//! # async fn demo() -> Result<(), kargo_sandbox::Error> {
//! use kargo_sandbox::{HttpFault, Options, Sandbox};
//! let sandbox = Sandbox::start(Options::default()).await?;
//! let kubeconfig = sandbox.kubeconfig_path(); // for kubectl, kube-rs or Terraform
//! # let _ = kubeconfig;
//! sandbox.inject_fault(HttpFault::unavailable().verb("get").times(1)).ok();
//! let gets = sandbox.request_counts().get("get", "stages");
//! # let _ = gets;
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

// `hooks::ApiError` is a Kubernetes `Status` carried by value through every layer, as the
// seam's traits return it; boxing it would only move the allocation around.
#![allow(clippy::result_large_err)]

pub mod hooks;
pub mod kargo;

mod api;
mod auth;
pub mod cel;
pub mod cli;
mod clock;
mod control;
mod discovery;
mod faults;
pub mod git;
mod kubeconfig;
mod openapi_v2;
mod patch;
mod persist;
mod proto;
pub mod rbac;
pub mod reference;
mod reqlog;
mod resources;
pub mod rest;
mod router;
pub mod schema;
mod selectors;
mod server;
mod ssa;
mod status;
mod store;
mod table;
mod tls;
mod watch;

pub use auth::User;
pub use clock::parse_duration;
pub use faults::{FaultKind, HttpFault};
pub use hooks::ApiError;
pub use reqlog::{RequestCounts, RequestRecord};
pub use server::{Options, Sandbox};

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("sandbox state: {0}")]
    State(String),
}
