//! The `<storage>` that keeps the journal cursor, in fluent-plugin-systemd's file format.

use super::*;

/// The local storage: a JSON object in a file (or only in memory), holding the cursor under
/// `journal`.
#[derive(Debug)]
pub(super) struct Storage {
    pub(super) path: Option<PathBuf>,
    pub(super) persistent: bool,
    pub(super) autosave: Option<Duration>,
    pub(super) save_at_shutdown: bool,
    pub(super) pretty_print: bool,
    pub(super) data: serde_json::Map<String, serde_json::Value>,
}

impl Storage {
    pub(super) fn configure(
        cfg: Option<&StorageConfig>,
        elem: Option<&Element>,
        plugin_id: Option<&str>,
        ctx: &PluginContext,
    ) -> Result<Storage, String> {
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
                    Some(
                        p.join(format!("worker{}", ctx.worker_id))
                            .join("storage.json"),
                    )
                }
            }
            None => match (plugin_id, &ctx.root_dir) {
                (Some(id), Some(root)) => {
                    let base = if arg.is_empty() {
                        "storage.json".to_string()
                    } else {
                        format!("storage.{arg}.json")
                    };
                    Some(
                        root.join(format!("worker{}", ctx.worker_id))
                            .join(id)
                            .join(base),
                    )
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
        Ok(Storage {
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

    pub(super) fn cursor(&self) -> Option<String> {
        match self.data.get("journal") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub(super) fn set_cursor(&mut self, c: String) {
        self.data
            .insert("journal".into(), serde_json::Value::String(c));
    }

    /// Writes the file atomically (temporary file, fsync, rename), as Fluentd's local storage.
    pub(super) fn save(&self) {
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
