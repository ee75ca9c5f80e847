//! The provider installed as users install it: `terraform init` from a filesystem mirror, a
//! network mirror and a registry (all on loopback), with the lock file's hashes checked
//! against values computed here, then a plan and apply against the sandbox.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kargo_e2e::Env;
use kargo_e2e::terraform::provider_dir;
use kargo_release::{Platform, archive_name, sums_name};
use sha2::{Digest, Sha256};

const SOURCE: &str = "registry.terraform.io/dokaseca/kargo";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `dist/` for this build's provider, made as `make release` makes it: the archive for this
/// platform, the manifest and the SHA256SUMS file.
fn dist(dir: &Path) -> PathBuf {
    let out = dir.join("dist");
    let binary = provider_dir().join("terraform-provider-kargo");
    kargo_release::package(&binary, VERSION, &Platform::host(), &out).expect("package");
    kargo_release::write_manifest(VERSION, &out).expect("manifest");
    kargo_release::write_sums(VERSION, &out).expect("sums");
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Terraform's `h1:` hash of a provider package, computed from the archive's contents: the
/// SHA-256 of the sorted `<sha256 hex>  <name>\n` lines of its files, in base64.
fn h1(zip_path: &Path) -> String {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(zip_path).expect("open zip")).expect("read zip");
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("zip entry");
        let name = entry.name().expect("entry name").to_string();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).expect("read entry");
        files.insert(name, hex(&Sha256::digest(&body)));
    }
    let summary: String = files
        .iter()
        .map(|(name, sum)| format!("{sum}  {name}\n"))
        .collect();
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary.as_bytes()))
    )
}

/// `zh:` hashes: one per line of the SHA256SUMS file, as a registry reports them.
fn zh_hashes(sums: &Path) -> Vec<String> {
    std::fs::read_to_string(sums)
        .expect("read sums")
        .lines()
        .map(|line| format!("zh:{}", line.split_whitespace().next().unwrap_or_default()))
        .collect()
}

/// The `hashes` of the provider's entry in `.terraform.lock.hcl`, sorted, and its version.
fn locked(dir: &Path) -> (String, Vec<String>) {
    let lock = std::fs::read_to_string(dir.join(".terraform.lock.hcl")).expect("lock file");
    let entry = lock
        .split(&format!("provider \"{SOURCE}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no entry for {SOURCE} in the lock file:\n{lock}"));
    let version = entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("version"))
        .and_then(|v| v.split('"').nth(1))
        .unwrap_or_default()
        .to_string();
    let mut hashes: Vec<String> = entry
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("\"h1:") || l.starts_with("\"zh:"))
        .map(|l| l.trim_end_matches(',').trim_matches('"').to_string())
        .collect();
    hashes.sort();
    (version, hashes)
}

/// A configuration that needs the provider at `~> MAJOR.MINOR` and creates one project.
fn configure(env: &Env, project: &str) {
    let minor = VERSION.rsplit_once('.').map_or(VERSION, |(m, _)| m);
    env.tf.write_main(&format!(
        "terraform {{\n  required_providers {{\n    kargo = {{\n      source  = \"dokaseca/kargo\"\n      version = \"~> {minor}\"\n    }}\n  }}\n}}\n\nprovider \"kargo\" {{\n  config_path = \"{}\"\n}}\n\nresource \"kargo_project\" \"p\" {{\n  name = \"{project}\"\n}}\n",
        env.sandbox.kubeconfig_path().display()
    ));
}

