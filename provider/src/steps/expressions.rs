//! Kargo expressions inside promotion templates: finding `${{ … }}` / `${% … %}` in a string
//! as Kargo does, parsing each with the expr language, and reading what it refers to.

use std::fmt;

/// The delimiter pairs Kargo recognises, in the order it tries them.
const DELIMITERS: [(&str, &str); 2] = [("${{", "}}"), ("${%", "%}")];

/// Whether `text` holds an expression: Kargo evaluates such a string (and may turn it into a
/// number, a boolean or an object); any other string is used as written.
pub fn has_expression(text: &str) -> bool {
    DELIMITERS.iter().any(|(open, _)| text.contains(open))
}

/// Whether `text` is nothing but one expression (surrounding spaces aside), so that its value
/// takes the expression's type.
pub fn is_single_expression(text: &str) -> bool {
    match expressions(text) {
        Ok(found) => {
            found.len() == 1 && {
                let e = &found[0];
                let (open, close) = e.delimiters;
                text.trim() == format!("{open}{}{close}", e.source)
            }
        }
        Err(_) => false,
    }
}

/// One expression found in a template string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expression<'a> {
    /// The text between the delimiters.
    pub source: &'a str,
    /// Byte offset of `source` in the template string.
    pub offset: usize,
    pub delimiters: (&'static str, &'static str),
}

/// A problem with an expression, placed in the template string it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based character column in the template string (the whole value, delimiters
    /// included, counted from the start of its line), so that it matches what the user wrote.
    pub column: usize,
    /// Byte offset of the error in the template string.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// Every expression of `template`, left to right, as Kargo finds them: the earliest opening
/// delimiter, then the first matching closing one after it.
pub fn expressions(template: &str) -> Result<Vec<Expression<'_>>, SyntaxError> {
    let mut found = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &template[pos..];
        let next = DELIMITERS
            .iter()
            .filter_map(|d| rest.find(d.0).map(|i| (i, *d)))
            .min_by_key(|(i, _)| *i);
        let Some((start, (open, close))) = next else {
            return Ok(found);
        };
        let source_start = pos + start + open.len();
        let Some(len) = template[source_start..].find(close) else {
            return Err(SyntaxError {
                column: column_of(template, pos + start),
                offset: pos + start,
                message: format!(
                    "the expression opened with `{open}` is never closed with `{close}`"
                ),
            });
        };
        found.push(Expression {
            source: &template[source_start..source_start + len],
            offset: source_start,
            delimiters: (open, close),
        });
        pos = source_start + len + close.len();
    }
}

/// 1-based character column of byte `offset` in `text`, counted from its last line break.
fn column_of(text: &str, offset: usize) -> usize {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[line_start..].chars().count() + 1
}

/// Parses every expression of `template` with the expr language, returning the first syntax
/// error (placed in `template`) and otherwise the references of all of them.
pub fn analyse(template: &str) -> Result<Vec<Reference>, SyntaxError> {
    let mut references = Vec::new();
    for e in expressions(template)? {
        check_syntax(e.source).map_err(|(offset, message)| SyntaxError {
            column: column_of(template, e.offset + offset),
            offset: e.offset + offset,
            message,
        })?;
        references.extend(references_in(e.source));
    }
    Ok(references)
}

/// The expr parser's verdict on `source`: `Err((byte offset in source, message))`.
fn check_syntax(source: &str) -> Result<(), (usize, String)> {
    if source.trim().is_empty() {
        return Err((0, "the expression is empty".into()));
    }
    // The expr crate's parser panics on some constructs Kargo's accepts (e.g. a map literal
    // whose value is a member access): such an expression cannot be judged here, so it passes.
    let compiled = std::panic::catch_unwind(|| expr::compile(source));
    let Ok(compiled) = compiled else {
        tracing::debug!(
            expression = source,
            "the expression parser gave up on this expression; its syntax is not checked"
        );
        return Ok(());
    };
    match compiled {
        Ok(_) => Ok(()),
        Err(expr::Error::PestError(e)) => {
            let offset = match e.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((p, _)) => p,
            };
            let found = source[offset.min(source.len())..].chars().next();
            let expected = match &e.variant {
                pest::error::ErrorVariant::ParsingError { positives, .. } => {
                    let names: Vec<String> = positives.iter().map(|r| format!("{r:?}")).collect();
                    if names.iter().any(|n| n == "value" || n == "ident") {
                        "a value"
                    } else {
                        "an operator or the end of the expression"
                    }
                }
                pest::error::ErrorVariant::CustomError { .. } => "something else",
            };
            let message = match found {
                None => format!("the expression ends where {expected} is expected"),
                Some(c) => format!("unexpected {:?}; expected {expected}", c.to_string()),
            };
            Err((offset, message))
        }
        Err(other) => Err((0, other.to_string())),
    }
}

