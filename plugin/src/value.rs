//! cty values as Terraform exchanges them: typed, possibly null or unknown, possibly dynamic.
//! The wire codecs (msgpack and JSON) are type-directed and live here too.

use std::collections::BTreeMap;
use std::fmt;

use rmp::Marker;

use crate::diagnostics::AttributePath;
use crate::error::Error;

/// A cty type. `Dynamic` is cty's DynamicPseudoType (`"dynamic"` in JSON type notation).
///
/// ```
/// use tfplugin::Type;
///
/// let ty = Type::object([("tags", Type::list(Type::String)), ("port", Type::Number)]);
/// assert_eq!(ty.to_string(), r#"["object",{"port":"number","tags":["list","string"]}]"#);
/// assert_eq!(Type::from_json(&ty.to_json()).unwrap(), ty);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// `bool`.
    Bool,
    /// `number`: integers and decimals alike.
    Number,
    /// `string`.
    String,
    /// Any type, decided by the value (cty's DynamicPseudoType).
    Dynamic,
    /// A list of one element type.
    List(Box<Type>),
    /// A set of one element type.
    Set(Box<Type>),
    /// A map from strings to one element type.
    Map(Box<Type>),
    /// Attribute types by name. Optional-attribute markers of type constraints are
    /// accepted by [`Type::from_json`] and dropped: they do not exist on the wire.
    Object(BTreeMap<String, Type>),
    /// A fixed sequence of element types.
    Tuple(Vec<Type>),
}

/// A cty value. Collections keep their kind so that a dynamic value can be re-encoded
/// with the same type it arrived with.
///
/// ```
/// use tfplugin::Value;
///
/// let mut store = Value::object([
///     ("name", Value::string("app")),
///     ("replicas", Value::int(3)),
///     ("id", Value::Unknown),
/// ]);
/// assert_eq!(store.get("name").as_str(), Some("app"));
/// assert_eq!(store.get("replicas").as_i64(), Some(3));
/// assert!(!store.is_wholly_known());
/// store.set("id", Value::string("app-1"));
/// assert!(store.is_wholly_known());
/// assert!(store.get("absent").is_null());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// Null: not set.
    #[default]
    Null,
    /// Not yet known (plan time). Refined unknowns decode to this as well.
    Unknown,
    /// A bool.
    Bool(bool),
    /// A number (integers are kept as integers).
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A list.
    List(Vec<Value>),
    /// A set (order carries no meaning).
    Set(Vec<Value>),
    /// A map.
    Map(BTreeMap<String, Value>),
    /// An object: attributes by name.
    Object(BTreeMap<String, Value>),
    /// A tuple.
    Tuple(Vec<Value>),
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }
    /// A whole number.
    pub fn int(n: i64) -> Self {
        Value::Number(n.into())
    }
    /// Builds an object from `(name, value)` pairs.
    pub fn object<I, K>(attrs: I) -> Self
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        Value::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    /// Whether it is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// Whether it is (wholly) unknown.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                v.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            _ => true,
        }
    }
    /// An object's attribute, or `Value::Null` when absent or when `self` is not an object.
    pub fn get(&self, attr: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Object(m) | Value::Map(m) => m.get(attr).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
    /// The zero value of its type: `false`, `0`, `""` or an empty collection (what Go's
    /// `omitempty` leaves out).
    pub fn is_zero(&self) -> bool {
        match self {
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::List(x) | Value::Set(x) | Value::Tuple(x) => x.is_empty(),
            Value::Map(m) => m.is_empty(),
            _ => false,
        }
    }

    /// The string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// The string attribute `attr`, or `""` when it is null, unknown, absent or not a string:
    /// for names that validation or the plan has already made sure of, and messages.
    pub fn str_or_empty(&self, attr: &str) -> &str {
        self.get(attr).as_str().unwrap_or_default()
    }
    /// The bool, when it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The number, when it is a whole number within `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            _ => None,
        }
    }
    /// Elements of a list, set or tuple; empty for anything else (including null).
    pub fn elements(&self) -> &[Value] {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v,
            _ => &[],
        }
    }
    /// Entries of a map or object; `None` for anything else.
    pub fn entries(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) | Value::Object(m) => Some(m),
            _ => None,
        }
    }
    /// Sets an object attribute (no-op when `self` is not an object or map).
    pub fn set(&mut self, attr: &str, v: Value) {
        if let Value::Object(m) | Value::Map(m) = self {
            m.insert(attr.to_string(), v);
        }
    }

    /// The concrete type this value would be encoded with under a dynamic type.
    ///
    /// Null and unknown values carry no type and infer as `Dynamic`; collection element
    /// types are unified across elements (a `Dynamic` part gives way to a concrete one).
    pub fn infer_type(&self) -> Type {
        match self {
            Value::Null | Value::Unknown => Type::Dynamic,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(v) => Type::List(Box::new(unify_all(v))),
            Value::Set(v) => Type::Set(Box::new(unify_all(v))),
            Value::Map(m) => Type::Map(Box::new(unify_all(m.values()))),
            Value::Object(m) => {
                Type::Object(m.iter().map(|(k, v)| (k.clone(), v.infer_type())).collect())
            }
            Value::Tuple(v) => Type::Tuple(v.iter().map(Value::infer_type).collect()),
        }
    }

    /// Plain JSON for this value: objects and maps become JSON objects, lists, sets and
    /// tuples arrays. `None` when anything inside is unknown.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self {
            Value::Unknown => return None,
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Number(n.clone()),
            Value::String(s) => J::String(s.clone()),
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                J::Array(v.iter().map(Value::to_json).collect::<Option<Vec<_>>>()?)
            }
            Value::Map(m) | Value::Object(m) => {
                let mut out = serde_json::Map::with_capacity(m.len());
                for (k, v) in m {
                    out.insert(k.clone(), v.to_json()?);
                }
                J::Object(out)
            }
        })
    }

    /// Converts plain JSON (e.g. a field of a Kubernetes object) into a value of type `ty`.
    ///
    /// Lenient by design: object attributes missing from `j` become null, extra ones are
    /// dropped, numbers and booleans convert to strings (and back when they parse), and a
    /// JSON object or array where a string is expected becomes its compact JSON text.
    /// Anything else that does not fit the type becomes null. Under `Dynamic`, JSON
    /// objects become objects and arrays tuples.
    pub fn from_json(j: &serde_json::Value, ty: &Type) -> Value {
        use serde_json::Value as J;
        if j.is_null() {
            return Value::Null;
        }
        match ty {
            Type::Dynamic => match j {
                J::Null => Value::Null,
                J::Bool(b) => Value::Bool(*b),
                J::Number(n) => Value::Number(normalize_number(n)),
                J::String(s) => Value::String(s.clone()),
                J::Array(a) => Value::Tuple(
                    a.iter()
                        .map(|e| Value::from_json(e, &Type::Dynamic))
                        .collect(),
                ),
                J::Object(o) => Value::Object(
                    o.iter()
                        .map(|(k, v)| (k.clone(), Value::from_json(v, &Type::Dynamic)))
                        .collect(),
                ),
            },
            Type::String => match j {
                J::String(s) => Value::String(s.clone()),
                J::Bool(b) => Value::String(b.to_string()),
                J::Number(n) => Value::String(n.to_string()),
                other => Value::String(other.to_string()),
            },
            Type::Number => match j {
                J::Number(n) => Value::Number(normalize_number(n)),
                J::String(s) => parse_number(s).map_or(Value::Null, Value::Number),
                _ => Value::Null,
            },
            Type::Bool => match j {
                J::Bool(b) => Value::Bool(*b),
                J::String(s) if s == "true" => Value::Bool(true),
                J::String(s) if s == "false" => Value::Bool(false),
                _ => Value::Null,
            },
            Type::List(e) | Type::Set(e) => match j {
                J::Array(a) => {
                    let items = a.iter().map(|x| Value::from_json(x, e)).collect();
                    if matches!(ty, Type::Set(_)) {
                        Value::Set(items)
                    } else {
                        Value::List(items)
                    }
                }
                _ => Value::Null,
            },
            Type::Tuple(ts) => match j {
                J::Array(a) => Value::Tuple(
                    ts.iter()
                        .enumerate()
                        .map(|(i, t)| a.get(i).map_or(Value::Null, |x| Value::from_json(x, t)))
                        .collect(),
                ),
                _ => Value::Null,
            },
            Type::Map(e) => match j {
                J::Object(o) => Value::Map(
                    o.iter()
                        .map(|(k, v)| (k.clone(), Value::from_json(v, e)))
                        .collect(),
                ),
                _ => Value::Null,
            },
            Type::Object(attrs) => match j {
                J::Object(o) => Value::Object(
                    attrs
                        .iter()
                        .map(|(k, t)| {
                            (
                                k.clone(),
                                o.get(k).map_or(Value::Null, |x| Value::from_json(x, t)),
                            )
                        })
                        .collect(),
                ),
                _ => Value::Null,
            },
        }
    }
}

