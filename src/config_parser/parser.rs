//! The v1 config syntax (`v1_parser.rb`, `basic_parser.rb`, `literal_parser.rb`), rule for rule:
//! sections `<name arg>…</name>`, `key value` lines, three kinds of string literal, multi-line
//! JSON values, `#` comments, and `@include` spliced in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nom::bytes::complete::{take_while, take_while1};
use nom::IResult;

use super::ruby;
use super::{ConfigError, Element, Param, ParamValue, ParseOptions, SourceFile, Span};

/// Keys handled by the engine; every other `@` key is reserved for the system.
const RESERVED_PARAMS: &[&str] = &["@type", "@id", "@label", "@log_level"];
/// Sections whose direct parameters may not start with `@` (besides the reserved ones).
const ELEM_SYMBOLS: &[&str] = &["match", "source", "filter", "system"];

/// Deepest `@include` nesting before we assume a cycle.
const MAX_INCLUDE_DEPTH: usize = 32;

pub fn parse_str(text: &str, path: &Path, opts: &ParseOptions) -> Result<Element, ConfigError> {
    let file = Arc::new(SourceFile {
        path: path.to_path_buf(),
        text: text.to_string(),
    });
    let mut root = Element::new("ROOT", "", Span::new(file.clone(), 0));
    let mut p = Parser::new(file, opts, 0);
    p.parse_body(true, None, &mut root)?;
    Ok(root)
}

fn element_name(s: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_')(s)
}

fn blanks(s: &str) -> IResult<&str, &str> {
    take_while(|c: char| c == ' ' || c == '\t')(s)
}

struct Parser<'o> {
    file: Arc<SourceFile>,
    pos: usize,
    opts: &'o ParseOptions,
    depth: usize,
}

impl<'o> Parser<'o> {
    fn new(file: Arc<SourceFile>, opts: &'o ParseOptions, depth: usize) -> Self {
        Parser {
            file,
            pos: 0,
            opts,
            depth,
        }
    }

    fn rest(&self) -> &str {
        &self.file.text[self.pos..]
    }

    fn eof(&self) -> bool {
        self.pos >= self.file.text.len()
    }

    fn span_at(&self, pos: usize) -> Span {
        Span::new(self.file.clone(), pos)
    }

