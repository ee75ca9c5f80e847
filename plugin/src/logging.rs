//! `tracing` → hclog JSON lines on stderr. go-plugin parses these and Terraform files them under
//! the provider's logger, so `TF_LOG` / `TF_LOG_PROVIDER` work as they do for Go providers.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};
/// Re-exported: [`Levels`] is made of these.
pub use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// This crate's own events: they follow the provider's level, like the provider's events.
const OWN_CRATE: &str = env!("CARGO_CRATE_NAME");

/// Which events are the provider's own and what their hclog `@module` reads.
///
/// Events whose `tracing` target is under `target` (normally the provider crate's name) or
/// under this crate follow the requested log level; everything else is a dependency, capped at
/// WARN. `@module` is `module` followed by the module path: `terraform_provider_echo::store`
/// becomes `echo.store`, and this crate's `tfplugin::server` becomes `echo.plugin.server`.
///
/// ```
/// use tfplugin::logging::LogTarget;
///
/// let target = LogTarget::new("terraform_provider_echo", "echo");
/// assert_eq!(target.module_of("terraform_provider_echo::store"), "echo.store");
/// assert_eq!(target.module_of("tfplugin::server"), "echo.plugin.server");
/// assert_eq!(target.module_of("h2::proto::streams"), "h2");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTarget {
    target: String,
    module: String,
}

impl LogTarget {
    /// `target` is the `tracing` target prefix of the provider's own code (its crate name,
    /// with `_` for `-`); `module` is the name its events carry in Terraform's log.
    pub fn new(target: impl Into<String>, module: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            module: module.into(),
        }
    }

    /// Whether events with this `tracing` target are the provider's own.
    pub fn is_own(&self, target: &str) -> bool {
        under(target, &self.target) || under(target, OWN_CRATE)
    }

    /// The hclog `@module` for events with this `tracing` target; a dependency's events keep
    /// its crate name (`h2::proto` → `h2`).
    pub fn module_of(&self, target: &str) -> String {
        let (prefix, rest) = if let Some(rest) = strip_segment(target, &self.target) {
            (self.module.clone(), rest)
        } else if let Some(rest) = strip_segment(target, OWN_CRATE) {
            (format!("{}.plugin", self.module), rest)
        } else {
            return target.split("::").next().unwrap_or(target).to_string();
        };
        let mut module = prefix;
        for part in rest.split("::").filter(|p| !p.is_empty()) {
            module.push('.');
            module.push_str(part);
        }
        module
    }
}

/// `target` without `prefix` when `prefix` is `target` itself or one of its leading path segments.
fn strip_segment<'a>(target: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = target.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with("::")).then_some(rest)
}

fn under(target: &str, prefix: &str) -> bool {
    strip_segment(target, prefix).is_some()
}

/// The most verbose level written: the provider's own events follow the requested level;
/// dependencies (HTTP/2, TLS, API client internals) are capped at WARN, because their
/// debug output is noise for a Terraform user.
///
/// ```
/// use tfplugin::logging::{LevelFilter, Levels};
///
/// let levels = Levels::new(LevelFilter::DEBUG);
/// assert_eq!(levels.own, LevelFilter::DEBUG);
/// assert_eq!(levels.dependencies, LevelFilter::WARN);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// The limit for the provider's own events (and this crate's).
    pub own: LevelFilter,
    /// The limit for everything else.
    pub dependencies: LevelFilter,
}

impl Levels {
    /// `max` for the provider's own events, at most WARN for dependencies.
    pub fn new(max: LevelFilter) -> Self {
        Self {
            own: max,
            dependencies: max.min(LevelFilter::WARN),
        }
    }
}

/// A level name as Terraform accepts it in `TF_LOG`. `JSON` means TRACE (Terraform's JSON log
/// mode), and an unrecognised value means TRACE too, as in Terraform.
pub fn parse_level(value: &str) -> LevelFilter {
    match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" | "JSON" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "INFO" => LevelFilter::INFO,
        "WARN" => LevelFilter::WARN,
        "ERROR" => LevelFilter::ERROR,
        "OFF" => LevelFilter::OFF,
        _ => LevelFilter::TRACE,
    }
}

/// `TF_LOG_PROVIDER` wins over `TF_LOG`; with neither set, INFO (Terraform discards what its
/// own log level excludes anyway).
pub fn level_from_env(get: impl Fn(&str) -> Option<String>) -> LevelFilter {
    ["TF_LOG_PROVIDER", "TF_LOG"]
        .into_iter()
        .find_map(|key| get(key).filter(|v| !v.trim().is_empty()))
        .map(|v| parse_level(&v))
        .unwrap_or(LevelFilter::INFO)
}

