//! The SKINNY-64 family of lightweight block ciphers.
//!
//! SKINNY (Beierle et al., *The SKINNY Family of Block Ciphers and Its
//! Low-Latency Variant MANTIS*, CRYPTO 2016) is a tweakable block cipher;
//! this crate implements the 64-bit block versions with the whole tweakey used
//! as key: SKINNY-64-64, SKINNY-64-128 and SKINNY-64-192 (32, 36 and 40
//! rounds). ROBERT encrypts its ephemeral Bluetooth identifiers (EBIDs) with
//! SKINNY-64-192 under a per-day server key.
//!
//! The ciphers implement the RustCrypto [`cipher`] traits ([`KeyInit`],
//! [`BlockCipherEncrypt`], [`BlockCipherDecrypt`]), so every generic block
//! API works. Key material is zeroized on drop and never printed by `Debug`.
//!
//! # Hazmat
//!
//! This is a bare block cipher: no mode, no padding, no authentication. It
//! has not been independently audited.
//!
//! # Example
//!
//! The SKINNY-64-192 test vector from the paper's Appendix B.1:
//!
//! ```
//! use skinny::Skinny64_192;
//! use skinny::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
//!
//! let key = hex::decode("ed00c85b120d68618753e24bfd908f60b2dbb41b422dfcd0")?;
//! let cipher = Skinny64_192::new_from_slice(&key).expect("24-byte key");
//! let mut block = [0x53, 0x0c, 0x61, 0xd3, 0x5e, 0x86, 0x63, 0xc3].into();
//! cipher.encrypt_block(&mut block);
//! assert_eq!(hex::encode(block), "dd2cf1a8f330303c");
//! cipher.decrypt_block(&mut block);
//! assert_eq!(hex::encode(block), "530c61d35e8663c3");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Single blocks and batches
//!
//! Besides the trait methods, every cipher has inherent single-block methods
//! on bytes or on a big-endian `u64` ([`Skinny64_192::encrypt_u64`],
//! [`Skinny64_192::decrypt_bytes`], ...) and batch methods that encrypt or
//! decrypt a whole slice of independent blocks under the one key, in place
//! ([`Skinny64_192::decrypt_batch`], [`Skinny64_192::encrypt_batch_bytes`],
//! ...). A batch of any length works, including 0 and lengths that are not a
//! multiple of the internal chunk size. The generic [`BlockCipherEncrypt`]
//! multi-block methods (`encrypt_blocks`, ...) use the batch code too
//! (`ParBlocksSize` is 128).
//!
//! ```
//! use skinny::Skinny64_192;
//! use skinny::cipher::KeyInit;
//!
//! let cipher = Skinny64_192::new(&[7u8; 24].into());
//! let mut ebids: Vec<u64> = (0..1000).collect();
//! cipher.encrypt_batch(&mut ebids);
//! assert_eq!(ebids[5], cipher.encrypt_u64(5));
//! cipher.decrypt_batch(&mut ebids);
//! assert!(ebids.iter().copied().eq(0..1000));
//! ```
//!
//! # Backends
//!
//! The implementation is chosen once, when a cipher is created, from what the
//! CPU supports (runtime detection with the `cpufeatures` crate, which works
//! without `std`); [`Skinny64_192::backend`] tells which one a cipher uses and
//! [`backend_name`] which one a new cipher would use.
//!
//! | [`Backend`] | single block | batch |
//! |---|---|---|
//! | `Portable` (any target) | 16 cells packed in a `u64`, bitwise S-box | bitsliced, 16 blocks per `u64` word |
//! | `Ssse3` (x86-64) | one cell per byte, `pshufb` S-box | bitsliced, 32 blocks per 128-bit word |
//! | `Avx2` (x86-64) | as `Ssse3`, VEX-encoded | bitsliced, 64 blocks per 256-bit word |
//! | `Avx512` (x86-64, AVX-512 F+VL+BW) | as `Ssse3`, with `vpternlogq` | bitsliced, 128 blocks per 512-bit word (64 per 256-bit word for tails), `vpternlogq` and `vprorq`; up to 12 blocks four at a time, one per 128-bit lane of the single-block code |
//!
//! The single-block SIMD path keeps one cell per byte of a 128-bit register;
//! SubCells is one `pshufb` with the S-box as table, and ShiftRows with
//! MixColumns is the identity plus two byte shuffles and XORs: the byte that
//! holds each cell changes from round to round (with period 8) so that one
//! of the three MixColumns terms never moves. Round keys are stored already
//! in the layout of their round.
//!
//! The batch paths transpose chunks of blocks into bit planes (one word per
//! bit of a row of cells), run all rounds with bitwise operations on whole
//! words, and transpose back. A tail shorter than a chunk goes through the
//! single-block code if it has at most 1 to 12 blocks (depending on the
//! backend, where a chunk costs more than that many single blocks), else
//! through a zero-padded chunk. With AVX-512 the single-block code runs
//! four blocks side by side in the lanes of one 512-bit register, in about
//! the time of one: a caller with two to four blocks gets them all for the
//! latency of one by passing them to a batch method.
//!
//! Orders of magnitude measured on the development machines (SKINNY-64-192,
//! see `benches/skinny.rs`). AMD EPYC Zen 4: single block about 45-60 ns
//! with AVX-512 and 230-330 ns portable; batches of 1024 blocks about 2-3.5
//! ns per block with AVX-512, 5.5 with AVX2, 11 with SSSE3 and 20 portable.
//! Intel Xeon (Emerald Rapids, ~2.8 GHz, loaded): single block 54 ns with
//! AVX-512, 2 to 4 blocks 75 ns per call, batches 3.2 ns per block.
//! The single-block time is bound by latency: each of the 40 rounds is a
//! chain of three dependent instructions (`pshufb` linear-layer shuffle,
//! `vpternlogq`, `pshufb` S-box), at least 120 cycles. The batch is bound by
//! throughput: about 17.5 vector instructions per block (rounds and
//! transposition) on the two 512-bit ports.
//!
//! # Constant time
//!
//! No backend branches on, or indexes memory with, key or data: the S-box is
//! either a bitwise circuit or a `pshufb` whose 16-byte table sits in a
//! register (its timing does not depend on the index), and every shuffle that
//! moves cells uses a constant index. Only public values (batch length, round
//! count, backend) steer control flow.
//!
//! # Key material
//!
//! A cipher holds its key expanded for every backend (about 4.5 KB: packed,
//! bitsliced and byte-per-cell round keys); all of it is zeroized on drop.
//! Key setup takes a couple of microseconds, so create a cipher once per key
//! and reuse it.
//!
//! # Forcing the portable backend
//!
//! Build with `RUSTFLAGS='--cfg skinny_backend="portable"'` to compile the
//! SIMD code out entirely; every cipher then uses [`Backend::Portable`].
//! Tests can also pick a backend per cipher with the hidden
//! `new_with_backend` constructors.