    fn error(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(msg, &self.span_at(self.pos))
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_str(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn skip_blanks(&mut self) {
        if let Ok((rest, _)) = blanks(self.rest()) {
            self.pos = self.file.text.len() - rest.len();
        }
    }

    /// Whitespace, newlines and whole comments between tokens.
    fn skip_spacing(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.pos += 1;
                }
                Some('#') => self.skip_comment(),
                _ => break,
            }
        }
    }

    fn skip_comment(&mut self) {
        match self.rest().find('\n') {
            Some(i) => self.pos += i,
            None => self.pos = self.file.text.len(),
        }
    }

    /// Does the text at `at` look like a line end: blanks, an optional comment, then EOL/EOF?
    fn is_line_end_at(&self, at: usize) -> bool {
        let s = &self.file.text[at..];
        let t = s.trim_start_matches([' ', '\t']);
        t.is_empty() || t.starts_with('#') || t.starts_with('\n') || t.starts_with('\r')
    }

    /// Consumes a line end (blanks, comment, newline); false when something else follows.
    fn line_end(&mut self) -> bool {
        if !self.is_line_end_at(self.pos) {
            return false;
        }
        self.skip_blanks();
        if self.peek() == Some('#') {
            self.skip_comment();
        }
        self.skip_str("\r");
        self.skip_str("\n");
        true
    }

    fn expect_line_end(&mut self) -> Result<(), ConfigError> {
        if self.line_end() {
            Ok(())
        } else {
            Err(self.error("expected end of line"))
        }
    }

    fn parse_body(
        &mut self,
        root: bool,
        name: Option<&str>,
        elem: &mut Element,
    ) -> Result<(), ConfigError> {
        loop {
            self.skip_spacing();
            if self.eof() {
                if root {
                    return Ok(());
                }
                return Err(self.error(format!(
                    "expected end tag '</{}>' but got end of file",
                    name.unwrap_or("")
                )));
            }
            let start = self.pos;
            if self.skip_str("</") {
                let close = match element_name(self.rest()) {
                    Ok((_, n)) => n.to_string(),
                    Err(_) => String::new(),
                };
                self.pos += close.len();
                self.skip_blanks();
                if !self.skip_str(">") {
                    return Err(self.error("expected character in tag name"));
                }
                if root || Some(close.as_str()) != name {
                    self.pos = start;
                    return Err(self.error(format!("unmatched end tag '</{close}>'")));
                }
                self.expect_line_end()?;
                return Ok(());
            } else if self.skip_str("<") {
                let Ok((_, n)) = element_name(self.rest()) else {
                    return Err(self.error("expected element name"));
                };
                let child_name = n.to_string();
                self.pos += n.len();
                self.skip_blanks();
                let arg = self.scan_tag_arg()?;
                if !self.skip_str(">") {
                    return Err(self.error("expected '>'"));
                }
                self.expect_line_end()?;
                let mut child = Element::new(&child_name, arg, self.span_at(start));
                self.parse_body(false, Some(&child_name), &mut child)?;
                elem.elements.push(child);
            } else {
                self.parse_param_line(root, name, elem, start)?;
            }
        }
    }

    /// The argument of `<name ARG>`: quoted, or everything up to the closing `>`.
    fn scan_tag_arg(&mut self) -> Result<String, ConfigError> {
        match self.peek() {
            Some('"') => {
                self.pos += 1;
                let v = self.scan_double_quoted()?;
                self.skip_blanks();
                Ok(v.as_str().unwrap_or_default().to_string())
            }
            Some('\'') => {
                self.pos += 1;
                let v = self.scan_single_quoted()?;
                self.skip_blanks();
                Ok(v)
            }
            _ => {
                let rest = self.rest();
                let end = rest.find(['>', '\n']).unwrap_or(rest.len());
                let arg = rest[..end].trim_end().to_string();
                self.pos += rest[..end].trim_end().len();
                self.skip_blanks();
                Ok(arg)
            }
        }
    }

    fn parse_param_line(
        &mut self,
        root: bool,
        name: Option<&str>,
        elem: &mut Element,
        start: usize,
    ) -> Result<(), ConfigError> {
        let key = self.scan_key();
        if key.is_empty() {
            return Err(self.error("expected a parameter name"));
        }
        let is_include = key == "@include" || key == "include";
        if is_include && key == "include" {
            tracing::warn!("'include' is deprecated. Use '@include' instead");
        }
        // After the key: blanks (and newlines, which mean "no value").
        let before = self.pos;
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\n')) {
            self.pos += 1;
        }
        let spacing = &self.file.text[before..self.pos];
        if spacing.contains('\n') || self.eof() {
            if is_include {
                return Err(self.error("expected a path after @include"));
            }
            elem.params.push(Param {
                key,
                value: ParamValue::Str(String::new()),
                span: self.span_at(start),
            });
            return Ok(());
        }
        if is_include {
            let rest = self.rest();
            let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
            let uri = strip_line_comment(&rest[..end]).trim().to_string();
            self.pos += end;
            self.line_end();
            return self.include(&uri, elem, start);
        }
        if key.starts_with('@') && !RESERVED_PARAMS.contains(&key.as_str()) {
            let strict_level = root || name.map(|n| ELEM_SYMBOLS.contains(&n)).unwrap_or(false);
            let msg = format!(
                "'@' is the system reserved prefix. Don't use '@' prefix parameter in the configuration: {key}"
            );
            if strict_level {
                return Err(ConfigError::at(msg, &self.span_at(start)));
            }
            tracing::warn!("{msg}");
        }
        let value = self.parse_literal()?;
        self.expect_line_end()?;
        elem.params.push(Param {
            key,
            value,
            span: self.span_at(start),
        });
        Ok(())
    }

    fn scan_key(&mut self) -> String {
        let rest = self.rest();
        let end = rest.find([' ', '\t', '\r', '\n']).unwrap_or(rest.len());
        let key = rest[..end].to_string();
        self.pos += end;
        key
    }

    fn parse_literal(&mut self) -> Result<ParamValue, ConfigError> {
        match self.peek() {
            Some('"') => {
                self.pos += 1;
                self.scan_double_quoted()
            }
            Some('\'') => {
                self.pos += 1;
                Ok(ParamValue::Str(self.scan_single_quoted()?))
            }
            Some('[') => self.scan_json(true).map(ParamValue::Str),
            Some('{') => self.scan_json(false).map(ParamValue::Str),
            _ => Ok(ParamValue::Str(self.scan_unquoted())),
        }
    }

    /// Up to the line end; ` #` starts a comment, a `#` glued to text is literal.
    fn scan_unquoted(&mut self) -> String {
        let mut out = String::new();
        loop {
            if self.peek() == Some('#') {
                out.push('#');
                self.pos += 1;
                continue;
            }
            if self.eof() || self.is_line_end_at(self.pos) {
                break;
            }
            match self.bump() {
                Some(c) => out.push(c),
                None => break,
            }
        }
        out
    }

    fn scan_single_quoted(&mut self) -> Result<String, ConfigError> {
        let start = self.pos;
        let mut out = String::new();
        loop {
            if self.skip_str("'") {
                return Ok(out);
            } else if self.skip_str("\\'") {
                out.push('\'');
            } else if self.skip_str("\\\\") {
                out.push('\\');
            } else if let Some(c) = self.bump() {
                out.push(c);
            } else {
                self.pos = start;
                return Err(self.error("unexpected end of file in a single quoted string"));
            }
        }
    }

    fn scan_double_quoted(&mut self) -> Result<ParamValue, ConfigError> {
        let start = self.pos;
        let mut out = String::new();
        let mut special: Option<ParamValue> = None;
        loop {
            let Some(c) = self.peek() else {
                self.pos = start;
                return Err(self.error("unexpected end of file in a double quoted string"));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    if let Some(s) = special {
                        if out.is_empty() {
                            return Ok(s);
                        }
                    }
                    return Ok(ParamValue::Str(out));
                }
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        // A backslash before a line break joins the lines.
                        Some('\n') => {
                            self.pos += 1;
                        }
                        Some('\r') => {
                            self.pos += 1;
                            self.skip_str("\n");
                        }
                        Some(e) => {
                            self.pos += e.len_utf8();
                            out.push(self.escape(e)?);
                        }
                        None => {}
                    }
                }
                '\r' | '\n' => {
                    // A literal line break inside the quotes is dropped.
                    self.pos += 1;
                }
                '#' if self.rest().starts_with("#{") => {
                    self.pos += 2;
                    let code_start = self.pos;
                    let code = self.scan_embedded_code()?;
                    match ruby::eval(&code, self.opts) {
                        Ok(ruby::Evaluated::Str(s)) => out.push_str(&s),
                        Ok(ruby::Evaluated::Nil) => special = Some(ParamValue::Nil),
                        Ok(ruby::Evaluated::Default) => special = Some(ParamValue::Default),
                        Err((e, off)) => {
                            return Err(ConfigError::at(e, &self.span_at(code_start + off)));
                        }
                    }
                }
                _ => {
                    self.pos += c.len_utf8();
                    out.push(c);
                }
            }
        }
    }

    fn escape(&self, c: char) -> Result<char, ConfigError> {
        Ok(match c {
            '"' | '\'' | '\\' => c,
            'r' => '\r',
            'n' => '\n',
            't' => '\t',
            'f' => '\u{c}',
            'b' => '\u{8}',
            '0' => '\0',
            c if c.is_ascii_alphanumeric() => {
                return Err(ConfigError::at(
                    format!("unexpected back-slash escape character '{c}'"),
                    &self.span_at(self.pos - 2),
                ))
            }
            c => c,
        })
    }

    /// The code of `#{...}` up to its closing brace (braces and Ruby strings balanced).
    fn scan_embedded_code(&mut self) -> Result<String, ConfigError> {
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.bump() {
            match (quote, c) {
                (Some(_), '\\') => {
                    self.bump();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '{') => depth += 1,
                (None, '}') if depth == 0 => {
                    return Ok(self.file.text[start..self.pos - 1].to_string());
                }
                (None, '}') => depth -= 1,
                _ => {}
            }
        }
        self.pos = start;
        Err(self.error("unexpected end of file in embedded code"))
    }

    /// A value starting with `[` or `{`: read until it parses as JSON, across lines; `#` after a
    /// complete element starts a comment; `#{...}` inside is evaluated. Re-serialized compact.
    fn scan_json(&mut self, is_array: bool) -> Result<String, ConfigError> {
        let start = self.pos;
        let mut buffer = String::new();
        let mut line = String::new();
        let close = if is_array { ']' } else { '}' };
        while let Some(c) = self.bump() {
            if c == '#' {
                let probe = format!(
                    "{}{}{}",
                    buffer,
                    line.trim_end().trim_end_matches(','),
                    close
                );
                if serde_json::from_str::<serde_json::Value>(&probe).is_ok() {
                    // a comment up to the end of the line
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                    buffer.push_str(&line);
                    buffer.push('\n');
                    line.clear();
                } else if self.rest().starts_with('{') && self.rest()[1..].contains('}') {
                    self.pos += 1;
                    let code_start = self.pos;
                    let code = self.scan_embedded_code()?;
                    match ruby::eval(&code, self.opts) {
                        Ok(ruby::Evaluated::Str(s)) => line.push_str(&s),
                        Ok(_) => {}
                        Err((e, off)) => {
                            return Err(ConfigError::at(e, &self.span_at(code_start + off)))
                        }
                    }
                } else {
                    line.push('#');
                }
                continue;
            }
            if c == '\n' {
                buffer.push_str(&line);
                buffer.push('\n');
                line.clear();
                continue;
            }
            line.push(c);
            if c == ']' || c == '}' {
                let candidate = format!("{buffer}{line}");
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&candidate) {
                    return Ok(v.to_string());
                }
            }
        }
        self.pos = start;
        Err(self.error(format!(
            "got incomplete JSON {} configuration",
            if is_array { "array" } else { "hash" }
        )))
    }

    fn include(&mut self, uri: &str, elem: &mut Element, at: usize) -> Result<(), ConfigError> {
        if uri.starts_with("http://") || uri.starts_with("https://") {
            return Err(ConfigError::at(
                format!("include error {uri} - remote includes are not supported"),
                &self.span_at(at),
            ));
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::at(
                format!("include error {uri} - too deeply nested (an include cycle?)"),
                &self.span_at(at),
            ));
        }
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        let base = self
            .file
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let full = if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            base.join(path)
        };
        let pattern = full.to_string_lossy().into_owned();
        let mut entries: Vec<PathBuf> = match glob::glob(&pattern) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect(),
            Err(e) => {
                return Err(ConfigError::at(
                    format!("include error {uri} - {e}"),
                    &self.span_at(at),
                ))
            }
        };
        entries.sort();
        for entry in entries {
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.contains('*') && looks_like_backup(name) {
                tracing::warn!(
                    "[config] the included file {} looks like a backup; it is read all the same",
                    entry.display()
                );
            }
            let bytes = std::fs::read(&entry).map_err(|e| {
                ConfigError::at(
                    format!("include error {} - {}", entry.display(), e),
                    &self.span_at(at),
                )
            })?;
            let file = Arc::new(SourceFile {
                path: entry.clone(),
                text: String::from_utf8_lossy(&bytes).into_owned(),
            });
            let mut sub = Parser::new(file, self.opts, self.depth + 1);
            // Included text is parsed as a top level and spliced into the current element.
            sub.parse_body(true, None, elem)?;
        }
        Ok(())
    }
}

