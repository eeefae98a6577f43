//! Portable, constant-time SKINNY-64 on a packed `u64` state.
//!
//! The 16 four-bit cells of the state live in one `u64`: cell 0 is the most
//! significant nibble, so `u64::from_be_bytes(block)` is exactly the paper's
//! byte-to-cell mapping (byte `j` holds cell `2j` in its high nibble). Row `r`
//! is the 16-bit lane at bit offset `48 - 16 r`.
//!
//! No table is indexed by secret data: the S-box is computed with bitwise
//! operations on all 16 cells at once.

/// Low bit of every nibble.
const LO: u64 = 0x1111_1111_1111_1111;
/// Bits 1..=3 of every nibble.
const HI3: u64 = 0xEEEE_EEEE_EEEE_EEEE;
/// Bits 0..=2 of every nibble.
const LO3: u64 = 0x7777_7777_7777_7777;
/// High bit of every nibble.
const HI: u64 = 0x8888_8888_8888_8888;

/// One step of the S-box network: `x0 ^= NOR(x3, x2)` in every nibble.
#[inline(always)]
fn nor_step(x: u64) -> u64 {
    x ^ (!((x >> 3) | (x >> 2)) & LO)
}

/// Rotates every nibble left by one bit.
#[inline(always)]
fn rotl1(x: u64) -> u64 {
    ((x << 1) & HI3) | ((x >> 3) & LO)
}

/// Rotates every nibble right by one bit.
#[inline(always)]
fn rotr1(x: u64) -> u64 {
    ((x >> 1) & LO3) | ((x << 3) & HI)
}

/// SubCells: the 4-bit S-box `S4` on all 16 cells.
///
/// S4 is four NOR/XOR steps separated by nibble rotations (SKINNY paper,
/// Figure 2); the last step has no rotation.
#[inline(always)]
pub(crate) fn sub_cells(x: u64) -> u64 {
    let x = rotl1(nor_step(x));
    let x = rotl1(nor_step(x));
    let x = rotl1(nor_step(x));
    nor_step(x)
}

/// Inverse of [`sub_cells`].
#[inline(always)]
pub(crate) fn inv_sub_cells(x: u64) -> u64 {
    let x = nor_step(x);
    let x = nor_step(rotr1(x));
    let x = nor_step(rotr1(x));
    nor_step(rotr1(x))
}

#[inline(always)]
fn rows(x: u64) -> [u16; 4] {
    // Truncation is the point: each cast keeps one 16-bit row.
    #[allow(clippy::cast_possible_truncation)]
    [(x >> 48) as u16, (x >> 32) as u16, (x >> 16) as u16, x as u16]
}

#[inline(always)]
fn from_rows(r: [u16; 4]) -> u64 {
    (u64::from(r[0]) << 48) | (u64::from(r[1]) << 32) | (u64::from(r[2]) << 16) | u64::from(r[3])
}

