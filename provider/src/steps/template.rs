//! A promotion template (a stage's, or a promotion task's steps) as Kargo runs it, and the
//! checks that need no cluster: step configs, expressions, and what they refer to.

use serde_json::Value as Json;

use super::expressions::{self, Argument, ArtifactCall, Reference, SyntaxError, has_expression};
use super::schema;
use super::suggest;

/// A value of the configuration: absent, not known yet (computed from other resources), or
/// known.
#[derive(Clone, Debug, PartialEq)]
pub enum Slot<T> {
    Absent,
    Unknown,
    Known(T),
}

impl<T> Slot<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Slot::Known(v) => Some(v),
            _ => None,
        }
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Slot::Unknown)
    }
}

/// One `{ name, value }` variable.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    pub name: Slot<String>,
    pub value: Slot<String>,
}

impl Var {
    /// Whether the variable gives a value (Kargo treats an empty one as none).
    fn has_value(&self) -> bool {
        match &self.value {
            Slot::Known(v) => !v.is_empty(),
            Slot::Unknown => true,
            Slot::Absent => false,
        }
    }
}

/// Whose steps these are: a stage's template sees only itself; a task's steps run inside
/// the stages that use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Stage,
    Task,
}

/// Which list a variable of the template comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarList {
    /// The stage's own `vars`.
    Stage,
    /// The promotion template's `vars`.
    Template,
    /// The promotion task's `vars`.
    Task,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKind {
    PromotionTask,
    ClusterPromotionTask,
}

/// A stage step's `task`.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRef {
    pub kind: TaskKind,
    pub name: Slot<String>,
}

/// One step, as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub uses: Slot<String>,
    pub task: Slot<TaskRef>,
    pub alias: Slot<String>,
    /// The `if` condition.
    pub condition: Slot<String>,
    pub vars: Slot<Vec<Var>>,
    /// The config, parsed (`Unknown` also when it is not a JSON object: that is reported
    /// elsewhere).
    pub config: Slot<Json>,
}

impl Step {
    /// The alias Kargo gives the step at `index`: its `as`, or `step-<n>`/`task-<n>`.
    /// `None` while that depends on values not known yet.
    pub fn alias(&self, index: usize) -> Option<String> {
        match (&self.alias, &self.task, &self.uses) {
            (Slot::Known(a), _, _) if !a.is_empty() => Some(a.clone()),
            (Slot::Unknown, _, _) | (_, Slot::Unknown, _) => None,
            (_, Slot::Known(_), _) => Some(format!("task-{}", index + 1)),
            _ => Some(format!("step-{}", index + 1)),
        }
    }
}

/// A stage's promotion template, or a promotion task.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub owner: Owner,
    /// The variables every step sees, in Kargo's order of evaluation (a stage's own, then
    /// its template's; a task's).
    pub vars: Vec<(VarList, Slot<Vec<Var>>)>,
    pub steps: Vec<Step>,
}

/// Where a finding belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A variable's value.
    Var { list: VarList, index: usize },
    /// A part of a step.
    Step { index: usize, part: Part },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Uses,
    Task,
    If,
    Config,
    /// The value of the step's variable at this index.
    Var(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub at: Location,
    pub summary: String,
    pub detail: String,
}

/// An `imageFrom`/`chartFrom`/`commitFrom` call, with its repository resolved when it is a
/// literal or a variable holding one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactUse {
    pub at: Location,
    pub call: ArtifactCall,
    pub repo: Option<String>,
}

/// What checking a template found, and what it leaves to checks across resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Analysis {
    pub findings: Vec<Finding>,
    pub artifacts: Vec<ArtifactUse>,
    /// Variables the steps read that the template does not define (for a task: those the
    /// stage running it must define), with the step reading each.
    pub needed_vars: Vec<(String, usize)>,
}

/// Where a string being checked sits, for messages: `checkout[0].branch`, `the condition`.
struct Spot<'a> {
    at: Location,
    what: &'a str,
}

