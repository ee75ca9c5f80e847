//! Kargo's file steps in a Promotion's work directory: `copy`, `delete`, `file-write`,
//! `json-parse`/`yaml-parse`, `json-update`/`yaml-update`, `kustomize-set-image` and
//! `helm-update-chart`, with their outputs and error texts.

use std::path::{Path, PathBuf};

use expr::{Context, Environment};
use serde_json::{Value, json};

use super::Job;
use super::edit::{
    KustomizeImage, go_value_text, json_set, kustomize_images, replace_images, yaml_set_values,
    yaml_value_text,
};
use super::gitsteps::required;
use super::repo::secure_join;
use crate::kargo::expr::{from_expr, to_expr};
use crate::kargo::steps::StepOutcome;
use crate::kargo::util::{arr_at, str_at};

macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(outcome) => return outcome,
        }
    };
}

/// An I/O error as Go's `*PathError` prints it: `<op> <path>: <reason>`.
fn path_error(op: &str, path: &Path, e: &std::io::Error) -> String {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        std::io::ErrorKind::NotADirectory => "not a directory".to_string(),
        _ => e.to_string(),
    };
    format!("{op} {}: {reason}", path.display())
}

/// The path relative to the work directory, as Kargo's sanitised errors show it.
fn relative(job: &Job, p: &Path) -> PathBuf {
    p.strip_prefix(&job.work_dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| path_error("open", path, &e))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| path_error("open", path, &e))
}

/// `copy`: a file or a directory tree (without `.git` and symlinks) to `outPath`.
pub fn copy(job: &mut Job) -> StepOutcome {
    let from = attempt!(required(job, "inPath")).to_string();
    let to = attempt!(required(job, "outPath")).to_string();
    let src = secure_join(&job.work_dir, &from);
    let dst = secure_join(&job.work_dir, &to);
    fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(src)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        if meta.is_dir() {
            std::fs::create_dir_all(dst)?;
            for entry in std::fs::read_dir(src)? {
                let entry = entry?;
                if entry.file_name() == ".git" {
                    continue;
                }
                copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
            }
            Ok(())
        } else {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(src, dst).map(|_| ())
        }
    }
    match copy_tree(&src, &dst) {
        Ok(()) => StepOutcome::succeeded(json!({})),
        Err(e) => StepOutcome::Errored(format!(
            "failed to copy {from:?} to {to:?}: {}",
            path_error("lstat", &relative(job, &src), &e)
        )),
    }
}

/// `delete`: `path` and `paths` (missing ones are an error only with `strict`).
pub fn delete(job: &mut Job) -> StepOutcome {
    let mut paths: Vec<String> = arr_at(&job.config, "paths")
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    if let Some(p) = job
        .config
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        paths.insert(0, p.to_string());
    }
    if paths.is_empty() {
        return StepOutcome::Failed(format!(
            "invalid {} config: (root): path is required",
            job.kind
        ));
    }
    let strict = job.config.get("strict").and_then(Value::as_bool) == Some(true);
    for p in &paths {
        let abs = secure_join(&job.work_dir, p);
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(_) if strict => {
                return StepOutcome::Errored(format!(
                    "could not resolve path {p:?}: path {p:?} does not exist"
                ));
            }
            Err(_) => continue,
        };
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(&abs)
        } else {
            std::fs::remove_file(&abs)
        };
        if let Err(e) = removed {
            return StepOutcome::Errored(format!(
                "failed to delete: {}",
                path_error("unlinkat", &relative(job, &abs), &e)
            ));
        }
    }
    StepOutcome::succeeded(json!({}))
}

