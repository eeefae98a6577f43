//! The single-block backends' constants, computed at compile time from the
//! round function's term lists: the S-boxes, and for each round the byte
//! layout of the cells, the shuffle constants and the gathers (see
//! [`schedule`]). No `unsafe` here.

/// The SKINNY-64 S-box.
pub(super) const S4: [u8; 16] = [0xc, 6, 9, 0, 1, 0xa, 2, 0xb, 3, 8, 5, 0xd, 4, 0xe, 7, 0xf];

/// ShiftRows: `new[i] = old[P[i]]`.
pub(super) const P: [usize; 16] = [0, 1, 2, 3, 7, 4, 5, 6, 10, 11, 8, 9, 13, 14, 15, 12];

pub(super) const fn inverse_sbox() -> [u8; 16] {
    let mut inv = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        inv[S4[i] as usize] = i as u8;
        i += 1;
    }
    inv
}

/// `terms[d]`: bit `s` set if input cell `s` is XORed into output cell `d` of
/// ShiftRows-then-MixColumns.
pub(super) const fn forward_terms() -> [u16; 16] {
    let mut t = [0u16; 16];
    let mut c = 0;
    while c < 4 {
        let a0 = 1u16 << P[c];
        let a1 = 1u16 << P[4 + c];
        let a2 = 1u16 << P[8 + c];
        let a3 = 1u16 << P[12 + c];
        t[c] = a0 | a2 | a3;
        t[4 + c] = a0;
        t[8 + c] = a1 | a2;
        t[12 + c] = a0 | a2;
        c += 1;
    }
    t
}

/// Same for the inverse (inverse MixColumns, then inverse ShiftRows).
pub(super) const fn inverse_terms() -> [u16; 16] {
    let mut t = [0u16; 16];
    let mut c = 0;
    while c < 4 {
        let b0 = 1u16 << c;
        let b1 = 1u16 << (4 + c);
        let b2 = 1u16 << (8 + c);
        let b3 = 1u16 << (12 + c);
        t[P[c]] = b1;
        t[P[4 + c]] = b1 | b2 | b3;
        t[P[8 + c]] = b1 | b3;
        t[P[12 + c]] = b0 | b3;
        c += 1;
    }
    t
}

/// A perfect matching source -> destination using only real terms (the
/// "in place" term of every output cell), by augmenting paths.
pub(super) const fn in_place_terms(terms: [u16; 16]) -> [usize; 16] {
    const NONE: usize = usize::MAX;
    let mut owner = [NONE; 16]; // destination -> source
    let mut s = 0;
    while s < 16 {
        let mut prev = [NONE; 16];
        let mut seen = [false; 16];
        let mut queue = [0usize; 16];
        let (mut head, mut tail) = (0, 0);
        let mut d = 0;
        while d < 16 {
            if (terms[d] >> s) & 1 == 1 {
                seen[d] = true;
                queue[tail] = d;
                tail += 1;
            }
            d += 1;
        }
        let mut free = NONE;
        while head < tail {
            let d = queue[head];
            head += 1;
            if owner[d] == NONE {
                free = d;
                break;
            }
            let s2 = owner[d];
            let mut d2 = 0;
            while d2 < 16 {
                if !seen[d2] && (terms[d2] >> s2) & 1 == 1 {
                    seen[d2] = true;
                    prev[d2] = d;
                    queue[tail] = d2;
                    tail += 1;
                }
                d2 += 1;
            }
        }
        assert!(free != NONE, "no perfect matching");
        let mut d = free;
        loop {
            let p = prev[d];
            if p == NONE {
                owner[d] = s;
                break;
            }
            owner[d] = owner[p];
            d = p;
        }
        s += 1;
    }
    let mut phi = [0usize; 16];
    let mut d = 0;
    while d < 16 {
        phi[owner[d]] = d;
        d += 1;
    }
    phi
}

/// Shuffle constants and byte layouts of a linear layer, period 8.
pub(super) struct Schedule {
    /// `a[j]`, `b[j]`: `pshufb` indices of the two moved terms in round `j mod 8`.
    pub(super) a: [[u64; 2]; 8],
    pub(super) b: [[u64; 2]; 8],
    /// `lay[j][cell]`: byte holding `cell` before round `j` (`lay[8] == lay[0]`).
    lay: [[u8; 16]; 9],
}

