//! Typed errors for everything that talks to the cluster, mapped from kube-rs errors and
//! Kubernetes `Status` bodies; each message says what failed and what to do about it.

use std::fmt::Write as _;

use kube::core::Status;

/// Result alias for the Kargo client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of a Kubernetes `Status.details.causes` list (422 Invalid answers carry them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cause {
    /// JSON path of the offending field as the API server names it, e.g. `spec.interval`.
    pub field: String,
    pub message: String,
    /// Machine-readable reason, e.g. `FieldValueInvalid`.
    pub reason: String,
}

/// Everything that can go wrong between the provider and the cluster.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} was not found: {message}")]
    NotFound { what: String, message: String },

    #[error("{what} already exists: {message}.")]
    AlreadyExists { what: String, message: String },

    #[error("{}", conflict_text(.what, .message, .managers, .fields))]
    Conflict {
        what: String,
        message: String,
        /// Other field managers that own the conflicting fields (server-side apply).
        managers: Vec<String>,
        /// The conflicting fields, as the API server lists them (e.g. `.spec.interval`).
        fields: Vec<String>,
    },

    #[error("{}", invalid_text(.what, .message, .causes))]
    Invalid {
        what: String,
        message: String,
        causes: Vec<Cause>,
    },

    #[error(
        "the cluster refused the request on {what} (403 Forbidden): {message}. The client's credentials need RBAC permission for this operation."
    )]
    Forbidden { what: String, message: String },

    #[error(
        "not permitted to promote to Stage \"{stage}\": {message}. Kargo requires the custom `promote` verb on `stages/{stage}` (API group kargo.akuity.io) in the project namespace; grant it to the client's identity with a Role and RoleBinding."
    )]
    NotPermittedToPromote { stage: String, message: String },

    #[error("the Kubernetes API at {host} rejected the credentials (401 Unauthorized).")]
    Unauthorized { host: String },

    #[error("could not reach the Kubernetes API at {host}: {reason}.")]
    Unreachable { host: String, reason: String },

    #[error("Kargo's API server at {host} rejected the credentials (401 Unauthorized: {message}).")]
    ApiServerUnauthorized { host: String, message: String },

    #[error("could not reach Kargo's API server at {host}: {reason}.")]
    ApiServerUnreachable { host: String, reason: String },

    #[error(
        "Kargo's API server refused the request on {what} (403 Forbidden): {message}. The Kargo role the provider's token is bound to needs this permission."
    )]
    ApiServerForbidden { what: String, message: String },

    /// Something Kargo's REST API cannot do that the Kubernetes API can.
    #[error("{0}")]
    NotOverApiServer(String),

    #[error(
        "the Kubernetes API is temporarily unavailable while working on {what}: {message}. Retry the operation; if it persists, check the health of the API server and its aggregated APIs."
    )]
    ServiceUnavailable { what: String, message: String },

    #[error(
        "the Kargo API (kargo.akuity.io/v1alpha1) is not served by this cluster ({message}). Install Kargo and its CRDs first."
    )]
    KargoNotInstalled { message: String },

    #[error(
        "Kargo's admission webhook could not be called: {message}. The Kargo webhooks server is not ready (still starting, or not running); check its pods in the Kargo namespace."
    )]
    WebhookUnavailable { message: String },

    /// Any other 5xx: the server failed while handling the request, which may or may not
    /// have been carried out.
    #[error("request on {what} failed ({code} {reason}): {message}")]
    Server {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },

    #[error("timed out waiting for {what}; last state seen: {last_seen}")]
    Timeout { what: String, last_seen: String },

    #[error("the operation was cancelled before it completed")]
    Cancelled,

    #[error("the connection settings are not known yet, so the cluster cannot be contacted yet")]
    ConfigUnknown,

    #[error("invalid Kubernetes connection settings: {0}")]
    Config(String),

    #[error("could not obtain credentials for the Kubernetes API: {0}")]
    Credentials(String),

    #[error("{0}")]
    Other(String),
}

