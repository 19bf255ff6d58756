//! `@type file` (output): each buffer chunk is formatted (`<format>`, default `out_file`:
//! `TIME<TAB>TAG<TAB>JSON`, after `<inject>`) and written to a file named from `path`:
//! the timekey's strftime part (`.%Y%m%d` for a day), `_N` (first unused index) unless
//! `append true`, `path_suffix` (`.log`) and `.gz` for `compress gzip`; `*` in `path` marks
//! where the time part goes, and a `path` that already has strftime parts gets none added.
//! `${tag}`, `${tag[N]}` and `${KEY}` come from the chunk keys. Buffer defaults: file buffer,
//! chunk key `time`, timekey 1 day, buffer path = `path` (as a directory).

use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::Deserialize;

use super::formatter_json::default_true;
use super::inject::Inject;
use super::out_stdout::format_element;
use super::{Formatter, Output, PluginContext};
use crate::buffer::keys::time_placeholder_unit;
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, Metadata, Placeholders, WriteError};
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileCompress {
    #[default]
    Text,
    Gz,
    Gzip,
    Zstd,
}

/// out_file's parameters (v0 flat format/inject parameters have become `<format>`/`<inject>`
/// in `config_parser::compat`).
#[derive(Deserialize)]
#[allow(dead_code)]
struct FileConf {
    path: String,
    #[serde(default = "default_true")]
    add_path_suffix: bool,
    /// Default `.log`.
    path_suffix: Option<String>,
    #[serde(default)]
    append: bool,
    #[serde(default)]
    compress: FileCompress,
    #[serde(default)]
    recompress: bool,
    symlink_path: Option<String>,
    #[serde(default)]
    symlink_path_use_relative: bool,
    /// Output-level buffered-output parameters.
    #[serde(default)]
    time_as_integer: bool,
    slow_flush_log_threshold: Option<f64>,
    flush_interval: Option<Time>,
    format: Option<Nested>,
    inject: Option<Nested>,
    buffer: Option<Nested>,
    secondary: Option<Nested>,
}

pub struct FileOutput {
    /// `path` as configured.
    path: String,
    path_suffix: String,
    append: bool,
    gzip: bool,
    symlink_path: Option<String>,
    symlink_relative: bool,
    formatter: Box<dyn Formatter>,
    inject: Option<Inject>,
    /// The full template (time part, `_**` index slot, suffixes), set by `configure_buffer`.
    template: String,
    placeholders: Placeholders,
    /// Serializes the search for a free `_N` name and appends to one file.
    lock: Mutex<()>,
}

/// Fluentd's `timekey_to_timeformat`.
pub fn timekey_to_timeformat(timekey: Option<i64>) -> &'static str {
    match timekey {
        None => "",
        Some(t) if t < 60 => "%Y%m%d%H%M%S",
        Some(t) if t < 3600 => "%Y%m%d%H%M",
        Some(t) if t < 86400 => "%Y%m%d%H",
        Some(_) => "%Y%m%d",
    }
}

/// Fluentd's `generate_path_template`.
pub fn path_template(
    original: &str,
    timekey: Option<i64>,
    append: bool,
    gzip: bool,
    path_suffix: &str,
) -> String {
    let comp = if gzip { ".gz" } else { "" };
    let index = if append { "" } else { "_**" };
    if original.contains('*') {
        let part = timekey_to_timeformat(timekey);
        format!("{}{comp}", original.replace('*', &format!("{part}{index}")))
    } else if timekey.is_some() {
        if time_placeholder_unit(original).is_some() {
            format!("{original}{index}{path_suffix}{comp}")
        } else {
            let part = timekey_to_timeformat(timekey);
            format!("{original}.{part}{index}{path_suffix}{comp}")
        }
    } else {
        format!("{original}{index}{path_suffix}{comp}")
    }
}

/// Fluentd's `FileUtil.writable_p?`: the nearest existing ancestor is a writable directory.
fn writable(path: &Path) -> bool {
    if path.exists() {
        return !path.is_dir() && access_w(path);
    }
    let mut p = path.parent();
    while let Some(d) = p {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        if d.exists() {
            return d.is_dir() && access_w(d);
        }
        p = d.parent();
    }
    true
}

fn access_w(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn relative_path(from_dir: &Path, to: &Path) -> PathBuf {
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        }
    };
    let (from, to) = (abs(from_dir), abs(to));
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

