//! Semantic-version constraints as the Masterminds library Kargo uses reads them (`||`,
//! comma/space conjunctions, hyphen and x-ranges); versions parsed loosely or strictly.

use std::cmp::Ordering;

use semver::{BuildMetadata, Prerelease, Version};

/// A version with the original text it came from.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub version: Version,
    pub original: String,
}

/// Loose parse as Masterminds' NewVersion: optional `v`, 1–3 numeric parts, optional
/// pre-release and build metadata. Missing parts are zero.
pub fn parse_loose(s: &str) -> Option<Parsed> {
    let body = s.strip_prefix('v').unwrap_or(s);
    let (core_pre, meta) = match body.split_once('+') {
        Some((a, b)) => (a, Some(b)),
        None => (body, None),
    };
    let (core, pre) = match core_pre.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (core_pre, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut nums = [0u64; 3];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nums[i] = p.parse().ok()?;
    }
    let pre = match pre {
        Some(p) => Prerelease::new(p).ok()?,
        None => Prerelease::EMPTY,
    };
    let build = match meta {
        Some(m) => BuildMetadata::new(m).ok()?,
        None => BuildMetadata::EMPTY,
    };
    Some(Parsed {
        version: Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre,
            build,
        },
        original: s.to_string(),
    })
}

/// Kargo's `semver.Parse(s, strict)`: loose parse, and with `strict` the text (minus a
/// leading `v`) must also be a complete `X.Y.Z` semantic version.
pub fn parse_tag(s: &str, strict: bool) -> Option<Parsed> {
    let parsed = parse_loose(s)?;
    if strict && Version::parse(s.strip_prefix('v').unwrap_or(s)).is_err() {
        return None;
    }
    Some(parsed)
}

/// Masterminds compares versions ignoring build metadata.
fn cmp(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Clone, Debug)]
struct Comparator {
    op: Op,
    version: Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A parsed constraint: alternatives (`||`) of conjunctions.
#[derive(Clone, Debug)]
pub struct Constraint {
    groups: Vec<(Vec<Comparator>, bool)>,
}

const OPS: [(&str, Op); 12] = [
    ("!=", Op::NotEqual),
    (">=", Op::GreaterEqual),
    ("=>", Op::GreaterEqual),
    ("<=", Op::LessEqual),
    ("=<", Op::LessEqual),
    ("~>", Op::Tilde),
    (">", Op::Greater),
    ("<", Op::Less),
    ("~", Op::Tilde),
    ("^", Op::Caret),
    ("=", Op::TildeOrEqual),
    ("", Op::TildeOrEqual),
];

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn version_token_len(s: &str) -> usize {
    s.find(|c: char| c.is_whitespace() || c == ',')
        .unwrap_or(s.len())
}

fn parse_comparator(op: Op, token: &str) -> Result<Comparator, String> {
    let body = token.strip_prefix('v').unwrap_or(token);
    let (core_pre, meta) = match body.split_once('+') {
        Some((a, b)) => (a, Some(b)),
        None => (body, None),
    };
    let (core, pre) = match core_pre.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (core_pre, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(format!("improper constraint: {token}"));
    }
    for p in &parts {
        if p.is_empty() || !(is_x(p) || p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("improper constraint: {token}"));
        }
    }
    let part = |i: usize| parts.get(i).copied().unwrap_or("");
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("improper constraint: {token}"))
    };
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let (major, minor, patch);
    if is_x(part(0)) {
        dirty = true;
        (major, minor, patch) = (0, 0, 0);
    } else if part(1).is_empty() || is_x(part(1)) {
        dirty = true;
        minor_dirty = true;
        (major, minor, patch) = (num(part(0))?, 0, 0);
    } else if part(2).is_empty() || is_x(part(2)) {
        dirty = true;
        patch_dirty = true;
        (major, minor, patch) = (num(part(0))?, num(part(1))?, 0);
    } else {
        (major, minor, patch) = (num(part(0))?, num(part(1))?, num(part(2))?);
    }
    let pre = match pre {
        Some(p) => Prerelease::new(p).map_err(|_| format!("improper constraint: {token}"))?,
        None => Prerelease::EMPTY,
    };
    let build = match meta {
        Some(m) => BuildMetadata::new(m).map_err(|_| format!("improper constraint: {token}"))?,
        None => BuildMetadata::EMPTY,
    };
    Ok(Comparator {
        op,
        version: Version {
            major,
            minor,
            patch,
            pre,
            build,
        },
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

/// Rewrites `A - B` into `>= A, <= B` so the rest of the parser sees plain comparators.
fn rewrite_hyphen_ranges(group: &str) -> String {
    let tokens: Vec<&str> = group.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if i + 2 < tokens.len() && tokens[i + 1] == "-" {
            out.push(format!(">= {}, <= {}", tokens[i], tokens[i + 2]));
            i += 3;
        } else {
            out.push(tokens[i].to_string());
            i += 1;
        }
    }
    out.join(" ")
}

impl Constraint {
    /// Parses a constraint; the error text matches the library's ("improper constraint: …").
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut groups = Vec::new();
        for raw in s.split("||") {
            let group = rewrite_hyphen_ranges(raw);
            let mut rest = group.trim_start();
            if rest.is_empty() {
                return Err(format!("improper constraint: {raw}"));
            }
            let mut comparators = Vec::new();
            let mut first = true;
            while !rest.is_empty() {
                if !first {
                    // Comparators are separated by whitespace or a comma.
                    let trimmed = rest.trim_start();
                    let trimmed = trimmed.strip_prefix(',').unwrap_or(trimmed).trim_start();
                    if trimmed.len() == rest.len() {
                        return Err(format!("improper constraint: {raw}"));
                    }
                    rest = trimmed;
                    if rest.is_empty() {
                        return Err(format!("improper constraint: {raw}"));
                    }
                }
                first = false;
                let (op_text, op) = OPS
                    .iter()
                    .find(|(p, _)| rest.starts_with(p))
                    .copied()
                    .unwrap_or(("", Op::TildeOrEqual));
                rest = rest[op_text.len()..].trim_start();
                let len = version_token_len(rest);
                if len == 0 {
                    return Err(format!("improper constraint: {raw}"));
                }
                comparators.push(parse_comparator(op, &rest[..len])?);
                rest = &rest[len..];
                rest = rest.trim_end_matches(char::is_whitespace);
            }
            let has_pre = comparators.iter().any(|c| !c.version.pre.is_empty());
            groups.push((comparators, has_pre));
        }
        Ok(Self { groups })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|(comparators, has_pre)| comparators.iter().all(|c| c.check(v, *has_pre)))
    }
}

