//! Semantic versions and version constraints as Kargo reads them (the Masterminds `semver/v3`
//! rules): a `v` prefix, partial versions, `x` wildcards, hyphen ranges and prerelease gating;
//! versions parsed strictly or leniently, as a subscription's `strictSemvers` says.

use std::cmp::Ordering;

use semver::{Comparator, Op, Version, VersionReq};

/// Translates a Masterminds constraint into one `semver::VersionReq` text per `||`
/// alternative, checking each with the `semver` crate: what [`Constraint::parse`] reads a
/// constraint as.
///
/// Masterminds forms handled: `||` alternatives; comparators joined by commas or spaces;
/// operators `=`, `!=`, `>`, `<`, `>=`, `=>`, `<=`, `=<`, `~`, `~>`, `^` or none (an operator
/// may be separated from its version by spaces); a `v` prefix; `x`, `X` and `*` wildcards;
/// hyphen ranges `1.2 - 1.4.5`. `!=` cannot be expressed in the `semver` crate, so its
/// version is checked on its own and the comparator left out (see [`Constraint`], which
/// keeps it).
#[cfg(test)]
pub(crate) fn masterminds_to_semver(constraint: &str) -> Result<Vec<String>, String> {
    Ok(groups(constraint)?.into_iter().map(|g| g.text).collect())
}

/// One `||` alternative after translation, parsed by the `semver` crate: the requirement and
/// the comparators of the versions excluded with `!=`.
struct Group {
    /// The requirement as translated, before parsing.
    #[cfg(test)]
    text: String,
    req: VersionReq,
    excluded: Vec<Comparator>,
}

fn groups(constraint: &str) -> Result<Vec<Group>, String> {
    if constraint.trim().is_empty() {
        return Err("is empty".into());
    }
    constraint
        .split("||")
        .map(|group| translate_group(group.trim()))
        .collect()
}

/// One comparator before translation: its operator as written and its version.
struct Written<'a> {
    op: &'a str,
    version: &'a str,
}

fn is_operator_char(c: char) -> bool {
    matches!(c, '<' | '>' | '=' | '!' | '~' | '^')
}

fn translate_group(group: &str) -> Result<Group, String> {
    if group.is_empty() {
        return Err("has an empty alternative around `||`".into());
    }
    let spaced = group.replace(',', " ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut comparators: Vec<Written<'_>> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        if token == "-" {
            // A hyphen range: the previous bare version is the lower bound, the next the upper.
            let lower = match comparators.last_mut() {
                Some(c) if c.op.is_empty() => c,
                _ => return Err("has a `-` range without a version before it".into()),
            };
            lower.op = ">=";
            let upper = tokens
                .get(i + 1)
                .filter(|t| !t.starts_with(is_operator_char))
                .ok_or("has a `-` range without a version after it")?;
            comparators.push(Written {
                op: "<=",
                version: upper,
            });
            i += 2;
            continue;
        }
        let op_len = token.len() - token.trim_start_matches(is_operator_char).len();
        let (op, version) = token.split_at(op_len);
        if version.is_empty() {
            let next = tokens
                .get(i + 1)
                .filter(|t| !t.starts_with(is_operator_char) && **t != "-")
                .ok_or_else(|| format!("has the operator `{op}` without a version"))?;
            comparators.push(Written { op, version: next });
            i += 2;
        } else {
            comparators.push(Written { op, version });
            i += 1;
        }
    }
    let mut translated = Vec::new();
    let mut excluded = Vec::new();
    for c in &comparators {
        match translate_comparator(c)? {
            Translated::Requirement(text) => translated.push(text),
            Translated::Excluded(comparators) => excluded.extend(comparators),
            Translated::Any => {}
        }
    }
    let text = if translated.is_empty() {
        "*".to_string()
    } else {
        translated.join(", ")
    };
    let req = VersionReq::parse(&text).map_err(|e| format!("is not a valid version range: {e}"))?;
    Ok(Group {
        #[cfg(test)]
        text,
        req,
        excluded,
    })
}

enum Translated {
    Requirement(String),
    /// A `!=` comparator, as the comparators of the `=<version>` requirement it excludes.
    Excluded(Vec<Comparator>),
    /// Matches every version (`*`, `x`).
    Any,
}