impl FileOutput {
    fn write_to(&self, path: &Path, data: &mut dyn std::io::Read) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(path)?;
        if self.gzip {
            // One gzip member written at once: a failed attempt leaves no half member behind
            // for the retry to append to.
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            std::io::copy(data, &mut gz)?;
            f.write_all(&gz.finish()?)?;
        } else {
            std::io::copy(data, &mut f)?;
        }
        Ok(())
    }

    /// Appends the chunk's bytes, read from `data`, to the file its metadata names.
    fn write_from(&self, chunk: &Chunk, data: &mut dyn std::io::Read) -> Result<(), WriteError> {
        let expanded =
            self.placeholders
                .expand(&self.template, &chunk.metadata, &chunk.unique_id_hex());
        let _g = self.lock.lock();
        let path = self.target(&expanded);
        let res = (|| {
            if let Some(d) = path.parent() {
                if !d.as_os_str().is_empty() {
                    std::fs::create_dir_all(d)?;
                }
            }
            self.write_to(&path, data)
        })();
        res.map_err(|e| WriteError::Retriable(format!("{e} @ {}", path.display())))
    }

    /// The file a chunk goes to, with its `_N` index chosen.
    fn target(&self, expanded: &str) -> PathBuf {
        if self.append || !expanded.contains("_**") {
            return PathBuf::from(expanded);
        }
        let mut i = 0u64;
        loop {
            let p = PathBuf::from(expanded.replacen("_**", &format!("_{i}"), 1));
            if !p.exists() {
                return p;
            }
            i += 1;
        }
    }
}

impl BufferedOutput for FileOutput {
    fn formatted_to_msgpack(&self) -> bool {
        false
    }

    fn format(&self, tag: &str, es: &EventStream, out: &mut Vec<u8>) {
        match &self.inject {
            None => {
                for e in es.iter() {
                    self.formatter.format(tag, e.time, &e.record, out);
                }
            }
            Some(inj) => {
                for e in es.iter() {
                    let mut r = e.record.clone();
                    inj.apply(tag, e.time, &mut r);
                    self.formatter.format(tag, e.time, &r, out);
                }
            }
        }
    }

    fn configure_buffer(&mut self, p: &Placeholders, as_secondary: bool) -> Result<(), String> {
        if self.path.contains('*') && p.configured_timekey.is_none() {
            return Err("path including '*' must be used with buffer chunk key 'time'".into());
        }
        self.template = path_template(
            &self.path,
            p.configured_timekey,
            self.append,
            self.gzip,
            &self.path_suffix,
        );
        if as_secondary {
            if self.symlink_path.is_some() {
                return Err("symlink_path option is unavailable in <secondary>: consider to use secondary_file plugin".into());
            }
            let only_time = Placeholders {
                tag: false,
                keys: Vec::new(),
                ..p.clone()
            };
            if let Err(e) = only_time.validate("path", &self.template) {
                if e.contains("timestamp") {
                    return Err(e);
                }
            }
        } else {
            p.validate("path", &self.template)?;
            let test = p.expand(&self.template, &Metadata::default(), "");
            if !writable(Path::new(&test)) {
                return Err(format!("out_file: `{test}` is not writable"));
            }
        }
        self.placeholders = p.clone();
        Ok(())
    }

    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        self.write_from(chunk, &mut chunk.data.as_slice())
    }

    fn write_streamed(
        &self,
        chunk: &Chunk,
        data: &mut dyn std::io::Read,
    ) -> Option<Result<(), WriteError>> {
        Some(self.write_from(chunk, data))
    }

    fn chunk_created(&self, metadata: &Metadata, path: Option<&Path>) {
        let (Some(link), Some(target)) = (&self.symlink_path, path) else {
            return;
        };
        let link = PathBuf::from(self.placeholders.expand(link, metadata, ""));
        let target = if self.symlink_relative {
            relative_path(link.parent().unwrap_or(Path::new(".")), target)
        } else {
            target.to_path_buf()
        };
        let tmp = link.with_extension(format!("tmp{}", std::process::id()));
        let res = (|| {
            if let Some(d) = link.parent() {
                if !d.as_os_str().is_empty() {
                    std::fs::create_dir_all(d)?;
                }
            }
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&target, &tmp)?;
            std::fs::rename(&tmp, &link)
        })();
        if let Err(e) = res {
            tracing::warn!("failed to create symlink {}: {e}", link.display());
        }
    }
}

