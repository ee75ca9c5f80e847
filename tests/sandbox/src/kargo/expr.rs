//! Kargo's expressions in promotion steps: `${{ … }}` / `${% … %}` templates evaluated with
//! the expr language (the `expr-lang` crate), the environment Kargo builds for each step
//! (ctx, vars, outputs, task.outputs) and its functions (imageFrom, quote, success, …).

use std::sync::Arc;

use expr::{Context, Environment, Value as X};
use serde_json::{Map, Number, Value, json};

use super::promotion::step_alias;
use super::urls::normalize_git;
use super::util::{self, GROUP, arr_at, str_at};
use crate::hooks::Txn;

const DELIMITERS: [(&str, &str); 2] = [("${{", "}}"), ("${%", "%}")];
const ALIAS_SEPARATOR: &str = "::";

/// What a Promotion's expressions can see, gathered once per evaluation under the store lock.
pub struct Scope {
    pub project: String,
    pub stage: String,
    pub promotion: String,
    pub actor: String,
    pub rollback: bool,
    /// `status.freight` of the Promotion.
    pub target: Value,
    pub target_alias: String,
    /// `spec.vars` of the Promotion.
    pub vars: Vec<Value>,
    /// Outputs of the steps that ran, by alias.
    pub state: Value,
    /// `status.stepExecutionMetadata` so far.
    pub metas: Vec<Value>,
    freight: Arc<FreightData>,
}

/// The Freight a Promotion references and what the Stage requests, for the `*From` functions.
struct FreightData {
    /// The `FreightReference`s of the Promotion's freight collection.
    references: Vec<Value>,
    /// The Stage's `requestedFreight` origins.
    requested: Vec<Value>,
    /// The project's Warehouses by name.
    warehouses: Map<String, Value>,
    project: String,
}