/// Names visible to an expression: variables defined so far, and whether some name is not
/// known yet (then nothing can be called undefined).
struct Scope<'a> {
    names: Vec<&'a str>,
    later: Vec<&'a str>,
    open: bool,
}

impl<'a> Scope<'a> {
    fn new() -> Self {
        Scope {
            names: Vec::new(),
            later: Vec::new(),
            open: false,
        }
    }
    fn add(&mut self, vars: &'a Slot<Vec<Var>>) {
        match vars {
            Slot::Known(list) => {
                for v in list {
                    match &v.name {
                        Slot::Known(n) => self.names.push(n),
                        Slot::Unknown => self.open = true,
                        Slot::Absent => {}
                    }
                }
            }
            Slot::Unknown => self.open = true,
            Slot::Absent => {}
        }
    }
    fn with_prefix(&self, vars: &'a Slot<Vec<Var>>, upto: usize) -> Scope<'a> {
        let mut scope = Scope {
            names: self.names.clone(),
            later: Vec::new(),
            open: self.open,
        };
        if let Slot::Known(list) = vars {
            for (i, v) in list.iter().enumerate() {
                match (&v.name, i < upto) {
                    (Slot::Known(n), true) => scope.names.push(n),
                    (Slot::Known(n), false) if i > upto => scope.later.push(n),
                    (Slot::Unknown, true) => scope.open = true,
                    _ => {}
                }
            }
        } else if vars.is_unknown() {
            scope.open = true;
        }
        scope
    }
}

/// Checks a template: each built-in step's config against its schema, every expression's
/// syntax, and the variables and step outputs expressions refer to.
pub fn check(template: &Template) -> Analysis {
    let mut out = Analysis::default();
    let aliases: Vec<Option<String>> = template
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| s.alias(i))
        .collect();
    // Promotion-level variables see only those before them, and no step outputs.
    let mut before = Scope::new();
    for (list, vars) in &template.vars {
        if let Slot::Known(entries) = vars {
            for (index, var) in entries.iter().enumerate() {
                let scope = before.with_prefix(vars, index);
                if let Slot::Known(value) = &var.value {
                    let spot = Spot {
                        at: Location::Var { list: *list, index },
                        what: "the value",
                    };
                    let ctx = Context {
                        template,
                        aliases: &aliases,
                        step: None,
                        scope: &scope,
                    };
                    check_string(value, &spot, &ctx, &mut out);
                }
            }
        }
        before.add(vars);
    }
    for (i, step) in template.steps.iter().enumerate() {
        check_step(template, &aliases, &before, i, step, &mut out);
    }
    out
}

struct Context<'a> {
    template: &'a Template,
    aliases: &'a [Option<String>],
    /// The step the expression belongs to; `None` for promotion-level variables.
    step: Option<usize>,
    scope: &'a Scope<'a>,
}