/// After `init`: the installed binary is the one packaged, and it plans and applies.
fn assert_installed_and_working(env: &Env, project: &str) {
    let platform = Platform::host();
    let installed = env
        .tf
        .path()
        .join(".terraform/providers")
        .join(SOURCE)
        .join(VERSION)
        .join(platform.to_string())
        .join(kargo_release::binary_name(VERSION, &platform));
    let want = std::fs::read(provider_dir().join("terraform-provider-kargo")).expect("provider");
    assert_eq!(
        std::fs::read(&installed).expect("installed provider binary"),
        want,
        "the installed binary is the packaged one"
    );
    let plan = env.tf.run(&["plan", "-detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout.contains("kargo_project.p will be created"),
        "{}",
        plan.all()
    );
    env.tf.apply().ok();
    assert!(env.get("projects", None, project).is_some());
    env.tf.assert_no_changes();
}

fn cli_config(env: &mut Env, body: &str) {
    let rc = env.tf.path().join("mirror.tfrc");
    std::fs::write(&rc, body).expect("write CLI config");
    env.tf.env("TF_CLI_CONFIG_FILE", &rc.display().to_string());
}

#[test]
fn terraform_init_from_a_filesystem_mirror() {
    let mut env = Env::new();
    let work = tempfile::tempdir().unwrap();
    let out = dist(work.path());
    let zip = out.join(archive_name(VERSION, &Platform::host()));
    // The packed layout: HOSTNAME/NAMESPACE/TYPE/terraform-provider-TYPE_VERSION_TARGET.zip
    let mirror = work.path().join("mirror");
    let dir = mirror.join(SOURCE);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&zip, dir.join(zip.file_name().unwrap())).unwrap();
    cli_config(
        &mut env,
        &format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"{SOURCE}\"]\n  }}\n}}\n",
            mirror.display()
        ),
    );
    configure(&env, "from-fs-mirror");

    let init = env.tf.run(&["init", "-no-color"]).ok();
    assert!(
        init.stdout.contains(&format!(
            "Installed dokaseca/kargo v{VERSION} (unauthenticated)"
        )),
        "{}",
        init.all()
    );
    // A filesystem mirror has no signed checksums, so Terraform records only the h1: hash.
    assert_eq!(locked(env.tf.path()), (VERSION.to_string(), vec![h1(&zip)]));
    assert_installed_and_working(&env, "from-fs-mirror");
    env.tf.destroy().ok();
}

