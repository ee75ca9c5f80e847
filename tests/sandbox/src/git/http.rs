//! Smart HTTP for the served repositories: `/git/<name>.git/…` handed to `git http-backend`
//! as a CGI program, behind basic auth for private repositories. Plain request in, plain
//! response out, so any router can mount it.

use std::process::Stdio;

use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use tokio::io::AsyncWriteExt;

use super::exec::http_backend;
use super::{GitHost, quiet_config_env};

/// The path prefix the handler serves.
pub const PREFIX: &str = "/git/";

fn plain(code: StatusCode, text: impl Into<String>) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(text.into()));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Whether the request's basic-auth credentials are `want`'s.
fn authorized(req: &http::Request<Bytes>, want: &super::BasicAuth) -> bool {
    let Some(encoded) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let text = String::from_utf8_lossy(&decoded);
    text.split_once(':')
        .is_some_and(|(u, p)| u == want.username && p == want.password)
}

/// The largest request body (a push) accepted.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// Mounts [`serve`] on the sandbox's HTTPS server.
pub async fn handle(
    shared: std::sync::Arc<crate::server::Shared>,
    req: axum::extract::Request,
) -> Response<crate::router::Body> {
    use http_body_util::{BodyExt, Limited};
    let (parts, body) = req.into_parts();
    let resp = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => serve(&shared.git, http::Request::from_parts(parts, b.to_bytes())).await,
        Err(e) => plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body: {e}\n"),
        ),
    };
    resp.map(crate::router::full)
}

/// Serves one smart-HTTP request for `/git/<name>.git/…`.
pub async fn serve(host: &GitHost, req: http::Request<Bytes>) -> Response<Bytes> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let repo = rest.split('/').next().unwrap_or_default();
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    let Some(dir) = host.repo_dir(name) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("repository {name:?} not found\n"),
        );
    };
    let auth = host.auth_of(name);
    if let Some(want) = &auth
        && !authorized(&req, want)
    {
        let mut resp = plain(StatusCode::UNAUTHORIZED, "authentication required\n");
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"kargo-sandbox git\""),
        );
        return resp;
    }
    // The other writer lands just before the pusher reads the branch tips, so the push is
    // refused as one based on an old tip ("fetch first"), as when a branch moved since the
    // clone.
    if req.method() == http::Method::GET
        && rest.ends_with("/info/refs")
        && req
            .uri()
            .query()
            .is_some_and(|q| q.contains("service=git-receive-pack"))
    {
        host.fire_race(name);
    }
    let (program, subcommand) = match http_backend() {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    let header = |n: HeaderName| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path_info = format!("/{dir_name}{}", &rest[repo.len()..]);
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(subcommand)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(quiet_config_env())
        .env("GIT_PROJECT_ROOT", host.root())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path_info)
        .env("REQUEST_METHOD", req.method().as_str())
        .env("QUERY_STRING", req.uri().query().unwrap_or_default())
        .env("CONTENT_TYPE", header(CONTENT_TYPE))
        .env("CONTENT_LENGTH", req.body().len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env(
            "REMOTE_USER",
            auth.map(|a| a.username)
                .unwrap_or_else(|| "anonymous".to_string()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let encoding = header(http::header::CONTENT_ENCODING);
    if !encoding.is_empty() {
        cmd.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let protocol = header(HeaderName::from_static("git-protocol"));
    if !protocol.is_empty() {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot run git http-backend: {e}\n"),
            );
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let body = req.body().clone();
        // Written concurrently with reading the output: a large push must not deadlock on
        // full pipes.
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let out = match child.wait_with_output().await {
        Ok(o) => o,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("git http-backend failed: {e}\n"),
            );
        }
    };
    if !out.stderr.is_empty() {
        tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr), "git http-backend");
    }
    cgi_response(&out.stdout)
}

/// Turns a CGI program's output (headers, blank line, body) into a response.
fn cgi_response(out: &[u8]) -> Response<Bytes> {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        });
    let Some((head_end, body_start)) = split else {
        return plain(
            StatusCode::BAD_GATEWAY,
            "git http-backend gave no CGI headers\n",
        );
    };
    let head = String::from_utf8_lossy(&out[..head_end]);
    let mut resp = Response::new(Bytes::copy_from_slice(&out[body_start..]));
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            *resp.status_mut() = code;
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.trim().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(name, value);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_becomes_a_response() {
        let r = cgi_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(r.body().as_ref(), b"nope");
        let ok = cgi_response(b"Content-Type: application/x-git-upload-pack-advertisement\n\n0000");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.body().as_ref(), b"0000");
        assert_eq!(cgi_response(b"garbage").status(), StatusCode::BAD_GATEWAY);
    }
}
