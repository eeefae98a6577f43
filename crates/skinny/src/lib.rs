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

#![no_std]

pub use cipher;

use cipher::consts::{U1, U8, U16, U24};
use cipher::{
    AlgorithmName, Block, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt,
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InOut, Key,
    KeyInit, KeySizeUser, ParBlocksSizeUser,
};
use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

mod portable;

/// Size of a SKINNY-64 block in bytes.
pub const BLOCK_SIZE: usize = 8;

/// Expanded round keys shared by the three key sizes.
#[derive(Clone)]
struct RoundKeys {
    rk: [u64; portable::MAX_ROUNDS],
    rounds: usize,
}

impl RoundKeys {
    fn new(key: &[u8]) -> Self {
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
        Self { rk, rounds }
    }

    #[inline(always)]
    fn keys(&self) -> &[u64] {
        &self.rk[..self.rounds]
    }

    #[inline(always)]
    fn encrypt_u64(&self, x: u64) -> u64 {
        portable::encrypt(x, self.keys())
    }

    #[inline(always)]
    fn decrypt_u64(&self, x: u64) -> u64 {
        portable::decrypt(x, self.keys())
    }
}

impl Drop for RoundKeys {
    fn drop(&mut self) {
        self.rk.zeroize();
    }
}

#[inline(always)]
fn load(block: &Block<Skinny64_192>) -> u64 {
    let mut b = [0u8; BLOCK_SIZE];
    b.copy_from_slice(block);
    u64::from_be_bytes(b)
}

macro_rules! skinny64 {
    ($name:ident, $key_size:ty, $key_len:literal, $alg:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone)]
        pub struct $name {
            keys: RoundKeys,
        }

        impl $name {
            /// Key length in bytes.
            pub const KEY_LEN: usize = $key_len;

            /// Encrypts one block given as 8 bytes.
            #[inline]
            pub fn encrypt_bytes(&self, block: [u8; BLOCK_SIZE]) -> [u8; BLOCK_SIZE] {
                self.keys.encrypt_u64(u64::from_be_bytes(block)).to_be_bytes()
            }

            /// Decrypts one block given as 8 bytes.
            #[inline]
            pub fn decrypt_bytes(&self, block: [u8; BLOCK_SIZE]) -> [u8; BLOCK_SIZE] {
                self.keys.decrypt_u64(u64::from_be_bytes(block)).to_be_bytes()
            }

            /// Encrypts one block given as a big-endian `u64`.
            #[inline]
            pub fn encrypt_u64(&self, block: u64) -> u64 {
                self.keys.encrypt_u64(block)
            }

            /// Decrypts one block given as a big-endian `u64`.
            #[inline]
            pub fn decrypt_u64(&self, block: u64) -> u64 {
                self.keys.decrypt_u64(block)
            }
        }

        impl KeySizeUser for $name {
            type KeySize = $key_size;
        }

        impl KeyInit for $name {
            fn new(key: &Key<Self>) -> Self {
                Self { keys: RoundKeys::new(key) }
            }
        }

        impl BlockSizeUser for $name {
            type BlockSize = U8;
        }

        impl ParBlocksSizeUser for $name {
            type ParBlocksSize = U1;
        }

        impl BlockCipherEncBackend for $name {
            #[inline]
            fn encrypt_block(&self, mut block: InOut<'_, '_, Block<Self>>) {
                let x = self.keys.encrypt_u64(load(block.get_in()));
                block.get_out().copy_from_slice(&x.to_be_bytes());
            }
        }

        impl BlockCipherDecBackend for $name {
            #[inline]
            fn decrypt_block(&self, mut block: InOut<'_, '_, Block<Self>>) {
                let x = self.keys.decrypt_u64(load(block.get_in()));
                block.get_out().copy_from_slice(&x.to_be_bytes());
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