#![no_std]

pub use cipher;

use cipher::consts::{U8, U16, U24, U128};
use cipher::{
    AlgorithmName, Block, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt,
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InOut,
    InOutBuf, Key, KeyInit, KeySizeUser, ParBlocks, ParBlocksSizeUser,
};
use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

mod bitslice;
mod portable;
// Compiled on every x86-64 build, so that [`DecryptRounds`] exists there
// whatever the back end; with the portable back end forced, no cipher uses it.
#[cfg(target_arch = "x86_64")]
#[cfg_attr(skinny_backend = "portable", allow(dead_code))]
mod x86;
#[cfg(target_arch = "x86_64")]
pub use x86::{DecryptRounds, DecryptState};

/// Size of a SKINNY-64 block in bytes.
pub const BLOCK_SIZE: usize = 8;

/// Number of blocks the generic `cipher` multi-block API hands over at once.
const PAR_BLOCKS: usize = 128;

/// An implementation of SKINNY-64 (see the crate docs, "Backends").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Pure Rust, any target.
    Portable,
    /// x86-64 with SSSE3 (`pshufb`).
    Ssse3,
    /// x86-64 with AVX2.
    Avx2,
    /// x86-64 with AVX-512 F and VL.
    Avx512,
}

impl Backend {
    /// Every backend, from the most portable to the fastest.
    pub const ALL: [Self; 4] = [Self::Portable, Self::Ssse3, Self::Avx2, Self::Avx512];

    /// Short stable name: `portable`, `ssse3`, `avx2` or `avx512`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Ssse3 => "ssse3",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// Whether this build can use the backend on this CPU.
    pub fn is_available(self) -> bool {
        Engine::for_backend(self).is_some()
    }

    /// The backend a new cipher uses: the fastest available one.
    pub fn detect() -> Self {
        Engine::detect().backend()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of the backend new ciphers use on this machine (see [`Backend::name`]).
pub fn backend_name() -> &'static str {
    Backend::detect().name()
}

/// The selected implementation; SIMD variants carry proof of CPU support.
#[derive(Clone, Copy)]
enum Engine {
    Portable,
    #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
    X86(x86::Cpu),
}

impl Engine {
    fn detect() -> Self {
        [Backend::Avx512, Backend::Avx2, Backend::Ssse3]
            .into_iter()
            .find_map(Self::for_backend)
            .unwrap_or(Self::Portable)
    }

