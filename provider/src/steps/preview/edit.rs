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

/// One step of a key path in a document: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    Key(String),
    Index(usize),
}

/// A node of the first document: its path, whether it is a scalar, and where it starts
/// (1-based line, 0-based character column).
struct Node {
    path: Vec<Part>,
    scalar: bool,
    line: usize,
    col: usize,
}

/// The nodes of the first YAML document (Kargo reads only that one).
fn yaml_nodes(text: &str) -> Result<Vec<Node>, String> {
    enum Frame {
        Map { key: Option<String> },
        Seq { next: usize },
    }
    // The key a new node sits under, if the enclosing node is a collection.
    fn enter(stack: &mut [Frame], path: &mut Vec<Part>) -> bool {
        match stack.last_mut() {
            Some(Frame::Map { key: Some(k) }) => {
                path.push(Part::Key(k.clone()));
                true
            }
            Some(Frame::Seq { next }) => {
                path.push(Part::Index(*next));
                *next += 1;
                true
            }
            _ => false,
        }
    }
    fn leave(stack: &mut [Frame], path: &mut Vec<Part>, entered: bool) {
        if entered {
            path.pop();
        }
        if let Some(Frame::Map { key }) = stack.last_mut() {
            *key = None;
        }
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<Part> = Vec::new();
    let mut found = Vec::new();
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
                found.push(Node {
                    path: path.clone(),
                    scalar: true,
                    line: span.start.line(),
                    col: span.start.col(),
                });
                leave(&mut stack, &mut path, e);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if let Some(Frame::Map { key: None }) = stack.last() {
                    // A complex key: not addressable by a key path.
                    return Err("complex mapping keys are not supported".into());
                }
                let e = enter(&mut stack, &mut path);
                found.push(Node {
                    path: path.clone(),
                    scalar: false,
                    line: span.start.line(),
                    col: span.start.col(),
                });
                entered.push(e);
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
            Event::DocumentEnd => break,
            _ => {}
        }
    }
    Ok(found)
}

/// Whether a node's path is the key path `key`: keys equal, indexes as Go's `strconv.Atoi`
/// reads them (`01` and `+1` are index 1).
fn path_is(path: &[Part], key: &[String]) -> bool {
    path.len() == key.len()
        && path.iter().zip(key).all(|(p, k)| match p {
            Part::Key(name) => name == k,
            Part::Index(i) => k.parse::<i64>().is_ok_and(|n| usize::try_from(n) == Ok(*i)),
        })
}

/// What Go's `strconv.ParseBool` takes for a boolean: a YAML value spelt like one is quoted.
const GO_BOOLEAN_SPELLINGS: [&str; 12] = [
    "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
];

/// Whether Go's `strconv.ParseFloat` reads `text`: decimal and hexadecimal (`0x1p-2`)
/// floating-point numbers, `inf`/`infinity` with a sign, `nan` without one (any case).
fn go_parses_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']);
    let rest = unsigned.unwrap_or(text).to_ascii_lowercase();
    if rest == "inf" || rest == "infinity" {
        return true;
    }
    if rest == "nan" {
        return unsigned.is_none();
    }
    if let Some(hex) = rest.strip_prefix("0x") {
        // A hexadecimal mantissa needs a binary exponent; `_` may separate digits.
        let hex = hex.replace('_', "");
        let Some((mantissa, exponent)) = hex.split_once('p') else {
            return false;
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = |d: &str| d.chars().all(|c| c.is_ascii_hexdigit());
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        return !(whole.is_empty() && fraction.is_empty())
            && digits(whole)
            && digits(fraction)
            && !exponent.is_empty()
            && exponent.chars().all(|c| c.is_ascii_digit());
    }
    !rest.contains(['_', 'i', 'n']) && text.parse::<f64>().is_ok()
}

