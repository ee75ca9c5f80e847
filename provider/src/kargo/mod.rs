//! The Kargo API as the provider sees it: serde models of the Kargo kinds and a small typed
//! client over kube-rs. Knows nothing of Terraform.

pub mod client;
pub mod error;
pub mod freight;
pub mod reads;
pub mod rest;
pub mod semver;
pub mod types;
pub mod urls;

pub use client::{ClientOptions, KargoClient, ObjectList, Transport, WatchStep, redact_userinfo};
pub use error::{Error, Result, chain_text};
pub use types::*;
