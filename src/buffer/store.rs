//! Chunk storage behind the engine: `<buffer> @type memory` (`plugins::buf_memory`) and
//! `@type file` (`plugins::buf_file`). The engine owns the bookkeeping (sizes, queue order,
//! limits); a store only keeps bytes and, when persistent, the chunk's metadata.

use std::io;
use std::path::{Path, PathBuf};

use super::Metadata;

/// One chunk's storage.
pub trait StoredChunk: Send {
    /// Appends bytes (already compressed when `compress gzip`) holding `records` events.
    fn append(&mut self, data: &[u8], records: u64) -> io::Result<()>;
    /// Staged → queued (buf_file renames `.b` to `.q` and makes the chunk durable).
    fn enqueue(&mut self) -> io::Result<()>;
    /// The stored bytes, for a write attempt.
    fn load(&mut self) -> io::Result<Vec<u8>>;
    /// Gives back what `load` returned after a failed attempt.
    fn unload(&mut self, _data: Vec<u8>) {}
    /// Deletes the chunk.
    fn purge(&mut self) -> io::Result<()>;
    /// The chunk file, for persistent stores.
    fn path(&self) -> Option<&Path> {
        None
    }
    /// Makes appended data durable (shutdown of a persistent buffer).
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A chunk found at start-up.
pub struct Resumed {
    pub chunk: Box<dyn StoredChunk>,
    pub unique_id: [u8; 16],
    pub metadata: Metadata,
    pub records: u64,
    pub bytes: u64,
    pub created: f64,
    pub modified: f64,
    pub queued: bool,
}

/// A chunk store, one per output.
pub trait ChunkStore: Send + Sync {
    /// Chunks survive a restart (buf_file): `flush_at_shutdown` defaults to false.
    fn persistent(&self) -> bool;
    /// Chunks left by a previous run; broken ones are moved aside by the store.
    fn resume(&self, backup: &Backup) -> Vec<Resumed>;
    fn create(
        &self,
        unique_id: [u8; 16],
        metadata: &Metadata,
        created: f64,
    ) -> io::Result<Box<dyn StoredChunk>>;
    /// Takes back the bytes of a chunk that was written, for a later chunk to reuse.
    fn recycle(&self, _data: Vec<u8>) {}
    /// Told once whether the output's chunks hold msgpack (buf_file_single's `chunk_format
    /// auto`).
    fn owner_formats_msgpack(&mut self, _msgpack: bool) {}
}

/// Where unrecoverable chunks go: `ROOT/backup/worker0/PLUGIN_ID/CHUNKID.log`.
#[derive(Clone, Debug)]
pub struct Backup {
    pub dir: PathBuf,
    pub disabled: bool,
}

impl Backup {
    pub fn new(root_dir: Option<&Path>, plugin_id: &str, disabled: bool) -> Backup {
        let base = root_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/tmp/fluent"));
        let safe: String = plugin_id
            .chars()
            .map(|c| if " \"/\\:;|*<>?".contains(c) { '_' } else { c })
            .collect();
        Backup {
            dir: base.join("backup").join("worker0").join(safe),
            disabled,
        }
    }

    /// Saves a chunk's bytes, logging where (Fluentd's `Buffer#backup`). Returns whether the
    /// bytes were kept.
    /// Fluentd's `handle_broken_files` for one chunk file: back it up, then delete it.
    pub fn save_broken_file(&self, path: &Path, id: &[u8; 16], mode: &str, err: &str) {
        tracing::error!(
            "found broken chunk file during resume. path=\"{}\" mode=:{mode} err_msg=\"{err}\"",
            path.display()
        );
        match std::fs::read(path) {
            Ok(data) => {
                self.save(id, &data);
            }
            Err(e) => tracing::error!("backup failed. Delete corresponding files. err_msg=\"{e}\""),
        }
        let _ = std::fs::remove_file(path);
    }

    pub fn save(&self, unique_id: &[u8; 16], data: &[u8]) -> bool {
        let hex = hex_id(unique_id);
        if self.disabled {
            tracing::warn!("disable_chunk_backup is true. {hex} chunk is thrown away");
            return false;
        }
        let file = self.dir.join(format!("{hex}.log"));
        tracing::warn!("bad chunk is moved to {}", file.display());
        let res = std::fs::create_dir_all(&self.dir).and_then(|_| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)?;
            f.write_all(data)?;
            f.sync_data()
        });
        match res {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    "backup failed. chunk {hex} ({} bytes) is lost: {e}",
                    data.len()
                );
                false
            }
        }
    }
}

pub fn hex_id(id: &[u8; 16]) -> String {
    use std::fmt::Write;
    id.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Fluentd's `generate_unique_id`: (µs since the epoch << 12 | 12 random bits) as two u32,
/// then two random u32, all big-endian.
pub fn generate_unique_id() -> [u8; 16] {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let us = now.as_secs() as u128 * 1_000_000 + now.subsec_micros() as u128;
    let u1 = ((us << 12) | (rand::random::<u16>() as u128 & 0xfff)) as u64;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&u1.to_be_bytes());
    id[8..12].copy_from_slice(&rand::random::<u32>().to_be_bytes());
    id[12..].copy_from_slice(&rand::random::<u32>().to_be_bytes());
    id
}

pub fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_path_is_fluentds() {
        let b = Backup::new(Some(Path::new("/r")), "out:a b", false);
        assert_eq!(b.dir, PathBuf::from("/r/backup/worker0/out_a_b"));
        let b = Backup::new(None, "x", true);
        assert_eq!(b.dir, PathBuf::from("/tmp/fluent/backup/worker0/x"));
    }

    #[test]
    fn unique_ids_differ_and_start_with_time() {
        let a = generate_unique_id();
        let b = generate_unique_id();
        assert_ne!(a, b);
        let us = u64::from_be_bytes(a[..8].try_into().unwrap()) >> 12;
        assert!(us > 1_600_000_000_000_000);
        assert_eq!(hex_id(&[0xab; 16]).len(), 32);
    }
}
