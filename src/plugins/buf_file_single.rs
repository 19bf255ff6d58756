//! `<buffer> @type file_single` (Fluentd's `buf_file_single.rb`): one file per chunk and no
//! `.meta` file. A chunk is `PATH/fsb.<key>.b<hex id>.buf` while staged and `.q<hex id>.buf`
//! once queued; `<key>` is the tag, or the one record chunk key, escaped as Fluentd does
//! (`%XX` for every byte outside `-_.a-zA-Z0-9`). On restart the key comes back from the file
//! name (the time slot does not: Fluentd does not keep it either) and, with
//! `calc_num_records`, the record count from the data (msgpack objects or lines, per
//! `chunk_format`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::buffer::config::BufferConf;
pub use crate::buffer::config::ChunkFormat;
use crate::buffer::keys::ChunkKeys;
use crate::buffer::store::{hex_id, Backup, ChunkStore, Resumed, StoredChunk};
use crate::buffer::Metadata;

pub const DEFAULT_CHUNK_LIMIT_SIZE: u64 = 256 * 1024 * 1024;
pub const DEFAULT_TOTAL_LIMIT_SIZE: u64 = 64 * 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct FileSingleStore {
    /// The directory holding the chunk files.
    pub dir: PathBuf,
    /// The record chunk key named in file names; None: the tag.
    key_in_path: Option<String>,
    calc_num_records: bool,
    chunk_format: ChunkFormat,
    gzip: bool,
    file_perm: u32,
    dir_perm: u32,
}

fn octal(s: Option<&str>, default: u32) -> Result<u32, String> {
    match s {
        None => Ok(default),
        Some(v) => {
            u32::from_str_radix(v.trim(), 8).map_err(|_| format!("invalid permission '{v}'"))
        }
    }
}

/// Fluentd's `escape_key`: every byte outside `-_.a-zA-Z0-9` as `%XX`.
pub fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `URI.unescape`: `%XX` back to its byte; anything else as it is.
pub fn unescape_key(key: &str) -> String {
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `(state, id, key)` of a chunk file name `fsb.<key>.<b|q><hex>.buf`.
pub fn parse_name(name: &str) -> Option<(char, [u8; 16], String)> {
    let mid = name.strip_prefix("fsb.")?.strip_suffix(".buf")?;
    let dot = mid.rfind('.')?;
    let (key, tail) = (&mid[..dot], &mid[dot + 1..]);
    let state = tail.chars().next()?;
    if state != 'b' && state != 'q' {
        return None;
    }
    let hex = &tail[1..];
    if hex.is_empty()
        || hex.len() > 32
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let padded = format!("{hex:0<32}");
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&padded[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some((state, id, unescape_key(key)))
}

impl FileSingleStore {
    /// Fluentd's `configure`: the path (or `ROOT/worker0/ID/buffer`), and the chunk keys a
    /// file name can carry: the tag or one record key.
    pub fn configure(
        conf: &BufferConf,
        keys: &ChunkKeys,
        default_path: Option<&str>,
        plugin_id: Option<&str>,
        root_dir: Option<&Path>,
    ) -> Result<FileSingleStore, String> {
        let key_in_path = if keys.keys.is_empty() {
            None
        } else if keys.tag {
            return Err("chunk keys must be tag or one field".to_string());
        } else if keys.keys.len() > 1 {
            return Err("2 or more chunk keys is not allowed".to_string());
        } else {
            Some(keys.keys[0].0.clone())
        };
        let dir = match (&conf.path, plugin_id, root_dir) {
            (Some(p), _, _) => PathBuf::from(p),
            (None, Some(id), Some(root)) => root.join("worker0").join(id).join("buffer"),
            (None, _, _) => match default_path {
                Some(p) => PathBuf::from(p),
                None => {
                    return Err(
                        "buffer path is not configured. specify 'path' in <buffer>".to_string()
                    )
                }
            },
        };
        Ok(FileSingleStore {
            dir,
            key_in_path,
            calc_num_records: conf.calc_num_records,
            chunk_format: conf.chunk_format,
            gzip: conf.compress == crate::buffer::config::Compress::Gzip,
            file_perm: octal(conf.file_permission.as_deref(), 0o644)?,
            dir_perm: octal(conf.dir_permission.as_deref(), 0o755)?,
        })
    }

    fn key_of(&self, m: &Metadata) -> String {
        let k = match &self.key_in_path {
            Some(name) => m
                .variables
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            None => m.tag.as_deref(),
        };
        k.unwrap_or("").to_string()
    }

    pub fn chunk_path(&self, state: char, key: &str, id: &[u8; 16]) -> PathBuf {
        self.dir
            .join(format!("fsb.{}.{state}{}.buf", escape_key(key), hex_id(id)))
    }

    fn ensure_dir(&self) -> io::Result<()> {
        if !self.dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(self.dir_perm)
                .create(&self.dir)?;
        }
        Ok(())
    }

    /// `restore_size`: msgpack objects or lines in the (decompressed) data.
    fn count_records(&self, path: &Path) -> io::Result<u64> {
        let raw = std::fs::read(path)?;
        let data = if self.gzip {
            let mut d = Vec::new();
            flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut d)?;
            d
        } else {
            raw
        };
        // `auto` is settled by `owner_formats_msgpack`; unsettled, the standard format.
        if self.chunk_format != ChunkFormat::Text {
            let mut dec = crate::event::msgpack::Decoder::new(&data);
            let mut n = 0u64;
            while dec.position() < data.len() {
                if dec.read_value().is_err() {
                    break;
                }
                n += 1;
            }
            Ok(n)
        } else {
            let lines = memchr::memchr_iter(b'\n', &data).count() as u64;
            Ok(lines + u64::from(!data.is_empty() && data.last() != Some(&b'\n')))
        }
    }

    /// Fluentd's `handle_broken_files`: back the file up, then delete it.
    fn broken(&self, path: &Path, id: &[u8; 16], mode: &str, err: &str, backup: &Backup) {
        backup.save_broken_file(path, id, mode, err);
    }

    fn resume_one(&self, path: &Path, backup: &Backup) -> Option<Resumed> {
        let name = path.file_name()?.to_str()?;
        let (state, id, key) = parse_name(name)?;
        let mode = if state == 'b' { "staged" } else { "queued" };
        let md = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.broken(path, &id, mode, &e.to_string(), backup);
                return None;
            }
        };
        if md.len() == 0 {
            let what = if state == 'b' { "staged" } else { "enqueued" };
            self.broken(
                path,
                &id,
                mode,
                &format!("{what} file chunk is empty"),
                backup,
            );
            return None;
        }
        let records = if self.calc_num_records {
            match self.count_records(path) {
                Ok(n) => n,
                Err(e) => {
                    self.broken(path, &id, mode, &e.to_string(), backup);
                    return None;
                }
            }
        } else {
            0
        };
        use std::os::unix::fs::MetadataExt;
        let created = md.ctime() as f64;
        let modified = md.mtime() as f64 + md.mtime_nsec() as f64 / 1e9;
        let metadata = match &self.key_in_path {
            Some(k) => Metadata {
                timekey: None,
                tag: None,
                variables: vec![(k.clone(), key)],
            },
            None => Metadata {
                timekey: None,
                tag: Some(key).filter(|k| !k.is_empty()),
                variables: Vec::new(),
            },
        };
        tracing::debug!("restoring buffer file: path = {}", path.display());
        Some(Resumed {
            unique_id: id,
            metadata,
            records,
            bytes: md.len(),
            created,
            modified,
            queued: state == 'q',
            chunk: Box::new(SingleChunk {
                dir: self.dir.clone(),
                path: path.to_path_buf(),
                file: None,
                id,
                queued: state == 'q',
            }),
        })
    }
}

