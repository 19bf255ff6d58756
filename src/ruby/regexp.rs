//! Ruby (Onigmo) regular expressions on top of `fancy_regex`, which has the lookaround and
//! backreferences configs use. The source is translated once: `^`/`$` always match at line
//! boundaries in Ruby, `/m` is dot-all, `\h` is a hex digit, `\Z` is `\z` after an optional `\n`.

pub const IGNORECASE: u8 = 1;
pub const EXTENDED: u8 = 2;
pub const MULTILINE: u8 = 4;

#[derive(Debug)]
pub struct Re {
    pub source: String,
    pub flags: u8,
    pub re: fancy_regex::Regex,
    pub names: Vec<Option<String>>,
    /// A matcher for the simplest patterns (`\s+`, `[,;]`, `foo`), used on ASCII text.
    pub simple: Option<Simple>,
}

/// A set of ASCII bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ByteSet([u64; 2]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0, 0]);
    fn add(&mut self, b: u8) {
        if b < 128 {
            self.0[(b >> 6) as usize] |= 1 << (b & 63);
        }
    }
    fn add_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.add(b);
        }
    }
    fn add_set(&mut self, o: ByteSet) {
        self.0[0] |= o.0[0];
        self.0[1] |= o.0[1];
    }
    fn negate(self) -> ByteSet {
        ByteSet([!self.0[0], !self.0[1]])
    }
    #[inline]
    pub fn has(&self, b: u8) -> bool {
        b < 128 && self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }
    fn of(pred: impl Fn(u8) -> bool) -> ByteSet {
        let mut s = ByteSet::EMPTY;
        for b in 0..128u8 {
            if pred(b) {
                s.add(b);
            }
        }
        s
    }
}

/// A pattern that needs no regex engine on ASCII text: a run of single-byte atoms matched
/// once each, or one atom with a greedy quantifier. Ruby's `\s`, `\d`, `\w` are ASCII classes,
/// so on ASCII text this matches exactly what the engine would.
#[derive(Clone, Debug, PartialEq)]
pub enum Simple {
    Seq(Vec<ByteSet>),
    Repeat(ByteSet, usize, usize),
}

