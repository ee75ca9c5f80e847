//! Schema builder: attributes, nested attributes and blocks with their descriptions, plus the
//! provider-side behaviours (defaults, replacement, semantic equality, validators) plan uses.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::diagnostics::{AttributePath, Diagnostics};
use crate::value::{Type, Value};

/// A validator runs at ValidateResourceConfig time and reports on `path`. Attribute
/// validators see only wholly known, non-null values (the caller skips the rest);
/// object validators see each known object, whose attributes may still be unknown.
pub type ValidatorFn = Arc<dyn Fn(&Value, &AttributePath, &mut Diagnostics) + Send + Sync>;

/// Semantic equality: `true` when two known values mean the same to the provider's API
/// (e.g. durations "10m" and "10m0s", or JSON documents with keys reordered).
pub type SemanticEqFn = fn(&Value, &Value) -> bool;

/// The schema of a provider block, resource or data source: a versioned top-level [`Block`].
///
/// ```
/// use tfplugin::{Attribute, Block, Schema, Type, Value};
///
/// let schema = Schema::new(0, Block::new(vec![
///     Attribute::string("name").required().requires_replace(),
///     Attribute::string("mode").default(Value::string("auto")),
///     Attribute::string("id").computed().use_state_for_unknown(),
/// ]));
/// assert_eq!(
///     schema.block.implied_type(),
///     Type::object([("id", Type::String), ("mode", Type::String), ("name", Type::String)]),
/// );
/// ```
#[derive(Clone, Debug, Default)]
pub struct Schema {
    /// Bumped when stored state must be upgraded (see UpgradeResourceState).
    pub version: i64,
    /// The top-level block.
    pub block: Block,
}

/// An object with attributes and nested blocks: a resource's body or a nested block's.
#[derive(Clone, Debug, Default)]
pub struct Block {
    /// The attributes, in the order the docs list them.
    pub attributes: Vec<Attribute>,
    /// The nested block types.
    pub blocks: Vec<NestedBlock>,
    /// Markdown, shown in the docs.
    pub description: String,
    /// A deprecation message; Terraform warns when the block is used.
    pub deprecation: Option<String>,
    /// Object-level rules (e.g. "exactly one of a, b"), run on the whole object.
    pub validators: Vec<Validator>,
}

/// How many objects a nested attribute or block holds, and how they are addressed.
#[derive(Clone, Debug, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// One object (or null).
    Single,
    /// An ordered list of objects.
    List,
    /// An unordered set of objects.
    Set,
    /// Objects by string key.
    Map,
    /// Blocks only: a single block whose absence is an object of nulls, never null.
    Group,
}

/// A nested block type (`name { ... }` in configuration). New schemas usually prefer nested
/// attributes ([`Attribute::nested`]); blocks remain for `timeouts`-style and legacy shapes.
#[derive(Clone, Debug)]
pub struct NestedBlock {
    /// The block's name in configuration.
    pub type_name: String,
    /// What each block contains.
    pub block: Block,
    /// How many blocks, and how they are addressed.
    pub nesting: Nesting,
    /// The fewest blocks allowed (0: no minimum).
    pub min_items: i64,
    /// The most blocks allowed (0: no maximum).
    pub max_items: i64,
}

/// An attribute's type: a cty type, or nested attributes.
#[derive(Clone, Debug)]
pub enum AttributeType {
    /// A value of a cty type (string, number, list of strings, dynamic, ...).
    Primitive(Type),
    /// Nested attributes: an object or a collection of objects with their own attributes.
    Nested(NestedObject),
}

/// The attributes of a nested attribute's object(s), and how many objects there are.
///
/// ```
/// use tfplugin::{Attribute, NestedObject};
///
/// let subscriptions = Attribute::nested(
///     "subscriptions",
///     NestedObject::list(vec![
///         Attribute::string("repo_url").required(),
///         Attribute::string("constraint").optional(),
///     ]),
/// )
/// .required();
/// assert!(subscriptions.nested_object().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct NestedObject {
    /// The attributes of each object.
    pub attributes: Vec<Attribute>,
    /// One object or a collection.
    pub nesting: Nesting,
    /// Object-level rules run on each element.
    pub validators: Vec<Validator>,
}

