//! `<group>`: per-group line rate limits shared by the watchers of one group.

use super::*;

/// The `<group>` rate limits: groups in Fluentd's lookup order, the default one last.
pub(super) struct Groups {
    pub(super) pattern: RubyRegex,
    pub(super) names: Vec<String>,
    pub(super) rate_period: Duration,
    pub(super) groups: Vec<Group>,
}

pub(super) struct Group {
    /// None for the default group, which is never searched, only fallen back to.
    pub(super) key: Option<regex::Regex>,
    pub(super) limit: i64,
    pub(super) members: Mutex<Vec<String>>,
}

/// Ruby's `Regexp#to_s`, which Fluentd joins into the group key.
pub(super) fn ruby_regexp_to_s(src: &str, flags: &str) -> String {
    let on: String = ['m', 'i', 'x']
        .iter()
        .filter(|c| flags.contains(**c))
        .collect();
    let off: String = ['m', 'i', 'x']
        .iter()
        .filter(|c| !flags.contains(**c))
        .collect();
    if off.is_empty() {
        format!("(?{on}:{src})")
    } else {
        format!("(?{on}-{off}:{src})")
    }
}

impl Groups {
    pub(super) fn build(g: &GroupConf, elem: &Element) -> Result<Groups, ConfigError> {
        let pattern = match &g.pattern {
            Some(p) => p.0.clone(),
            None => RubyRegex::new(DEFAULT_GROUP_PATTERN, "").map_err(|e| elem.error(e))?,
        };
        let names: Vec<String> = pattern.capture_names().into_iter().flatten().collect();
        if g.rule.is_empty() {
            return Err(elem.error("'<rule>' sections are required in <group>"));
        }
        let mut rules: Vec<&RuleConf> = g.rule.iter().collect();
        for r in &rules {
            if r.limit < -1 {
                return Err(elem.error("Metadata Group Limit >= DEFAULT_LIMIT"));
            }
        }
        // Rules naming more keys are more specific and are tried first.
        rules.sort_by_key(|r| std::cmp::Reverse(r.matches.as_ref().map_or(2, |m| m.len())));
        let default_key = vec![ruby_regexp_to_s(".*", ""); names.len()].join("_");
        let mut keys: Vec<String> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        for r in rules {
            let mut shown = Vec::new();
            let mut rust = Vec::new();
            for name in &names {
                let (src, flags) = match r.matches.as_ref().and_then(|m| m.get(name)) {
                    Some(v) => {
                        crate::config_parser::types::regexp_source(v).map_err(|e| elem.error(e))?
                    }
                    None => (".*".to_string(), String::new()),
                };
                shown.push(ruby_regexp_to_s(&src, &flags));
                rust.push(format!("(?:{})", ruby_regex_with_flags(&src, &flags)));
            }
            let shown = shown.join("_");
            if keys.contains(&shown) {
                continue;
            }
            let key = if shown == default_key {
                None
            } else {
                Some(
                    regex::Regex::new(&rust.join("_"))
                        .map_err(|e| elem.error(format!("invalid <rule> match: {e}")))?,
                )
            };
            keys.push(shown);
            groups.push(Group {
                key,
                limit: r.limit,
                members: Mutex::new(Vec::new()),
            });
        }
        if !keys.contains(&default_key) {
            groups.push(Group {
                key: None,
                limit: -1,
                members: Mutex::new(Vec::new()),
            });
        }
        Ok(Groups {
            pattern,
            names,
            rate_period: g.rate_period.as_duration(),
            groups,
        })
    }

    /// The group a path belongs to (index into `groups`).
    pub(super) fn find(&self, path: &str) -> usize {
        let default = self
            .groups
            .iter()
            .position(|g| g.key.is_none())
            .unwrap_or(0);
        let Some(caps) = self.pattern.captures_owned(path.as_bytes()) else {
            tracing::warn!("Cannot find group from metadata, Adding file in the default group");
            return default;
        };
        let by_name = self.pattern.capture_names();
        let metadata: Vec<String> = self
            .names
            .iter()
            .map(|n| {
                by_name
                    .iter()
                    .position(|x| x.as_deref() == Some(n.as_str()))
                    .and_then(|i| caps.get(i).cloned().flatten())
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let metadata = metadata.join("_");
        self.groups
            .iter()
            .position(|g| g.key.as_ref().is_some_and(|k| k.is_match(&metadata)))
            .unwrap_or(default)
    }
}

/// One watcher's share of its group's limit.
pub(super) struct GroupMember {
    pub(super) groups_index: usize,
    pub(super) lines: u64,
    pub(super) since: Option<Instant>,
}
