//! Kargo's promotion steps, knowing nothing of Terraform: the built-in steps' config schemas
//! (embedded data), expressions, and a model of promotion templates with the checks Kargo
//! would otherwise only make when a promotion runs.

pub mod expressions;
pub mod schema;
pub mod template;

/// The candidate closest to `name` when it is close enough to be a likely typo: the same
/// word in another case, or a few letters away.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = if candidate.to_lowercase() == lower {
            0
        } else {
            edit_distance(&lower, &candidate.to_lowercase())
        };
        let limit = (name.chars().count().max(candidate.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Edits (insertions, deletions, substitutions, swaps of neighbours) from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=b.len() {
        d[0][j] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_case_and_small_typos_only() {
        let keys = ["repoURL", "checkout", "branch", "path"];
        assert_eq!(suggest("repoUrl", keys), Some("repoURL"));
        assert_eq!(suggest("brnch", keys), Some("branch"));
        assert_eq!(suggest("checkuot", keys), Some("checkout"));
        assert_eq!(suggest("zzz", keys), None);
        assert_eq!(
            suggest("path", keys),
            None,
            "an exact match needs no suggestion"
        );
        assert_eq!(
            suggest("dri", ["dir", "repo"]),
            Some("dir"),
            "a swap is one edit"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