/// `file-write`: `contents` to a relative `path` (never into `.git`, never over an existing
/// file without `overwrite`).
pub fn write_file(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let contents = str_at(&job.config, "contents").to_string();
    let overwrite = job.config.get("overwrite").and_then(Value::as_bool) == Some(true);
    if Path::new(&path).is_absolute() {
        return StepOutcome::Failed(format!("path {path:?} must be relative"));
    }
    let clean = crate::kargo::urls::clean_path(&path);
    if clean == ".." || clean.starts_with("../") {
        return StepOutcome::Failed(format!(
            "path {path:?} attempts to traverse outside the working directory"
        ));
    }
    if clean == ".git" || clean.starts_with(".git/") {
        return StepOutcome::Failed(format!(
            "writing to the .git directory is forbidden: {path:?}"
        ));
    }
    let mode = match str_at(&job.config, "permissions") {
        "" => 0o600,
        p => match u32::from_str_radix(p, 8) {
            Ok(m) if m & !0o777 != 0 => {
                return StepOutcome::Failed(format!(
                    "permissions {p:?} must not include special mode bits"
                ));
            }
            Ok(m) if m & 0o111 != 0 => {
                return StepOutcome::Failed(format!(
                    "permissions {p:?} must not include executable bits"
                ));
            }
            Ok(m) if m & 0o002 != 0 => {
                return StepOutcome::Failed(format!(
                    "permissions {p:?} must not be world-writable"
                ));
            }
            Ok(m) => m,
            Err(_) => {
                return StepOutcome::Failed(format!(
                    "invalid permissions {p:?}: must be an octal file mode"
                ));
            }
        },
    };
    let abs = secure_join(&job.work_dir, &path);
    if abs.exists() && !overwrite {
        return StepOutcome::Failed(format!(
            "file {path:?} already exists; set overwrite to true to replace it"
        ));
    }
    if let Some(parent) = abs.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return StepOutcome::Errored(format!(
            "error creating parent directories for {path:?}: {e}"
        ));
    }
    if let Err(e) = std::fs::write(&abs, contents) {
        return StepOutcome::Errored(format!("error writing file {path:?}: {e}"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(mode)) {
            return StepOutcome::Errored(format!(
                "error setting permissions on file {path:?}: {e}"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = mode;
    StepOutcome::succeeded(json!({}))
}

/// `json-parse` / `yaml-parse`: `outputs` evaluated as expressions over the parsed file.
fn parse_step(job: &Job, format: &str) -> StepOutcome {
    let upper = format.to_ascii_uppercase();
    let path = str_at(&job.config, "path");
    if path.is_empty() {
        return StepOutcome::Errored(format!("{upper} file path cannot be empty"));
    }
    let outputs = arr_at(&job.config, "outputs");
    if outputs.is_empty() {
        return StepOutcome::Errored(format!("invalid {} config: outputs is required", job.kind));
    }
    let abs = secure_join(&job.work_dir, path);
    let text = match read(&abs) {
        Ok(t) => t,
        Err(e) => {
            return StepOutcome::Errored(format!(
                "error reading {upper} file {:?}: {e}",
                abs.display().to_string()
            ));
        }
    };
    let data: Value = if format == "json" {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return StepOutcome::Errored(format!("could not parse JSON file: {e}")),
        }
    } else {
        if text.trim().is_empty() {
            return StepOutcome::Errored(format!(
                "could not parse empty YAML file: {:?}",
                abs.display().to_string()
            ));
        }
        match serde_yaml::from_str(&text) {
            Ok(v) => v,
            Err(e) => return StepOutcome::Errored(format!("could not parse YAML file: {e}")),
        }
    };
    let mut ctx = Context::default();
    if let Some(m) = data.as_object() {
        for (k, v) in m {
            ctx.insert(k.clone(), to_expr(v));
        }
    }
    let env = Environment::new();
    let mut results = serde_json::Map::new();
    for o in outputs {
        let expression = str_at(o, "fromExpression");
        match env.eval(expression, &ctx) {
            Ok(v) => {
                results.insert(str_at(o, "name").to_string(), from_expr(&v));
            }
            Err(e) => {
                return StepOutcome::Errored(format!(
                    "failed to extract outputs: error evaluating expression {expression:?}: {e}"
                ));
            }
        }
    }
    StepOutcome::succeeded(Value::Object(results))
}

pub fn json_parse(job: &mut Job) -> StepOutcome {
    parse_step(job, "json")
}

pub fn yaml_parse(job: &mut Job) -> StepOutcome {
    parse_step(job, "yaml")
}

/// `(key, value)` of each entry of `updates`.
fn updates(job: &Job) -> Vec<(String, Value)> {
    arr_at(&job.config, "updates")
        .iter()
        .map(|u| {
            (
                str_at(u, "key").to_string(),
                u.get("value").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// `json-update`: scalar values set in place; output `commitMessage`.
pub fn json_update(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let updates = updates(job);
    if updates.is_empty() {
        return StepOutcome::succeeded(json!({}));
    }
    let abs = secure_join(&job.work_dir, &path);
    let fail = |e: String| StepOutcome::Errored(format!("JSON file update failed: {e}"));
    let mut text = match read(&abs) {
        Ok(t) => t,
        Err(e) => {
            return fail(format!(
                "error reading JSON file {:?}: {e}",
                abs.display().to_string()
            ));
        }
    };
    let mut message = format!("Updated {path}\n");
    for (key, value) in &updates {
        if value.is_null() || value.is_object() || value.is_array() {
            return fail(format!("value for key {key:?} is not a scalar type"));
        }
        text = match json_set(&text, key, value) {
            Ok(t) => t,
            Err(e) => return fail(format!("error setting key {key:?} in JSON file: {e}")),
        };
        match value {
            Value::String(s) => message.push_str(&format!("\n- {key}: {s:?}")),
            other => message.push_str(&format!("\n- {key}: {}", go_value_text(other))),
        }
    }
    if let Err(e) = write(&abs, &text) {
        return fail(format!(
            "error writing updated JSON file {:?}: {e}",
            abs.display().to_string()
        ));
    }
    StepOutcome::succeeded(json!({"commitMessage": message}))
}

/// `yaml-update`: each key's line rewritten with its new value; output `commitMessage`.
pub fn yaml_update(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let updates = updates(job);
    if updates.is_empty() {
        return StepOutcome::succeeded(json!({}));
    }
    let abs = secure_join(&job.work_dir, &path);
    let fail = |e: String| {
        StepOutcome::Errored(format!(
            "values file update failed: error updating image references in values file {path:?}: {e}"
        ))
    };
    let text = match read(&abs) {
        Ok(t) => t,
        Err(e) => {
            return fail(format!(
                "error reading file {:?}: {e}",
                abs.display().to_string()
            ));
        }
    };
    let out = match yaml_set_values(&text, &updates) {
        Ok(o) => o,
        Err(e) => return fail(format!("error mutating bytes: {e}")),
    };
    if let Err(e) = write(&abs, &out) {
        return fail(format!(
            "error writing mutated bytes to file {:?}: {e}",
            abs.display().to_string()
        ));
    }
    let mut message = format!("Updated {path}\n");
    for (key, value) in &updates {
        message.push_str(&format!("\n- {key}: {}", yaml_value_text(value)));
    }
    StepOutcome::succeeded(json!({"commitMessage": message}))
}

/// `kustomize-set-image`: the kustomization's `images` set from `images`, or from every image
/// of the Freight when `images` is omitted; output `commitMessage`.
pub fn kustomize_set_image(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let dir = secure_join(&job.work_dir, &path);
    let candidates: Vec<PathBuf> = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect();
    let file = match candidates.as_slice() {
        [one] => one.clone(),
        [] => {
            return StepOutcome::Errored(format!(
                "could not discover kustomization file: could not find any Kustomization files in {path:?}"
            ));
        }
        many => {
            return StepOutcome::Errored(format!(
                "could not discover kustomization file: ambiguous result: found multiple Kustomization files in {path:?}: [{}]",
                many.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    };
    let mut targets: Vec<KustomizeImage> = Vec::new();
    let configured = arr_at(&job.config, "images");
    if configured.is_empty() {
        let images = match &job.freight_images {
            Ok(i) => i,
            Err(e) => return StepOutcome::Errored(e.clone()),
        };
        for img in images {
            targets.retain(|t| t.name != str_at(img, "repoURL"));
            targets.push(KustomizeImage {
                name: str_at(img, "repoURL").to_string(),
                new_tag: str_at(img, "tag").to_string(),
                digest: str_at(img, "digest").to_string(),
                ..Default::default()
            });
        }
    } else {
        for img in configured {
            let name = match str_at(img, "name") {
                "" => str_at(img, "image"),
                n => n,
            };
            let digest = str_at(img, "digest");
            targets.retain(|t| t.name != name);
            targets.push(KustomizeImage {
                name: name.to_string(),
                new_name: str_at(img, "newName").to_string(),
                new_tag: if digest.is_empty() {
                    str_at(img, "tag").to_string()
                } else {
                    String::new()
                },
                digest: digest.to_string(),
            });
        }
    }
    let text = match read(&file) {
        Ok(t) => t,
        Err(e) => return StepOutcome::Errored(format!("could not read Kustomization file: {e}")),
    };
    let (current, span) = match kustomize_images(&text) {
        Ok(x) => x,
        Err(e) => return StepOutcome::Errored(e),
    };
    let mut merged = targets.clone();
    for img in current {
        if !merged.iter().any(|t| t.name == img.name) {
            merged.push(img);
        }
    }
    merged.sort_by(|a, b| a.name.cmp(&b.name));
    if let Err(e) = write(&file, &replace_images(&text, span, &merged)) {
        return StepOutcome::Errored(format!("could not write updated Kustomization file: {e}"));
    }
    let mut names: Vec<&KustomizeImage> = targets.iter().collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    let mut message = format!("Updated {path} to use new image");
    if targets.len() > 1 {
        message.push('s');
    }
    message.push('\n');
    for i in names {
        let mut r = if i.new_name.is_empty() {
            i.name.clone()
        } else {
            i.new_name.clone()
        };
        if !i.new_tag.is_empty() {
            r = format!("{r}:{}", i.new_tag);
        }
        if !i.digest.is_empty() {
            r = format!("{r}@{}", i.digest);
        }
        message.push_str(&format!("\n- {r}"));
    }
    if targets.is_empty() {
        return StepOutcome::succeeded(json!({}));
    }
    StepOutcome::succeeded(json!({"commitMessage": message}))
}

/// `helm-update-chart`: the versions of `Chart.yaml`'s dependencies set in place. The
/// sandbox reaches no chart repository, so it builds no dependencies and says so.
pub fn helm_update_chart(job: &mut Job) -> StepOutcome {
    let path = attempt!(required(job, "path")).to_string();
    let file = secure_join(&job.work_dir, &path).join("Chart.yaml");
    let text = match read(&file) {
        Ok(t) => t,
        Err(e) => {
            return StepOutcome::Errored(format!(
                "failed to load chart dependencies from {path:?}: {e}"
            ));
        }
    };
    let chart: Value = match serde_yaml::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            return StepOutcome::Errored(format!("failed to parse {path}/Chart.yaml: {e}"));
        }
    };
    let deps = arr_at(&chart, "dependencies");
    let mut updates = Vec::new();
    let mut changes = Vec::new();
    for c in arr_at(&job.config, "charts") {
        let (repo, name, version) = (
            str_at(c, "repository"),
            str_at(c, "name"),
            str_at(c, "version"),
        );
        let Some(i) = deps
            .iter()
            .position(|d| str_at(d, "name") == name && str_at(d, "repository") == repo)
        else {
            return StepOutcome::Errored(format!(
                "no dependency in Chart.yaml matched repository {repo:?} and name {name:?}"
            ));
        };
        let old = str_at(&deps[i], "version");
        if old != version {
            changes.push(format!("\n- {name}: {old} -> {version}"));
            updates.push((format!("dependencies.{i}.version"), json!(version)));
        }
    }
    if !updates.is_empty() {
        let out = match yaml_set_values(&text, &updates) {
            Ok(o) => o,
            Err(e) => return StepOutcome::Errored(e),
        };
        if let Err(e) = write(&file, &out) {
            return StepOutcome::Errored(e);
        }
    }
    let output = if changes.is_empty() {
        json!({})
    } else {
        json!({"commitMessage": format!("Updated chart dependencies for {path}\n{}", changes.concat())})
    };
    StepOutcome::Succeeded {
        output,
        message: "Chart.yaml updated; the sandbox reaches no chart repository, so it did not \
                  run `helm dependency update` (Chart.lock and charts/ are unchanged)"
            .to_string(),
    }
}
