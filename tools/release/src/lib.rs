//! Release packaging in the layout the Terraform registry protocol and provider mirrors expect:
//! one zip per platform, a manifest declaring the protocol version, and a SHA256SUMS file.
//!
//! ```no_run
//! use std::path::Path;
//! use kargo_release::{Platform, package, write_manifest, write_sums};
//! let out = Path::new("dist");
//! let zip = package(Path::new("target/release/terraform-provider-kargo"), "0.2.0", &Platform::host(), out)?;
//! write_manifest("0.2.0", out)?;
//! let sums = write_sums("0.2.0", out)?; // lists the zips and the manifest
//! # let _ = (zip, sums);
//! # Ok::<(), kargo_release::Error>(())
//! ```

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

/// The provider's binary and archive name prefix, as the registry protocol names them.
pub const PROVIDER: &str = "terraform-provider-kargo";

/// The plugin protocol versions the provider speaks, declared in the manifest.
pub const PROTOCOL_VERSIONS: &[&str] = &["6.0"];

/// What went wrong while packaging, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An operating system and architecture in Terraform's spelling: `linux_amd64`, `darwin_arm64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Platform {
    /// The platform this program runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            arch: arch.to_string(),
        }
    }

    /// Parses `os_arch` (e.g. `windows_amd64`).
    pub fn parse(text: &str) -> Result<Platform, Error> {
        match text.split_once('_') {
            Some((os, arch)) if !os.is_empty() && !arch.is_empty() && !arch.contains('_') => {
                Ok(Platform {
                    os: os.to_string(),
                    arch: arch.to_string(),
                })
            }
            _ => Err(Error::Invalid(format!(
                "platform {text:?} is not of the form os_arch, e.g. linux_amd64"
            ))),
        }
    }

    fn executable_suffix(&self) -> &'static str {
        if self.os == "windows" { ".exe" } else { "" }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.os, self.arch)
    }
}

/// `terraform-provider-kargo_<version>_<os>_<arch>.zip`.
pub fn archive_name(version: &str, platform: &Platform) -> String {
    format!("{PROVIDER}_{version}_{platform}.zip")
}

/// The binary's name inside the archive: `terraform-provider-kargo_v<version>[.exe]`.
pub fn binary_name(version: &str, platform: &Platform) -> String {
    format!("{PROVIDER}_v{version}{}", platform.executable_suffix())
}

/// `terraform-provider-kargo_<version>_manifest.json`.
pub fn manifest_name(version: &str) -> String {
    format!("{PROVIDER}_{version}_manifest.json")
}

/// `terraform-provider-kargo_<version>_SHA256SUMS`.
pub fn sums_name(version: &str) -> String {
    format!("{PROVIDER}_{version}_SHA256SUMS")
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_version(version: &str) -> Result<(), Error> {
    let ok = !version.is_empty()
        && !version.starts_with('v')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "version {version:?} is not a plain semantic version such as 0.2.0 (no leading v)"
        )))
    }
}

/// Zips `binary` for `platform` into `out`, returning the archive's path. Entries carry a
/// fixed timestamp so the same binary always gives the same archive (and the same `zh:` hash).
pub fn package(
    binary: &Path,
    version: &str,
    platform: &Platform,
    out: &Path,
) -> Result<PathBuf, Error> {
    check_version(version)?;
    let contents = fs::read(binary).map_err(io(binary))?;
    fs::create_dir_all(out).map_err(io(out))?;
    let path = out.join(archive_name(version, platform));
    let file = fs::File::create(&path).map_err(io(&path))?;
    let zip_err = |source| Error::Zip {
        path: path.clone(),
        source,
    };
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file(binary_name(version, platform), options)
        .map_err(zip_err)?;
    zip.write_all(&contents).map_err(io(&path))?;
    zip.finish().map_err(zip_err)?;
    Ok(path)
}

/// Writes the registry manifest declaring the protocol versions the provider speaks.
pub fn write_manifest(version: &str, out: &Path) -> Result<PathBuf, Error> {
    check_version(version)?;
    fs::create_dir_all(out).map_err(io(out))?;
    let path = out.join(manifest_name(version));
    let versions = PROTOCOL_VERSIONS
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let body = format!(
        "{{\n  \"version\": 1,\n  \"metadata\": {{\n    \"protocol_versions\": [{versions}]\n  }}\n}}\n"
    );
    fs::write(&path, body).map_err(io(&path))?;
    Ok(path)
}

