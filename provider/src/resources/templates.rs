//! Promotion templates of stages and tasks in Terraform values: read into `steps`' model,
//! checked, and the findings placed on attribute paths, including checks across resources.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::validators::naming;
use super::warehouse::{normalize_chart, normalize_git, normalize_image};
use crate::plugin::{AttributePath, Diagnostic, Diagnostics, Value};
use crate::steps::expressions::ArtifactKind;
use crate::steps::template::{
    self, Analysis, ArtifactUse, Finding, Location, Owner, Part, Severity, Slot, Step, TaskKind,
    TaskRef, Template, Var, VarList,
};

fn text(v: &Value) -> Slot<String> {
    match v {
        Value::Unknown => Slot::Unknown,
        Value::String(s) => Slot::Known(s.clone()),
        _ => Slot::Absent,
    }
}

fn vars(v: &Value) -> Slot<Vec<Var>> {
    match v {
        Value::Unknown => Slot::Unknown,
        Value::Null => Slot::Absent,
        list => Slot::Known(
            list.elements()
                .iter()
                .map(|e| match e {
                    Value::Unknown => Var {
                        name: Slot::Unknown,
                        value: Slot::Unknown,
                    },
                    e => Var {
                        name: text(e.get("name")),
                        value: text(e.get("value")),
                    },
                })
                .collect(),
        ),
    }
}

fn step(v: &Value) -> Step {
    if v.is_unknown() {
        return Step {
            uses: Slot::Unknown,
            task: Slot::Unknown,
            alias: Slot::Unknown,
            condition: Slot::Unknown,
            vars: Slot::Unknown,
            config: Slot::Unknown,
        };
    }
    let task = match v.get("task") {
        Value::Unknown => Slot::Unknown,
        Value::Null => Slot::Absent,
        t => Slot::Known(TaskRef {
            kind: match t.get("kind").as_str() {
                Some("ClusterPromotionTask") => TaskKind::ClusterPromotionTask,
                _ => TaskKind::PromotionTask,
            },
            name: text(t.get("name")),
        }),
    };
    // A config that is not a JSON object is reported by the attribute's own validator.
    let config = match text(v.get("config")) {
        Slot::Known(s) => match serde_json::from_str::<serde_json::Value>(&s) {
            Ok(json @ serde_json::Value::Object(_)) => Slot::Known(json),
            _ => Slot::Unknown,
        },
        other => match other {
            Slot::Unknown => Slot::Unknown,
            _ => Slot::Absent,
        },
    };
    Step {
        uses: text(v.get("uses")),
        task,
        alias: text(v.get("as")),
        condition: text(v.get("if")),
        vars: vars(v.get("vars")),
        config,
    }
}

/// A `kargo_stage` configuration's promotion template, or `None` when it has none (or its
/// steps are not known yet).
pub(crate) fn stage_template(config: &Value) -> Option<Template> {
    let template = config.get("promotion_template");
    let steps = template.get("steps");
    if template.is_null() || template.is_unknown() || steps.is_unknown() {
        return None;
    }
    Some(Template {
        owner: Owner::Stage,
        vars: vec![
            (VarList::Stage, vars(config.get("vars"))),
            (VarList::Template, vars(template.get("vars"))),
        ],
        steps: steps.elements().iter().map(step).collect(),
    })
}

/// A `kargo_promotion_task` / `kargo_cluster_promotion_task` configuration's steps.
pub(crate) fn task_template(config: &Value) -> Option<Template> {
    let steps = config.get("steps");
    if steps.is_unknown() {
        return None;
    }
    Some(Template {
        owner: Owner::Task,
        vars: vec![(VarList::Task, vars(config.get("vars")))],
        steps: steps.elements().iter().map(step).collect(),
    })
}

/// The attribute a finding belongs to; `steps` is where the steps are (`steps` or
/// `promotion_template.steps`).
fn attribute_path(at: &Location, steps: &AttributePath) -> AttributePath {
    match at {
        Location::Var { list, index } => match list {
            VarList::Stage | VarList::Task => AttributePath::attr("vars"),
            VarList::Template => AttributePath::attr("promotion_template").join_attr("vars"),
        }
        .join_index(*index)
        .join_attr("value"),
        Location::Step { index, part } => {
            let step = steps.join_index(*index);
            match part {
                Part::Uses => step.join_attr("uses"),
                Part::Task => step.join_attr("task"),
                Part::If => step.join_attr("if"),
                Part::Config => step.join_attr("config"),
                Part::Var(j) => step.join_attr("vars").join_index(*j).join_attr("value"),
            }
        }
    }
}

/// Findings as diagnostics whose text names the attribute (Terraform cannot point inside
/// nested attributes).
fn emit(findings: Vec<Finding>, steps: &AttributePath, diags: &mut Diagnostics) {
    for f in findings {
        push(
            diags,
            f.severity,
            attribute_path(&f.at, steps),
            &f.summary,
            &f.detail,
        );
    }
}