fn check_step(
    template: &Template,
    aliases: &[Option<String>],
    promotion: &Scope<'_>,
    i: usize,
    step: &Step,
    out: &mut Analysis,
) {
    let at = |part| Location::Step { index: i, part };
    if let Slot::Known(vars) = &step.vars {
        for (j, var) in vars.iter().enumerate() {
            if let Slot::Known(value) = &var.value {
                let scope = promotion.with_prefix(&step.vars, j);
                let ctx = Context {
                    template,
                    aliases,
                    step: Some(i),
                    scope: &scope,
                };
                let spot = Spot {
                    at: at(Part::Var(j)),
                    what: "the value",
                };
                check_string(value, &spot, &ctx, out);
            }
        }
    }
    let mut scope = Scope {
        names: promotion.names.clone(),
        later: Vec::new(),
        open: promotion.open,
    };
    scope.add(&step.vars);
    let ctx = Context {
        template,
        aliases,
        step: Some(i),
        scope: &scope,
    };
    if let Slot::Known(condition) = &step.condition {
        if has_expression(condition) {
            let spot = Spot {
                at: at(Part::If),
                what: "the condition",
            };
            check_string(condition, &spot, &ctx, out);
        } else {
            out.findings.push(Finding {
                severity: Severity::Error,
                at: at(Part::If),
                summary: "Condition is not an expression".into(),
                detail: format!(
                    "`if` must be an expression that evaluates to true or false, such as \
                     `${{{{ vars.enabled == 'true' }}}}`; Kargo fails the step when the condition \
                     is a plain string like {condition:?}."
                ),
            });
        }
    }
    // A step running a task has no config of its own (and `uses` with `task` is reported
    // elsewhere).
    let (Slot::Known(uses), false) = (&step.uses, matches!(step.task, Slot::Known(_))) else {
        return;
    };
    match (&step.config, schema::is_builtin(uses)) {
        (Slot::Known(config), true) => {
            let problems = schema::check_config(uses, config).unwrap_or_default();
            for p in problems {
                out.findings.push(Finding {
                    severity: Severity::Error,
                    at: at(Part::Config),
                    summary: format!("Invalid {uses} config"),
                    detail: p.message,
                });
            }
        }
        (Slot::Absent, true) => {
            let problems =
                schema::check_config(uses, &Json::Object(Default::default())).unwrap_or_default();
            if !problems.is_empty() {
                let list: Vec<String> = problems.into_iter().map(|p| p.message).collect();
                out.findings.push(Finding {
                    severity: Severity::Error,
                    at: at(Part::Uses),
                    summary: format!("Missing {uses} config"),
                    detail: format!("The {uses} step needs a config: {}.", list.join("; ")),
                });
            }
        }
        (config, false) => {
            let hint = suggest(uses, schema::builtin_steps())
                .map(|s| format!(" Did you mean {s:?}?"))
                .unwrap_or_default();
            if !config.is_unknown() && (matches!(config, Slot::Known(_)) || !hint.is_empty()) {
                out.findings.push(Finding {
                    severity: Severity::Warning,
                    at: at(if matches!(config, Slot::Known(_)) {
                        Part::Config
                    } else {
                        Part::Uses
                    }),
                    summary: "Step config not checked".into(),
                    detail: format!(
                        "{uses:?} is not a built-in step of Kargo {} (a custom or Akuity Platform \
                         step?), so its config cannot be checked before a promotion runs it.{hint}",
                        schema::kargo_version()
                    ),
                });
            }
        }
        (Slot::Unknown, true) => {}
    }
    if let Slot::Known(config) = &step.config {
        let mut strings = Vec::new();
        config_strings(config, String::new(), &mut strings);
        for (pointer, value) in strings {
            let what = schema::display_path(&pointer);
            let spot = Spot {
                at: at(Part::Config),
                what: &what,
            };
            check_string(value, &spot, &ctx, out);
        }
    }
}

