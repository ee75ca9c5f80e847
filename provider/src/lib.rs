//! terraform-provider-kargo: a Terraform and OpenTofu provider for Kargo.
//! `plugin` speaks Terraform's protocol, `kargo` talks to the cluster, `steps` reads promotion templates, `resources` glue them.

pub mod data_sources;
pub mod kargo;
pub mod plugin;
pub mod provider;
pub mod resources;
pub mod steps;