fn conflict_text(what: &str, message: &str, managers: &[String], fields: &[String]) -> String {
    if managers.is_empty() {
        return format!("conflict on {what}: {message}");
    }
    let mut text = format!(
        "server-side apply of {what} conflicts with fields owned by other field managers ({})",
        managers
            .iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !fields.is_empty() {
        let _ = write!(text, ": {}", fields.join(", "));
    }
    text.push('.');
    text
}

fn invalid_text(what: &str, message: &str, causes: &[Cause]) -> String {
    let mut text = format!("{what} was rejected by the cluster: {message}");
    // The message usually repeats the causes; list them only when they add something.
    let extra: Vec<&Cause> = causes
        .iter()
        .filter(|c| !c.message.is_empty() && !message.contains(&c.message))
        .collect();
    for cause in extra {
        if cause.field.is_empty() {
            let _ = write!(text, "\n  - {}", cause.message);
        } else {
            let _ = write!(text, "\n  - {}: {}", cause.field, cause.message);
        }
    }
    text
}

impl Error {
    /// True for the failures expected while Kargo is still being installed or started:
    /// the API group not served yet, its webhooks not answering, or a 503 from the API server.
    pub fn is_transient_while_starting(&self) -> bool {
        matches!(
            self,
            Error::KargoNotInstalled { .. }
                | Error::WebhookUnavailable { .. }
                | Error::ServiceUnavailable { .. }
        )
    }

    /// True when a write may or may not have been carried out: the answer was lost (5xx,
    /// connection dropped, no answer before the deadline). Before writing again, look.
    pub fn is_ambiguous_write(&self) -> bool {
        matches!(
            self,
            Error::ServiceUnavailable { .. }
                | Error::Unreachable { .. }
                | Error::ApiServerUnreachable { .. }
                | Error::Server { .. }
                | Error::Timeout { .. }
        )
    }

    /// True when the cluster cannot be asked right now (unreachable, Kargo not installed or
    /// not serving, or the connection not configured yet), rather than that something is
    /// wrong with the object asked about.
    pub fn is_cluster_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::ApiServerUnreachable { .. }
                | Error::KargoNotInstalled { .. }
                | Error::ServiceUnavailable { .. }
                | Error::ConfigUnknown
        )
    }

    /// True when the object (or its namespace) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Maps a Kubernetes `Status` failure to a typed error. `what` names the object or
    /// collection the request was about, e.g. `Stage "demo/dev"`; `host` the API server.
    pub fn from_status(status: &Status, what: &str, host: &str) -> Error {
        let message = status.message.trim().to_string();
        let code = status.code;
        let reason = status.reason.as_str();
        let lower = message.to_ascii_lowercase();

        if lower.contains("failed calling webhook") || lower.contains("failed to call webhook") {
            return Error::WebhookUnavailable { message };
        }
        if lower.contains("is not permitted to") {
            let stage = quoted_after(&message, "Stage \"").unwrap_or_default();
            return Error::NotPermittedToPromote { stage, message };
        }
        if lower.contains("no matches for kind") {
            return Error::KargoNotInstalled { message };
        }
        if code == 401 || reason == "Unauthorized" {
            return Error::Unauthorized {
                host: host.to_string(),
            };
        }
        if code == 403 || reason == "Forbidden" {
            return Error::Forbidden {
                what: what.to_string(),
                message,
            };
        }
        if code == 404 || reason == "NotFound" {
            // A missing object names itself in `details`; a path the server does not serve
            // at all (the API group is not installed) comes back without details.
            let names_object = status.details.as_ref().is_some_and(|d| !d.name.is_empty());
            if !names_object
                && (lower.contains("could not find the requested resource")
                    || lower.contains("page not found"))
            {
                return Error::KargoNotInstalled { message };
            }
            return Error::NotFound {
                what: what.to_string(),
                message,
            };
        }
        if reason == "AlreadyExists" {
            return Error::AlreadyExists {
                what: what.to_string(),
                message,
            };
        }
        if code == 409 || reason == "Conflict" {
            let (managers, fields) = conflict_owners(status);
            return Error::Conflict {
                what: what.to_string(),
                message,
                managers,
                fields,
            };
        }
        if code == 422
            || code == 400
            || reason == "Invalid"
            || reason == "BadRequest"
            || lower.contains("denied the request")
        {
            return Error::Invalid {
                what: what.to_string(),
                message,
                causes: causes(status),
            };
        }
        if matches!(code, 429 | 503 | 504)
            || reason == "ServiceUnavailable"
            || reason == "TooManyRequests"
        {
            return Error::ServiceUnavailable {
                what: what.to_string(),
                message,
            };
        }
        let reason = if reason.is_empty() { "Failure" } else { reason };
        if code >= 500 {
            return Error::Server {
                what: what.to_string(),
                code,
                reason: reason.to_string(),
                message,
            };
        }
        Error::Other(format!(
            "request on {what} failed ({code} {reason}): {message}"
        ))
    }

    /// Maps a kube-rs error. `what` names the object the request was about; `host` the
    /// API server (for connection failures).
    pub fn from_kube(err: kube::Error, what: &str, host: &str) -> Error {
        match err {
            kube::Error::Api(status) => Error::from_status(&status, what, host),
            kube::Error::Auth(auth) => Error::Credentials(auth_message(&auth)),
            kube::Error::InferKubeconfig(e) => Error::Config(e.to_string()),
            kube::Error::InferConfig(e) => Error::Config(e.to_string()),
            kube::Error::RustlsTls(e) => {
                Error::Config(format!("TLS setup failed: {}", chain_text(&e)))
            }
            kube::Error::ProxyProtocolUnsupported { .. }
            | kube::Error::ProxyProtocolDisabled { .. } => Error::Config(
                "the proxy URL uses an unsupported scheme; use http:// or https://".into(),
            ),
            kube::Error::HyperError(e) => Error::Unreachable {
                host: host.to_string(),
                reason: chain_text(&e),
            },
            kube::Error::Service(e) => {
                // The auth layer runs inside the tower stack, so credential-plugin failures
                // surface here wrapped in a service error.
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
                while let Some(s) = source {
                    if let Some(auth) = s.downcast_ref::<kube::client::AuthError>() {
                        return Error::Credentials(auth_message(auth));
                    }
                    if let Some(kube::Error::Auth(auth)) = s.downcast_ref::<kube::Error>() {
                        return Error::Credentials(auth_message(auth));
                    }
                    source = s.source();
                }
                Error::Unreachable {
                    host: host.to_string(),
                    reason: chain_text(e.as_ref()),
                }
            }
            kube::Error::SerdeError(e) => Error::Other(format!(
                "the response about {what} could not be decoded: {e}"
            )),
            other => Error::Other(format!("request on {what} failed: {}", chain_text(&other))),
        }
    }
}

