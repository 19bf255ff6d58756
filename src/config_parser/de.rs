//! A serde `Deserializer` over a config section, so that each plugin declares its parameters
//! once, as a struct whose field types are Fluentd's types:
//!
//! | Fluentd type | field type |
//! |---|---|
//! | string | `String` |
//! | integer / float | `i64` / `f64` (Ruby's lenient `to_i`/`to_f` unless strict) |
//! | bool | `bool` (empty = true; an unknown word is an error, "required but nil") |
//! | size / time / regexp | [`types::Size`] / [`types::Time`] / [`types::Regexp`] |
//! | enum | a unit-variant enum (`#[serde(rename_all = "snake_case")]`) |
//! | array / hash | `Vec<String>` / a map of strings |
//! | sub-section | a struct, `Option<struct>`, or `Vec<struct>` for multi sections |
//! | section argument | a field renamed `@arg` |
//!
//! Optional parameters are `Option<T>` or carry `#[serde(default)]`; a missing required one is
//! Fluentd's "'NAME' parameter is required". Parameters and sections the struct does not declare
//! are skipped with Fluentd's warnings. `"#{use_default}"` reads as absent and `"#{use_nil}"` as
//! `None`. Sub-sections a plugin builds itself (`<parse>`, `<format>`, `<store>`) are declared as
//! [`Nested`] so they count as used.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

use super::types;
use super::{ConfigError, Element, Param, ParamValue, Span};

pub struct ConfigureOptions {
    pub strict: bool,
    /// The plugin's `@type`, named in warnings.
    pub plugin: String,
}

/// Parameters every section may carry, handled by the engine rather than the plugin.
const RESERVED: &[&str] = &[
    "@type",
    "@id",
    "@label",
    "@log_level",
    "type",
    "id",
    "log_level",
];

/// What one deserialization learned about a section: recorded while [`observe`] runs, for the
/// migration report (which parameters a plugin declares, which it did not use).
#[derive(Debug, Clone)]
pub struct SectionUse {
    pub file: std::path::PathBuf,
    pub offset: usize,
    pub plugin: String,
    pub declared: Vec<&'static str>,
}