/// The most specific type that all the given values fit, as cty unifies collection elements.
fn unify_all<'a>(values: impl IntoIterator<Item = &'a Value>) -> Type {
    values
        .into_iter()
        .fold(Type::Dynamic, |acc, v| unify(acc, v.infer_type()))
}

fn unify(a: Type, b: Type) -> Type {
    match (a, b) {
        (Type::Dynamic, t) | (t, Type::Dynamic) => t,
        (Type::List(x), Type::List(y)) => Type::List(Box::new(unify(*x, *y))),
        (Type::Set(x), Type::Set(y)) => Type::Set(Box::new(unify(*x, *y))),
        (Type::Map(x), Type::Map(y)) => Type::Map(Box::new(unify(*x, *y))),
        (Type::Object(mut x), Type::Object(y)) if x.len() == y.len() && x.keys().eq(y.keys()) => {
            for (k, t) in y {
                if let Some(slot) = x.get_mut(&k) {
                    *slot = unify(std::mem::replace(slot, Type::Dynamic), t);
                }
            }
            Type::Object(x)
        }
        (Type::Tuple(x), Type::Tuple(y)) if x.len() == y.len() => {
            Type::Tuple(x.into_iter().zip(y).map(|(a, b)| unify(a, b)).collect())
        }
        (a, _) => a,
    }
}

impl Type {
    /// `list(element)`.
    pub fn list(element: Type) -> Type {
        Type::List(Box::new(element))
    }
    /// `set(element)`.
    pub fn set(element: Type) -> Type {
        Type::Set(Box::new(element))
    }
    /// `map(element)`.
    pub fn map(element: Type) -> Type {
        Type::Map(Box::new(element))
    }
    /// Builds an object type from `(name, type)` pairs.
    pub fn object<I, K>(attrs: I) -> Type
    where
        I: IntoIterator<Item = (K, Type)>,
        K: Into<String>,
    {
        Type::Object(attrs.into_iter().map(|(k, t)| (k.into(), t)).collect())
    }

    /// True when `Dynamic` appears anywhere in this type.
    pub fn has_dynamic(&self) -> bool {
        match self {
            Type::Dynamic => true,
            Type::Bool | Type::Number | Type::String => false,
            Type::List(e) | Type::Set(e) | Type::Map(e) => e.has_dynamic(),
            Type::Object(attrs) => attrs.values().any(Type::has_dynamic),
            Type::Tuple(ts) => ts.iter().any(Type::has_dynamic),
        }
    }

    /// cty's JSON type notation: `"string"`, `["list","string"]`, `["object",{…}]`, ….
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        let kind = |name: &str, inner: J| J::Array(vec![J::String(name.to_string()), inner]);
        match self {
            Type::Bool => J::String("bool".into()),
            Type::Number => J::String("number".into()),
            Type::String => J::String("string".into()),
            Type::Dynamic => J::String("dynamic".into()),
            Type::List(e) => kind("list", e.to_json()),
            Type::Set(e) => kind("set", e.to_json()),
            Type::Map(e) => kind("map", e.to_json()),
            Type::Object(attrs) => {
                // BTreeMap iteration is sorted, which is also the order cty writes.
                let fields = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                kind("object", J::Object(fields))
            }
            Type::Tuple(ts) => kind("tuple", J::Array(ts.iter().map(Type::to_json).collect())),
        }
    }

    /// Parses cty's JSON type notation; an object's optional-attribute list is ignored.
    pub fn from_json(j: &serde_json::Value) -> Result<Type, Error> {
        type_from_json(j, &AttributePath::root())
    }
}

