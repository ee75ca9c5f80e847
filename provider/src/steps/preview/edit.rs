//! Edits that keep a file's formatting, as Kargo's steps make them: a YAML value replaced on
//! its own line, a JSON value replaced where it stands, a kustomization's `images` block
//! rewritten in place. Every other byte of the file is kept.

use jsonc_parser::ast::Value as JsonNode;
use jsonc_parser::common::Ranged;
use saphyr_parser::{Event, Parser};
use serde_json::Value as Json;

/// A key as Kargo's steps take it: parts separated by `.`, with `\.` for a literal dot.
pub fn split_key(key: &str) -> Result<Vec<String>, String> {
    let mut parts = vec![String::new()];
    let mut chars = key.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('.' | ':')) => {
                    parts.last_mut().map(|p| p.push(escaped)).unwrap_or(())
                }
                _ => return Err(format!("invalid escape sequence in key {key:?}")),
            },
            '.' => parts.push(String::new()),
            c => parts.last_mut().map(|p| p.push(c)).unwrap_or(()),
        }
    }
    if parts.iter().any(String::is_empty) {
        return Err(format!("empty key part in key {key:?}"));
    }
    Ok(parts)
}

/// Where each scalar of a YAML document starts, by its key path (1-based line, 0-based
/// character column).
fn yaml_scalars(text: &str) -> Result<Vec<(Vec<String>, usize, usize)>, String> {
    enum Frame {
        Map { key: Option<String> },
        Seq { next: usize },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut found = Vec::new();
    // The key a new node sits under, if the enclosing node is a collection.
    fn enter(stack: &mut [Frame], path: &mut Vec<String>) -> bool {
        match stack.last_mut() {
            Some(Frame::Map { key: Some(k) }) => {
                path.push(k.clone());
                true
            }
            Some(Frame::Seq { next }) => {
                path.push(next.to_string());
                *next += 1;
                true
            }
            _ => false,
        }
    }
    fn leave(stack: &mut [Frame], path: &mut Vec<String>, entered: bool) {
        if entered {
            path.pop();
        }
        if let Some(Frame::Map { key }) = stack.last_mut() {
            *key = None;
        }
    }
    let mut entered: Vec<bool> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| e.to_string())?;
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { key }) = stack.last_mut()
                    && key.is_none()
                {
                    *key = Some(value.into_owned());
                    continue;
                }
                let e = enter(&mut stack, &mut path);
                found.push((path.clone(), span.start.line(), span.start.col()));
                leave(&mut stack, &mut path, e);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if let Some(Frame::Map { key: None }) = stack.last() {
                    // A complex key: not addressable by a key path.
                    return Err("complex mapping keys are not supported".into());
                }
                entered.push(enter(&mut stack, &mut path));
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map { key: None }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                let e = entered.pop().unwrap_or(false);
                leave(&mut stack, &mut path, e);
            }
            Event::Alias(_) => {
                let e = enter(&mut stack, &mut path);
                leave(&mut stack, &mut path, e);
            }
            _ => {}
        }
    }
    Ok(found)
}

/// What Go's `strconv.ParseBool` takes for a boolean: a YAML value spelt like one is quoted.
const GO_BOOLEAN_SPELLINGS: [&str; 12] = [
    "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
];

/// A string as Kargo writes a YAML value: quoted when it would otherwise read as a number,
/// a boolean or JSON; anything else as Go's `%v` prints it.
pub fn yaml_value_text(v: &Json) -> String {
    let Json::String(text) = v else {
        return go_text(v);
    };
    let read_as_another_type = GO_BOOLEAN_SPELLINGS.contains(&text.as_str())
        || text.parse::<f64>().is_ok()
        || serde_json::from_str::<Json>(text).is_ok();
    if read_as_another_type {
        format!("{text:?}")
    } else {
        text.clone()
    }
}