thread_local! {
    static OBSERVED: std::cell::RefCell<Option<Vec<SectionUse>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f`, recording every section deserialized on this thread meanwhile.
pub fn observe<R>(f: impl FnOnce() -> R) -> (R, Vec<SectionUse>) {
    OBSERVED.with(|o| *o.borrow_mut() = Some(Vec::new()));
    let r = f();
    let seen = OBSERVED.with(|o| o.borrow_mut().take()).unwrap_or_default();
    (r, seen)
}

fn record_use(elem: &Element, plugin: &str, fields: &'static [&'static str]) {
    OBSERVED.with(|o| {
        if let Some(v) = o.borrow_mut().as_mut() {
            v.push(SectionUse {
                file: elem.span.file.path.clone(),
                offset: elem.span.offset,
                plugin: plugin.to_string(),
                declared: fields.to_vec(),
            });
        }
    });
}

/// Deserializes `elem` into `T`, warning about what `T` does not declare.
pub fn configure<T: DeserializeOwned>(
    elem: &Element,
    opts: &ConfigureOptions,
) -> Result<T, ConfigError> {
    T::deserialize(SectionDe {
        elem,
        opts,
        path: Vec::new(),
    })
    .map_err(|e| e.0)
}

/// Marks a sub-section the plugin builds itself from the `Element` (e.g. `<parse>`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Nested;

impl<'de> de::Deserialize<'de> for Nested {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_ignored_any(de::IgnoredAny).map(|_| Nested)
    }
}

/// A `ConfigError` carried through serde.
#[derive(Debug)]
pub struct DeError(pub ConfigError);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(ConfigError::new(msg.to_string()))
    }
    fn missing_field(field: &'static str) -> Self {
        DeError(ConfigError::new(format!("'{field}' parameter is required")))
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError(ConfigError::new(format!(
            "valid options are {} but got {}",
            expected.join(","),
            variant
        )))
    }
    fn duplicate_field(field: &'static str) -> Self {
        DeError(ConfigError::new(format!(
            "'{field}' parameter is written twice"
        )))
    }
}

impl DeError {
    fn located(self, span: &Span) -> Self {
        DeError(self.0.or_at(span))
    }
}

struct SectionDe<'a> {
    elem: &'a Element,
    opts: &'a ConfigureOptions,
    path: Vec<String>,
}

impl SectionDe<'_> {
    fn section_path(&self) -> String {
        self.path.join(" > ")
    }

    fn with_section_path(&self, e: DeError) -> DeError {
        let mut e = e.located(&self.elem.span);
        if !self.path.is_empty() && e.0.message.ends_with("parameter is required") {
            e.0.message = format!("{}, in section {}", e.0.message, self.section_path());
        }
        e
    }
}

/// One key the struct will see: a parameter, or every sub-section of one name.
enum Entry<'a> {
    Arg(&'a Element),
    Param(&'a Param),
    Sections(String, Vec<&'a Element>),
}

struct SectionMap<'a> {
    entries: std::vec::IntoIter<Entry<'a>>,
    pending: Option<Entry<'a>>,
    opts: &'a ConfigureOptions,
    path: Vec<String>,
}

impl<'a, 'de> de::Deserializer<'de> for SectionDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_struct("", &[], visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let elem = self.elem;
        record_use(elem, &self.opts.plugin, fields);
        let declared = |k: &str| fields.contains(&k);
        let mut entries = Vec::new();
        if declared("@arg") {
            entries.push(Entry::Arg(elem));
        }
        // The last value of a duplicated key wins, as in Fluentd.
        let mut seen: Vec<&str> = Vec::new();
        for p in elem.params.iter().rev() {
            if seen.contains(&p.key.as_str()) {
                continue;
            }
            seen.push(&p.key);
            if declared(&p.key) {
                if p.value != ParamValue::Default {
                    entries.push(Entry::Param(p));
                }
            } else if !RESERVED.contains(&p.key.as_str()) {
                tracing::warn!(
                    "parameter '{}' in {} is not used.",
                    p.key,
                    elem.display_name()
                );
            }
        }
        entries.reverse();
        if declared("@arg") {
            // keep the argument first
            let arg = entries.pop();
            if let Some(a) = arg {
                entries.insert(0, a);
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for child in &elem.elements {
            if names.contains(&child.name.as_str()) {
                continue;
            }
            names.push(&child.name);
            if declared(&child.name) {
                let group: Vec<&Element> = elem.children(&child.name).collect();
                entries.push(Entry::Sections(child.name.clone(), group));
            } else {
                tracing::warn!(
                    "section <{}> is not used in {} of {} plugin",
                    child.name,
                    elem.display_name(),
                    self.opts.plugin
                );
            }
        }
        let map = SectionMap {
            entries: entries.into_iter(),
            pending: None,
            opts: self.opts,
            path: self.path.clone(),
        };
        visitor
            .visit_map(map)
            .map_err(|e| self.with_section_path(e))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // A free-form section (e.g. record_transformer's <record>): every parameter, as strings.
        let entries: Vec<Entry> = self.elem.params.iter().map(Entry::Param).collect();
        visitor.visit_map(SectionMap {
            entries: entries.into_iter(),
            pending: None,
            opts: self.opts,
            path: self.path.clone(),
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct enum identifier
    }
}

impl<'a, 'de> MapAccess<'de> for SectionMap<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let key = match &entry {
            Entry::Arg(_) => "@arg".to_string(),
            Entry::Param(p) => p.key.clone(),
            Entry::Sections(name, _) => name.clone(),
        };
        self.pending = Some(entry);
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.pending.take() {
            Some(Entry::Arg(e)) => seed.deserialize(ValueDe {
                key: "@arg",
                value: &ParamValue::Str(e.arg.clone()),
                span: &e.span,
                strict: self.opts.strict,
            }),
            Some(Entry::Param(p)) => seed.deserialize(ValueDe {
                key: &p.key,
                value: &p.value,
                span: &p.span,
                strict: self.opts.strict,
            }),
            Some(Entry::Sections(name, elems)) => {
                let mut path = self.path.clone();
                path.push(name.clone());
                seed.deserialize(SectionsDe {
                    name,
                    elems,
                    opts: self.opts,
                    path,
                })
            }
            None => Err(de::Error::custom("value requested before key")),
        }
    }
}

/// Every sub-section of one name: a `Vec` for multi sections, one struct otherwise.
struct SectionsDe<'a> {
    name: String,
    elems: Vec<&'a Element>,
    opts: &'a ConfigureOptions,
    path: Vec<String>,
}

impl<'a> SectionsDe<'a> {
    fn single(self) -> Result<SectionDe<'a>, DeError> {
        if self.elems.len() > 1 {
            let e = self.elems[1];
            return Err(DeError(e.error(format!(
                "'<{}>' section cannot be written twice or more",
                self.name
            ))));
        }
        match self.elems.first() {
            Some(elem) => Ok(SectionDe {
                elem,
                opts: self.opts,
                path: self.path,
            }),
            None => Err(de::Error::custom(format!(
                "section <{}> is missing",
                self.name
            ))),
        }
    }
}

impl<'a, 'de> de::Deserializer<'de> for SectionsDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.single()?.deserialize_any(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items: Vec<SectionDe<'a>> = self
            .elems
            .iter()
            .map(|elem| SectionDe {
                elem,
                opts: self.opts,
                path: self.path.clone(),
            })
            .collect();
        visitor.visit_seq(SectionSeq {
            items: items.into_iter(),
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.single()?.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Several <record> sections merge into one map, as record_transformer does.
        let mut entries = Vec::new();
        for e in &self.elems {
            entries.extend(e.params.iter().map(Entry::Param));
        }
        visitor.visit_map(SectionMap {
            entries: entries.into_iter(),
            pending: None,
            opts: self.opts,
            path: self.path,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct enum identifier
    }
}

struct SectionSeq<'a> {
    items: std::vec::IntoIter<SectionDe<'a>>,
}

impl<'a, 'de> SeqAccess<'de> for SectionSeq<'a> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(s) => seed.deserialize(s).map(Some),
            None => Ok(None),
        }
    }
}

/// One parameter's value, converted by the type the struct asks for.
struct ValueDe<'a> {
    key: &'a str,
    value: &'a ParamValue,
    span: &'a Span,
    strict: bool,
}

impl ValueDe<'_> {
    fn err(&self, msg: impl fmt::Display) -> DeError {
        DeError(ConfigError::at(format!("{}: {}", self.key, msg), self.span))
    }

    fn text(&self) -> Result<&str, DeError> {
        match self.value {
            ParamValue::Str(s) => Ok(s),
            _ => Err(DeError(ConfigError::at(
                format!("'{}' parameter is required but nil is specified", self.key),
                self.span,
            ))),
        }
    }
}

macro_rules! int_method {
    ($name:ident, $visit:ident, $t:ty) => {
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v = types::integer(self.text()?, self.strict).map_err(|e| self.err(e))?;
            let v = <$t>::try_from(v).map_err(|_| self.err(format!("{v} is out of range")))?;
            visitor.$visit(v)
        }
    };
}

impl<'a, 'de> de::Deserializer<'de> for ValueDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            ParamValue::Str(s) => visitor.visit_str(s),
            _ => visitor.visit_none(),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match types::bool(self.text()?, self.strict).map_err(|e| self.err(e))? {
            Some(b) => visitor.visit_bool(b),
            None => Err(DeError(ConfigError::at(
                format!("'{}' parameter is required but nil is specified", self.key),
                self.span,
            ))),
        }
    }

    int_method!(deserialize_i8, visit_i8, i8);
    int_method!(deserialize_i16, visit_i16, i16);
    int_method!(deserialize_i32, visit_i32, i32);
    int_method!(deserialize_i64, visit_i64, i64);
    int_method!(deserialize_u8, visit_u8, u8);
    int_method!(deserialize_u16, visit_u16, u16);
    int_method!(deserialize_u32, visit_u32, u32);
    int_method!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let v = types::float(self.text()?, self.strict).map_err(|e| self.err(e))?;
        visitor.visit_f32(v as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let v = types::float(self.text()?, self.strict).map_err(|e| self.err(e))?;
        visitor.visit_f64(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            ParamValue::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = self.span;
        let key = self.key;
        let located = |e: DeError| -> DeError {
            if e.0.location.is_some() {
                e
            } else {
                DeError(ConfigError::at(format!("{key}: {}", e.0.message), span))
            }
        };
        match name {
            types::SIZE_MARKER => {
                let v = types::size(self.text()?, self.strict).map_err(|e| self.err(e))?;
                visitor.visit_i64(v).map_err(located)
            }
            types::TIME_MARKER => {
                let v = types::time(self.text()?, self.strict).map_err(|e| self.err(e))?;
                visitor.visit_f64(v).map_err(located)
            }
            types::REGEXP_MARKER => visitor.visit_str(self.text()?).map_err(located),
            _ => visitor.visit_newtype_struct(self).map_err(located),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items = types::array(self.text()?).map_err(|e| self.err(e))?;
        visitor.visit_seq(de::value::SeqDeserializer::new(items.into_iter().map(
            |s| OwnedValueDe {
                key: self.key.to_string(),
                value: s,
                span: self.span.clone(),
                strict: self.strict,
            },
        )))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let pairs = types::hash(self.text()?).map_err(|e| self.err(e))?;
        visitor.visit_map(de::value::MapDeserializer::new(pairs.into_iter().map(
            |(k, v)| {
                (
                    k,
                    OwnedValueDe {
                        key: self.key.to_string(),
                        value: v,
                        span: self.span.clone(),
                        strict: self.strict,
                    },
                )
            },
        )))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let text = self.text()?.trim_start_matches(':').to_string();
        let span = self.span;
        visitor
            .visit_enum(text.into_deserializer())
            .map_err(|e: DeError| DeError(e.0.or_at(span)))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct tuple tuple_struct struct identifier
    }
}

/// An element of an array/hash parameter: the same conversions over an owned string.
struct OwnedValueDe {
    key: String,
    value: String,
    span: Span,
    strict: bool,
}

impl<'de> IntoDeserializer<'de, DeError> for OwnedValueDe {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// Each method converts through [`ValueDe`], which holds the conversion rules.
macro_rules! via_value_de {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, DeError> {
                let v = ParamValue::Str(self.value);
                ValueDe {
                    key: &self.key,
                    value: &v,
                    span: &self.span,
                    strict: self.strict,
                }
                .$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for OwnedValueDe {
    type Error = DeError;

    via_value_de! {
        deserialize_any();
        deserialize_bool();
        deserialize_i64();
        deserialize_u64();
        deserialize_f64();
        deserialize_newtype_struct(name: &'static str);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 u8 u16 u32 i128 u128 f32 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_parser::types::{Regexp, Size, Time};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    fn elem(text: &str) -> Element {
        let root = crate::config_parser::parse_str(
            text,
            std::path::Path::new("test.conf"),
            &Default::default(),
        )
        .unwrap();
        root.elements.into_iter().next().unwrap()
    }

    fn opts() -> ConfigureOptions {
        ConfigureOptions {
            strict: false,
            plugin: "test".into(),
        }
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Slow,
    }

    #[derive(Deserialize, Debug)]
    struct Inner {
        #[serde(rename = "@arg", default)]
        arg: String,
        name: String,
    }

    #[derive(Deserialize, Debug)]
    struct Conf {
        path: String,
        #[serde(default)]
        count: i64,
        #[serde(default)]
        flag: bool,
        limit: Option<Size>,
        wait: Option<Time>,
        pattern: Option<Regexp>,
        #[serde(default = "default_mode")]
        mode: Mode,
        #[serde(default)]
        list: Vec<String>,
        #[serde(default)]
        map: BTreeMap<String, String>,
        #[serde(default)]
        item: Vec<Inner>,
        single: Option<Inner>,
        nested: Option<Nested>,
    }

    fn default_mode() -> Mode {
        Mode::Slow
    }

    #[test]
    fn typed_parameters_and_sections() {
        let e = elem(
            "<source>\n  path /x\n  count 10abc\n  flag\n  limit 1.5k\n  wait 2m\n  pattern /a+/i\n  mode fast\n  list a, b\n  map k:v,x:y\n  unknown 1\n  <item one>\n    name n1\n  </item>\n  <item two>\n    name n2\n  </item>\n  <single>\n    name s\n  </single>\n  <nested>\n    anything goes\n  </nested>\n</source>\n",
        );
        let c: Conf = configure(&e, &opts()).unwrap();
        assert_eq!(c.path, "/x");
        assert_eq!(c.count, 10);
        assert!(c.flag);
        assert_eq!(c.limit, Some(Size(5 * 1024)));
        assert_eq!(c.wait, Some(Time(120.0)));
        assert!(c.pattern.unwrap().0.is_match(b"xAAx"));
        assert_eq!(c.mode, Mode::Fast);
        assert_eq!(c.list, vec!["a", "b"]);
        assert_eq!(c.map.get("x").map(String::as_str), Some("y"));
        assert_eq!(c.item.len(), 2);
        assert_eq!(c.item[1].arg, "two");
        assert_eq!(c.single.unwrap().name, "s");
        assert!(c.nested.is_some());
    }

    #[test]
    fn missing_required_is_located() {
        let e = elem("<source>\n  count 1\n</source>\n");
        let err = configure::<Conf>(&e, &opts()).unwrap_err();
        assert_eq!(err.message, "'path' parameter is required");
        assert_eq!(err.location.unwrap().line, 1);
    }

    #[test]
    fn bad_enum_and_bad_bool_are_errors() {
        let e = elem("<source>\n  path x\n  mode turbo\n</source>\n");
        let err = configure::<Conf>(&e, &opts()).unwrap_err();
        assert!(
            err.message
                .contains("valid options are fast,slow but got turbo"),
            "{}",
            err.message
        );
        assert_eq!(err.location.unwrap().line, 3);
        let e = elem("<source>\n  path x\n  flag maybe\n</source>\n");
        let err = configure::<Conf>(&e, &opts()).unwrap_err();
        assert!(err.message.contains("required but nil"), "{}", err.message);
    }

    #[test]
    fn single_section_twice_is_an_error() {
        let e = elem("<source>\n  path x\n  <single>\n name a\n</single>\n<single>\n name b\n</single>\n</source>\n");
        let err = configure::<Conf>(&e, &opts()).unwrap_err();
        assert!(
            err.message.contains("cannot be written twice"),
            "{}",
            err.message
        );
    }

    #[test]
    fn strict_mode_rejects_junk_integers() {
        let e = elem("<source>\n  path x\n  count 10abc\n</source>\n");
        let strict = ConfigureOptions {
            strict: true,
            plugin: "t".into(),
        };
        assert!(configure::<Conf>(&e, &strict).is_err());
    }

    #[test]
    fn bad_regexp_is_located() {
        let e = elem("<source>\n  path x\n  pattern /(a/\n</source>\n");
        let err = configure::<Conf>(&e, &opts()).unwrap_err();
        assert_eq!(err.location.unwrap().line, 3);
    }
}
