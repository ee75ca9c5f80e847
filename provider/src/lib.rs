//! terraform-provider-kargo: a Terraform and OpenTofu provider for Kargo.
//! `plugin` speaks Terraform's protocol, `kargo` talks to the cluster, `resources` glue them.

pub mod data_sources;
pub mod kargo;
pub mod plugin;
pub mod provider;
pub mod resources;
