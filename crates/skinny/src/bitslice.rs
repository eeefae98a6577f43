//! Bitsliced SKINNY-64 for many blocks under one key.
//!
//! # Layout
//!
//! A chunk of blocks is held in 16 words `s[0..16]`, each word a lane type `W`
//! made of 64-bit lanes (`u64`, or a SIMD vector of 2, 4 or 8 of them). Every
//! 64-bit lane carries 16 blocks independently of the other lanes. Word
//! `s[4 (3 - r) + b]` holds bit `b` of the four cells of row `r`; inside a
//! 64-bit lane, bit `16 (3 - c) + n` is that bit of cell `(r, c)` of block `n`.
//!
//! With this layout SubCells is four NOR/XOR steps per row (pure renaming
//! replaces the S-box's bit rotations), ShiftRows rotates each word of row
//! `r` right by `16 r` bits, MixColumns XORs whole words, and the round key is
//! XORed as broadcast words. Everything is constant time: no branch or
//! memory index depends on key or data.
//!
//! The transposition between 16 blocks (`u64::from_be_bytes` values) and the
//! bitsliced words is six swap-move stages, each exchanging one bit of the
//! word index with one bit of the position inside the 64-bit lane.
//!
//! # Round keys
//!
//! Round `i` uses eight broadcast words `k[i]`: `k[i][b]` is bit `b` of the
//! row-0 key cells, and `k[i][4 + b]` is bit `b` of the row-1 key cells,
//! already rotated by ShiftRows, XOR the rotated round constant of cell 8
//! (which only ever touches bit 1, see [`C2R`]).
//!
//! Decryption carries planes 0 and 1 of every row complemented from one round
//! to the next: the inverse S-box then needs no NOT (each of its four
//! `x ^ !(a | b)` steps becomes `x ^ (a | b)` or `x ^ (!a & b)`, two
//! operations instead of three without AVX-512), and MixColumns⁻¹ turns the
//! complemented words back into plain ones if the round key words of planes
//! 0 and 1 are complemented too: decryption uses its own copy of the keys,
//! `dec`, with those words inverted.
//!
//! The code is written once as the `bitsliced!` macro and instantiated per
//! lane type (see `x86.rs` for the SIMD ones); the instantiating module
//! provides `W` and the primitive operations.

use crate::portable::MAX_ROUNDS;
use zeroize::Zeroize;

/// Blocks per chunk of the portable (`u64`) instance.
pub(crate) const CHUNK: usize = 16;

/// Longest batch tail the portable backend handles block by block (a chunk
/// costs about as much as one single-block decryption).
const SINGLE_MAX: usize = 1;

/// Cell 8's round constant `0x2` (bit 1) after ShiftRows moved it to column 2.
pub(crate) const C2R: u64 = 0x0000_0000_FFFF_0000;

/// Swap-move masks: positions whose address bit `m` is 0.
pub(crate) const MASKS: [u64; 6] = [
    0x5555_5555_5555_5555,
    0x3333_3333_3333_3333,
    0x0F0F_0F0F_0F0F_0F0F,
    0x00FF_00FF_00FF_00FF,
    0x0000_FFFF_0000_FFFF,
    0x0000_0000_FFFF_FFFF,
];

/// Bitsliced round keys (see the module docs).
#[derive(Clone)]
pub(crate) struct BsKeys {
    /// Encryption's round keys.
    pub(crate) k: [[u64; 8]; MAX_ROUNDS],
    /// Decryption's: `k` with the words of planes 0 and 1 inverted.
    pub(crate) dec: [[u64; 8]; MAX_ROUNDS],
}

/// Bit `bit` of the four cells of row `row` of a packed round key, each
/// spread over its 16-bit lane (all ones or all zeros), without branches.
fn spread(rk: u64, row: usize, bit: usize) -> u64 {
    // Cell (row, c) bit `bit` lands at bit 4 (3 - c) of `m`.
    let m = (rk >> (48 - 16 * row + bit)) & 0x1111;
    // Move bit 4j to bit 16j, then fill each 16-bit lane.
    let lanes = (m & 1) | ((m & 0x10) << 12) | ((m & 0x100) << 24) | ((m & 0x1000) << 36);
    lanes * 0xFFFF
}

