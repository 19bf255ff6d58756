//! Names from a tag, and the per-tag cache of built fields.

use super::*;

/// Names found in a tag.
#[derive(Clone)]
pub(super) struct TagNames {
    pub(super) namespace: String,
    pub(super) pod_name: String,
    pub(super) container_name: String,
    pub(super) cache_key: String,
    pub(super) docker_id: Option<String>,
}

/// The tag regexp. Ruby allows a group name twice (the default names each group once per
/// alternative); the Rust engines do not, so repeats are renamed and looked up together.
pub(super) struct TagRegexp {
    pub(super) re: RubyRegex,
    /// name → indexes of the groups with that name, in pattern order.
    pub(super) groups: HashMap<String, Vec<usize>>,
}

/// Renames the second and later `(?<name>` of one name to `(?<name__kmN>`.
pub(super) fn dedupe_group_names(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 16);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let end = (i + 2).min(b.len());
            out.push_str(&src[i..end]);
            i = end;
            continue;
        }
        let open = if src[i..].starts_with("(?<") {
            Some(3)
        } else if src[i..].starts_with("(?P<") {
            Some(4)
        } else {
            None
        };
        if let Some(n) = open {
            let name_start = i + n;
            let name_len = src[name_start..]
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            if name_len > 0 && src[name_start + name_len..].starts_with('>') {
                let name = &src[name_start..name_start + name_len];
                let count = seen.entry(name.to_string()).or_insert(0);
                *count += 1;
                out.push_str(&src[i..name_start]);
                out.push_str(name);
                if *count > 1 {
                    out.push_str(&format!("__km{count}"));
                }
                i = name_start + name_len;
                continue;
            }
        }
        let ch_len = src[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&src[i..i + ch_len]);
        i += ch_len;
    }
    out
}

impl TagRegexp {
    pub(super) fn new(src: &str) -> Result<TagRegexp, String> {
        let re = RubyRegex::new(&dedupe_group_names(src), "")?;
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, name) in re.capture_names().into_iter().enumerate() {
            if let Some(name) = name {
                let base = match name.find("__km") {
                    Some(p) => name[..p].to_string(),
                    None => name,
                };
                groups.entry(base).or_default().push(i);
            }
        }
        for required in ["namespace", "pod_name", "container_name"] {
            if !groups.contains_key(required) {
                return Err(format!("missing named capture '{required}'"));
            }
        }
        Ok(TagRegexp { re, groups })
    }

    pub(super) fn names(&self, tag: &str) -> Option<TagNames> {
        let caps = self.re.captures_owned(tag.as_bytes())?;
        let get = |name: &str| -> Option<String> {
            self.groups.get(name)?.iter().find_map(|i| {
                caps.get(*i)
                    .and_then(|c| c.as_ref())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            })
        };
        let docker_id = get("docker_id");
        let cache_key = get("pod_uuid").or_else(|| docker_id.clone())?;
        Some(TagNames {
            namespace: get("namespace")?,
            pod_name: get("pod_name")?,
            container_name: get("container_name")?,
            cache_key,
            docker_id,
        })
    }
}

/// What is remembered of a tag: its names, and the metadata last built for it.
#[derive(Clone)]
pub(super) struct TagEntry {
    pub(super) names: Option<Arc<TagNames>>,
    pub(super) memo: Option<Memo>,
}

/// Metadata built from cache hits only, reused while nothing in the caches changed and none of
/// the entries it was built from expired; rebuilt at least every [`MEMO_MAX_AGE`] all the same,
/// which also keeps its pod recent in the LRU order.
#[derive(Clone)]
pub(super) struct Memo {
    pub(super) generation: u64,
    pub(super) valid_until: Instant,
    pub(super) md: Arc<Record>,
}

pub(super) const MEMO_MAX_AGE: Duration = Duration::from_secs(10);

/// tag → its names and memo, bounded by `cache_size`, evicting by CLOCK (second chance)
/// instead of an LRU list: a hit is one hash lookup and sets a bit, nothing is reordered.
pub(super) struct TagCache {
    pub(super) index: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    pub(super) slots: Vec<TagSlot>,
    pub(super) hand: usize,
    pub(super) capacity: usize,
}

pub(super) struct TagSlot {
    pub(super) tag: Arc<str>,
    pub(super) entry: TagEntry,
    pub(super) used: bool,
}

impl TagCache {
    pub(super) fn new(capacity: usize) -> Self {
        TagCache {
            index: HashMap::default(),
            slots: Vec::new(),
            hand: 0,
            capacity: capacity.max(1),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn get(&mut self, tag: &str) -> Option<TagEntry> {
        let slot = &mut self.slots[*self.index.get(tag)?];
        slot.used = true;
        Some(slot.entry.clone())
    }

    pub(super) fn put(&mut self, tag: &str, entry: TagEntry) {
        if let Some(&i) = self.index.get(tag) {
            self.slots[i].entry = entry;
            self.slots[i].used = true;
            return;
        }
        let tag: Arc<str> = Arc::from(tag);
        if self.slots.len() < self.capacity {
            self.index.insert(tag.clone(), self.slots.len());
            self.slots.push(TagSlot {
                tag,
                entry,
                used: true,
            });
            return;
        }
        // The first slot not used since the hand last passed it.
        while self.slots[self.hand].used {
            self.slots[self.hand].used = false;
            self.hand = (self.hand + 1) % self.slots.len();
        }
        let i = self.hand;
        self.index.remove(&self.slots[i].tag);
        self.index.insert(tag.clone(), i);
        self.slots[i] = TagSlot {
            tag,
            entry,
            used: true,
        };
        self.hand = (i + 1) % self.slots.len();
    }

    pub(super) fn set_memo(&mut self, tag: &str, names: Arc<TagNames>, memo: Memo) {
        self.put(
            tag,
            TagEntry {
                names: Some(names),
                memo: Some(memo),
            },
        );
    }
}
