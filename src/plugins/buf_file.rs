//! `<buffer> @type file`: each chunk is a file `PREFIX.b<hex id>SUFFIX` while staged and
//! `PREFIX.q<hex id>SUFFIX` once queued, next to `CHUNK.meta` in Fluentd's layout (`0xC1 0x00`,
//! u32 BE length, msgpack map `timekey, tag, variables, seq, id, s, c, m`), so that Fluentd and
//! ferrentd can take over each other's buffer directories.
//!
//! Durability: every append is written to the chunk file (and its meta rewritten) before
//! `emit` returns, so a killed process loses nothing it accepted; chunk and meta are
//! fdatasync'ed when the chunk is queued and at shutdown, and the directory is synced after
//! the rename, so an OS crash can only lose appends to a chunk that was still staged.
//!
//! Start-up: chunks found on disk are resumed (staged and queued alike are queued for
//! delivery); an unreadable or empty-queued chunk, or one whose meta is broken, is moved to the
//! backup directory with an error log, and the rest are delivered.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::buffer::config::BufferConf;
use crate::buffer::store::{hex_id, now_f64, Backup, ChunkStore, Resumed, StoredChunk};
use crate::buffer::Metadata;
use crate::event::msgpack::{write_str, Decoder};
use crate::event::{Record, Value};

pub const DEFAULT_CHUNK_LIMIT_SIZE: u64 = 256 * 1024 * 1024;
pub const DEFAULT_TOTAL_LIMIT_SIZE: u64 = 64 * 1024 * 1024 * 1024;

const META_HEADER: [u8; 2] = [0xc1, 0x00];

/// The configured store: `pattern` holds the `*` slot (`DIR/buffer.*.log`).
#[derive(Debug, Clone)]
pub struct FileStore {
    pub pattern: String,
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

impl FileStore {
    /// Resolves `path` as Fluentd's buf_file does (directory, `.*.` slot, `.*` suffix, or
    /// `PATH.*SUFFIX`).
    pub fn configure(
        conf: &BufferConf,
        default_path: Option<&str>,
        plugin_id: Option<&str>,
        root_dir: Option<&Path>,
    ) -> Result<FileStore, String> {
        let suffix = conf
            .path_suffix
            .clone()
            .unwrap_or_else(|| ".log".to_string());
        let path = match (&conf.path, plugin_id, root_dir) {
            (Some(p), _, _) => p.clone(),
            (None, Some(id), Some(root)) => root
                .join("worker0")
                .join(id)
                .join("buffer")
                .to_string_lossy()
                .into_owned(),
            (None, _, _) => match default_path {
                Some(p) => p.to_string(),
                None => {
                    return Err(
                        "buffer path is not configured. specify 'path' in <buffer>".to_string()
                    )
                }
            },
        };
        let p = Path::new(&path);
        let is_dir = p.is_dir();
        let pattern = if is_dir || (!p.exists() && !path.contains(".*")) {
            p.join(format!("buffer.*{suffix}"))
                .to_string_lossy()
                .into_owned()
        } else {
            let base = p
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            if base.contains(".*.") {
                path.clone()
            } else if base.ends_with(".*") {
                format!("{path}{suffix}")
            } else {
                format!("{path}.*{suffix}")
            }
        };
        Ok(FileStore {
            pattern,
            file_perm: octal(conf.file_permission.as_deref(), 0o644)?,
            dir_perm: octal(conf.dir_permission.as_deref(), 0o755)?,
        })
    }

    fn split_pattern(&self) -> (&str, &str) {
        match self.pattern.rfind(".*") {
            Some(i) => (&self.pattern[..i], &self.pattern[i + 2..]),
            None => (self.pattern.as_str(), ""),
        }
    }

    /// `PREFIX.b<hex>SUFFIX` / `PREFIX.q<hex>SUFFIX`.
    pub fn chunk_path(&self, state: char, id: &[u8; 16]) -> PathBuf {
        let (prefix, suffix) = self.split_pattern();
        PathBuf::from(format!("{prefix}.{state}{}{suffix}", hex_id(id)))
    }

