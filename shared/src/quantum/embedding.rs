//! `AngleEmbedding` on `|0000>` factored as `psi = phase * D r`: a real product vector `r`,
//! fixed quarter-turn phases `D`, and (for Z only) a global phase.
//!
//! `R(x)|0>` is `(cos x/2, -i sin x/2)` for X, `(cos x/2, sin x/2)` for Y and
//! `(e^{-ix/2}, 0)` for Z, so `psi_k = (-i)^{popcount k} r_k` for X, `r_k` for Y, and
//! `e^{-i sum x/2} r_k` with `r = |0000>` for Z. Folding `D` into the compiled unitary turns
//! the inference matrix-vector product complex x real: half the multiplications.

use super::{Rotation, DIM, WIRES};
use core::ops::Neg;

/// `D_k = (-i)^n` for basis state `k`: returns `n mod 4`.
pub(crate) fn quarter_turns(rotation: Rotation, k: usize) -> u32 {
    match rotation {
        Rotation::X => k.count_ones() % 4,
        Rotation::Y | Rotation::Z => 0,
    }
}

/// `(-i)^n (re + i im)` as `(re, im)`: exact, no multiplication.
pub(crate) fn times_minus_i_pow<T: Neg<Output = T>>(re: T, im: T, n: u32) -> (T, T) {
    match n % 4 {
        0 => (re, im),
        1 => (im, -re),
        2 => (-re, -im),
        _ => (-im, re),
    }
}

/// The per-wire factors of `r` given each feature's `(sin x/2, cos x/2)`.
pub(crate) fn wire_factors<T: Copy>(
    rotation: Rotation,
    half_sin_cos: [(T, T); WIRES],
    zero: T,
    one: T,
) -> [[T; 2]; WIRES] {
    half_sin_cos.map(|(s, c)| match rotation {
        Rotation::X | Rotation::Y => [c, s],
        Rotation::Z => [one, zero],
    })
}

/// `r = f_0 (x) f_1 (x) f_2 (x) f_3`, wire 0 most significant, with the given product.
pub(crate) fn kron<T: Copy>(factors: &[[T; 2]; WIRES], one: T, mul: impl Fn(T, T) -> T) -> [T; DIM] {
    let mut r = [one; DIM];
    for (w, f) in factors.iter().enumerate() {
        // Extends the product over wires 0..w to wire w, the next less significant bit.
        for k in (0..1usize << w).rev() {
            let a = r[k];
            r[2 * k] = mul(a, f[0]);
            r[2 * k + 1] = mul(a, f[1]);
        }
    }
    r
}