impl Scope {
    /// The scope of a Promotion (its Stage, Freight and the project's Warehouses read now).
    pub fn of(txn: &dyn Txn, promotion: &Value, state: &Value, metas: &[Value]) -> Scope {
        let project = util::namespace(promotion).to_string();
        let stage_name = str_at(promotion, "spec.stage").to_string();
        let stage = txn.get(GROUP, "stages", Some(&project), &stage_name);
        let requested = stage
            .as_ref()
            .map(|s| {
                arr_at(s, "spec.requestedFreight")
                    .iter()
                    .map(|r| r.get("origin").cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default();
        let mut references: Vec<Value> = promotion
            .pointer("/status/freightCollection/items")
            .and_then(Value::as_object)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let target = promotion
            .pointer("/status/freight")
            .cloned()
            .unwrap_or(Value::Null);
        if references.is_empty() && !target.is_null() {
            references.push(target.clone());
        }
        let warehouses = txn
            .list(GROUP, "warehouses", Some(&project))
            .into_iter()
            .map(|w| (util::name(&w).to_string(), w))
            .collect();
        let target_alias = txn
            .get(GROUP, "freights", Some(&project), str_at(&target, "name"))
            .map(|f| str_at(&f, "alias").to_string())
            .unwrap_or_default();
        let actor = util::annotation(promotion, util::ANNOTATION_CREATE_ACTOR)
            .unwrap_or_default()
            .to_string();
        Scope {
            project: project.clone(),
            stage: stage_name,
            promotion: util::name(promotion).to_string(),
            actor,
            rollback: util::annotation(promotion, "kargo.akuity.io/rollback") == Some("true"),
            target,
            target_alias,
            vars: arr_at(promotion, "spec.vars").to_vec(),
            state: state.clone(),
            metas: metas.to_vec(),
            freight: Arc::new(FreightData {
                references,
                requested,
                warehouses,
                project,
            }),
        }
    }

    /// The `ctx` object for a step.
    fn ctx(&self, alias: &str) -> Value {
        json!({
            "uiBaseUrl": "",
            "project": self.project,
            "promotion": self.promotion,
            "stage": self.stage,
            "targetFreight": {
                "name": str_at(&self.target, "name"),
                "alias": self.target_alias,
                "origin": {"name": str_at(&self.target, "origin.name")},
            },
            "meta": {
                "promotion": {"actor": self.actor, "rollback": self.rollback},
                "step": {"alias": alias},
            },
        })
    }

    /// The expression environment of a step; `with_outputs` adds outputs, task outputs and
    /// step metadata (everything but Promotion-level vars sees them).
    fn context(&self, alias: &str, vars: &Map<String, Value>, with_outputs: bool) -> Context {
        let mut c = Context::default();
        c.insert("ctx", to_expr(&self.ctx(alias)));
        c.insert("vars", to_expr(&Value::Object(vars.clone())));
        if with_outputs {
            c.insert("outputs", to_expr(&self.state));
            if let Some(task) = task_outputs(alias, &self.state) {
                c.insert("task", to_expr(&json!({ "outputs": task })));
            }
            let metas: Map<String, Value> = self
                .metas
                .iter()
                .map(|m| (str_at(m, "alias").to_string(), m.clone()))
                .collect();
            c.insert("stepMetas", to_expr(&Value::Object(metas)));
        }
        c
    }

    /// Kargo's step vars: the Promotion's vars (which see no outputs), then the step's.
    pub fn vars(&self, step: &Value, alias: &str) -> Result<Map<String, Value>, String> {
        let mut vars = Map::new();
        let env = self.environment(alias, false);
        for v in &self.vars {
            let name = str_at(v, "name");
            let value =
                evaluate_template(str_at(v, "value"), &env, &self.context(alias, &vars, false))
                    .map_err(|e| {
                        format!("error pre-processing promotion variable {name:?}: {e}")
                    })?;
            vars.insert(name.to_string(), value);
        }
        let env = self.environment(alias, true);
        for v in arr_at(step, "vars") {
            let name = str_at(v, "name");
            let value =
                evaluate_template(str_at(v, "value"), &env, &self.context(alias, &vars, true))
                    .map_err(|e| {
                        format!("error pre-processing promotion variable {name:?}: {e}")
                    })?;
            vars.insert(name.to_string(), value);
        }
        Ok(vars)
    }

    /// Whether step `index` is skipped: its `if` evaluates to false, or (without `if`) an
    /// earlier step failed.
    pub fn should_skip(&self, step: &Value, index: usize) -> Result<bool, String> {
        let cond = str_at(step, "if");
        if cond.is_empty() {
            return Ok(has_failures(&self.metas));
        }
        let alias = step_alias(step, index);
        let vars = self.vars(step, &alias)?;
        let env = self.environment(&alias, true);
        match evaluate_template(cond, &env, &self.context(&alias, &vars, true))? {
            Value::Bool(b) => Ok(!b),
            other => Err(format!(
                "expression must evaluate to a boolean, got {}",
                go_type(&other)
            )),
        }
    }

    /// The step's `config` with every expression evaluated (`Null` when it has none).
    pub fn config(&self, step: &Value, index: usize) -> Result<Value, String> {
        let Some(config) = step.get("config").filter(|c| !c.is_null()) else {
            return Ok(Value::Null);
        };
        let alias = step_alias(step, index);
        let vars = self.vars(step, &alias)?;
        let env = self.environment(&alias, true);
        let ctx = self.context(&alias, &vars, true);
        let mut out = config.clone();
        evaluate_in(&mut out, &env, &ctx)?;
        Ok(out)
    }

    /// The functions a step's expressions may call; the status functions only where Kargo
    /// offers them (not in Promotion-level vars).
    fn environment(&self, alias: &str, with_status: bool) -> Environment<'static> {
        let mut env = Environment::new();
        add_freight_functions(&mut env, &self.freight);
        add_utility_functions(&mut env);
        if with_status {
            let failed = has_failures(&self.metas);
            env.add_function("always", |c| {
                no_args(&c.args)?;
                Ok(X::Bool(true))
            });
            env.add_function("success", move |c| {
                no_args(&c.args)?;
                Ok(X::Bool(!failed))
            });
            env.add_function("failure", move |c| {
                no_args(&c.args)?;
                Ok(X::Bool(failed))
            });
            let metas = self.metas.clone();
            let namespace = alias_namespace(alias).unwrap_or_default().to_string();
            env.add_function("status", move |c| {
                let [X::String(want)] = c.args.as_slice() else {
                    return Err(err("expected 1 string argument"));
                };
                if want.is_empty() {
                    return Err(err("argument must not be empty"));
                }
                for m in &metas {
                    let full = str_at(m, "alias");
                    let (ns, short) = full.split_once(ALIAS_SEPARATOR).unwrap_or(("", full));
                    if ns == namespace && short == want {
                        return Ok(X::String(str_at(m, "status").to_string()));
                    }
                }
                Ok(X::String(String::new()))
            });
        }
        env
    }
}

/// Whether a step before the current one Failed or Errored without `continueOnError`.
pub fn has_failures(metas: &[Value]) -> bool {
    metas.iter().any(|m| {
        m.get("continueOnError").and_then(Value::as_bool) != Some(true)
            && matches!(str_at(m, "status"), "Failed" | "Errored")
    })
}

/// The part of an alias before `::` (the task's alias), for steps inflated from a task.
pub fn alias_namespace(alias: &str) -> Option<&str> {
    let parts: Vec<&str> = alias.split(ALIAS_SEPARATOR).collect();
    (parts.len() == 2).then_some(parts[0])
}

/// The outputs of the other steps of the same task, by their short alias.
fn task_outputs(alias: &str, state: &Value) -> Option<Value> {
    let ns = alias_namespace(alias)?;
    let mut out = Map::new();
    if let Some(m) = state.as_object() {
        for (k, v) in m {
            if alias_namespace(k) == Some(ns) {
                out.insert(k[ns.len() + 2..].to_string(), v.clone());
            }
        }
    }
    Some(Value::Object(out))
}

fn no_args(args: &[X]) -> expr::Result<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(err(format!("expected 0 arguments, got {}", args.len())))
    }
}

