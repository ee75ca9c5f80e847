//! Kargo's expressions in step configs, evaluated with the freight a promotion would move:
//! `ctx`, `vars`, `outputs`, `task.outputs`, `imageFrom`, `commitFrom`, `chartFrom`,
//! `warehouse` and `quote`, through the expr-lang evaluator.

use std::sync::Arc;

use expr::{Context, Environment, Value as X};
use serde_json::{Map, Value as Json};

use crate::kargo::{Freight, Object as _};

/// What expressions see: the promotion's context, the freight, and the values so far.
#[derive(Clone)]
pub struct Scope {
    pub project: String,
    pub stage: String,
    /// The freight the promotion moves; expressions look artifacts up in it.
    pub freight: Arc<Freight>,
}

fn err(message: impl Into<String>) -> expr::Error {
    expr::Error::ExprError(message.into())
}

/// A JSON value as the evaluator holds it.
pub fn to_x(v: &Json) -> X {
    match v {
        Json::Null => X::Nil,
        Json::Bool(b) => X::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map(X::Integer)
            .unwrap_or_else(|| X::Float(n.as_f64().unwrap_or_default())),
        Json::String(s) => X::String(s.clone()),
        Json::Array(a) => X::Array(a.iter().map(to_x).collect()),
        Json::Object(m) => X::Map(m.iter().map(|(k, v)| (k.clone(), to_x(v))).collect()),
    }
}

/// An evaluator's value as JSON (dates and durations as their text).
pub fn from_x(v: &X) -> Json {
    match v {
        X::Nil => Json::Null,
        X::Bool(b) => Json::Bool(*b),
        X::Integer(i) => Json::from(*i),
        X::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        X::String(s) => Json::String(s.clone()),
        X::Array(a) => Json::Array(a.iter().map(from_x).collect()),
        X::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), from_x(v))).collect()),
        X::KeyedMap(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| (text_of(&from_x(k)), from_x(v)))
                .collect(),
        ),
        X::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
    }
}

fn text_of(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn map(fields: &[(&str, Option<&str>)]) -> X {
    X::Map(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.map_or(X::String(String::new()), X::from)))
            .collect(),
    )
}

fn string_args(args: &[X], function: &str) -> expr::Result<Vec<String>> {
    args.iter()
        .map(|a| match a {
            X::String(s) => Ok(s.clone()),
            X::Map(m) => m
                .get("name")
                .and_then(X::as_string)
                .map(str::to_string)
                .ok_or_else(|| err(format!("{function}: unexpected argument"))),
            _ => Err(err(format!("{function}: arguments must be strings"))),
        })
        .collect()
}

