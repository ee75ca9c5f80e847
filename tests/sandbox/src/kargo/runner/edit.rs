//! Format-preserving edits as Kargo makes them: YAML values replaced on their own line
//! (positions from `saphyr-parser`), JSON values replaced in place (spans from
//! `jsonc-parser`), so untouched lines keep their bytes, comments and key order.

use jsonc_parser::ast::Value as J;
use jsonc_parser::common::Ranged;
use saphyr_parser::{Event, Parser};
use serde_json::Value;

/// Kargo's `sjson.SplitKey`: dot-separated parts, `\.` and `\:` escaped.
pub fn split_key(key: &str) -> Result<Vec<String>, String> {
    let key = key.trim();
    if key.is_empty() {
        return Err("empty key".into());
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for ch in key.chars() {
        if escaped {
            match ch {
                '.' | ':' => {
                    cur.push(ch);
                    escaped = false;
                }
                _ => return Err(format!("invalid escape sequence in key {key:?}")),
            }
            continue;
        }
        match ch {
            '\\' => escaped = true,
            '.' => {
                if cur.is_empty() {
                    return Err(format!("empty key part in key {key:?}"));
                }
                parts.push(std::mem::take(&mut cur));
            }
            ':' if !cur.is_empty() => return Err(format!("unexpected colon in key {key:?}")),
            ':' => {}
            c => cur.push(c),
        }
    }
    if cur.is_empty() {
        return Err(format!("empty key part in key {key:?}"));
    }
    parts.push(cur);
    Ok(parts)
}

/// A YAML node with where its scalars start (1-based line, 0-based character column).
#[derive(Debug)]
enum YNode {
    Scalar { line: usize, col: usize },
    Map(Vec<(String, YNode)>),
    Seq(Vec<YNode>),
    Other,
}

fn yaml_tree(text: &str) -> Result<Option<YNode>, String> {
    enum Frame {
        Map(Vec<(String, YNode)>, Option<String>),
        Seq(Vec<YNode>),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut root = None;
    let mut parser = Parser::new_from_str(text);
    // Attaches a finished node to its parent (or makes it the document).
    fn attach(
        stack: &mut [Frame],
        root: &mut Option<YNode>,
        node: YNode,
        key_text: Option<String>,
    ) {
        match stack.last_mut() {
            Some(Frame::Map(entries, pending)) => match pending.take() {
                Some(k) => entries.push((k, node)),
                None => *pending = Some(key_text.unwrap_or_default()),
            },
            Some(Frame::Seq(items)) => items.push(node),
            None => {
                if root.is_none() {
                    *root = Some(node);
                }
            }
        }
    }
    for ev in parser.by_ref() {
        let (ev, span) = ev.map_err(|e| e.to_string())?;
        match ev {
            Event::Scalar(value, ..) => {
                let node = YNode::Scalar {
                    line: span.start.line(),
                    col: span.start.col(),
                };
                attach(&mut stack, &mut root, node, Some(value.into_owned()));
            }
            Event::Alias(_) => attach(&mut stack, &mut root, YNode::Other, None),
            Event::MappingStart(..) => stack.push(Frame::Map(Vec::new(), None)),
            Event::SequenceStart(..) => stack.push(Frame::Seq(Vec::new())),
            Event::MappingEnd | Event::SequenceEnd => {
                let node = match stack.pop() {
                    Some(Frame::Map(entries, _)) => YNode::Map(entries),
                    Some(Frame::Seq(items)) => YNode::Seq(items),
                    None => return Err("unbalanced YAML events".into()),
                };
                attach(&mut stack, &mut root, node, None);
            }
            Event::DocumentEnd => break,
            _ => {}
        }
    }
    Ok(root)
}

fn find_scalar(node: &YNode, path: &[String]) -> Result<(usize, usize), String> {
    let Some((first, rest)) = path.split_first() else {
        return match node {
            YNode::Scalar { line, col } => Ok((*line, *col)),
            _ => Err("key path does not address a scalar node".into()),
        };
    };
    match node {
        YNode::Map(entries) => {
            if let Some((_, child)) = entries.iter().find(|(k, _)| k == first) {
                return find_scalar(child, rest);
            }
        }
        YNode::Seq(items) => {
            let i: usize = first
                .parse()
                .map_err(|_| format!("strconv.Atoi: parsing {first:?}: invalid syntax"))?;
            let child = items
                .get(i)
                .ok_or_else(|| format!("index out of range [{i}] with length {}", items.len()))?;
            return find_scalar(child, rest);
        }
        _ => {}
    }
    Err("key path not found".into())
}

/// Kargo's `yaml.QuoteIfNecessary` as `%v` prints it.
pub fn yaml_value_text(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let looks_typed = s.parse::<f64>().is_ok()
                || matches!(
                    s.as_str(),
                    "1" | "t"
                        | "T"
                        | "TRUE"
                        | "true"
                        | "True"
                        | "0"
                        | "f"
                        | "F"
                        | "FALSE"
                        | "false"
                        | "False"
                )
                || serde_json::from_str::<Value>(s).is_ok();
            if looks_typed {
                format!("{s:?}")
            } else {
                s.clone()
            }
        }
        Value::Null => "<nil>".to_string(),
        other => go_value_text(other),
    }
}

