//! Portable, constant-time SKINNY-64 on a packed `u64` state.
//!
//! The 16 four-bit cells of the state live in one `u64`: cell 0 is the most
//! significant nibble, so `u64::from_be_bytes(block)` is exactly the paper's
//! byte-to-cell mapping (byte `j` holds cell `2j` in its high nibble). Row `r`
//! is the 16-bit lane at bit offset `48 - 16 r`.
//!
//! No table is indexed by secret data: the S-box is computed with bitwise
//! operations on all 16 cells at once.
//!
//! # Rotating bit labels
//!
//! The paper's S-box is four NOR/XOR steps separated by a one-bit rotation of
//! every cell. Instead of rotating, this code renames the bits: in round `r`
//! (counted from 0) logical bit `k` of every cell sits at physical bit
//! `(k + r) mod 4`. The linear layer only XORs and moves whole cells, so it
//! does not care about the order of bits inside a cell; the round keys are
//! stored pre-rotated to match. Since every SKINNY-64 round count is a
//! multiple of 4, the labels are back to normal at the end. This also lets the
//! first two and the last two NOR steps run in parallel.

use zeroize::Zeroize;

/// Low bit of every nibble.
const LO: u64 = 0x1111_1111_1111_1111;

/// Maximum number of rounds (SKINNY-64-192).
pub(crate) const MAX_ROUNDS: usize = 40;

/// Number of rounds of SKINNY-64 for `z` tweakey words (paper, Table 2).
pub(crate) const fn rounds(z: usize) -> usize {
    match z {
        1 => 32,
        2 => 36,
        _ => 40,
    }
}

/// Moves bit `from` of every nibble to bit `to` (other bits are garbage).
#[inline(always)]
const fn align(x: u64, from: u32, to: u32) -> u64 {
    if from >= to {
        x >> (from - to)
    } else {
        x << (to - from)
    }
}

/// Bit `d` of every nibble set to `NOR(bit a, bit b)`, all other bits clear.
#[inline(always)]
const fn nor(x: u64, d: u32, a: u32, b: u32) -> u64 {
    !(align(x, a, d) | align(x, b, d)) & (LO << d)
}

/// Physical position of logical bit `k` when the labels are rotated by `q`.
#[inline(always)]
const fn pos(k: u32, q: u32) -> u32 {
    (k + q) % 4
}

/// SubCells with bit labels rotated by `q`; the output is rotated by `q + 1`.
///
/// With planes `p0..p3` (logical bits), the S-box is
/// `p0 ^= NOR(p3, p2); p3 ^= NOR(p2, p1); p2 ^= NOR(p1, p0); p1 ^= NOR(p0, p3)`
/// and output bit `k` is `p(k+1)`. Steps 1-2 and 3-4 are independent pairs.
#[inline(always)]
pub(crate) fn sub_cells_q(x: u64, q: u32) -> u64 {
    let p = |k| pos(k, q);
    let x = x ^ nor(x, p(0), p(3), p(2)) ^ nor(x, p(3), p(2), p(1));
    x ^ nor(x, p(2), p(1), p(0)) ^ nor(x, p(1), p(0), p(3))
}

/// Inverse of [`sub_cells_q`]: input labels rotated by `q + 1`, output by `q`.
#[inline(always)]
pub(crate) fn inv_sub_cells_q(x: u64, q: u32) -> u64 {
    let p = |k| pos(k, q);
    let x = x ^ nor(x, p(1), p(0), p(3));
    let x = x ^ nor(x, p(2), p(1), p(0));
    let x = x ^ nor(x, p(3), p(2), p(1));
    x ^ nor(x, p(0), p(3), p(2))
}

/// Rotates every nibble left by `s` bits (logical bit `k` to physical `k + s`).
#[inline(always)]
pub(crate) const fn rotl_nibbles(x: u64, s: u32) -> u64 {
    let s = s % 4;
    if s == 0 {
        return x;
    }
    let keep = (0xFu64 >> s) * LO; // bits that stay inside their nibble
    ((x & keep) << s) | ((x >> (4 - s)) & !(keep << s))
}

#[inline(always)]
const fn rows(x: u64) -> [u16; 4] {
    // Truncation is the point: each cast keeps one 16-bit row.
    [
        (x >> 48) as u16,
        (x >> 32) as u16,
        (x >> 16) as u16,
        x as u16,
    ]
}

#[inline(always)]
const fn from_rows(r: [u16; 4]) -> u64 {
    ((r[0] as u64) << 48) | ((r[1] as u64) << 32) | ((r[2] as u64) << 16) | r[3] as u64
}

