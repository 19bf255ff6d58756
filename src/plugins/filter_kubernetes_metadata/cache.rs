//! A bounded LRU cache whose entries also expire a fixed time after they were stored (the
//! plugin's `LruRedux::TTL` caches: a read refreshes the LRU position, not the TTL).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

struct Slot<V> {
    value: V,
    stamp: u64,
    stored: Instant,
}

pub struct LruTtl<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Use stamp → key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    capacity: usize,
    ttl: Option<Duration>,
}

impl<K: Hash + Eq + Clone, V> LruTtl<K, V> {
    /// `ttl` None: entries leave only by LRU eviction.
    pub fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        LruTtl {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(1),
            ttl,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn expired(&self, stored: Instant, now: Instant) -> bool {
        matches!(self.ttl, Some(ttl) if now.saturating_duration_since(stored) >= ttl)
    }

    /// The live value for `key`, made the most recently used.
    pub fn get<Q>(&mut self, key: &Q, now: Instant) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (stamp, stored) = {
            let s = self.map.get(key)?;
            (s.stamp, s.stored)
        };
        if self.expired(stored, now) {
            if let Some(k) = self.order.remove(&stamp) {
                self.map.remove::<K>(&k);
            }
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        if let Some(k) = self.order.remove(&stamp) {
            self.order.insert(tick, k);
        }
        let slot = self.map.get_mut(key)?;
        slot.stamp = tick;
        Some(&slot.value)
    }

    /// Whether a live entry exists, without touching its LRU position.
    pub fn contains<Q>(&self, key: &Q, now: Instant) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .get(key)
            .is_some_and(|s| !self.expired(s.stored, now))
    }

    /// When the live entry for `key` expires (None: no TTL, or no such entry).
    pub fn expires<Q>(&self, key: &Q) -> Option<Instant>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let ttl = self.ttl?;
        self.map.get(key).map(|s| s.stored + ttl)
    }

    /// Stores `value` (a fresh TTL), evicting the least recently used entry when full.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(old) = self.map.get_mut(&key) {
            let old_stamp = old.stamp;
            old.value = value;
            old.stamp = tick;
            old.stored = now;
            if let Some(k) = self.order.remove(&old_stamp) {
                self.order.insert(tick, k);
            }
            return;
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_first() {
                Some((_, k)) => {
                    self.map.remove(&k);
                }
                None => break,
            }
        }
        self.order.insert(tick, key.clone());
        self.map.insert(
            key,
            Slot {
                value,
                stamp: tick,
                stored: now,
            },
        );
    }

    /// Replaces the value of an existing live entry (keeping its LRU position and TTL);
    /// false when there is none.
    pub fn update<Q>(&mut self, key: &Q, value: V) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.map.get_mut(key) {
            Some(slot) => {
                slot.value = value;
                true
            }
            None => false,
        }
    }

    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(slot) = self.map.remove(key) {
            self.order.remove(&slot.stamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let now = Instant::now();
        let mut c: LruTtl<String, i32> = LruTtl::new(2, None);
        c.insert("a".into(), 1, now);
        c.insert("b".into(), 2, now);
        assert_eq!(c.get("a", now), Some(&1));
        c.insert("c".into(), 3, now);
        assert_eq!(c.get("b", now), None);
        assert_eq!(c.get("a", now), Some(&1));
        assert_eq!(c.get("c", now), Some(&3));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn entries_expire_after_the_ttl_even_when_read() {
        let t0 = Instant::now();
        let mut c: LruTtl<String, i32> = LruTtl::new(10, Some(Duration::from_secs(5)));
        c.insert("a".into(), 1, t0);
        assert_eq!(c.get("a", t0 + Duration::from_secs(4)), Some(&1));
        assert_eq!(c.expires("a"), Some(t0 + Duration::from_secs(5)));
        assert_eq!(c.get("a", t0 + Duration::from_secs(5)), None);
        assert_eq!(c.len(), 0);
        assert!(!c.update("a", 2));
    }
}
