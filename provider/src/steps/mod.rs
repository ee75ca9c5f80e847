//! Kargo's promotion steps, knowing nothing of Terraform: the built-in steps' config schemas
//! (embedded data), expressions, and a model of promotion templates with the checks Kargo
//! would otherwise only make when a promotion runs.

pub mod expressions;
pub mod preview;
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
            // Optimal string alignment: insertions, deletions, substitutions and swaps of
            // neighbours, each one edit.
            strsim::osa_distance(&lower, &candidate.to_lowercase())
        };
        let limit = (name.chars().count().max(candidate.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
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
    }
}