/// What a loopback HTTPS server answers: URL path → body (404 for anything else).
type Files = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// Serves files over HTTPS on loopback with a self-signed certificate written to `ca`;
/// returns the base URL and the files to fill in (documents may name the base URL).
fn serve(rt: &tokio::runtime::Runtime, ca: &Path) -> (String, Files) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(ca, cert.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let files: Files = Arc::default();
    let served = files.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, files) = (acceptor.clone(), served.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let path = req.uri().path();
                    // Terraform reads the mirror's and registry's documents only as JSON.
                    let json = path.ends_with(".json") || path.starts_with("/v1/");
                    let body = files
                        .lock()
                        .map(|f| f.get(req.uri().path()).cloned())
                        .unwrap_or_default();
                    async move {
                        let status = if body.is_some() {
                            StatusCode::OK
                        } else {
                            StatusCode::NOT_FOUND
                        };
                        let mut resp =
                            Response::new(Full::new(Bytes::from(body.unwrap_or_default())));
                        *resp.status_mut() = status;
                        let kind = if json {
                            "application/json"
                        } else {
                            "application/octet-stream"
                        };
                        resp.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(kind),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (base, files)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn terraform_init_from_a_network_mirror() {
    let mut env = Env::new();
    let work = tempfile::tempdir().unwrap();
    let out = dist(work.path());
    let platform = Platform::host();
    let name = archive_name(VERSION, &platform);
    let zip = std::fs::read(out.join(&name)).unwrap();
    let zh = format!("zh:{}", hex(&Sha256::digest(&zip)));
    let prefix = format!("/{SOURCE}");
    let served = BTreeMap::from([
        (
            format!("{prefix}/index.json"),
            format!("{{\"versions\":{{\"{VERSION}\":{{}}}}}}").into_bytes(),
        ),
        (
            format!("{prefix}/{VERSION}.json"),
            format!(
                "{{\"archives\":{{\"{platform}\":{{\"url\":\"{name}\",\"hashes\":[\"{zh}\"]}}}}}}"
            )
            .into_bytes(),
        ),
        (format!("{prefix}/{name}"), zip),
    ]);
    let rt = runtime();
    let ca = work.path().join("ca.pem");
    let (base, files) = serve(&rt, &ca);
    files.lock().unwrap().extend(served);
    env.tf.env("SSL_CERT_FILE", &ca.display().to_string());
    cli_config(
        &mut env,
        &format!(
            "provider_installation {{\n  network_mirror {{\n    url = \"{base}/\"\n  }}\n}}\n"
        ),
    );
    configure(&env, "from-net-mirror");

    let init = env.tf.run(&["init", "-no-color"]).ok();
    // Terraform checks the archive against the mirror's zh: hash, then records its own h1:.
    assert!(
        init.stdout.contains(&format!(
            "Installed dokaseca/kargo v{VERSION} (verified checksum)"
        )),
        "{}",
        init.all()
    );
    assert_eq!(
        locked(env.tf.path()),
        (VERSION.to_string(), vec![h1(&out.join(&name))])
    );
    assert_installed_and_working(&env, "from-net-mirror");
    env.tf.destroy().ok();
}

/// A throwaway gpg home with one signing key; `None` (and a SKIPPED line) without gpg.
fn gpg_key(home: &Path) -> Option<(String, String)> {
    if Command::new("gpg").arg("--version").output().is_err() {
        println!(
            "SKIPPED: terraform init from a registry: gpg is not on PATH (it signs SHA256SUMS)"
        );
        return None;
    }
    std::fs::create_dir_all(home).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .env("GNUPGHOME", home)
            .args(["--batch", "--passphrase", ""])
            .args(args)
            .output()
            .expect("run gpg");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    gpg(&[
        "--quick-generate-key",
        "Release Test <release-test@example.invalid>",
        "rsa3072",
        "sign",
        "1d",
    ]);
    let fingerprint = gpg(&["--list-keys", "--with-colons"])
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.split(':').find(|f| !f.is_empty()))
        .expect("key fingerprint")
        .to_string();
    let armor = gpg(&["--armor", "--export", &fingerprint]);
    Some((fingerprint, armor))
}

/// `scripts/release-sign`, as `make release` runs it.
fn sign(sums: &Path, home: &Path, fingerprint: Option<&str>) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/release-sign");
    let mut cmd = Command::new(script);
    cmd.arg(sums)
        .env("GNUPGHOME", home)
        .env_remove("GPG_PASSPHRASE");
    match fingerprint {
        Some(f) => cmd.env("GPG_FINGERPRINT", f),
        None => cmd.env_remove("GPG_FINGERPRINT"),
    };
    cmd.output().expect("run scripts/release-sign")
}

#[test]
fn release_sign_says_when_it_has_no_key() {
    let work = tempfile::tempdir().unwrap();
    let out = dist(work.path());
    let sums = out.join(sums_name(VERSION));
    let unsigned = sign(&sums, &work.path().join("gnupg"), None);
    assert!(unsigned.status.success());
    assert_eq!(
        String::from_utf8_lossy(&unsigned.stdout),
        format!(
            "SKIPPED signing: no key configured. Set GPG_FINGERPRINT (and GPG_PASSPHRASE if the key has one) to write {}.sig\n",
            sums_name(VERSION)
        )
    );
    assert!(!out.join(format!("{}.sig", sums_name(VERSION))).exists());
}