impl BsKeys {
    pub(crate) fn new(rk: &[u64]) -> Self {
        let mut k = [[0u64; 8]; MAX_ROUNDS];
        for (slot, &r) in k.iter_mut().zip(rk) {
            // Rows 2 and 3 of a SKINNY-64 round key are always the constant
            // 0x2 in cell 8 and nothing else: it is folded in through C2R.
            debug_assert_eq!(r & 0xFFFF_FFFF, 0x2000_0000);
            for b in 0..4 {
                slot[b] = spread(r, 0, b);
                slot[4 + b] = spread(r, 1, b).rotate_right(16) ^ if b == 1 { C2R } else { 0 };
            }
        }
        let mut dec = k;
        for slot in &mut dec {
            for i in COMPLEMENTED_KEY_WORDS {
                slot[i] = !slot[i];
            }
        }
        Self { k, dec }
    }
}

/// The state words decryption carries complemented: planes 0 and 1 of
/// every row (see the module docs).
pub(crate) const COMPLEMENTED_PLANES: [usize; 8] = [0, 1, 4, 5, 8, 9, 12, 13];

/// The round key words of planes 0 and 1 (`k[b]` and `k[4 + b]`, `b < 2`).
const COMPLEMENTED_KEY_WORDS: [usize; 4] = [0, 1, 4, 5];

impl Zeroize for BsKeys {
    fn zeroize(&mut self) {
        self.k.zeroize();
        self.dec.zeroize();
    }
}

