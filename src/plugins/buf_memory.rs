//! `<buffer> @type memory`: chunks are byte vectors in the process. Not persistent, so
//! `flush_at_shutdown` defaults to true; defaults `chunk_limit_size` 8 MiB and
//! `total_limit_size` 512 MiB. The engine itself is `crate::buffer`.

use std::io;

use crate::buffer::store::{Backup, ChunkStore, Resumed, StoredChunk};
use crate::buffer::Metadata;

pub const DEFAULT_CHUNK_LIMIT_SIZE: u64 = 8 * 1024 * 1024;
pub const DEFAULT_TOTAL_LIMIT_SIZE: u64 = 512 * 1024 * 1024;

pub struct MemoryStore;

struct MemoryChunk {
    data: Vec<u8>,
}

impl StoredChunk for MemoryChunk {
    fn append(&mut self, data: &[u8], _records: u64) -> io::Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }
    fn enqueue(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn load(&mut self) -> io::Result<Vec<u8>> {
        Ok(std::mem::take(&mut self.data))
    }
    fn unload(&mut self, data: Vec<u8>) {
        self.data = data;
    }
    fn purge(&mut self) -> io::Result<()> {
        self.data = Vec::new();
        Ok(())
    }
}

impl ChunkStore for MemoryStore {
    fn persistent(&self) -> bool {
        false
    }
    fn resume(&self, _backup: &Backup) -> Vec<Resumed> {
        Vec::new()
    }
    fn create(
        &self,
        _id: [u8; 16],
        _metadata: &Metadata,
        _created: f64,
    ) -> io::Result<Box<dyn StoredChunk>> {
        Ok(Box::new(MemoryChunk { data: Vec::new() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_takes_and_unload_restores() {
        let mut c = MemoryStore
            .create([0; 16], &Metadata::default(), 0.0)
            .unwrap();
        c.append(b"ab", 1).unwrap();
        c.append(b"cd", 1).unwrap();
        let d = c.load().unwrap();
        assert_eq!(d, b"abcd");
        c.unload(d);
        assert_eq!(c.load().unwrap(), b"abcd");
        assert!(!MemoryStore.persistent());
    }
}
