//! terraform-provider-kargo: a Terraform and OpenTofu provider for Kargo.
//! `plugin` speaks Terraform's protocol, `kargo` talks to the cluster, `resources` glue them.

pub mod config;
pub mod data_sources;
pub mod duration;
pub mod kargo;
pub mod plugin;
pub mod provider;
pub mod resolve;
pub mod resources;
