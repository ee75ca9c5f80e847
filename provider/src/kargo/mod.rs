//! The Kargo API as the provider sees it: a small typed client over kube-rs.
//! Knows nothing of Terraform.

pub mod client;
pub mod connection;
pub mod error;
pub mod freight;
pub mod semver;

pub use client::{ClientOptions, KargoClient, Kind, WatchStep};
pub use connection::{ConfigError, Resolved, Settings};
pub use error::{Error, Result};