fn err(msg: impl Into<String>) -> expr::Error {
    expr::Error::ExprError(msg.into())
}

/// Go's name for the type a JSON value decodes into, for Kargo's error texts.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// A freight origin as `warehouse()` returns it.
fn origin_value(name: &str) -> X {
    let mut m = expr::__private::IndexMap::new();
    m.insert("Kind".to_string(), X::String("Warehouse".into()));
    m.insert("Name".to_string(), X::String(name.to_string()));
    X::Map(m)
}

fn origin_name(v: &X) -> Option<String> {
    match v {
        X::Map(m) if m.get("Kind") == Some(&X::String("Warehouse".into())) => match m.get("Name") {
            Some(X::String(n)) => Some(n.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Go field names of Kargo's artifact structs, as expressions address them.
fn artifact(v: &Value, fields: &[(&str, &str)]) -> X {
    let mut m = expr::__private::IndexMap::new();
    for (go, json) in fields {
        m.insert(
            go.to_string(),
            to_expr(v.get(*json).unwrap_or(&Value::Null)),
        );
    }
    X::Map(m)
}

const IMAGE_FIELDS: &[(&str, &str)] = &[
    ("RepoURL", "repoURL"),
    ("Tag", "tag"),
    ("Digest", "digest"),
    ("Annotations", "annotations"),
];
const COMMIT_FIELDS: &[(&str, &str)] = &[
    ("RepoURL", "repoURL"),
    ("ID", "id"),
    ("Branch", "branch"),
    ("Tag", "tag"),
    ("Message", "message"),
    ("Author", "author"),
    ("Committer", "committer"),
];
const CHART_FIELDS: &[(&str, &str)] = &[
    ("RepoURL", "repoURL"),
    ("Name", "name"),
    ("Version", "version"),
];

impl FreightData {
    /// The origin that provides an artifact: the one given, or the single requested origin
    /// whose Warehouse subscribes to it.
    fn origin(
        &self,
        given: Option<String>,
        subscribes: impl Fn(&Value) -> bool,
        ambiguous: impl Fn() -> String,
    ) -> Result<Option<String>, String> {
        if given.is_some() {
            return Ok(given);
        }
        let mut found = None;
        for req in &self.requested {
            let name = str_at(req, "name");
            let Some(w) = self.warehouses.get(name) else {
                return Err(format!(
                    "Warehouse {name:?} not found in namespace {:?}",
                    self.project
                ));
            };
            let subs = arr_at(w, "spec.subscriptions")
                .iter()
                .chain(arr_at(w, "spec.internalSubscriptions"));
            for sub in subs {
                if subscribes(sub) {
                    if found.is_some() {
                        return Err(ambiguous());
                    }
                    found = Some(name.to_string());
                }
            }
        }
        Ok(found)
    }

    fn find(&self, origin: &str, list: &str, matches: impl Fn(&Value) -> bool) -> Option<Value> {
        self.references
            .iter()
            .filter(|r| str_at(r, "origin.name") == origin)
            .flat_map(|r| arr_at(r, list).iter())
            .find(|a| matches(a))
            .cloned()
    }
}

fn add_freight_functions(env: &mut Environment<'static>, data: &Arc<FreightData>) {
    env.add_function("warehouse", |c| match c.args.as_slice() {
        [X::String(n)] if !n.is_empty() => Ok(origin_value(n)),
        [X::String(_)] => Err(err("name must not be empty")),
        [_] => Err(err("argument must be string")),
        args => Err(err(format!("expected 1 argument, got {}", args.len()))),
    });
    let d = data.clone();
    env.add_function("imageFrom", move |c| {
        let (repo, origin) = repo_and_origin(&c.args)?;
        let origin = d
            .origin(
                origin,
                |s| str_at(s, "image.repoURL") == repo,
                || format!("multiple requested Freight could potentially provide a container image from repository {repo}: please provide a Freight origin to disambiguate"),
            )
            .map_err(err)?;
        Ok(origin
            .and_then(|o| d.find(&o, "images", |i| str_at(i, "repoURL") == repo))
            .map(|i| artifact(&i, IMAGE_FIELDS))
            .unwrap_or(X::Nil))
    });
    let d = data.clone();
    env.add_function("commitFrom", move |c| {
        let (repo, origin) = repo_and_origin(&c.args)?;
        let repo = normalize_git(&repo);
        let origin = d
            .origin(
                origin,
                |s| {
                    s.get("git").is_some() && normalize_git(str_at(s, "git.repoURL")) == repo
                },
                || format!("multiple requested Freight could potentially provide a commit from repo {repo}; please update promotion steps to disambiguate"),
            )
            .map_err(err)?;
        Ok(origin
            .and_then(|o| d.find(&o, "commits", |i| normalize_git(str_at(i, "repoURL")) == repo))
            .map(|i| artifact(&i, COMMIT_FIELDS))
            .unwrap_or(X::Nil))
    });
    let d = data.clone();
    env.add_function("chartFrom", move |c| {
        let (repo, name, origin) = match c.args.as_slice() {
            [X::String(r)] => (r.clone(), String::new(), None),
            [X::String(r), X::String(n)] => (r.clone(), n.clone(), None),
            [X::String(r), o] => (
                r.clone(),
                String::new(),
                Some(origin_name(o).ok_or_else(|| {
                    err("second argument must be string or FreightOrigin")
                })?),
            ),
            [X::String(r), X::String(n), o] => (
                r.clone(),
                n.clone(),
                Some(
                    origin_name(o)
                        .ok_or_else(|| err("third argument must be FreightOrigin"))?,
                ),
            ),
            [_, ..] if c.args.len() <= 3 => return Err(err("first argument must be string")),
            args => {
                return Err(err(format!(
                    "expected 1-3 arguments, got {}",
                    args.len()
                )));
            }
        };
        let matches = |s: &Value| {
            s.get("repoURL").is_some()
                && str_at(s, "repoURL") == repo
                && str_at(s, "name") == name
        };
        let given = origin.is_some();
        let origin = d
            .origin(
                origin,
                |s| s.get("chart").is_some_and(matches),
                || format!("multiple requested Freight could potentially provide a chart from repository {repo}: please provide a Freight origin to disambiguate"),
            )
            .map_err(err)?;
        let Some(origin) = origin else {
            debug_assert!(!given);
            return Err(err(if name.is_empty() {
                format!("chart from repo {repo} not found in referenced Freight")
            } else {
                format!("chart {name:?} from repo {repo} not found in referenced Freight")
            }));
        };
        Ok(d.find(&origin, "charts", matches)
            .map(|i| artifact(&i, CHART_FIELDS))
            .unwrap_or(X::Nil))
    });
}

fn repo_and_origin(args: &[X]) -> expr::Result<(String, Option<String>)> {
    match args {
        [X::String(r)] => Ok((r.clone(), None)),
        [X::String(r), o] => Ok((
            r.clone(),
            Some(origin_name(o).ok_or_else(|| err("second argument must be FreightOrigin"))?),
        )),
        [_] | [_, _] => Err(err("first argument must be string")),
        args => Err(err(format!("expected 1-2 arguments, got {}", args.len()))),
    }
}

fn add_utility_functions(env: &mut Environment<'static>) {
    env.add_function("quote", |c| match c.args.as_slice() {
        [X::String(s)] => Ok(X::String(go_quote(s))),
        [v] => Ok(X::String(format!("\"{}\"", from_expr(v)))),
        args => Err(err(format!("expected 1 argument, got {}", args.len()))),
    });
    env.add_function("unsafeQuote", |c| match c.args.as_slice() {
        [v] => Ok(X::String(format!("\"{}\"", json_text(&from_expr(v))))),
        args => Err(err(format!("expected 1 argument, got {}", args.len()))),
    });
    env.add_function("semverParse", |c| match c.args.as_slice() {
        [X::String(s)] => {
            let v = super::semver::parse_loose(s)
                .map(|p| p.version)
                .ok_or_else(|| err("invalid semantic version: Invalid Semantic Version"))?;
            let mut m = expr::__private::IndexMap::new();
            m.insert("Major".into(), X::Integer(v.major as i64));
            m.insert("Minor".into(), X::Integer(v.minor as i64));
            m.insert("Patch".into(), X::Integer(v.patch as i64));
            m.insert("Prerelease".into(), X::String(v.pre.to_string()));
            m.insert("Metadata".into(), X::String(v.build.to_string()));
            m.insert("Original".into(), X::String(s.clone()));
            m.insert("String".into(), X::String(v.to_string()));
            Ok(X::Map(m))
        }
        [_] => Err(err("argument must be string")),
        args => Err(err(format!("expected 1 argument, got {}", args.len()))),
    });
}

/// Go's `%q` of a string.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Converts JSON to an expr value.
pub fn to_expr(v: &Value) -> X {
    match v {
        Value::Null => X::Nil,
        Value::Bool(b) => X::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => X::Integer(i),
            None => X::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => X::String(s.clone()),
        Value::Array(a) => X::Array(a.iter().map(to_expr).collect()),
        Value::Object(m) => X::Map(m.iter().map(|(k, v)| (k.clone(), to_expr(v))).collect()),
    }
}

/// Converts an expr value to JSON (non-string map keys become their text).
pub fn from_expr(v: &X) -> Value {
    match v {
        X::Nil => Value::Null,
        X::Bool(b) => Value::Bool(*b),
        X::Integer(i) => json!(i),
        X::Float(f) => number(*f),
        X::String(s) => Value::String(s.clone()),
        X::Array(a) => Value::Array(a.iter().map(from_expr).collect()),
        X::Bytes(b) => Value::Array(b.iter().map(|x| json!(x)).collect()),
        X::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), from_expr(v))).collect()),
        X::KeyedMap(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        X::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, from_expr(v))
                })
                .collect(),
        ),
    }
}

