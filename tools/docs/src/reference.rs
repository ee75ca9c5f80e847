//! Renders a schema as the registry's argument reference: Required, Optional and Read-Only
//! lists with types and flags, and one anchored sub-section per nested object or block.

use std::collections::BTreeMap;

use terraform_provider_kargo::plugin::{
    Attribute, AttributeType, Block, NestedBlock, Nesting, Type, Value,
};

/// Which list an attribute or block is shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Required,
    Optional,
    ReadOnly,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Class::Required => "Required",
            Class::Optional => "Optional",
            Class::ReadOnly => "Read-Only",
        }
    }

    pub fn of_attribute(a: &Attribute) -> Class {
        if a.required {
            Class::Required
        } else if a.optional {
            Class::Optional
        } else {
            Class::ReadOnly
        }
    }

    pub fn of_block(b: &NestedBlock) -> Class {
        if b.min_items > 0 {
            Class::Required
        } else {
            Class::Optional
        }
    }
}

/// What a nested sub-section lists; the variant decides the anchor's prefix.
enum Content<'a> {
    Attributes(&'a [Attribute]),
    Block(&'a Block),
    /// The attribute types of an object-typed attribute (no descriptions exist for them).
    Object(&'a BTreeMap<String, Type>, Class),
}

struct Section<'a> {
    path: Vec<String>,
    content: Content<'a>,
}

impl Section<'_> {
    fn anchor(&self) -> String {
        let prefix = match self.content {
            Content::Attributes(_) => "nestedatt",
            Content::Block(_) => "nestedblock",
            Content::Object(..) => "nestedobjatt",
        };
        format!("{prefix}--{}", self.path.join("--"))
    }
}

/// One line of a list: `- \`name\` (meta) description`.
struct Item<'a> {
    name: String,
    class: Class,
    meta: Vec<String>,
    description: String,
    nested: Option<Section<'a>>,
}

/// The type as the registry spells it: `String`, `List of String`, `Map of Number`, …
pub fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_name(e)),
        Type::Set(e) => format!("Set of {}", type_name(e)),
        Type::Map(e) => format!("Map of {}", type_name(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

/// The object type inside a (possibly nested) collection type, whose attributes need their
/// own sub-section.
fn object_in(t: &Type) -> Option<&BTreeMap<String, Type>> {
    match t {
        Type::Object(attrs) => Some(attrs),
        Type::List(e) | Type::Set(e) | Type::Map(e) => object_in(e),
        _ => None,
    }
}

fn nested_attributes_type(nesting: Nesting) -> &'static str {
    match nesting {
        Nesting::Single | Nesting::Group => "Attributes",
        Nesting::List => "Attributes List",
        Nesting::Set => "Attributes Set",
        Nesting::Map => "Attributes Map",
    }
}

fn block_type(b: &NestedBlock) -> String {
    let mut s = String::from(match b.nesting {
        Nesting::Single | Nesting::Group => "Block",
        Nesting::List => "Block List",
        Nesting::Set => "Block Set",
        Nesting::Map => "Block Map",
    });
    if b.min_items > 0 {
        s.push_str(&format!(", Min: {}", b.min_items));
    }
    if b.max_items > 0 {
        s.push_str(&format!(", Max: {}", b.max_items));
    }
    s
}

/// A default value as it would be written in HCL.
pub fn hcl_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Unknown => "(known after apply)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::Value::String(s.clone()).to_string(),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => format!(
            "[{}]",
            items.iter().map(hcl_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(entries) | Value::Object(entries) => {
            if entries.is_empty() {
                return "{}".into();
            }
            let body = entries
                .iter()
                .map(|(k, v)| format!("{} = {}", hcl_key(k), hcl_value(v)))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{{ {body} }}")
        }
    }
}

fn hcl_key(k: &str) -> String {
    let bare = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        serde_json::Value::String(k.to_string()).to_string()
    }
}

fn child_path(path: &[String], name: &str) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(name.to_string());
    p
}