/// Installs the hclog layer as the process-wide subscriber, writing to stderr at the level the
/// environment asks for. Does nothing if a subscriber is already installed.
/// [`ServeOptions::run`](crate::ServeOptions::run) calls it; call it yourself only when you
/// start the server some other way.
pub fn init(target: LogTarget) {
    let levels = Levels::new(level_from_env(|key| std::env::var(key).ok()));
    let subscriber =
        tracing_subscriber::registry().with(HclogLayer::new(target, levels, std::io::stderr()));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Writes one hclog JSON object per event: `@level`, `@message`, `@module`, `@timestamp`, then
/// the fields of the enclosing spans (outermost first) and of the event itself.
///
/// ```
/// use tfplugin::logging::{HclogLayer, LevelFilter, Levels, LogTarget};
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let layer = HclogLayer::new(
///     LogTarget::new("terraform_provider_echo", "echo"),
///     Levels::new(LevelFilter::INFO),
///     std::io::stderr(),
/// );
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
/// ```
pub struct HclogLayer {
    target: LogTarget,
    levels: Levels,
    out: Arc<Mutex<dyn Write + Send>>,
}

impl HclogLayer {
    /// A layer writing to `out` (stderr, when Terraform runs the provider).
    pub fn new(target: LogTarget, levels: Levels, out: impl Write + Send + 'static) -> Self {
        Self {
            target,
            levels,
            out: Arc::new(Mutex::new(out)),
        }
    }

    fn allows(&self, meta: &Metadata<'_>) -> bool {
        let limit = if self.target.is_own(meta.target()) {
            self.levels.own
        } else {
            self.levels.dependencies
        };
        limit >= *meta.level()
    }
}

/// Fields recorded on a span, kept in the span's extensions.
struct SpanFields(Map<String, Json>);

impl<S> Layer<S> for HclogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.allows(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.levels.own.max(self.levels.dependencies))
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut FieldVisitor {
            fields: &mut fields,
            message: None,
        });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
                values.record(&mut FieldVisitor {
                    fields,
                    message: None,
                });
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut message = None;
        event.record(&mut FieldVisitor {
            fields: &mut fields,
            message: Some(&mut message),
        });
        let meta = event.metadata();
        let line = format_line(
            meta.level(),
            message.as_deref().unwrap_or_default(),
            &self.target.module_of(meta.target()),
            &timestamp_now(),
            fields,
        );
        if let Ok(mut out) = self.out.lock() {
            // One write per line so that concurrent events never interleave mid-line.
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

struct FieldVisitor<'a> {
    fields: &'a mut Map<String, Json>,
    /// Where the event's `message` goes; spans have none.
    message: Option<&'a mut Option<String>>,
}

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: Json) {
        if field.name() == "message"
            && let Some(slot) = self.message.as_deref_mut()
        {
            *slot = Some(match value {
                Json::String(s) => s,
                other => other.to_string(),
            });
            return;
        }
        self.fields.insert(field.name().to_string(), value);
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Json::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Json::String(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Json::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Json::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Json::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value)
                .map(Json::Number)
                .unwrap_or(Json::Null),
        );
    }
}

/// hclog's level names.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// The current time in the one layout go-plugin parses: RFC 3339, UTC, microseconds.
pub fn timestamp_now() -> String {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.subsec_nanosecond() / 1_000
    )
}