/// The comparator in the `semver` crate's syntax.
fn translate_comparator(c: &Written<'_>) -> Result<Translated, String> {
    let op = match c.op {
        "" | "=" => "=",
        ">" | "<" | ">=" | "<=" | "~" | "^" => c.op,
        "=>" => ">=",
        "=<" => "<=",
        "~>" => "~",
        "!=" => "!=",
        other => return Err(format!("has the unknown operator `{other}`")),
    };
    let version = c
        .version
        .strip_prefix(['v', 'V'])
        .filter(|v| v.starts_with(|ch: char| ch.is_ascii_digit() || is_wildcard(ch)))
        .unwrap_or(c.version);
    if version.len() == 1 && version.starts_with(is_wildcard) {
        return Ok(Translated::Any);
    }
    if op == "!=" {
        let excluded = VersionReq::parse(&format!("={version}"))
            .map_err(|e| format!("has an invalid version {:?} after `!=`: {e}", c.version))?;
        return Ok(Translated::Excluded(excluded.comparators));
    }
    Ok(Translated::Requirement(format!("{op}{version}")))
}

fn is_wildcard(c: char) -> bool {
    matches!(c, 'x' | 'X' | '*')
}

/// A parsed version constraint that checks versions the way Kargo does.
///
/// ```
/// use terraform_provider_kargo::kargo::semver::{Constraint, parse_strict_version};
/// let c = Constraint::parse("^1.2").unwrap();
/// assert!(c.matches(&parse_strict_version("v1.9.0").unwrap()));
/// assert!(!c.matches(&parse_strict_version("2.0.0").unwrap()));
/// assert!(!c.matches(&parse_strict_version("1.9.1-rc.1").unwrap()), "no prerelease asked for");
/// ```
#[derive(Clone, Debug)]
pub struct Constraint {
    text: String,
    alternatives: Vec<Alternative>,
}

#[derive(Clone, Debug)]
struct Alternative {
    comparators: Vec<Comparator>,
    excluded: Vec<Comparator>,
    /// Prereleases only match when some comparator of the alternative names one.
    allows_prerelease: bool,
}

impl Constraint {
    /// Parses a constraint in Kargo's syntax; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let mut alternatives = Vec::new();
        for Group { req, excluded, .. } in groups(text)? {
            let allows_prerelease = req
                .comparators
                .iter()
                .chain(&excluded)
                .any(|c| !c.pre.is_empty());
            alternatives.push(Alternative {
                comparators: req.comparators,
                excluded,
                allows_prerelease,
            });
        }
        Ok(Constraint {
            text: text.trim().to_string(),
            alternatives,
        })
    }

    /// The constraint as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.alternatives.iter().any(|a| {
            (v.pre.is_empty() || a.allows_prerelease)
                && a.comparators.iter().all(|c| comparator_matches(c, v))
                && a.excluded.iter().all(|c| !comparator_matches(c, v))
        })
    }
}

/// The version a comparator names, missing parts as zero.
fn floor(c: &Comparator) -> Version {
    let mut v = Version::new(c.major, c.minor.unwrap_or(0), c.patch.unwrap_or(0));
    v.pre = c.pre.clone();
    v
}

fn precedence(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

/// One comparator, with the partial-version ("dirty") rules of Masterminds; prerelease
/// gating is done by the caller for the whole alternative.
fn comparator_matches(c: &Comparator, v: &Version) -> bool {
    let con = floor(c);
    let minor_dirty = c.minor.is_none();
    let patch_dirty = c.minor.is_some() && c.patch.is_none();
    let dirty = minor_dirty || patch_dirty;
    let tilde = || {
        if precedence(v, &con) == Ordering::Less {
            return false;
        }
        if con.major == 0 && con.minor == 0 && con.patch == 0 && !dirty {
            return true;
        }
        v.major == con.major && (minor_dirty || v.minor == con.minor)
    };
    match c.op {
        Op::Exact | Op::Wildcard if dirty => tilde(),
        Op::Exact | Op::Wildcard => precedence(v, &con) == Ordering::Equal,
        Op::Greater if !dirty => precedence(v, &con) == Ordering::Greater,
        Op::Greater => match v.major.cmp(&con.major) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => !minor_dirty && v.minor > con.minor,
        },
        Op::GreaterEq => precedence(v, &con) != Ordering::Less,
        Op::Less => precedence(v, &con) == Ordering::Less,
        Op::LessEq if !dirty => precedence(v, &con) != Ordering::Greater,
        Op::LessEq => {
            v.major < con.major || (v.major == con.major && (minor_dirty || v.minor <= con.minor))
        }
        Op::Tilde => tilde(),
        Op::Caret => {
            if precedence(v, &con) == Ordering::Less {
                return false;
            }
            if con.major > 0 || minor_dirty {
                return v.major == con.major;
            }
            if v.major > 0 {
                return false;
            }
            if con.minor > 0 || patch_dirty {
                return v.minor == con.minor;
            }
            v.minor == 0 && v.patch == con.patch
        }
        // Operators added to the `semver` crate later: compare as equality.
        _ => precedence(v, &con) == Ordering::Equal,
    }
}