fn attribute_item<'a>(a: &'a Attribute, path: &[String]) -> Item<'a> {
    let (ty, nested) = match &a.ty {
        AttributeType::Nested(o) => (
            nested_attributes_type(o.nesting).to_string(),
            Some(Section {
                path: child_path(path, &a.name),
                content: Content::Attributes(&o.attributes),
            }),
        ),
        AttributeType::Primitive(t) => (
            type_name(t),
            object_in(t).map(|attrs| Section {
                path: child_path(path, &a.name),
                content: Content::Object(attrs, Class::of_attribute(a)),
            }),
        ),
    };
    let mut meta = vec![ty];
    if a.sensitive {
        meta.push("Sensitive".into());
    }
    if a.write_only {
        meta.push("Write-only".into());
    }
    if a.requires_replace {
        meta.push("Forces replacement".into());
    }
    if a.deprecation.is_some() {
        meta.push("Deprecated".into());
    }
    if let Some(default) = &a.default
        && !states_default(&a.description, default)
    {
        meta.push(format!("Default: `{}`", hcl_value(default)));
    }
    Item {
        name: a.name.clone(),
        class: Class::of_attribute(a),
        meta,
        description: with_deprecation(&a.description, a.deprecation.as_deref()),
        nested,
    }
}

fn block_item<'a>(b: &'a NestedBlock, path: &[String]) -> Item<'a> {
    let mut meta = vec![block_type(b)];
    if b.block.deprecation.is_some() {
        meta.push("Deprecated".into());
    }
    Item {
        name: b.type_name.clone(),
        class: Class::of_block(b),
        meta,
        description: with_deprecation(&b.block.description, b.block.deprecation.as_deref()),
        nested: Some(Section {
            path: child_path(path, &b.type_name),
            content: Content::Block(&b.block),
        }),
    }
}

/// Whether the description already names the default (`Default \`5m0s\``), so the flag
/// would only repeat it.
fn states_default(description: &str, default: &Value) -> bool {
    let spelled = match default {
        Value::String(s) => s.clone(),
        other => hcl_value(other),
    };
    ["Default", "Defaults to", "default"]
        .iter()
        .any(|lead| description.contains(&format!("{lead} `{spelled}`")))
}

fn with_deprecation(description: &str, deprecation: Option<&str>) -> String {
    let description = description.trim();
    match deprecation {
        None => description.to_string(),
        // Descriptions of removed fields usually say the same thing already.
        Some(msg) if description.contains(msg.trim()) => description.to_string(),
        Some(msg) if description.is_empty() => format!("**Deprecated:** {}", msg.trim()),
        Some(msg) => format!("{description}\n\n**Deprecated:** {}", msg.trim()),
    }
}

fn items_of<'a>(
    attributes: &'a [Attribute],
    blocks: &'a [NestedBlock],
    path: &[String],
) -> Vec<Item<'a>> {
    let mut items: Vec<Item<'a>> = attributes
        .iter()
        .map(|a| attribute_item(a, path))
        .chain(blocks.iter().map(|b| block_item(b, path)))
        .collect();
    // Alphabetical within each list, whatever order the code declares them in.
    items.sort_by(|a, b| a.class.cmp(&b.class).then_with(|| a.name.cmp(&b.name)));
    items
}

fn section_items<'a>(section: &Section<'a>) -> Vec<Item<'a>> {
    match section.content {
        Content::Attributes(attrs) => items_of(attrs, &[], &section.path),
        Content::Block(block) => items_of(&block.attributes, &block.blocks, &section.path),
        Content::Object(attrs, class) => {
            // Every attribute of an object type must be given when the object is; a
            // read-only object is read-only all the way down.
            let class = if class == Class::ReadOnly {
                Class::ReadOnly
            } else {
                Class::Required
            };
            attrs
                .iter()
                .map(|(name, t)| Item {
                    name: name.clone(),
                    class,
                    meta: vec![type_name(t)],
                    description: String::new(),
                    nested: object_in(t).map(|inner| Section {
                        path: child_path(&section.path, name),
                        content: Content::Object(inner, class),
                    }),
                })
                .collect()
        }
    }
}

