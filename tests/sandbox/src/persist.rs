//! The state directory (`--state-dir`): objects, the resourceVersion counter, users, clock
//! offset, Kargo's install state, the token and the TLS material survive a restart.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::api::KargoMode;
use crate::auth::User;
use crate::kubeconfig::write_atomic;
use crate::tls::Material;

/// Everything but the TLS material and token, written as one JSON file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub resource_version: u64,
    pub kargo: KargoMode,
    pub users: Vec<User>,
    pub clock_offset_ms: i64,
    pub objects: Vec<Value>,
}

#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

fn read_opt(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::State(format!("{}: {e}", path.display()))),
    }
}

impl StateDir {
    pub fn open(dir: &Path) -> Result<StateDir, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::State(format!("{}: {e}", dir.display())))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the sandbox keeps the repositories it serves.
    pub fn git_root(&self) -> PathBuf {
        self.dir.join("git")
    }

    pub fn load_tls(&self) -> Result<Option<Material>, Error> {
        let parts = (
            read_opt(&self.dir.join("ca.crt"))?,
            read_opt(&self.dir.join("server.crt"))?,
            read_opt(&self.dir.join("server.key"))?,
        );
        Ok(match parts {
            (Some(ca_pem), Some(cert_pem), Some(key_pem)) => Some(Material {
                ca_pem,
                cert_pem,
                key_pem,
            }),
            _ => None,
        })
    }

    pub fn save_tls(&self, m: &Material) -> Result<(), Error> {
        for (file, text) in [
            ("ca.crt", &m.ca_pem),
            ("server.crt", &m.cert_pem),
            ("server.key", &m.key_pem),
        ] {
            write_atomic(&self.dir.join(file), text.as_bytes())?;
        }
        Ok(())
    }

    pub fn load_token(&self) -> Result<Option<String>, Error> {
        Ok(read_opt(&self.dir.join("token"))?
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()))
    }

    pub fn save_token(&self, token: &str) -> Result<(), Error> {
        Ok(write_atomic(&self.dir.join("token"), token.as_bytes())?)
    }

    /// Where the previous run listened, so a restart can keep the kubeconfig's server URL.
    pub fn load_address(&self) -> Result<Option<std::net::SocketAddr>, Error> {
        Ok(read_opt(&self.dir.join("address"))?.and_then(|a| a.trim().parse().ok()))
    }

    pub fn save_address(&self, addr: std::net::SocketAddr) -> Result<(), Error> {
        Ok(write_atomic(
            &self.dir.join("address"),
            addr.to_string().as_bytes(),
        )?)
    }

    pub fn load(&self) -> Result<Option<Snapshot>, Error> {
        let path = self.dir.join("state.json");
        match read_opt(&path)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::State(format!("{}: {e}", path.display()))),
        }
    }

    pub fn save(&self, snapshot: &Snapshot) -> Result<(), Error> {
        let bytes = serde_json::to_vec(snapshot).map_err(|e| Error::State(e.to_string()))?;
        Ok(write_atomic(&self.dir.join("state.json"), &bytes)?)
    }
}