/// ShiftRows then MixColumns.
///
/// ShiftRows rotates row `r` right by `r` cells; MixColumns maps the rows
/// `(a0, a1, a2, a3)` to `(a0^a2^a3, a0, a1^a2, a0^a2)`.
#[inline(always)]
pub(crate) fn shift_mix(x: u64) -> u64 {
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
pub(crate) fn inv_shift_mix(x: u64) -> u64 {
    let [b0, b1, b2, b3] = rows(x);
    let a0 = b1;
    let a2 = b3 ^ b1;
    let a3 = b0 ^ b3;
    let a1 = b2 ^ a2;
    from_rows([a0, a1.rotate_left(4), a2.rotate_left(8), a3.rotate_left(12)])
}

/// Tweakey cell permutation `PT`: `new[i] = old[PT[i]]`.
const PT: [usize; 16] = [9, 15, 8, 13, 10, 14, 12, 11, 0, 1, 2, 3, 4, 5, 6, 7];

fn cell(x: u64, i: usize) -> u64 {
    (x >> (60 - 4 * i)) & 0xF
}

fn permute_tk(x: u64) -> u64 {
    (0..16).fold(0, |acc, i| acc | (cell(x, PT[i]) << (60 - 4 * i)))
}

/// TK2 LFSR on one nibble: `(x3,x2,x1,x0) -> (x2,x1,x0,x3^x2)`.
fn lfsr2(c: u64) -> u64 {
    ((c << 1) & 0xE) | (((c >> 3) ^ (c >> 2)) & 1)
}

/// TK3 LFSR on one nibble: `(x3,x2,x1,x0) -> (x0^x3,x3,x2,x1)`.
fn lfsr3(c: u64) -> u64 {
    ((c >> 1) & 0x7) | (((c << 3) ^ c) & 0x8)
}

/// Applies an LFSR to the first two rows (cells 0..8) of a tweakey word.
fn lfsr_top(x: u64, f: fn(u64) -> u64) -> u64 {
    (0..8).fold(x & 0xFFFF_FFFF, |acc, i| acc | (f(cell(x, i)) << (60 - 4 * i)))
}

/// Number of rounds of SKINNY-64 for `z` tweakey words (paper, Table 2).
pub(crate) const fn rounds(z: usize) -> usize {
    match z {
        1 => 32,
        2 => 36,
        _ => 40,
    }
}

/// Maximum number of rounds (SKINNY-64-192).
pub(crate) const MAX_ROUNDS: usize = 40;

/// Expands a tweakey of `z` 8-byte words into per-round 64-bit masks.
///
/// Each mask already includes the round constants (cells 0, 4 and 8), so a
/// round is `shift_mix(sub_cells(x) ^ rk[i])`.
pub(crate) fn expand_key(tk: &[u64], out: &mut [u64; MAX_ROUNDS]) -> usize {
    let n = rounds(tk.len());
    let mut words = [0u64; 3];
    words[..tk.len()].copy_from_slice(tk);
    let mut rc: u64 = 0;
    for slot in out.iter_mut().take(n) {
        rc = ((rc << 1) & 0x3F) | (((rc >> 5) ^ (rc >> 4) ^ 1) & 1);
        let tk_top = words[..tk.len()].iter().fold(0, |a, w| a ^ w) & 0xFFFF_FFFF_0000_0000;
        // Constants: c0 = rc[3:0] into cell 0, c1 = rc[5:4] into cell 4, c2 = 2 into cell 8.
        let consts = ((rc & 0xF) << 60) | ((rc >> 4) << 44) | (0x2 << 28);
        *slot = tk_top ^ consts;
        for (k, w) in words.iter_mut().enumerate().take(tk.len()) {
            *w = permute_tk(*w);
            *w = match k {
                0 => *w,
                1 => lfsr_top(*w, lfsr2),
                _ => lfsr_top(*w, lfsr3),
            };
        }
    }
    words.iter_mut().for_each(|w| *w = 0);
    n
}

/// Encrypts one packed block with the expanded round keys.
#[inline(always)]
pub(crate) fn encrypt(mut x: u64, rk: &[u64]) -> u64 {
    for k in rk {
        x = shift_mix(sub_cells(x) ^ k);
    }
    x
}

/// Decrypts one packed block with the expanded round keys.
#[inline(always)]
pub(crate) fn decrypt(mut x: u64, rk: &[u64]) -> u64 {
    for k in rk.iter().rev() {
        x = inv_sub_cells(inv_shift_mix(x) ^ k);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    const S4: [u64; 16] = [0xc, 6, 9, 0, 1, 0xa, 2, 0xb, 3, 8, 5, 0xd, 4, 0xe, 7, 0xf];

    #[test]
    fn sbox_matches_the_paper_table_in_every_cell() {
        for pos in 0..16 {
            for v in 0..16u64 {
                let x = v << (60 - 4 * pos);
                assert_eq!(sub_cells(x) >> (60 - 4 * pos) & 0xF, S4[v as usize]);
                assert_eq!(inv_sub_cells(sub_cells(x)), x);
            }
        }
    }

    #[test]
    fn shift_mix_inverts() {
        for x in [0u64, 1, 0x0123_4567_89AB_CDEF, u64::MAX, 0xDEAD_BEEF_0BAD_F00D] {
            assert_eq!(inv_shift_mix(shift_mix(x)), x);
        }
    }
}