    fn dir(&self) -> PathBuf {
        Path::new(&self.pattern)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    fn ensure_dir(&self) -> io::Result<()> {
        let d = self.dir();
        if !d.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(self.dir_perm)
                .create(&d)?;
        }
        Ok(())
    }

    /// `(state, id)` when `name` is one of this store's chunk files.
    fn parse_name(&self, path: &Path) -> Option<(char, [u8; 16])> {
        let (prefix, suffix) = self.split_pattern();
        let s = path.to_str()?;
        let mid = s.strip_prefix(prefix)?.strip_suffix(suffix)?;
        let mid = mid.strip_prefix('.')?;
        let state = mid.chars().next()?;
        if state != 'b' && state != 'q' {
            return None;
        }
        let hex = &mid[1..];
        if hex.is_empty() || hex.len() > 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut id = [0u8; 16];
        let padded = format!("{hex:0<32}");
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&padded[i * 2..i * 2 + 2], 16).ok()?;
        }
        Some((state, id))
    }
}

/// The contents of a `.meta` file.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkMeta {
    pub metadata: Metadata,
    pub id: [u8; 16],
    pub records: u64,
    pub created: i64,
    pub modified: f64,
}

/// Fluentd's `write_metadata`: header, length, then the map.
pub fn encode_meta(m: &ChunkMeta) -> Vec<u8> {
    use rmp::encode as enc;
    let mut b = Vec::with_capacity(128);
    let _ = enc::write_map_len(&mut b, 8);
    write_str(&mut b, b"timekey");
    match m.metadata.timekey {
        Some(t) => {
            let _ = enc::write_sint(&mut b, t);
        }
        None => {
            let _ = enc::write_nil(&mut b);
        }
    }
    write_str(&mut b, b"tag");
    match &m.metadata.tag {
        Some(t) => write_str(&mut b, t.as_bytes()),
        None => {
            let _ = enc::write_nil(&mut b);
        }
    }
    write_str(&mut b, b"variables");
    if m.metadata.variables.is_empty() {
        let _ = enc::write_nil(&mut b);
    } else {
        let _ = enc::write_map_len(&mut b, m.metadata.variables.len() as u32);
        for (k, v) in &m.metadata.variables {
            write_str(&mut b, k.as_bytes());
            write_str(&mut b, v.as_bytes());
        }
    }
    write_str(&mut b, b"seq");
    let _ = enc::write_uint(&mut b, 0);
    write_str(&mut b, b"id");
    let _ = enc::write_bin(&mut b, &m.id);
    write_str(&mut b, b"s");
    let _ = enc::write_uint(&mut b, m.records);
    write_str(&mut b, b"c");
    let _ = enc::write_sint(&mut b, m.created);
    write_str(&mut b, b"m");
    let _ = enc::write_f64(&mut b, m.modified);
    let mut out = Vec::with_capacity(b.len() + 6);
    out.extend_from_slice(&META_HEADER);
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(&b);
    out
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::UInt(u) => i64::try_from(*u).ok(),
        Value::Float(f) if f.is_finite() => Some(*f as i64),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Fluentd's `restore_metadata`: the new format, else a bare msgpack map (old format).
pub fn decode_meta(bin: &[u8]) -> Result<ChunkMeta, String> {
    let map_bytes = if bin.len() > 6 && bin[..2] == META_HEADER {
        let n = u32::from_be_bytes([bin[2], bin[3], bin[4], bin[5]]) as usize;
        bin.get(6..6 + n).ok_or("invalid meta data")?
    } else {
        bin
    };
    let rec: Record = match Decoder::new(map_bytes).read_value() {
        Ok(Value::Map(m)) => m,
        _ => return Err("invalid meta data".to_string()),
    };
    let id = match rec.get("id") {
        Some(Value::Bin(b)) | Some(Value::Str(b)) if b.len() == 16 => {
            let mut id = [0u8; 16];
            id.copy_from_slice(b);
            id
        }
        _ => return Err("invalid unique_id".to_string()),
    };
    let created = rec.get("c").and_then(as_i64).unwrap_or(0);
    if created <= 0 {
        return Err("invalid created_at".to_string());
    }
    let modified = rec.get("m").and_then(as_f64).unwrap_or(0.0);
    if modified < 1.0 {
        return Err("invalid modified_at".to_string());
    }
    let timekey = rec.get("timekey").and_then(as_i64);
    let tag = match rec.get("tag") {
        Some(Value::Str(s)) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    };
    let variables = match rec.get("variables") {
        Some(Value::Map(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(&v.to_ruby_s()).into_owned(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let records = rec.get("s").and_then(as_i64).unwrap_or(0).max(0) as u64;
    Ok(ChunkMeta {
        metadata: Metadata {
            timekey,
            tag,
            variables,
        },
        id,
        records,
        created,
        modified,
    })
}

fn meta_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(".meta");
    PathBuf::from(s)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

struct FileChunk {
    store: FileStore,
    path: PathBuf,
    file: Option<File>,
    meta_file: Option<File>,
    meta: ChunkMeta,
    queued: bool,
}

impl FileChunk {
    fn write_meta(&mut self) -> io::Result<()> {
        self.meta.modified = now_f64();
        let bin = encode_meta(&self.meta);
        if self.meta_file.is_none() {
            self.meta_file = Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(meta_path(&self.path))?,
            );
        }
        if let Some(f) = self.meta_file.as_mut() {
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&bin)?;
            f.set_len(bin.len() as u64)?;
        }
        Ok(())
    }
}

impl StoredChunk for FileChunk {
    fn append(&mut self, data: &[u8], records: u64) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(data)?;
        }
        self.meta.records += records;
        self.write_meta()
    }

    fn enqueue(&mut self) -> io::Result<()> {
        if self.queued {
            return Ok(());
        }
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        self.write_meta()?;
        if let Some(f) = &self.meta_file {
            f.sync_data()?;
        }
        let q = self.store.chunk_path('q', &self.meta.id);
        std::fs::rename(&self.path, &q)?;
        let _ = std::fs::rename(meta_path(&self.path), meta_path(&q));
        self.path = q;
        self.queued = true;
        // Appends are over: the handles are not needed any more.
        self.file = None;
        self.meta_file = None;
        sync_dir(&self.store.dir());
        Ok(())
    }

    fn load(&mut self) -> io::Result<Vec<u8>> {
        std::fs::read(&self.path)
    }

    fn purge(&mut self) -> io::Result<()> {
        self.file = None;
        self.meta_file = None;
        let _ = std::fs::remove_file(meta_path(&self.path));
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        if let Some(f) = &self.meta_file {
            f.sync_data()?;
        }
        Ok(())
    }
}

impl FileStore {
    /// Fluentd's `handle_broken_files`: back the file up, then delete it and its meta.
    fn broken(&self, path: &Path, id: &[u8; 16], mode: &str, err: &str, backup: &Backup) {
        backup.save_broken_file(path, id, mode, err);
        let _ = std::fs::remove_file(meta_path(path));
    }

    fn resume_one(
        &self,
        path: &Path,
        state: char,
        id: [u8; 16],
        backup: &Backup,
    ) -> Option<Resumed> {
        let mode = if state == 'b' { "staged" } else { "queued" };
        let size = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) => {
                self.broken(path, &id, mode, &e.to_string(), backup);
                return None;
            }
        };
        let mpath = meta_path(path);
        let meta = if mpath.exists() {
            match std::fs::read(&mpath)
                .map_err(|e| e.to_string())
                .and_then(|b| decode_meta(&b))
            {
                Ok(m) => Some(m),
                Err(e) => {
                    self.broken(
                        path,
                        &id,
                        mode,
                        &format!("{mode} meta file is broken. {e}"),
                        backup,
                    );
                    return None;
                }
            }
        } else {
            None
        };
        if size == 0 {
            if state == 'b' {
                tracing::info!("Deleting empty staged chunk file: {}", path.display());
                let _ = std::fs::remove_file(path);
                let _ = std::fs::remove_file(&mpath);
            } else {
                self.broken(path, &id, mode, "enqueued file chunk is empty", backup);
            }
            return None;
        }
        let mtime = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
            .unwrap_or_else(now_f64);
        let meta = meta.unwrap_or(ChunkMeta {
            metadata: Metadata::default(),
            id,
            records: 0,
            created: mtime as i64,
            modified: mtime,
        });
        tracing::debug!("restoring buffer file: path = {}", path.display());
        Some(Resumed {
            unique_id: meta.id,
            metadata: meta.metadata.clone(),
            records: meta.records,
            bytes: size,
            created: meta.created as f64,
            modified: meta.modified,
            queued: state == 'q',
            chunk: Box::new(FileChunk {
                store: self.clone(),
                path: path.to_path_buf(),
                file: None,
                meta_file: None,
                meta,
                queued: state == 'q',
            }),
        })
    }
}

