//! The `x-kubernetes-validations` rules of Kargo's CRDs, each implemented in Rust.
//! CEL is not evaluated generically: a rule is recognised by its exact text.

use serde_json::Value;

type Check = fn(&Value) -> bool;

/// Every rule text found in Kargo v1.11's CRDs, with its meaning.
const RULES: &[(&str, Check)] = &[
    ("has(self.uses) && !has(self.task)", |v| {
        has(v, "uses") && !has(v, "task")
    }),
    ("(has(self.uses) ? !has(self.task) : has(self.task))", |v| {
        has(v, "uses") != has(v, "task")
    }),
    ("!has(self.task) || !has(self.continueOnError)", |v| {
        !has(v, "task") || !has(v, "continueOnError")
    }),
    ("!has(self.task) || !has(self.retry)", |v| {
        !has(v, "task") || !has(v, "retry")
    }),
    ("has(self.freight) != has(self.origin)", |v| {
        has(v, "freight") != has(v, "origin")
    }),
    (
        "has(self.stage) ? !has(self.stageSelector) : has(self.stageSelector)",
        |v| has(v, "stage") != has(v, "stageSelector"),
    ),
    (
        "self.size() == 0 || self[0] == 'Failed' || self[0] == 'Errored'",
        |v| item_is(v, 0, &["Failed", "Errored"]),
    ),
    (
        "self.size() <= 1 || self[1] == 'Failed' || self[1] == 'Errored'",
        |v| item_is(v, 1, &["Failed", "Errored"]),
    ),
    (
        "self.size() == 0 || self[0] == 'Failed' || self[0] == 'Error'",
        |v| item_is(v, 0, &["Failed", "Error"]),
    ),
    (
        "self.size() <= 1 || self[1] == 'Failed' || self[1] == 'Error'",
        |v| item_is(v, 1, &["Failed", "Error"]),
    ),
];

/// CEL's `has(self.f)`: the field is present (the API server has already dropped nulls).
fn has(v: &Value, field: &str) -> bool {
    v.get(field).is_some_and(|f| !f.is_null())
}

/// `self.size() <= i || self[i] in allowed`.
fn item_is(v: &Value, i: usize, allowed: &[&str]) -> bool {
    match v.as_array().and_then(|a| a.get(i)) {
        None => true,
        Some(item) => item.as_str().is_some_and(|s| allowed.contains(&s)),
    }
}

fn normalise(rule: &str) -> String {
    rule.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the sandbox implements this rule.
pub fn known(rule: &str) -> bool {
    let rule = normalise(rule);
    RULES.iter().any(|(text, _)| *text == rule)
}

/// Evaluates `rule` with `self` bound to `value`; `None` when the rule is not implemented.
pub fn eval(rule: &str, value: &Value) -> Option<bool> {
    let rule = normalise(rule);
    RULES
        .iter()
        .find(|(text, _)| *text == rule)
        .map(|(_, check)| check(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn step_rules_distinguish_uses_and_task() {
        let uses = json!({"uses": "git-clone"});
        let task = json!({"task": {"name": "t"}});
        let both = json!({"uses": "x", "task": {"name": "t"}});
        let rule = "(has(self.uses) ? !has(self.task) : has(self.task))";
        assert_eq!(eval(rule, &uses), Some(true));
        assert_eq!(eval(rule, &task), Some(true));
        assert_eq!(eval(rule, &both), Some(false));
        assert_eq!(eval(rule, &json!({})), Some(false));
        assert_eq!(
            eval("has(self.uses) && !has(self.task)", &task),
            Some(false)
        );
    }

    #[test]
    fn list_rules_check_positions_and_unknown_rules_are_reported() {
        let rule = "self.size() <= 1 || self[1] == 'Failed' ||   self[1] == 'Errored'";
        assert_eq!(eval(rule, &json!(["Failed"])), Some(true));
        assert_eq!(eval(rule, &json!(["Failed", "Errored"])), Some(true));
        assert_eq!(eval(rule, &json!(["Failed", "Nope"])), Some(false));
        assert_eq!(eval("self.x > 1", &json!({})), None);
        assert!(!known("self.x > 1"));
    }
}
