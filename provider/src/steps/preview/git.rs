//! Repositories for the preview: fetched with libgit2 into an on-disk cache (fetch, not
//! clone, once per repository per process, that is per plan), checked out as plain files,
//! and the work tree compared with the checkout.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use super::http::HttpContext;

/// The files of a tree: relative path (with `/`) → bytes.
pub type Files = BTreeMap<String, Vec<u8>>;

type Fetched = Arc<Mutex<Option<Result<PathBuf, String>>>>;

/// Repositories fetched by this process, by URL: each one fetched at most once.
static FETCHED: LazyLock<Mutex<HashMap<String, Fetched>>> = LazyLock::new(Default::default);

fn cache_name(url: &str) -> String {
    let mut name: String = url
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.len() > 150 {
        name = name.split_off(name.len() - 150);
    }
    format!("{name}.git")
}

/// The cached bare repository of `url`, fetched now unless this process already did.
pub fn fetch(url: &str, cache_root: &Path, http: &Arc<HttpContext>) -> Result<PathBuf, String> {
    let slot = FETCHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(url.to_string())
        .or_default()
        .clone();
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(done) = &*slot {
        return done.clone();
    }
    let result = fetch_now(url, cache_root, http);
    *slot = Some(result.clone());
    result
}

fn fetch_now(url: &str, cache_root: &Path, http: &Arc<HttpContext>) -> Result<PathBuf, String> {
    let shown = crate::kargo::redact_userinfo(url);
    let dir = cache_root.join(cache_name(url));
    let repo = match git2::Repository::open_bare(&dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(cache_root).map_err(|e| {
                format!("cannot create the Git cache {}: {e}", cache_root.display())
            })?;
            git2::Repository::init_bare(&dir).map_err(|e| {
                format!(
                    "cannot create the Git cache {}: {}",
                    dir.display(),
                    e.message()
                )
            })?
        }
    };
    let started = std::time::Instant::now();
    let fetched = http.serve(|| {
        let mut remote = repo.remote_anonymous(url)?;
        let mut options = git2::FetchOptions::new();
        options.download_tags(git2::AutotagOption::None);
        remote.fetch(
            &[
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
            Some(&mut options),
            None,
        )
    });
    if let Err(e) = fetched {
        let told = http
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        return Err(told.unwrap_or_else(|| format!("cannot fetch {shown}: {}", e.message())));
    }
    tracing::info!(url = %shown, elapsed_ms = started.elapsed().as_millis() as u64, "promotion preview fetched a Git repository");
    Ok(dir)
}

/// What a checkout starts from.
pub enum Ref<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Commit(&'a str),
}

/// The files of `reference` in the cached repository, and the commit's ID. `Ok(None)` when
/// the branch does not exist.
pub fn files_at(repo_dir: &Path, reference: Ref<'_>) -> Result<Option<(Files, String)>, String> {
    let repo = git2::Repository::open_bare(repo_dir).map_err(|e| e.message().to_string())?;
    let object = match reference {
        Ref::Branch(b) => match repo.revparse_single(&format!("refs/remotes/origin/{b}")) {
            Ok(o) => o,
            Err(_) => return Ok(None),
        },
        Ref::Tag(t) => repo
            .revparse_single(&format!("refs/tags/{t}"))
            .map_err(|_| format!("tag {t:?} not found"))?,
        Ref::Commit(c) => repo
            .revparse_single(c)
            .map_err(|_| format!("commit {c:?} not found"))?,
    };
    let commit = object
        .peel_to_commit()
        .map_err(|e| e.message().to_string())?;
    let tree = commit.tree().map_err(|e| e.message().to_string())?;
    let mut files = Files::new();
    let mut failure = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) && entry.filemode() != 0o120000 {
            match repo.find_blob(entry.id()) {
                Ok(blob) => {
                    files.insert(
                        format!("{root}{}", entry.name().unwrap_or_default()),
                        blob.content().to_vec(),
                    );
                }
                Err(e) => {
                    failure = Some(e.message().to_string());
                    return git2::TreeWalkResult::Abort;
                }
            }
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(|e| e.message().to_string())?;
    match failure {
        Some(f) => Err(f),
        None => Ok(Some((files, commit.id().to_string()))),
    }
}