/// Writes `SHA256SUMS` over every archive of `version` in `out` and its manifest, one
/// `<sha256>  <file>` line each, sorted by file name, as `shasum -a 256` prints them.
pub fn write_sums(version: &str, out: &Path) -> Result<PathBuf, Error> {
    check_version(version)?;
    let prefix = format!("{PROVIDER}_{version}_");
    let manifest = manifest_name(version);
    let mut names = Vec::new();
    for entry in fs::read_dir(out).map_err(io(out))? {
        let name = entry.map_err(io(out))?.file_name();
        let Some(name) = name.to_str() else { continue };
        if (name.starts_with(&prefix) && name.ends_with(".zip")) || name == manifest {
            names.push(name.to_string());
        }
    }
    if !names.iter().any(|n| n.ends_with(".zip")) {
        return Err(Error::Invalid(format!(
            "{} holds no {prefix}<os>_<arch>.zip to sum; package first",
            out.display()
        )));
    }
    names.sort();
    let mut body = String::new();
    for name in &names {
        let file = out.join(name);
        let bytes = fs::read(&file).map_err(io(&file))?;
        body.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
    }
    let path = out.join(sums_name(version));
    fs::write(&path, body).map_err(io(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn platform(s: &str) -> Platform {
        match Platform::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn names_follow_the_registry_protocol() {
        let p = platform("windows_arm64");
        assert_eq!(
            archive_name("1.2.3", &p),
            "terraform-provider-kargo_1.2.3_windows_arm64.zip"
        );
        assert_eq!(
            binary_name("1.2.3", &p),
            "terraform-provider-kargo_v1.2.3.exe"
        );
        assert_eq!(
            binary_name("1.2.3", &platform("linux_amd64")),
            "terraform-provider-kargo_v1.2.3"
        );
        assert_eq!(
            sums_name("1.2.3"),
            "terraform-provider-kargo_1.2.3_SHA256SUMS"
        );
    }

    #[test]
    fn bad_platforms_and_versions_are_refused() {
        for bad in ["linux", "_amd64", "linux_", "linux_amd_64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let err = write_manifest("v1.0.0", dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "version \"v1.0.0\" is not a plain semantic version such as 0.2.0 (no leading v)"
        );
        let err = write_sums("1.0.0", dir.path()).unwrap_err();
        assert!(err.to_string().ends_with(
            "holds no terraform-provider-kargo_1.0.0_<os>_<arch>.zip to sum; package first"
        ));
        let err = package(
            &dir.path().join("missing"),
            "1.0.0",
            &Platform::host(),
            dir.path(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn package_is_reproducible_executable_and_summed() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("provider");
        fs::write(&bin, b"#!/bin/sh\necho hi\n").unwrap();
        let out = dir.path().join("dist");
        let linux = platform("linux_amd64");
        let first = package(&bin, "0.3.0", &linux, &out).unwrap();
        let first_bytes = fs::read(&first).unwrap();
        let again = package(&bin, "0.3.0", &linux, &out).unwrap();
        assert_eq!(
            fs::read(&again).unwrap(),
            first_bytes,
            "same input, same zip"
        );
        package(&bin, "0.3.0", &platform("darwin_arm64"), &out).unwrap();
        // Another version's archive in the same directory is not summed.
        package(&bin, "0.2.9", &linux, &out).unwrap();

        let mut archive = zip::ZipArchive::new(fs::File::open(&first).unwrap()).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "terraform-provider-kargo_v0.3.0");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"#!/bin/sh\necho hi\n");

        let manifest = write_manifest("0.3.0", &out).unwrap();
        let text = fs::read_to_string(&manifest).unwrap();
        assert_eq!(
            text,
            "{\n  \"version\": 1,\n  \"metadata\": {\n    \"protocol_versions\": [\"6.0\"]\n  }\n}\n"
        );

        let sums = fs::read_to_string(write_sums("0.3.0", &out).unwrap()).unwrap();
        let lines: Vec<&str> = sums.lines().collect();
        assert_eq!(
            lines,
            [
                format!(
                    "{}  terraform-provider-kargo_0.3.0_darwin_arm64.zip",
                    sha256_hex(
                        &fs::read(out.join("terraform-provider-kargo_0.3.0_darwin_arm64.zip"))
                            .unwrap()
                    )
                ),
                format!(
                    "{}  terraform-provider-kargo_0.3.0_linux_amd64.zip",
                    sha256_hex(&first_bytes)
                ),
                format!(
                    "{}  terraform-provider-kargo_0.3.0_manifest.json",
                    sha256_hex(text.as_bytes())
                ),
            ]
        );
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