/// One hclog JSON line (newline-terminated). Fields cannot override the `@` keys.
pub fn format_line(
    level: &Level,
    message: &str,
    module: &str,
    timestamp: &str,
    fields: Map<String, Json>,
) -> String {
    let mut obj = Map::new();
    obj.insert("@level".into(), Json::from(level_name(level)));
    obj.insert("@message".into(), Json::from(message));
    obj.insert("@module".into(), Json::from(module));
    obj.insert("@timestamp".into(), Json::from(timestamp));
    for (key, value) in fields {
        if !key.starts_with('@') {
            obj.insert(key, value);
        }
    }
    let mut line = Json::Object(obj).to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Json> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    fn capture(levels: Levels, f: impl FnOnce()) -> Vec<Json> {
        let buffer = Buffer::default();
        let target = LogTarget::new("terraform_provider_echo", "echo");
        let subscriber =
            tracing_subscriber::registry().with(HclogLayer::new(target, levels, buffer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        buffer.lines()
    }

    #[test]
    fn levels_follow_terraform_names() {
        assert_eq!(parse_level("trace"), LevelFilter::TRACE);
        assert_eq!(parse_level("DEBUG"), LevelFilter::DEBUG);
        assert_eq!(parse_level("Info"), LevelFilter::INFO);
        assert_eq!(parse_level("WARN"), LevelFilter::WARN);
        assert_eq!(parse_level("error"), LevelFilter::ERROR);
        assert_eq!(parse_level("OFF"), LevelFilter::OFF);
        assert_eq!(parse_level("JSON"), LevelFilter::TRACE);
        assert_eq!(parse_level("verbose"), LevelFilter::TRACE);
    }

    #[test]
    fn tf_log_provider_wins_over_tf_log() {
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            level_from_env(move |k| map.get(k).cloned())
        };
        assert_eq!(
            env(&[("TF_LOG", "ERROR"), ("TF_LOG_PROVIDER", "debug")]),
            LevelFilter::DEBUG
        );
        assert_eq!(env(&[("TF_LOG", "ERROR")]), LevelFilter::ERROR);
        assert_eq!(
            env(&[("TF_LOG", "warn"), ("TF_LOG_PROVIDER", "")]),
            LevelFilter::WARN
        );
        assert_eq!(env(&[]), LevelFilter::INFO);
        assert_eq!(
            env(&[("TF_LOG_PROVIDER", "off"), ("TF_LOG", "trace")]),
            LevelFilter::OFF
        );
    }

    #[test]
    fn timestamp_has_go_plugin_layout() {
        let ts = timestamp_now();
        // 2006-01-02T15:04:05.000000Z
        assert_eq!(ts.len(), 27, "{ts}");
        let b = ts.as_bytes();
        for (i, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (26, b'Z'),
        ] {
            assert_eq!(b[i], c, "{ts}");
        }
        assert!(ts[20..26].bytes().all(|c| c.is_ascii_digit()), "{ts}");
        assert!(ts.starts_with("20"), "{ts}");
    }

    #[test]
    fn format_line_is_one_hclog_object() {
        let mut fields = Map::new();
        fields.insert("rpc".into(), Json::from("PlanResourceChange"));
        fields.insert("@level".into(), Json::from("error"));
        let line = format_line(
            &Level::WARN,
            "slow",
            "echo.plugin",
            "2026-01-02T03:04:05.000006Z",
            fields,
        );
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["@level"], "warn");
        assert_eq!(parsed["@message"], "slow");
        assert_eq!(parsed["@module"], "echo.plugin");
        assert_eq!(parsed["@timestamp"], "2026-01-02T03:04:05.000006Z");
        assert_eq!(parsed["rpc"], "PlanResourceChange");
    }

    #[test]
    fn events_carry_span_and_event_fields() {
        let lines = capture(Levels::new(LevelFilter::DEBUG), || {
            let span = tracing::debug_span!(
                "rpc",
                rpc = "ApplyResourceChange",
                type_name = tracing::field::Empty
            );
            let _guard = span.enter();
            span.record("type_name", "echo_store");
            tracing::debug!(elapsed_ms = 12u64, ok = true, "applied {}", "it");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["@level"], "debug");
        assert_eq!(line["@message"], "applied it");
        assert_eq!(line["@module"], "echo.plugin.logging.tests");
        assert_eq!(line["rpc"], "ApplyResourceChange");
        assert_eq!(line["type_name"], "echo_store");
        assert_eq!(line["elapsed_ms"], 12);
        assert_eq!(line["ok"], true);
    }

    #[test]
    fn level_limits_apply_and_dependencies_are_capped() {
        let lines = capture(Levels::new(LevelFilter::DEBUG), || {
            tracing::trace!("too verbose");
            tracing::debug!("kept");
            tracing::debug!(target: "terraform_provider_echo::store", "provider's own");
            tracing::debug!(target: "terraform_provider_echo_extra", "another crate");
            tracing::info!(target: "h2::proto", "dependency chatter");
            tracing::warn!(target: "kube_client::client", "dependency warning");
        });
        let messages: Vec<&str> = lines
            .iter()
            .map(|l| l["@message"].as_str().unwrap())
            .collect();
        assert_eq!(messages, ["kept", "provider's own", "dependency warning"]);
        assert_eq!(lines[0]["@module"], "echo.plugin.logging.tests");
        assert_eq!(lines[1]["@module"], "echo.store");
        assert_eq!(lines[2]["@module"], "kube_client");

        let none = capture(Levels::new(LevelFilter::OFF), || tracing::error!("dropped"));
        assert!(none.is_empty());
    }
}