fn push(
    diags: &mut Diagnostics,
    severity: Severity,
    at: AttributePath,
    summary: &str,
    detail: &str,
) {
    let detail = naming(&at, detail);
    let d = match severity {
        Severity::Error => Diagnostic::error(summary, detail),
        Severity::Warning => Diagnostic::warning(summary, detail),
    };
    diags.push(d.at(at));
}

/// What a warehouse subscribes to, normalised the way Kargo compares repositories. `None`
/// entries stand for subscriptions whose repository is not known yet.
#[derive(Clone, Debug, Default)]
struct Subscriptions {
    images: Vec<Option<String>>,
    charts: Vec<Option<(String, Option<String>)>>,
    git: Vec<Option<String>>,
}

impl Subscriptions {
    fn complete(&self) -> bool {
        self.images.iter().all(Option::is_some)
            && self.charts.iter().all(Option::is_some)
            && self.git.iter().all(Option::is_some)
    }

    fn has(&self, kind: ArtifactKind, repo: &str, chart: Option<&str>) -> bool {
        match kind {
            ArtifactKind::Image => {
                let repo = normalize_image(repo);
                self.images.iter().flatten().any(|r| *r == repo)
            }
            ArtifactKind::Git => {
                let repo = normalize_git(repo);
                self.git.iter().flatten().any(|r| *r == repo)
            }
            ArtifactKind::Chart => {
                let repo = normalize_chart(repo);
                self.charts.iter().flatten().any(|(r, name)| {
                    *r == repo
                        && match (chart, name) {
                            (Some(c), Some(n)) => c == n,
                            _ => true,
                        }
                })
            }
        }
    }
}

#[derive(Default)]
struct Index {
    warehouses: BTreeMap<(String, String), Subscriptions>,
    tasks: BTreeMap<(TaskKind, String, String), (Template, Analysis)>,
}

/// The warehouses and promotion tasks this configuration declares, as far as their values
/// are known, recorded as Terraform validates them. Terraform validates a resource after
/// those it refers to, so a stage that names its warehouses and tasks through their
/// resources (`kargo_warehouse.app.name`) is checked against them; a stage that names them
/// with plain strings is checked against those validated before it.
#[derive(Clone, Default)]
pub struct Pipeline(Arc<Mutex<Index>>);

