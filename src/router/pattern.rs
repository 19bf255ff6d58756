//! Fluentd's tag match patterns (`match.rb`): `*`, `**`, `{a,b}`, `\c`, `/regex/`, and
//! space-separated lists. Each pattern compiles to one anchored regex.

use fancy_regex::Regex;

/// One `<match>`/`<filter>` argument: any of its space-separated patterns may match.
#[derive(Clone, Debug)]
pub struct MatchPattern {
    source: String,
    alternatives: Vec<Alternative>,
}

#[derive(Clone, Debug)]
enum Alternative {
    All,
    Regex(Regex),
}

impl MatchPattern {
    /// Parses a directive argument; an empty argument means `**`.
    pub fn parse(arg: &str) -> Result<MatchPattern, String> {
        let mut alternatives = Vec::new();
        for pat in arg.split_whitespace() {
            alternatives.push(compile_one(pat)?);
        }
        if alternatives.is_empty() {
            alternatives.push(Alternative::All);
        }
        Ok(MatchPattern {
            source: arg.to_string(),
            alternatives,
        })
    }

    pub fn matches(&self, tag: &str) -> bool {
        self.alternatives.iter().any(|a| match a {
            Alternative::All => true,
            Alternative::Regex(r) => r.is_match(tag).unwrap_or(false),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

fn compile_one(pat: &str) -> Result<Alternative, String> {
    if pat == "**" {
        return Ok(Alternative::All);
    }
    let body = if pat.len() >= 2 && pat.starts_with('/') && pat.ends_with('/') {
        crate::config_parser::types::ruby_regex_to_rust(&pat[1..pat.len() - 1])
    } else {
        glob_to_regex(pat)
    };
    let full = format!(r"\A(?:{body})\z");
    Regex::new(&full)
        .map(Alternative::Regex)
        .map_err(|e| format!("invalid match pattern '{pat}': {e}"))
}

/// The translation of Fluentd's `GlobMatchPattern`, which builds a Ruby regex char by char.
fn glob_to_regex(pat: &str) -> String {
    let chars: Vec<char> = pat.chars().collect();
    // A stack of alternatives being built for `{...}`; `regex` holds the text of each level.
    let mut stack: Vec<Vec<String>> = Vec::new();
    let mut regex: Vec<String> = vec![String::new()];
    let mut escape = false;
    let mut dot = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let last = regex.len() - 1;
        if escape {
            regex[last].push_str(&regex_escape(c));
            escape = false;
            i += 1;
            continue;
        } else if c == '*' && chars.get(i + 1) == Some(&'*') {
            if dot {
                regex[last].push_str(r"(?![^\.])");
                dot = false;
            }
            if chars.get(i + 2) == Some(&'.') {
                regex[last].push_str(r"(?:.*\.|\A)");
                i += 3;
            } else {
                regex[last].push_str(".*");
                i += 2;
            }
            continue;
        } else if dot {
            regex[last].push_str(r"\.");
            dot = false;
        }
        match c {
            '\\' => escape = true,
            '.' => dot = true,
            '*' => regex[last].push_str(r"[^\.]*"),
            '{' => {
                stack.push(Vec::new());
                regex.push(String::new());
            }
            '}' if !stack.is_empty() => {
                let done = regex.pop().unwrap_or_default();
                let mut alts = stack.pop().unwrap_or_default();
                alts.push(done);
                let last = regex.len() - 1;
                regex[last].push_str(&union(&alts));
            }
            ',' if !stack.is_empty() => {
                let done = regex.pop().unwrap_or_default();
                if let Some(top) = stack.last_mut() {
                    top.push(done);
                }
                regex.push(String::new());
            }
            c if c.is_ascii_alphanumeric() || c == '_' => regex[last].push(c),
            c => regex[last].push_str(&regex_escape(c)),
        }
        i += 1;
    }
    // A trailing dot is literal (Fluentd drops it; `a.` then never matches a real tag).
    while let Some(mut alts) = stack.pop() {
        alts.push(regex.pop().unwrap_or_default());
        let last = regex.len() - 1;
        regex[last].push_str(&union(&alts));
    }
    regex.pop().unwrap_or_default()
}

fn union(alts: &[String]) -> String {
    let parts: Vec<String> = alts.iter().map(|a| format!("(?:{a})")).collect();
    format!("(?:{})", parts.join("|"))
}

fn regex_escape(c: char) -> String {
    regex::escape(&c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, tag: &str) -> bool {
        MatchPattern::parse(p).unwrap().matches(tag)
    }

    #[test]
    fn single_star_is_one_part() {
        assert!(m("app.*", "app.web"));
        assert!(!m("app.*", "app.web.x"));
        assert!(!m("app.*", "app"));
        assert!(m("*.web", "other.web"));
        assert!(!m("*.web", "app.web.x"));
        assert!(m("a.*", "a."), "a star matches an empty part too");
    }

    #[test]
    fn double_star_is_zero_or_more_parts() {
        assert!(m("app.**", "app"));
        assert!(m("app.**", "app.web"));
        assert!(m("app.**", "app.web.x"));
        assert!(!m("app.**", "application"));
        assert!(m("**.x", "x"));
        assert!(m("**.x", "a.b.x"));
        assert!(m("app.**.x", "app.x"));
        assert!(m("app.**.x", "app.web.x"));
        assert!(m("app.**.x", "app.a.b.x"));
        assert!(!m("app.**.x", "app.web.y"));
        assert!(m("**", "anything.at.all"));
    }

    #[test]
    fn braces_lists_and_empty() {
        assert!(m("{app,other}.web", "app.web"));
        assert!(m("{app,other}.web", "other.web"));
        assert!(!m("{app,other}.web", "third.web"));
        assert!(m("a.{b,c.**}", "a.c.d.e"));
        assert!(m("x y.*", "y.z"));
        assert!(m("x y.*", "x"));
        assert!(!m("x y.*", "z"));
        assert!(m("", "any.tag"));
    }

    #[test]
    fn regex_patterns_and_escapes() {
        assert!(m("/^app\\.(web|db)$/", "app.db"));
        assert!(!m("/app\\.(web|db)/", "app.dbx"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m("a-b", "a-b"));
    }

    #[test]
    fn anchored_whole_tag() {
        assert!(!m("web", "app.web"));
        assert!(!m("app", "app.web"));
    }
}
