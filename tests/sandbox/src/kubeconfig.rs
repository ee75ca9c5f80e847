//! The kubeconfig a sandbox writes (one cluster, user and context, all named `sandbox`)
//! and the reading side the CLI's control commands use to find a running sandbox.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// What a client needs to reach a sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub server: String,
    pub ca_pem: String,
    pub token: String,
}

/// The kubeconfig YAML for an endpoint.
pub fn render(e: &Endpoint) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {
            "server": e.server,
            "certificate-authority-data": STANDARD.encode(&e.ca_pem),
        }}],
        "users": [{"name": "sandbox", "user": {"token": e.token}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox"}}],
        "current-context": "sandbox",
        "preferences": {},
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// Writes `contents` so readers never see a partial file: a temporary file in the same
/// directory (owner-only permissions) renamed over `path`.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.{}.{seq}.tmp", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads the current context's server, CA and token from a kubeconfig.
pub fn read(path: &Path) -> Result<Endpoint, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: Value = serde_yaml::from_str(&text)
        .map_err(|e| format!("{} is not a kubeconfig: {e}", path.display()))?;
    let named = |list: &str, name: &str, field: &str| -> Option<Value> {
        doc.get(list)?
            .as_array()?
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
            .get(field)
            .cloned()
    };
    let ctx_name = doc
        .get("current-context")
        .and_then(Value::as_str)
        .ok_or("the kubeconfig has no current-context")?;
    let ctx = named("contexts", ctx_name, "context")
        .ok_or_else(|| format!("context {ctx_name:?} not found"))?;
    let cluster_name = ctx
        .get("cluster")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let user_name = ctx.get("user").and_then(Value::as_str).unwrap_or_default();
    let cluster = named("clusters", cluster_name, "cluster")
        .ok_or_else(|| format!("cluster {cluster_name:?} not found"))?;
    let user =
        named("users", user_name, "user").ok_or_else(|| format!("user {user_name:?} not found"))?;
    let server = cluster
        .get("server")
        .and_then(Value::as_str)
        .ok_or("the cluster has no server")?
        .to_string();
    let ca_data = cluster
        .get("certificate-authority-data")
        .and_then(Value::as_str)
        .ok_or("the cluster has no CA data")?;
    let ca = STANDARD
        .decode(ca_data.trim())
        .map_err(|e| format!("bad certificate-authority-data: {e}"))?;
    let token = user
        .get("token")
        .and_then(Value::as_str)
        .ok_or("the user has no token")?
        .to_string();
    Ok(Endpoint {
        server,
        ca_pem: String::from_utf8_lossy(&ca).into_owned(),
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_then_read_round_trips() {
        let dir = std::env::temp_dir().join(format!("kubeconfig-test-{}", std::process::id()));
        let path = dir.join("config");
        let e = Endpoint {
            server: "https://127.0.0.1:1".into(),
            ca_pem: "PEM".into(),
            token: "t".into(),
        };
        write_atomic(&path, render(&e).as_bytes()).unwrap();
        assert_eq!(read(&path).unwrap(), e);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("current-context: sandbox"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