    fn for_backend(b: Backend) -> Option<Self> {
        match b {
            Backend::Portable => Some(Self::Portable),
            #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
            _ => x86::Cpu::new(b).map(Self::X86),
            #[cfg(not(all(target_arch = "x86_64", not(skinny_backend = "portable"))))]
            _ => None,
        }
    }

    fn backend(self) -> Backend {
        match self {
            Self::Portable => Backend::Portable,
            #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
            Self::X86(cpu) => cpu.backend(),
        }
    }
}

/// Every expanded form of a key, plus the engine that uses them.
#[derive(Clone)]
struct Expanded {
    rounds: usize,
    packed: portable::PackedKeys,
    bs: bitslice::BsKeys,
    #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
    simd: x86::SimdKeys,
    engine: Engine,
}

impl Expanded {
    fn new(key: &[u8], engine: Engine) -> Self {
        let mut words = [0u64; 3];
        let z = key.len() / BLOCK_SIZE;
        for (w, chunk) in words.iter_mut().zip(key.chunks_exact(BLOCK_SIZE)) {
            let mut b = [0u8; BLOCK_SIZE];
            b.copy_from_slice(chunk);
            *w = u64::from_be_bytes(b);
            b.zeroize();
        }
        let mut rk = [0u64; portable::MAX_ROUNDS];
        let rounds = portable::expand_key(&words[..z], &mut rk);
        words.zeroize();
        let rk_used = &rk[..rounds];
        let out = Self {
            rounds,
            packed: portable::PackedKeys::new(rk_used),
            bs: bitslice::BsKeys::new(rk_used),
            #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
            simd: x86::SimdKeys::new(rk_used),
            engine,
        };
        rk.zeroize();
        out
    }

    fn bs_keys(&self) -> &[[u64; 8]] {
        &self.bs.k[..self.rounds]
    }

    fn bs_dec_keys(&self) -> &[[u64; 8]] {
        &self.bs.dec[..self.rounds]
    }

    #[inline]
    fn encrypt_u64(&self, x: u64) -> (u64, Backend) {
        match self.engine {
            Engine::Portable => (
                portable::encrypt(x, &self.packed, self.rounds),
                Backend::Portable,
            ),
            #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
            Engine::X86(cpu) => cpu.encrypt_block(&self.simd, self.rounds, x),
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn decrypt_rounds(&self) -> Option<DecryptRounds<'_>> {
        match self.engine {
            Engine::Portable => None,
            #[cfg(not(skinny_backend = "portable"))]
            Engine::X86(_) => Some(DecryptRounds::new(&self.simd, self.rounds)),
        }
    }

    #[inline]
    fn decrypt_u64(&self, x: u64) -> (u64, Backend) {
        match self.engine {
            Engine::Portable => (
                portable::decrypt(x, &self.packed, self.rounds),
                Backend::Portable,
            ),
            #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
            Engine::X86(cpu) => cpu.decrypt_block(&self.simd, self.rounds, x),
        }
    }

    fn encrypt_batch(&self, blocks: &mut [u64]) -> Backend {
        match self.engine {
            Engine::Portable => {
                let single = |x| portable::encrypt(x, &self.packed, self.rounds);
                bitslice::encrypt(self.bs_keys(), single, blocks);
                Backend::Portable
            }
            #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
            Engine::X86(cpu) => cpu.encrypt_batch(self.bs_keys(), &self.simd, blocks),
        }
    }

    fn decrypt_batch(&self, blocks: &mut [u64]) -> Backend {
        match self.engine {
            Engine::Portable => {
                let single = |x| portable::decrypt(x, &self.packed, self.rounds);
                bitslice::decrypt(self.bs_dec_keys(), single, blocks);
                Backend::Portable
            }
            #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
            Engine::X86(cpu) => cpu.decrypt_batch(self.bs_dec_keys(), &self.simd, blocks),
        }
    }

    /// Runs a `u64` batch function over byte blocks, `PAR_BLOCKS` at a time.
    fn bytes_batch(&self, blocks: &mut [[u8; BLOCK_SIZE]], f: fn(&Self, &mut [u64]) -> Backend) {
        let mut buf = [0u64; PAR_BLOCKS];
        for chunk in blocks.chunks_mut(PAR_BLOCKS) {
            let words = &mut buf[..chunk.len()];
            for (w, b) in words.iter_mut().zip(chunk.iter()) {
                *w = u64::from_be_bytes(*b);
            }
            f(self, words);
            for (w, b) in words.iter().zip(chunk.iter_mut()) {
                *b = w.to_be_bytes();
            }
        }
        buf.zeroize();
    }

    /// Runs a `u64` batch function over `cipher` in/out blocks,
    /// `PAR_BLOCKS` at a time.
    fn inout_batch(
        &self,
        blocks: InOutBuf<'_, '_, Block<Skinny64_64>>,
        f: fn(&Self, &mut [u64]) -> Backend,
    ) {
        let mut buf = [0u64; PAR_BLOCKS];
        let mut rest = blocks;
        while !rest.is_empty() {
            let n = rest.len().min(PAR_BLOCKS);
            let (mut head, tail) = rest.split_at(n);
            let words = &mut buf[..n];
            for (w, b) in words.iter_mut().zip(head.get_in()) {
                *w = load(b);
            }
            f(self, words);
            for (w, b) in words.iter().zip(head.get_out()) {
                b.copy_from_slice(&w.to_be_bytes());
            }
            rest = tail;
        }
        buf.zeroize();
    }
}

impl Drop for Expanded {
    fn drop(&mut self) {
        self.packed.zeroize();
        self.bs.zeroize();
        #[cfg(all(target_arch = "x86_64", not(skinny_backend = "portable")))]
        self.simd.zeroize();
    }
}

#[inline(always)]
fn load(block: &Block<Skinny64_64>) -> u64 {
    let mut b = [0u8; BLOCK_SIZE];
    b.copy_from_slice(block);
    u64::from_be_bytes(b)
}

macro_rules! skinny64 {
    ($name:ident, $key_size:ty, $key_len:literal, $alg:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone)]
        pub struct $name {
            keys: Expanded,
        }