/// Writes one list item, keeping later paragraphs of the description inside the item.
fn write_item(out: &mut String, item: &Item<'_>) {
    let mut text = item.description.clone();
    if let Some(section) = &item.nested {
        let link = format!(
            "Nested schema: [`{}`](#{}).",
            section.path.join("."),
            section.anchor()
        );
        if text.is_empty() {
            text = link;
        } else {
            text = format!("{text} {link}");
        }
    }
    out.push_str(&format!("- `{}` ({})", item.name, item.meta.join(", ")));
    let mut lines = text.lines();
    if let Some(first) = lines.next() {
        out.push(' ');
        out.push_str(first.trim_end());
    }
    out.push('\n');
    for line in lines {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            out.push_str("  ");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// Writes the items grouped by class, each group under `heading(class)`; returns the
/// nested sections the items refer to, in the order they appear.
fn write_groups<'a>(
    out: &mut String,
    items: Vec<Item<'a>>,
    heading: impl Fn(Class) -> String,
) -> Vec<Section<'a>> {
    let mut nested = Vec::new();
    let mut current: Option<Class> = None;
    for mut item in items {
        if current != Some(item.class) {
            if current.is_some() {
                out.push('\n');
            }
            out.push_str(&heading(item.class));
            out.push_str("\n\n");
            current = Some(item.class);
        }
        write_item(out, &item);
        if let Some(section) = item.nested.take() {
            nested.push(section);
        }
    }
    nested
}

fn write_sections(out: &mut String, sections: Vec<Section<'_>>) {
    for section in sections {
        out.push_str(&format!(
            "\n<a id=\"{}\"></a>\n### Nested Schema for `{}`\n\n",
            section.anchor(),
            section.path.join(".")
        ));
        let items = section_items(&section);
        if items.is_empty() {
            out.push_str("No attributes.\n");
            continue;
        }
        let children = write_groups(out, items, |c| format!("{}:", c.label()));
        write_sections(out, children);
    }
}

/// The `## Schema` section of a page: top-level lists, then every nested sub-section
/// (depth first, in the order the lists mention them).
pub fn render_schema(block: &Block) -> String {
    let mut out = String::from("## Schema\n\n");
    let items = items_of(&block.attributes, &block.blocks, &[]);
    if items.is_empty() {
        out.push_str("This has no attributes.\n");
        return out;
    }
    let nested = write_groups(&mut out, items, |c| format!("### {}", c.label()));
    write_sections(&mut out, nested);
    out
}