/// The string values of a config (keys are never evaluated), with their JSON pointers.
fn config_strings<'a>(value: &'a Json, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Json::String(s) => out.push((at, s)),
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                config_strings(item, format!("{at}/{i}"), out);
            }
        }
        Json::Object(map) => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                config_strings(v, format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// The line of `value` holding the error, with a caret under it.
fn excerpt(value: &str, error: &SyntaxError) -> String {
    let offset = error.offset.min(value.len());
    let start = value[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = value[offset..]
        .find('\n')
        .map_or(value.len(), |i| offset + i);
    format!(
        "\n\n    {}\n    {}^",
        &value[start..end],
        " ".repeat(error.column.saturating_sub(1))
    )
}

fn check_string(value: &str, spot: &Spot<'_>, ctx: &Context<'_>, out: &mut Analysis) {
    let references = match expressions::analyse(value) {
        Ok(r) => r,
        Err(e) => {
            out.findings.push(Finding {
                severity: Severity::Error,
                at: spot.at.clone(),
                summary: "Invalid expression".into(),
                detail: format!(
                    "In {}, column {}: {}.{}",
                    spot.what,
                    e.column,
                    e.message,
                    excerpt(value, &e)
                ),
            });
            return;
        }
    };
    for reference in references {
        check_reference(&reference, spot, ctx, out);
    }
}

fn check_reference(reference: &Reference, spot: &Spot<'_>, ctx: &Context<'_>, out: &mut Analysis) {
    let task = ctx.template.owner == Owner::Task;
    let mut report = |severity, summary: &str, detail: String| {
        out.findings.push(Finding {
            severity,
            at: spot.at.clone(),
            summary: summary.to_string(),
            detail,
        });
    };
    match reference {
        Reference::Var(name) => {
            let scope = ctx.scope;
            if scope.names.contains(&name.as_str()) || scope.open {
                return;
            }
            let hint = suggest(name, scope.names.iter().copied())
                .map(|s| format!(" Did you mean `vars.{s}`?"))
                .unwrap_or_default();
            if scope.later.contains(&name.as_str()) {
                report(
                    Severity::Error,
                    "Variable used before it is defined",
                    format!(
                        "`vars.{name}` in {} is defined after this variable; Kargo evaluates \
                         variables in order, so here it is null. Move its definition up.",
                        spot.what
                    ),
                );
            } else if task {
                if let Some(step) = ctx.step {
                    out.needed_vars.push((name.clone(), step));
                }
                let mut report = |severity, summary: &str, detail: String| {
                    out.findings.push(Finding {
                        severity,
                        at: spot.at.clone(),
                        summary: summary.to_string(),
                        detail,
                    });
                };
                report(
                    Severity::Warning,
                    "Variable not declared by the task",
                    format!(
                        "`vars.{name}` in {} is not declared in the task's `vars` or the step's; \
                         every stage that runs the task must define it. Declare it in the task's \
                         `vars` (without a value to require it from the stage).{hint}",
                        spot.what
                    ),
                );
            } else {
                let defined_by = match ctx.step {
                    Some(_) => "the stage, its promotion template or the step",
                    None => "the variables before it",
                };
                report(
                    Severity::Error,
                    "Undefined variable",
                    format!(
                        "`vars.{name}` in {} is not defined by {defined_by}; Kargo would \
                         evaluate it to null. Define it in `vars`.{hint}",
                        spot.what
                    ),
                );
            }
        }
        Reference::Output(alias) => {
            let Some(step) = ctx.step else {
                if ctx.template.owner == Owner::Stage {
                    report(
                        Severity::Error,
                        "Step outputs not available here",
                        format!(
                            "`outputs.{alias}` in {}: the stage's and the template's variables \
                             are evaluated before any step runs; read step outputs in a step's \
                             `config`, `if` or `vars`.",
                            spot.what
                        ),
                    );
                }
                return;
            };
            if task {
                if ctx.aliases.iter().flatten().any(|a| a == alias) {
                    report(
                        Severity::Error,
                        "Task step outputs are read with task.outputs",
                        format!(
                            "`outputs.{alias}` in {}: inside a promotion task, Kargo prefixes \
                             the aliases of the task's steps, so a step reads another's outputs \
                             as `task.outputs.{alias}`.",
                            spot.what
                        ),
                    );
                }
                return;
            }
            check_alias(alias, "outputs", step, spot, ctx, out, true);
        }
        Reference::TaskOutput(alias) => {
            if !task {
                report(
                    Severity::Error,
                    "task.outputs outside a task",
                    format!(
                        "`task.outputs.{alias}` in {}: `task` is only defined for the steps of a \
                         promotion task; a stage's steps read outputs as `outputs.{alias}`.",
                        spot.what
                    ),
                );
                return;
            }
            if let Some(step) = ctx.step {
                check_alias(alias, "task.outputs", step, spot, ctx, out, false);
            }
        }
        Reference::Task => {
            if !task {
                report(
                    Severity::Error,
                    "task outside a task",
                    format!(
                        "`task` in {} is only defined for the steps of a promotion task.",
                        spot.what
                    ),
                );
            }
        }
        Reference::Artifact(call) => {
            let repo = match &call.repo {
                Argument::Literal(r) => Some(r.clone()),
                Argument::Var(name) => literal_var(ctx, name),
                Argument::Other => None,
            };
            out.artifacts.push(ArtifactUse {
                at: spot.at.clone(),
                call: call.clone(),
                repo,
            });
        }
    }
}

/// Checks that `alias` names a step before `step`. A stage step running a task also owns the
/// aliases `<alias>::<task step>`.
fn check_alias(
    alias: &str,
    root: &str,
    step: usize,
    spot: &Spot<'_>,
    ctx: &Context<'_>,
    out: &mut Analysis,
    task_prefixes: bool,
) {
    let matches = |k: usize, a: &str| {
        a == alias
            || (task_prefixes
                && matches!(ctx.template.steps[k].task, Slot::Known(_))
                && alias.starts_with(&format!("{a}::")))
    };
    let found = ctx
        .aliases
        .iter()
        .enumerate()
        .find(|(k, a)| a.as_deref().is_some_and(|a| matches(*k, a)))
        .map(|(k, _)| k);
    let (summary, detail) = match found {
        Some(k) if k < step => return,
        Some(k) if k == step => (
            "Step reads its own outputs",
            format!(
                "`{root}.{alias}` in {} is this step's own alias; its outputs exist only after it ran.",
                spot.what
            ),
        ),
        Some(k) => (
            "Step output read before the step runs",
            format!(
                "`{root}.{alias}` in {} names step {k}, which runs after this one (step {step}); \
                 a step can only read the outputs of the steps before it.",
                spot.what
            ),
        ),
        None if ctx.aliases.iter().any(Option::is_none) => return,
        None => {
            let earlier = ctx.aliases[..step].iter().flatten().map(String::as_str);
            let hint = suggest(alias, earlier)
                .map(|s| format!(" Did you mean `{root}.{s}`?"))
                .unwrap_or_default();
            (
                "Unknown step alias",
                format!(
                    "`{root}.{alias}` in {}: no step before this one has the alias {alias:?}; \
                     give the step that produces it `as = \"{alias}\"`.{hint}",
                    spot.what
                ),
            )
        }
    };
    out.findings.push(Finding {
        severity: Severity::Error,
        at: spot.at.clone(),
        summary: summary.into(),
        detail,
    });
}

/// The literal value of variable `name` as the step sees it (its last definition), when that
/// value is known and holds no expression.
fn literal_var(ctx: &Context<'_>, name: &str) -> Option<String> {
    let mut lists: Vec<&Slot<Vec<Var>>> = ctx.template.vars.iter().map(|(_, v)| v).collect();
    if let Some(step) = ctx.step {
        lists.push(&ctx.template.steps[step].vars);
    }
    last_value(lists.into_iter(), name)
}

/// The last known definition of `name` in `lists`, when it is a plain string.
pub fn last_value<'a>(
    lists: impl Iterator<Item = &'a Slot<Vec<Var>>>,
    name: &str,
) -> Option<String> {
    let mut value = None;
    for list in lists {
        match list {
            Slot::Known(vars) => {
                for v in vars {
                    match (&v.name, &v.value) {
                        (Slot::Known(n), Slot::Known(val)) if n == name && !val.is_empty() => {
                            value = Some(val.clone())
                        }
                        (Slot::Known(n), Slot::Unknown) if n == name => value = None,
                        (Slot::Unknown, _) => value = None,
                        _ => {}
                    }
                }
            }
            Slot::Unknown => value = None,
            Slot::Absent => {}
        }
    }
    value.filter(|v| !has_expression(v))
}

/// What a stage step running `task` (at `step` of `stage`) lacks: values for the task's
/// variables that have no default, and variables the task reads without declaring. Also the
/// task's artifact calls, with repositories resolved through the variables as Kargo
/// inflates them (the task's defaults, unless the stage sets them; then the step's).
pub fn check_task_use(
    stage: &Template,
    step: usize,
    task: &Template,
    task_name: &str,
    task_analysis: &Analysis,
) -> (Vec<Finding>, Vec<ArtifactUse>) {
    let at = Location::Step {
        index: step,
        part: Part::Task,
    };
    let stage_step = &stage.steps[step];
    let promotion: Vec<&Slot<Vec<Var>>> = stage.vars.iter().map(|(_, v)| v).collect();
    let lists_open = promotion
        .iter()
        .chain(std::iter::once(&&stage_step.vars))
        .any(|l| {
            l.is_unknown()
                || l.known()
                    .is_some_and(|vs| vs.iter().any(|v| v.name.is_unknown()))
        });
    let set_by = |name: &str, lists: &[&Slot<Vec<Var>>]| {
        lists.iter().any(|l| {
            l.known().is_some_and(|vs| {
                vs.iter()
                    .any(|v| v.name.known().is_some_and(|n| n == name) && v.has_value())
            })
        })
    };
    let defined = |name: &str, lists: &[&Slot<Vec<Var>>]| {
        lists.iter().any(|l| {
            l.known()
                .is_some_and(|vs| vs.iter().any(|v| v.name.known().is_some_and(|n| n == name)))
        })
    };
    let mut findings = Vec::new();
    if lists_open {
        return (findings, Vec::new());
    }
    let mut with_step: Vec<&Slot<Vec<Var>>> = promotion.clone();
    with_step.push(&stage_step.vars);
    let task_vars: Vec<&Var> = task
        .vars
        .iter()
        .filter_map(|(_, l)| l.known())
        .flatten()
        .collect();
    for var in &task_vars {
        let Slot::Known(name) = &var.name else {
            continue;
        };
        if !var.has_value() && !set_by(name, &with_step) {
            findings.push(Finding {
                severity: Severity::Error,
                at: at.clone(),
                summary: "Missing task variable".into(),
                detail: format!(
                    "The task {task_name:?} needs a value for its variable {name:?}, which has no \
                     default: set it in this step's `vars` (or the stage's). Kargo refuses to \
                     create the promotion otherwise."
                ),
            });
        }
    }
    let mut seen = Vec::new();
    for (name, task_step) in &task_analysis.needed_vars {
        if seen.contains(name) || defined(name, &with_step) {
            continue;
        }
        seen.push(name.clone());
        findings.push(Finding {
            severity: Severity::Error,
            at: at.clone(),
            summary: "Variable missing for the task".into(),
            detail: format!(
                "Step {task_step} of the task {task_name:?} reads `vars.{name}`, which neither \
                 the task nor this stage defines: add it to this step's `vars`."
            ),
        });
    }
    // The variables an inflated task step sees, in Kargo's order: the stage's, the task's
    // defaults it does not set, this step's, then the task step's own.
    let defaults: Slot<Vec<Var>> = Slot::Known(
        task_vars
            .iter()
            .filter(|v| v.has_value() && !v.name.known().is_some_and(|n| set_by(n, &promotion)))
            .map(|v| (*v).clone())
            .collect(),
    );
    let artifacts = task_analysis
        .artifacts
        .iter()
        .map(|u| {
            let repo = match &u.call.repo {
                Argument::Literal(r) => Some(r.clone()),
                Argument::Var(name) => {
                    let inner = match &u.at {
                        Location::Step { index, .. } => task.steps.get(*index).map(|s| &s.vars),
                        Location::Var { .. } => None,
                    };
                    let mut chain: Vec<&Slot<Vec<Var>>> = promotion.clone();
                    chain.push(&defaults);
                    chain.push(&stage_step.vars);
                    chain.extend(inner);
                    last_value(chain.into_iter(), name)
                }
                Argument::Other => None,
            };
            ArtifactUse {
                at: at.clone(),
                call: u.call.clone(),
                repo,
            }
        })
        .collect();
    (findings, artifacts)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn var(name: &str, value: &str) -> Var {
        Var {
            name: Slot::Known(name.into()),
            value: if value.is_empty() {
                Slot::Absent
            } else {
                Slot::Known(value.into())
            },
        }
    }

    fn step(uses: &str, alias: Option<&str>, config: Json) -> Step {
        Step {
            uses: Slot::Known(uses.into()),
            task: Slot::Absent,
            alias: alias.map_or(Slot::Absent, |a| Slot::Known(a.into())),
            condition: Slot::Absent,
            vars: Slot::Absent,
            config: Slot::Known(config),
        }
    }

    fn stage(vars: Vec<Var>, steps: Vec<Step>) -> Template {
        Template {
            owner: Owner::Stage,
            vars: vec![(VarList::Template, Slot::Known(vars))],
            steps,
        }
    }

    fn details(analysis: &Analysis) -> Vec<(Severity, String, String)> {
        analysis
            .findings
            .iter()
            .map(|f| (f.severity, f.summary.clone(), f.detail.clone()))
            .collect()
    }

    #[test]
    fn outputs_name_earlier_steps() {
        let t = stage(
            vec![],
            vec![
                step(
                    "git-clone",
                    Some("clone"),
                    json!({"repoURL": "https://x", "checkout": [{"path": "./out", "branch": "${{ outputs.push.branch }}"}]}),
                ),
                step(
                    "git-push",
                    Some("push"),
                    json!({"path": "./out", "targetBranch": "${{ outputs['clone'].commits }}"}),
                ),
                step(
                    "git-commit",
                    None,
                    json!({"path": "./out", "message": "${{ outputs.clon.x }} ${{ outputs['step-3'] }} ${{ outputs['step-1'] }}"}),
                ),
            ],
        );
        let found = details(&check(&t));
        assert_eq!(found.len(), 4, "{found:#?}");
        assert_eq!(found[0].1, "Step output read before the step runs");
        assert!(
            found[0]
                .2
                .contains("names step 1, which runs after this one (step 0)")
        );
        assert_eq!(found[1].1, "Unknown step alias");
        assert!(
            found[1].2.ends_with("Did you mean `outputs.clone`?"),
            "{}",
            found[1].2
        );
        assert_eq!(found[2].1, "Step reads its own outputs");
        assert_eq!(
            found[3].1, "Unknown step alias",
            "step-1 is not an alias: step 0 has one"
        );
    }

    #[test]
    fn vars_follow_kargo_precedence() {
        let mut t = stage(
            vec![
                var("repo", "https://x"),
                var("late", "${{ vars.later }}"),
                var("later", "v"),
            ],
            vec![step(
                "git-clone",
                None,
                json!({"repoURL": "${{ vars.repo }}", "checkout": [{"path": "${{ vars.dir }}"}]}),
            )],
        );
        t.steps[0].vars = Slot::Known(vec![var("dir", "./out")]);
        assert_eq!(
            details(&check(&t)),
            vec![(
                Severity::Error,
                "Variable used before it is defined".into(),
                "`vars.later` in the value is defined after this variable; Kargo evaluates \
                 variables in order, so here it is null. Move its definition up."
                    .into()
            )]
        );
        t.steps[0].vars = Slot::Known(vec![var("dri", "./out")]);
        let found = details(&check(&t));
        assert_eq!(found[1].1, "Undefined variable");
        assert!(found[1].2.contains("`vars.dir` in checkout[0].path is not defined by the stage, its promotion template or the step"));
        assert!(
            found[1].2.ends_with("Did you mean `vars.dri`?"),
            "{}",
            found[1].2
        );
        // An unknown variable name might be the one: nothing is reported.
        t.steps[0].vars = Slot::Known(vec![Var {
            name: Slot::Unknown,
            value: Slot::Unknown,
        }]);
        assert_eq!(check(&t).findings.len(), 1);
    }

    #[test]
    fn task_steps_read_each_other_through_task_outputs() {
        let t = Template {
            owner: Owner::Task,
            vars: vec![(VarList::Task, Slot::Known(vec![var("repo", "")]))],
            steps: vec![
                step(
                    "git-push",
                    Some("push"),
                    json!({"path": "./out", "generateTargetBranch": true}),
                ),
                step(
                    "git-open-pr",
                    None,
                    json!({
                        "repoURL": "${{ vars.repo }}",
                        "sourceBranch": "${{ outputs.push.branch }}",
                        "targetBranch": "${{ task.outputs.pushh.branch }}",
                        "title": "${{ vars.title }}",
                    }),
                ),
            ],
        };
        let analysis = check(&t);
        let found = details(&analysis);
        assert_eq!(
            found.iter().map(|f| f.1.as_str()).collect::<Vec<_>>(),
            vec![
                "Task step outputs are read with task.outputs",
                "Unknown step alias",
                "Variable not declared by the task",
            ],
            "{found:#?}"
        );
        assert_eq!(found[2].0, Severity::Warning);
        assert_eq!(analysis.needed_vars, vec![("title".to_string(), 1)]);
        // In a stage, `task` does not exist.
        let s = stage(
            vec![],
            vec![step(
                "fail",
                None,
                json!({"message": "${{ task.outputs.x }}"}),
            )],
        );
        assert_eq!(details(&check(&s))[0].1, "task.outputs outside a task");
    }

    #[test]
    fn conditions_are_expressions() {
        let mut s = stage(
            vec![],
            vec![step("git-clear", None, json!({"path": "./out"}))],
        );
        s.steps[0].condition = Slot::Known("true".into());
        assert_eq!(details(&check(&s))[0].1, "Condition is not an expression");
        s.steps[0].condition = Slot::Known("${{ vars.open == }}".into());
        let found = details(&check(&s));
        assert_eq!(found[0].1, "Invalid expression");
        assert_eq!(
            found[0].2,
            "In the condition, column 18: the expression ends where a value is expected.\n\n    \
             ${{ vars.open == }}\n                     ^"
        );
    }

    #[test]
    fn custom_steps_get_a_warning_and_typos_a_hint() {
        let s = stage(
            vec![],
            vec![
                step("my-custom-step", None, json!({"anything": 1})),
                step("git-clon", None, json!({})),
            ],
        );
        let found = details(&check(&s));
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|f| f.0 == Severity::Warning));
        assert!(
            found[0]
                .2
                .starts_with("\"my-custom-step\" is not a built-in step of Kargo v1.11.2")
        );
        assert!(
            found[1].2.ends_with("Did you mean \"git-clone\"?"),
            "{}",
            found[1].2
        );
    }

    #[test]
    fn task_use_needs_inputs_and_resolves_artifacts() {
        let task = Template {
            owner: Owner::Task,
            vars: vec![(
                VarList::Task,
                Slot::Known(vec![
                    var("image", "ghcr.io/acme/default"),
                    var("region", ""),
                ]),
            )],
            steps: vec![step(
                "kustomize-set-image",
                None,
                json!({
                    "path": "./src/${{ vars.region }}/${{ vars.env }}",
                    "images": [{"image": "${{ vars.image }}", "tag": "${{ imageFrom(vars.image).Tag }}"}],
                }),
            )],
        };
        let analysis = check(&task);
        let mut s = stage(
            vec![var("image", "ghcr.io/acme/api")],
            vec![Step {
                uses: Slot::Absent,
                task: Slot::Known(TaskRef {
                    kind: TaskKind::PromotionTask,
                    name: Slot::Known("t".into()),
                }),
                alias: Slot::Absent,
                condition: Slot::Absent,
                vars: Slot::Absent,
                config: Slot::Absent,
            }],
        );
        let (found, artifacts) = check_task_use(&s, 0, &task, "t", &analysis);
        let summaries: Vec<&str> = found.iter().map(|f| f.summary.as_str()).collect();
        assert_eq!(
            summaries,
            vec!["Missing task variable", "Variable missing for the task"]
        );
        assert!(found[1].detail.contains("reads `vars.env`"));
        assert_eq!(
            artifacts[0].repo.as_deref(),
            Some("ghcr.io/acme/api"),
            "the stage's value wins over the default"
        );
        s.steps[0].vars = Slot::Known(vec![
            var("region", "eu"),
            var("env", "prod"),
            var("image", "ghcr.io/acme/web"),
        ]);
        let (found, artifacts) = check_task_use(&s, 0, &task, "t", &analysis);
        assert!(found.is_empty(), "{found:#?}");
        assert_eq!(artifacts[0].repo.as_deref(), Some("ghcr.io/acme/web"));
    }
}