fn type_from_json(j: &serde_json::Value, path: &AttributePath) -> Result<Type, Error> {
    use serde_json::Value as J;
    let bad = || Error::value(path, format!("invalid type description {j}"));
    match j {
        J::String(s) => match s.as_str() {
            "bool" => Ok(Type::Bool),
            "number" => Ok(Type::Number),
            "string" => Ok(Type::String),
            "dynamic" => Ok(Type::Dynamic),
            _ => Err(bad()),
        },
        J::Array(parts) => {
            let kind = parts.first().and_then(J::as_str).ok_or_else(bad)?;
            let arg = parts.get(1).ok_or_else(bad)?;
            let max_len = if kind == "object" { 3 } else { 2 };
            if parts.len() > max_len {
                return Err(bad());
            }
            match kind {
                "list" => Ok(Type::list(type_from_json(arg, path)?)),
                "set" => Ok(Type::set(type_from_json(arg, path)?)),
                "map" => Ok(Type::map(type_from_json(arg, path)?)),
                "object" => {
                    let fields = arg.as_object().ok_or_else(bad)?;
                    let mut attrs = BTreeMap::new();
                    for (k, t) in fields {
                        attrs.insert(k.clone(), type_from_json(t, path)?);
                    }
                    Ok(Type::Object(attrs))
                }
                "tuple" => {
                    let items = arg.as_array().ok_or_else(bad)?;
                    Ok(Type::Tuple(
                        items
                            .iter()
                            .map(|t| type_from_json(t, path))
                            .collect::<Result<_, _>>()?,
                    ))
                }
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

// ---------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------

/// Whole numbers are kept as integers so that `5` and `5.0` compare equal as values.
fn number_from_f64(f: f64) -> Option<serde_json::Number> {
    if !f.is_finite() {
        return None;
    }
    // 2^63 is exactly representable; everything strictly below it fits an i64.
    if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
    {
        return Some((f as i64).into());
    }
    serde_json::Number::from_f64(f)
}

fn normalize_number(n: &serde_json::Number) -> serde_json::Number {
    if n.is_f64() {
        n.as_f64()
            .and_then(number_from_f64)
            .unwrap_or_else(|| n.clone())
    } else {
        n.clone()
    }
}

/// Parses cty's decimal string form of a number (used for values that do not fit
/// an int64 or float64 exactly). Precision beyond a float64 is lost.
fn parse_number(s: &str) -> Option<serde_json::Number> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = s.parse::<u64>() {
        return Some(u.into());
    }
    // Rust accepts "inf" and "NaN"; cty's number syntax does not.
    if s.chars()
        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return None;
    }
    s.parse::<f64>().ok().and_then(number_from_f64)
}

// ---------------------------------------------------------------------------------------
// msgpack
// ---------------------------------------------------------------------------------------

/// cty's "wholly unknown" marker: fixext1, extension type 0, one zero byte.
const UNKNOWN_MSGPACK: [u8; 3] = [0xd4, 0, 0];

/// Decodes a msgpack `DynamicValue` of type `ty`.
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, Error> {
    let mut r = Reader { buf: bytes };
    decode_mp(&mut r, ty, &AttributePath::root())
}

/// Encodes `v` as msgpack of type `ty`, as cty does.
pub fn encode_msgpack(v: &Value, ty: &Type) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_mp(&mut out, v, ty, &AttributePath::root())?;
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn marker(&mut self, path: &AttributePath) -> Result<Marker, Error> {
        rmp::decode::read_marker(&mut self.buf)
            .map_err(|_| Error::value(path, "unexpected end of msgpack data"))
    }

    fn take(&mut self, n: usize, path: &AttributePath) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(Error::value(path, "unexpected end of msgpack data"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn be(&mut self, n: usize, path: &AttributePath) -> Result<u64, Error> {
        Ok(self
            .take(n, path)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A length prefix, bounded by the bytes left so a corrupt prefix cannot make
    /// us reserve gigabytes.
    fn len(&mut self, n: usize, path: &AttributePath) -> Result<usize, Error> {
        let len = usize::try_from(self.be(n, path)?)
            .map_err(|_| Error::value(path, "msgpack length out of range"))?;
        if len > self.buf.len() {
            return Err(Error::value(path, "msgpack length exceeds the data"));
        }
        Ok(len)
    }

    fn skip_ext(&mut self, marker: Marker, path: &AttributePath) -> Result<(), Error> {
        let data_len = match marker {
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            Marker::Ext8 => self.len(1, path)?,
            Marker::Ext16 => self.len(2, path)?,
            Marker::Ext32 => self.len(4, path)?,
            _ => return Err(Error::value(path, "expected a msgpack extension")),
        };
        // One byte of extension type code, then the payload (refinements are ignored).
        self.take(1 + data_len, path)?;
        Ok(())
    }

    fn array_len(
        &mut self,
        marker: Marker,
        path: &AttributePath,
        what: &str,
    ) -> Result<usize, Error> {
        match marker {
            Marker::FixArray(n) => Ok(usize::from(n)),
            Marker::Array16 => self.be(2, path).map(|n| n as usize),
            Marker::Array32 => self.be(4, path).map(|n| n as usize),
            _ => Err(Error::value(path, format!("{what} is required"))),
        }
    }

    fn map_len(
        &mut self,
        marker: Marker,
        path: &AttributePath,
        what: &str,
    ) -> Result<usize, Error> {
        match marker {
            Marker::FixMap(n) => Ok(usize::from(n)),
            Marker::Map16 => self.be(2, path).map(|n| n as usize),
            Marker::Map32 => self.be(4, path).map(|n| n as usize),
            _ => Err(Error::value(path, format!("{what} is required"))),
        }
    }

    /// The bytes of a str or bin item whose marker was already read.
    fn raw_bytes(
        &mut self,
        marker: Marker,
        path: &AttributePath,
        what: &str,
    ) -> Result<&'a [u8], Error> {
        let len = match marker {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 | Marker::Bin8 => self.len(1, path)?,
            Marker::Str16 | Marker::Bin16 => self.len(2, path)?,
            Marker::Str32 | Marker::Bin32 => self.len(4, path)?,
            _ => return Err(Error::value(path, format!("{what} is required"))),
        };
        self.take(len, path)
    }

    fn string(
        &mut self,
        marker: Marker,
        path: &AttributePath,
        what: &str,
    ) -> Result<String, Error> {
        let raw = self.raw_bytes(marker, path, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| Error::value(path, "string is not valid UTF-8"))
    }

    fn key(&mut self, path: &AttributePath) -> Result<String, Error> {
        let marker = self.marker(path)?;
        self.string(marker, path, "a string key")
    }
}

fn is_ext(marker: Marker) -> bool {
    matches!(
        marker,
        Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32
    )
}

fn decode_mp(r: &mut Reader<'_>, ty: &Type, path: &AttributePath) -> Result<Value, Error> {
    let marker = r.marker(path)?;
    if is_ext(marker) {
        // cty defines no extension other than unknown (type 0) and refined unknown (type 12).
        r.skip_ext(marker, path)?;
        return Ok(Value::Unknown);
    }
    if marker == Marker::Null {
        return Ok(Value::Null);
    }
    match ty {
        Type::Dynamic => {
            let n = r.array_len(marker, path, "a [type, value] pair for a dynamic value")?;
            if n != 2 {
                return Err(Error::value(
                    path,
                    "a dynamic value must be a [type, value] pair",
                ));
            }
            let type_marker = r.marker(path)?;
            let raw = r.raw_bytes(type_marker, path, "the type of a dynamic value")?;
            let json: serde_json::Value = serde_json::from_slice(raw)
                .map_err(|e| Error::value(path, format!("invalid dynamic value type: {e}")))?;
            let concrete = type_from_json(&json, path)?;
            decode_mp(r, &concrete, path)
        }
        Type::Bool => match marker {
            Marker::True => Ok(Value::Bool(true)),
            Marker::False => Ok(Value::Bool(false)),
            _ => Err(Error::value(path, "bool is required")),
        },
        Type::Number => decode_mp_number(r, marker, path).map(Value::Number),
        Type::String => r.string(marker, path, "string").map(Value::String),
        Type::List(e) | Type::Set(e) => {
            let n = r.array_len(marker, path, "a list")?;
            let mut items = Vec::with_capacity(n.min(r.buf.len()));
            for i in 0..n {
                items.push(decode_mp(r, e, &path.join_index(i))?);
            }
            Ok(if matches!(ty, Type::Set(_)) {
                Value::Set(items)
            } else {
                Value::List(items)
            })
        }
        Type::Tuple(ts) => {
            let n = r.array_len(marker, path, "a tuple")?;
            if n != ts.len() {
                return Err(Error::value(
                    path,
                    format!("a tuple of length {} is required", ts.len()),
                ));
            }
            let mut items = Vec::with_capacity(n);
            for (i, t) in ts.iter().enumerate() {
                items.push(decode_mp(r, t, &path.join_index(i))?);
            }
            Ok(Value::Tuple(items))
        }
        Type::Map(e) => {
            let n = r.map_len(marker, path, "a map")?;
            let mut entries = BTreeMap::new();
            for _ in 0..n {
                let k = r.key(path)?;
                let v = decode_mp(r, e, &path.join_key(&k))?;
                entries.insert(k, v);
            }
            Ok(Value::Map(entries))
        }
        Type::Object(attrs) => {
            let n = r.map_len(marker, path, "an object")?;
            let mut entries = BTreeMap::new();
            for _ in 0..n {
                let k = r.key(path)?;
                let attr_path = path.join_attr(&k);
                let t = attrs
                    .get(&k)
                    .ok_or_else(|| Error::value(&attr_path, "unsupported attribute"))?;
                let v = decode_mp(r, t, &attr_path)?;
                entries.insert(k, v);
            }
            for k in attrs.keys() {
                entries.entry(k.clone()).or_insert(Value::Null);
            }
            Ok(Value::Object(entries))
        }
    }
}

fn decode_mp_number(
    r: &mut Reader<'_>,
    marker: Marker,
    path: &AttributePath,
) -> Result<serde_json::Number, Error> {
    let as_signed = |n: u64, bits: u32| -> i64 {
        // Sign-extend a big-endian two's-complement integer of `bits` width.
        let shift = 64 - bits;
        ((n << shift) as i64) >> shift
    };
    Ok(match marker {
        Marker::FixPos(n) => i64::from(n).into(),
        Marker::FixNeg(n) => i64::from(n).into(),
        Marker::U8 => r.be(1, path)?.into(),
        Marker::U16 => r.be(2, path)?.into(),
        Marker::U32 => r.be(4, path)?.into(),
        Marker::U64 => r.be(8, path)?.into(),
        Marker::I8 => as_signed(r.be(1, path)?, 8).into(),
        Marker::I16 => as_signed(r.be(2, path)?, 16).into(),
        Marker::I32 => as_signed(r.be(4, path)?, 32).into(),
        Marker::I64 => as_signed(r.be(8, path)?, 64).into(),
        Marker::F32 => {
            let f = f32::from_bits(r.be(4, path)? as u32);
            number_from_f64(f64::from(f))
                .ok_or_else(|| Error::value(path, "infinite or NaN numbers are not supported"))?
        }
        Marker::F64 => {
            let f = f64::from_bits(r.be(8, path)?);
            number_from_f64(f)
                .ok_or_else(|| Error::value(path, "infinite or NaN numbers are not supported"))?
        }
        m @ (Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32) => {
            let s = r.string(m, path, "number")?;
            parse_number(&s).ok_or_else(|| Error::value(path, format!("invalid number {s:?}")))?
        }
        _ => return Err(Error::value(path, "number is required")),
    })
}

fn write_err(path: &AttributePath) -> impl Fn(rmp::encode::ValueWriteError) -> Error + '_ {
    move |e| Error::value(path, format!("msgpack write failed: {e}"))
}

fn len_u32(n: usize, path: &AttributePath) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| Error::value(path, "collection too large for msgpack"))
}

fn mismatch(path: &AttributePath, v: &Value, ty: &Type) -> Error {
    let kind = match v {
        Value::Null => "null",
        Value::Unknown => "unknown",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::List(_) => "list",
        Value::Set(_) => "set",
        Value::Map(_) => "map",
        Value::Object(_) => "object",
        Value::Tuple(_) => "tuple",
    };
    Error::value(
        path,
        format!("a {kind} value does not conform to type {ty}"),
    )
}

/// A primitive in the form type `ty` asks for, applying cty's safe conversions between
/// strings, numbers and bools; `None` when no conversion applies.
fn primitive_as(v: &Value, ty: &Type) -> Option<Value> {
    match (ty, v) {
        (Type::String, Value::String(_))
        | (Type::Number, Value::Number(_))
        | (Type::Bool, Value::Bool(_)) => Some(v.clone()),
        (Type::String, Value::Number(n)) => Some(Value::String(n.to_string())),
        (Type::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (Type::Number, Value::String(s)) => parse_number(s).map(Value::Number),
        (Type::Bool, Value::String(s)) if s == "true" => Some(Value::Bool(true)),
        (Type::Bool, Value::String(s)) if s == "false" => Some(Value::Bool(false)),
        _ => None,
    }
}

fn encode_mp(out: &mut Vec<u8>, v: &Value, ty: &Type, path: &AttributePath) -> Result<(), Error> {
    use rmp::encode as enc;
    match v {
        Value::Unknown => {
            out.extend_from_slice(&UNKNOWN_MSGPACK);
            return Ok(());
        }
        Value::Null => {
            enc::write_nil(out)
                .map_err(|e| Error::value(path, format!("msgpack write failed: {e}")))?;
            return Ok(());
        }
        _ => {}
    }
    let werr = write_err(path);
    match ty {
        Type::Dynamic => {
            let concrete = v.infer_type();
            let type_json = serde_json::to_vec(&concrete.to_json())
                .map_err(|e| Error::value(path, format!("cannot write a type: {e}")))?;
            enc::write_array_len(out, 2).map_err(&werr)?;
            enc::write_bin(out, &type_json).map_err(&werr)?;
            encode_mp(out, v, &concrete, path)
        }
        Type::Bool | Type::Number | Type::String => {
            match primitive_as(v, ty).ok_or_else(|| mismatch(path, v, ty))? {
                Value::Bool(b) => enc::write_bool(out, b)
                    .map_err(|e| Error::value(path, format!("msgpack write failed: {e}"))),
                Value::String(s) => enc::write_str(out, &s).map_err(&werr),
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        enc::write_sint(out, i).map(|_| ()).map_err(&werr)
                    } else if let Some(u) = n.as_u64() {
                        enc::write_uint(out, u).map(|_| ()).map_err(&werr)
                    } else {
                        let f = n.as_f64().unwrap_or(0.0);
                        match number_from_f64(f).and_then(|n| n.as_i64()) {
                            Some(i) => enc::write_sint(out, i).map(|_| ()).map_err(&werr),
                            None => enc::write_f64(out, f).map_err(&werr),
                        }
                    }
                }
                _ => Err(mismatch(path, v, ty)),
            }
        }
        Type::List(e) | Type::Set(e) => {
            let items = match v {
                Value::List(x) | Value::Set(x) | Value::Tuple(x) => x,
                _ => return Err(mismatch(path, v, ty)),
            };
            enc::write_array_len(out, len_u32(items.len(), path)?).map_err(&werr)?;
            for (i, item) in items.iter().enumerate() {
                encode_mp(out, item, e, &path.join_index(i))?;
            }
            Ok(())
        }
        Type::Tuple(ts) => {
            let items = match v {
                Value::Tuple(x) | Value::List(x) => x,
                _ => return Err(mismatch(path, v, ty)),
            };
            if items.len() != ts.len() {
                return Err(Error::value(
                    path,
                    format!(
                        "a tuple of {} elements does not conform to type {ty}",
                        items.len()
                    ),
                ));
            }
            enc::write_array_len(out, len_u32(items.len(), path)?).map_err(&werr)?;
            for (i, (item, t)) in items.iter().zip(ts).enumerate() {
                encode_mp(out, item, t, &path.join_index(i))?;
            }
            Ok(())
        }
        Type::Map(e) => {
            let entries = v.entries().ok_or_else(|| mismatch(path, v, ty))?;
            enc::write_map_len(out, len_u32(entries.len(), path)?).map_err(&werr)?;
            for (k, item) in entries {
                enc::write_str(out, k).map_err(&werr)?;
                encode_mp(out, item, e, &path.join_key(k))?;
            }
            Ok(())
        }
        Type::Object(attrs) => {
            let entries = v.entries().ok_or_else(|| mismatch(path, v, ty))?;
            if let Some(extra) = entries.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(Error::value(
                    &path.join_attr(extra),
                    "attribute is not in the schema",
                ));
            }
            // cty requires every attribute, in name order; absent ones are written as null.
            enc::write_map_len(out, len_u32(attrs.len(), path)?).map_err(&werr)?;
            for (k, t) in attrs {
                enc::write_str(out, k).map_err(&werr)?;
                encode_mp(out, v.get(k), t, &path.join_attr(k))?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON (state as stored by Terraform)
// ---------------------------------------------------------------------------------------

/// Decodes cty JSON of type `ty`, tolerantly: attributes not in the type are dropped
/// (so state written by an older schema still decodes) and missing ones are null.
pub fn decode_json(bytes: &[u8], ty: &Type) -> Result<Value, Error> {
    let root = AttributePath::root();
    let j: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::value(&root, format!("invalid JSON: {e}")))?;
    decode_js(&j, ty, &root)
}

/// Encodes `v` as cty JSON of type `ty`. Unknown values cannot be encoded.
pub fn encode_json(v: &Value, ty: &Type) -> Result<Vec<u8>, Error> {
    let root = AttributePath::root();
    let j = encode_js(v, ty, &root)?;
    serde_json::to_vec(&j).map_err(|e| Error::value(&root, format!("cannot write JSON: {e}")))
}

fn decode_js(j: &serde_json::Value, ty: &Type, path: &AttributePath) -> Result<Value, Error> {
    use serde_json::Value as J;
    if j.is_null() {
        return Ok(Value::Null);
    }
    let need = |what: &str| Error::value(path, format!("{what} is required"));
    match ty {
        Type::Dynamic => {
            let o = j
                .as_object()
                .ok_or_else(|| need("a {\"value\", \"type\"} object for a dynamic value"))?;
            let t = o
                .get("type")
                .ok_or_else(|| need("the type of a dynamic value"))?;
            let concrete = type_from_json(t, path)?;
            let inner = o
                .get("value")
                .ok_or_else(|| need("the value of a dynamic value"))?;
            decode_js(inner, &concrete, path)
        }
        Type::Bool => match j {
            J::Bool(b) => Ok(Value::Bool(*b)),
            J::String(s) if s == "true" => Ok(Value::Bool(true)),
            J::String(s) if s == "false" => Ok(Value::Bool(false)),
            _ => Err(need("bool")),
        },
        Type::Number => match j {
            J::Number(n) => Ok(Value::Number(normalize_number(n))),
            J::String(s) => parse_number(s)
                .map(Value::Number)
                .ok_or_else(|| need("number")),
            _ => Err(need("number")),
        },
        Type::String => match j {
            J::String(s) => Ok(Value::String(s.clone())),
            J::Number(n) => Ok(Value::String(n.to_string())),
            J::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(need("string")),
        },
        Type::List(e) | Type::Set(e) => {
            let a = j.as_array().ok_or_else(|| need("an array"))?;
            let items = a
                .iter()
                .enumerate()
                .map(|(i, x)| decode_js(x, e, &path.join_index(i)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if matches!(ty, Type::Set(_)) {
                Value::Set(items)
            } else {
                Value::List(items)
            })
        }
        Type::Tuple(ts) => {
            let a = j.as_array().ok_or_else(|| need("an array"))?;
            if a.len() != ts.len() {
                return Err(need(&format!("a tuple of length {}", ts.len())));
            }
            let items = a
                .iter()
                .zip(ts)
                .enumerate()
                .map(|(i, (x, t))| decode_js(x, t, &path.join_index(i)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Tuple(items))
        }
        Type::Map(e) => {
            let o = j.as_object().ok_or_else(|| need("an object"))?;
            let mut entries = BTreeMap::new();
            for (k, x) in o {
                entries.insert(k.clone(), decode_js(x, e, &path.join_key(k))?);
            }
            Ok(Value::Map(entries))
        }
        Type::Object(attrs) => {
            let o = j.as_object().ok_or_else(|| need("an object"))?;
            let mut entries = BTreeMap::new();
            for (k, t) in attrs {
                let v = match o.get(k) {
                    Some(x) => decode_js(x, t, &path.join_attr(k))?,
                    None => Value::Null,
                };
                entries.insert(k.clone(), v);
            }
            Ok(Value::Object(entries))
        }
    }
}

fn encode_js(v: &Value, ty: &Type, path: &AttributePath) -> Result<serde_json::Value, Error> {
    use serde_json::Value as J;
    match v {
        Value::Unknown => return Err(Error::value(path, "value is not known")),
        Value::Null => return Ok(J::Null),
        _ => {}
    }
    match ty {
        Type::Dynamic => {
            let concrete = v.infer_type();
            let mut o = serde_json::Map::new();
            o.insert("value".into(), encode_js(v, &concrete, path)?);
            o.insert("type".into(), concrete.to_json());
            Ok(J::Object(o))
        }
        Type::Bool | Type::Number | Type::String => {
            match primitive_as(v, ty).ok_or_else(|| mismatch(path, v, ty))? {
                Value::Bool(b) => Ok(J::Bool(b)),
                Value::Number(n) => Ok(J::Number(n)),
                Value::String(s) => Ok(J::String(s)),
                _ => Err(mismatch(path, v, ty)),
            }
        }
        Type::List(e) | Type::Set(e) => match v {
            Value::List(x) | Value::Set(x) | Value::Tuple(x) => Ok(J::Array(
                x.iter()
                    .enumerate()
                    .map(|(i, item)| encode_js(item, e, &path.join_index(i)))
                    .collect::<Result<_, _>>()?,
            )),
            _ => Err(mismatch(path, v, ty)),
        },
        Type::Tuple(ts) => match v {
            Value::Tuple(x) | Value::List(x) if x.len() == ts.len() => Ok(J::Array(
                x.iter()
                    .zip(ts)
                    .enumerate()
                    .map(|(i, (item, t))| encode_js(item, t, &path.join_index(i)))
                    .collect::<Result<_, _>>()?,
            )),
            _ => Err(mismatch(path, v, ty)),
        },
        Type::Map(e) => {
            let entries = v.entries().ok_or_else(|| mismatch(path, v, ty))?;
            let mut o = serde_json::Map::with_capacity(entries.len());
            for (k, item) in entries {
                o.insert(k.clone(), encode_js(item, e, &path.join_key(k))?);
            }
            Ok(J::Object(o))
        }
        Type::Object(attrs) => {
            let entries = v.entries().ok_or_else(|| mismatch(path, v, ty))?;
            if let Some(extra) = entries.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(Error::value(
                    &path.join_attr(extra),
                    "attribute is not in the schema",
                ));
            }
            let mut o = serde_json::Map::with_capacity(attrs.len());
            for (k, t) in attrs {
                o.insert(k.clone(), encode_js(v.get(k), t, &path.join_attr(k))?);
            }
            Ok(J::Object(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Attribute, Block, NestedBlock, NestedObject, Nesting};
    use serde_json::json;

    fn obj_ty(attrs: &[(&str, Type)]) -> Type {
        Type::object(attrs.iter().cloned())
    }

    fn mp_roundtrip(v: &Value, ty: &Type) -> Value {
        let bytes = encode_msgpack(v, ty).unwrap();
        decode_msgpack(&bytes, ty).unwrap()
    }

    fn json_roundtrip(v: &Value, ty: &Type) -> Value {
        let bytes = encode_json(v, ty).unwrap();
        decode_json(&bytes, ty).unwrap()
    }

    #[test]
    fn str_or_empty_reads_only_known_strings() {
        let v = Value::object([
            ("name", Value::string("dev")),
            ("later", Value::Unknown),
            ("count", Value::int(1)),
        ]);
        assert_eq!(v.str_or_empty("name"), "dev");
        for absent in ["later", "count", "missing"] {
            assert_eq!(v.str_or_empty(absent), "", "{absent}");
        }
        assert_eq!(Value::Null.str_or_empty("name"), "");
    }

    #[test]
    fn null_is_msgpack_nil_for_every_type() {
        for ty in [
            Type::String,
            Type::Number,
            Type::Dynamic,
            Type::list(Type::Bool),
            obj_ty(&[("a", Type::String)]),
        ] {
            assert_eq!(
                encode_msgpack(&Value::Null, &ty).unwrap(),
                vec![0xc0],
                "{ty}"
            );
            assert_eq!(decode_msgpack(&[0xc0], &ty).unwrap(), Value::Null, "{ty}");
            assert_eq!(json_roundtrip(&Value::Null, &ty), Value::Null);
        }
    }

    #[test]
    fn unknown_is_cty_fixext1_type_zero() {
        for ty in [Type::String, Type::Dynamic, Type::map(Type::Number)] {
            assert_eq!(
                encode_msgpack(&Value::Unknown, &ty).unwrap(),
                vec![0xd4, 0, 0]
            );
            assert_eq!(decode_msgpack(&[0xd4, 0, 0], &ty).unwrap(), Value::Unknown);
        }
    }

    #[test]
    fn refined_unknowns_decode_as_unknown_and_are_skipped_exactly() {
        // cty's refined unknown string: ext 12 holding {1: false (not null), 2: "prefix-"}.
        let mut refined_string = vec![0xc7, 12, 0x0c, 0x82, 0x01, 0xc2, 0x02, 0xa7];
        refined_string.extend_from_slice(b"prefix-");
        // A refined unknown number: {1: false, 3: [0, true]} (lower bound 0, inclusive).
        let refined_number = [0xc7, 7, 0x0c, 0x82, 0x01, 0xc2, 0x03, 0x92, 0x00, 0xc3];
        // A refined unknown list as fixext4: {6: 200} (at most 200 elements).
        let refined_list = [0xd6, 0x0c, 0x81, 0x06, 0xcc, 0xc8];

        let ty = obj_ty(&[
            ("a", Type::String),
            ("b", Type::Number),
            ("c", Type::list(Type::String)),
            ("d", Type::String),
        ]);
        let mut bytes = vec![0x84];
        for (key, payload) in [
            (b"a", &refined_string[..]),
            (b"b", &refined_number[..]),
            (b"c", &refined_list[..]),
        ] {
            bytes.push(0xa1);
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(payload);
        }
        // A known attribute after them proves each payload was consumed exactly.
        bytes.extend_from_slice(&[0xa1, b'd', 0xa2, b'o', b'k']);

        let v = decode_msgpack(&bytes, &ty).unwrap();
        assert_eq!(
            v,
            Value::object([
                ("a", Value::Unknown),
                ("b", Value::Unknown),
                ("c", Value::Unknown),
                ("d", Value::string("ok")),
            ])
        );
        // Re-encoded as plain unknowns, which Terraform compares without refinements.
        let again = encode_msgpack(&v, &ty).unwrap();
        assert_eq!(&again[..7], &[0x84, 0xa1, b'a', 0xd4, 0, 0, 0xa1]);
    }

    #[test]
    fn primitives_encode_as_cty_does() {
        let cases: Vec<(Value, Type, Vec<u8>)> = vec![
            (Value::string("hi"), Type::String, vec![0xa2, b'h', b'i']),
            (Value::Bool(true), Type::Bool, vec![0xc3]),
            (Value::Bool(false), Type::Bool, vec![0xc2]),
            (Value::int(5), Type::Number, vec![0x05]),
            (Value::int(-1), Type::Number, vec![0xff]),
            (Value::int(300), Type::Number, vec![0xcd, 0x01, 0x2c]),
            (Value::int(-200), Type::Number, vec![0xd1, 0xff, 0x38]),
            (
                Value::Number(serde_json::Number::from_f64(1.5).unwrap()),
                Type::Number,
                vec![0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0],
            ),
            // Whole floats are written as integers, as cty writes exact int64 values.
            (
                Value::Number(serde_json::Number::from_f64(7.0).unwrap()),
                Type::Number,
                vec![0x07],
            ),
        ];
        for (v, ty, bytes) in cases {
            assert_eq!(encode_msgpack(&v, &ty).unwrap(), bytes, "{v:?}");
            assert_eq!(
                decode_msgpack(&bytes, &ty).unwrap(),
                v.clone().normalized(),
                "{v:?}"
            );
            assert_eq!(json_roundtrip(&v, &ty), v.clone().normalized(), "{v:?}");
        }
    }

    impl Value {
        fn normalized(self) -> Value {
            match self {
                Value::Number(n) => Value::Number(normalize_number(&n)),
                other => other,
            }
        }
    }

    #[test]
    fn numbers_decode_from_every_msgpack_form() {
        let i = |n: i64| Value::int(n);
        let cases: Vec<(Vec<u8>, Value)> = vec![
            (vec![0x7f], i(127)),
            (vec![0xe0], i(-32)),
            (vec![0xcc, 0xff], i(255)),
            (vec![0xd0, 0x80], i(-128)),
            (vec![0xd2, 0xff, 0xff, 0xff, 0xfe], i(-2)),
            (vec![0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], i(i64::MIN)),
            (
                vec![0xca, 0x3f, 0xc0, 0, 0],
                Value::Number(serde_json::Number::from_f64(1.5).unwrap()),
            ),
            (vec![0xcb, 0x40, 0x14, 0, 0, 0, 0, 0, 0], i(5)),
            (
                vec![0xa3, b'0', b'.', b'1'],
                Value::Number(serde_json::Number::from_f64(0.1).unwrap()),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                decode_msgpack(&bytes, &Type::Number).unwrap(),
                want,
                "{bytes:x?}"
            );
        }
        assert!(decode_msgpack(&[0xa3, b'i', b'n', b'f'], &Type::Number).is_err());
        assert!(decode_msgpack(&[0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0], &Type::Number).is_err());
    }

    #[test]
    fn big_numbers_round_trip() {
        // Beyond int64: cty writes uint64 when it can.
        let big = Value::Number(u64::MAX.into());
        let bytes = encode_msgpack(&big, &Type::Number).unwrap();
        assert_eq!(bytes[0], 0xcf);
        assert_eq!(decode_msgpack(&bytes, &Type::Number).unwrap(), big);
        assert_eq!(json_roundtrip(&big, &Type::Number), big);
        // cty writes numbers beyond int64 and float64 precision as decimal strings.
        let mut huge = vec![0xb2];
        huge.extend_from_slice(b"18446744073709551615");
        let huge_len = huge.len() - 1;
        huge[0] = 0xa0 | huge_len as u8;
        assert_eq!(decode_msgpack(&huge, &Type::Number).unwrap(), big);
        let mut beyond = vec![0xa0 | 30];
        beyond.extend_from_slice(b"123456789012345678901234567890");
        let v = decode_msgpack(&beyond, &Type::Number).unwrap();
        let Value::Number(n) = &v else {
            panic!("not a number: {v:?}")
        };
        assert_eq!(n.as_f64(), Some(1.2345678901234568e29));
        assert_eq!(mp_roundtrip(&v, &Type::Number), v);
    }

    #[test]
    fn collections_round_trip() {
        let strings = Value::List(vec![Value::string("a"), Value::string("b")]);
        assert_eq!(
            encode_msgpack(&strings, &Type::list(Type::String)).unwrap(),
            vec![0x92, 0xa1, b'a', 0xa1, b'b']
        );
        let cases = vec![
            (strings.clone(), Type::list(Type::String)),
            (Value::List(vec![]), Type::list(Type::String)),
            (
                Value::Set(vec![Value::int(1), Value::int(2)]),
                Type::set(Type::Number),
            ),
            (
                Value::Map(
                    [
                        ("x".to_string(), Value::Bool(true)),
                        ("y".to_string(), Value::Null),
                    ]
                    .into(),
                ),
                Type::map(Type::Bool),
            ),
            (
                Value::Tuple(vec![Value::string("a"), Value::int(1), Value::Null]),
                Type::Tuple(vec![Type::String, Type::Number, Type::Bool]),
            ),
            (
                Value::object([
                    ("name", Value::string("n")),
                    ("tags", strings.clone()),
                    ("n", Value::Unknown),
                ]),
                obj_ty(&[
                    ("name", Type::String),
                    ("tags", Type::list(Type::String)),
                    ("n", Type::Number),
                ]),
            ),
        ];
        for (v, ty) in cases {
            assert_eq!(mp_roundtrip(&v, &ty), v, "{ty}");
            if v.is_wholly_known() {
                assert_eq!(json_roundtrip(&v, &ty), v, "{ty}");
            }
        }
    }

    #[test]
    fn objects_are_written_with_every_attribute_in_name_order() {
        let ty = obj_ty(&[("b", Type::String), ("a", Type::Number)]);
        let v = Value::object([("b", Value::string("x"))]);
        assert_eq!(
            encode_msgpack(&v, &ty).unwrap(),
            vec![0x82, 0xa1, b'a', 0xc0, 0xa1, b'b', 0xa1, b'x']
        );
        let extra = Value::object([("b", Value::string("x")), ("zz", Value::Null)]);
        let err = encode_msgpack(&extra, &ty).unwrap_err();
        assert_eq!(err.path(), Some(&AttributePath::attr("zz")));
        // A map value is accepted where an object type is asked for.
        let as_map = Value::Map([("a".to_string(), Value::int(1))].into());
        assert_eq!(
            mp_roundtrip(&as_map, &ty),
            Value::object([("a", Value::int(1)), ("b", Value::Null)])
        );
    }

    #[test]
    fn decode_errors_carry_the_path() {
        let ty = obj_ty(&[("spec", obj_ty(&[("items", Type::list(Type::Number))]))]);
        // {"spec": {"items": [1, "x"]}}
        let bytes = [
            0x81, 0xa4, b's', b'p', b'e', b'c', 0x81, 0xa5, b'i', b't', b'e', b'm', b's', 0x92,
            0x01, 0xa1, b'x',
        ];
        let err = decode_msgpack(&bytes, &ty).unwrap_err();
        assert_eq!(
            err.path().map(ToString::to_string).as_deref(),
            Some("spec.items[1]")
        );
        assert_eq!(err.to_string(), "at spec.items[1]: invalid number \"x\"");
        let truncated = decode_msgpack(&bytes[..10], &ty).unwrap_err();
        assert!(
            truncated.to_string().contains("end of msgpack"),
            "{truncated}"
        );
        let unknown_attr = decode_msgpack(&[0x81, 0xa1, b'z', 0xc0], &ty).unwrap_err();
        assert_eq!(unknown_attr.path(), Some(&AttributePath::attr("z")));
    }

    fn nested_schema() -> Block {
        Block::new(vec![
            Attribute::string("name").required(),
            Attribute::nested(
                "single",
                NestedObject::single(vec![
                    Attribute::string("a").optional(),
                    Attribute::number("n").optional(),
                ]),
            )
            .optional(),
            Attribute::nested(
                "list",
                NestedObject::list(vec![Attribute::string("a").optional()]),
            )
            .optional(),
            Attribute::nested(
                "set",
                NestedObject::set(vec![Attribute::string("a").optional()]),
            )
            .optional(),
            Attribute::nested(
                "map",
                NestedObject::map(vec![Attribute::dynamic("d").optional()]),
            )
            .optional(),
        ])
        .block(NestedBlock::new(
            "rule",
            Block::new(vec![
                Attribute::string("x").optional(),
                Attribute::string_list("ys").optional(),
            ]),
            Nesting::List,
        ))
        .block(NestedBlock::new(
            "options",
            Block::new(vec![Attribute::bool("on").optional()]),
            Nesting::Single,
        ))
        .block(NestedBlock::new(
            "dyn_list",
            Block::new(vec![Attribute::dynamic("v").optional()]),
            Nesting::List,
        ))
        .block(NestedBlock::new(
            "dyn_map",
            Block::new(vec![Attribute::dynamic("v").optional()]),
            Nesting::Map,
        ))
    }

    #[test]
    fn implied_type_follows_terraform() {
        let ty = nested_schema().implied_type();
        let Type::Object(attrs) = &ty else {
            panic!("{ty}")
        };
        assert_eq!(
            attrs["single"],
            obj_ty(&[("a", Type::String), ("n", Type::Number)])
        );
        assert_eq!(attrs["list"], Type::list(obj_ty(&[("a", Type::String)])));
        assert_eq!(attrs["set"], Type::set(obj_ty(&[("a", Type::String)])));
        // Nested attributes stay maps of objects even with a dynamic inside.
        assert_eq!(attrs["map"], Type::map(obj_ty(&[("d", Type::Dynamic)])));
        assert_eq!(
            attrs["rule"],
            Type::list(obj_ty(&[
                ("x", Type::String),
                ("ys", Type::list(Type::String))
            ]))
        );
        assert_eq!(attrs["options"], obj_ty(&[("on", Type::Bool)]));
        // Blocks with dynamic content become dynamic (tuples / objects at run time).
        assert_eq!(attrs["dyn_list"], Type::Dynamic);
        assert_eq!(attrs["dyn_map"], Type::Dynamic);
        assert_eq!(attrs.len(), 9);
    }

    #[test]
    fn nested_attributes_and_blocks_round_trip() {
        let ty = nested_schema().implied_type();
        let a = |s: &str| Value::object([("a", Value::string(s))]);
        let v = Value::object([
            ("name", Value::string("n")),
            (
                "single",
                Value::object([("a", Value::string("x")), ("n", Value::int(3))]),
            ),
            ("list", Value::List(vec![a("1"), a("2")])),
            ("set", Value::Set(vec![a("s")])),
            (
                "map",
                Value::Map(
                    [
                        (
                            "k1".to_string(),
                            Value::object([("d", Value::string("str"))]),
                        ),
                        (
                            "k2".to_string(),
                            Value::object([("d", Value::object([("deep", Value::int(1))]))]),
                        ),
                    ]
                    .into(),
                ),
            ),
            (
                "rule",
                Value::List(vec![Value::object([
                    ("x", Value::string("x")),
                    ("ys", Value::List(vec![Value::string("y")])),
                ])]),
            ),
            ("options", Value::Null),
            (
                "dyn_list",
                Value::Tuple(vec![
                    Value::object([("v", Value::int(1))]),
                    Value::object([("v", Value::string("two"))]),
                ]),
            ),
            (
                "dyn_map",
                Value::object([("only", Value::object([("v", Value::Bool(true))]))]),
            ),
        ]);
        assert_eq!(mp_roundtrip(&v, &ty), v);
        assert_eq!(json_roundtrip(&v, &ty), v);
    }

    #[test]
    fn dynamic_msgpack_is_a_type_value_pair() {
        let v = Value::object([("a", Value::string("x"))]);
        let bytes = encode_msgpack(&v, &Type::Dynamic).unwrap();
        let type_json = br#"["object",{"a":"string"}]"#;
        let mut want = vec![0x92, 0xc4, type_json.len() as u8];
        want.extend_from_slice(type_json);
        want.extend_from_slice(&[0x81, 0xa1, b'a', 0xa1, b'x']);
        assert_eq!(bytes, want);
        assert_eq!(decode_msgpack(&bytes, &Type::Dynamic).unwrap(), v);

        // The type may also arrive as a msgpack string rather than binary.
        let mut as_str = vec![0x92, 0xa0 | 8];
        as_str.extend_from_slice(br#""string""#);
        as_str.extend_from_slice(&[0xa2, b'h', b'i']);
        assert_eq!(
            decode_msgpack(&as_str, &Type::Dynamic).unwrap(),
            Value::string("hi")
        );

        for v in [
            Value::Tuple(vec![Value::int(1), Value::string("a"), Value::Bool(false)]),
            Value::List(vec![Value::string("a")]),
            Value::Set(vec![Value::int(1)]),
            Value::Map([("k".to_string(), Value::int(1))].into()),
            Value::object([(
                "inner",
                Value::object([("n", Value::Null), ("u", Value::Unknown)]),
            )]),
            Value::Null,
            Value::Unknown,
        ] {
            assert_eq!(mp_roundtrip(&v, &Type::Dynamic), v, "{v:?}");
        }
        assert_eq!(
            encode_msgpack(&Value::Null, &Type::Dynamic).unwrap(),
            vec![0xc0]
        );
        assert_eq!(
            encode_msgpack(&Value::Unknown, &Type::Dynamic).unwrap(),
            vec![0xd4, 0, 0]
        );
    }

    #[test]
    fn dynamic_json_is_a_value_type_object() {
        let v = Value::object([("a", Value::Tuple(vec![Value::int(1), Value::string("b")]))]);
        let bytes = encode_json(&v, &Type::Dynamic).unwrap();
        let j: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            j,
            json!({"value": {"a": [1, "b"]}, "type": ["object", {"a": ["tuple", ["number", "string"]]}]})
        );
        assert_eq!(decode_json(&bytes, &Type::Dynamic).unwrap(), v);
        assert_eq!(decode_json(b"null", &Type::Dynamic).unwrap(), Value::Null);
        assert!(decode_json(br#"{"a": 1}"#, &Type::Dynamic).is_err());
    }

    #[test]
    fn state_json_decoding_is_tolerant() {
        let ty = obj_ty(&[
            ("keep", Type::String),
            ("missing", Type::list(Type::String)),
            ("n", Type::Number),
        ]);
        let v = decode_json(br#"{"keep": "k", "dropped": {"x": 1}, "n": "12"}"#, &ty).unwrap();
        assert_eq!(
            v,
            Value::object([
                ("keep", Value::string("k")),
                ("missing", Value::Null),
                ("n", Value::int(12))
            ])
        );
        let err = decode_json(br#"{"keep": ["not", "a", "string"]}"#, &ty).unwrap_err();
        assert_eq!(err.path(), Some(&AttributePath::attr("keep")));
        let err = encode_json(&Value::object([("n", Value::Unknown)]), &ty).unwrap_err();
        assert_eq!(err.path(), Some(&AttributePath::attr("n")));
        assert_eq!(err.to_string(), "at n: value is not known");
    }

    #[test]
    fn type_json_notation_round_trips() {
        let ty = obj_ty(&[
            ("s", Type::String),
            ("d", Type::Dynamic),
            ("l", Type::list(Type::Number)),
            ("m", Type::map(Type::Bool)),
            (
                "t",
                Type::Tuple(vec![Type::String, Type::set(Type::String)]),
            ),
        ]);
        let j = ty.to_json();
        assert_eq!(
            j,
            json!(["object", {
                "d": "dynamic", "l": ["list", "number"], "m": ["map", "bool"], "s": "string",
                "t": ["tuple", ["string", ["set", "string"]]]
            }])
        );
        assert_eq!(Type::from_json(&j).unwrap(), ty);
        let with_optional = json!(["object", {"a": "string", "b": "number"}, ["b"]]);
        assert_eq!(
            Type::from_json(&with_optional).unwrap(),
            obj_ty(&[("a", Type::String), ("b", Type::Number)])
        );
        for bad in [
            json!("str"),
            json!(["list"]),
            json!(["list", "string", "x"]),
            json!(["thing", "string"]),
            json!(3),
        ] {
            assert!(Type::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_json_conversions() {
        let ty = obj_ty(&[
            ("name", Type::String),
            ("count", Type::Number),
            ("tags", Type::set(Type::String)),
            ("extra", Type::Dynamic),
            ("raw", Type::String),
        ]);
        let j = json!({
            "name": "n", "count": 2.0, "tags": ["a"], "ignored": true,
            "extra": {"x": [1, {"y": null}]}, "raw": {"b": 1}
        });
        let v = Value::from_json(&j, &ty);
        assert_eq!(
            v,
            Value::object([
                ("name", Value::string("n")),
                ("count", Value::int(2)),
                ("tags", Value::Set(vec![Value::string("a")])),
                (
                    "extra",
                    Value::object([(
                        "x",
                        Value::Tuple(vec![Value::int(1), Value::object([("y", Value::Null)])])
                    )])
                ),
                ("raw", Value::string(r#"{"b":1}"#)),
            ])
        );
        assert_eq!(
            v.to_json().unwrap(),
            json!({"name": "n", "count": 2, "tags": ["a"], "extra": {"x": [1, {"y": null}]}, "raw": "{\"b\":1}"})
        );
        assert_eq!(Value::List(vec![Value::Unknown]).to_json(), None);
        assert_eq!(Value::from_json(&json!("x"), &Type::Number), Value::Null);
        assert_eq!(Value::from_json(&json!("7"), &Type::Number), Value::int(7));
        assert_eq!(
            Value::from_json(&json!(true), &Type::String),
            Value::string("true")
        );
    }

    #[test]
    fn infer_type_unifies_elements() {
        let v = Value::List(vec![
            Value::object([("a", Value::Null)]),
            Value::object([("a", Value::string("x"))]),
        ]);
        assert_eq!(v.infer_type(), Type::list(obj_ty(&[("a", Type::String)])));
        assert_eq!(
            Value::Map(BTreeMap::new()).infer_type(),
            Type::map(Type::Dynamic)
        );
        assert_eq!(
            Value::Tuple(vec![Value::int(1), Value::Null]).infer_type(),
            Type::Tuple(vec![Type::Number, Type::Dynamic])
        );
    }

    #[test]
    fn primitive_conversions_follow_cty() {
        assert_eq!(
            encode_msgpack(&Value::int(8), &Type::String).unwrap(),
            vec![0xa1, b'8']
        );
        assert_eq!(
            encode_msgpack(&Value::string("8"), &Type::Number).unwrap(),
            vec![0x08]
        );
        assert_eq!(
            encode_msgpack(&Value::string("true"), &Type::Bool).unwrap(),
            vec![0xc3]
        );
        let err = encode_msgpack(&Value::string("yes"), &Type::Bool).unwrap_err();
        assert!(err.to_string().contains("does not conform"), "{err}");
        assert!(encode_msgpack(&Value::List(vec![]), &Type::String).is_err());
    }
}