fn build_output(elem: &Element, ctx: &PluginContext) -> Result<(FileOutput, String), ConfigError> {
    let c: FileConf = ctx.configure(elem, "file")?;
    if c.compress == FileCompress::Zstd {
        return Err(elem.error("compress zstd is not supported by ferrentd; use gzip"));
    }
    // Fluentd's out_file warns once for either key, naming `utc` when both are set.
    if let Some(p) = ["utc", "localtime"].into_iter().find(|p| elem.has(p)) {
        tracing::warn!("'{p}' is deprecated for output plugin. This parameter is used for formatter plugin in compatibility layer. If you want to use same feature, use timekey_use_utc parameter in <buffer> directive instead");
    }
    let inject = Inject::from_owner(elem, ctx)?;
    let formatter = super::new_formatter(&format_element(elem, "out_file"), ctx)?;
    let suffix = if c.add_path_suffix {
        c.path_suffix.clone().unwrap_or_else(|| ".log".to_string())
    } else {
        String::new()
    };
    Ok((
        FileOutput {
            path: c.path.clone(),
            path_suffix: suffix,
            append: c.append,
            gzip: matches!(c.compress, FileCompress::Gz | FileCompress::Gzip),
            symlink_path: c.symlink_path,
            symlink_relative: c.symlink_path_use_relative,
            formatter,
            inject,
            template: String::new(),
            placeholders: Placeholders::default(),
            lock: Mutex::new(()),
        },
        c.path,
    ))
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let (out, path) = build_output(elem, ctx)?;
    if out.symlink_path.is_some()
        && elem
            .child("buffer")
            .and_then(|b| b.plugin_type())
            .is_some_and(|t| t != "file")
    {
        tracing::warn!(
            "symlink_path is set but the buffer is not a file buffer: no symlink is made"
        );
    }
    crate::buffer::build(
        elem,
        ctx,
        out,
        BufferDefaults {
            buffer_type: "file",
            chunk_keys: &["time"],
            timekey: Some(86400),
            file_path: Some(path),
            required_chunk_key: None,
        },
    )
}