impl Comparator {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.version;
        match self.op {
            Op::TildeOrEqual => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    cmp(v, c) == Ordering::Equal
                }
            }
            Op::Tilde => self.tilde(v),
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor != v.minor {
                        return true;
                    }
                    if self.patch_dirty {
                        return (!v.pre.is_empty() || !c.pre.is_empty()) && v.pre != c.pre;
                    }
                }
                cmp(v, c) != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return cmp(v, c) == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                cmp(v, c) == Ordering::Greater
            }
            Op::Less => cmp(v, c) == Ordering::Less,
            Op::GreaterEqual => cmp(v, c) != Ordering::Less,
            Op::LessEqual => {
                if !self.dirty {
                    return cmp(v, c) != Ordering::Greater;
                }
                if v.major > c.major {
                    return false;
                }
                !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Caret => {
                if cmp(v, c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == c.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if cmp(v, c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        self.minor_dirty || v.minor == c.minor
    }
}

/// Kargo's webhook check: an empty constraint is fine, anything else must parse.
pub fn valid_constraint(s: &str) -> bool {
    s.is_empty() || Constraint::parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str) -> bool {
        Constraint::parse(c)
            .unwrap()
            .matches(&parse_loose(v).unwrap().version)
    }

    #[test]
    fn exact_and_comparison_operators() {
        assert!(ok("1.2.3", "1.2.3"));
        assert!(!ok("1.2.3", "1.2.4"));
        assert!(ok(">=1.2.0", "1.10.0"));
        assert!(!ok(">1.2.0", "1.2.0"));
        assert!(ok("<2", "1.99.0"));
        assert!(!ok("<2", "2.0.0"));
        assert!(ok("!=1.2.3", "1.2.4"));
        assert!(!ok("!=1.2.3", "1.2.3"));
    }

    #[test]
    fn ranges_and_alternatives() {
        assert!(ok(">=1.0.0, <2.0.0", "1.5.0"));
        assert!(ok(">=1.0.0 <2.0.0", "1.5.0"));
        assert!(!ok(">=1.0.0, <2.0.0", "2.0.0"));
        assert!(ok("1.0.0 - 1.4.0", "1.4.0"));
        assert!(!ok("1.0.0 - 1.4.0", "1.4.1"));
        assert!(ok("^1.0.0 || ^3.0.0", "3.1.0"));
        assert!(!ok("^1.0.0 || ^3.0.0", "2.1.0"));
    }

    #[test]
    fn tilde_caret_and_wildcards() {
        assert!(ok("~1.2.0", "1.2.9"));
        assert!(!ok("~1.2.0", "1.3.0"));
        assert!(ok("^1.2.0", "1.9.0"));
        assert!(!ok("^1.2.0", "2.0.0"));
        assert!(ok("^0.2.3", "0.2.9"));
        assert!(!ok("^0.2.3", "0.3.0"));
        assert!(ok("1.2.x", "1.2.7"));
        assert!(!ok("1.2.x", "1.3.0"));
        assert!(ok("1.x", "1.9.9"));
        assert!(ok("*", "7.0.0"));
        assert!(ok("1.2", "1.2.5"));
    }

    #[test]
    fn prereleases_need_a_prerelease_constraint() {
        assert!(!ok(">=1.0.0", "1.1.0-rc.1"));
        assert!(ok(">=1.0.0-0", "1.1.0-rc.1"));
    }

    #[test]
    fn invalid_constraints_are_rejected() {
        for bad in [
            "",
            "abc",
            ">=",
            "1.2.3.4",
            ">= 1.0 ||",
            "1.0.0 ,, 2.0.0",
            "~>a",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(valid_constraint(""));
        assert!(valid_constraint("^1.0"));
        assert!(!valid_constraint("not a version"));
    }

    #[test]
    fn strict_tags_need_three_parts() {
        assert!(parse_tag("v1.2.3", true).is_some());
        assert!(parse_tag("1.2", true).is_none());
        assert!(parse_tag("1.2", false).is_some());
        assert!(parse_tag("latest", false).is_none());
        assert_eq!(parse_tag("v1.2", false).unwrap().original, "v1.2");
    }
}
