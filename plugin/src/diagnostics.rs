//! Diagnostics with attribute paths, as Terraform shows them under the offending attribute:
//! what every RPC returns instead of failing.

use std::fmt;

/// How bad a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Stops the operation: Terraform shows "Error:".
    Error,
    /// Shown, but the operation goes on: Terraform shows "Warning:".
    Warning,
}

/// One step of an attribute path: `a.b[0]["key"]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathStep {
    /// An attribute or block name.
    Attr(String),
    /// A map key.
    Key(String),
    /// A list (or tuple) index.
    Index(i64),
}

/// Where in a value something is: Terraform underlines that part of the configuration.
///
/// ```
/// use tfplugin::AttributePath;
///
/// let path = AttributePath::attr("subscriptions").join_index(0).join_attr("image");
/// assert_eq!(path.to_string(), "subscriptions[0].image");
/// assert_eq!(AttributePath::attr("labels").join_key("team").to_string(), r#"labels["team"]"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributePath(pub Vec<PathStep>);

impl AttributePath {
    /// The value as a whole.
    pub fn root() -> Self {
        Self(Vec::new())
    }
    /// A path to a top-level attribute.
    pub fn attr(name: &str) -> Self {
        Self(vec![PathStep::Attr(name.to_string())])
    }
    /// This path, then attribute `name`.
    pub fn join_attr(&self, name: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathStep::Attr(name.to_string()));
        p
    }
    /// This path, then list index `i`.
    pub fn join_index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathStep::Index(i as i64));
        p
    }
    /// This path, then map key `key`.
    pub fn join_key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathStep::Key(key.to_string()));
        p
    }
    /// Whether this is the value as a whole.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attr(a) if i == 0 => write!(f, "{a}")?,
                PathStep::Attr(a) => write!(f, ".{a}")?,
                PathStep::Key(k) => write!(f, "[{k:?}]")?,
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One error or warning, as Terraform shows it: a summary line, a detail paragraph, and
/// optionally the attribute it is about.
///
/// ```
/// use tfplugin::{AttributePath, Diagnostic, Severity};
///
/// let d = Diagnostic::error("Invalid port", "The port must be between 1 and 65535.")
///     .at(AttributePath::attr("port"));
/// assert_eq!(d.severity, Severity::Error);
/// assert_eq!(d.attribute, Some(AttributePath::attr("port")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// One line, shown after "Error:".
    pub summary: String,
    /// The explanation: what is wrong and what to do about it.
    pub detail: String,
    /// The attribute it is about; `None` for the resource as a whole.
    pub attribute: Option<AttributePath>,
}

impl Diagnostic {
    /// An error not tied to an attribute (use [`at`](Self::at) to tie it).
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            attribute: None,
        }
    }
    /// A warning not tied to an attribute.
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            summary: summary.into(),
            detail: detail.into(),
            attribute: None,
        }
    }
    /// The same diagnostic, about the attribute at `path`.
    pub fn at(mut self, path: AttributePath) -> Self {
        self.attribute = Some(path);
        self
    }
}

/// The diagnostics of one call, in the order they were found.
///
/// ```
/// use tfplugin::{AttributePath, Diagnostics};
///
/// let mut diags = Diagnostics::default();
/// diags.warning("Deprecated", "Use `name` instead.");
/// assert!(!diags.has_errors());
/// diags.error_at(AttributePath::attr("name"), "Missing name", "Set `name`.");
/// assert!(diags.has_errors());
/// assert_eq!(diags.0.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds `d`.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    /// Adds an error not tied to an attribute.
    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Diagnostic::error(summary, detail));
    }
    /// Adds an error about the attribute at `path`.
    pub fn error_at(
        &mut self,
        path: AttributePath,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(Diagnostic::error(summary, detail).at(path));
    }
    /// Adds a warning not tied to an attribute.
    pub fn warning(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Diagnostic::warning(summary, detail));
    }
    /// Adds all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    /// Whether any is an error (warnings alone let the operation go on).
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Self(vec![d])
    }
}
