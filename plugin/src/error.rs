//! The crate's one error type: what can go wrong while starting, serving, or converting values.
//! Problems with a configuration are not errors but [`Diagnostics`](crate::Diagnostics).

use std::io;

use crate::diagnostics::AttributePath;

/// Everything that can fail in this crate outside a provider's own logic.
///
/// Failures inside an RPC (a bad configuration, a failed API call) are reported to Terraform
/// as [`Diagnostics`](crate::Diagnostics) instead; an `Error` stops the server or rejects a
/// value that cannot be converted.
///
/// ```
/// use tfplugin::{Error, Type, value};
///
/// let err = value::decode_json(br#"{"port": "eighty"}"#, &Type::object([("port", Type::Number)]))
///     .unwrap_err();
/// assert!(matches!(err, Error::Value { .. }));
/// assert_eq!(err.to_string(), "at port: number is required");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The process was not started by Terraform: `TF_PLUGIN_MAGIC_COOKIE` is missing or wrong.
    #[error(
        "this provider was not started by Terraform (TF_PLUGIN_MAGIC_COOKIE is missing or wrong)"
    )]
    NotLaunchedByTerraform,
    /// Terraform offered only plugin protocol versions other than 6.
    #[error(
        "Terraform offered plugin protocol version(s) {0:?}, but this provider speaks only \
         protocol 6 (Terraform v1.0 or newer, OpenTofu v1.6 or newer)"
    )]
    UnsupportedProtocol(String),
    /// A go-plugin environment variable has a value that cannot be used.
    #[error("invalid plugin environment: {0}")]
    Environment(String),
    /// No listener could be created, or the server task failed.
    #[error("could not listen for Terraform's connection: {0}")]
    Listen(#[source] io::Error),
    /// AutoMTLS could not be set up (bad client certificate, key generation).
    #[error("could not set up TLS with Terraform: {0}")]
    Tls(String),
    /// Signal handlers for `-debug` could not be installed.
    #[error("could not install signal handlers: {0}")]
    Signals(#[source] io::Error),
    /// The handshake line or the `-debug` banner could not be written.
    #[error("could not write the handshake line to stdout: {0}")]
    Stdout(#[source] io::Error),
    /// The async runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// A value or type could not be decoded or encoded; `path` says where.
    #[error("{}", value_message(.path, .message))]
    Value {
        /// Where in the value the problem is (the root for the value as a whole).
        path: AttributePath,
        /// What is wrong, e.g. "number is required".
        message: String,
    },
}

impl Error {
    /// A [`Error::Value`] at `path`.
    pub(crate) fn value(path: &AttributePath, message: impl Into<String>) -> Self {
        Error::Value {
            path: path.clone(),
            message: message.into(),
        }
    }

    /// The attribute path of a [`Error::Value`]; `None` for the other kinds.
    pub fn path(&self) -> Option<&AttributePath> {
        match self {
            Error::Value { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn value_message(path: &AttributePath, message: &str) -> String {
    if path.is_root() {
        message.to_string()
    } else {
        format!("at {path}: {message}")
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