/// ShiftRows then MixColumns.
///
/// ShiftRows rotates row `r` right by `r` cells; MixColumns maps the rows
/// `(a0, a1, a2, a3)` to `(a0^a2^a3, a0, a1^a2, a0^a2)`.
#[inline(always)]
pub(crate) const fn shift_mix(x: u64) -> u64 {
    let [r0, r1, r2, r3] = rows(x);
    let a0 = r0;
    let a1 = r1.rotate_right(4);
    let a2 = r2.rotate_right(8);
    let a3 = r3.rotate_right(12);
    let t = a0 ^ a2;
    from_rows([t ^ a3, a0, a1 ^ a2, t])
}

/// Inverse of [`shift_mix`].
#[inline(always)]
pub(crate) const fn inv_shift_mix(x: u64) -> u64 {
    let [b0, b1, b2, b3] = rows(x);
    let a0 = b1;
    let a2 = b3 ^ b1;
    let a3 = b0 ^ b3;
    let a1 = b2 ^ a2;
    from_rows([a0, a1.rotate_left(4), a2.rotate_left(8), a3.rotate_left(12)])
}

/// Tweakey cell permutation `PT`: `new[i] = old[PT[i]]`.
const PT: [usize; 16] = [9, 15, 8, 13, 10, 14, 12, 11, 0, 1, 2, 3, 4, 5, 6, 7];

/// Applies `PT` to a packed tweakey word.
#[inline(always)]
fn permute_tk(x: u64) -> u64 {
    // Cells 8..15 take cells 0..7; cells 0..7 take cells PT[0..8] >= 8.
    let mut out = x >> 32;
    for (j, &src) in PT.iter().enumerate().take(8) {
        out |= (x << (4 * (src - j))) & (0xF << (60 - 4 * j));
    }
    out
}

/// Mask of the first two rows (cells 0..8).
const TOP: u64 = 0xFFFF_FFFF_0000_0000;

/// TK2 LFSR on cells 0..8: `(x3,x2,x1,x0) -> (x2,x1,x0,x3^x2)` in each.
#[inline(always)]
fn lfsr2(x: u64) -> u64 {
    let t = x & TOP;
    (x & !TOP)
        | ((t << 1) & 0xEEEE_EEEE_0000_0000)
        | (((t >> 3) ^ (t >> 2)) & 0x1111_1111_0000_0000)
}

/// TK3 LFSR on cells 0..8: `(x3,x2,x1,x0) -> (x0^x3,x3,x2,x1)` in each.
#[inline(always)]
fn lfsr3(x: u64) -> u64 {
    let t = x & TOP;
    (x & !TOP) | ((t >> 1) & 0x7777_7777_0000_0000) | (((t << 3) ^ t) & 0x8888_8888_0000_0000)
}

/// Expands a tweakey of `z` 8-byte words into per-round 64-bit masks.
///
/// Each mask already includes the round constants (cells 0, 4 and 8), so a
/// round is `shift_mix(sub_cells(x) ^ rk[i])`. Rows 2 and 3 of every mask are
/// the constant `0x2` in cell 8 and zero.
pub(crate) fn expand_key(tk: &[u64], out: &mut [u64; MAX_ROUNDS]) -> usize {
    let n = rounds(tk.len());
    let mut words = [0u64; 3];
    words[..tk.len()].copy_from_slice(tk);
    let mut rc: u64 = 0;
    for slot in out.iter_mut().take(n) {
        rc = ((rc << 1) & 0x3F) | (((rc >> 5) ^ (rc >> 4) ^ 1) & 1);
        // Unused words stay zero, so XORing all three is fine.
        let tk_top = (words[0] ^ words[1] ^ words[2]) & TOP;
        // Constants: c0 = rc[3:0] into cell 0, c1 = rc[5:4] into cell 4, c2 = 2 into cell 8.
        let consts = ((rc & 0xF) << 60) | ((rc >> 4) << 44) | (0x2 << 28);
        *slot = tk_top ^ consts;
        words[0] = permute_tk(words[0]);
        words[1] = lfsr2(permute_tk(words[1]));
        words[2] = lfsr3(permute_tk(words[2]));
    }
    words.zeroize();
    n
}

/// Round keys of the packed backend, pre-rotated to the bit labels in use.
#[derive(Clone)]
pub(crate) struct PackedKeys {
    /// `enc[r]`: key of round `r`, labels rotated by `r + 1`.
    enc: [u64; MAX_ROUNDS],
    /// `dec[i]`: key of round `n - 1 - i`, labels rotated by `-i`.
    dec: [u64; MAX_ROUNDS],
}

impl PackedKeys {
    pub(crate) fn new(rk: &[u64]) -> Self {
        let n = rk.len();
        let mut enc = [0u64; MAX_ROUNDS];
        let mut dec = [0u64; MAX_ROUNDS];
        for (r, k) in rk.iter().enumerate() {
            // `r % 4` fits in u32.
            let q = (r % 4) as u32;
            enc[r] = rotl_nibbles(*k, q + 1);
            dec[n - 1 - r] = rotl_nibbles(*k, (4 - (n - 1 - r) as u32 % 4) % 4);
        }
        Self { enc, dec }
    }
}