/// A named rule checked at validation time; see [`crate::validate::validators`] for
/// ready-made ones.
///
/// ```
/// use tfplugin::schema::Validator;
/// use tfplugin::{Attribute, Value};
///
/// let even = Validator::new("an even number", |value, path, diags| {
///     if value.as_i64().is_some_and(|n| n % 2 != 0) {
///         diags.error_at(path.clone(), "Odd number", format!("{value:?} is odd."));
///     }
/// });
/// let replicas = Attribute::number("replicas").optional().validate(even);
/// assert_eq!(replicas.validators[0].description, "an even number");
/// ```
#[derive(Clone)]
pub struct Validator {
    /// Human-readable rule, used in docs ("must be a DNS-1123 label").
    pub description: String,
    /// The check itself.
    pub check: ValidatorFn,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("description", &self.description)
            .finish()
    }
}

/// The attributes and nested blocks of one object: a block's, or a nested attribute's (which
/// has no blocks). What plan, validation and value conversion walk.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    /// The object's attributes.
    pub attributes: &'a [Attribute],
    /// The object's nested blocks (none for a nested attribute's object).
    pub blocks: &'a [NestedBlock],
}

impl<'a> Shape<'a> {
    /// No attributes and no blocks.
    pub const EMPTY: Shape<'static> = Shape {
        attributes: &[],
        blocks: &[],
    };
    /// Attributes alone, as a nested attribute's object has them.
    pub fn of_attributes(attributes: &'a [Attribute]) -> Self {
        Self {
            attributes,
            blocks: &[],
        }
    }
    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&'a Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
    /// The nested block of type `type_name`.
    pub fn block(&self, type_name: &str) -> Option<&'a NestedBlock> {
        self.blocks.iter().find(|b| b.type_name == type_name)
    }
    /// The object with nothing set, as Terraform represents it: attributes and single blocks
    /// null, list, set and map blocks empty (a block that is not written is no block, never
    /// null), group blocks an object of nulls.
    pub fn empty_value(&self) -> Value {
        let mut out: BTreeMap<String, Value> = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), Value::Null))
            .collect();
        for b in self.blocks {
            out.insert(b.type_name.clone(), b.absent_value());
        }
        Value::Object(out)
    }
    /// Rewrites stored state (JSON) of this object so that every block has the value
    /// Terraform gives a block: state written while the blocks were nested attributes has
    /// null (or nothing) where an unwritten list, set or map block has an empty collection.
    pub fn fill_absent_blocks(&self, json: &mut serde_json::Value) {
        let serde_json::Value::Object(fields) = json else {
            return;
        };
        for b in self.blocks {
            let value = fields
                .entry(b.type_name.clone())
                .or_insert(serde_json::Value::Null);
            if value.is_null() {
                *value = b
                    .absent_value()
                    .to_json()
                    .unwrap_or(serde_json::Value::Null);
            }
            let inner = b.block.shape();
            match value {
                serde_json::Value::Array(items) => {
                    items.iter_mut().for_each(|e| inner.fill_absent_blocks(e))
                }
                serde_json::Value::Object(entries) if b.nesting == Nesting::Map => entries
                    .values_mut()
                    .for_each(|e| inner.fill_absent_blocks(e)),
                element => inner.fill_absent_blocks(element),
            }
        }
    }
}

