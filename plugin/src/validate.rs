//! Schema-driven configuration checks (read-only and required attributes, validators), plus
//! the generic validators resources attach to attributes and objects.

use crate::diagnostics::{AttributePath, Diagnostics};
use crate::schema::{Attribute, AttributeType, Block, NestedBlock, Nesting, Validator};
use crate::value::Value;

/// Checks `config` against `block`: read-only attributes set, required attributes
/// missing, deprecated attributes used, and every validator. Unknown values are
/// skipped; they are checked again once known, at apply.
pub fn validate_config(block: &Block, config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::default();
    validate_object(
        &block.attributes,
        &block.blocks,
        &block.validators,
        config,
        &AttributePath::root(),
        &mut diags,
    );
    diags
}

fn validate_object(
    attributes: &[Attribute],
    blocks: &[NestedBlock],
    validators: &[Validator],
    object: &Value,
    path: &AttributePath,
    diags: &mut Diagnostics,
) {
    if object.is_null() || object.is_unknown() {
        return;
    }
    for attr in attributes {
        validate_attribute(
            attr,
            object.get(&attr.name),
            &path.join_attr(&attr.name),
            diags,
        );
    }
    for nb in blocks {
        let value = object.get(&nb.type_name);
        let block_path = path.join_attr(&nb.type_name);
        if let Some(message) = &nb.block.deprecation
            && is_present(value)
        {
            diags.push(
                crate::diagnostics::Diagnostic::warning("Block deprecated", message.clone())
                    .at(block_path.clone()),
            );
        }
        let b = &nb.block;
        for_each_element(
            nb.nesting,
            value,
            &block_path,
            &mut |element, element_path| {
                validate_object(
                    &b.attributes,
                    &b.blocks,
                    &b.validators,
                    element,
                    element_path,
                    diags,
                )
            },
        );
    }
    for v in validators {
        (v.check)(object, path, diags);
    }
}

/// A block is present when it is non-null and, for collections, non-empty.
fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::List(x) | Value::Set(x) | Value::Tuple(x) => !x.is_empty(),
        Value::Map(m) | Value::Object(m) if m.is_empty() => false,
        _ => true,
    }
}

/// Visits each object of a nested collection with its path.
fn for_each_element(
    nesting: Nesting,
    value: &Value,
    path: &AttributePath,
    f: &mut dyn FnMut(&Value, &AttributePath),
) {
    if value.is_null() || value.is_unknown() {
        return;
    }
    match nesting {
        Nesting::Single | Nesting::Group => f(value, path),
        // Set elements have no index in Terraform; the position still tells the user which.
        Nesting::List | Nesting::Set => {
            for (i, element) in value.elements().iter().enumerate() {
                f(element, &path.join_index(i));
            }
        }
        Nesting::Map => {
            if let Some(entries) = value.entries() {
                for (k, element) in entries {
                    f(element, &path.join_key(k));
                }
            }
        }
    }
}

fn validate_attribute(
    attr: &Attribute,
    value: &Value,
    path: &AttributePath,
    diags: &mut Diagnostics,
) {
    if attr.is_computed_only() {
        if !value.is_null() {
            diags.error_at(
                path.clone(),
                "Read-only attribute",
                format!(
                    "`{path}` is read-only: it is computed by the provider and cannot be set in \
                     configuration. Remove it from the configuration."
                ),
            );
        }
        return;
    }
    if value.is_null() {
        if attr.required {
            diags.error_at(
                path.clone(),
                "Missing required attribute",
                format!("`{path}` is required and must be set to a non-null value."),
            );
        }
        return;
    }
    if let Some(message) = &attr.deprecation {
        diags.push(
            crate::diagnostics::Diagnostic::warning("Attribute deprecated", message.clone())
                .at(path.clone()),
        );
    }
    if value.is_unknown() {
        return;
    }
    if value.is_wholly_known() {
        for v in &attr.validators {
            (v.check)(value, path, diags);
        }
    }
    if let AttributeType::Nested(object) = &attr.ty {
        for_each_element(object.nesting, value, path, &mut |element, element_path| {
            validate_object(
                &object.attributes,
                &[],
                &object.validators,
                element,
                element_path,
                diags,
            )
        });
    }
}

/// Generic validators. Attribute validators receive wholly known, non-null values;
/// object validators receive known objects whose attributes may be unknown, which
/// they treat as "maybe set" and never report on.
pub mod validators {
    use regex::Regex;

    use crate::diagnostics::{AttributePath, Diagnostics};
    use crate::schema::Validator;
    use crate::value::Value;