        impl $name {
            /// Key length in bytes.
            pub const KEY_LEN: usize = $key_len;

            /// Encrypts one block given as 8 bytes.
            #[inline]
            pub fn encrypt_bytes(&self, block: [u8; BLOCK_SIZE]) -> [u8; BLOCK_SIZE] {
                self.encrypt_u64(u64::from_be_bytes(block)).to_be_bytes()
            }

            /// Decrypts one block given as 8 bytes.
            #[inline]
            pub fn decrypt_bytes(&self, block: [u8; BLOCK_SIZE]) -> [u8; BLOCK_SIZE] {
                self.decrypt_u64(u64::from_be_bytes(block)).to_be_bytes()
            }

            /// Encrypts one block given as a big-endian `u64`
            /// (`u64::from_be_bytes` of the 8 block bytes).
            #[inline]
            pub fn encrypt_u64(&self, block: u64) -> u64 {
                self.keys.encrypt_u64(block).0
            }

            /// Decrypts one block given as a big-endian `u64`.
            #[inline]
            pub fn decrypt_u64(&self, block: u64) -> u64 {
                self.keys.decrypt_u64(block).0
            }

            /// This cipher's single-block decryption as separate rounds, for
            /// a caller that interleaves it with other work in its own
            /// `#[target_feature]` function ([`DecryptRounds`]); `None` when
            /// the cipher runs the portable back end.
            #[cfg(target_arch = "x86_64")]
            pub fn decrypt_rounds(&self) -> Option<DecryptRounds<'_>> {
                self.keys.decrypt_rounds()
            }

            /// Encrypts every block of `blocks` (big-endian `u64`s) in place.
            ///
            /// Equivalent to `encrypt_u64` on each element, but much faster
            /// for long slices (see the crate docs). Any length works.
            pub fn encrypt_batch(&self, blocks: &mut [u64]) {
                self.keys.encrypt_batch(blocks);
            }

            /// Decrypts every block of `blocks` (big-endian `u64`s) in place.
            pub fn decrypt_batch(&self, blocks: &mut [u64]) {
                self.keys.decrypt_batch(blocks);
            }

            /// Encrypts every 8-byte block of `blocks` in place.
            pub fn encrypt_batch_bytes(&self, blocks: &mut [[u8; BLOCK_SIZE]]) {
                self.keys.bytes_batch(blocks, Expanded::encrypt_batch);
            }

            /// Decrypts every 8-byte block of `blocks` in place.
            pub fn decrypt_batch_bytes(&self, blocks: &mut [[u8; BLOCK_SIZE]]) {
                self.keys.bytes_batch(blocks, Expanded::decrypt_batch);
            }