/// Whether Go's `json.Valid` accepts `text` (any JSON value; numbers of any size).
fn json_valid(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// A string as Kargo writes a YAML value: quoted when it would otherwise read as a number,
/// a boolean or JSON; anything else as Go's `%v` prints it.
pub fn yaml_value_text(v: &Json) -> String {
    let Json::String(text) = v else {
        return go_text(v);
    };
    let read_as_another_type =
        go_parses_float(text) || GO_BOOLEAN_SPELLINGS.contains(&text.as_str()) || json_valid(text);
    if read_as_another_type {
        go_quote(text)
    } else {
        text.clone()
    }
}

/// Go's `%q` of a string: double quotes, with Go's escapes.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float64 as Go's `%v` prints it (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest
/// digits that read back, in exponent form (`1e+06`) when the exponent is below -4 or at
/// least 6.
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    // Rust's `{:e}` gives the shortest digits that read back, as `d.ddde<exp>`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{esign}{:02}", exp.abs());
    }
    // Plain form: the decimal point `exp + 1` digits in.
    let point = exp + 1;
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{whole}.{fraction}")
    };
    format!("{sign}{text}")
}

/// A decoded JSON value as Go's `%v` prints it.
fn go_text(v: &Json) -> String {
    match v {
        Json::Null => "<nil>".into(),
        Json::Bool(b) => b.to_string(),
        // Kargo decodes every JSON number as a float64.
        Json::Number(n) => n.as_f64().map_or_else(|| n.to_string(), go_float),
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

/// `yaml-update`: each key must name an existing scalar of the first document, whose line
/// is rewritten from the value's first character on; every other line keeps its text. Lines
/// are written as Go's line scanner reads them: each ends with `\n` (a final newline is
/// added, `\r` before a newline dropped).
pub fn yaml_update(text: &str, updates: &[(String, Json)]) -> Result<String, String> {
    let nodes = yaml_nodes(text).map_err(|e| format!("error unmarshaling input: {e}"))?;
    let mut by_line = std::collections::BTreeMap::new();
    for (key, value) in updates {
        let path = split_key(key).map_err(|e| format!("error splitting key {key}: {e}"))?;
        let Some(node) = nodes.iter().find(|n| path_is(&n.path, &path)) else {
            return Err(format!("error finding key {key}: key path not found"));
        };
        if !node.scalar {
            return Err(format!(
                "error finding key {key}: key path does not address a scalar node"
            ));
        }
        by_line.insert(node.line, (node.col, value));
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

/// One entry of a kustomization's `images`, in the field order Kustomize writes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KustomizeImage {
    pub name: String,
    pub new_name: String,
    pub tag_suffix: String,
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
                    tag_suffix: field(i, "tagSuffix"),
                    new_tag: field(i, "newTag"),
                    digest: field(i, "digest"),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// What `kustomize-set-image` sets: each target image replaces the entry of its name whole
/// (a field given as `*` keeps the current value), other entries stay, and the list is
/// sorted by name.
pub fn kustomize_merge_images(
    current: &[KustomizeImage],
    targets: Vec<KustomizeImage>,
) -> Vec<KustomizeImage> {
    const PRESERVE: &str = "*";
    let mut merged: std::collections::BTreeMap<String, KustomizeImage> =
        targets.into_iter().map(|t| (t.name.clone(), t)).collect();
    for image in current {
        match merged.get_mut(&image.name) {
            Some(target) => {
                for (field, kept) in [
                    (&mut target.new_name, &image.new_name),
                    (&mut target.new_tag, &image.new_tag),
                    (&mut target.digest, &image.digest),
                ] {
                    if field == PRESERVE {
                        field.clone_from(kept);
                    }
                }
            }
            None => {
                merged.insert(image.name.clone(), image.clone());
            }
        }
    }
    merged
        .into_values()
        .map(|mut image| {
            for field in [&mut image.new_name, &mut image.new_tag, &mut image.digest] {
                if field == PRESERVE {
                    field.clear();
                }
            }
            image
        })
        .collect()
}

/// What go-yaml v3 reads as something other than a string in a plain scalar: null, a
/// boolean, an integer or float (`_` allowed), `.inf`/`.nan`, or a timestamp.
fn yaml_v3_resolves_to_non_string(s: &str) -> bool {
    const WORDS: [&str; 19] = [
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", ".inf",
        ".Inf", ".INF", ".nan", ".NaN", ".NAN", "+.inf", "-.inf",
    ];
    if WORDS.contains(&s) || ["+.Inf", "+.INF", "-.Inf", "-.INF"].contains(&s) {
        return true;
    }
    let plain = s.replace('_', "");
    let unsigned = plain.strip_prefix(['+', '-']).unwrap_or(&plain);
    let radix = |prefix: &str, radix: u32| {
        unsigned
            .strip_prefix(prefix)
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_digit(radix)))
    };
    let integer = (!unsigned.is_empty() && unsigned.chars().all(|c| c.is_ascii_digit()))
        || radix("0x", 16)
        || radix("0X", 16)
        || radix("0o", 8)
        || radix("0O", 8)
        || radix("0b", 2)
        || radix("0B", 2);
    static FLOAT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
            .unwrap_or_else(|_| unreachable!("a valid pattern"))
    });
    static TIMESTAMP: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$",
        )
        .unwrap_or_else(|_| unreachable!("a valid pattern"))
    });
    integer || FLOAT.is_match(&plain) || TIMESTAMP.is_match(s)
}