impl Scope {
    fn environment(&self) -> Environment<'static> {
        let mut env = Environment::new();
        let f = self.freight.clone();
        env.add_function("imageFrom", move |c| {
            let args = string_args(&c.args, "imageFrom")?;
            let repo = args
                .first()
                .ok_or_else(|| err("imageFrom needs a repository URL"))?;
            let image = f
                .artifacts
                .images
                .iter()
                .find(|i| &i.repo_url == repo)
                .ok_or_else(|| {
                    err(format!(
                        "no image found for repo URL {repo:?} in the freight"
                    ))
                })?;
            Ok(map(&[
                ("RepoURL", Some(&image.repo_url)),
                ("Tag", image.tag.as_deref()),
                ("Digest", image.digest.as_deref()),
            ]))
        });
        let f = self.freight.clone();
        env.add_function("commitFrom", move |c| {
            let args = string_args(&c.args, "commitFrom")?;
            let repo = args
                .first()
                .ok_or_else(|| err("commitFrom needs a repository URL"))?;
            let commit = f
                .artifacts
                .commits
                .iter()
                .find(|i| &i.repo_url == repo)
                .ok_or_else(|| {
                    err(format!(
                        "no commit found for repo URL {repo:?} in the freight"
                    ))
                })?;
            Ok(map(&[
                ("RepoURL", Some(&commit.repo_url)),
                ("ID", commit.id.as_deref()),
                ("Tag", commit.tag.as_deref()),
                ("Branch", commit.branch.as_deref()),
            ]))
        });
        let f = self.freight.clone();
        env.add_function("chartFrom", move |c| {
            let args = string_args(&c.args, "chartFrom")?;
            let repo = args
                .first()
                .ok_or_else(|| err("chartFrom needs a repository URL"))?;
            let name = args.get(1);
            let chart = f
                .artifacts
                .charts
                .iter()
                .find(|ch| &ch.repo_url == repo && (name.is_none() || ch.name.as_ref() == name))
                .ok_or_else(|| {
                    err(format!(
                        "no chart found for repo URL {repo:?} in the freight"
                    ))
                })?;
            Ok(map(&[
                ("RepoURL", Some(&chart.repo_url)),
                ("Name", chart.name.as_deref()),
                ("Version", chart.version.as_deref()),
            ]))
        });
        env.add_function("warehouse", |c| match c.args.as_slice() {
            [X::String(name)] => Ok(X::Map(
                [
                    ("kind".to_string(), X::from("Warehouse")),
                    ("name".to_string(), X::from(name.as_str())),
                ]
                .into_iter()
                .collect(),
            )),
            _ => Err(err("warehouse takes one name")),
        });
        env.add_function("quote", |c| match c.args.as_slice() {
            [X::String(s)] => Ok(X::String(serde_json::to_string(s).unwrap_or_default())),
            [other] => Ok(X::String(format!("\"{}\"", text_of(&from_x(other))))),
            _ => Err(err("quote takes one argument")),
        });
        env
    }

    /// The context of one step: `ctx`, `vars`, `outputs` and (in a task step) `task`.
    pub fn context(
        &self,
        vars: &Map<String, Json>,
        outputs: &Map<String, Json>,
        alias: &str,
    ) -> Context {
        let mut c = Context::default();
        let ctx = serde_json::json!({
            "project": self.project,
            "stage": self.stage,
            "promotion": "",
            "targetFreight": {
                "name": self.freight.name(),
                "origin": {"kind": self.freight.origin.kind, "name": self.freight.origin.name},
            },
        });
        c.insert("ctx", to_x(&ctx));
        c.insert("vars", to_x(&Json::Object(vars.clone())));
        c.insert("outputs", to_x(&Json::Object(outputs.clone())));
        if let Some((task, _)) = alias.split_once("::") {
            let prefix = format!("{task}::");
            let task_outputs: Map<String, Json> = outputs
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
                .collect();
            c.insert(
                "task",
                to_x(&serde_json::json!({ "outputs": task_outputs })),
            );
        }
        c
    }

    /// Evaluates every string of `config` as a template.
    pub fn evaluate(&self, config: &Json, context: &Context) -> Result<Json, String> {
        let env = self.environment();
        let mut out = config.clone();
        evaluate_in(&mut out, &env, context)?;
        Ok(out)
    }

    /// One template (a step's `if`, a variable's value).
    pub fn evaluate_text(&self, template: &str, context: &Context) -> Result<Json, String> {
        evaluate_template(template, &self.environment(), context)
    }
}

/// An output expression of `yaml-parse` or `json-parse`: a bare expression (no `${{ }}`)
/// whose variables are the parsed document's top-level keys, as Kargo runs it with the
/// document as expr's environment.
pub fn evaluate_on_document(expression: &str, document: &Json) -> Result<Json, String> {
    let mut context = Context::default();
    if let Json::Object(fields) = document {
        for (key, value) in fields {
            context.insert(key.clone(), to_x(value));
        }
    }
    Environment::new()
        .eval(expression, &context)
        .map(|v| from_x(&v))
        .map_err(|e| format!("error evaluating expression {expression:?}: {e}"))
}