/// A float as JSON: integral values as integers, as Go's encoder prints them.
fn number(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        json!(f as i64)
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Go's `json.Marshal` text of a value (object keys sorted, as Go sorts map keys).
pub fn json_text(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

/// Evaluates every string in a JSON value in place.
fn evaluate_in(v: &mut Value, env: &Environment<'_>, ctx: &Context) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (_, child) in m.iter_mut() {
                evaluate_in(child, env, ctx)?;
            }
        }
        Value::Array(a) => {
            for child in a.iter_mut() {
                evaluate_in(child, env, ctx)?;
            }
        }
        Value::String(s) => *v = evaluate_template(s, env, ctx)?,
        _ => {}
    }
    Ok(())
}

/// Rewrites the methods of a parsed version (`semverParse(x).Major()`) as the fields the
/// evaluator's map exposes; the crate has no methods on plain values.
fn rewrite_methods(expression: &str) -> String {
    let mut out = expression.to_string();
    for m in [
        "Major",
        "Minor",
        "Patch",
        "Prerelease",
        "Metadata",
        "Original",
        "String",
    ] {
        out = out.replace(&format!(".{m}()"), &format!(".{m}"));
    }
    out
}

fn evaluate_expression(
    expression: &str,
    env: &Environment<'_>,
    ctx: &Context,
) -> Result<String, String> {
    let value = env
        .eval(&rewrite_methods(expression), ctx)
        .map_err(|e| e.to_string())?;
    Ok(match value {
        X::String(s) => s,
        other => json_text(&from_expr(&other)),
    })
}

