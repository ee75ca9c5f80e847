//! The `kargo-sandbox` command line: `serve` runs a sandbox; the other commands drive a
//! running one through its kubeconfig and the `/sandbox/v1` control API.

use std::path::PathBuf;

use http::Method;
use serde_json::{Value, json};

use crate::clock::parse_duration;
use crate::control::Client;
use crate::server::{Options, Sandbox};

pub const USAGE: &str = "\
kargo-sandbox: a local Kubernetes API server and Kargo control-plane emulator

USAGE:
  kargo-sandbox serve --kubeconfig PATH [--listen 127.0.0.1:0] [--token TOKEN] [--without-kargo] [--state-dir DIR]
                      [--admin-password PASSWORD] [--admin-token-ttl DURATION] [--http2]
                      [--rest-base-path PATH]
                     also serves Kargo's REST API at https://<address>/v1beta1; its admin logs in
                     with PASSWORD (default: the admin token) and gets tokens that live DURATION
                     (default 24h); with --http2 it offers HTTP/2 as well (ALPN), as Kargo's API
                     server does; with --rest-base-path it is served under PATH (Kargo's
                     api.basePath)

Commands for a running sandbox (--kubeconfig defaults to $KUBECONFIG):
  install-kargo      serve Kargo's CRDs and start its webhooks and controllers
  uninstall-kargo    stop Kargo's webhooks and controllers (objects and CRDs stay)
  publish --project P --warehouse W [--image REPO:TAG [--digest D]]... [--git URL@COMMIT[#TAG]]...
          [--chart REPO/NAME:VERSION]...
                     make artifacts appear upstream; prints the Freight's name and alias
  promote --project P --stage S --freight NAME|ALIAS
                     promote as Kargo's UI or CLI would; prints the Promotion's name
  fault http unavailable [--for DURATION] [--count N] [--verb VERB] [--resource RESOURCE]
  fault http delay --ms N [--for DURATION] [--count N] [--verb VERB] [--resource RESOURCE]
  fault http refuse --for DURATION
  fault http timeout-after-write|reset-after-write [--for DURATION] [--count N] [--verb VERB] [--resource RESOURCE]
                     carry matching requests out (the object is stored), then answer 504 or reset
                     the connection: the client cannot tell whether its write happened
  fault http delay-response --ms N [--for DURATION] [--count N] [--verb VERB] [--resource RESOURCE]
                     carry matching requests out at once, answer N ms later (past a client deadline)
  fault promotion --project P --stage S --step N|ALIAS --message M
  fault verification --project P --stage S [--message M]
  clear-faults       clear HTTP and Kargo faults
  clock advance DURATION
                     move the sandbox clock forward (e.g. 90s, 1h30m)
  stats [--requests] [--reset]
                     request counts by verb and resource as JSON (--requests: the full log)
  add-user --name N --token T [--deny VERB:RESOURCE]... [--rbac]
                     add a user who may do everything but the denied pairs (e.g.
                     --deny promote:stages --deny delete:stages), or, with --rbac, what the
                     stored Roles, ClusterRoles and their bindings grant it. Any other user
                     the admin acts as (kubectl --as NAME [--as-group G]) is decided by RBAC;
                     `kubectl auth can-i|whoami` answer for all of them

Git repositories (served over smart HTTPS at https://<address>/git/NAME.git; clients trust the
sandbox CA from the kubeconfig, e.g. GIT_SSL_CAINFO=ca.crt git clone URL):
  git create NAME [--from DIR] [--branch main] [--private --username U --password P]
                     create a repository (one commit of DIR's files when given) and print its
                     URL; a private one answers 401 without those basic-auth credentials
  git race --repo NAME --branch B [--file PATH --contents TEXT]
                     fault: another writer commits to B just before the next push to NAME
                     (an empty commit, or one setting PATH to TEXT: a conflict when the push
                     changed PATH too)
Promotions whose git-clone targets a repository the sandbox serves (or a local file:// one) run
their steps for real; Git credentials are Secrets labelled kargo.akuity.io/cred-type: git in the
project namespace or in kargo-shared-resources, as in Kargo.

Pull requests (opened by git-open-pr steps; git-wait-for-pr waits until one is merged or closed):
  pr list [--repo NAME|URL]
                     the pull requests, as JSON
  pr merge --repo NAME|URL --number N
                     merge with a merge commit on the target branch (fails on a conflict)
  pr close --repo NAME|URL --number N
                     close without merging
";

/// Parsed `--flag value` pairs and positional words.
#[derive(Debug, Default)]
struct Args {
    words: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(args: &[String], switches: &[&str]) -> Result<Args, String> {
        let mut out = Args::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                out.words.push(a.clone());
                continue;
            };
            if let Some((n, v)) = name.split_once('=') {
                out.flags.push((n.to_string(), Some(v.to_string())));
            } else if switches.contains(&name) {
                out.flags.push((name.to_string(), None));
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                out.flags.push((name.to_string(), Some(v.clone())));
            }
        }
        Ok(out)
    }

    fn allow(&self, known: &[&str]) -> Result<(), String> {
        match self
            .flags
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            Some((n, _)) => Err(format!("unknown flag --{n}\n\n{USAGE}")),
            None => Ok(()),
        }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.all(name).last().copied()
    }

    fn need(&self, name: &str) -> Result<&str, String> {
        self.one(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    fn client(&self) -> Result<Client, String> {
        let path = match self.one("kubeconfig") {
            Some(p) => PathBuf::from(p),
            None => std::env::var_os("KUBECONFIG")
                .map(PathBuf::from)
                .ok_or("--kubeconfig is required (or set KUBECONFIG)")?,
        };
        Client::from_kubeconfig(&path)
    }
}

/// `REPO:TAG` (the tag is after the last `:` that is not part of a registry host:port).
pub fn parse_image(s: &str) -> Result<(String, String), String> {
    match s.rsplit_once(':') {
        Some((repo, tag)) if !repo.is_empty() && !tag.is_empty() && !tag.contains('/') => {
            Ok((repo.to_string(), tag.to_string()))
        }
        _ => Err(format!("--image {s:?} must be REPO:TAG")),
    }
}

/// `URL@COMMIT[#TAG]`.
pub fn parse_git(s: &str) -> Result<Value, String> {
    let (rest, tag) = match s.rsplit_once('#') {
        Some((r, t)) => (r, Some(t)),
        None => (s, None),
    };
    match rest.rsplit_once('@') {
        Some((url, id)) if !url.is_empty() && !id.is_empty() && !id.contains('/') => {
            let mut c = json!({"repoURL": url, "id": id});
            if let Some(t) = tag.filter(|t| !t.is_empty()) {
                c["tag"] = json!(t);
            }
            Ok(c)
        }
        _ => Err(format!("--git {s:?} must be URL@COMMIT[#TAG]")),
    }
}

/// `REPO/NAME:VERSION`.
pub fn parse_chart(s: &str) -> Result<Value, String> {
    let err = || format!("--chart {s:?} must be REPO/NAME:VERSION");
    let (path, version) = s
        .rsplit_once(':')
        .filter(|(_, v)| !v.is_empty() && !v.contains('/'))
        .ok_or_else(err)?;
    let (repo, name) = path
        .rsplit_once('/')
        .filter(|(r, n)| !r.is_empty() && !n.is_empty())
        .ok_or_else(err)?;
    Ok(json!({"repoURL": repo, "name": name, "version": version}))
}

fn publish_body(a: &Args) -> Result<Value, String> {
    let mut images = Vec::new();
    for i in a.all("image") {
        let (repo, tag) = parse_image(i)?;
        images.push(json!({"repoURL": repo, "tag": tag}));
    }
    if let Some(d) = a.one("digest") {
        let last = images.last_mut().ok_or("--digest needs an --image")?;
        last["digest"] = json!(d);
    }
    let commits = a
        .all("git")
        .into_iter()
        .map(parse_git)
        .collect::<Result<Vec<_>, _>>()?;
    let charts = a
        .all("chart")
        .into_iter()
        .map(parse_chart)
        .collect::<Result<Vec<_>, _>>()?;
    if images.is_empty() && commits.is_empty() && charts.is_empty() {
        return Err("publish needs at least one --image, --git or --chart".into());
    }
    Ok(json!({
        "project": a.need("project")?,
        "warehouse": a.need("warehouse")?,
        "images": images,
        "commits": commits,
        "charts": charts,
    }))
}

fn http_fault(kind: &str, a: &Args) -> Result<Value, String> {
    let name = match kind {
        "timeout-after-write" => "timeoutAfterWrite",
        "reset-after-write" => "resetAfterWrite",
        "delay-response" => "delayResponse",
        other => other,
    };
    let mut fault = json!({"kind": name});
    if let Some(d) = a.one("for") {
        fault["durationMs"] = json!(parse_duration(d)?.as_millis() as u64);
    }
    if let Some(n) = a.one("count") {
        fault["count"] = json!(
            n.parse::<u32>()
                .map_err(|_| format!("--count {n:?} is not a number"))?
        );
    }
    if let Some(ms) = a.one("ms") {
        fault["delayMs"] = json!(
            ms.parse::<u64>()
                .map_err(|_| format!("--ms {ms:?} is not a number"))?
        );
    }
    for key in ["verb", "resource"] {
        if let Some(v) = a.one(key) {
            fault[key] = json!(v);
        }
    }
    match kind {
        "delay" | "delay-response" if a.one("ms").is_none() => {
            Err(format!("fault http {kind} needs --ms"))
        }
        "refuse" if a.one("for").is_none() => Err("fault http refuse needs --for".into()),
        _ => Ok(fault),
    }
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs the command line (without the program name).
pub async fn run(args: Vec<String>) -> Result<(), String> {
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => return Err(USAGE.to_string()),
    };
    let a = Args::parse(
        rest,
        &[
            "without-kargo",
            "reset",
            "requests",
            "help",
            "private",
            "rbac",
            "http2",
        ],
    )?;
    match cmd {
        "serve" => {
            a.allow(&[
                "kubeconfig",
                "listen",
                "token",
                "without-kargo",
                "state-dir",
                "admin-password",
                "admin-token-ttl",
                "http2",
                "rest-base-path",
            ])?;
            let mut opts = Options::default().kubeconfig(a.need("kubeconfig")?);
            if let Some(l) = a.one("listen") {
                opts.listen = l.parse().map_err(|e| format!("--listen {l:?}: {e}"))?;
            }
            if let Some(t) = a.one("token") {
                opts.token = Some(t.to_string());
            }
            if let Some(d) = a.one("state-dir") {
                opts.state_dir = Some(PathBuf::from(d));
            }
            if let Some(p) = a.one("admin-password") {
                if p.is_empty() {
                    return Err("--admin-password must not be empty".into());
                }
                opts.admin_password = Some(p.to_string());
            }
            if let Some(t) = a.one("admin-token-ttl") {
                let ttl = parse_duration(t).map_err(|e| format!("--admin-token-ttl {t:?}: {e}"))?;
                if ttl.is_zero() {
                    return Err("--admin-token-ttl must be positive".into());
                }
                opts.admin_token_ttl = ttl;
            }
            opts.with_kargo = !a.has("without-kargo");
            opts.http2 = a.has("http2");
            opts.rest_base_path = a.one("rest-base-path").map(str::to_string);
            serve(opts).await
        }
        "install-kargo" | "uninstall-kargo" => {
            a.allow(&["kubeconfig"])?;
            let action = if cmd == "install-kargo" {
                "install"
            } else {
                "uninstall"
            };
            let v = a
                .client()?
                .call(Method::POST, &format!("kargo/{action}"), None)
                .await?;
            print(&v);
            Ok(())
        }
        "publish" => {
            a.allow(&[
                "kubeconfig",
                "project",
                "warehouse",
                "image",
                "digest",
                "git",
                "chart",
            ])?;
            let body = publish_body(&a)?;
            let v = a
                .client()?
                .call(Method::POST, "control/publish", Some(&body))
                .await?;
            let freight = v.get("freight").unwrap_or(&v);
            let field = |k: &str| {
                freight
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            println!("name: {}", field("name"));
            println!("alias: {}", field("alias"));
            Ok(())
        }
        "promote" => {
            a.allow(&["kubeconfig", "project", "stage", "freight"])?;
            let body = json!({"project": a.need("project")?, "stage": a.need("stage")?,
                "freight": a.need("freight")?});
            let v = a
                .client()?
                .call(Method::POST, "control/promote", Some(&body))
                .await?;
            println!(
                "promotion: {}",
                v.get("name").and_then(Value::as_str).unwrap_or_default()
            );
            Ok(())
        }
        "fault" => fault(&a).await,
        "git" => git(&a).await,
        "pr" => pr(&a).await,
        "clear-faults" => {
            a.allow(&["kubeconfig"])?;
            a.client()?.call(Method::DELETE, "faults", None).await?;
            println!("faults cleared");
            Ok(())
        }
        "clock" => {
            a.allow(&["kubeconfig"])?;
            match a.words.as_slice() {
                [verb, d] if verb == "advance" => {
                    parse_duration(d)?;
                    let v = a
                        .client()?
                        .call(Method::POST, "clock/advance", Some(&json!({"duration": d})))
                        .await?;
                    println!(
                        "sandbox time is now {}",
                        v.get("now").and_then(Value::as_str).unwrap_or_default()
                    );
                    Ok(())
                }
                _ => Err("usage: kargo-sandbox clock advance DURATION".into()),
            }
        }
        "stats" => {
            a.allow(&["kubeconfig", "reset", "requests"])?;
            let client = a.client()?;
            let path = if a.has("requests") {
                "requests"
            } else {
                "stats"
            };
            print(&client.call(Method::GET, path, None).await?);
            if a.has("reset") {
                client.call(Method::DELETE, "requests", None).await?;
            }
            Ok(())
        }
        "add-user" => {
            a.allow(&["kubeconfig", "name", "token", "deny", "rbac"])?;
            let deny = a.all("deny");
            if let Some(bad) = deny.iter().find(|d| !d.contains(':')) {
                return Err(format!("--deny {bad:?} must be VERB:RESOURCE"));
            }
            let body = json!({"name": a.need("name")?, "token": a.need("token")?, "deny": deny,
                "rbac": a.has("rbac")});
            print(&a.client()?.call(Method::POST, "users", Some(&body)).await?);
            Ok(())
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
}

async fn fault(a: &Args) -> Result<(), String> {
    let client = || a.client();
    match a
        .words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [
            "http",
            kind @ ("unavailable"
            | "delay"
            | "refuse"
            | "timeout-after-write"
            | "reset-after-write"
            | "delay-response"),
        ] => {
            a.allow(&["kubeconfig", "for", "count", "ms", "verb", "resource"])?;
            let body = http_fault(kind, a)?;
            print(&client()?.call(Method::POST, "faults", Some(&body)).await?);
            Ok(())
        }
        ["promotion"] => {
            a.allow(&["kubeconfig", "project", "stage", "step", "message"])?;
            // A 1-based step index, or a step alias.
            let step = a.need("step")?;
            let step = step
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(step));
            let body = json!({"project": a.need("project")?, "stage": a.need("stage")?, "step": step,
                "message": a.need("message")?});
            print(
                &client()?
                    .call(Method::POST, "control/fail-promotion", Some(&body))
                    .await?,
            );
            Ok(())
        }
        ["verification"] => {
            a.allow(&["kubeconfig", "project", "stage", "message"])?;
            let mut body = json!({"project": a.need("project")?, "stage": a.need("stage")?});
            if let Some(m) = a.one("message") {
                body["message"] = json!(m);
            }
            print(
                &client()?
                    .call(Method::POST, "control/fail-verification", Some(&body))
                    .await?,
            );
            Ok(())
        }
        _ => Err(format!("usage: see `kargo-sandbox help`\n\n{USAGE}")),
    }
}

async fn git(a: &Args) -> Result<(), String> {
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["create", name] => {
            a.allow(&[
                "kubeconfig",
                "from",
                "branch",
                "private",
                "username",
                "password",
            ])?;
            let mut body = json!({"name": name, "branch": a.one("branch").unwrap_or("main")});
            if let Some(from) = a.one("from") {
                // The sandbox may run elsewhere: send an absolute path.
                let abs = std::path::absolute(from).map_err(|e| format!("--from {from:?}: {e}"))?;
                body["from"] = json!(abs);
            }
            match (a.has("private"), a.one("username"), a.one("password")) {
                (true, Some(u), Some(p)) => {
                    body["username"] = json!(u);
                    body["password"] = json!(p);
                }
                (true, _, _) => return Err("--private needs --username and --password".into()),
                (false, None, None) => {}
                (false, _, _) => {
                    return Err("--username and --password go with --private".into());
                }
            }
            let v = a
                .client()?
                .call(Method::POST, "git/create", Some(&body))
                .await?;
            println!(
                "{}",
                v.get("url").and_then(Value::as_str).unwrap_or_default()
            );
            Ok(())
        }
        ["race"] => {
            a.allow(&["kubeconfig", "repo", "branch", "file", "contents"])?;
            let mut body = json!({"repo": a.need("repo")?, "branch": a.need("branch")?});
            match (a.one("file"), a.one("contents")) {
                (Some(file), contents) => {
                    body["file"] = json!(file);
                    body["contents"] = json!(contents.unwrap_or_default());
                }
                (None, Some(_)) => return Err("--contents goes with --file".into()),
                (None, None) => {}
            }
            a.client()?
                .call(Method::POST, "git/race", Some(&body))
                .await?;
            println!(
                "armed: the next push to {} finds {} moved",
                a.need("repo")?,
                a.need("branch")?
            );
            Ok(())
        }
        _ => Err(format!("usage: see `kargo-sandbox help`\n\n{USAGE}")),
    }
}

async fn pr(a: &Args) -> Result<(), String> {
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["list"] => {
            a.allow(&["kubeconfig", "repo"])?;
            let body = json!({"repo": a.one("repo").unwrap_or_default()});
            print(
                &a.client()?
                    .call(Method::POST, "git/prs", Some(&body))
                    .await?,
            );
            Ok(())
        }
        [verb @ ("merge" | "close")] => {
            a.allow(&["kubeconfig", "repo", "number"])?;
            let n = a.need("number")?;
            let number: u64 = n
                .parse()
                .map_err(|_| format!("--number {n:?} is not a number"))?;
            let body = json!({"repo": a.need("repo")?, "number": number});
            print(
                &a.client()?
                    .call(Method::POST, &format!("git/{verb}"), Some(&body))
                    .await?,
            );
            Ok(())
        }
        _ => Err(format!("usage: see `kargo-sandbox help`\n\n{USAGE}")),
    }
}

async fn serve(opts: Options) -> Result<(), String> {
    let sandbox = Sandbox::start(opts).await.map_err(|e| e.to_string())?;
    wait_for_signal().await?;
    tracing::info!("shutting down");
    sandbox.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Result<(), String> {
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_arguments_parse() {
        assert_eq!(
            parse_image("localhost:5000/app:1.2.3").unwrap(),
            ("localhost:5000/app".into(), "1.2.3".into())
        );
        assert!(parse_image("localhost:5000/app").is_err());
        assert_eq!(
            parse_git("https://github.com/o/r@abc123#v1.0").unwrap(),
            json!({"repoURL": "https://github.com/o/r", "id": "abc123", "tag": "v1.0"})
        );
        assert_eq!(
            parse_git("git@github.com:o/r.git@abc").unwrap(),
            json!({"repoURL": "git@github.com:o/r.git", "id": "abc"})
        );
        assert_eq!(
            parse_chart("oci://ghcr.io/o/charts/app:0.3.0").unwrap(),
            json!({"repoURL": "oci://ghcr.io/o/charts", "name": "app", "version": "0.3.0"})
        );
        assert!(parse_chart("app:1.0").is_err());
    }

    #[test]
    fn flags_and_switches() {
        let argv: Vec<String> = ["--image", "a:1", "--image=b:2", "--reset", "word"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = Args::parse(&argv, &["reset"]).unwrap();
        assert_eq!(a.all("image"), vec!["a:1", "b:2"]);
        assert!(a.has("reset"));
        assert_eq!(a.words, vec!["word"]);
        assert!(a.allow(&["image"]).is_err());
        let body = publish_body(
            &Args::parse(
                &[
                    "--project",
                    "p",
                    "--warehouse",
                    "w",
                    "--image",
                    "r:1",
                    "--digest",
                    "sha256:ab",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
                &[],
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            body["images"],
            json!([{"repoURL": "r", "tag": "1", "digest": "sha256:ab"}])
        );
        assert_eq!(body["commits"], json!([]));
    }
}