/// Defines the bitsliced functions for the lane type `W` in scope.
///
/// The invoking module must define `W: Copy` and
/// `xor(a, b)`, `xor3(a, b, c)`, `nor_xor(x, a, b) = x ^ !(a | b)`,
/// `or_xor(x, a, b) = x ^ (a | b)`, `andnot_xor(x, a, b) = x ^ (!a & b)`,
/// `splat(u64) -> W`, `rotr16`, `rotr32`, `rotr48` (per 64-bit lane) and
/// `swapmove::<S>(a, b, mask) -> (W, W)`. The attributes are applied to every
/// generated function (e.g. `#[target_feature(enable = "avx2")] #[inline]`).
macro_rules! bitsliced {
    ($(#[$attr:meta])*) => {
        /// SubCells on one row: planes `p0..p3` in, output bits in order.
        $(#[$attr])*
        fn sbox(p: [W; 4]) -> [W; 4] {
            let [mut p0, mut p1, mut p2, mut p3] = p;
            p0 = nor_xor(p0, p3, p2);
            p3 = nor_xor(p3, p2, p1);
            p2 = nor_xor(p2, p1, p0);
            p1 = nor_xor(p1, p0, p3);
            [p1, p2, p3, p0]
        }

        /// Inverse of `sbox`, its output planes 0 and 1 complemented.
        ///
        /// The steps are `p1 ^= !(p0 | p3)`, `p2 ^= !(p1 | p0)`,
        /// `p3 ^= !(p2 | p1)`, `p0 ^= !(p3 | p2)`. Kept complemented, `p1`
        /// turns the next two NORs into AND-NOTs (`!(!c | x) = !x & c`), and
        /// the first and last steps need no NOT at all.
        $(#[$attr])*
        fn inv_sbox(o: [W; 4]) -> [W; 4] {
            let [p1, mut p2, mut p3, p0] = o;
            let c1 = or_xor(p1, p0, p3);
            p2 = andnot_xor(p2, p0, c1);
            p3 = andnot_xor(p3, p2, c1);
            let c0 = or_xor(p0, p3, p2);
            [c0, c1, p2, p3]
        }

        /// All encryption rounds, one per key in `keys`.
        $(#[$attr])*
        fn encrypt_rounds(s: &mut [W; 16], keys: &[[u64; 8]]) {
            for k in keys {
                for row in 0..4 {
                    let i = 4 * row;
                    let o = sbox([s[i], s[i + 1], s[i + 2], s[i + 3]]);
                    s[i..i + 4].copy_from_slice(&o);
                }
                for b in 0..4 {
                    let (y0, y1, y2, y3) = (s[12 + b], s[8 + b], s[4 + b], s[b]);
                    let t1 = rotr16(y1);
                    let t2 = rotr32(y2);
                    let t3 = rotr48(y3);
                    let b1 = xor(y0, splat(k[b]));
                    let b3 = if b == 1 { xor3(b1, t2, splat($crate::bitslice::C2R)) } else { xor(b1, t2) };
                    s[b] = b3;
                    s[12 + b] = xor(b3, t3);
                    s[8 + b] = b1;
                    s[4 + b] = xor3(t1, t2, splat(k[4 + b]));
                }
            }
        }

        /// All decryption rounds, `keys` the decryption keys
        /// (`BsKeys::dec`) in encryption order.
        $(#[$attr])*
        fn decrypt_rounds(s: &mut [W; 16], keys: &[[u64; 8]]) {
            // Planes 0 and 1 travel complemented between rounds (module docs).
            complement_planes(s);
            for k in keys.iter().rev() {
                decrypt_round(s, k);
            }
            complement_planes(s);
        }

        /// One decryption round with the decryption key `k`, planes 0 and 1
        /// complemented in and out.
        $(#[$attr])*
        fn decrypt_round(s: &mut [W; 16], k: &[u64; 8]) {
            for b in 0..4 {
                let (b0, b1, b2, b3) = (s[12 + b], s[8 + b], s[4 + b], s[b]);
                let a2 = if b == 1 { xor3(b1, b3, splat($crate::bitslice::C2R)) } else { xor(b1, b3) };
                let a3 = xor(b0, b3);
                let a1 = xor3(b2, a2, splat(k[4 + b]));
                s[12 + b] = xor(b1, splat(k[b]));
                s[8 + b] = rotr48(a1);
                s[4 + b] = rotr32(a2);
                s[b] = rotr16(a3);
            }
            for row in 0..4 {
                let i = 4 * row;
                let o = inv_sbox([s[i], s[i + 1], s[i + 2], s[i + 3]]);
                s[i..i + 4].copy_from_slice(&o);
            }
        }

        /// Inverts the words decryption carries complemented.
        $(#[$attr])*
        fn complement_planes(s: &mut [W; 16]) {
            let ones = splat(u64::MAX);
            for i in $crate::bitslice::COMPLEMENTED_PLANES {
                s[i] = xor(s[i], ones);
            }
        }

        /// One swap-move stage: word-index bit `k` <-> lane-position bit `m`.
        $(#[$attr])*
        fn stage<const K: usize, const M: usize>(s: &mut [W; 16]) {
            for i in 0..16 {
                if i & (1 << K) == 0 {
                    let j = i | (1 << K);
                    let (a, b) = swap_stage::<M>(s[i], s[j]);
                    s[i] = a;
                    s[j] = b;
                }
            }
        }

        /// Blocks (word `n` = block `n` of every lane) to bitsliced form.
        $(#[$attr])*
        fn transpose(s: &mut [W; 16]) {
            stage::<3, 3>(s);
            stage::<3, 5>(s);
            stage::<2, 2>(s);
            stage::<2, 4>(s);
            stage::<1, 1>(s);
            stage::<0, 0>(s);
        }

        /// Inverse of `transpose`.
        $(#[$attr])*
        fn untranspose(s: &mut [W; 16]) {
            stage::<0, 0>(s);
            stage::<1, 1>(s);
            stage::<2, 4>(s);
            stage::<2, 2>(s);
            stage::<3, 5>(s);
            stage::<3, 3>(s);
        }

        /// Dispatches a swap-move on lane-position bit `M` to the right shift.
        $(#[$attr])*
        fn swap_stage<const M: usize>(a: W, b: W) -> (W, W) {
            let m = $crate::bitslice::MASKS[M];
            match M {
                0 => swapmove::<1>(a, b, m),
                1 => swapmove::<2>(a, b, m),
                2 => swapmove::<4>(a, b, m),
                3 => swapmove::<8>(a, b, m),
                4 => swapmove::<16>(a, b, m),
                _ => swapmove::<32>(a, b, m),
            }
        }
    };
}

pub(crate) use bitsliced;

/// The portable instance: `W = u64`, 16 blocks per chunk.
mod soft {
    type W = u64;

    #[inline(always)]
    fn xor(a: W, b: W) -> W {
        a ^ b
    }

    #[inline(always)]
    fn xor3(a: W, b: W, c: W) -> W {
        a ^ b ^ c
    }

    #[inline(always)]
    fn nor_xor(x: W, a: W, b: W) -> W {
        x ^ !(a | b)
    }

    #[inline(always)]
    fn or_xor(x: W, a: W, b: W) -> W {
        x ^ (a | b)
    }

    #[inline(always)]
    fn andnot_xor(x: W, a: W, b: W) -> W {
        x ^ (!a & b)
    }

    #[inline(always)]
    fn splat(k: u64) -> W {
        k
    }

    #[inline(always)]
    fn rotr16(a: W) -> W {
        a.rotate_right(16)
    }

    #[inline(always)]
    fn rotr32(a: W) -> W {
        a.rotate_right(32)
    }

    #[inline(always)]
    fn rotr48(a: W) -> W {
        a.rotate_right(48)
    }

    #[inline(always)]
    fn swapmove<const S: u32>(a: W, b: W, m: u64) -> (W, W) {
        let t = ((a >> S) ^ b) & m;
        (a ^ (t << S), b ^ t)
    }

    super::bitsliced!(#[inline(always)]);

    /// Encrypts 16 blocks in place.
    pub(crate) fn encrypt_chunk(keys: &[[u64; 8]], blocks: &mut [u64; super::CHUNK]) {
        transpose(blocks);
        encrypt_rounds(blocks, keys);
        untranspose(blocks);
    }

    /// Decrypts 16 blocks in place.
    pub(crate) fn decrypt_chunk(keys: &[[u64; 8]], blocks: &mut [u64; super::CHUNK]) {
        transpose(blocks);
        decrypt_rounds(blocks, keys);
        untranspose(blocks);
    }

    #[cfg(test)]
    pub(crate) fn transpose_for_test(s: &mut [u64; 16]) {
        transpose(s);
    }

    #[cfg(test)]
    pub(crate) fn untranspose_for_test(s: &mut [u64; 16]) {
        untranspose(s);
    }
}

/// Runs `chunk` over every full chunk of `N` blocks. The remaining tail
/// goes through `short` (the single-block code, which may take several
/// blocks at once) if it has at most `single_max` blocks, else through
/// `small` in a zero-padded array of `M` blocks if it fits, else through
/// `chunk` in a zero-padded array of `N` blocks.
#[inline(always)]
pub(crate) fn drive<const N: usize, const M: usize>(
    blocks: &mut [u64],
    single_max: usize,
    mut chunk: impl FnMut(&mut [u64; N]),
    mut small: impl FnMut(&mut [u64; M]),
    mut short: impl FnMut(&mut [u64]),
) {
    let mut chunks = blocks.chunks_exact_mut(N);
    for c in &mut chunks {
        // `chunks_exact_mut` yields slices of exactly N elements.
        if let Ok(c) = <&mut [u64; N]>::try_from(c) {
            chunk(c);
        }
    }
    let tail = chunks.into_remainder();
    let n = tail.len();
    if n <= single_max {
        short(tail);
    } else if n <= M {
        let mut buf = [0u64; M];
        buf[..n].copy_from_slice(tail);
        small(&mut buf);
        tail.copy_from_slice(&buf[..n]);
        buf.zeroize();
    } else {
        let mut buf = [0u64; N];
        buf[..n].copy_from_slice(tail);
        chunk(&mut buf);
        tail.copy_from_slice(&buf[..n]);
        buf.zeroize();
    }
}

/// Applies a single-block function to every block of `blocks`.
#[inline(always)]
pub(crate) fn one_by_one(blocks: &mut [u64], single: impl Fn(u64) -> u64) {
    for b in blocks {
        *b = single(*b);
    }
}

/// Portable batch encryption.
pub(crate) fn encrypt(k: &[[u64; 8]], single: impl Fn(u64) -> u64, blocks: &mut [u64]) {
    drive::<CHUNK, CHUNK>(
        blocks,
        SINGLE_MAX,
        |c| soft::encrypt_chunk(k, c),
        |c| soft::encrypt_chunk(k, c),
        |tail| one_by_one(tail, &single),
    );
}

/// Portable batch decryption; `k` are the decryption keys (`BsKeys::dec`).
pub(crate) fn decrypt(k: &[[u64; 8]], single: impl Fn(u64) -> u64, blocks: &mut [u64]) {
    drive::<CHUNK, CHUNK>(
        blocks,
        SINGLE_MAX,
        |c| soft::decrypt_chunk(k, c),
        |c| soft::decrypt_chunk(k, c),
        |tail| one_by_one(tail, &single),
    );
}

#[cfg(test)]
mod tests {
    use super::soft::{transpose_for_test, untranspose_for_test};

    #[test]
    fn transpose_puts_every_bit_where_the_docs_say() {
        // Block n, cell i = 4r + c, bit b, at BE position 60 - 4i + b.
        for n in 0..16 {
            for i in 0..16 {
                for b in 0..4 {
                    let mut s = [0u64; 16];
                    s[n] = 1 << (60 - 4 * i + b);
                    transpose_for_test(&mut s);
                    let (r, c) = (i / 4, i % 4);
                    let mut want = [0u64; 16];
                    want[4 * (3 - r) + b] = 1 << (16 * (3 - c) + n);
                    assert_eq!(s, want, "block {n} cell {i} bit {b}");
                    untranspose_for_test(&mut s);
                    let mut back = [0u64; 16];
                    back[n] = 1 << (60 - 4 * i + b);
                    assert_eq!(s, back);
                }
            }
        }
    }
}