fn escape_set(c: char) -> Option<ByteSet> {
    Some(match c {
        's' => ByteSet::of(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')),
        'S' => ByteSet::of(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')),
        'd' => ByteSet::of(|b| b.is_ascii_digit()),
        'D' => ByteSet::of(|b| !b.is_ascii_digit()),
        'w' => ByteSet::of(|b| b.is_ascii_alphanumeric() || b == b'_'),
        'W' => ByteSet::of(|b| !(b.is_ascii_alphanumeric() || b == b'_')),
        'h' => ByteSet::of(|b| b.is_ascii_hexdigit()),
        't' => ByteSet::of(|b| b == b'\t'),
        'n' => ByteSet::of(|b| b == b'\n'),
        'r' => ByteSet::of(|b| b == b'\r'),
        c if c.is_ascii_punctuation() || c == ' ' => ByteSet::of(|b| b == c as u8),
        _ => return None,
    })
}

impl Simple {
    /// The simple form of a Ruby pattern, if it has one.
    fn parse(source: &str, flags: u8) -> Option<Simple> {
        if flags & (IGNORECASE | EXTENDED) != 0 || !source.is_ascii() || source.is_empty() {
            return None;
        }
        let b = source.as_bytes();
        let mut atoms = Vec::new();
        let mut quant: Option<(usize, usize)> = None;
        let mut i = 0;
        while i < b.len() {
            if quant.is_some() {
                return None;
            }
            let set = match b[i] {
                b'\\' => {
                    i += 1;
                    escape_set(*b.get(i)? as char)?
                }
                b'.' => ByteSet::of(|c| flags & MULTILINE != 0 || c != b'\n'),
                b'[' => {
                    let (set, end) = Self::class(b, i + 1)?;
                    i = end;
                    set
                }
                b'+' | b'*' | b'?' => {
                    if atoms.len() != 1 || b.get(i + 1).is_some() {
                        return None;
                    }
                    quant = Some(match b[i] {
                        b'+' => (1, usize::MAX),
                        b'*' => (0, usize::MAX),
                        _ => (0, 1),
                    });
                    i += 1;
                    continue;
                }
                b'^' | b'$' | b'|' | b'(' | b')' | b']' | b'{' | b'}' | b'#' => return None,
                c if c.is_ascii_graphic() || c == b' ' => ByteSet::of(|x| x == c),
                _ => return None,
            };
            atoms.push(set);
            i += 1;
        }
        match quant {
            Some((lo, hi)) => Some(Simple::Repeat(atoms.pop()?, lo, hi)),
            None if !atoms.is_empty() => Some(Simple::Seq(atoms)),
            None => None,
        }
    }

    /// A bracket class starting after `[`: the set and the index of its `]`.
    fn class(b: &[u8], mut i: usize) -> Option<(ByteSet, usize)> {
        let neg = b.get(i) == Some(&b'^');
        if neg {
            i += 1;
        }
        let mut set = ByteSet::EMPTY;
        let mut first = true;
        loop {
            let c = *b.get(i)?;
            match c {
                b']' if !first => break,
                b'[' | b'&' => return None,
                b'\\' => {
                    i += 1;
                    set.add_set(escape_set(*b.get(i)? as char)?);
                }
                c if c.is_ascii_graphic() || c == b' ' => {
                    if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_some_and(|x| *x != b']') {
                        let hi = *b.get(i + 2)?;
                        if hi == b'\\' || hi == b'[' || hi < c {
                            return None;
                        }
                        set.add_range(c, hi);
                        i += 2;
                    } else {
                        set.add(c);
                    }
                }
                _ => return None,
            }
            first = false;
            i += 1;
        }
        Some((if neg { set.negate() } else { set }, i))
    }

    /// The leftmost match at or after `start` in ASCII text.
    #[inline]
    pub fn find(&self, t: &[u8], start: usize) -> Option<(usize, usize)> {
        match self {
            Simple::Seq(atoms) => {
                let n = atoms.len();
                if t.len() < n {
                    return None;
                }
                (start..=t.len() - n)
                    .find(|&s| atoms.iter().enumerate().all(|(k, a)| a.has(t[s + k])))
                    .map(|s| (s, s + n))
            }
            Simple::Repeat(set, lo, hi) => {
                if start > t.len() {
                    return None;
                }
                let mut s = start;
                if *lo > 0 {
                    while s < t.len() && !set.has(t[s]) {
                        s += 1;
                    }
                    if s == t.len() {
                        return None;
                    }
                }
                let mut e = s;
                while e < t.len() && e - s < *hi && set.has(t[e]) {
                    e += 1;
                }
                Some((s, e))
            }
        }
    }
}

impl Re {
    pub fn new(source: &str, flags: u8) -> Result<Re, String> {
        let mut pat = String::from("(?m");
        if flags & IGNORECASE != 0 {
            pat.push('i');
        }
        if flags & EXTENDED != 0 {
            pat.push('x');
        }
        if flags & MULTILINE != 0 {
            pat.push('s');
        }
        pat.push(')');
        let mut chars = source.chars().peekable();
        let mut in_class = 0usize;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('h') => pat.push_str(if in_class > 0 {
                        "0-9a-fA-F"
                    } else {
                        "[0-9a-fA-F]"
                    }),
                    Some('H') if in_class == 0 => pat.push_str("[^0-9a-fA-F]"),
                    Some('Z') => pat.push_str("(?=\\n?\\z)"),
                    Some('/') => pat.push('/'),
                    Some(n) => {
                        pat.push('\\');
                        pat.push(n);
                    }
                    None => pat.push_str("\\\\"),
                },
                '[' => {
                    in_class += 1;
                    pat.push('[');
                    // A leading `]` or `^]` is literal.
                    if chars.peek() == Some(&'^') {
                        pat.push('^');
                        chars.next();
                    }
                    if chars.peek() == Some(&']') {
                        pat.push_str("\\]");
                        chars.next();
                    }
                }
                ']' if in_class > 0 => {
                    in_class -= 1;
                    pat.push(']');
                }
                c => pat.push(c),
            }
        }
        let re = fancy_regex::RegexBuilder::new(&pat)
            .backtrack_limit(1_000_000)
            .build()
            .map_err(|e| format!("{e}: /{source}/"))?;
        let names = re.capture_names().map(|n| n.map(str::to_string)).collect();
        Ok(Re {
            source: source.to_string(),
            flags,
            re,
            names,
            simple: Simple::parse(source, flags),
        })
    }

    fn flag_text(&self) -> String {
        let mut s = String::new();
        if self.flags & MULTILINE != 0 {
            s.push('m');
        }
        if self.flags & IGNORECASE != 0 {
            s.push('i');
        }
        if self.flags & EXTENDED != 0 {
            s.push('x');
        }
        s
    }

    pub fn inspect(&self) -> String {
        format!("/{}/{}", self.source.replace('/', "\\/"), self.flag_text())
    }

    pub fn to_s(&self) -> String {
        let on = self.flag_text();
        let all = "mix";
        let off: String = all.chars().filter(|c| !on.contains(*c)).collect();
        if off.is_empty() {
            format!("(?{on}:{})", self.source)
        } else {
            format!("(?{on}-{off}:{})", self.source)
        }
    }

    /// The first match at or after byte `start`.
    pub fn match_at(&self, text: &str, start: usize) -> Result<Option<MatchData>, String> {
        self.match_shared(&std::rc::Rc::from(text), start)
    }

    fn match_shared(
        &self,
        text: &std::rc::Rc<str>,
        start: usize,
    ) -> Result<Option<MatchData>, String> {
        if start > text.len() {
            return Ok(None);
        }
        // Without groups, a plain find is enough (and faster).
        if self.names.len() == 1 {
            if let Some(m) = self.find_simple(text, start) {
                return Ok(m.map(|g| MatchData {
                    text: text.clone(),
                    groups: vec![Some(g)],
                    names: Vec::new(),
                }));
            }
            return match self.re.find_from_pos(text, start) {
                Ok(Some(m)) => Ok(Some(MatchData {
                    text: text.clone(),
                    groups: vec![Some((m.start(), m.end()))],
                    names: Vec::new(),
                })),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("regexp match failed: {e}")),
            };
        }
        match self.re.captures_from_pos(text, start) {
            Ok(Some(c)) => {
                let groups = (0..c.len())
                    .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                    .collect();
                Ok(Some(MatchData {
                    text: text.clone(),
                    groups,
                    names: self.names.clone(),
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(format!("regexp match failed: {e}")),
        }
    }

    /// The simple matcher's answer, when it applies to `text`.
    #[inline]
    pub fn find_simple(&self, text: &str, start: usize) -> Option<Option<(usize, usize)>> {
        match &self.simple {
            Some(s) if text.is_ascii() => Some(s.find(text.as_bytes(), start)),
            _ => None,
        }
    }

    /// The first match (whole-match offsets only) at or after `start`.
    pub fn find_at(&self, text: &str, start: usize) -> Result<Option<(usize, usize)>, String> {
        if let Some(m) = self.find_simple(text, start) {
            return Ok(m);
        }
        match self.re.find_from_pos(text, start) {
            Ok(m) => Ok(m.map(|m| (m.start(), m.end()))),
            Err(e) => Err(format!("regexp match failed: {e}")),
        }
    }

    /// Every non-overlapping match, as Ruby's scan/gsub walk them.
    pub fn all(&self, text: &str, limit: usize) -> Result<Vec<MatchData>, String> {
        let shared: std::rc::Rc<str> = std::rc::Rc::from(text);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos <= text.len() {
            let Some(m) = self.match_shared(&shared, pos)? else {
                break;
            };
            let (s, e) = m.groups[0].unwrap_or((pos, pos));
            pos = if e == s {
                // An empty match moves on one character.
                e + text[e..].chars().next().map_or(1, char::len_utf8)
            } else {
                e
            };
            out.push(m);
            if out.len() > limit {
                return Err("too many matches".into());
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone)]
pub struct MatchData {
    pub text: std::rc::Rc<str>,
    pub groups: Vec<Option<(usize, usize)>>,
    pub names: Vec<Option<String>>,
}

impl MatchData {
    pub fn group(&self, i: usize) -> Option<&str> {
        let (s, e) = (*self.groups.get(i)?)?;
        self.text.get(s..e)
    }
    pub fn named(&self, name: &str) -> Option<Option<&str>> {
        let i = self.names.iter().position(|n| n.as_deref() == Some(name))?;
        Some(self.group(i))
    }
    pub fn pre(&self) -> &str {
        let s = self.groups[0].map_or(0, |g| g.0);
        &self.text[..s]
    }
    pub fn post(&self) -> &str {
        let e = self.groups[0].map_or(0, |g| g.1);
        &self.text[e..]
    }
    pub fn inspect(&self) -> String {
        let mut s = String::from("#<MatchData ");
        let show = |o: Option<&str>| match o {
            Some(t) => {
                let mut b = Vec::new();
                super::value::write_inspect_str(&mut b, t.as_bytes());
                String::from_utf8_lossy(&b).into_owned()
            }
            None => "nil".into(),
        };
        s.push_str(&show(self.group(0)));
        for i in 1..self.groups.len() {
            let name = self
                .names
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| i.to_string());
            s.push_str(&format!(" {}:{}", name, show(self.group(i))));
        }
        s.push('>');
        s
    }

    /// A `sub`/`gsub` replacement string with `\1`, `\0`, `\&`, `\k<name>`, `` \` ``, `\'`.
    pub fn expand(&self, repl: &str, out: &mut String) {
        let mut chars = repl.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some(d @ '0'..='9') => {
                    if let Some(g) = self.group(d as usize - '0' as usize) {
                        out.push_str(g)
                    }
                }
                Some('&') => out.push_str(self.group(0).unwrap_or("")),
                Some('`') => out.push_str(self.pre()),
                Some('\'') => out.push_str(self.post()),
                Some('\\') => out.push('\\'),
                Some('k') if chars.peek() == Some(&'<') => {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                    if let Some(Some(g)) = self.named(&name) {
                        out.push_str(g);
                    }
                }
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        }
    }
}
