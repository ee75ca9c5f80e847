//! Repository URLs as Kargo compares them, for matching subscriptions, freight and
//! credentials.

/// Git repository as Kargo compares them: lower case, no credentials, no trailing `/` or
/// `.git`, SCP-style `user@host:path` as `ssh://user@host/path`.
pub fn normalize_git(url: &str) -> String {
    let u = url.trim().to_ascii_lowercase();
    let trim_path = |p: &str| {
        let p = p.trim_end_matches('/');
        p.strip_suffix(".git").unwrap_or(p).to_string()
    };
    if let Some((scheme, rest)) = u.split_once("://") {
        let rest = match (scheme, rest.split_once('@')) {
            ("http" | "https", Some((_, host_and_path))) => host_and_path,
            _ => rest,
        };
        return format!("{scheme}://{}", trim_path(rest));
    }
    match u.split_once(':') {
        Some((user_host, path)) => {
            format!(
                "ssh://{user_host}/{}",
                trim_path(path.trim_start_matches('/'))
            )
        }
        None => u,
    }
}
