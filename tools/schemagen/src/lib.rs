//! kargo-schemagen: derives the data the provider embeds from Kargo's published schemas,
//! which live outside the repository (`../shared`) and cannot be read at run time.

pub mod steps;