/// What go-yaml v3 double-quotes although it reads as a string: YAML 1.1 booleans and
/// sexagesimal numbers, for the readers that still follow YAML 1.1.
fn yaml_v3_old_style(s: &str) -> bool {
    const OLD_BOOLS: [&str; 16] = [
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off",
        "OFF",
    ];
    static BASE60: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
            .unwrap_or_else(|_| unreachable!("a valid pattern"))
    });
    OLD_BOOLS.contains(&s) || BASE60.is_match(s)
}

/// Whether libyaml's emitter (which go-yaml v3 is) writes `s` plain as a block value: no
/// leading indicator, no `: ` or ` #` inside, no space at either end, nothing unprintable.
fn yaml_plain_allowed(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let blank_at = |i: usize| chars.get(i).is_none_or(|c| *c == ' ' || *c == '\t');
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if chars.first().is_some_and(|c| *c == ' ') || chars.last().is_some_and(|c| *c == ' ') {
        return false;
    }
    for (i, c) in chars.iter().enumerate() {
        if c.is_control() || *c == '\u{feff}' {
            return false;
        }
        let indicator = if i == 0 {
            "#,[]{}&*!|>'\"%@`".contains(*c) || ("?:-".contains(*c) && blank_at(1))
        } else {
            (*c == ':' && blank_at(i + 1)) || (*c == '#' && blank_at(i - 1))
        };
        if indicator {
            return false;
        }
    }
    true
}