struct SingleChunk {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    id: [u8; 16],
    queued: bool,
}

impl StoredChunk for SingleChunk {
    fn append(&mut self, data: &[u8], _records: u64) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        }
        match self.file.as_mut() {
            Some(f) => f.write_all(data),
            None => Ok(()),
        }
    }

    /// `.b<id>.` becomes `.q<id>.` (Fluentd's `generate_queued_chunk_path`).
    fn enqueue(&mut self) -> io::Result<()> {
        if self.queued {
            return Ok(());
        }
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        let hex = hex_id(&self.id);
        let s = self.path.to_string_lossy().into_owned();
        let staged = format!(".b{hex}.");
        let q = match s.rfind(&staged) {
            Some(i) => format!("{}.q{hex}.{}", &s[..i], &s[i + staged.len()..]),
            None => format!("{s}.q{hex}.chunk"),
        };
        std::fs::rename(&self.path, &q)?;
        self.path = PathBuf::from(q);
        self.queued = true;
        self.file = None;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn load(&mut self) -> io::Result<Vec<u8>> {
        std::fs::read(&self.path)
    }

    fn purge(&mut self) -> io::Result<()> {
        self.file = None;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn sync(&mut self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

impl ChunkStore for FileSingleStore {
    fn persistent(&self) -> bool {
        true
    }

    fn owner_formats_msgpack(&mut self, msgpack: bool) {
        if self.chunk_format == ChunkFormat::Auto {
            self.chunk_format = if msgpack {
                ChunkFormat::Msgpack
            } else {
                ChunkFormat::Text
            };
        }
    }

    fn resume(&self, backup: &Backup) -> Vec<Resumed> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        paths
            .iter()
            .filter(|p| p.is_file())
            .filter_map(|p| self.resume_one(p, backup))
            .collect()
    }

    fn create(
        &self,
        unique_id: [u8; 16],
        metadata: &Metadata,
        _created: f64,
    ) -> io::Result<Box<dyn StoredChunk>> {
        self.ensure_dir()?;
        let path = self.chunk_path('b', &self.key_of(metadata), &unique_id);
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(self.file_perm)
            .open(&path)?;
        Ok(Box::new(SingleChunk {
            dir: self.dir.clone(),
            path,
            file: Some(file),
            id: unique_id,
            queued: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(params: &[(&str, &str)], keys: &[&str]) -> Result<FileSingleStore, String> {
        let e = crate::plugins::formatter_json::test_util::section("buffer", params);
        let conf: BufferConf = crate::plugins::PluginContext::for_tests()
            .configure(&e, "buffer")
            .unwrap();
        let names: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
        let keys = ChunkKeys::new(&names, Some(60.0), false, None).unwrap();
        FileSingleStore::configure(&conf, &keys, None, None, None)
    }

    #[test]
    fn names_escape_and_parse_like_fluentd() {
        assert_eq!(escape_key("app.web-1_x"), "app.web-1_x");
        assert_eq!(escape_key("a b/c%é"), "a%20b%2Fc%25%C3%A9");
        assert_eq!(unescape_key("a%20b%2Fc%25%C3%A9"), "a b/c%é");
        let id = [0xab; 16];
        let name = format!("fsb.a%20b.q{}.buf", hex_id(&id));
        assert_eq!(parse_name(&name), Some(('q', id, "a b".to_string())));
        assert_eq!(parse_name("fsb..bff.buf").map(|x| x.2), Some(String::new()));
        assert_eq!(parse_name("fsb.t.x12.buf"), None);
        assert_eq!(parse_name("buffer.b12.log"), None);
    }

    #[test]
    fn chunk_keys_allowed_in_file_names() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_string_lossy().into_owned();
        assert!(store(&[("path", &p)], &["tag"]).is_ok());
        assert_eq!(
            store(&[("path", &p)], &["tag", "k"]).unwrap_err(),
            "chunk keys must be tag or one field"
        );
        assert_eq!(
            store(&[("path", &p)], &["a", "b"]).unwrap_err(),
            "2 or more chunk keys is not allowed"
        );
        assert_eq!(
            store(&[], &["tag"]).unwrap_err(),
            "buffer path is not configured. specify 'path' in <buffer>"
        );
    }

    #[test]
    fn create_enqueue_and_resume_with_counts() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fsb").to_string_lossy().into_owned();
        let mut s = store(&[("path", &p)], &["tag"]).unwrap();
        s.owner_formats_msgpack(true);
        let meta = Metadata {
            tag: Some("app.x y".into()),
            ..Default::default()
        };
        let mut data = Vec::new();
        let r = crate::test_util::json_record(r#"{"a":1}"#);
        crate::event::msgpack::write_entry(&mut data, crate::event::EventTime::new(1, 0), &r);
        crate::event::msgpack::write_entry(&mut data, crate::event::EventTime::new(2, 0), &r);
        let mut a = s.create([1; 16], &meta, 0.0).unwrap();
        a.append(&data, 2).unwrap();
        assert_eq!(
            a.path().unwrap().file_name().unwrap().to_string_lossy(),
            format!("fsb.app.x%20y.b{}.buf", hex_id(&[1; 16]))
        );
        let mut b = s.create([2; 16], &meta, 0.0).unwrap();
        b.append(&data[..data.len() / 2], 1).unwrap();
        b.enqueue().unwrap();
        assert_eq!(
            b.path().unwrap().file_name().unwrap().to_string_lossy(),
            format!("fsb.app.x%20y.q{}.buf", hex_id(&[2; 16]))
        );
        // An empty chunk is broken, as in Fluentd; an unrelated file is left alone.
        let _empty = s.create([3; 16], &meta, 0.0).unwrap();
        std::fs::write(d.path().join("fsb").join("other.txt"), b"x").unwrap();
        drop((a, b));
        let backup = Backup::new(Some(d.path()), "out", false);
        let mut r = s.resume(&backup);
        r.sort_by_key(|r| r.unique_id);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].records, r[0].queued), (2, false));
        assert_eq!((r[1].records, r[1].queued), (1, true));
        assert_eq!(r[0].metadata.tag.as_deref(), Some("app.x y"));
        assert_eq!(r[0].chunk.load().unwrap(), data);
        assert!(backup
            .dir
            .join(format!("{}.log", hex_id(&[3; 16])))
            .exists());
        assert!(d.path().join("fsb").join("other.txt").exists());
    }

    #[test]
    fn record_key_and_text_counting() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_string_lossy().into_owned();
        let mut s = store(&[("path", &p), ("chunk_format", "text")], &["host"]).unwrap();
        s.owner_formats_msgpack(true);
        let meta = Metadata {
            variables: vec![("host".into(), "h1".into())],
            ..Default::default()
        };
        let mut a = s.create([9; 16], &meta, 0.0).unwrap();
        a.append(b"one\ntwo\nthree", 3).unwrap();
        drop(a);
        let r = s.resume(&Backup::new(Some(d.path()), "out", false));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].records, 3);
        assert_eq!(r[0].metadata.variables, vec![("host".into(), "h1".into())]);
        let s = store(&[("path", &p), ("calc_num_records", "false")], &["host"]).unwrap();
        let r = s.resume(&Backup::new(Some(d.path()), "out", false));
        assert_eq!(r[0].records, 0);
    }
}
