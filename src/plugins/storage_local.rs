//! `<storage>` `@type local` (Fluentd's `storage_local.rb`): a JSON object kept in memory and,
//! when a path or an `@id` with `<system> root_dir` is known, in a file written atomically.
//! Plugins keep their resume state here (in_systemd's journal cursor, the Kubernetes sources'
//! reported objects).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config_parser::types::Time;
use crate::config_parser::Element;

/// A `<storage>` section for `@type local`, with Fluentd's defaults.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct StorageConfig {
    #[serde(rename = "@arg", default)]
    pub usage: String,
    pub path: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub dir_mode: Option<String>,
    #[serde(default)]
    pub pretty_print: bool,
    #[serde(default)]
    pub persistent: bool,
    #[serde(default = "yes")]
    pub autosave: bool,
    #[serde(default = "default_autosave_interval")]
    pub autosave_interval: Time,
    #[serde(default = "yes")]
    pub save_at_shutdown: bool,
}

fn yes() -> bool {
    true
}
fn default_autosave_interval() -> Time {
    Time(10.0)
}

/// The local storage: a JSON object in a file (or only in memory).
#[derive(Debug)]
pub struct LocalStorage {
    pub path: Option<PathBuf>,
    /// Save after every change.
    pub persistent: bool,
    /// Save this often when changed (not when persistent).
    pub autosave: Option<Duration>,
    pub save_at_shutdown: bool,
    pretty_print: bool,
    data: serde_json::Map<String, serde_json::Value>,
}

impl LocalStorage {
    /// Builds the storage of a plugin's `<storage>` section (`cfg`/`elem`; both `None` when
    /// there is none). The file is `path` (a `.json` file, or `<path>/worker<N>/storage.json`),
    /// else `<root_dir>/worker<N>/<@id>/storage[.<usage>].json`, else memory only.
    pub fn configure(
        cfg: Option<&StorageConfig>,
        elem: Option<&Element>,
        plugin_id: Option<&str>,
        root_dir: Option<&Path>,
        worker_id: u32,
    ) -> Result<LocalStorage, String> {
        if let Some(t) = elem.and_then(|e| e.plugin_type()) {
            if t != "local" {
                return Err(format!(
                    "Unknown storage plugin '{t}'. Run 'gem search -rd fluent-plugin' to find plugins"
                ));
            }
        }
        let persistent = cfg.is_some_and(|c| c.persistent);
        let autosave = cfg.is_none_or(|c| c.autosave);
        let arg = cfg.map(|c| c.usage.as_str()).unwrap_or("");
        let path = match cfg.and_then(|c| c.path.as_deref()) {
            Some(p) => {
                let p = PathBuf::from(p);
                if p.is_file() || (!p.exists() && p.extension().is_some_and(|e| e == "json")) {
                    Some(p)
                } else {
                    Some(p.join(format!("worker{worker_id}")).join("storage.json"))
                }
            }
            None => match (plugin_id, root_dir) {
                (Some(id), Some(root)) => {
                    let base = if arg.is_empty() {
                        "storage.json".to_string()
                    } else {
                        format!("storage.{arg}.json")
                    };
                    Some(root.join(format!("worker{worker_id}")).join(id).join(base))
                }
                _ if persistent => {
                    return Err(
                        "Plugin @id or path for <storage> required when 'persistent' is true"
                            .into(),
                    )
                }
                _ => None,
            },
        };
        let mut data = serde_json::Map::new();
        if let Some(p) = &path {
            if p.exists() {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    format!(
                        "Unexpected error: failed to read data from plugin storage file: '{}' ({e})",
                        p.display()
                    )
                })?;
                if text.is_empty() {
                    tracing::warn!(
                        "detect empty plugin storage file during startup. Ignored: {}",
                        p.display()
                    );
                } else {
                    match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(serde_json::Value::Object(m)) => data = m,
                        Ok(_) => {
                            return Err(format!(
                                "Invalid contents (not object) in plugin storage file: '{}'",
                                p.display()
                            ))
                        }
                        Err(_) => {
                            return Err(format!(
                            "Unexpected error: failed to read data from plugin storage file: '{}'",
                            p.display()
                        ))
                        }
                    }
                }
            }
        } else if autosave {
            tracing::warn!(
                "both of Plugin @id and path for <storage> are not specified. Using on-memory store."
            );
        }
        Ok(LocalStorage {
            path,
            persistent,
            autosave: (autosave && !persistent).then(|| {
                cfg.map(|c| c.autosave_interval.as_duration())
                    .unwrap_or(Duration::from_secs(10))
            }),
            save_at_shutdown: cfg.is_none_or(|c| c.save_at_shutdown),
            pretty_print: cfg.is_some_and(|c| c.pretty_print),
            data,
        })
    }

    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.data.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<String> {
        match self.data.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn set(&mut self, key: &str, value: serde_json::Value) {
        self.data.insert(key.into(), value);
    }

    /// Writes the file atomically (temporary file, fsync, rename), as Fluentd's local storage.
    pub fn save(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let text = if self.pretty_print {
            serde_json::to_string_pretty(&self.data)
        } else {
            serde_json::to_string(&self.data)
        };
        let Ok(text) = text else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(format!(".tmp.{}", std::process::id()));
            let tmp = PathBuf::from(tmp);
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            tracing::error!(
                "failed to save data for plugin storage to file path=\"{}\" error=\"{e}\"",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_path_forms() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |path: &Path, persistent: bool| StorageConfig {
            usage: String::new(),
            path: Some(path.display().to_string()),
            mode: None,
            dir_mode: None,
            pretty_print: false,
            persistent,
            autosave: true,
            autosave_interval: Time(10.0),
            save_at_shutdown: true,
        };
        let d = LocalStorage::configure(Some(&cfg(dir.path(), true)), None, None, None, 0).unwrap();
        assert_eq!(
            d.path.as_deref(),
            Some(dir.path().join("worker0/storage.json").as_path())
        );
        let file = dir.path().join("pos.json");
        let mut s = LocalStorage::configure(Some(&cfg(&file, true)), None, None, None, 0).unwrap();
        assert_eq!(s.path.as_deref(), Some(file.as_path()));
        s.set("journal", serde_json::json!("s=1;i=2"));
        s.save();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            r#"{"journal":"s=1;i=2"}"#
        );
        let again = LocalStorage::configure(Some(&cfg(&file, true)), None, None, None, 0).unwrap();
        assert_eq!(again.get_str("journal").as_deref(), Some("s=1;i=2"));
        std::fs::write(&file, "[1]").unwrap();
        assert!(
            LocalStorage::configure(Some(&cfg(&file, true)), None, None, None, 0)
                .unwrap_err()
                .contains("not object")
        );
        let mut nopath = cfg(&file, true);
        nopath.path = None;
        assert!(LocalStorage::configure(Some(&nopath), None, None, None, 0)
            .unwrap_err()
            .contains("required when 'persistent' is true"));
    }
}
