//! The key space: fixed shards, each a map behind its own lock, so that
//! connections on different cores rarely wait for each other. Values are
//! strings, lists or hashes; keys may carry an expiry, which is enforced
//! lazily on access and by a periodic sweep over a per-shard index ordered
//! by expiry time. Memory use is accounted approximately (key and value
//! bytes plus a fixed overhead per entry and element) for `--maxmemory`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

const SHARDS: usize = 64;
/// Bookkeeping bytes counted per key and per list or hash element.
const ENTRY_OVERHEAD: usize = 64;
const ELEMENT_OVERHEAD: usize = 16;

pub enum Value {
    Str(Bytes),
    List(VecDeque<Bytes>),
    Hash(FastMap<Bytes, Bytes>),
}

impl Value {
    fn size(&self) -> usize {
        match self {
            Self::Str(s) => s.len(),
            Self::List(l) => l.iter().map(|e| e.len() + ELEMENT_OVERHEAD).sum(),
            Self::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + ELEMENT_OVERHEAD).sum(),
        }
    }
}

pub struct Entry {
    pub value: Value,
    /// Milliseconds on the store's clock after which the key is gone.
    pub expires_at: Option<u64>,
    size: usize,
}

#[derive(Default)]
struct Shard {
    map: FastMap<Bytes, Entry>,
    expiries: BTreeSet<(u64, Bytes)>,
}

pub struct Store {
    shards: Vec<Mutex<Shard>>,
    hasher: foldhash::fast::RandomState,
    used: AtomicI64,
    started: Instant,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: foldhash::fast::RandomState::default(),
            used: AtomicI64::new(0),
            started: Instant::now(),
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A poisoned shard only means a thread panicked mid-operation on plain
    // maps; the data is still consistent, so keep serving it.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Milliseconds since the store started: the clock expiries use.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Locks the shard of `key` for a series of operations on it.
    pub fn shard(&self, key: &[u8]) -> ShardGuard<'_> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        ShardGuard { shard: lock(&self.shards[index]), used: &self.used, now: self.now_ms() }
    }

    /// Approximate bytes held by keys and values.
    pub fn used_memory(&self) -> u64 {
        self.used.load(Ordering::Relaxed).max(0) as u64
    }

    /// Live keys and keys with an expiry.
    pub fn counts(&self) -> (usize, usize) {
        let now = self.now_ms();
        self.shards.iter().fold((0, 0), |(keys, expiring), shard| {
            let shard = lock(shard);
            let expired = shard.expiries.range(..(now + 1, Bytes::new())).count();
            (keys + shard.map.len() - expired, expiring + shard.expiries.len() - expired)
        })
    }

    pub fn flush(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.map.clear();
            shard.expiries.clear();
        }
        self.used.store(0, Ordering::Relaxed);
    }

    /// Removes every key whose expiry has passed; returns how many.
    pub fn sweep_expired(&self) -> usize {
        let now = self.now_ms();
        let mut removed = 0;
        for shard in &self.shards {
            let mut guard = ShardGuard { shard: lock(shard), used: &self.used, now };
            while let Some((at, key)) = guard.shard.expiries.first().cloned() {
                if at > now {
                    break;
                }
                guard.remove(&key);
                removed += 1;
            }
        }
        removed
    }
}

/// A locked shard with the time of the operation.
pub struct ShardGuard<'a> {
    shard: MutexGuard<'a, Shard>,
    used: &'a AtomicI64,
    pub now: u64,
}