fn strip_line_comment(s: &str) -> &str {
    match s.find(" #").or_else(|| s.find("\t#")) {
        Some(i) => &s[..i],
        None => s,
    }
}

fn looks_like_backup(name: &str) -> bool {
    let stem = name.trim_end_matches(".conf");
    [
        ".bak", "_bak", ".old", "_old", ".orig", "_orig", "~", ".backup", "_backup",
    ]
    .iter()
    .any(|s| stem.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Element, ConfigError> {
        parse_str(text, Path::new("t.conf"), &ParseOptions::default())
    }

    fn values(text: &str) -> Vec<(String, ParamValue)> {
        let root = parse(text).unwrap();
        root.elements[0]
            .params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect()
    }

    fn s(v: &str) -> ParamValue {
        ParamValue::Str(v.to_string())
    }

    #[test]
    fn sections_args_and_nesting() {
        let root = parse("<match app.** other>\n  @type copy\n  <store ignore_error>\n    @type stdout\n  </store>\n</match>\n").unwrap();
        let m = &root.elements[0];
        assert_eq!(m.name, "match");
        assert_eq!(m.arg, "app.** other");
        assert_eq!(m.get("@type"), Some("copy"));
        assert_eq!(m.elements[0].arg, "ignore_error");
        assert_eq!(m.elements[0].get("@type"), Some("stdout"));
    }

    #[test]
    fn double_quoted_escapes_and_line_joins() {
        let v = values("<a>\n  a \"tab\\there\"\n  b \"q\\\"x\\\\y\"\n  c \"dot\\.\\$\"\n  d \"one\ntwo\"\n  e \"x\\\ny\"\n</a>\n");
        assert_eq!(v[0].1, s("tab\there"));
        assert_eq!(v[1].1, s("q\"x\\y"));
        assert_eq!(v[2].1, s("dot.$"));
        assert_eq!(v[3].1, s("onetwo"));
        assert_eq!(v[4].1, s("xy"));
    }

    #[test]
    fn unknown_letter_escape_is_an_error_with_location() {
        let e = parse("<a>\n  a \"x\\qy\"\n</a>\n").unwrap_err();
        assert!(e
            .message
            .contains("unexpected back-slash escape character 'q'"));
        let l = e.location.unwrap();
        assert_eq!((l.line, l.column), (2, 7));
    }

    #[test]
    fn single_quoted_is_literal() {
        let v = values(
            "<a>\n  a 'tab\\there'\n  b 'it\\'s'\n  c 'back\\\\slash'\n  d '#{ENV[\"X\"]}'\n</a>\n",
        );
        assert_eq!(v[0].1, s("tab\\there"));
        assert_eq!(v[1].1, s("it's"));
        assert_eq!(v[2].1, s("back\\slash"));
        assert_eq!(v[3].1, s("#{ENV[\"X\"]}"));
    }

    #[test]
    fn unquoted_values_and_comments() {
        let v = values("<a>\n  a value # comment\n  b value#nocomment\n  c a b  c   \n  d\n  e #{x}\n  f 'q # kept'\n</a>\n");
        assert_eq!(v[0].1, s("value"));
        assert_eq!(v[1].1, s("value#nocomment"));
        assert_eq!(v[2].1, s("a b  c"));
        assert_eq!(v[3].1, s(""));
        assert_eq!(v[4].1, s("#{x}"));
        assert_eq!(v[5].1, s("q # kept"));
    }

    #[test]
    fn multi_line_json_values() {
        let v = values("<a>\n  list [\n    \"a\", # first\n    \"b\"\n  ]\n  obj {\"k\": 1,\n   \"n\": {\"x\": true}}\n  after x\n</a>\n");
        assert_eq!(v[0].1, s("[\"a\",\"b\"]"));
        assert_eq!(v[1].1, s("{\"k\":1,\"n\":{\"x\":true}}"));
        assert_eq!(v[2].1, s("x"));
    }

    #[test]
    fn broken_json_is_an_error() {
        let e = parse("<a>\n  list [\"a\",\n</a>\n").unwrap_err();
        assert!(
            e.message
                .contains("got incomplete JSON array configuration"),
            "{}",
            e.message
        );
        assert_eq!(e.location.unwrap().line, 2);
    }

    #[test]
    fn unclosed_and_mismatched_sections() {
        let e = parse("<source>\n  @type sample\n").unwrap_err();
        assert!(e.message.contains("expected end tag '</source>'"));
        let e = parse("<source>\n  @type sample\n</match>\n").unwrap_err();
        assert!(e.message.contains("unmatched end tag"));
        assert_eq!(e.location.unwrap().line, 3);
    }

    #[test]
    fn crlf_and_tabs() {
        let root =
            parse("<source>\r\n\t@type tail\r\n\t# c\r\n\tpath ./x\r\n</source>\r\n").unwrap();
        assert_eq!(root.elements[0].get("path"), Some("./x"));
        assert_eq!(root.elements[0].get("@type"), Some("tail"));
    }

    #[test]
    fn reserved_prefix_is_rejected_at_plugin_level() {
        assert!(parse("<source>\n  @foo 1\n</source>\n").is_err());
        assert!(parse("<match x>\n  <buffer>\n    @foo 1\n  </buffer>\n</match>\n").is_ok());
    }

    #[test]
    fn embedded_ruby_env_and_special_values() {
        std::env::set_var("FERRENTD_PARSER_TEST", "v");
        let v = values("<a>\n  a \"#{ENV['FERRENTD_PARSER_TEST']}\"\n  b \"pre-#{ENV[\"FERRENTD_PARSER_TEST\"]}-post\"\n  c \"#{use_nil}\"\n  d \"#{use_default}\"\n  e \"#{1 + 2}\"\n</a>\n");
        assert_eq!(v[0].1, s("v"));
        assert_eq!(v[1].1, s("pre-v-post"));
        assert_eq!(v[2].1, ParamValue::Nil);
        assert_eq!(v[3].1, ParamValue::Default);
        assert_eq!(v[4].1, s("3"));
        let e = parse("<a>\n  a \"#{system('ls')}\"\n</a>\n").unwrap_err();
        assert!(e.message.contains("system('ls')"), "{}", e.message);
    }

    #[test]
    fn includes_relative_sorted_and_in_sections() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(
            d.join("conf.d/b.conf"),
            "<match b>\n  @type null\n</match>\n",
        )
        .unwrap();
        std::fs::write(
            d.join("conf.d/a.conf"),
            "<match a>\n  @type null\n</match>\n",
        )
        .unwrap();
        std::fs::write(d.join("rec.conf"), "<record>\n  k v\n</record>\n").unwrap();
        let main = d.join("fluent.conf");
        std::fs::write(
            &main,
            "@include conf.d/*.conf\n@include missing.conf\n<filter x>\n  @type record_transformer\n  @include rec.conf\n</filter>\n",
        )
        .unwrap();
        let root = super::super::parse_file(&main, &ParseOptions::default()).unwrap();
        let args: Vec<&str> = root.elements.iter().map(|e| e.arg.as_str()).collect();
        assert_eq!(args, vec!["a", "b", "x"]);
        assert_eq!(root.elements[2].elements[0].get("k"), Some("v"));
    }

    #[test]
    fn errors_in_included_files_name_that_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.conf"), "<match a>\n  @type null\n").unwrap();
        let main = dir.path().join("fluent.conf");
        std::fs::write(&main, "@include bad.conf\n").unwrap();
        let e = super::super::parse_file(&main, &ParseOptions::default()).unwrap_err();
        assert!(e.location.unwrap().file.ends_with("bad.conf"));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "<",
            "</",
            "<a",
            "<a>\n</",
            "\"",
            "a \"#{",
            "a [",
            "a {\"x\" #",
            "<a \"x>",
            "a '",
            "\u{feff}<a>\n</a>",
            "a \"\\",
        ] {
            let _ = parse(text);
        }
    }
}
