//! terraform-provider-kargo: a Terraform and OpenTofu provider for Kargo.
//! `plugin` (the `tfplugin` crate) speaks Terraform's protocol, `kargo` talks to the cluster, `steps` reads promotion templates, `resources` glue them.

pub mod config;
pub mod data_sources;
pub mod duration;
pub mod kargo;
pub mod provider;
pub mod resolve;
pub mod resources;
pub mod steps;

/// Terraform's plugin protocol, served by the generic `tfplugin` crate; re-exported under its
/// old module name so that `crate::plugin::…` paths keep working.
pub use tfplugin as plugin;