/// A string as go-yaml v3 (Kustomize's writer) encodes it: double-quoted when a reader would
/// take it for another type, single-quoted when it cannot be plain, plain otherwise.
fn yaml_string(s: &str) -> String {
    if yaml_v3_resolves_to_non_string(s) || yaml_v3_old_style(s) {
        return serde_json::to_string(s).unwrap_or_default();
    }
    if yaml_plain_allowed(s) {
        s.to_string()
    } else if s.chars().any(char::is_control) {
        serde_json::to_string(s).unwrap_or_default()
    } else {
        format!("'{}'", s.replace('\'', "''"))
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
            ("tagSuffix", &image.tag_suffix),
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
    fn yaml_updates_write_lines_as_gos_scanner_and_only_the_first_document() {
        assert_eq!(
            yaml_update("a: 1", &[("a".into(), json!(2))]).unwrap(),
            "a: 2\n",
            "every line ends with a newline, the last too"
        );
        assert_eq!(
            yaml_update("a: 1\r\nb: 2\r\n", &[("b".into(), json!(3))]).unwrap(),
            "a: 1\nb: 3\n"
        );
        assert_eq!(
            yaml_update(
                "tag: \"1.0.0\" # pinned\n",
                &[("tag".into(), json!("1.1.0"))]
            )
            .unwrap(),
            "tag: 1.1.0\n",
            "from the value's first character (its quote) to the end of the line"
        );
        let two = "a: 1\n---\nb: 2\n";
        assert_eq!(
            yaml_update(two, &[("b".into(), json!(3))]).unwrap_err(),
            "error finding key b: key path not found"
        );
        assert_eq!(
            yaml_update(VALUES, &[("image".into(), json!(3))]).unwrap_err(),
            "error finding key image: key path does not address a scalar node"
        );
        assert_eq!(
            yaml_update(VALUES, &[("list.01.b".into(), json!(5))]).unwrap(),
            VALUES.replace("b: 1", "b: 5"),
            "indexes read as Go's Atoi reads them"
        );
    }

    #[test]
    fn yaml_values_are_written_as_kargo_quotes_and_go_prints_them() {
        let text = |v: Json| yaml_value_text(&v);
        assert_eq!(
            text(json!(1000000)),
            "1e+06",
            "numbers are float64s printed with %v"
        );
        assert_eq!(text(json!(100000)), "100000");
        assert_eq!(text(json!(123456789)), "1.23456789e+08");
        assert_eq!(text(json!(0.0001)), "0.0001");
        assert_eq!(text(json!(0.00001)), "1e-05");
        assert_eq!(text(json!(-2.5)), "-2.5");
        assert_eq!(text(json!(true)), "true");
        for quoted in [
            "1.0",
            "10",
            "true",
            "F",
            "0x1p-2",
            "Inf",
            "-infinity",
            "NaN",
            "[1]",
            "{}",
            "\"x\"",
            "1e400",
            "null",
        ] {
            assert_eq!(text(json!(quoted)), format!("{quoted:?}"), "{quoted}");
        }
        for plain in [
            "1.1.0", "v1", "+nan", "1_000", "0x10", "{a", "yes", "on", "nil",
        ] {
            assert_eq!(text(json!(plain)), plain, "{plain}");
        }
    }

    #[test]
    fn image_fields_are_written_as_go_yaml_v3_writes_strings() {
        for plain in [
            "1.1.0",
            "ghcr.io/acme/app",
            "v2",
            "sha256:abc",
            "YeS",
            "x#y",
            ":x",
            "-x",
            "it's",
        ] {
            assert_eq!(yaml_string(plain), plain, "{plain}");
        }
        for double in [
            "1.0",
            "10",
            "yes",
            "Off",
            "",
            "null",
            "~",
            "2024-01-15",
            "1_000",
            "0x1F",
            "1:20",
            ".inf",
        ] {
            assert_eq!(yaml_string(double), format!("{double:?}"), "{double:?}");
        }
        for (single, written) in [
            (" x", "' x'"),
            ("a: b", "'a: b'"),
            ("#x", "'#x'"),
            ("x #y", "'x #y'"),
            ("- x", "'- x'"),
            ("[a]", "'[a]'"),
            ("'a", "'''a'"),
            ("*", "'*'"),
        ] {
            assert_eq!(yaml_string(single), written, "{single:?}");
        }
    }

    #[test]
    fn set_images_replace_entries_whole_keep_the_others_and_sort_by_name() {
        let image = |name: &str, new_name: &str, tag: &str, digest: &str| KustomizeImage {
            name: name.into(),
            new_name: new_name.into(),
            new_tag: tag.into(),
            digest: digest.into(),
            ..Default::default()
        };
        let current = vec![
            image("z/app", "mirror/app", "1.0.0", ""),
            image("a/db", "", "15", ""),
            image("m/cache", "mirror/cache", "7", ""),
        ];
        let merged = kustomize_merge_images(
            &current,
            vec![
                image("z/app", "", "1.1.0", ""),
                image("m/cache", "*", "", "sha256:abc"),
            ],
        );
        assert_eq!(
            merged,
            vec![
                image("a/db", "", "15", ""),
                image("m/cache", "mirror/cache", "", "sha256:abc"),
                image("z/app", "", "1.1.0", ""),
            ],
            "newName is dropped unless given or kept with `*`"
        );
        assert_eq!(
            kustomize_write_images("images:\n- name: z/app\n", &merged),
            "images:\n- name: a/db\n  newTag: \"15\"\n- name: m/cache\n  newName: mirror/cache\n  digest: sha256:abc\n- name: z/app\n  newTag: 1.1.0\n"
        );
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