impl ShardGuard<'_> {
    fn account(&self, delta: i64) {
        self.used.fetch_add(delta, Ordering::Relaxed);
    }

    /// The live entry of `key`; an expired one is removed first. One hash
    /// lookup either way.
    pub fn get(&mut self, key: &Bytes) -> Option<&mut Entry> {
        use std::collections::hash_map::Entry as Slot;
        let now = self.now;
        let used = self.used;
        let shard = &mut *self.shard;
        match shard.map.entry(key.clone()) {
            Slot::Vacant(_) => None,
            Slot::Occupied(slot) if slot.get().expires_at.is_some_and(|at| at <= now) => {
                let (key, entry) = slot.remove_entry();
                if let Some(at) = entry.expires_at {
                    shard.expiries.remove(&(at, key));
                }
                used.fetch_add(-(entry.size as i64), Ordering::Relaxed);
                None
            }
            Slot::Occupied(slot) => Some(slot.into_mut()),
        }
    }

    /// Stores `value` under `key` with the given expiry, replacing any value.
    /// An existing key is updated in place (no new key, no re-insert).
    pub fn set(&mut self, key: Bytes, value: Value, expires_at: Option<u64>) {
        let value = match value {
            Value::Str(s) => Value::Str(owned(&s)),
            other => other,
        };
        let size = key.len() + value.size() + ENTRY_OVERHEAD;
        if let Some(entry) = self.shard.map.get_mut(&key) {
            let old_expiry = std::mem::replace(&mut entry.expires_at, expires_at);
            let old_size = std::mem::replace(&mut entry.size, size);
            entry.value = value;
            if old_expiry != expires_at {
                if let Some(at) = old_expiry {
                    self.shard.expiries.remove(&(at, key.clone()));
                }
                if let Some(at) = expires_at {
                    self.shard.expiries.insert((at, owned(&key)));
                }
            }
            self.account(size as i64 - old_size as i64);
            return;
        }
        let key = owned(&key);
        self.account(size as i64);
        if let Some(at) = expires_at {
            self.shard.expiries.insert((at, key.clone()));
        }
        self.shard.map.insert(key, Entry { value, expires_at, size });
    }

    /// Replaces a string value in place, keeping its expiry.
    pub fn set_keep_ttl(&mut self, key: Bytes, value: Value) {
        let expires_at = self.get(&key).and_then(|e| e.expires_at);
        self.set(key, value, expires_at);
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.shard.map.remove(key)?;
        if let Some(at) = entry.expires_at {
            self.shard.expiries.remove(&(at, Bytes::copy_from_slice(key)));
        }
        self.account(-(entry.size as i64));
        Some(entry)
    }

    /// Sets or clears the expiry of a live key; false when there is none.
    pub fn set_expiry(&mut self, key: &Bytes, expires_at: Option<u64>) -> bool {
        let Some(entry) = self.get(key) else { return false };
        let old = std::mem::replace(&mut entry.expires_at, expires_at);
        let key = owned(key);
        if let Some(at) = old {
            self.shard.expiries.remove(&(at, key.clone()));
        }
        if let Some(at) = expires_at {
            self.shard.expiries.insert((at, key));
        }
        true
    }

    /// Adjusts the accounted size of a live key after an in-place change
    /// (list and hash commands), and removes it when it became empty.
    pub fn resized(&mut self, key: &[u8], delta: i64) {
        let mut empty = false;
        if let Some(entry) = self.shard.map.get_mut(key) {
            entry.size = (entry.size as i64 + delta).max(0) as usize;
            empty = match &entry.value {
                Value::List(l) => l.is_empty(),
                Value::Hash(h) => h.is_empty(),
                Value::Str(_) => false,
            };
        }
        self.account(delta);
        if empty {
            self.remove(key);
        }
    }
}

/// A copy with its own allocation. Request arguments are slices of the
/// connection's read buffer; storing them as they are would keep that whole
/// buffer alive for as long as the key lives.
pub fn owned(bytes: &Bytes) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// Accounted bytes of one list or hash element.
pub fn element_size(parts: &[&[u8]]) -> i64 {
    (parts.iter().map(|p| p.len()).sum::<usize>() + ELEMENT_OVERHEAD) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keys_vanish_on_access_and_in_the_sweep() {
        let store = Store::default();
        let now = store.now_ms();
        store.shard(b"a").set(Bytes::from("a"), Value::Str(Bytes::from("1")), Some(now));
        store.shard(b"b").set(Bytes::from("b"), Value::Str(Bytes::from("2")), Some(now));
        store.shard(b"c").set(Bytes::from("c"), Value::Str(Bytes::from("3")), None);
        assert!(store.shard(b"a").get(&Bytes::from("a")).is_none());
        assert_eq!(store.sweep_expired(), 1);
        assert_eq!(store.counts(), (1, 0));
        assert!(store.shard(b"c").get(&Bytes::from("c")).is_some());
    }

    #[test]
    fn memory_is_accounted_and_returned() {
        let store = Store::default();
        let mut shard = store.shard(b"k");
        shard.set(Bytes::from("k"), Value::Str(Bytes::from(vec![0; 1000])), None);
        drop(shard);
        assert!(store.used_memory() >= 1000);
        store.shard(b"k").remove(b"k");
        assert_eq!(store.used_memory(), 0);
    }
}