/// Writes `files` under `dir`.
pub fn write_files(dir: &Path, files: &Files) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for (path, bytes) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// The files under `dir` now (without `.git`), as a commit of the work tree would hold them.
pub fn read_files(dir: &Path) -> Result<Files, String> {
    fn walk(root: &Path, dir: &Path, files: &mut Files) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if entry.file_name() == ".git" || kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                walk(root, &path, files)?;
            } else {
                let rel = path
                    .strip_prefix(root)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                files.insert(rel, std::fs::read(&path)?);
            }
        }
        Ok(())
    }
    let mut files = Files::new();
    if dir.exists() {
        walk(dir, dir, &mut files).map_err(|e| e.to_string())?;
    }
    Ok(files)
}

/// One changed file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileDiff {
    pub path: String,
    /// `modified`, `added` or `deleted`.
    pub action: &'static str,
    /// The unified diff; `None` for a binary file.
    pub diff: Option<String>,
}

/// Lines of context around each change.
pub const CONTEXT: usize = 3;
/// Past this many characters a file's diff is cut at a line end, with a note.
pub const MAX_DIFF: usize = 20_000;

fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// The changes from `before` to `after`, file by file, in path order.
pub fn diff(before: &Files, after: &Files) -> Vec<FileDiff> {
    let mut paths: Vec<&String> = before.keys().chain(after.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for path in paths {
        let (old, new) = (before.get(path), after.get(path));
        let action = match (old, new) {
            (Some(o), Some(n)) if o == n => continue,
            (Some(_), Some(_)) => "modified",
            (None, Some(_)) => "added",
            (Some(_), None) => "deleted",
            (None, None) => continue,
        };
        let empty: &[u8] = &[];
        let (o, n) = (
            old.map_or(empty, Vec::as_slice),
            new.map_or(empty, Vec::as_slice),
        );
        let diff = match (text(o), text(n)) {
            (Some(o), Some(n)) => Some(unified(path, o, n, action)),
            _ => None,
        };
        out.push(FileDiff {
            path: path.clone(),
            action,
            diff,
        });
    }
    out
}

fn unified(path: &str, old: &str, new: &str, action: &str) -> String {
    let diff = similar::TextDiff::from_lines(old, new);
    let from = if action == "added" {
        "/dev/null".to_string()
    } else {
        format!("a/{path}")
    };
    let to = if action == "deleted" {
        "/dev/null".to_string()
    } else {
        format!("b/{path}")
    };
    let text = diff
        .unified_diff()
        .context_radius(CONTEXT)
        .header(&from, &to)
        .to_string();
    truncate(text)
}

fn boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

fn truncate(text: String) -> String {
    if text.len() <= MAX_DIFF {
        return text;
    }
    let mut cut = text[..boundary(&text, MAX_DIFF)]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    if cut == 0 {
        cut = boundary(&text, MAX_DIFF);
    }
    let left = text[cut..].lines().count();
    format!(
        "{}... diff truncated: {left} more lines (diffs are cut past {MAX_DIFF} characters)\n",
        &text[..cut]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn diffs_are_unified_with_context_file_by_file() {
        let before = files(&[("a.yaml", "1\n2\n3\n4\n5\n6\n7\n8\n"), ("gone.txt", "x\n")]);
        let mut after = files(&[
            ("a.yaml", "1\n2\n3\n4\nfive\n6\n7\n8\n"),
            ("new.txt", "y\n"),
        ]);
        after.insert("bin".into(), vec![0, 1, 2]);
        let d = diff(&before, &after);
        assert_eq!(
            d.iter()
                .map(|f| (f.path.as_str(), f.action))
                .collect::<Vec<_>>(),
            vec![
                ("a.yaml", "modified"),
                ("bin", "added"),
                ("gone.txt", "deleted"),
                ("new.txt", "added")
            ]
        );
        assert_eq!(
            d[0].diff.as_deref().unwrap(),
            "--- a/a.yaml\n+++ b/a.yaml\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
        assert_eq!(d[1].diff, None, "binary files are listed without a diff");
        assert_eq!(
            d[3].diff.as_deref().unwrap(),
            "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+y\n"
        );
    }

    #[test]
    fn long_diffs_are_cut_with_a_note() {
        let old = "a\n".repeat(20_000);
        let new = "b\n".repeat(20_000);
        let d = unified("f", &old, &new, "modified");
        assert!(d.len() < MAX_DIFF + 200);
        assert!(
            d.ends_with("(diffs are cut past 20000 characters)\n"),
            "{}",
            &d[d.len() - 200..]
        );
        assert!(d.contains("... diff truncated: "));
    }
}