/// One attribute: its name, type, whether configuration must, may or cannot set it, and
/// the provider-side behaviour the schema-driven plan applies (defaults, replacement,
/// semantic equality, validators). Built with sentence-like modifiers:
///
/// ```
/// use tfplugin::{Attribute, Value};
///
/// let interval = Attribute::string("interval")
///     .description("How often to check, e.g. `5m`.")
///     .default(Value::string("5m"));
/// assert!(interval.optional && interval.computed);
///
/// let id = Attribute::string("id").computed().use_state_for_unknown();
/// assert!(id.is_computed_only());
/// ```
#[derive(Clone, Debug)]
pub struct Attribute {
    /// The name in configuration.
    pub name: String,
    /// The type.
    pub ty: AttributeType,
    /// Markdown, shown in the docs.
    pub description: String,
    /// Configuration must set it.
    pub required: bool,
    /// Configuration may set it.
    pub optional: bool,
    /// The provider may set it (alone: only the provider sets it).
    pub computed: bool,
    /// Terraform hides its value in plans and output.
    pub sensitive: bool,
    /// Never stored in plan or state (Terraform 1.11+).
    pub write_only: bool,
    /// A deprecation message; Terraform warns when the attribute is set.
    pub deprecation: Option<String>,
    // ---- provider-side behaviour, never sent to Terraform as such ----
    /// A change to this attribute replaces the resource.
    pub requires_replace: bool,
    /// Planned when the configuration leaves this optional+computed attribute null.
    pub default: Option<Value>,
    /// Keep the prior state's value at plan time for this computed attribute
    /// instead of marking it unknown when other attributes change.
    pub use_state_for_unknown: bool,
    /// Values that mean the same to the provider's API never show as a diff.
    pub semantic_eq: Option<SemanticEqFn>,
    /// Optional+computed: left unset in configuration, it plans null, unless the prior value
    /// is its type's zero value, which the remote side cannot tell from unset (see
    /// [`Attribute::zero_is_unset`]).
    pub zero_is_unset: bool,
    /// Rules checked at validation time, on known values.
    pub validators: Vec<Validator>,
}

impl Schema {
    /// A schema at `version` with `block` as its body.
    pub fn new(version: i64, block: Block) -> Self {
        Self { version, block }
    }
}

impl Block {
    /// A block with these attributes and no nested blocks.
    pub fn new(attributes: Vec<Attribute>) -> Self {
        Self {
            attributes,
            ..Self::default()
        }
    }
    /// Markdown, shown in the docs.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }
    /// Adds a nested block type.
    pub fn block(mut self, block: NestedBlock) -> Self {
        self.blocks.push(block);
        self
    }
    /// An object-level rule, run on the whole object (with its path).
    pub fn validate(mut self, validator: Validator) -> Self {
        self.validators.push(validator);
        self
    }
    /// Marks the block deprecated with `message`.
    pub fn deprecated(mut self, message: impl Into<String>) -> Self {
        self.deprecation = Some(message.into());
        self
    }
    /// The attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
    /// The nested block type named `type_name`.
    pub fn nested_block(&self, type_name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.type_name == type_name)
    }
    /// Its attributes and blocks, as plan, validation and conversion walk them.
    pub fn shape(&self) -> Shape<'_> {
        Shape {
            attributes: &self.attributes,
            blocks: &self.blocks,
        }
    }

    /// The object type Terraform derives from this block, as in its
    /// `configschema.Block.ImpliedType`: list and map blocks whose content has a
    /// dynamic type become `Dynamic` (tuples and objects at run time).
    pub fn implied_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.implied_type()))
            .collect();
        for b in &self.blocks {
            attrs.insert(b.type_name.clone(), b.implied_type());
        }
        Type::Object(attrs)
    }
}