impl Pipeline {
    fn with<R>(&self, f: impl FnOnce(&mut Index) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a `kargo_warehouse` configuration's subscriptions.
    pub(crate) fn record_warehouse(&self, config: &Value) {
        let (Some(project), Some(name)) =
            (config.get("project").as_str(), config.get("name").as_str())
        else {
            return;
        };
        let subs = config.get("subscriptions");
        if subs.is_unknown() {
            return;
        }
        let mut found = Subscriptions::default();
        for sub in subs.elements() {
            if sub.is_unknown() {
                found.images.push(None);
                continue;
            }
            let image = sub.get("image");
            if !image.is_null() {
                found
                    .images
                    .push(image.get("repo_url").as_str().map(normalize_image));
            }
            let git = sub.get("git");
            if !git.is_null() {
                found
                    .git
                    .push(git.get("repo_url").as_str().map(normalize_git));
            }
            let chart = sub.get("chart");
            if !chart.is_null() {
                found
                    .charts
                    .push(match (chart.get("repo_url").as_str(), chart.get("name")) {
                        (Some(_), Value::Unknown) | (None, _) => None,
                        (Some(repo), n) => {
                            Some((normalize_chart(repo), n.as_str().map(str::to_string)))
                        }
                    });
            }
        }
        self.with(|i| {
            i.warehouses
                .insert((project.to_string(), name.to_string()), found)
        });
    }

    /// Records a promotion task's steps; `project` is `None` for a cluster promotion task.
    fn record_task(
        &self,
        kind: TaskKind,
        project: Option<&str>,
        name: &str,
        task: (Template, Analysis),
    ) {
        let key = (
            kind,
            project.unwrap_or_default().to_string(),
            name.to_string(),
        );
        self.with(|i| i.tasks.insert(key, task));
    }
}

/// Whether the template checks run: `KARGO_STEP_CHECKS=off` in Terraform's environment turns
/// them off, for templates written for a Kargo release whose steps differ from v1.11's.
pub fn checks_enabled() -> bool {
    std::env::var("KARGO_STEP_CHECKS").map_or(true, |v| !v.eq_ignore_ascii_case("off"))
}

/// Checks a `kargo_promotion_task` or `kargo_cluster_promotion_task` configuration's steps
/// and records them for the stages that run the task.
pub(crate) fn validate_task(
    config: &Value,
    kind: TaskKind,
    pipeline: &Pipeline,
    diags: &mut Diagnostics,
) {
    let Some(task) = task_template(config).filter(|_| checks_enabled()) else {
        return;
    };
    let analysis = template::check(&task);
    emit(
        analysis.findings.clone(),
        &AttributePath::attr("steps"),
        diags,
    );
    let project = config.get("project").as_str();
    let complete = config.get("vars").is_wholly_known() && config.get("steps").is_wholly_known();
    if let (Some(name), true) = (config.get("name").as_str(), complete)
        && (kind == TaskKind::ClusterPromotionTask || project.is_some())
    {
        pipeline.record_task(kind, project, name, (task, analysis));
    }
}

/// Checks a `kargo_stage` configuration's promotion template: its own steps, the tasks it
/// runs (when this configuration declares them), and the warehouses its artifact functions
/// read from.
pub(crate) fn validate_stage(config: &Value, pipeline: &Pipeline, diags: &mut Diagnostics) {
    let Some(stage) = stage_template(config).filter(|_| checks_enabled()) else {
        return;
    };
    let steps_at = AttributePath::attr("promotion_template").join_attr("steps");
    let analysis = template::check(&stage);
    emit(analysis.findings, &steps_at, diags);
    let Some(project) = config.get("project").as_str() else {
        return;
    };
    let mut artifacts = analysis.artifacts;
    for (i, step) in stage.steps.iter().enumerate() {
        let Slot::Known(TaskRef {
            kind,
            name: Slot::Known(name),
        }) = &step.task
        else {
            continue;
        };
        let key = (
            *kind,
            if *kind == TaskKind::PromotionTask {
                project.to_string()
            } else {
                String::new()
            },
            name.clone(),
        );
        let Some((task, task_analysis)) = pipeline.with(|i| i.tasks.get(&key).cloned()) else {
            continue;
        };
        let (findings, uses) = template::check_task_use(&stage, i, &task, name, &task_analysis);
        emit(findings, &steps_at, diags);
        artifacts.extend(uses);
    }
    check_warehouses(config, project, &artifacts, pipeline, &steps_at, diags);
}

/// Warns about artifact functions naming a repository none of the stage's warehouses
/// subscribes to, when all of them are declared in this configuration.
fn check_warehouses(
    config: &Value,
    project: &str,
    artifacts: &[ArtifactUse],
    pipeline: &Pipeline,
    steps_at: &AttributePath,
    diags: &mut Diagnostics,
) {
    let requests = config.get("requested_freight");
    if requests.is_unknown() {
        return;
    }
    let mut requested = Vec::new();
    for r in requests.elements() {
        match r.get("origin").get("name").as_str() {
            Some(name) => requested.push(name.to_string()),
            None => return,
        }
    }
    let known: BTreeMap<String, Subscriptions> = pipeline.with(|i| {
        requested
            .iter()
            .filter_map(|w| {
                i.warehouses
                    .get(&(project.to_string(), w.clone()))
                    .map(|s| (w.clone(), s.clone()))
            })
            .collect()
    });
    let mut warned = Vec::new();
    for use_ in artifacts {
        let Some(repo) = &use_.repo else { continue };
        let function = use_.call.kind.function();
        let candidates: Vec<&String> = match &use_.call.warehouse {
            Some(w) if !requested.contains(w) => {
                let detail = format!(
                    "{function}({repo:?}, warehouse({w:?})) names the warehouse {w:?}, which this \
                     stage does not request freight from (it requests {}); Kargo finds no \
                     artifact there when the promotion runs.",
                    quoted(&requested)
                );
                if !warned.contains(&detail) {
                    let at = attribute_path(&use_.at, steps_at);
                    push(
                        diags,
                        Severity::Warning,
                        at,
                        "Warehouse not requested",
                        &detail,
                    );
                    warned.push(detail);
                }
                continue;
            }
            Some(w) => vec![w],
            None => requested.iter().collect(),
        };
        if candidates
            .iter()
            .any(|w| known.get(*w).is_none_or(|s| !s.complete()))
        {
            continue;
        }
        if candidates.iter().any(|w| {
            known
                .get(*w)
                .is_some_and(|s| s.has(use_.call.kind, repo, use_.call.chart.as_deref()))
        }) {
            continue;
        }
        let what = match use_.call.kind {
            ArtifactKind::Image => "an image repository",
            ArtifactKind::Chart => "a chart repository",
            ArtifactKind::Git => "a Git repository",
        };
        let names: Vec<String> = candidates.iter().map(|s| s.to_string()).collect();
        let detail = format!(
            "{function}({repo:?}) reads {what} that none of the warehouses this stage requests \
             freight from ({}) subscribes to, so it finds nothing when the promotion runs. \
             Subscribe a warehouse to it, or correct the repository.",
            quoted(&names)
        );
        if !warned.contains(&detail) {
            let at = attribute_path(&use_.at, steps_at);
            let summary = "No warehouse subscribes to this repository";
            push(diags, Severity::Warning, at, summary, &detail);
            warned.push(detail);
        }
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
