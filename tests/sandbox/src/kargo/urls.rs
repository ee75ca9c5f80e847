//! Repository URL normalisation as Kargo applies it when comparing subscriptions and
//! computing Freight IDs (Git, image and chart URLs), plus Go's `path.Join` semantics.

/// Drops surrounding whitespace and non-printable characters (e.g. a pasted BOM).
fn sanitize(url: &str) -> String {
    url.chars()
        .filter(|c| !c.is_control() && *c != '\u{feff}')
        .collect::<String>()
        .trim()
        .to_string()
}

/// Kargo's `urls.NormalizeGit`: lower-case; for http(s) drop user info, a trailing `/` and
/// `.git`; SCP-style `user@host:path` becomes `ssh://user@host/path`.
pub fn normalize_git(repo: &str) -> String {
    let lowered = sanitize(&repo.to_lowercase());
    for scheme in ["https://", "http://", "ssh://"] {
        if let Some(rest) = lowered.strip_prefix(scheme) {
            if rest.contains('?') {
                return repo.to_string();
            }
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let host = if scheme == "ssh://" {
                authority
            } else {
                authority
                    .rsplit_once('@')
                    .map(|(_, h)| h)
                    .unwrap_or(authority)
            };
            let path = path.strip_suffix('/').unwrap_or(path);
            let path = path.strip_suffix(".git").unwrap_or(path);
            return format!("{scheme}{host}{path}");
        }
    }
    // SCP-style: [user@]host[:path]
    let (user_host, path) = match lowered.split_once(':') {
        Some((a, b)) => (a, b),
        None => (lowered.as_str(), ""),
    };
    let valid_host = !user_host.is_empty()
        && user_host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !valid_host {
        return repo.to_string();
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = path.strip_suffix(".git").unwrap_or(path);
    if path.is_empty() {
        format!("ssh://{user_host}")
    } else {
        format!("ssh://{user_host}/{}", path.trim_start_matches('/'))
    }
}

/// Kargo's `urls.NormalizeImage`: lower-case, and Docker Hub references lose their
/// `docker.io/` / `index.docker.io/` host and `library/` prefix; a tag or digest is dropped.
pub fn normalize_image(repo: &str) -> String {
    let s = sanitize(&repo.to_lowercase());
    if s.is_empty() || s.contains("://") {
        return repo.to_string();
    }
    let without_digest = s.split('@').next().unwrap_or(&s);
    // A tag is a ':' after the last '/' (a ':' before it is a registry port).
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let name = match without_digest[last_slash..].find(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    };
    let first = name.split('/').next().unwrap_or("");
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if !has_registry {
        return name.strip_prefix("library/").unwrap_or(name).to_string();
    }
    match first {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            let rest = &name[first.len() + 1..];
            rest.strip_prefix("library/").unwrap_or(rest).to_string()
        }
        _ => name.to_string(),
    }
}

/// Kargo's `urls.NormalizeChart`: drop `oci://`, then normalise like an image reference;
/// classic http(s) repositories are only lower-cased.
pub fn normalize_chart(repo: &str) -> String {
    let lowered = sanitize(repo).to_lowercase();
    let stripped = lowered
        .strip_prefix("oci://")
        .unwrap_or(&lowered)
        .to_string();
    if stripped.contains("://") {
        return stripped;
    }
    normalize_image(&stripped)
}

/// Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Join`: non-empty elements joined by `/`, then cleaned (so `https://x` becomes
/// `https:/x`, which Kargo's chart hash parts faithfully contain).
pub fn join_path(elems: &[&str]) -> String {
    let non_empty: Vec<&str> = elems.iter().copied().filter(|e| !e.is_empty()).collect();
    if non_empty.is_empty() {
        return String::new();
    }
    clean_path(&non_empty.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_normalize() {
        assert_eq!(
            normalize_git("https://GitHub.com/Org/Repo.git"),
            "https://github.com/org/repo"
        );
        assert_eq!(
            normalize_git("https://user:pw@github.com/org/repo/"),
            "https://github.com/org/repo"
        );
        assert_eq!(
            normalize_git("git@github.com:org/repo.git"),
            "ssh://git@github.com/org/repo"
        );
        assert_eq!(
            normalize_git("ssh://git@github.com/org/repo.git"),
            "ssh://git@github.com/org/repo"
        );
    }

    #[test]
    fn image_urls_normalize() {
        assert_eq!(normalize_image("nginx"), "nginx");
        assert_eq!(normalize_image("library/nginx"), "nginx");
        assert_eq!(normalize_image("docker.io/library/nginx"), "nginx");
        assert_eq!(normalize_image("index.docker.io/acme/app"), "acme/app");
        assert_eq!(normalize_image("GHCR.io/Acme/App"), "ghcr.io/acme/app");
        assert_eq!(
            normalize_image("localhost:5000/app:1.0"),
            "localhost:5000/app"
        );
    }

    #[test]
    fn chart_urls_normalize() {
        assert_eq!(
            normalize_chart("oci://ghcr.io/acme/charts/app"),
            "ghcr.io/acme/charts/app"
        );
        assert_eq!(
            normalize_chart("https://Charts.Example.com/"),
            "https://charts.example.com/"
        );
    }

    #[test]
    fn join_behaves_like_go() {
        assert_eq!(
            join_path(&["https://charts.example.com", "nginx"]),
            "https:/charts.example.com/nginx"
        );
        assert_eq!(join_path(&["ghcr.io/acme/app", ""]), "ghcr.io/acme/app");
        assert_eq!(join_path(&["a/b/", "../c"]), "a/c");
        assert_eq!(clean_path("/../x"), "/x");
    }
}