/// Every attribute or block path in `block` that has no description, for the generator's
/// completeness check.
pub fn undocumented(block: &Block) -> Vec<String> {
    fn walk(attrs: &[Attribute], blocks: &[NestedBlock], at: &str, out: &mut Vec<String>) {
        for a in attrs {
            let path = format!("{at}{}", a.name);
            if a.description.trim().is_empty() {
                out.push(path.clone());
            }
            if let Some(o) = a.nested_object() {
                walk(&o.attributes, &[], &format!("{path}."), out);
            }
        }
        for b in blocks {
            let path = format!("{at}{}", b.type_name);
            if b.block.description.trim().is_empty() {
                out.push(path.clone());
            }
            walk(
                &b.block.attributes,
                &b.block.blocks,
                &format!("{path}."),
                out,
            );
        }
    }
    let mut out = Vec::new();
    walk(&block.attributes, &block.blocks, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use terraform_provider_kargo::plugin::NestedObject;

    use super::*;

    fn sample() -> Block {
        Block::new(vec![
            Attribute::string("name")
                .required()
                .requires_replace()
                .description("The name."),
            Attribute::string("token")
                .optional()
                .sensitive()
                .description("A secret."),
            Attribute::bool("enabled")
                .default(Value::Bool(false))
                .description("Whether it is on."),
            Attribute::string_list("tags")
                .optional()
                .description("Tags."),
            Attribute::string_map("labels")
                .optional()
                .description("Labels."),
            Attribute::new(
                "matrix",
                AttributeType::Primitive(Type::list(Type::set(Type::Number))),
            )
            .optional()
            .description("Numbers."),
            Attribute::new(
                "artifacts",
                AttributeType::Primitive(Type::list(Type::object([
                    ("repo_url", Type::String),
                    ("digests", Type::map(Type::String)),
                ]))),
            )
            .computed()
            .description("What was found."),
            Attribute::string("id").computed().description("The ID."),
            Attribute::string("old")
                .optional()
                .deprecated("Use `name`.")
                .description("The old name."),
            Attribute::nested(
                "policies",
                NestedObject::list(vec![
                    Attribute::nested(
                        "selector",
                        NestedObject::single(vec![
                            Attribute::string("name").optional().description("A name."),
                        ]),
                    )
                    .required()
                    .description("Which ones."),
                    Attribute::string("state")
                        .computed()
                        .description("Observed."),
                ]),
            )
            .optional()
            .description("Policies.\n\nA second paragraph."),
        ])
        .block(
            NestedBlock::new(
                "exec",
                Block::new(vec![
                    Attribute::string("command")
                        .required()
                        .description("Command."),
                ])
                .description("A plugin."),
                Nesting::List,
            )
            .max_items(1),
        )
    }

    #[test]
    fn types_render_as_the_registry_spells_them() {
        assert_eq!(type_name(&Type::Bool), "Boolean");
        assert_eq!(type_name(&Type::list(Type::String)), "List of String");
        assert_eq!(type_name(&Type::map(Type::Number)), "Map of Number");
        assert_eq!(
            type_name(&Type::set(Type::list(Type::String))),
            "Set of List of String"
        );
        assert_eq!(type_name(&Type::object([("a", Type::String)])), "Object");
        assert_eq!(type_name(&Type::Dynamic), "Dynamic");
        let md = render_schema(&sample());
        assert!(md.contains("- `tags` (List of String) Tags.\n"), "{md}");
        assert!(md.contains("- `labels` (Map of String) Labels.\n"), "{md}");
        assert!(
            md.contains("- `matrix` (List of Set of Number) Numbers.\n"),
            "{md}"
        );
        assert!(
            md.contains("- `policies` (Attributes List) Policies.\n\n  A second paragraph. Nested schema: [`policies`](#nestedatt--policies).\n"),
            "{md}"
        );
        assert!(
            md.contains("- `exec` (Block List, Max: 1) A plugin. Nested schema: [`exec`](#nestedblock--exec).\n"),
            "{md}"
        );
        assert!(
            md.contains("- `artifacts` (List of Object) What was found. Nested schema: [`artifacts`](#nestedobjatt--artifacts).\n"),
            "{md}"
        );
    }

    #[test]
    fn attributes_are_classified_and_sorted_with_their_flags() {
        let md = render_schema(&sample());
        let required = md.find("### Required\n").expect("required heading");
        let optional = md.find("### Optional\n").expect("optional heading");
        let read_only = md.find("### Read-Only\n").expect("read-only heading");
        assert!(required < optional && optional < read_only, "{md}");
        let pos = |s: &str| md.find(s).unwrap_or_else(|| panic!("{s} missing in\n{md}"));
        assert!(pos("- `name` (String, Forces replacement) The name.") < optional);
        // Optional+computed with a default is still something the user sets.
        let enabled = pos("- `enabled` (Boolean, Default: `false`) Whether it is on.");
        assert!(optional < enabled && enabled < read_only);
        assert!(pos("- `token` (String, Sensitive) A secret.") < read_only);
        assert!(
            pos("- `old` (String, Deprecated) The old name.\n\n  **Deprecated:** Use `name`.")
                < read_only
        );
        assert!(pos("- `id` (String) The ID.") > read_only);
        // Alphabetical inside a list.
        let names: Vec<_> = [
            "enabled", "exec", "labels", "matrix", "old", "policies", "tags", "token",
        ]
        .iter()
        .map(|n| pos(&format!("- `{n}` (")))
        .collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{md}");
    }

    #[test]
    fn nested_objects_get_anchored_sections_depth_first() {
        let md = render_schema(&sample());
        let pos = |s: &str| md.find(s).unwrap_or_else(|| panic!("{s} missing in\n{md}"));
        let policies = pos(
            "<a id=\"nestedatt--policies\"></a>\n### Nested Schema for `policies`\n\nRequired:\n\n- `selector` (Attributes) Which ones. Nested schema: [`policies.selector`](#nestedatt--policies--selector).\n\nRead-Only:\n\n- `state` (String) Observed.\n",
        );
        let selector = pos(
            "<a id=\"nestedatt--policies--selector\"></a>\n### Nested Schema for `policies.selector`\n\nOptional:\n\n- `name` (String) A name.\n",
        );
        let exec = pos(
            "<a id=\"nestedblock--exec\"></a>\n### Nested Schema for `exec`\n\nRequired:\n\n- `command` (String) Command.\n",
        );
        let artifacts = pos(
            "<a id=\"nestedobjatt--artifacts\"></a>\n### Nested Schema for `artifacts`\n\nRead-Only:\n\n- `digests` (Map of String)\n- `repo_url` (String)\n",
        );
        // Sections follow the order of the lists: optional (exec, policies and its child),
        // then read-only (artifacts).
        assert!(
            exec < policies && policies < selector && selector < artifacts,
            "{md}"
        );
        // Every link has its anchor.
        for link in md.split("](#").skip(1) {
            let anchor = &link[..link.find(')').expect("closing parenthesis")];
            assert!(
                md.contains(&format!("<a id=\"{anchor}\"></a>")),
                "{anchor} has no target"
            );
        }
    }

    #[test]
    fn defaults_and_deprecations_the_description_states_are_not_repeated() {
        let block = Block::new(vec![
            Attribute::string("interval")
                .default(Value::string("5m0s"))
                .description("How often. Default `5m0s`."),
            Attribute::number("limit")
                .default(Value::int(20))
                .description("How many."),
            Attribute::string("gone")
                .optional()
                .deprecated("Removed in v2: use `name`.")
                .description("Removed in v2: use `name`. Setting it is an error."),
        ]);
        let md = render_schema(&block);
        assert!(
            md.contains("- `interval` (String) How often. Default `5m0s`.\n"),
            "{md}"
        );
        assert!(
            md.contains("- `limit` (Number, Default: `20`) How many.\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "- `gone` (String, Deprecated) Removed in v2: use `name`. Setting it is an error.\n"
            ),
            "{md}"
        );
        assert!(!md.contains("**Deprecated:**"), "{md}");
    }

    #[test]
    fn rendering_does_not_depend_on_declaration_order() {
        let block = sample();
        let mut reversed = block.clone();
        reversed.attributes.reverse();
        assert_eq!(render_schema(&block), render_schema(&block));
        assert_eq!(render_schema(&block), render_schema(&reversed));
    }

    #[test]
    fn defaults_render_as_hcl() {
        assert_eq!(hcl_value(&Value::string("5m")), "\"5m\"");
        assert_eq!(hcl_value(&Value::int(20)), "20");
        assert_eq!(
            hcl_value(&Value::List(vec![Value::string("a"), Value::Bool(true)])),
            "[\"a\", true]"
        );
        assert_eq!(
            hcl_value(&Value::object([("a", Value::int(1)), ("b.c", Value::Null)])),
            "{ a = 1, \"b.c\" = null }"
        );
    }

    #[test]
    fn missing_descriptions_are_listed_by_path() {
        let block = Block::new(vec![
            Attribute::string("a").optional(),
            Attribute::nested(
                "b",
                NestedObject::single(vec![Attribute::string("c").optional()]),
            )
            .optional()
            .description("B."),
        ]);
        assert_eq!(undocumented(&block), vec!["a", "b.c"]);
        assert!(undocumented(&sample()).is_empty());
    }

    #[test]
    fn an_empty_schema_says_so() {
        assert_eq!(
            render_schema(&Block::default()),
            "## Schema\n\nThis has no attributes.\n"
        );
    }
}
