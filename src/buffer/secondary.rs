//! `<secondary> @type secondary_file` (Fluentd's `out_secondary_file.rb`): dumps the bytes of
//! chunks the primary output could not write to `DIRECTORY/BASENAME.N` (or `BASENAME` with
//! `append true`), `.gz` when `compress gzip`. It exists only as a secondary.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::keys::{time_placeholder_unit, Placeholders};
use super::{BufferedOutput, Chunk, WriteError};
use crate::config_parser::{ConfigError, Element};
use crate::plugins::PluginContext;

fn d_basename() -> String {
    "dump.bin".to_string()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Compress {
    #[default]
    Text,
    Gzip,
}

#[derive(Deserialize)]
struct SecondaryFileConf {
    directory: String,
    #[serde(default = "d_basename")]
    basename: String,
    #[serde(default)]
    append: bool,
    #[serde(default)]
    compress: Compress,
}

pub struct SecondaryFile {
    path_without_suffix: String,
    append: bool,
    gzip: bool,
    placeholders: Placeholders,
    lock: parking_lot::Mutex<()>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn BufferedOutput>, ConfigError> {
    let c: SecondaryFileConf = ctx.configure(elem, "secondary_file")?;
    if c.basename.contains('/') {
        return Err(elem.error("basename should not include `/`"));
    }
    let path = Path::new(&c.directory)
        .join(&c.basename)
        .to_string_lossy()
        .into_owned();
    Ok(Box::new(SecondaryFile {
        path_without_suffix: path,
        append: c.append,
        gzip: c.compress == Compress::Gzip,
        placeholders: Placeholders::default(),
        lock: parking_lot::Mutex::new(()),
    }))
}

impl SecondaryFile {
    fn target(&self, base: &str) -> PathBuf {
        let suffix = if self.gzip { ".gz" } else { "" };
        if self.append {
            return PathBuf::from(format!("{base}{suffix}"));
        }
        let mut i = 0;
        loop {
            let p = PathBuf::from(format!("{base}.{i}{suffix}"));
            if !p.exists() {
                return p;
            }
            i += 1;
        }
    }
}

impl BufferedOutput for SecondaryFile {
    fn configure_buffer(&mut self, p: &Placeholders, _as_secondary: bool) -> Result<(), String> {
        let s = &self.path_without_suffix;
        for (start, _) in s.match_indices("${") {
            let name = s[start + 2..].split('}').next().unwrap_or("");
            let ok = if name == "tag" || name.starts_with("tag[") {
                p.tag
            } else {
                name == "chunk_id" || p.keys.iter().any(|k| k == name)
            };
            if !ok {
                return Err(format!(
                    "out_secondary_file: basename or directory has an incompatible placeholder ${{{name}}}, remove tag placeholder, like `${{tag}}`, from basename or directory"
                ));
            }
        }
        if !p.time && time_placeholder_unit(s).is_some() {
            return Err("out_secondary_file: basename or directory has an incompatible placeholder, remove time formats, like `%Y%m%d`, from basename or directory".to_string());
        }
        self.placeholders = p.clone();
        Ok(())
    }

    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        let base = self.placeholders.expand(
            &self.path_without_suffix,
            &chunk.metadata,
            &chunk.unique_id_hex(),
        );
        let _g = self.lock.lock();
        let path = self.target(&base);
        let res = (|| -> std::io::Result<()> {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            if self.gzip {
                let mut gz = flate2::write::GzEncoder::new(&mut f, Default::default());
                gz.write_all(&chunk.data)?;
                gz.finish()?;
            } else {
                f.write_all(&chunk.data)?;
            }
            Ok(())
        })();
        res.map_err(|e| WriteError::Retriable(format!("{e} @ {}", path.display())))
    }
}
