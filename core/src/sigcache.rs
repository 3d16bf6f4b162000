//! [`SigCache`]: signatures already verified, so a block full of transactions the mempool
//! accepted connects without checking them again (Bitcoin Core's signature cache).
//!
//! An entry is the salted hash `SHA-256(salt ‖ sighash ‖ public key ‖ signature)`: it
//! commits to the message, the key and the signature together, so a cached entry can only
//! ever vouch for exactly the triple that was verified. The salt (random, chosen by the node
//! at start: this crate has no randomness) keeps peers from predicting entries, so they can
//! neither aim collisions at the cache nor degrade its hash table: keys are uniformly
//! distributed and their first bytes are the table hash.
//!
//! Bounded: at most `capacity` entries in all, in lock shards. Each shard keeps two
//! generations; when the current one fills half the shard's share, it becomes the previous
//! one and the old previous generation is dropped. Lookups consult both, so an entry
//! survives at least `capacity / 2` later insertions into its shard's share.

use crate::hash::Hash256;
use crate::keys::{PublicKeyBytes, SignatureBytes};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;

/// Default memory budget of the cache: 32 MiB, Bitcoin Core's default.
pub const DEFAULT_SIGCACHE_BYTES: usize = 32 << 20;

/// Estimated bytes per entry: the 32-byte key plus hash-table overhead (control byte, load
/// factor, power-of-two growth). Turns a byte budget into an entry count.
pub const SIGCACHE_BYTES_PER_ENTRY: usize = 64;

/// Lock shards: concurrent block-verification threads rarely wait on each other.
const SHARDS: usize = 16;

/// A salted entry: `SHA-256(salt ‖ sighash ‖ public key ‖ signature)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SigCacheKey([u8; 32]);

impl Hash for SigCacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The key is already a salted SHA-256 output: its first eight bytes are as good a
        // table hash as any, and cost nothing.
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// The hasher of [`SigCacheKey`] tables: passes the key's own hash through.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeySet = HashSet<SigCacheKey, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
struct Shard {
    current: KeySet,
    previous: KeySet,
}

/// A bounded, salted set of verified (sighash, public key, signature) triples, shared by
/// the mempool (which inserts what it verified) and block connection (which skips what it
/// finds). `Sync`: share it behind an `Arc`.
pub struct SigCache {
    salt: [u8; 32],
    shards: Box<[Mutex<Shard>]>,
    /// Entries one generation of one shard holds before it turns over.
    generation_len: usize,
}

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigCache")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl SigCache {
    /// A cache holding at most `capacity` entries (at least one per shard), keyed with `salt`.
    pub fn new(salt: [u8; 32], capacity: usize) -> SigCache {
        let generation_len = (capacity / SHARDS / 2).max(1);
        SigCache {
            salt,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            generation_len,
        }
    }

    /// A cache sized to about `bytes` of memory (see [`SIGCACHE_BYTES_PER_ENTRY`]).
    pub fn with_max_bytes(salt: [u8; 32], bytes: usize) -> SigCache {
        SigCache::new(salt, bytes / SIGCACHE_BYTES_PER_ENTRY)
    }

    /// Most entries the cache holds.
    pub fn capacity(&self) -> usize {
        self.generation_len * 2 * SHARDS
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = lock(s);
                s.current.len() + s.previous.len()
            })
            .sum()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The salted key of a triple.
    pub fn key(
        &self,
        sighash: &Hash256,
        public_key: &PublicKeyBytes,
        signature: &SignatureBytes,
    ) -> SigCacheKey {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(sighash.0);
        hasher.update(public_key);
        hasher.update(signature);
        SigCacheKey(hasher.finalize().into())
    }

    fn shard(&self, key: &SigCacheKey) -> &Mutex<Shard> {
        &self.shards[usize::from(key.0[8]) % self.shards.len()]
    }

    /// Whether `key` was inserted (and is still held).
    pub fn contains(&self, key: &SigCacheKey) -> bool {
        let shard = lock(self.shard(key));
        shard.current.contains(key) || shard.previous.contains(key)
    }

    /// Removes `key`; returns whether it was held. Block connection takes entries out:
    /// a signature in a connected block is not checked again (Bitcoin Core does the same).
    pub fn take(&self, key: &SigCacheKey) -> bool {
        let mut shard = lock(self.shard(key));
        let in_current = shard.current.remove(key);
        shard.previous.remove(key) || in_current
    }

    /// Records a verified triple's key.
    pub fn insert(&self, key: SigCacheKey) {
        let mut shard = lock(self.shard(&key));
        if shard.previous.contains(&key) {
            return;
        }
        if shard.current.len() >= self.generation_len {
            shard.previous = std::mem::take(&mut shard.current);
        }
        shard.current.insert(key);
    }
}

/// Locks a shard. A panic while holding it leaves a set that is still a set of verified
/// keys (every mutation is one `HashSet` call), so a poisoned lock is safe to reuse.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256d;

    fn triple(n: u8) -> (Hash256, PublicKeyBytes, SignatureBytes) {
        (sha256d(&[n]), [n; 33], [n.wrapping_add(1); 64])
    }

    #[test]
    fn a_cached_signature_vouches_for_nothing_but_its_own_triple() {
        let cache = SigCache::new([7; 32], 1000);
        let (sighash, key, sig) = triple(1);
        cache.insert(cache.key(&sighash, &key, &sig));
        assert!(cache.contains(&cache.key(&sighash, &key, &sig)));
        // Another sighash, another key, another signature: each misses.
        assert!(!cache.contains(&cache.key(&sha256d(b"other"), &key, &sig)));
        let mut other_key = key;
        other_key[32] ^= 1;
        assert!(!cache.contains(&cache.key(&sighash, &other_key, &sig)));
        let mut other_sig = sig;
        other_sig[0] ^= 1;
        assert!(!cache.contains(&cache.key(&sighash, &key, &other_sig)));
        // The same triple under another salt is another key.
        let other_salt = SigCache::new([8; 32], 1000);
        assert!(!other_salt.contains(&other_salt.key(&sighash, &key, &sig)));
        assert_ne!(
            cache.key(&sighash, &key, &sig),
            other_salt.key(&sighash, &key, &sig)
        );
    }

    #[test]
    fn take_removes_the_entry() {
        let cache = SigCache::new([1; 32], 1000);
        let (h, k, s) = triple(3);
        let key = cache.key(&h, &k, &s);
        cache.insert(key);
        assert!(cache.take(&key));
        assert!(!cache.take(&key));
        assert!(!cache.contains(&key));
    }

    #[test]
    fn never_holds_more_than_its_capacity_and_keeps_recent_entries() {
        let cache = SigCache::new([2; 32], 320);
        let keys: Vec<SigCacheKey> = (0..5000u32)
            .map(|i| cache.key(&sha256d(&i.to_le_bytes()), &[0; 33], &[0; 64]))
            .collect();
        for key in &keys {
            cache.insert(*key);
            assert!(cache.len() <= cache.capacity());
        }
        assert_eq!(cache.capacity(), 320);
        // The last quarter of the capacity was inserted after every shard's last turnover
        // could drop it: still there, spread evenly or not, most of it is.
        let recent = &keys[keys.len() - 40..];
        let held = recent.iter().filter(|k| cache.contains(k)).count();
        assert!(held >= 35, "only {held} of the 40 most recent entries held");
    }
}
