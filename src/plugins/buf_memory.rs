//! `<buffer> @type memory`: chunks are byte vectors in the process. Not persistent, so
//! `flush_at_shutdown` defaults to true; defaults `chunk_limit_size` 8 MiB and
//! `total_limit_size` 512 MiB. The engine itself is `crate::buffer`.

use std::io;

use parking_lot::Mutex;

use crate::buffer::store::{Backup, ChunkStore, Resumed, StoredChunk};
use crate::buffer::Metadata;

pub const DEFAULT_CHUNK_LIMIT_SIZE: u64 = 8 * 1024 * 1024;
pub const DEFAULT_TOTAL_LIMIT_SIZE: u64 = 512 * 1024 * 1024;

/// Keeps the bytes of one written chunk for the next chunk: a full chunk is megabytes, and
/// allocating it afresh each time costs page faults and the copies of a growing vector.
#[derive(Default)]
pub struct MemoryStore {
    spare: Mutex<Option<Vec<u8>>>,
}

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
        let data = self.spare.lock().take().unwrap_or_default();
        Ok(Box::new(MemoryChunk { data }))
    }

    fn recycle(&self, mut data: Vec<u8>) {
        data.clear();
        let mut spare = self.spare.lock();
        if spare
            .as_ref()
            .is_none_or(|s| s.capacity() < data.capacity())
        {
            *spare = Some(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_takes_and_unload_restores() {
        let store = MemoryStore::default();
        let mut c = store.create([0; 16], &Metadata::default(), 0.0).unwrap();
        c.append(b"ab", 1).unwrap();
        c.append(b"cd", 1).unwrap();
        let d = c.load().unwrap();
        assert_eq!(d, b"abcd");
        c.unload(d);
        assert_eq!(c.load().unwrap(), b"abcd");
        assert!(!store.persistent());
    }

    #[test]
    fn a_written_chunk_s_bytes_are_reused_empty() {
        let store = MemoryStore::default();
        let mut c = store.create([0; 16], &Metadata::default(), 0.0).unwrap();
        c.append(&[7; 1000], 1).unwrap();
        let data = c.load().unwrap();
        let cap = data.capacity();
        store.recycle(data);
        let mut next = store.create([1; 16], &Metadata::default(), 0.0).unwrap();
        let reused = next.load().unwrap();
        assert!(reused.is_empty());
        assert_eq!(reused.capacity(), cap);
    }
}