/// out_file as a `<secondary>`: writes the primary's chunk bytes as they are.
pub fn create_secondary(
    elem: &Element,
    ctx: &PluginContext,
) -> Result<Box<dyn BufferedOutput>, ConfigError> {
    let (out, _) = build_output(elem, ctx)?;
    Ok(Box::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventTime, Record, Value};

    #[test]
    fn naming_rules() {
        let d = Some(86400);
        assert_eq!(
            path_template("/x/file", d, false, false, ".log"),
            "/x/file.%Y%m%d_**.log"
        );
        assert_eq!(
            path_template("/x/file", d, true, false, ".log"),
            "/x/file.%Y%m%d.log"
        );
        assert_eq!(
            path_template("/x/file", d, true, true, ".log"),
            "/x/file.%Y%m%d.log.gz"
        );
        assert_eq!(
            path_template("/x/file.*.data", d, false, false, ".log"),
            "/x/file.%Y%m%d_**.data"
        );
        assert_eq!(
            path_template("/x/file.*.data", d, true, true, ".log"),
            "/x/file.%Y%m%d.data.gz"
        );
        assert_eq!(
            path_template("/x/${tag}/%Y-%m-%d/data", d, true, false, ".log"),
            "/x/${tag}/%Y-%m-%d/data.log"
        );
        assert_eq!(
            path_template("/x/app.%Y%m%d%H%M", Some(18000), true, false, ".log"),
            "/x/app.%Y%m%d%H%M.log"
        );
        assert_eq!(
            path_template("/x/f", Some(30), true, false, ""),
            "/x/f.%Y%m%d%H%M%S"
        );
        assert_eq!(
            path_template("/x/f", Some(600), true, false, ".log"),
            "/x/f.%Y%m%d%H%M.log"
        );
        assert_eq!(
            path_template("/x/f", Some(3600), true, false, ".log"),
            "/x/f.%Y%m%d%H.log"
        );
        assert_eq!(
            path_template("/x/f", None, false, false, ".log"),
            "/x/f_**.log"
        );
    }

    fn section(params: &[(&str, &str)]) -> Element {
        crate::plugins::formatter_json::test_util::section("match", params)
    }

    fn output(elem: &Element, keys: &[&str]) -> FileOutput {
        let ctx = PluginContext::for_tests();
        let (mut o, _) = build_output(elem, &ctx).unwrap();
        let names: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
        let k = crate::buffer::ChunkKeys::new(&names, Some(86400.0), true, None).unwrap();
        o.configure_buffer(&k.placeholders(), false).unwrap();
        o
    }

    fn chunk(meta: Metadata, data: &[u8]) -> Chunk {
        Chunk {
            unique_id: [1; 16],
            metadata: meta,
            records: 1,
            created: 0.0,
            data: data.to_vec(),
        }
    }

    #[test]
    fn writes_with_index_append_and_gzip() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("app").to_string_lossy().into_owned();
        let o = output(&section(&[("path", &base)]), &["time"]);
        let meta = Metadata {
            timekey: Some(1_699_920_000),
            ..Default::default()
        };
        o.write(&chunk(meta.clone(), b"a\n")).unwrap();
        o.write(&chunk(meta.clone(), b"b\n")).unwrap();
        assert_eq!(
            std::fs::read(format!("{base}.20231114_0.log")).unwrap(),
            b"a\n"
        );
        assert_eq!(
            std::fs::read(format!("{base}.20231114_1.log")).unwrap(),
            b"b\n"
        );

        let o = output(
            &section(&[("path", &base), ("append", "true"), ("compress", "gzip")]),
            &["time"],
        );
        o.write(&chunk(meta.clone(), b"c\n")).unwrap();
        o.write(&chunk(meta, b"d\n")).unwrap();
        let gz = std::fs::read(format!("{base}.20231114.log.gz")).unwrap();
        assert_eq!(crate::buffer::engine::gunzip(&gz).unwrap(), b"c\nd\n");
    }

    #[test]
    fn default_format_and_inject() {
        let mut e = section(&[("path", "/tmp/x")]);
        e.elements
            .push(crate::plugins::formatter_json::test_util::section(
                "inject",
                &[("tag_key", "tg")],
            ));
        let o = output(&e, &["time"]);
        let mut r = Record::new();
        r.insert("a", Value::Int(1));
        let es = EventStream::one(EventTime::new(1_699_999_200, 0), r);
        let mut out = Vec::new();
        o.format("t", &es, &mut out);
        let t = crate::timefmt::strftime(
            EventTime::new(1_699_999_200, 0),
            "%Y-%m-%dT%H:%M:%S%:z",
            &crate::timefmt::TimeZoneSpec::Local,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{t}\tt\t{{\"a\":1,\"tg\":\"t\"}}\n")
        );
    }

    #[test]
    fn config_errors_like_fluentd() {
        let ctx = PluginContext::for_tests();
        let mut e = section(&[("@type", "file"), ("path", "/tmp/o/${tag}")]);
        e.elements
            .push(crate::plugins::formatter_json::test_util::section(
                "buffer",
                &[("@type", "memory")],
            ));
        let err = create(&e, &ctx).err().unwrap();
        assert!(err.message.contains(
            "Parameter 'path: /tmp/o/${tag}.%Y%m%d_**.log' has tag placeholders, but chunk key 'tag' is not configured"
        ), "{}", err.message);
        let mut e = section(&[("@type", "file"), ("path", "/tmp/o/x")]);
        let mut b =
            crate::plugins::formatter_json::test_util::section("buffer", &[("@type", "memory")]);
        b.arg = "time".into();
        e.elements.push(b);
        assert!(create(&e, &ctx).is_ok());
    }

    #[test]
    fn relative_symlink_target() {
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/c/d.log")),
            PathBuf::from("../c/d.log")
        );
    }

    #[test]
    fn utc_and_localtime_warn_as_deprecated() {
        let warn = |p: &str| {
            format!("[warn]: '{p}' is deprecated for output plugin. This parameter is used for formatter plugin in compatibility layer. If you want to use same feature, use timekey_use_utc parameter in <buffer> directive instead")
        };
        let logs = |conf: &str| {
            let elem = crate::test_util::directive(&format!(
                "<match **>\n@type file\npath /tmp/ferrentd-utc-test/o\n{conf}</match>"
            ));
            crate::test_util::capture_logs(|| {
                build_output(&elem, &PluginContext::for_tests()).is_ok()
            })
        };
        // Flat, with no formatter section at all, as Fluentd does.
        let (ok, l) = logs("utc true\n");
        assert!(ok);
        assert_eq!(l.iter().filter(|x| x.contains("deprecated")).count(), 1);
        assert!(l.contains(&warn("utc")), "{l:?}");
        let (_, l) = logs("localtime false\nformat json\n");
        assert!(l.contains(&warn("localtime")), "{l:?}");
        let (_, l) = logs("<format>\n@type json\n</format>\n");
        assert!(!l.iter().any(|x| x.contains("deprecated")), "{l:?}");
    }
}