            /// The backend this cipher runs on.
            pub fn backend(&self) -> Backend {
                self.keys.engine.backend()
            }

            /// Creates a cipher on a chosen backend, or `None` if this build or
            /// CPU cannot run it. For tests and benchmarks.
            #[doc(hidden)]
            pub fn new_with_backend(key: &Key<Self>, backend: Backend) -> Option<Self> {
                let engine = Engine::for_backend(backend)?;
                Some(Self {
                    keys: Expanded::new(key, engine),
                })
            }

            /// `encrypt_u64`, also returning the backend whose code ran.
            #[doc(hidden)]
            pub fn encrypt_u64_traced(&self, block: u64) -> (u64, Backend) {
                self.keys.encrypt_u64(block)
            }

            /// `decrypt_u64`, also returning the backend whose code ran.
            #[doc(hidden)]
            pub fn decrypt_u64_traced(&self, block: u64) -> (u64, Backend) {
                self.keys.decrypt_u64(block)
            }

            /// `encrypt_batch`, returning the backend whose code ran.
            #[doc(hidden)]
            pub fn encrypt_batch_traced(&self, blocks: &mut [u64]) -> Backend {
                self.keys.encrypt_batch(blocks)
            }

            /// `decrypt_batch`, returning the backend whose code ran.
            #[doc(hidden)]
            pub fn decrypt_batch_traced(&self, blocks: &mut [u64]) -> Backend {
                self.keys.decrypt_batch(blocks)
            }
        }

        impl KeySizeUser for $name {
            type KeySize = $key_size;
        }

        impl KeyInit for $name {
            fn new(key: &Key<Self>) -> Self {
                Self {
                    keys: Expanded::new(key, Engine::detect()),
                }
            }
        }

        impl BlockSizeUser for $name {
            type BlockSize = U8;
        }

        impl ParBlocksSizeUser for $name {
            type ParBlocksSize = U128;
        }

        impl BlockCipherEncBackend for $name {
            #[inline]
            fn encrypt_block(&self, mut block: InOut<'_, '_, Block<Self>>) {
                let x = self.encrypt_u64(load(block.get_in()));
                block.get_out().copy_from_slice(&x.to_be_bytes());
            }

            fn encrypt_par_blocks(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
                self.keys
                    .inout_batch(blocks.into_buf(), Expanded::encrypt_batch);
            }

            fn encrypt_tail_blocks(&self, blocks: InOutBuf<'_, '_, Block<Self>>) {
                self.keys.inout_batch(blocks, Expanded::encrypt_batch);
            }
        }

        impl BlockCipherDecBackend for $name {
            #[inline]
            fn decrypt_block(&self, mut block: InOut<'_, '_, Block<Self>>) {
                let x = self.decrypt_u64(load(block.get_in()));
                block.get_out().copy_from_slice(&x.to_be_bytes());
            }

            fn decrypt_par_blocks(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
                self.keys
                    .inout_batch(blocks.into_buf(), Expanded::decrypt_batch);
            }

            fn decrypt_tail_blocks(&self, blocks: InOutBuf<'_, '_, Block<Self>>) {
                self.keys.inout_batch(blocks, Expanded::decrypt_batch);
            }
        }

        impl BlockCipherEncrypt for $name {
            fn encrypt_with_backend(&self, f: impl BlockCipherEncClosure<BlockSize = U8>) {
                f.call(self)
            }
        }

        impl BlockCipherDecrypt for $name {
            fn decrypt_with_backend(&self, f: impl BlockCipherDecClosure<BlockSize = U8>) {
                f.call(self)
            }
        }

        impl AlgorithmName for $name {
            fn write_alg_name(f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($alg)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), " { .. }"))
            }
        }

        impl ZeroizeOnDrop for $name {}
    };
}

skinny64!(
    Skinny64_64,
    U8,
    8,
    "SKINNY-64-64",
    "SKINNY-64-64: 64-bit block, 64-bit key (one tweakey word), 32 rounds."
);
skinny64!(
    Skinny64_128,
    U16,
    16,
    "SKINNY-64-128",
    "SKINNY-64-128: 64-bit block, 128-bit key (two tweakey words), 36 rounds."
);
skinny64!(
    Skinny64_192,
    U24,
    24,
    "SKINNY-64-192",
    "SKINNY-64-192: 64-bit block, 192-bit key (three tweakey words), 40 rounds.\n\nThis is the cipher ROBERT uses for EBIDs."
);