pub(super) const fn pack16(b: [u8; 16]) -> [u64; 2] {
    let mut w = [0u64; 2];
    let mut i = 0;
    while i < 16 {
        w[i / 8] |= (b[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    w
}

/// Byte of cell `c` right after `load_cells` (defined per backend below).
pub(super) const fn load_layout() -> [u8; 16] {
    let mut l = [0u8; 16];
    let mut c = 0;
    while c < 16 {
        l[c] = (2 * (7 - c / 2) + c % 2) as u8;
        c += 1;
    }
    l
}

pub(super) const fn schedule(terms: [u16; 16]) -> Schedule {
    let phi = in_place_terms(terms);
    let mut lay = [[0u8; 16]; 9];
    lay[0] = load_layout();
    let mut a = [[0u64; 2]; 8];
    let mut b = [[0u64; 2]; 8];
    let mut j = 0;
    while j < 8 {
        // The in-place term keeps its byte: cell phi[s] of the output lives
        // where cell s of the input did.
        let mut s = 0;
        while s < 16 {
            lay[j + 1][phi[s]] = lay[j][s];
            s += 1;
        }
        let mut ia = [0x80u8; 16];
        let mut ib = [0x80u8; 16];
        let mut d = 0;
        while d < 16 {
            let mut src = 0;
            while src < 16 {
                if phi[src] == d {
                    break;
                }
                src += 1;
            }
            let mut rest = terms[d] & !(1u16 << src);
            let at = lay[j + 1][d] as usize;
            let mut k = 0;
            while rest != 0 {
                let s = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                if k == 0 {
                    ia[at] = lay[j][s];
                } else {
                    ib[at] = lay[j][s];
                }
                k += 1;
            }
            assert!(k <= 2, "more than three terms");
            d += 1;
        }
        a[j] = pack16(ia);
        b[j] = pack16(ib);
        j += 1;
    }
    let mut c = 0;
    while c < 16 {
        assert!(lay[8][c] == lay[0][c], "layout period is not 8");
        c += 1;
    }
    Schedule { a, b, lay }
}

/// `pshufb` indices gathering the even (`[0]`) and odd (`[1]`) cells of each
/// output byte, in big-endian byte order, from layout `lay`.
pub(super) const fn pack_indices(lay: [u8; 16]) -> [[u64; 2]; 2] {
    let mut e = [0x80u8; 16];
    let mut o = [0x80u8; 16];
    let mut k = 0;
    while k < 8 {
        e[k] = lay[2 * (7 - k)];
        o[k] = lay[2 * (7 - k) + 1];
        k += 1;
    }
    [pack16(e), pack16(o)]
}

pub(super) const ENC: Schedule = schedule(forward_terms());
pub(super) const DEC: Schedule = schedule(inverse_terms());
pub(super) const SBOX: [u64; 2] = pack16(S4);
pub(super) const SBOX_INV: [u64; 2] = pack16(inverse_sbox());
/// Output packing after `n` rounds, indexed by `(n % 8) / 4` (n is a multiple of 4).
pub(super) const ENC_PACK: [[[u64; 2]; 2]; 2] =
    [pack_indices(ENC.lay[0]), pack_indices(ENC.lay[4])];
pub(super) const DEC_PACK: [[[u64; 2]; 2]; 2] =
    [pack_indices(DEC.lay[0]), pack_indices(DEC.lay[4])];

/// `gather(lay)[k]`: the cell that layout `lay` puts in byte `k`.
pub(super) const fn gather(lay: [u8; 16]) -> [u8; 16] {
    let mut g = [0u8; 16];
    let mut c = 0;
    while c < 16 {
        g[lay[c] as usize] = c as u8;
        c += 1;
    }
    g
}

pub(super) const fn gathers(s: &Schedule) -> [[u8; 16]; 8] {
    let mut g = [[0u8; 16]; 8];
    let mut j = 0;
    while j < 8 {
        g[j] = gather(s.lay[j]);
        j += 1;
    }
    g
}

pub(super) const ENC_GATHER: [[u8; 16]; 8] = gathers(&ENC);
pub(super) const DEC_GATHER: [[u8; 16]; 8] = gathers(&DEC);