#[test]
fn terraform_init_from_a_registry_verifies_the_signature_and_locks_zh_hashes() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("gnupg");
    let Some((fingerprint, armor)) = gpg_key(&home) else {
        return;
    };
    let out = dist(work.path());
    let sums = out.join(sums_name(VERSION));
    let signed = sign(&sums, &home, Some(&fingerprint));
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let sig = std::fs::read(out.join(format!("{}.sig", sums_name(VERSION)))).unwrap();

    let platform = Platform::host();
    let name = archive_name(VERSION, &platform);
    let zip = std::fs::read(out.join(&name)).unwrap();
    let key_id = fingerprint[fingerprint.len() - 16..].to_string();
    let rt = runtime();
    let ca = work.path().join("ca.pem");
    let (base, files) = serve(&rt, &ca);
    // The registry protocol's documents: the versions list and the platform's download.
    let download = |signature: &str| {
        serde_json::json!({
            "protocols": ["6.0"], "os": platform.os, "arch": platform.arch, "filename": name,
            "download_url": format!("{base}/files/{name}"),
            "shasums_url": format!("{base}/files/{}", sums_name(VERSION)),
            "shasums_signature_url": format!("{base}/files/{signature}"),
            "shasum": hex(&Sha256::digest(&zip)),
            "signing_keys": {"gpg_public_keys": [{"key_id": key_id, "ascii_armor": armor}]},
        })
        .to_string()
        .into_bytes()
    };
    let download_path = format!(
        "/v1/providers/dokaseca/kargo/{VERSION}/download/{}/{}",
        platform.os, platform.arch
    );
    let mut forged = sig.clone();
    if let Some(byte) = forged.last_mut() {
        *byte ^= 0xff;
    }
    files.lock().unwrap().extend([
        (
            "/v1/providers/dokaseca/kargo/versions".to_string(),
            serde_json::json!({"versions": [{"version": VERSION, "protocols": ["6.0"],
                "platforms": [{"os": platform.os, "arch": platform.arch}]}]})
            .to_string()
            .into_bytes(),
        ),
        (
            download_path.clone(),
            download(&format!("{}.sig", sums_name(VERSION))),
        ),
        (format!("/files/{name}"), zip.clone()),
        (
            format!("/files/{}", sums_name(VERSION)),
            std::fs::read(&sums).unwrap(),
        ),
        (format!("/files/{}.sig", sums_name(VERSION)), sig),
        ("/files/forged.sig".to_string(), forged),
    ]);
    let registry = format!(
        "host \"registry.terraform.io\" {{\n  services = {{\n    \"providers.v1\" = \"{base}/v1/providers/\"\n  }}\n}}\n"
    );

    let mut env = Env::new();
    env.tf.env("SSL_CERT_FILE", &ca.display().to_string());
    cli_config(&mut env, &registry);
    configure(&env, "from-registry");
    let init = env.tf.run(&["init", "-no-color"]).ok();
    assert!(
        init.stdout.contains(&format!(
            "Installed dokaseca/kargo v{VERSION} (self-signed, key ID {key_id})"
        )),
        "{}",
        init.all()
    );
    // Signed checksums: every line of SHA256SUMS becomes a zh: hash, beside Terraform's h1:.
    let mut want = zh_hashes(&sums);
    want.push(h1(&out.join(&name)));
    want.sort();
    assert_eq!(want.len(), 3, "archive, manifest and h1: {want:?}");
    assert_eq!(locked(env.tf.path()), (VERSION.to_string(), want));
    assert_installed_and_working(&env, "from-registry");
    env.tf.destroy().ok();

    // The same registry answering with a signature that does not verify: nothing installs.
    files
        .lock()
        .unwrap()
        .insert(download_path, download("forged.sig"));
    let mut tf = kargo_e2e::Terraform::new();
    tf.env("SSL_CERT_FILE", &ca.display().to_string());
    let rc = tf.path().join("registry.tfrc");
    std::fs::write(&rc, &registry).unwrap();
    tf.env("TF_CLI_CONFIG_FILE", &rc.display().to_string());
    tf.write_main("terraform {\n  required_providers {\n    kargo = { source = \"dokaseca/kargo\" }\n  }\n}\n");
    let refused = tf.run(&["init", "-no-color"]).failed();
    assert!(
        refused.flat().contains("Error: Failed to install provider")
            && refused.flat().contains("openpgp: invalid signature"),
        "{}",
        refused.all()
    );
    assert!(!tf.path().join(".terraform/providers").join(SOURCE).exists());
}