impl ChunkStore for FileStore {
    fn persistent(&self) -> bool {
        true
    }

    fn resume(&self, backup: &Backup) -> Vec<Resumed> {
        let dir = self.dir();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let mut out = Vec::new();
        let mut broken = false;
        for p in paths {
            if !p.is_file() || p.extension().is_some_and(|e| e == "meta") {
                continue;
            }
            let Some((state, id)) = self.parse_name(&p) else {
                continue;
            };
            match self.resume_one(&p, state, id, backup) {
                Some(r) => out.push(r),
                None => broken |= p.exists() || !meta_path(&p).exists(),
            }
        }
        if broken && !out.is_empty() {
            tracing::info!("Since a broken chunk file was found, it is possible that other files remaining at the time of resuming were also broken. Here is the list of the files.");
            for r in &out {
                if let Some(p) = r.chunk.path() {
                    tracing::info!(
                        "  {}: created_at={} modified_at={}",
                        p.display(),
                        r.created,
                        r.modified
                    );
                }
            }
        }
        out
    }

    fn create(
        &self,
        unique_id: [u8; 16],
        metadata: &Metadata,
        created: f64,
    ) -> io::Result<Box<dyn StoredChunk>> {
        self.ensure_dir()?;
        let path = self.chunk_path('b', &unique_id);
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(self.file_perm)
            .open(&path)?;
        let mut c = FileChunk {
            store: self.clone(),
            path,
            file: Some(file),
            meta_file: None,
            meta: ChunkMeta {
                metadata: metadata.clone(),
                id: unique_id,
                records: 0,
                created: created as i64,
                modified: created,
            },
            queued: false,
        };
        c.write_meta()?;
        Ok(Box::new(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(path: Option<&str>) -> BufferConf {
        let params: Vec<(&str, &str)> = path.map(|p| ("path", p)).into_iter().collect();
        let e = crate::plugins::formatter_json::test_util::section("buffer", &params);
        crate::plugins::PluginContext::for_tests()
            .configure(&e, "buffer")
            .unwrap()
    }

    #[test]
    fn meta_round_trip_and_exact_bytes() {
        let m = ChunkMeta {
            metadata: Metadata {
                timekey: Some(1_700_000_000),
                tag: Some("app".into()),
                variables: vec![("k".into(), "v".into())],
            },
            id: [7; 16],
            records: 3,
            created: 1_700_000_001,
            modified: 1_700_000_002.5,
        };
        let bin = encode_meta(&m);
        assert_eq!(&bin[..2], &[0xc1, 0x00]);
        let n = u32::from_be_bytes([bin[2], bin[3], bin[4], bin[5]]) as usize;
        assert_eq!(n, bin.len() - 6);
        // map of 8, first key "timekey".
        assert_eq!(&bin[6..15], b"\x88\xa7timekey");
        assert_eq!(decode_meta(&bin).unwrap(), m);
        // Old format: the bare map.
        assert_eq!(decode_meta(&bin[6..]).unwrap(), m);
        let none = ChunkMeta {
            metadata: Metadata::default(),
            ..m.clone()
        };
        assert_eq!(decode_meta(&encode_meta(&none)).unwrap(), none);
    }

    #[test]
    fn broken_meta_is_reported() {
        assert_eq!(
            decode_meta(b"\xc1\x00\x00\x00\x00\x05abc").unwrap_err(),
            "invalid meta data"
        );
        assert_eq!(decode_meta(b"\x80").unwrap_err(), "invalid unique_id");
    }

    #[test]
    fn path_rules() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_string_lossy().into_owned();
        let s = FileStore::configure(&conf(Some(&dir)), None, None, None).unwrap();
        assert_eq!(s.pattern, format!("{dir}/buffer.*.log"));
        let s = FileStore::configure(&conf(Some(&format!("{dir}/new"))), None, None, None).unwrap();
        assert_eq!(s.pattern, format!("{dir}/new/buffer.*.log"));
        let s =
            FileStore::configure(&conf(Some(&format!("{dir}/x.*.buf"))), None, None, None).unwrap();
        assert_eq!(s.pattern, format!("{dir}/x.*.buf"));
        let s = FileStore::configure(&conf(Some(&format!("{dir}/x.*"))), None, None, None).unwrap();
        assert_eq!(s.pattern, format!("{dir}/x.*.log"));
        std::fs::write(format!("{dir}/file"), b"").unwrap();
        let s =
            FileStore::configure(&conf(Some(&format!("{dir}/file"))), None, None, None).unwrap();
        assert_eq!(s.pattern, format!("{dir}/file.*.log"));
        let s =
            FileStore::configure(&conf(None), None, Some("out1"), Some(Path::new("/r"))).unwrap();
        assert_eq!(s.pattern, "/r/worker0/out1/buffer/buffer.*.log");
        assert_eq!(
            FileStore::configure(&conf(None), None, None, None).unwrap_err(),
            "buffer path is not configured. specify 'path' in <buffer>"
        );
        let id = [0xab; 16];
        assert_eq!(
            s.chunk_path('b', &id),
            PathBuf::from(format!(
                "/r/worker0/out1/buffer/buffer.b{}.log",
                hex_id(&id)
            ))
        );
        assert_eq!(s.parse_name(&s.chunk_path('q', &id)), Some(('q', id)));
        assert_eq!(
            s.parse_name(Path::new("/r/worker0/out1/buffer/buffer.x.log")),
            None
        );
    }

    #[test]
    fn create_append_enqueue_resume_purge() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_string_lossy().into_owned();
        let s = FileStore::configure(&conf(Some(&dir)), None, None, None).unwrap();
        let meta = Metadata {
            tag: Some("t".into()),
            ..Default::default()
        };
        let mut a = s.create([1; 16], &meta, 1_700_000_000.0).unwrap();
        a.append(b"one\n", 1).unwrap();
        a.append(b"two\n", 1).unwrap();
        let mut b = s.create([2; 16], &meta, 1_700_000_000.0).unwrap();
        b.append(b"three\n", 1).unwrap();
        b.enqueue().unwrap();
        assert!(b.path().unwrap().to_string_lossy().contains(".q0202"));
        drop(a);
        drop(b);
        let backup = Backup::new(Some(d.path()), "x", false);
        let mut r = s.resume(&backup);
        r.sort_by_key(|r| r.unique_id);
        assert_eq!(r.len(), 2);
        assert!(!r[0].queued && r[1].queued);
        assert_eq!((r[0].records, r[0].bytes), (2, 8));
        assert_eq!(r[0].metadata, meta);
        assert_eq!(r[0].chunk.load().unwrap(), b"one\ntwo\n");
        for x in &mut r {
            x.chunk.purge().unwrap();
        }
        assert!(s.resume(&backup).is_empty());
    }

    #[test]
    fn broken_meta_moves_chunk_to_backup() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("buf").to_string_lossy().into_owned();
        let s = FileStore::configure(&conf(Some(&dir)), None, None, None).unwrap();
        let mut a = s
            .create([1; 16], &Metadata::default(), 1_700_000_000.0)
            .unwrap();
        a.append(b"bad\n", 1).unwrap();
        let mut b = s
            .create([2; 16], &Metadata::default(), 1_700_000_000.0)
            .unwrap();
        b.append(b"good\n", 1).unwrap();
        let p = a.path().unwrap().to_path_buf();
        drop(a);
        drop(b);
        std::fs::write(meta_path(&p), b"\xc1\x00\x00\x00\x00\x09garbage").unwrap();
        let backup = Backup::new(Some(d.path()), "out", false);
        let r = s.resume(&backup);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].unique_id, [2; 16]);
        assert!(!p.exists());
        let saved = backup.dir.join(format!("{}.log", hex_id(&[1; 16])));
        assert_eq!(std::fs::read(saved).unwrap(), b"bad\n");
    }
}
