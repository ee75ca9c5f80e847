//! Stage selection for ProjectConfig promotion policies: name patterns (exact, `regex:`,
//! `regexp:`, `glob:`) and Kubernetes label selectors (`matchLabels`, `matchExpressions`).

use serde_json::Value;

use super::util::{arr_at, str_at};

/// A compiled name pattern.
#[derive(Debug)]
pub enum NamePattern {
    Exact(String),
    Regex(regex::Regex),
    Glob(String),
}

impl NamePattern {
    /// Parses a selector name; `Err` carries a message for the webhook's field error.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if let Some(g) = pattern.strip_prefix("glob:") {
            validate_glob(g)?;
            return Ok(Self::Glob(g.to_string()));
        }
        let re = pattern
            .strip_prefix("regex:")
            .or_else(|| pattern.strip_prefix("regexp:"));
        if let Some(re) = re {
            return regex::Regex::new(re)
                .map(Self::Regex)
                .map_err(|e| format!("error parsing regexp: {e}"));
        }
        Ok(Self::Exact(pattern.to_string()))
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(p) => p == name,
            Self::Regex(r) => r.is_match(name),
            Self::Glob(g) => glob_match(g.as_bytes(), name.as_bytes()),
        }
    }
}

fn validate_glob(g: &str) -> Result<(), String> {
    let mut depth = 0i32;
    let mut in_class = false;
    for c in g.chars() {
        match c {
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => depth += 1,
            '}' if !in_class => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err("syntax error in pattern".to_string());
        }
    }
    if in_class || depth != 0 {
        Err("syntax error in pattern".to_string())
    } else {
        Ok(())
    }
}

/// Glob matching in the spirit of doublestar: `*` (not across `/`), `**`, `?`, `[...]`
/// classes with ranges and `!`/`^` negation, `{a,b}` alternatives.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    if let Some(open) = p.iter().position(|&b| b == b'{')
        && let Some(close) = p[open..].iter().position(|&b| b == b'}').map(|i| i + open)
    {
        let (head, body, tail) = (&p[..open], &p[open + 1..close], &p[close + 1..]);
        return body.split(|&b| b == b',').any(|alt| {
            let mut candidate = head.to_vec();
            candidate.extend_from_slice(alt);
            candidate.extend_from_slice(tail);
            glob_match(&candidate, s)
        });
    }
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => {
            let double = p.get(1) == Some(&b'*');
            let rest = if double { &p[2..] } else { &p[1..] };
            for i in 0..=s.len() {
                if glob_match(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' && !double {
                    return false;
                }
            }
            false
        }
        Some(b'?') => !s.is_empty() && s[0] != b'/' && glob_match(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else { return false };
            let Some(end) = p.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return false;
            };
            let class = &p[1..end];
            let (negate, class) = match class.first() {
                Some(b'!') | Some(b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut found = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    found |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    found |= class[i] == c;
                    i += 1;
                }
            }
            found != negate && glob_match(&p[end + 1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && glob_match(&p[2..], &s[1..]),
        Some(&c) => !s.is_empty() && s[0] == c && glob_match(&p[1..], &s[1..]),
    }
}

/// Whether a Kubernetes label selector (`matchLabels` + `matchExpressions`) selects `labels`.
/// An unknown operator selects nothing, as a selector that fails to parse would.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    for expr in arr_at(selector, "matchExpressions") {
        let key = str_at(expr, "key");
        let values: Vec<&str> = arr_at(expr, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let ok = match str_at(expr, "operator") {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_patterns() {
        assert!(NamePattern::parse("dev").unwrap().matches("dev"));
        assert!(!NamePattern::parse("dev").unwrap().matches("dev2"));
        assert!(
            NamePattern::parse("regex:^test-")
                .unwrap()
                .matches("test-1")
        );
        assert!(
            NamePattern::parse("regexp:prod")
                .unwrap()
                .matches("us-prod-1")
        );
        assert!(
            !NamePattern::parse("regex:^prod$")
                .unwrap()
                .matches("us-prod")
        );
        assert!(NamePattern::parse("glob:uat-*").unwrap().matches("uat-eu"));
        assert!(
            !NamePattern::parse("glob:uat-*")
                .unwrap()
                .matches("prod-uat")
        );
        assert!(
            NamePattern::parse("glob:{dev,qa}-?")
                .unwrap()
                .matches("qa-1")
        );
        assert!(
            NamePattern::parse("glob:stage-[0-9]")
                .unwrap()
                .matches("stage-7")
        );
        assert!(
            !NamePattern::parse("glob:stage-[!0-9]")
                .unwrap()
                .matches("stage-7")
        );
        assert!(NamePattern::parse("regex:(").is_err());
        assert!(NamePattern::parse("glob:[abc").is_err());
    }

    #[test]
    fn label_selectors() {
        let labels = json!({"tier": "test", "region": "eu"});
        assert!(selector_matches(
            &json!({"matchLabels": {"tier": "test"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"tier": "prod"}}),
            &labels
        ));
        let sel = json!({"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu", "us"]}]});
        assert!(selector_matches(&sel, &labels));
        let sel =
            json!({"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]});
        assert!(!selector_matches(&sel, &labels));
        let sel = json!({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]});
        assert!(selector_matches(&sel, &labels));
        let sel = json!({"matchExpressions": [{"key": "canary", "operator": "Exists"}]});
        assert!(!selector_matches(&sel, &labels));
    }
}