/// What an expression refers to that can be checked without a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `vars.<name>` or `vars['<name>']`.
    Var(String),
    /// `outputs.<alias>` or `outputs['<alias>']`.
    Output(String),
    /// `task.outputs.<alias>` or `task.outputs['<alias>']`.
    TaskOutput(String),
    /// Any other use of `task` (only defined inside a promotion task).
    Task,
    /// `imageFrom(…)`, `chartFrom(…)` or `commitFrom(…)`.
    Artifact(ArtifactCall),
}

/// A call that picks an artifact of the freight being promoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactCall {
    pub kind: ArtifactKind,
    /// The repository argument, when it is a literal or a variable.
    pub repo: Argument,
    /// `chartFrom`'s chart name argument, when it is a string literal.
    pub chart: Option<String>,
    /// The warehouse named with `warehouse('<name>')`, when there is one.
    pub warehouse: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactKind {
    Image,
    Chart,
    Git,
}

impl ArtifactKind {
    pub fn function(self) -> &'static str {
        match self {
            ArtifactKind::Image => "imageFrom",
            ArtifactKind::Chart => "chartFrom",
            ArtifactKind::Git => "commitFrom",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Argument {
    Literal(String),
    Var(String),
    Other,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(&'static str),
    Other,
}

/// The tokens of an expression that parsed: identifiers, strings and the punctuation that
/// member access and calls are made of. Everything else is `Other`.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' || c == '"' || c == '`' {
            let mut value = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' && i + 1 < chars.len() {
                    i += 1;
                    value.push(match chars[i] {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    value.push(chars[i]);
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Str(value));
        } else if c.is_alphabetic() || c == '_' || c == '$' || c == '#' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            if i == start {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == '?' && chars.get(i + 1) == Some(&'.') {
            out.push(Token::Punct("?."));
            i += 2;
        } else {
            out.push(match c {
                '.' => Token::Punct("."),
                '[' => Token::Punct("["),
                ']' => Token::Punct("]"),
                '(' => Token::Punct("("),
                ')' => Token::Punct(")"),
                ',' => Token::Punct(","),
                _ => Token::Other,
            });
            i += 1;
        }
    }
    out
}

/// The member named right after `tokens[at]`: `.name`, `?.name` or `['name']`.
fn member(tokens: &[Token], at: usize) -> Option<(String, usize)> {
    match (tokens.get(at + 1), tokens.get(at + 2), tokens.get(at + 3)) {
        (Some(Token::Punct("." | "?.")), Some(Token::Ident(name)), _) => {
            Some((name.clone(), at + 2))
        }
        (Some(Token::Punct("[")), Some(Token::Str(name)), Some(Token::Punct("]"))) => {
            Some((name.clone(), at + 3))
        }
        _ => None,
    }
}

/// The references of one expression (which must have parsed).
fn references_in(source: &str) -> Vec<Reference> {
    let tokens = tokens(source);
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Token::Ident(name) = token else { continue };
        // A member of something else (`a.vars`) is not the root variable.
        if i > 0 && matches!(tokens[i - 1], Token::Punct("." | "?.")) {
            continue;
        }
        match name.as_str() {
            "vars" => {
                if let Some((var, _)) = member(&tokens, i) {
                    found.push(Reference::Var(var));
                }
            }
            "outputs" => {
                if let Some((alias, _)) = member(&tokens, i) {
                    found.push(Reference::Output(alias));
                }
            }
            "task" => match member(&tokens, i) {
                Some((outputs, at)) if outputs == "outputs" => match member(&tokens, at) {
                    Some((alias, _)) => found.push(Reference::TaskOutput(alias)),
                    None => found.push(Reference::Task),
                },
                _ => found.push(Reference::Task),
            },
            "imageFrom" | "chartFrom" | "commitFrom"
                if tokens.get(i + 1) == Some(&Token::Punct("(")) =>
            {
                let kind = match name.as_str() {
                    "imageFrom" => ArtifactKind::Image,
                    "chartFrom" => ArtifactKind::Chart,
                    _ => ArtifactKind::Git,
                };
                found.push(Reference::Artifact(artifact_call(
                    kind,
                    &arguments(&tokens, i + 1),
                )));
            }
            _ => {}
        }
    }
    found
}

/// The top-level arguments of the call whose `(` is `tokens[open]`.
fn arguments(tokens: &[Token], open: usize) -> Vec<&[Token]> {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut start = open + 1;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Punct("(" | "[") => depth += 1,
            Token::Punct(")" | "]") => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    if i > start {
                        args.push(&tokens[start..i]);
                    }
                    break;
                }
            }
            Token::Punct(",") if depth == 1 => {
                args.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    args
}

fn argument(arg: &[Token]) -> Argument {
    match arg {
        [Token::Str(s)] => Argument::Literal(s.clone()),
        [Token::Ident(v), ..]
            if v == "vars" && member(arg, 0).is_some_and(|(_, end)| end + 1 == arg.len()) =>
        {
            member(arg, 0).map_or(Argument::Other, |(name, _)| Argument::Var(name))
        }
        _ => Argument::Other,
    }
}