impl Zeroize for PackedKeys {
    fn zeroize(&mut self) {
        self.enc.zeroize();
        self.dec.zeroize();
    }
}

/// Encrypts one packed block (`n` rounds, `n` a multiple of 4).
#[inline]
pub(crate) fn encrypt(x: u64, keys: &PackedKeys, n: usize) -> u64 {
    debug_assert!(n.is_multiple_of(4) && n <= MAX_ROUNDS);
    let mut x = x;
    for k in keys.enc[..n].chunks_exact(4) {
        x = shift_mix(sub_cells_q(x, 0) ^ k[0]);
        x = shift_mix(sub_cells_q(x, 1) ^ k[1]);
        x = shift_mix(sub_cells_q(x, 2) ^ k[2]);
        x = shift_mix(sub_cells_q(x, 3) ^ k[3]);
    }
    x
}

/// Decrypts one packed block (`n` rounds, `n` a multiple of 4).
#[inline]
pub(crate) fn decrypt(x: u64, keys: &PackedKeys, n: usize) -> u64 {
    debug_assert!(n.is_multiple_of(4) && n <= MAX_ROUNDS);
    let mut x = x;
    // Step i undoes round n-1-i; its input labels are rotated by -i, so the
    // inverse S-box runs with q = -i - 1 (mod 4).
    for k in keys.dec[..n].chunks_exact(4) {
        x = inv_sub_cells_q(inv_shift_mix(x) ^ k[0], 3);
        x = inv_sub_cells_q(inv_shift_mix(x) ^ k[1], 2);
        x = inv_sub_cells_q(inv_shift_mix(x) ^ k[2], 1);
        x = inv_sub_cells_q(inv_shift_mix(x) ^ k[3], 0);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    const S4: [u64; 16] = [0xc, 6, 9, 0, 1, 0xa, 2, 0xb, 3, 8, 5, 0xd, 4, 0xe, 7, 0xf];

    #[test]
    fn sbox_matches_the_paper_table_in_every_cell_and_labelling() {
        for q in 0..4 {
            for pos in 0..16 {
                for v in 0..16u64 {
                    let at = 60 - 4 * pos;
                    let x = rotl_nibbles(v << at, q);
                    let y = sub_cells_q(x, q);
                    assert_eq!(rotl_nibbles(y, 4 - (q + 1) % 4) >> at & 0xF, S4[v as usize]);
                    assert_eq!(inv_sub_cells_q(y, q), x);
                }
            }
        }
    }

    /// The cell-by-cell definitions of the tweakey schedule (protocol.md 10.4).
    #[test]
    fn tweakey_schedule_matches_cellwise_definition() {
        let cell = |x: u64, i: usize| (x >> (60 - 4 * i)) & 0xF;
        let set = |cells: [u64; 16]| {
            cells
                .iter()
                .enumerate()
                .fold(0, |a, (i, c)| a | c << (60 - 4 * i))
        };
        let l2 = |c: u64| ((c << 1) & 0xE) | (((c >> 3) ^ (c >> 2)) & 1);
        let l3 = |c: u64| ((c >> 1) & 0x7) | (((c << 3) ^ c) & 0x8);
        for x in [
            0x0123_4567_89AB_CDEFu64,
            0xFEDC_BA98_7654_3210,
            0xDEAD_BEEF_0BAD_F00D,
            u64::MAX,
        ] {
            let p = set(core::array::from_fn(|i| cell(x, PT[i])));
            assert_eq!(permute_tk(x), p);
            let top2 = set(core::array::from_fn(|i| {
                if i < 8 { l2(cell(x, i)) } else { cell(x, i) }
            }));
            assert_eq!(lfsr2(x), top2);
            let top3 = set(core::array::from_fn(|i| {
                if i < 8 { l3(cell(x, i)) } else { cell(x, i) }
            }));
            assert_eq!(lfsr3(x), top3);
        }
    }

    #[test]
    fn nibble_rotation_round_trips() {
        let x = 0x0123_4567_89AB_CDEF;
        assert_eq!(rotl_nibbles(x, 1), 0x0246_8ACE_1357_9BDF);
        for s in 0..4 {
            assert_eq!(rotl_nibbles(rotl_nibbles(x, s), 4 - s), x);
        }
    }

    #[test]
    fn shift_mix_inverts() {
        for x in [
            0u64,
            1,
            0x0123_4567_89AB_CDEF,
            u64::MAX,
            0xDEAD_BEEF_0BAD_F00D,
        ] {
            assert_eq!(inv_shift_mix(shift_mix(x)), x);
        }
    }
}