impl NestedBlock {
    /// A block type named `type_name` holding `block`s as `nesting` says.
    pub fn new(type_name: impl Into<String>, block: Block, nesting: Nesting) -> Self {
        Self {
            type_name: type_name.into(),
            block,
            nesting,
            min_items: 0,
            max_items: 0,
        }
    }
    /// At most one block, written `type_name { ... }`, null when absent: for an object field.
    pub fn single(type_name: impl Into<String>, block: Block) -> Self {
        Self::new(type_name, block, Nesting::Single)
    }
    /// Any number of blocks, in order, an empty list when there are none: for a list field.
    pub fn list(type_name: impl Into<String>, block: Block) -> Self {
        Self::new(type_name, block, Nesting::List)
    }
    /// At least `n` blocks.
    pub fn min_items(mut self, n: i64) -> Self {
        self.min_items = n;
        self
    }
    /// At most `n` blocks.
    pub fn max_items(mut self, n: i64) -> Self {
        self.max_items = n;
        self
    }
    /// The block must be written: exactly once for a single block (Terraform allows no
    /// other minimum there), at least once for a collection.
    pub fn required(self) -> Self {
        match self.nesting {
            Nesting::Single | Nesting::Group => self.min_items(1).max_items(1),
            _ => self.min_items(1),
        }
    }
    /// Markdown, shown in the docs (the block's own description).
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.block.description = text.into();
        self
    }
    /// An object-level rule, run on each block (with its path).
    pub fn validate(mut self, validator: Validator) -> Self {
        self.block.validators.push(validator);
        self
    }
    /// Whether the block must be written at least once.
    pub fn is_required(&self) -> bool {
        self.min_items > 0
    }
    /// Whether the block is a list, set or map of blocks.
    pub fn is_collection(&self) -> bool {
        matches!(self.nesting, Nesting::List | Nesting::Set | Nesting::Map)
    }
    /// The value of the block when it is not written: null for a single block, an empty
    /// collection otherwise, an object of nulls for a group.
    pub fn absent_value(&self) -> Value {
        match self.nesting {
            Nesting::Single => Value::Null,
            Nesting::Group => self.block.shape().empty_value(),
            Nesting::List => Value::List(Vec::new()),
            Nesting::Set => Value::Set(Vec::new()),
            Nesting::Map => Value::Map(BTreeMap::new()),
        }
    }
    /// The type Terraform derives for the block's value.
    pub fn implied_type(&self) -> Type {
        let object = self.block.implied_type();
        match self.nesting {
            Nesting::Single | Nesting::Group => object,
            Nesting::List if object.has_dynamic() => Type::Dynamic,
            Nesting::List => Type::list(object),
            Nesting::Set => Type::set(object),
            Nesting::Map if object.has_dynamic() => Type::Dynamic,
            Nesting::Map => Type::map(object),
        }
    }
}

impl NestedObject {
    fn with(attributes: Vec<Attribute>, nesting: Nesting) -> Self {
        Self {
            attributes,
            nesting,
            validators: Vec::new(),
        }
    }
    /// One object.
    pub fn single(attributes: Vec<Attribute>) -> Self {
        Self::with(attributes, Nesting::Single)
    }
    /// A list of objects.
    pub fn list(attributes: Vec<Attribute>) -> Self {
        Self::with(attributes, Nesting::List)
    }
    /// A set of objects.
    pub fn set(attributes: Vec<Attribute>) -> Self {
        Self::with(attributes, Nesting::Set)
    }
    /// Objects by key.
    pub fn map(attributes: Vec<Attribute>) -> Self {
        Self::with(attributes, Nesting::Map)
    }
    /// An object-level rule, run on each element.
    pub fn validate(mut self, validator: Validator) -> Self {
        self.validators.push(validator);
        self
    }
    /// The attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
    /// Its attributes and blocks, as plan, validation and conversion walk them.
    pub fn shape(&self) -> Shape<'_> {
        Shape::of_attributes(&self.attributes)
    }
    /// The type of one element.
    pub fn object_type(&self) -> Type {
        Type::Object(
            self.attributes
                .iter()
                .map(|a| (a.name.clone(), a.implied_type()))
                .collect(),
        )
    }
    /// Unlike blocks, nested attributes stay collections of objects even when an
    /// attribute inside is dynamic, as Terraform's `configschema.Object` does.
    pub fn implied_type(&self) -> Type {
        let object = self.object_type();
        match self.nesting {
            Nesting::Single | Nesting::Group => object,
            Nesting::List => Type::list(object),
            Nesting::Set => Type::set(object),
            Nesting::Map => Type::map(object),
        }
    }
}

impl AttributeType {
    /// The cty type of the attribute's value.
    pub fn implied_type(&self) -> Type {
        match self {
            AttributeType::Primitive(t) => t.clone(),
            AttributeType::Nested(o) => o.implied_type(),
        }
    }
}

impl Validator {
    /// `description` is the human-readable rule, used in docs.
    pub fn new(
        description: &str,
        f: impl Fn(&Value, &AttributePath, &mut Diagnostics) + Send + Sync + 'static,
    ) -> Self {
        Self {
            description: description.to_string(),
            check: Arc::new(f),
        }
    }
}