/// Parses a tag or version the way Kargo's `semver.Parse(text, strict)` does. `None` for
/// anything that is not a version there (`latest`, a commit SHA, `main-abc123`).
///
/// Both forms take an optional lowercase `v` prefix (Masterminds only knows that one) and a
/// prerelease and build suffix. Strict parsing (a subscription's `strictSemvers`, Kargo's
/// default) then wants a complete `MAJOR.MINOR.PATCH`, as Masterminds' `StrictNewVersion`;
/// lenient parsing (`strictSemvers: false`, as `NewVersion`) also takes `1.2` and `v1`, with
/// the missing parts as zero.
pub fn parse_version(text: &str, strict: bool) -> Option<Version> {
    if strict {
        parse_strict_version(text)
    } else {
        parse_lenient_version(text)
    }
}

/// A complete semantic version, `v` prefix allowed: `1.2.3`, `v1.2.3-rc.1+build.5`.
pub fn parse_strict_version(text: &str) -> Option<Version> {
    Version::parse(text.strip_prefix('v').unwrap_or(text)).ok()
}

/// A semantic version that may lack its minor or patch part (`v1.2` is 1.2.0).
pub fn parse_lenient_version(text: &str) -> Option<Version> {
    if let Some(v) = parse_strict_version(text) {
        return Some(v);
    }
    let s = text.strip_prefix('v').unwrap_or(text);
    // Partial versions: fill in the missing parts before any prerelease or build suffix.
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 2
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let filled = match parts.len() {
        1 => format!("{}.0.0{rest}", parts[0]),
        _ => format!("{}.{}.0{rest}", parts[0], parts[1]),
    };
    Version::parse(&filled).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse_lenient_version(s).unwrap_or_else(|| panic!("{s} is a version"))
    }

    fn check(constraint: &str, yes: &[&str], no: &[&str]) {
        let c = Constraint::parse(constraint).unwrap();
        for y in yes {
            assert!(c.matches(&v(y)), "{constraint} should match {y}");
        }
        for n in no {
            assert!(!c.matches(&v(n)), "{constraint} should not match {n}");
        }
    }

    #[test]
    fn lenient_versions_accept_v_prefixes_and_partial_forms() {
        assert_eq!(v("v1.2.3"), Version::new(1, 2, 3));
        assert_eq!(v("1.2"), Version::new(1, 2, 0));
        assert_eq!(v("v1"), Version::new(1, 0, 0));
        assert_eq!(v("1.2-rc.1").pre.as_str(), "rc.1");
        assert_eq!(v("v1.2+build.7").build.as_str(), "build.7");
        // Masterminds knows only the lowercase prefix.
        for bad in [
            "latest",
            "",
            "1.2.3.4",
            "sha-abc",
            "v",
            "1..2",
            "abc123",
            "V2",
            "main-abc123",
        ] {
            assert_eq!(parse_lenient_version(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strict_versions_need_all_three_parts() {
        for good in ["1.2.3", "v1.2.3", "v1.2.3-rc.1", "1.2.3+build.7", "0.0.0"] {
            assert!(parse_strict_version(good).is_some(), "{good:?}");
        }
        assert_eq!(parse_strict_version("v2.0.1"), Some(Version::new(2, 0, 1)));
        for bad in [
            "1.2",
            "v1",
            "1.2-rc.1",
            "latest",
            "main-abc123",
            "V1.2.3",
            "01.2.3",
            "1.2.3.4",
        ] {
            assert_eq!(parse_strict_version(bad), None, "{bad:?}");
        }
        assert_eq!(parse_version("1.2", true), None);
        assert_eq!(parse_version("1.2", false), Some(Version::new(1, 2, 0)));
    }

    /// The tags a constraint keeps, highest first, as a selector would order them.
    fn select(constraint: &str, strict: bool, tags: &[&'static str]) -> Vec<&'static str> {
        let c = Constraint::parse(constraint).unwrap();
        let mut kept: Vec<(Version, &'static str)> = tags
            .iter()
            .filter_map(|t| parse_version(t, strict).map(|v| (v, *t)))
            .filter(|(v, _)| c.matches(v))
            .collect();
        kept.sort_by(|a, b| b.0.cmp_precedence(&a.0));
        kept.into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn strictness_decides_which_tags_count() {
        let tags = [
            "1.2",
            "v1",
            "1.1.0",
            "v1.3.0-rc.1",
            "1.0.5",
            "latest",
            "main-abc123",
        ];
        assert_eq!(select(">=1.0", true, &tags), ["1.1.0", "1.0.5"]);
        assert_eq!(
            select(">=1.0", false, &tags),
            ["1.2", "1.1.0", "1.0.5", "v1"]
        );
        assert_eq!(
            select(">=1.0.0-0", true, &tags),
            ["v1.3.0-rc.1", "1.1.0", "1.0.5"],
            "a constraint naming a prerelease admits them"
        );
        assert_eq!(
            select(">=1.0.0-0", false, &tags),
            ["v1.3.0-rc.1", "1.2", "1.1.0", "1.0.5", "v1"]
        );
        assert_eq!(
            select("*", false, &["latest", "main-abc123"]),
            [] as [&str; 0]
        );
    }

    #[test]
    fn caret_tilde_and_wildcards_follow_kargo() {
        check("^1.2", &["1.2.0", "1.9.9", "v1.3.0"], &["1.1.9", "2.0.0"]);
        check("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "1.0.0"]);
        check("^0.0.3", &["0.0.3"], &["0.0.4", "0.1.0"]);
        check("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]);
        check("~1", &["1.0.0", "1.9.0"], &["2.0.0"]);
        check("1.x", &["1.0.0", "1.5.2"], &["2.0.0", "0.9.0"]);
        check("1.2", &["1.2.0", "1.2.7"], &["1.3.0"]);
        check("=1.2.3", &["1.2.3", "v1.2.3"], &["1.2.4"]);
        check("*", &["0.0.1", "9.9.9"], &[]);
    }

    #[test]
    fn ranges_and_alternatives() {
        check(">=1.0.0 <2.0.0", &["1.0.0", "1.99.0"], &["0.9.0", "2.0.0"]);
        check(">= 1.0, < 2", &["1.5.0"], &["2.0.0"]);
        check(">1.2", &["1.3.0", "2.0.0"], &["1.2.9"]);
        check("<=1.2", &["1.2.9", "0.1.0"], &["1.3.0"]);
        check("1.2 - 1.4.5", &["1.2.0", "1.4.5"], &["1.4.6"]);
        check("^1.0 || ^3.0", &["1.1.0", "3.2.0"], &["2.0.0"]);
        check(">=1.0, != 1.5.0", &["1.4.0", "1.6.0"], &["1.5.0"]);
    }

    #[test]
    fn prereleases_match_only_when_the_constraint_names_one() {
        check("^1.0", &["1.2.0"], &["1.2.0-rc.1", "2.0.0-alpha"]);
        check(">=1.0.0-0", &["1.2.0-rc.1", "1.0.0"], &["0.9.0"]);
        // The whole alternative opts in, as in Masterminds (unlike Cargo's same-patch rule).
        // …and then compares in plain semver order: 2.0.0-rc.1 comes before 2.0.0.
        check(
            ">=1.0.0-0 <2.0.0",
            &["1.5.0-beta.2", "2.0.0-rc.1"],
            &["2.0.0"],
        );
        check("^1.0 || >=3.0.0-rc.1", &["3.0.0-rc.2"], &["1.5.0-rc.1"]);
    }

    #[test]
    fn translations_keep_the_semver_text() {
        assert_eq!(
            masterminds_to_semver(">= 1.2, < 3.0.0 || >= 4.2.3"),
            Ok(vec![">=1.2, <3.0.0".to_string(), ">=4.2.3".to_string()])
        );
        assert_eq!(
            masterminds_to_semver(">=1.0, != 1.5.0"),
            Ok(vec![">=1.0".to_string()])
        );
        assert!(Constraint::parse("^1.2.3.4").is_err());
        assert!(Constraint::parse("").is_err());
        assert_eq!(Constraint::parse(" ^1.2 ").unwrap().as_str(), "^1.2");
    }
}