/// The first expression in `template`: (text before, expression, text after).
fn next_expression(template: &str) -> Result<Option<(&str, &str, &str)>, String> {
    let Some((start, (open, close))) = DELIMITERS
        .iter()
        .filter_map(|d| template.find(d.0).map(|i| (i, *d)))
        .min_by_key(|(i, _)| *i)
    else {
        return Ok(None);
    };
    let body = start + open.len();
    let Some(len) = template[body..].find(close) else {
        return Err(format!(
            "unclosed expression: expected {close:?} but reached end of template"
        ));
    };
    Ok(Some((
        &template[..start],
        &template[body..body + len],
        &template[body + len + close.len()..],
    )))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Kargo's `EvaluateTemplate`: text without expressions stays as it is; otherwise the
/// expressions' results are joined into text, which then becomes a string (when quoted), a
/// number, a bool, a JSON value, or stays text.
pub fn evaluate_template(
    template: &str,
    env: &Environment<'_>,
    ctx: &Context,
) -> Result<Value, String> {
    if !DELIMITERS.iter().any(|(open, _)| template.contains(open)) {
        return Ok(Value::String(template.to_string()));
    }
    let mut result = String::new();
    let mut rest = template;
    while let Some((before, expression, after)) = next_expression(rest)? {
        result.push_str(before);
        result.push_str(&evaluate_expression(expression, env, ctx)?);
        rest = after;
    }
    result.push_str(rest);
    let removed_newline = result.ends_with('\n');
    if removed_newline {
        result.pop();
    }
    if result.len() > 1 && result.starts_with('"') && result.ends_with('"') {
        let mut s = result[1..result.len() - 1].to_string();
        if removed_newline {
            s.push('\n');
        }
        return Ok(Value::String(s));
    }
    if let Ok(f) = result.trim_start_matches('+').parse::<f64>()
        && f.is_finite()
        && !result.is_empty()
        && !result.starts_with('+')
    {
        return Ok(number(f));
    }
    if let Some(b) = parse_go_bool(&result) {
        return Ok(Value::Bool(b));
    }
    if let Ok(v) = serde_json::from_str::<Value>(&result) {
        return Ok(v);
    }
    if removed_newline {
        result.push('\n');
    }
    Ok(Value::String(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(template: &str, ctx: &Context) -> Result<Value, String> {
        let mut env = Environment::new();
        add_utility_functions(&mut env);
        evaluate_template(template, &env, ctx)
    }

    fn ctx() -> Context {
        let mut c = Context::default();
        c.insert(
            "vars",
            to_expr(&json!({"tag": "1.2.3", "n": 3, "flag": "true", "obj": {"b": 1, "a": 2}})),
        );
        c
    }

    #[test]
    fn whole_expressions_keep_their_type_and_text_is_reparsed() {
        let c = ctx();
        assert_eq!(eval("plain text", &c).unwrap(), json!("plain text"));
        assert_eq!(eval("${{ vars.n }}", &c).unwrap(), json!(3));
        assert_eq!(eval("${{ vars.n + 1 }}", &c).unwrap(), json!(4));
        assert_eq!(eval("${{ vars.tag }}", &c).unwrap(), json!("1.2.3"));
        assert_eq!(eval("v${{ vars.tag }}", &c).unwrap(), json!("v1.2.3"));
        // Kargo re-reads the joined text: a string that looks like a bool becomes one...
        assert_eq!(eval("${{ vars.flag }}", &c).unwrap(), json!(true));
        // ...unless quoted.
        assert_eq!(eval("${{ quote(vars.flag) }}", &c).unwrap(), json!("true"));
        assert_eq!(eval("${{ quote(vars.n) }}", &c).unwrap(), json!("3"));
        assert_eq!(
            eval("${{ vars.obj }}", &c).unwrap(),
            json!({"a": 2, "b": 1})
        );
        assert_eq!(
            eval("${% vars.n %}-${{ vars.n }}", &c).unwrap(),
            json!("3-3")
        );
        assert_eq!(
            eval("${{ vars.n", &c).unwrap_err(),
            "unclosed expression: expected \"}}\" but reached end of template"
        );
        assert_eq!(
            eval("${{ unsafeQuote(vars.obj) }}", &c).unwrap(),
            json!("{\"a\":2,\"b\":1}")
        );
        assert_eq!(
            eval("${{ semverParse(vars.tag).Minor() }}", &c).unwrap(),
            json!(2)
        );
        assert_eq!(
            eval("t", &c).unwrap(),
            json!("t"),
            "no expression, no parsing"
        );
        assert_eq!(eval("${{ 't' }}", &c).unwrap(), json!(true));
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(
            json_text(&json!({"z": 1, "a": [true]})),
            "{\"a\":[true],\"z\":1}"
        );
    }

    #[test]
    fn task_outputs_are_scoped_to_the_task() {
        let state = json!({"t::push": {"branch": "b"}, "other": {}, "u::x": 1});
        assert_eq!(
            task_outputs("t::open", &state),
            Some(json!({"push": {"branch": "b"}}))
        );
        assert_eq!(task_outputs("plain", &state), None);
    }
}