/// The text of an error and its sources, without repeating a message its source already says.
pub fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Credential-plugin failures, without the plugin's standard output (which is where a
/// credential would be printed).
fn auth_message(err: &kube::client::AuthError) -> String {
    match err {
        kube::client::AuthError::AuthExecRun { cmd, out } => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr = stderr.trim();
            let stderr: String = stderr.chars().take(500).collect();
            if stderr.is_empty() {
                format!(
                    "the exec credential plugin {cmd} failed with {}",
                    out.status
                )
            } else {
                format!(
                    "the exec credential plugin {cmd} failed with {}: {stderr}",
                    out.status
                )
            }
        }
        kube::client::AuthError::AuthExecParse(_) => {
            "the exec credential plugin printed something that is not an ExecCredential".into()
        }
        kube::client::AuthError::InvalidBearerToken(_) => {
            "the bearer token is not a valid HTTP header value (check for stray newlines or spaces)"
                .into()
        }
        other => other.to_string(),
    }
}

/// The text between `prefix` (its last occurrence) and the next double quote.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let start = message.rfind(prefix)? + prefix.len();
    let rest = &message[start..];
    let end = rest.find('"')?;
    Some(rest[..end].to_string())
}

fn causes(status: &Status) -> Vec<Cause> {
    status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| Cause {
                    field: c.field.clone(),
                    message: c.message.clone(),
                    reason: c.reason.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Field managers and fields named by a server-side apply conflict. The causes carry
/// `conflict with "<manager>" [using <apiVersion>]` plus the field; older servers only put
/// this in the message, so fall back to parsing it there.
fn conflict_owners(status: &Status) -> (Vec<String>, Vec<String>) {
    let mut managers: Vec<String> = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let add = |list: &mut Vec<String>, item: String| {
        if !item.is_empty() && !list.contains(&item) {
            list.push(item);
        }
    };
    for cause in causes(status) {
        if let Some(manager) = quoted_after(&cause.message, "conflict with \"") {
            add(&mut managers, manager);
            add(&mut fields, cause.field);
        }
    }
    if managers.is_empty() {
        let mut rest = status.message.as_str();
        while let Some(pos) = rest.find("conflict with \"") {
            rest = &rest[pos + "conflict with \"".len()..];
            if let Some(end) = rest.find('"') {
                add(&mut managers, rest[..end].to_string());
                rest = &rest[end..];
                // The field follows as `: .spec.x` (several are separated by commas).
                if let Some(colon) = rest.find(": ") {
                    let after = &rest[colon + 2..];
                    let field: String = after
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != ',')
                        .collect();
                    if field.starts_with('.') {
                        add(&mut fields, field);
                    }
                }
            }
        }
    }
    (managers, fields)
}

#[cfg(test)]
mod tests {
    use kube::core::response::{StatusCause, StatusDetails};

    use super::*;

    const HOST: &str = "https://kube.example:6443";

    fn status(code: u16, reason: &str, message: &str) -> Status {
        Status::failure(message, reason).with_code(code)
    }

    fn with_causes(s: Status, name: &str, causes: &[(&str, &str, &str)]) -> Status {
        s.with_details(StatusDetails {
            name: name.into(),
            group: "kargo.akuity.io".into(),
            kind: "stages".into(),
            uid: String::new(),
            causes: causes
                .iter()
                .map(|(reason, message, field)| StatusCause {
                    reason: (*reason).into(),
                    message: (*message).into(),
                    field: (*field).into(),
                })
                .collect(),
            retry_after_seconds: 0,
        })
    }

    fn map(s: Status) -> Error {
        Error::from_status(&s, "Stage \"demo/dev\"", HOST)
    }

    #[test]
    fn not_found_names_the_object() {
        let s = with_causes(
            status(404, "NotFound", "stages.kargo.akuity.io \"dev\" not found"),
            "dev",
            &[],
        );
        let e = map(s);
        assert!(
            matches!(&e, Error::NotFound { what, .. } if what == "Stage \"demo/dev\""),
            "{e:?}"
        );
        assert!(e.is_not_found());
        assert!(
            e.to_string().contains("Stage \"demo/dev\" was not found"),
            "{e}"
        );
    }

    #[test]
    fn unserved_group_means_kargo_not_installed() {
        let e = map(status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
        assert!(matches!(e, Error::KargoNotInstalled { .. }), "{e:?}");
        assert!(e.is_transient_while_starting());
        let e = map(status(
            404,
            "Failed to parse error data",
            "404 page not found",
        ));
        assert!(matches!(e, Error::KargoNotInstalled { .. }), "{e:?}");
        let e = map(status(
            400,
            "BadRequest",
            "no matches for kind \"Stage\" in version \"kargo.akuity.io/v1alpha1\"",
        ));
        assert!(matches!(e, Error::KargoNotInstalled { .. }), "{e:?}");
        assert!(e.to_string().contains("Install Kargo"), "{e}");
    }

    #[test]
    fn already_exists_is_distinct_from_conflict() {
        let e = map(status(
            409,
            "AlreadyExists",
            "stages.kargo.akuity.io \"dev\" already exists",
        ));
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    }

    #[test]
    fn ssa_conflict_names_managers_and_fields() {
        let s = with_causes(
            status(
                409,
                "Conflict",
                "Apply failed with 2 conflicts: conflicts with \"kubectl\" using kargo.akuity.io/v1alpha1:\n- .spec.shard\n- .spec.requestedFreight",
            ),
            "dev",
            &[
                (
                    "FieldManagerConflict",
                    "conflict with \"kubectl\" using kargo.akuity.io/v1alpha1",
                    ".spec.shard",
                ),
                (
                    "FieldManagerConflict",
                    "conflict with \"argocd-controller\"",
                    ".spec.requestedFreight",
                ),
                (
                    "FieldManagerConflict",
                    "conflict with \"kubectl\" using kargo.akuity.io/v1alpha1",
                    ".spec.vars",
                ),
            ],
        );
        let e = map(s);
        let Error::Conflict {
            managers, fields, ..
        } = &e
        else {
            panic!("expected Conflict, got {e:?}")
        };
        assert_eq!(
            managers,
            &vec!["kubectl".to_string(), "argocd-controller".to_string()]
        );
        assert_eq!(
            fields,
            &vec![
                ".spec.shard".to_string(),
                ".spec.requestedFreight".to_string(),
                ".spec.vars".to_string()
            ]
        );
        let text = e.to_string();
        assert!(
            text.contains("\"kubectl\", \"argocd-controller\""),
            "{text}"
        );
        assert!(text.contains(".spec.shard"), "{text}");
        // What to change in Terraform (`force_conflicts`) is the provider's to add.
        assert!(text.ends_with(".spec.vars."), "{text}");
    }

    #[test]
    fn ssa_conflict_without_causes_is_parsed_from_the_message() {
        let e = map(status(
            409,
            "Conflict",
            "Apply failed with 1 conflict: conflict with \"helm\": .spec.interval",
        ));
        let Error::Conflict {
            managers, fields, ..
        } = &e
        else {
            panic!("expected Conflict, got {e:?}")
        };
        assert_eq!(managers, &vec!["helm".to_string()]);
        assert_eq!(fields, &vec![".spec.interval".to_string()]);
    }

    #[test]
    fn plain_conflict_keeps_the_message() {
        let msg = "namespace already exists and is not labeled as a Project namespace";
        let e = map(status(409, "Conflict", msg));
        let Error::Conflict { managers, .. } = &e else {
            panic!("expected Conflict, got {e:?}")
        };
        assert!(managers.is_empty());
        assert!(e.to_string().contains(msg), "{e}");
    }

    #[test]
    fn invalid_carries_causes() {
        let s = with_causes(
            status(
                422,
                "Invalid",
                "Stage.kargo.akuity.io \"dev\" is invalid: spec.requestedFreight: Required value",
            ),
            "dev",
            &[
                (
                    "FieldValueRequired",
                    "Required value",
                    "spec.requestedFreight",
                ),
                (
                    "FieldValueInvalid",
                    "must be unique",
                    "spec.promotionTemplate.spec.steps[1].as",
                ),
            ],
        );
        let e = map(s);
        let Error::Invalid { causes, .. } = &e else {
            panic!("expected Invalid, got {e:?}")
        };
        assert_eq!(causes.len(), 2);
        assert_eq!(causes[0].field, "spec.requestedFreight");
        assert_eq!(causes[0].reason, "FieldValueRequired");
        assert_eq!(causes[1].message, "must be unique");
        let text = e.to_string();
        assert!(
            text.contains("spec.promotionTemplate.spec.steps[1].as: must be unique"),
            "{text}"
        );
    }

    #[test]
    fn webhook_denial_is_invalid() {
        let msg = "admission webhook \"promotion.kargo.akuity.io\" denied the request: Freight is not available to this Stage";
        let e = map(status(422, "Invalid", msg));
        assert!(
            matches!(&e, Error::Invalid { message, .. } if message == msg),
            "{e:?}"
        );
        // Denials that come back as plain 400s are invalid requests too.
        let e = map(status(
            400,
            "",
            "admission webhook \"stage.kargo.akuity.io\" denied the request: bad",
        ));
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    }

    #[test]
    fn forbidden_and_unauthorized() {
        let e = map(status(
            403,
            "Forbidden",
            "stages.kargo.akuity.io is forbidden: User \"ci\" cannot patch resource",
        ));
        assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
        assert!(e.to_string().contains("RBAC"), "{e}");
        let e = map(status(401, "Unauthorized", "Unauthorized"));
        assert!(
            matches!(&e, Error::Unauthorized { host } if host == HOST),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("rejected the credentials (401 Unauthorized)"),
            "{e}"
        );
    }

    #[test]
    fn promote_denial_names_the_stage() {
        let msg = "Internal error occurred: subject \"system:serviceaccount:ci:tf\" is not permitted to create Promotions for Stage \"prod\"";
        let e = map(status(500, "InternalError", msg));
        let Error::NotPermittedToPromote { stage, .. } = &e else {
            panic!("expected NotPermittedToPromote, got {e:?}")
        };
        assert_eq!(stage, "prod");
        assert!(
            e.to_string().contains("`promote` verb on `stages/prod`"),
            "{e}"
        );
    }

    #[test]
    fn webhook_unavailable_and_503_are_transient() {
        let e = map(status(
            500,
            "InternalError",
            "Internal error occurred: failed calling webhook \"stage.kargo.akuity.io\": failed to call webhook: Post \"https://kargo-webhooks-server.kargo.svc:443/validate\": connection refused",
        ));
        assert!(matches!(e, Error::WebhookUnavailable { .. }), "{e:?}");
        assert!(e.is_transient_while_starting());
        let e = map(status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ));
        assert!(matches!(e, Error::ServiceUnavailable { .. }), "{e:?}");
        assert!(e.is_transient_while_starting());
        let e = map(status(403, "Forbidden", "no"));
        assert!(!e.is_transient_while_starting());
    }

    #[test]
    fn other_failures_keep_code_and_reason() {
        let e = map(status(500, "InternalError", "etcd is sad"));
        let text = e.to_string();
        assert!(matches!(e, Error::Server { code: 500, .. }), "{e:?}");
        assert!(
            e.is_ambiguous_write(),
            "a 5xx may hide a write that happened"
        );
        assert!(
            text.contains("500 InternalError") && text.contains("etcd is sad"),
            "{text}"
        );
        let e = map(status(418, "Teapot", "short and stout"));
        assert!(matches!(e, Error::Other(_)), "{e:?}");
        assert!(!e.is_ambiguous_write());
        assert!(!map(status(422, "Invalid", "bad")).is_ambiguous_write());
    }

    #[test]
    fn kube_api_error_goes_through_status_mapping() {
        let err = kube::Error::Api(status(422, "Invalid", "bad").boxed());
        assert!(matches!(
            Error::from_kube(err, "x", HOST),
            Error::Invalid { .. }
        ));
    }

    #[test]
    fn transport_failure_is_unreachable_with_host() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let err = kube::Error::Service(Box::new(io));
        let e = Error::from_kube(err, "x", HOST);
        let Error::Unreachable { host, reason } = &e else {
            panic!("expected Unreachable, got {e:?}")
        };
        assert_eq!(host, HOST);
        assert!(reason.contains("Connection refused"), "{reason}");
        assert!(e.to_string().contains(HOST), "{e}");
    }

    #[test]
    fn exec_plugin_failure_hides_stdout() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Output {
            status: std::process::ExitStatus::from_raw(256),
            stdout: b"{\"status\":{\"token\":\"s3cr3t-token\"}}".to_vec(),
            stderr: b"login expired, run sso login".to_vec(),
        };
        let auth = kube::client::AuthError::AuthExecRun {
            cmd: "aws".into(),
            out: Box::new(out),
        };
        let e = Error::from_kube(kube::Error::Service(Box::new(auth)), "x", HOST);
        let text = e.to_string();
        assert!(matches!(e, Error::Credentials(_)), "{e:?}");
        assert!(text.contains("login expired"), "{text}");
        assert!(!text.contains("s3cr3t-token"), "{text}");
    }

    #[test]
    fn timeout_and_cancel_say_what() {
        let e = Error::Timeout {
            what: "Stage \"demo/dev\" to become Ready".into(),
            last_seen: "Ready=False".into(),
        };
        assert_eq!(
            e.to_string(),
            "timed out waiting for Stage \"demo/dev\" to become Ready; last state seen: Ready=False"
        );
        assert!(Error::Cancelled.to_string().contains("cancelled"));
    }
}
