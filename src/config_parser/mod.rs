//! The Fluentd configuration language: the lexer/parser (`parser`), embedded Ruby `"#{...}"`
//! (`ruby`), Fluentd's parameter types (`types`), the serde deserializer that turns a section into
//! a plugin's config struct (`de`), and the v0 compatibility rewrites (`compat`).
//!
//! The parser knows nothing about plugins: it yields an [`Element`] tree whose every node keeps
//! its source position, so any later error can point at file:line:column.

pub mod compat;
pub mod de;
pub mod parser;
pub mod ruby;
pub mod types;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use de::{configure, ConfigureOptions, Nested};

/// A config file's text, shared by every span that points into it.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// A position in a config file (1-based line and column).
#[derive(Clone)]
pub struct Span {
    pub file: Arc<SourceFile>,
    pub offset: usize,
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (l, c) = self.line_col();
        write!(f, "{}:{}:{}", self.file.path.display(), l, c)
    }
}

impl Span {
    pub fn new(file: Arc<SourceFile>, offset: usize) -> Self {
        Span { file, offset }
    }

    pub fn line_col(&self) -> (usize, usize) {
        let upto = &self.file.text[..self.offset.min(self.file.text.len())];
        let line = upto.matches('\n').count() + 1;
        let col = upto
            .rsplit('\n')
            .next()
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }

    pub fn line_text(&self) -> &str {
        let text = &self.file.text;
        let off = self.offset.min(text.len());
        let start = text[..off].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let end = text[off..]
            .find('\n')
            .map(|i| off + i)
            .unwrap_or(text.len());
        text[start..end].trim_end_matches('\r')
    }
}

/// A parameter value as written. Fluentd values are strings until a plugin types them;
/// `"#{use_nil}"` and `"#{use_default}"` are the two special values.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Str(String),
    Nil,
    Default,
}

impl ParamValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Param {
    pub key: String,
    pub value: ParamValue,
    /// Where the key starts.
    pub span: Span,
}

/// A section: `<name arg> params... children... </name>`; the root element has name `ROOT`.
#[derive(Clone, Debug)]
pub struct Element {
    pub name: String,
    pub arg: String,
    pub params: Vec<Param>,
    pub elements: Vec<Element>,
    pub span: Span,
}

impl Element {
    pub fn new(name: impl Into<String>, arg: impl Into<String>, span: Span) -> Self {
        Element {
            name: name.into(),
            arg: arg.into(),
            params: Vec::new(),
            elements: Vec::new(),
            span,
        }
    }

    /// The last value written for `key` (Fluentd keeps the last of duplicated keys).
    pub fn param(&self, key: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.key == key)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.param(key).and_then(|p| p.value.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.param(key).is_some()
    }

    pub fn set(&mut self, key: &str, value: &str) {
        let span = self.span.clone();
        match self.params.iter_mut().rev().find(|p| p.key == key) {
            Some(p) => p.value = ParamValue::Str(value.to_string()),
            None => self.params.push(Param {
                key: key.to_string(),
                value: ParamValue::Str(value.to_string()),
                span,
            }),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Param> {
        let i = self.params.iter().rposition(|p| p.key == key)?;
        let p = self.params.remove(i);
        self.params.retain(|q| q.key != key);
        Some(p)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements.iter().filter(move |e| e.name == name)
    }

    /// `@type`, or the v0 `type` (with Fluentd's deprecation warning).
    pub fn plugin_type(&self) -> Option<&str> {
        self.get("@type").or_else(|| self.get("type"))
    }

    /// How Fluentd names the section in messages: `<match app.**>`.
    pub fn display_name(&self) -> String {
        if self.arg.is_empty() {
            format!("<{}>", self.name)
        } else {
            format!("<{} {}>", self.name, self.arg)
        }
    }

    /// A located error about this element.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::at(message, &self.span)
    }
}

/// A configuration error, located when the position is known. Rendered like Fluentd's
/// `ConfigParseError`: the message, `at FILE line L,C`, the line and a caret.
#[derive(Clone, Debug)]
pub struct ConfigError {
    pub message: String,
    pub location: Option<Location>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub line_text: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            location: None,
        }
    }

    pub fn at(message: impl Into<String>, span: &Span) -> Self {
        let (line, column) = span.line_col();
        ConfigError {
            message: message.into(),
            location: Some(Location {
                file: span.file.path.clone(),
                line,
                column,
                line_text: span.line_text().to_string(),
            }),
        }
    }

    /// Adds a location to an error that has none yet.
    pub fn or_at(mut self, span: &Span) -> Self {
        if self.location.is_none() {
            let located = ConfigError::at(String::new(), span);
            self.location = located.location;
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            None => write!(f, "{}", self.message),
            Some(l) => {
                write!(
                    f,
                    "{} at {} line {},{}\n{:>5}: {}\n       {}^",
                    self.message,
                    l.file.display(),
                    l.line,
                    l.column,
                    l.line,
                    l.line_text,
                    " ".repeat(l.column.saturating_sub(1))
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Context of a parse: environment for `"#{...}"`, the directory includes resolve against.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    pub hostname: String,
    pub worker_id: String,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            hostname: crate::util::hostname(),
            worker_id: std::env::var("SERVERENGINE_WORKER_ID").unwrap_or_default(),
        }
    }
}

/// Reads and parses a config file (with its `@include`s) into the root element.
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Element, ConfigError> {
    let text =
        std::fs::read(path).map_err(|e| ConfigError::new(format!("{}: {}", path.display(), e)))?;
    let text = String::from_utf8_lossy(&text).into_owned();
    parser::parse_str(&text, path, opts)
}

/// Parses config text; `path` names it in errors and anchors relative `@include`s.
pub fn parse_str(text: &str, path: &Path, opts: &ParseOptions) -> Result<Element, ConfigError> {
    parser::parse_str(text, path, opts)
}
