//! Compares freshly generated pages with the committed `docs/` tree and writes the tree;
//! differences come back as a listing with a line diff per changed page.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::site::Pages;

/// How one file under `docs/` differs from what the sources generate.
#[derive(Debug, PartialEq)]
pub enum Difference {
    /// Generated but not committed.
    Missing(String),
    /// Committed but generated from nothing (a removed type or guide).
    Stale(String),
    /// Committed with other content; carries a line diff (committed → generated).
    Changed(String, String),
}

impl Difference {
    /// One entry of the listing `check` prints.
    pub fn describe(&self) -> String {
        match self {
            Difference::Missing(p) => format!("docs/{p}: missing (generated, not committed)"),
            Difference::Stale(p) => format!("docs/{p}: not generated from any source (stale)"),
            Difference::Changed(p, diff) => format!("docs/{p}: differs\n{diff}"),
        }
    }
}

/// Every file under `dir`, as `/`-separated paths relative to it, sorted.
fn files_under(dir: &Path) -> std::io::Result<Vec<String>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(base, &path, out)?;
            } else if let Ok(rel) = path.strip_prefix(base) {
                let parts: Vec<_> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    match walk(dir, dir, &mut out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out)
}

/// Whether the committed file `path` is generated from nothing: not one of `pages`, nor
/// `pending` (a page whose sources have problems to fix first).
fn is_stale(path: &str, pages: &Pages, pending: &BTreeSet<String>) -> bool {
    !pages.contains_key(path) && !pending.contains(path)
}

/// The differences between `pages` and the files in `docs_dir`; empty when they match.
/// Files in `pending` (pages whose sources have problems) are left out of the comparison.
pub fn compare(
    docs_dir: &Path,
    pages: &Pages,
    pending: &BTreeSet<String>,
) -> std::io::Result<Vec<Difference>> {
    let committed = files_under(docs_dir)?;
    let mut out = Vec::new();
    for (path, content) in pages {
        match std::fs::read(docs_dir.join(path)) {
            Ok(bytes) if bytes == content.as_bytes() => {}
            Ok(bytes) => out.push(Difference::Changed(
                path.clone(),
                line_diff(&String::from_utf8_lossy(&bytes), content),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(Difference::Missing(path.clone()))
            }
            Err(e) => return Err(e),
        }
    }
    for path in committed {
        if is_stale(&path, pages, pending) {
            out.push(Difference::Stale(path));
        }
    }
    Ok(out)
}

/// Replaces the contents of `docs_dir` with `pages`: writes changed files only and removes
/// files no source generates (keeping those in `pending`, whose sources have problems to
/// fix first), so the directory is exactly the generated site.
pub fn write(
    docs_dir: &Path,
    pages: &Pages,
    pending: &BTreeSet<String>,
) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (path, content) in pages {
        let target = docs_dir.join(path);
        if std::fs::read(&target).is_ok_and(|old| old == content.as_bytes()) {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, content)?;
        written.push(target);
    }
    for path in files_under(docs_dir)? {
        if is_stale(&path, pages, pending) {
            let target = docs_dir.join(&path);
            std::fs::remove_file(&target)?;
            // An emptied directory goes too; one with other files stays (remove_dir fails).
            if let Some(parent) = target.parent()
                && parent != docs_dir
            {
                let _ = std::fs::remove_dir(parent);
            }
            written.push(target);
        }
    }
    Ok(written)
}

/// Most diff lines shown per file: enough to see what changed without flooding CI logs.
const MAX_DIFF_LINES: usize = 60;

/// A line diff of `old` → `new`: changed lines prefixed `-`/`+`, each run of changes headed
/// by the line numbers it starts at.
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Common prefix and suffix first: typical doc changes touch a few lines.
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let ops = if a_mid.len().saturating_mul(b_mid.len()) <= 4_000_000 {
        lcs_ops(a_mid, b_mid)
    } else {
        // Too large to align: show it as one replaced block.
        a_mid
            .iter()
            .map(|_| Op::Delete)
            .chain(b_mid.iter().map(|_| Op::Insert))
            .collect()
    };
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let mut in_run = false;
    for op in ops {
        match op {
            Op::Keep => {
                i += 1;
                j += 1;
                in_run = false;
            }
            Op::Delete | Op::Insert => {
                if !in_run {
                    out.push(format!(
                        "  @@ committed line {}, generated line {} @@",
                        prefix + i + 1,
                        prefix + j + 1
                    ));
                    in_run = true;
                }
                if op == Op::Delete {
                    out.push(format!("  -{}", a_mid[i]));
                    i += 1;
                } else {
                    out.push(format!("  +{}", b_mid[j]));
                    j += 1;
                }
            }
        }
    }
    if out.is_empty() {
        // Same lines: the difference is in line endings or the final newline.
        out.push("  (only line endings or the final newline differ)".into());
    }
    if out.len() > MAX_DIFF_LINES {
        let more = out.len() - MAX_DIFF_LINES;
        out.truncate(MAX_DIFF_LINES);
        out.push(format!("  … {more} more diff lines"));
    }
    out.join("\n")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Keep,
    Delete,
    Insert,
}