    fn quoted<S: AsRef<str>>(items: &[S]) -> String {
        items
            .iter()
            .map(|s| format!("{:?}", s.as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn not_a(what: &str, path: &AttributePath, diags: &mut Diagnostics) {
        diags.error_at(
            path.clone(),
            "Invalid value type",
            format!("`{path}` must be {what}."),
        );
    }

    /// The value must be one of `allowed` (an enumeration of strings).
    pub fn one_of(allowed: &[&str]) -> Validator {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let list = quoted(&allowed);
        Validator::new(
            &format!("must be one of {list}"),
            move |v, path, diags| match v.as_str() {
                Some(s) if allowed.iter().any(|a| a == s) => {}
                Some(s) => diags.error_at(
                    path.clone(),
                    "Invalid value",
                    format!("`{path}` is {s:?}; allowed values are {list}."),
                ),
                None => not_a("a string", path, diags),
            },
        )
    }

    /// The string must match `regex`; `message` says in words what is allowed
    /// (e.g. "must be a lowercase RFC 1123 label").
    pub fn matches(regex: &str, message: &str) -> Validator {
        let compiled = Regex::new(regex);
        let message = message.to_string();
        let pattern = regex.to_string();
        Validator::new(&message.clone(), move |v, path, diags| {
            let Some(s) = v.as_str() else {
                return not_a("a string", path, diags);
            };
            match &compiled {
                Ok(re) if re.is_match(s) => {}
                Ok(_) => diags.error_at(
                    path.clone(),
                    "Invalid value",
                    format!("`{path}` is {s:?}, but it {message}."),
                ),
                Err(e) => diags.error_at(
                    path.clone(),
                    "Invalid validation pattern",
                    format!(
                        "The provider's pattern {pattern:?} for `{path}` does not compile: {e}."
                    ),
                ),
            }
        })
    }

    /// The string's length in characters must be within `min..=max`.
    pub fn length_between(min: usize, max: usize) -> Validator {
        Validator::new(
            &format!("length must be between {min} and {max} characters"),
            move |v, path, diags| {
                let Some(s) = v.as_str() else {
                    return not_a("a string", path, diags);
                };
                let n = s.chars().count();
                if n < min || n > max {
                    diags.error_at(
                        path.clone(),
                        "Invalid length",
                        format!(
                            "`{path}` is {n} characters long; it must be between {min} and {max} characters."
                        ),
                    );
                }
            },
        )
    }

    /// The number must be a whole number within `min..=max`.
    pub fn int_between(min: i64, max: i64) -> Validator {
        Validator::new(
            &format!("must be a whole number between {min} and {max}"),
            move |v, path, diags| {
                let Value::Number(n) = v else {
                    return not_a("a number", path, diags);
                };
                match v.as_i64() {
                    Some(i) if (min..=max).contains(&i) => {}
                    _ => diags.error_at(
                        path.clone(),
                        "Value out of range",
                        format!(
                            "`{path}` is {n}; it must be a whole number between {min} and {max}."
                        ),
                    ),
                }
            },
        )
    }

    /// The list (or set) must have between `min` and `max` elements.
    pub fn list_length_between(min: usize, max: usize) -> Validator {
        Validator::new(
            &format!("must have between {min} and {max} elements"),
            move |v, path, diags| {
                if !matches!(v, Value::List(_) | Value::Set(_) | Value::Tuple(_)) {
                    return not_a("a list", path, diags);
                }
                let n = v.elements().len();
                if n < min || n > max {
                    diags.error_at(
                        path.clone(),
                        "Invalid number of elements",
                        format!("`{path}` has {n} elements; it must have between {min} and {max}."),
                    );
                }
            },
        )
    }

    /// List elements must be distinct strings; reported on each repeated element.
    pub fn unique_strings() -> Validator {
        Validator::new("elements must be unique", |v, path, diags| {
            let mut seen = std::collections::BTreeSet::new();
            for (i, element) in v.elements().iter().enumerate() {
                if let Some(s) = element.as_str()
                    && !seen.insert(s)
                {
                    let element_path = path.join_index(i);
                    diags.error_at(
                        element_path,
                        "Duplicate element",
                        format!(
                            "{s:?} appears more than once in `{path}`; each element must be unique."
                        ),
                    );
                }
            }
        })
    }

    /// Whether an object attribute is set: `Some(true)` set, `Some(false)` null,
    /// `None` unknown (it may turn out either way).
    fn set_state(object: &Value, attr: &str) -> Option<bool> {
        match object.get(attr) {
            Value::Unknown => None,
            Value::Null => Some(false),
            _ => Some(true),
        }
    }

    fn count_set<'a>(object: &Value, attrs: &'a [String]) -> (Vec<&'a str>, usize) {
        let mut set = Vec::new();
        let mut unknown = 0;
        for a in attrs {
            match set_state(object, a) {
                Some(true) => set.push(a.as_str()),
                Some(false) => {}
                None => unknown += 1,
            }
        }
        (set, unknown)
    }

    fn owned(attrs: &[&str]) -> Vec<String> {
        attrs.iter().map(|s| s.to_string()).collect()
    }

    fn report_too_many(
        set: &[&str],
        list: &str,
        path: &AttributePath,
        diags: &mut Diagnostics,
        rule: &str,
    ) {
        // Reported on the second attribute so the first one the user wrote stays clean.
        if let Some(second) = set.get(1) {
            diags.error_at(
                path.join_attr(second),
                "Conflicting attributes",
                format!(
                    "Only one of {list} may be set{rule}; {} are set.",
                    quoted(set)
                ),
            );
        }
    }

    /// Object-level: exactly one of `attrs` must be set.
    pub fn exactly_one_of(attrs: &[&str]) -> Validator {
        let attrs = owned(attrs);
        let list = quoted(&attrs);
        Validator::new(
            &format!("exactly one of {list} must be set"),
            move |object, path, diags| {
                let (set, unknown) = count_set(object, &attrs);
                if set.len() > 1 {
                    report_too_many(&set, &list, path, diags, "");
                } else if set.is_empty() && unknown == 0 {
                    diags.error_at(
                        path.clone(),
                        "Missing attribute",
                        format!("Exactly one of {list} must be set; none is."),
                    );
                }
            },
        )
    }

    /// Object-level: at most one of `attrs` may be set.
    pub fn at_most_one_of(attrs: &[&str]) -> Validator {
        let attrs = owned(attrs);
        let list = quoted(&attrs);
        Validator::new(
            &format!("at most one of {list} may be set"),
            move |object, path, diags| {
                let (set, _) = count_set(object, &attrs);
                if set.len() > 1 {
                    report_too_many(&set, &list, path, diags, " at a time");
                }
            },
        )
    }

    /// Object-level: `attr` cannot be set together with any of `others`; reported on `attr`.
    pub fn conflicts_with(attr: &str, others: &[&str]) -> Validator {
        let attr = attr.to_string();
        let others = owned(others);
        let description = format!("`{attr}` conflicts with {}", quoted(&others));
        Validator::new(&description, move |object, path, diags| {
            if set_state(object, &attr) != Some(true) {
                return;
            }
            let (set, _) = count_set(object, &others);
            if !set.is_empty() {
                diags.error_at(
                    path.join_attr(&attr),
                    "Conflicting attributes",
                    format!("`{attr}` cannot be set together with {}.", quoted(&set)),
                );
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::validators::*;
    use super::*;
    use crate::diagnostics::Severity;
    use crate::schema::NestedObject;

    fn s(v: &str) -> Value {
        Value::string(v)
    }

    fn errors_at(diags: &Diagnostics) -> Vec<(String, String)> {
        diags
            .0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                (
                    d.attribute
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    d.summary.clone(),
                )
            })
            .collect()
    }

    fn detail(diags: &Diagnostics) -> String {
        diags
            .0
            .iter()
            .map(|d| d.detail.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check(v: &Validator, value: &Value) -> Diagnostics {
        let mut diags = Diagnostics::default();
        (v.check)(value, &AttributePath::attr("field"), &mut diags);
        diags
    }

    #[test]
    fn read_only_and_required_attributes() {
        let block = Block::new(vec![
            Attribute::string("name").required(),
            Attribute::string("uid").computed(),
            Attribute::string("mode").optional().computed(),
            Attribute::nested(
                "items",
                NestedObject::list(vec![
                    Attribute::string("repo").required(),
                    Attribute::string("commit").computed(),
                ]),
            )
            .optional(),
        ]);
        let config = Value::object([
            ("name", Value::Null),
            ("uid", s("set-by-user")),
            ("mode", s("fine")),
            (
                "items",
                Value::List(vec![
                    Value::object([("repo", s("r")), ("commit", Value::Null)]),
                    Value::object([("repo", Value::Null), ("commit", Value::Unknown)]),
                ]),
            ),
        ]);
        let diags = validate_config(&block, &config);
        assert_eq!(
            errors_at(&diags),
            vec![
                ("name".to_string(), "Missing required attribute".to_string()),
                ("uid".to_string(), "Read-only attribute".to_string()),
                (
                    "items[1].repo".to_string(),
                    "Missing required attribute".to_string()
                ),
                (
                    "items[1].commit".to_string(),
                    "Read-only attribute".to_string()
                ),
            ]
        );
        assert!(
            detail(&diags).contains("`uid` is read-only: it is computed by the provider and cannot be set in configuration"),
            "{}",
            detail(&diags)
        );
        let ok = Value::object([
            ("name", s("n")),
            ("uid", Value::Null),
            ("mode", Value::Null),
            ("items", Value::Null),
        ]);
        assert!(validate_config(&block, &ok).is_empty());
    }

    #[test]
    fn attribute_validators_skip_unknown_and_null_values() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let counting = Validator::new("counts", move |_, _, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let block = Block::new(vec![
            Attribute::string("a").optional().validate(counting.clone()),
            Attribute::string_list("l").optional().validate(counting),
        ]);
        let run = |a: Value, l: Value| {
            calls.store(0, Ordering::SeqCst);
            assert!(validate_config(&block, &Value::object([("a", a), ("l", l)])).is_empty());
            calls.load(Ordering::SeqCst)
        };
        assert_eq!(run(s("x"), Value::List(vec![s("y")])), 2);
        assert_eq!(run(Value::Unknown, Value::List(vec![Value::Unknown])), 0);
        assert_eq!(run(Value::Null, Value::Null), 0);
        assert_eq!(
            validate_config(&block, &Value::Unknown),
            Diagnostics::default()
        );
    }

    #[test]
    fn validators_report_on_nested_paths_and_objects() {
        let item = NestedObject::list(vec![
            Attribute::string("kind")
                .optional()
                .validate(one_of(&["git", "image"])),
            Attribute::string("url").optional(),
            Attribute::string("repo").optional(),
        ])
        .validate(exactly_one_of(&["url", "repo"]));
        let block = Block::new(vec![Attribute::nested("items", item).optional()])
            .block(NestedBlock::new(
                "rule",
                Block::new(vec![
                    Attribute::number("n")
                        .optional()
                        .validate(int_between(1, 3)),
                ]),
                Nesting::Map,
            ))
            .validate(Validator::new("top", |_, path, diags| {
                diags.error_at(path.join_attr("top"), "Top-level check", "ran");
            }));
        let config = Value::object([
            (
                "items",
                Value::List(vec![
                    Value::object([("kind", s("git")), ("url", s("u")), ("repo", Value::Null)]),
                    Value::object([("kind", s("chart")), ("url", s("u")), ("repo", s("r"))]),
                    Value::object([
                        ("kind", Value::Null),
                        ("url", Value::Null),
                        ("repo", Value::Null),
                    ]),
                    Value::object([
                        ("kind", Value::Null),
                        ("url", Value::Unknown),
                        ("repo", Value::Null),
                    ]),
                ]),
            ),
            (
                "rule",
                Value::Map([("a".to_string(), Value::object([("n", Value::int(7))]))].into()),
            ),
        ]);
        let diags = validate_config(&block, &config);
        assert_eq!(
            errors_at(&diags),
            vec![
                ("items[1].kind".to_string(), "Invalid value".to_string()),
                (
                    "items[1].repo".to_string(),
                    "Conflicting attributes".to_string()
                ),
                ("items[2]".to_string(), "Missing attribute".to_string()),
                (
                    "rule[\"a\"].n".to_string(),
                    "Value out of range".to_string()
                ),
                ("top".to_string(), "Top-level check".to_string()),
            ]
        );
        assert!(
            detail(&diags).contains(r#"allowed values are "git", "image""#),
            "{}",
            detail(&diags)
        );
    }

    #[test]
    fn deprecated_attributes_warn_when_set() {
        let block = Block::new(vec![
            Attribute::string("old")
                .optional()
                .deprecated("Use `new` instead."),
        ]);
        let diags = validate_config(&block, &Value::object([("old", s("x"))]));
        assert_eq!(diags.0.len(), 1);
        assert_eq!(diags.0[0].severity, Severity::Warning);
        assert_eq!(diags.0[0].detail, "Use `new` instead.");
        assert_eq!(diags.0[0].attribute, Some(AttributePath::attr("old")));
        assert!(validate_config(&block, &Value::object([("old", Value::Null)])).is_empty());
    }

    #[test]
    fn string_validators() {
        let v = one_of(&["a", "b"]);
        assert!(check(&v, &s("a")).is_empty());
        let d = check(&v, &s("c"));
        assert_eq!(
            errors_at(&d),
            vec![("field".to_string(), "Invalid value".to_string())]
        );
        assert_eq!(
            d.0[0].detail,
            r#"`field` is "c"; allowed values are "a", "b"."#
        );

        let v = matches(
            "^[a-z0-9-]+$",
            "must contain only lowercase letters, digits and '-'",
        );
        assert!(check(&v, &s("ok-1")).is_empty());
        let d = check(&v, &s("Not OK"));
        assert!(
            d.0[0].detail.contains("must contain only lowercase"),
            "{}",
            d.0[0].detail
        );
        let broken = matches("(", "never");
        assert_eq!(
            errors_at(&check(&broken, &s("x")))[0].1,
            "Invalid validation pattern"
        );

        let v = length_between(2, 3);
        assert!(
            check(&v, &s("éé")).is_empty(),
            "length counts characters, not bytes"
        );
        assert!(!check(&v, &s("a")).is_empty());
        assert!(!check(&v, &s("abcd")).is_empty());
        assert!(!check(&v, &Value::int(1)).is_empty());
    }

    #[test]
    fn number_and_list_validators() {
        let v = int_between(1, 10);
        assert!(check(&v, &Value::int(1)).is_empty());
        assert!(check(&v, &Value::int(10)).is_empty());
        assert!(!check(&v, &Value::int(11)).is_empty());
        assert!(
            !check(
                &v,
                &Value::Number(serde_json::Number::from_f64(1.5).unwrap())
            )
            .is_empty()
        );

        let v = list_length_between(1, 2);
        assert!(check(&v, &Value::List(vec![s("a")])).is_empty());
        assert!(!check(&v, &Value::List(vec![])).is_empty());
        assert!(!check(&v, &Value::List(vec![s("a"), s("b"), s("c")])).is_empty());

        let d = check(
            &unique_strings(),
            &Value::List(vec![s("a"), s("b"), s("a"), s("b"), s("c")]),
        );
        assert_eq!(
            errors_at(&d),
            vec![
                ("field[2]".to_string(), "Duplicate element".to_string()),
                ("field[3]".to_string(), "Duplicate element".to_string()),
            ]
        );
    }

    #[test]
    fn object_validators_treat_unknown_as_maybe_set() {
        let obj = |a: Value, b: Value, c: Value| Value::object([("a", a), ("b", b), ("c", c)]);
        let at_path = |v: &Validator, value: &Value| {
            let mut diags = Diagnostics::default();
            (v.check)(value, &AttributePath::attr("spec"), &mut diags);
            errors_at(&diags)
        };
        let exactly = exactly_one_of(&["a", "b"]);
        assert!(at_path(&exactly, &obj(s("1"), Value::Null, Value::Null)).is_empty());
        assert!(at_path(&exactly, &obj(Value::Unknown, Value::Null, Value::Null)).is_empty());
        assert!(at_path(&exactly, &obj(Value::Unknown, Value::Unknown, Value::Null)).is_empty());
        assert_eq!(
            at_path(&exactly, &obj(Value::Null, Value::Null, s("c"))),
            vec![("spec".to_string(), "Missing attribute".to_string())]
        );
        assert_eq!(
            at_path(&exactly, &obj(s("1"), s("2"), Value::Null)),
            vec![("spec.b".to_string(), "Conflicting attributes".to_string())]
        );

        let at_most = at_most_one_of(&["a", "b", "c"]);
        assert!(at_path(&at_most, &obj(Value::Null, Value::Null, Value::Null)).is_empty());
        assert!(at_path(&at_most, &obj(s("1"), Value::Unknown, Value::Unknown)).is_empty());
        assert_eq!(
            at_path(&at_most, &obj(Value::Null, s("2"), s("3"))),
            vec![("spec.c".to_string(), "Conflicting attributes".to_string())]
        );

        let conflicts = conflicts_with("a", &["b", "c"]);
        assert!(at_path(&conflicts, &obj(s("1"), Value::Unknown, Value::Null)).is_empty());
        assert!(at_path(&conflicts, &obj(Value::Unknown, s("2"), Value::Null)).is_empty());
        assert!(at_path(&conflicts, &obj(Value::Null, s("2"), s("3"))).is_empty());
        assert_eq!(
            at_path(&conflicts, &obj(s("1"), Value::Null, s("3"))),
            vec![("spec.a".to_string(), "Conflicting attributes".to_string())]
        );
    }
}
