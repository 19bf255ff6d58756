//! The pos file, in Fluentd's format, so a node can switch between Fluentd and ferrentd.

use super::*;

/// Fluentd's pos file: one fixed-width line per file, updated in place.
pub struct PosFile {
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) follow_inodes: bool,
    /// key (path, or inode with follow_inodes) → where its line is and what it holds.
    pub(super) entries: HashMap<String, PosEntry>,
    pub(super) len: u64,
}

#[derive(Clone, Copy)]
pub(super) struct PosEntry {
    /// Byte offset of the position field in the file.
    pub(super) seek: u64,
    pub(super) pos: u64,
    pub(super) inode: u64,
}

pub const UNWATCHED: u64 = u64::MAX;

/// What a pos file holds: path (or inode key) → (position, inode).
pub type SavedPositions = HashMap<String, (u64, u64)>;

/// One pos file line as Fluentd's `/^([^\t]+)\t([0-9a-fA-F]+)\t([0-9a-fA-F]+)/` reads it.
pub fn parse_pos_line(line: &[u8]) -> Option<(String, u64, u64)> {
    let tab = memchr::memchr(b'\t', line)?;
    if tab == 0 {
        return None;
    }
    let path = std::str::from_utf8(&line[..tab]).ok()?;
    let hex = |s: &[u8]| -> Option<(u64, usize)> {
        let n = s.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if n == 0 {
            return None;
        }
        let digits = std::str::from_utf8(&s[..n]).ok()?;
        Some((u64::from_str_radix(digits, 16).ok()?, n))
    };
    let rest = &line[tab + 1..];
    let (pos, n) = hex(rest)?;
    let rest = rest.get(n..)?.strip_prefix(b"\t")?;
    let (ino, _) = hex(rest)?;
    Some((path.to_string(), pos, ino))
}

pub(super) fn pos_key(follow_inodes: bool, path: &str, inode: u64) -> String {
    if follow_inodes {
        inode.to_string()
    } else {
        path.to_string()
    }
}

impl PosFile {
    /// Opens (creating) and compacts the pos file: unparsable and unwatched lines dropped, the
    /// last of duplicated keys kept. Returns the file and the loaded `key → (pos, inode)` map.
    pub fn open(path: &Path, follow_inodes: bool) -> std::io::Result<(PosFile, SavedPositions)> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut pf = PosFile {
            file,
            path: path.to_path_buf(),
            follow_inodes,
            entries: HashMap::new(),
            len: 0,
        };
        pf.compact()?;
        let loaded = pf
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), (e.pos, e.inode)))
            .collect();
        Ok((pf, loaded))
    }

    /// Rewrites the file in place without unwatched, unparsable and superseded lines.
    pub fn compact(&mut self) -> std::io::Result<()> {
        let mut text = Vec::new();
        (&self.file).seek(SeekFrom::Start(0))?;
        (&self.file).read_to_end(&mut text)?;
        let mut order: Vec<String> = Vec::new();
        let mut kept: HashMap<String, (String, u64, u64)> = HashMap::new();
        for line in text.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let Some((p, pos, ino)) = parse_pos_line(line) else {
                tracing::warn!(
                    "Unparsable line in pos_file: {}",
                    String::from_utf8_lossy(line)
                );
                continue;
            };
            if pos == UNWATCHED {
                tracing::debug!("Remove unwatched line from pos_file: {p}");
                continue;
            }
            let key = pos_key(self.follow_inodes, &p, ino);
            if let Some(old) = kept.get(&key) {
                tracing::warn!(
                    "{} already exists. use latest one: deleted {}\t{:016x}\t{:016x}",
                    p,
                    old.0,
                    old.1,
                    old.2
                );
                order.retain(|k| *k != key);
            }
            order.push(key.clone());
            kept.insert(key, (p, pos, ino));
        }
        let mut body = Vec::new();
        self.entries.clear();
        for key in order {
            if let Some((p, pos, ino)) = kept.remove(&key) {
                let seek = body.len() as u64 + p.len() as u64 + 1;
                body.extend_from_slice(format!("{p}\t{pos:016x}\t{ino:016x}\n").as_bytes());
                self.entries.insert(
                    key,
                    PosEntry {
                        seek,
                        pos,
                        inode: ino,
                    },
                );
            }
        }
        self.replace_with(&body)?;
        self.len = body.len() as u64;
        Ok(())
    }

    /// Puts `body` in place of the file's content: written to a temporary file beside it and
    /// renamed over it, so a crash leaves the old or the new positions, never a torn file. Where
    /// the directory is not writable, the file is rewritten in place (as Fluentd always does).
    pub(super) fn replace_with(&mut self, body: &[u8]) -> std::io::Result<()> {
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".compact{}", std::process::id()));
        let tmp = self.path.with_file_name(tmp_name);
        let replaced = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            if let Ok(meta) = self.file.metadata() {
                let _ = f.set_permissions(meta.permissions());
            }
            std::io::Write::write_all(&mut f, body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
        })();
        match replaced {
            Ok(file) => {
                self.file = file;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::debug!("pos_file {}: rewriting in place ({e})", self.path.display());
                self.file.set_len(0)?;
                self.file.write_all_at(body, 0)
            }
        }
    }

    /// The position and inode recorded for `key`.
    pub(super) fn get(&self, key: &str) -> Option<(u64, u64)> {
        self.entries.get(key).map(|e| (e.pos, e.inode))
    }

    /// Writes `pos` and `inode` for `key` (whose file is `path`), appending an entry when there
    /// is none.
    pub fn update(&mut self, key: &str, path: &str, pos: u64, inode: u64) -> std::io::Result<()> {
        match self.entries.get_mut(key) {
            Some(e) => {
                if e.pos == pos && e.inode == inode {
                    return Ok(());
                }
                e.pos = pos;
                e.inode = inode;
                let text = format!("{pos:016x}\t{inode:016x}");
                self.file.write_all_at(text.as_bytes(), e.seek)
            }
            None => {
                let line = format!("{path}\t{pos:016x}\t{inode:016x}\n");
                self.file.write_all_at(line.as_bytes(), self.len)?;
                self.entries.insert(
                    key.to_string(),
                    PosEntry {
                        seek: self.len + path.len() as u64 + 1,
                        pos,
                        inode,
                    },
                );
                self.len += line.len() as u64;
                Ok(())
            }
        }
    }
}