fn evaluate_in(v: &mut Json, env: &Environment<'_>, ctx: &Context) -> Result<(), String> {
    match v {
        Json::Array(items) => items.iter_mut().try_for_each(|i| evaluate_in(i, env, ctx)),
        Json::Object(m) => m.values_mut().try_for_each(|i| evaluate_in(i, env, ctx)),
        Json::String(s) if s.contains("${{") => {
            *v = evaluate_template(s, env, ctx)?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Kargo's template evaluation: text without expressions stays as it is; otherwise each
/// `${{ … }}` is replaced by its value's text, and the joined text is read back as a quoted
/// string, a number, a boolean or JSON when it is one, or stays text.
fn evaluate_template(template: &str, env: &Environment<'_>, ctx: &Context) -> Result<Json, String> {
    if !template.contains("${{") {
        return Ok(Json::String(template.to_string()));
    }
    let mut text = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${{") {
        text.push_str(&rest[..start]);
        let body = &rest[start + 3..];
        let end = body.find("}}").ok_or_else(|| {
            "unclosed expression: expected \"}}\" but reached end of template".to_string()
        })?;
        let value = env
            .eval(body[..end].trim(), ctx)
            .map_err(|e| format!("error evaluating {:?}: {e}", body[..end].trim()))?;
        match value {
            X::String(s) => text.push_str(&s),
            other => text.push_str(&from_x(&other).to_string()),
        }
        rest = &body[end + 2..];
    }
    text.push_str(rest);
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    if trimmed.len() > 1 && trimmed.starts_with('"') && trimmed.ends_with('"') {
        if let Ok(Json::String(s)) = serde_json::from_str::<Json>(trimmed) {
            return Ok(Json::String(s));
        }
        return Ok(Json::String(trimmed[1..trimmed.len() - 1].to_string()));
    }
    if let Ok(n) = trimmed.parse::<f64>()
        && n.is_finite()
        && !trimmed.starts_with('+')
    {
        if let Ok(i) = trimmed.parse::<i64>() {
            return Ok(Json::from(i));
        }
        return Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number));
    }
    match trimmed {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => return Ok(Json::Bool(true)),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => return Ok(Json::Bool(false)),
        _ => {}
    }
    if let Ok(v) = serde_json::from_str::<Json>(trimmed) {
        return Ok(v);
    }
    Ok(Json::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kargo::{Image, ObjectMeta, Origin};
    use serde_json::json;

    fn scope() -> Scope {
        let mut freight = Freight {
            metadata: ObjectMeta {
                name: Some("f1".into()),
                ..Default::default()
            },
            origin: Origin {
                kind: "Warehouse".into(),
                name: "app".into(),
            },
            ..Default::default()
        };
        freight.artifacts.images.push(Image {
            repo_url: "ghcr.io/acme/app".into(),
            tag: Some("1.1.0".into()),
            digest: None,
        });
        Scope {
            project: "shop".into(),
            stage: "dev".into(),
            freight: Arc::new(freight),
        }
    }

    #[test]
    fn templates_evaluate_with_the_freight_and_keep_kargos_typing() {
        let s = scope();
        let mut vars = Map::new();
        vars.insert("n".into(), json!(3));
        let c = s.context(&vars, &Map::new(), "step-0");
        let eval = |t: &str| s.evaluate(&json!(t), &c).unwrap();
        assert_eq!(
            eval("${{ imageFrom('ghcr.io/acme/app').Tag }}"),
            json!("1.1.0")
        );
        assert_eq!(
            eval("v${{ imageFrom('ghcr.io/acme/app').Tag }}"),
            json!("v1.1.0")
        );
        assert_eq!(eval("${{ vars.n }}"), json!(3));
        assert_eq!(eval("${{ quote(vars.n) }}"), json!("3"));
        assert_eq!(
            eval("${{ ctx.stage }}-${{ ctx.targetFreight.name }}"),
            json!("dev-f1")
        );
        assert_eq!(eval("plain"), json!("plain"));
        assert!(
            s.evaluate(&json!("${{ imageFrom('nope').Tag }}"), &c)
                .unwrap_err()
                .contains("no image found for repo URL \"nope\"")
        );
    }
}
