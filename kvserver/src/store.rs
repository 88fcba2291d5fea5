//! The key space: a fixed number of shards, each a map behind its own lock,
//! so connections on different cores rarely wait for each other.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use bytes::Bytes;

const SHARDS: usize = 64;

pub struct Store {
    shards: Vec<Mutex<HashMap<Bytes, Bytes>>>,
    hasher: RandomState,
}

impl Default for Store {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), hasher: RandomState::new() }
    }
}

impl Store {
    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, HashMap<Bytes, Bytes>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A poisoned shard only means another thread panicked mid-operation on
        // a plain map; its data is still consistent, so keep serving it.
        self.shards[index].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.shard(key).get(key).cloned()
    }

    /// Sets a value and returns the previous one.
    pub fn set(&self, key: Bytes, value: Bytes) -> Option<Bytes> {
        self.shard(&key).insert(key, value)
    }

    pub fn remove(&self, key: &[u8]) -> bool {
        self.shard(key).remove(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