/// Edit script from a longest-common-subsequence table; deletions before insertions.
fn lcs_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    let mut table = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * width + j] = if a[i] == b[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Keep);
            i += 1;
            j += 1;
        } else if j == m || (i < n && table[(i + 1) * width + j] >= table[i * width + j + 1]) {
            ops.push(Op::Delete);
            i += 1;
        } else {
            ops.push(Op::Insert);
            j += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(entries: &[(&str, &str)]) -> Pages {
        entries
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn diff_shows_changed_lines_with_their_position() {
        let diff = line_diff("a\nb\nc\nd\n", "a\nB\nc\nd\ne\n");
        assert_eq!(
            diff,
            "  @@ committed line 2, generated line 2 @@\n  -b\n  +B\n  @@ committed line 5, generated line 5 @@\n  +e"
        );
        assert_eq!(
            line_diff("a\n", "a"),
            "  (only line endings or the final newline differ)"
        );
    }

    #[test]
    fn long_diffs_are_cut() {
        let old: String = (0..200).map(|i| format!("{i}\n")).collect();
        let diff = line_diff(&old, "");
        assert_eq!(diff.lines().count(), MAX_DIFF_LINES + 1);
        assert!(diff.ends_with("… 141 more diff lines"), "{diff}");
    }

    #[test]
    fn write_then_compare_is_clean_and_every_kind_of_difference_is_found() {
        let dir = tempfile::tempdir().expect("temp dir");
        let docs = dir.path().join("docs");
        let site = pages(&[("index.md", "# x\n"), ("resources/a.md", "a\n")]);
        std::fs::create_dir_all(docs.join("resources")).expect("mkdir");
        std::fs::write(docs.join("resources/old.md"), "old\n").expect("write");
        std::fs::write(docs.join("resources/kept.md"), "kept\n").expect("write");
        let pending: BTreeSet<String> = ["resources/kept.md".to_string()].into();
        write(&docs, &site, &pending).expect("write");
        assert!(
            !docs.join("resources/old.md").exists(),
            "stale files are removed"
        );
        assert!(
            docs.join("resources/kept.md").exists(),
            "pages whose sources have problems are kept"
        );
        assert_eq!(compare(&docs, &site, &pending).expect("compare"), vec![]);
        // Writing again changes nothing.
        assert!(write(&docs, &site, &pending).expect("write").is_empty());
        std::fs::remove_file(docs.join("resources/kept.md")).expect("remove");

        let none = BTreeSet::new();
        let changed = pages(&[("index.md", "# y\n"), ("guides/g.md", "g\n")]);
        let diffs = compare(&docs, &changed, &none).expect("compare");
        assert_eq!(
            diffs,
            vec![
                Difference::Missing("guides/g.md".into()),
                Difference::Changed(
                    "index.md".into(),
                    "  @@ committed line 1, generated line 1 @@\n  -# x\n  +# y".into()
                ),
                Difference::Stale("resources/a.md".into()),
            ]
        );
        assert_eq!(
            diffs[2].describe(),
            "docs/resources/a.md: not generated from any source (stale)"
        );
        write(&docs, &changed, &none).expect("write");
        assert!(
            !docs.join("resources").exists(),
            "emptied directories are removed"
        );
        assert_eq!(compare(&docs, &changed, &none).expect("compare"), vec![]);
    }

    #[test]
    fn a_missing_docs_directory_means_everything_is_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let diffs = compare(
            &dir.path().join("docs"),
            &pages(&[("index.md", "x\n")]),
            &BTreeSet::new(),
        )
        .expect("compare");
        assert_eq!(diffs, vec![Difference::Missing("index.md".into())]);
    }
}
