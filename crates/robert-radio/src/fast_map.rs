//! A fast, deterministic hasher for small integer keys (person, pair and
//! EBID ids), shared by the radio and the simulator.
//!
//! The maps that use it are never iterated for output in an
//! order-dependent way, so the hash function does not affect results; it
//! is deterministic (no random state), so runs are repeatable anyway.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The hasher: one rotate, xor and multiply per integer (the FxHash step).
#[derive(Clone, Copy, Debug, Default)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A `HashMap` keyed by integers (or tuples of them) with [`IntHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;