fn warehouse_argument(arg: &[Token]) -> Option<String> {
    match arg {
        [
            Token::Ident(f),
            Token::Punct("("),
            Token::Str(name),
            Token::Punct(")"),
        ] if f == "warehouse" => Some(name.clone()),
        _ => None,
    }
}

fn artifact_call(kind: ArtifactKind, args: &[&[Token]]) -> ArtifactCall {
    let repo = args.first().map_or(Argument::Other, |a| argument(a));
    let mut chart = None;
    let mut warehouse = None;
    for arg in args.iter().skip(1) {
        if let Some(w) = warehouse_argument(arg) {
            warehouse = Some(w);
        } else if let (ArtifactKind::Chart, [Token::Str(name)]) = (kind, arg) {
            chart = Some(name.clone());
        }
    }
    ArtifactCall {
        kind,
        repo,
        chart,
        warehouse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_are_found_as_kargo_finds_them() {
        let found = expressions("a ${{ vars.x }} b ${% ctx.stage %}${{c}}").unwrap();
        let sources: Vec<&str> = found.iter().map(|e| e.source).collect();
        assert_eq!(sources, vec![" vars.x ", " ctx.stage ", "c"]);
        assert_eq!(found[0].offset, 5);
        // The first closing delimiter ends the expression, even inside a map literal.
        let found = expressions("${{ {a: {b: 1}} }}").unwrap();
        assert_eq!(found[0].source, " {a: {b: 1");
        let err = expressions("path/${{ ctx.stage").unwrap_err();
        assert_eq!(err.column, 6);
        assert!(
            err.message.contains("never closed with `}}`"),
            "{}",
            err.message
        );
        assert!(expressions("no expression {{ here }}").unwrap().is_empty());
        assert!(has_expression("x${% y %}"));
        assert!(!has_expression("${ x }"));
        assert!(is_single_expression(" ${{ outputs.a.b }} "));
        assert!(!is_single_expression("v${{ outputs.a.b }}"));
        assert!(!is_single_expression("${{ a }}${{ b }}"));
    }

    #[test]
    fn an_expression_the_parser_gives_up_on_passes_with_its_references() {
        // The expr crate's parser panics on this map literal, which Kargo evaluates.
        let source = "${{ quote({ channel: vars.channel, text: ctx.project + ctx.stage }) }}";
        let references = analyse(source).expect("not reported as a syntax error");
        assert!(
            references.contains(&Reference::Var("channel".into())),
            "{references:?}"
        );
    }

    #[test]
    fn syntax_errors_name_the_column_in_the_whole_value() {
        let err = analyse("./src/${{ vars.x + }}").unwrap_err();
        assert_eq!(err.column, 20, "{err}");
        assert_eq!(err.message, "the expression ends where a value is expected");
        let err = analyse("${{ vars.a )}}").unwrap_err();
        assert_eq!(err.column, 12, "{err}");
        assert_eq!(
            err.message,
            "unexpected \")\"; expected an operator or the end of the expression"
        );
        let err = analyse("a\n  ${{ 1 +* 2 }}").unwrap_err();
        assert_eq!(err.column, 10, "columns count from the line's start: {err}");
        assert_eq!(
            analyse("${{   }}").unwrap_err().message,
            "the expression is empty"
        );
    }

    #[test]
    fn references_are_read_from_kargo_usages() {
        let refs = analyse(
            "${{ chartFrom('https://charts.rustfs.com', 'rustfs', warehouse('rustfs-charts')).Version }} \
             ${{ task.outputs['open-pr'].pr.id }} ${{ outputs.push?.branch }} ${{ vars['my-var'] ?? vars.b }} \
             ${{ imageFrom(vars.image).Tag }} ${{ commitFrom(ctx.x) }} ${{ a.vars.c }} ${{ task }}",
        )
        .unwrap();
        assert_eq!(
            refs,
            vec![
                Reference::Artifact(ArtifactCall {
                    kind: ArtifactKind::Chart,
                    repo: Argument::Literal("https://charts.rustfs.com".into()),
                    chart: Some("rustfs".into()),
                    warehouse: Some("rustfs-charts".into()),
                }),
                Reference::TaskOutput("open-pr".into()),
                Reference::Output("push".into()),
                Reference::Var("my-var".into()),
                Reference::Var("b".into()),
                Reference::Artifact(ArtifactCall {
                    kind: ArtifactKind::Image,
                    repo: Argument::Var("image".into()),
                    chart: None,
                    warehouse: None,
                }),
                Reference::Var("image".into()),
                Reference::Artifact(ArtifactCall {
                    kind: ArtifactKind::Git,
                    repo: Argument::Other,
                    chart: None,
                    warehouse: None,
                }),
                Reference::Task,
            ]
        );
    }
}