impl Attribute {
    /// An attribute that is neither required, optional nor computed until a modifier says so.
    pub fn new(name: impl Into<String>, ty: AttributeType) -> Self {
        Self {
            name: name.into(),
            ty,
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            deprecation: None,
            requires_replace: false,
            default: None,
            use_state_for_unknown: false,
            semantic_eq: None,
            zero_is_unset: false,
            validators: Vec::new(),
        }
    }
    /// A string attribute.
    pub fn string(name: impl Into<String>) -> Self {
        Self::new(name, AttributeType::Primitive(Type::String))
    }
    /// A bool attribute.
    pub fn bool(name: impl Into<String>) -> Self {
        Self::new(name, AttributeType::Primitive(Type::Bool))
    }
    /// A cty number (integers and decimals alike).
    pub fn number(name: impl Into<String>) -> Self {
        Self::new(name, AttributeType::Primitive(Type::Number))
    }
    /// A list of strings.
    pub fn string_list(name: impl Into<String>) -> Self {
        Self::new(name, AttributeType::Primitive(Type::list(Type::String)))
    }
    /// A map of strings.
    pub fn string_map(name: impl Into<String>) -> Self {
        Self::new(name, AttributeType::Primitive(Type::map(Type::String)))
    }
    /// Any value; its type is decided by the configuration.
    pub fn dynamic(name: impl Into<String>) -> Self {
        Self::new(name, AttributeType::Primitive(Type::Dynamic))
    }
    /// Nested attributes: an object or a collection of objects.
    pub fn nested(name: impl Into<String>, object: NestedObject) -> Self {
        Self::new(name, AttributeType::Nested(object))
    }

    /// Configuration must set it.
    pub fn required(mut self) -> Self {
        self.required = true;
        self.optional = false;
        self.computed = false;
        self
    }
    /// Configuration may set it.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self.required = false;
        self
    }
    /// Alone: computed-only (read-only). With `optional()`: set by the user or the provider.
    pub fn computed(mut self) -> Self {
        self.computed = true;
        self.required = false;
        self
    }
    /// Hidden in plans and output.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    /// Never stored in state or plan; always planned as null.
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    /// Markdown, shown in the docs.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }
    /// Marks the attribute deprecated with `message`.
    pub fn deprecated(mut self, message: impl Into<String>) -> Self {
        self.deprecation = Some(message.into());
        self
    }
    /// A change to it replaces the resource.
    pub fn requires_replace(mut self) -> Self {
        self.requires_replace = true;
        self
    }
    /// Planned when the configuration leaves the attribute null; implies optional+computed.
    pub fn default(mut self, value: Value) -> Self {
        self.default = Some(value);
        self.optional = true;
        self.computed = true;
        self.required = false;
        self
    }
    /// For a computed attribute: keep the prior value at plan time instead of "known after
    /// apply" when something else changes (for values that never change, such as IDs).
    pub fn use_state_for_unknown(mut self) -> Self {
        self.use_state_for_unknown = true;
        self
    }
    /// Values `eq` finds equal to the prior value plan as the prior value: no diff.
    pub fn semantic_eq(mut self, eq: SemanticEqFn) -> Self {
        self.semantic_eq = Some(eq);
        self
    }
    /// For a remote field whose zero value (`""`, `false`, `0`, empty) means unset: when the
    /// configuration leaves the attribute unset, a zero value already stored is planned as it
    /// is rather than as a change to null, and anything else is planned null. Implies
    /// optional+computed, which Terraform requires of a planned value that is not the
    /// configuration's.
    pub fn zero_is_unset(mut self) -> Self {
        self.zero_is_unset = true;
        self.optional = true;
        self.computed = true;
        self.required = false;
        self
    }
    /// Adds a rule checked on the attribute's known values.
    pub fn validate(mut self, validator: Validator) -> Self {
        self.validators.push(validator);
        self
    }

    /// Read-only: the provider sets it, configuration cannot.
    pub fn is_computed_only(&self) -> bool {
        self.computed && !self.optional && !self.required
    }
    /// The cty type of the attribute's value.
    pub fn implied_type(&self) -> Type {
        self.ty.implied_type()
    }
    /// The nested attributes, when it has any.
    pub fn nested_object(&self) -> Option<&NestedObject> {
        match &self.ty {
            AttributeType::Nested(o) => Some(o),
            AttributeType::Primitive(_) => None,
        }
    }
}