/// A decoded JSON value as Go's `%v` prints it.
fn go_text(v: &Json) -> String {
    match v {
        Json::Null => "<nil>".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        Json::Array(items) => {
            let items: Vec<String> = items.iter().map(go_text).collect();
            format!("[{}]", items.join(" "))
        }
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_text(&map[k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// `yaml-update`: each key must name an existing scalar, whose line is rewritten from the
/// value's first character on; every other line keeps its bytes.
pub fn yaml_update(text: &str, updates: &[(String, Json)]) -> Result<String, String> {
    let scalars = yaml_scalars(text).map_err(|e| format!("error unmarshaling input: {e}"))?;
    let mut by_line = std::collections::BTreeMap::new();
    for (key, value) in updates {
        let path = split_key(key).map_err(|e| format!("error splitting key {key}: {e}"))?;
        let Some((_, line, col)) = scalars.iter().find(|(p, ..)| *p == path) else {
            return Err(format!("error finding key {key}: key path not found"));
        };
        by_line.insert(*line, (*col, value));
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (index, line) in text.lines().enumerate() {
        if let Some((col, value)) = by_line.get(&(index + 1)) {
            let cut = line.char_indices().nth(*col).map_or(line.len(), |(b, _)| b);
            let kept = &line[..cut];
            out.push_str(kept);
            if !kept.ends_with(' ') {
                out.push(' ');
            }
            out.push_str(&yaml_value_text(value));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !text.ends_with('\n') && out.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

/// `json-update` of one key: the value replaced where it stands, or a missing last member
/// added at the end of its object.
pub fn json_update(text: &str, key: &str, value: &Json) -> Result<String, String> {
    let path = split_key(key)?;
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default())
        .map_err(|e| e.to_string())?;
    let root = parsed
        .value
        .ok_or_else(|| "the file holds no JSON value".to_string())?;
    let new_text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    let mut node = &root;
    for (depth, part) in path.iter().enumerate() {
        let next = match node {
            JsonNode::Object(o) => o
                .properties
                .iter()
                .find(|p| p.name.as_str() == part)
                .map(|p| &p.value),
            JsonNode::Array(a) => part.parse::<usize>().ok().and_then(|i| a.elements.get(i)),
            _ => None,
        };
        match (next, node) {
            (Some(n), _) => node = n,
            (None, JsonNode::Object(o)) if depth + 1 == path.len() => {
                let member = format!(
                    "{}:{new_text}",
                    serde_json::to_string(part).unwrap_or_default()
                );
                let (at, insert) = match o.properties.last() {
                    Some(last) => (last.range.end, format!(",{member}")),
                    None => (o.range.start + 1, member),
                };
                return Ok(format!("{}{insert}{}", &text[..at], &text[at..]));
            }
            _ => return Err(format!("cannot set {key:?}: {part:?} not found")),
        }
    }
    let range = node.range();
    Ok(format!(
        "{}{new_text}{}",
        &text[..range.start],
        &text[range.end..]
    ))
}

/// One entry of a kustomization's `images`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KustomizeImage {
    pub name: String,
    pub new_name: String,
    pub new_tag: String,
    pub digest: String,
}

/// The `images` a kustomization lists.
pub fn kustomize_images(text: &str) -> Result<Vec<KustomizeImage>, String> {
    let doc: Json = serde_yaml::from_str(text)
        .map_err(|e| format!("could not unmarshal Kustomization file: {e}"))?;
    let field = |i: &Json, k: &str| i.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    Ok(doc
        .get("images")
        .and_then(Json::as_array)
        .map(|list| {
            list.iter()
                .map(|i| KustomizeImage {
                    name: field(i, "name"),
                    new_name: field(i, "newName"),
                    new_tag: field(i, "newTag"),
                    digest: field(i, "digest"),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Words YAML 1.1 reads as booleans or null, which YAML encoders still quote for the
/// readers that follow 1.1.
const YAML_1_1_WORDS: [&str; 10] = [
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

/// A YAML string scalar: plain when a YAML reader gets the same string back from it (and no
/// YAML 1.1 reader would take it for a boolean or null), double-quoted otherwise.
fn yaml_string(s: &str) -> String {
    let reads_back = matches!(
        serde_yaml::from_str::<serde_yaml::Value>(s),
        Ok(serde_yaml::Value::String(ref back)) if back == s
    );
    let plain = reads_back
        && !YAML_1_1_WORDS.contains(&s.to_ascii_lowercase().as_str())
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c))
        && s.trim() == s;
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// The kustomization with its top-level `images:` block replaced by `images` (appended
/// when it has none).
pub fn kustomize_write_images(text: &str, images: &[KustomizeImage]) -> String {
    let mut block = String::from("images:\n");
    for image in images {
        let fields = [
            ("name", &image.name),
            ("newName", &image.new_name),
            ("newTag", &image.new_tag),
            ("digest", &image.digest),
        ];
        for (n, (k, v)) in fields.iter().filter(|(_, v)| !v.is_empty()).enumerate() {
            block.push_str(if n == 0 { "- " } else { "  " });
            block.push_str(&format!("{k}: {}\n", yaml_string(v)));
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| {
        l.strip_prefix("images:")
            .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
    });
    let Some(start) = start else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&block);
        return out;
    };
    let mut end = start + 1;
    while end < lines.len() && (lines[end].trim().is_empty() || lines[end].starts_with([' ', '-']))
    {
        end += 1;
    }
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let mut out = String::new();
    for line in &lines[..start] {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&block);
    for line in &lines[end..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VALUES: &str = "# values\nimage:\n  repository: ghcr.io/acme/app  # the image\n  tag: 1.0.0\nlist:\n- a\n- b: 1\nreplicas: 2\n";

    #[test]
    fn keys_split_on_unescaped_dots() {
        assert_eq!(split_key("a.b\\.c.0").unwrap(), vec!["a", "b.c", "0"]);
        assert!(split_key("a..b").is_err());
        assert!(split_key("a\\x").is_err());
    }

    #[test]
    fn a_yaml_update_is_a_one_line_change() {
        let out = yaml_update(VALUES, &[("image.tag".into(), json!("1.1.0"))]).unwrap();
        assert_eq!(out, VALUES.replace("tag: 1.0.0", "tag: 1.1.0"));
        let out = yaml_update(VALUES, &[("list.1.b".into(), json!(2))]).unwrap();
        assert_eq!(out, VALUES.replace("b: 1", "b: 2"));
        let out = yaml_update(VALUES, &[("replicas".into(), json!("3"))]).unwrap();
        assert_eq!(out, VALUES.replace("replicas: 2", "replicas: \"3\""));
        assert_eq!(
            yaml_update(VALUES, &[("image.missing".into(), json!(1))]).unwrap_err(),
            "error finding key image.missing: key path not found"
        );
    }

    #[test]
    fn a_json_update_replaces_the_value_in_place() {
        let text = "{\n  \"name\": \"app\",\n  \"version\": \"1.0.0\"\n}\n";
        assert_eq!(
            json_update(text, "version", &json!("1.1.0")).unwrap(),
            text.replace("1.0.0", "1.1.0")
        );
        assert_eq!(
            json_update(text, "replicas", &json!(3)).unwrap(),
            "{\n  \"name\": \"app\",\n  \"version\": \"1.0.0\",\"replicas\":3\n}\n"
        );
        assert!(json_update(text, "a.b.c", &json!(3)).is_err());
    }

    #[test]
    fn image_fields_are_plain_unless_a_yaml_reader_would_take_them_for_something_else() {
        for plain in ["1.1.0", "ghcr.io/acme/app", "v2", "sha256:abc"] {
            assert_eq!(yaml_string(plain), plain);
        }
        for quoted in [
            "1.0", "10", "yes", "Off", "", " x", "a: b", "#x", "null", "[a]",
        ] {
            assert_eq!(yaml_string(quoted), format!("{quoted:?}"), "{quoted:?}");
        }
    }

    #[test]
    fn kustomize_images_are_rewritten_in_place() {
        let text = "resources:\n- d.yaml\nimages:\n- name: ghcr.io/acme/app\n  newTag: 1.0.0\nnamespace: app\n";
        let mut images = kustomize_images(text).unwrap();
        images[0].new_tag = "1.1.0".into();
        assert_eq!(
            kustomize_write_images(text, &images),
            text.replace("1.0.0", "1.1.0")
        );
        assert_eq!(
            kustomize_write_images("resources: []\n", &images),
            "resources: []\nimages:\n- name: ghcr.io/acme/app\n  newTag: 1.1.0\n"
        );
    }
}