/// Go's `%v` of a decoded JSON value.
pub fn go_value_text(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_value_text).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", go_value_text(&m[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

/// Kargo's `yaml.SetValuesInBytes`: each key must address an existing scalar; the rest of
/// its line is replaced by the new value, every other line is kept byte for byte.
pub fn yaml_set_values(text: &str, updates: &[(String, Value)]) -> Result<String, String> {
    let root = yaml_tree(text).map_err(|e| format!("error unmarshaling input: {e}"))?;
    let mut changes = std::collections::HashMap::new();
    for (key, value) in updates {
        let path = split_key(key).map_err(|e| format!("error splitting key {key}: {e}"))?;
        let found = match &root {
            Some(r) => find_scalar(r, &path),
            None => Err("key path not found".into()),
        };
        let (line, col) = found.map_err(|e| format!("error finding key {key}: {e}"))?;
        changes.insert(line, (col, value));
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.lines().enumerate() {
        match changes.get(&(i + 1)) {
            None => out.push_str(line),
            Some((col, value)) => {
                let byte = line
                    .char_indices()
                    .nth(*col)
                    .map(|(b, _)| b)
                    .unwrap_or(line.len());
                let kept = &line[..byte];
                out.push_str(kept);
                if !kept.ends_with(' ') {
                    out.push(' ');
                }
                out.push_str(&yaml_value_text(value));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// A JSON scalar as `sjson.Set` writes it.
fn json_scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// `sjson.Set` for a scalar: replaces the value at `key` where it is, or adds the missing
/// members at the end of the innermost existing object (or array, for `-1` / the next index).
pub fn json_set(text: &str, key: &str, value: &Value) -> Result<String, String> {
    let path = split_key(key)?;
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default())
        .map_err(|e| e.to_string())?;
    let Some(root) = parsed.value else {
        return Err("the file holds no JSON value".into());
    };
    let mut node = &root;
    let mut i = 0;
    while i < path.len() {
        let part = &path[i];
        let next = match node {
            J::Object(o) => o
                .properties
                .iter()
                .find(|p| p.name.as_str() == part.as_str())
                .map(|p| &p.value),
            J::Array(a) => part.parse::<usize>().ok().and_then(|n| a.elements.get(n)),
            _ => None,
        };
        match next {
            Some(n) => {
                node = n;
                i += 1;
            }
            None => break,
        }
    }
    let new_text = json_scalar_text(value);
    if i == path.len() {
        let r = node.range();
        return Ok(format!("{}{new_text}{}", &text[..r.start], &text[r.end..]));
    }
    // Build what is missing below the innermost existing container.
    let mut built = new_text;
    for part in path[i + 1..].iter().rev() {
        built = format!(
            "{{{}:{built}}}",
            serde_json::to_string(part).unwrap_or_default()
        );
    }
    let part = &path[i];
    let (insert_at, member) = match node {
        J::Object(o) => {
            let member = format!(
                "{}:{built}",
                serde_json::to_string(part).unwrap_or_default()
            );
            match o.properties.last() {
                Some(last) => (last.range.end, format!(",{member}")),
                None => (o.range.start + 1, member),
            }
        }
        J::Array(a) => {
            let appends = part == "-1" || part.parse::<usize>().ok() == Some(a.elements.len());
            if !appends {
                return Err(format!("cannot set {key:?}: index {part} is out of range"));
            }
            match a.elements.last() {
                Some(last) => (last.range().end, format!(",{built}")),
                None => (a.range.start + 1, built),
            }
        }
        _ => return Err(format!("cannot set {key:?}: {part:?} is below a scalar")),
    };
    Ok(format!(
        "{}{member}{}",
        &text[..insert_at],
        &text[insert_at..]
    ))
}

/// One kustomize `images` entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KustomizeImage {
    pub name: String,
    pub new_name: String,
    pub new_tag: String,
    pub digest: String,
}

/// A string as a plain or double-quoted YAML scalar, as a YAML encoder would write it.
fn yaml_scalar(s: &str) -> String {
    let plain_safe = !s.is_empty()
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | "y" | "n"
        )
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c) || c.is_whitespace())
        && !s.ends_with(char::is_whitespace)
        && !s.contains(": ")
        && !s.contains(" #");
    if plain_safe {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// The `images:` block of a kustomization as Kargo (kyaml) writes it.
pub fn render_images(images: &[KustomizeImage]) -> String {
    let mut out = String::from("images:\n");
    for img in images {
        let mut first = true;
        for (k, v) in [
            ("name", &img.name),
            ("newName", &img.new_name),
            ("newTag", &img.new_tag),
            ("digest", &img.digest),
        ] {
            if v.is_empty() {
                continue;
            }
            out.push_str(if first { "- " } else { "  " });
            first = false;
            out.push_str(&format!("{k}: {}\n", yaml_scalar(v)));
        }
    }
    out
}

/// A line span: 0-based, end exclusive.
pub type LineSpan = (usize, usize);

/// The kustomization's current `images`, and the line span of a top-level `images:` block if
/// there is one.
pub fn kustomize_images(text: &str) -> Result<(Vec<KustomizeImage>, Option<LineSpan>), String> {
    let doc: Value = serde_yaml::from_str(text)
        .map_err(|e| format!("could not unmarshal Kustomization file: {e}"))?;
    let images = doc
        .get("images")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|i| {
                    let s = |k: &str| {
                        i.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    KustomizeImage {
                        name: s("name"),
                        new_name: s("newName"),
                        new_tag: s("newTag"),
                        digest: s("digest"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| {
        l.strip_prefix("images:")
            .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
    }) else {
        return Ok((images, None));
    };
    let mut end = start + 1;
    while end < lines.len() {
        let l = lines[end];
        let continues = l.trim().is_empty() || l.starts_with(' ') || l.starts_with('-');
        if !continues {
            break;
        }
        end += 1;
    }
    // Trailing blank lines belong to what follows.
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    Ok((images, Some((start, end))))
}

/// The kustomization with its `images` block replaced (or appended) by `images`.
pub fn replace_images(
    text: &str,
    span: Option<(usize, usize)>,
    images: &[KustomizeImage],
) -> String {
    let block = render_images(images);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    match span {
        Some((start, end)) => {
            for l in &lines[..start] {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str(&block);
            for l in &lines[end..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        None => {
            out.push_str(text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&block);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_split_like_kargo() {
        assert_eq!(split_key("a.b\\.c.0").unwrap(), vec!["a", "b.c", "0"]);
        assert!(split_key("a..b").is_err());
        assert!(split_key("").is_err());
    }

    #[test]
    fn yaml_updates_touch_one_line() {
        let text =
            "# values\nimage:\n  repository: app   # the app\n  tag: 1.0.0\nlist:\n  - a\n  - b\n";
        let out = yaml_set_values(
            text,
            &[
                ("image.tag".into(), json!("1.1.0")),
                ("list.1".into(), json!("true")),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "# values\nimage:\n  repository: app   # the app\n  tag: 1.1.0\nlist:\n  - a\n  - \"true\"\n"
        );
        assert_eq!(
            yaml_set_values(text, &[("image.nope".into(), json!(1))]).unwrap_err(),
            "error finding key image.nope: key path not found"
        );
        assert_eq!(
            yaml_set_values(text, &[("image".into(), json!(1))]).unwrap_err(),
            "error finding key image: key path does not address a scalar node"
        );
    }

    #[test]
    fn json_updates_keep_formatting() {
        let text = "{\n  \"b\": \"1.0.0\",\n  \"a\": {\"x\": 1}\n}\n";
        assert_eq!(
            json_set(text, "b", &json!("2.0.0")).unwrap(),
            "{\n  \"b\": \"2.0.0\",\n  \"a\": {\"x\": 1}\n}\n"
        );
        assert_eq!(
            json_set(text, "a.y", &json!(true)).unwrap(),
            "{\n  \"b\": \"1.0.0\",\n  \"a\": {\"x\": 1,\"y\":true}\n}\n"
        );
        assert_eq!(
            json_set(text, "c.d", &json!(2)).unwrap(),
            "{\n  \"b\": \"1.0.0\",\n  \"a\": {\"x\": 1},\"c\":{\"d\":2}\n}\n"
        );
    }

    #[test]
    fn kustomize_images_block_is_rewritten_in_place() {
        let text =
            "resources:\n- deployment.yaml\nimages:\n- name: app\n  newTag: 1.0.0\nnamespace: x\n";
        let (images, span) = kustomize_images(text).unwrap();
        assert_eq!(span, Some((2, 5)));
        let mut next = images.clone();
        next[0].new_tag = "1.1.0".into();
        assert_eq!(
            replace_images(text, span, &next),
            "resources:\n- deployment.yaml\nimages:\n- name: app\n  newTag: 1.1.0\nnamespace: x\n"
        );
        let plain = "resources:\n- a.yaml\n";
        let (none, span) = kustomize_images(plain).unwrap();
        assert!(none.is_empty() && span.is_none());
        assert_eq!(
            replace_images(plain, None, &next),
            "resources:\n- a.yaml\nimages:\n- name: app\n  newTag: 1.1.0\n"
        );
    }
}
