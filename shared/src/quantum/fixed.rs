//! The circuit in integer arithmetic only, for microcontrollers without an FPU (RP2040).
//!
//! # Formats
//! - Amplitudes, matrix entries and expectation values: [`Q30`], `i32` scaled by `2^30`
//!   (range `[-2, 2)`, resolution `9.3e-10`). Products are formed in `i64` and rounded once.
//! - Angles: [`Angle`], a `u32` where `2^32` is `4 pi`. Rotations act on half angles, so the
//!   raw value is the half angle in binary turns; wrapping arithmetic is the circuit's own
//!   `4 pi` periodicity, and no range reduction can overflow.
//! - `sin`/`cos` of half angles by 34 CORDIC iterations (shift-add only, 40-bit internal).
//!
//! # Error bound
//! Against the exact circuit, every `<Z_i>` is within [`expval_error_bound`]`(layers)`
//! (`1.8e-6` for the model's 4 layers), on every path: gate by gate, compiled in fixed
//! point, or quantized from a float unitary. The argument:
//! - CORDIC `sin`/`cos` (with its rounding to `Q30`) is within `2^-30` of the exact value
//!   (unit test `cordic_matches_libm_over_a_full_turn`), so a rotation's matrix is off by at
//!   most `2 * 2^-30` in Frobenius norm;
//! - each gate then rounds 32 parts by at most `2^-31` each: `4 sqrt(2) 2^-31` in norm;
//! - so each rotation moves the state by at most [`GATE_ERROR`] = `4.5e-9` in norm. CNOTs
//!   are exact. A compiled unitary's columns each carry the error of the `12 L` layer
//!   rotations; applied to a unit vector (1-norm at most 4) that is `4 x` one column's error;
//! - `|d<Z_i>| <= 2 ||d psi|| + ||d psi||^2`, and the final sum rounds once more.
//!
//! The bound is a worst case; errors do not align in practice. The golden test
//! (`tests/golden.rs`) checks it on every PennyLane case and prints the largest error seen
//! (`1.5e-8` on the golden cases at this commit).

use super::{z_sign, Ansatz, Gate, Param, Rotation, Unitary, Wire, DIM, WIRES};

/// A fixed-point number with 30 fractional bits.
pub type Q30 = i32;

/// `1.0` in [`Q30`].
pub const ONE: Q30 = 1 << 30;

/// Largest norm by which one fixed-point rotation moves the state (see the module docs).
pub const GATE_ERROR: f64 = 4.5e-9;

/// Bound on `|<Z_i>_fixed - <Z_i>_exact|` for a circuit of `layers` layers, on every
/// fixed-point path (see the module docs for the derivation).
pub fn expval_error_bound(layers: usize) -> f64 {
    // The embedding's rotations, 4x the layer rotations of one column, and the final
    // matrix-vector product's rounding (no larger than one gate's).
    let gates = (WIRES + 4 * 12 * layers + 1) as f64;
    let d = gates * GATE_ERROR;
    2.0 * d + d * d + 1.0 / ONE as f64
}

/// An angle modulo `4 pi`: `2^32` units make `4 pi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Angle(pub u32);

/// Weights of one layer in fixed point.
pub type FixedLayerWeights = [[Angle; 3]; WIRES];

impl Angle {
    /// The angle `x` radians, rounded to the nearest unit (host-side conversion).
    pub fn from_radians(x: f64) -> Self {
        let turns = x / (4.0 * core::f64::consts::PI);
        let frac = turns - num_traits::Float::floor(turns);
        // `frac` is in [0, 1]; 1.0 wraps to 0 through the u64 mask.
        Self((num_traits::Float::round(frac * 4_294_967_296.0) as u64 & 0xFFFF_FFFF) as u32)
    }

    /// The angle in radians, in `[0, 4 pi)` (host-side conversion).
    pub fn to_radians(self) -> f64 {
        self.0 as f64 * (4.0 * core::f64::consts::PI / 4_294_967_296.0)
    }

    /// `-angle`.
    pub const fn neg(self) -> Self {
        Self(self.0.wrapping_neg())
    }

    /// `(sin(angle / 2), cos(angle / 2))` in [`Q30`].
    pub fn half_sin_cos(self) -> (Q30, Q30) {
        sin_cos_turns(self.0)
    }
}

/// Fractional bits of the CORDIC's internal state: 10 guard bits above [`Q30`], so that 34
/// truncating shifts and the rounded table entries stay below the final rounding.
const CORDIC_BITS: u32 = 40;

/// `atan(2^-i)` in `2^-40` turns.
const ATAN_TURNS: [i64; 34] = [
    137438953472,
    81134951838,
    42869480287,
    21761217566,
    10922836750,
    5466743129,
    2734038620,
    1367102738,
    683561799,
    341782203,
    170891265,
    85445653,
    42722829,
    21361415,
    10680707,
    5340354,
    2670177,
    1335088,
    667544,
    333772,
    166886,
    83443,
    41722,
    20861,
    10430,
    5215,
    2608,
    1304,
    652,
    326,
    163,
    81,
    41,
    20,
];

/// `prod_i 1 / sqrt(1 + 2^-2i)`, the inverse CORDIC gain, with 40 fractional bits.
const CORDIC_GAIN_INV: i64 = 667_681_663_043;

/// `(sin, cos)` of `turns / 2^32` of a full turn, by CORDIC rotation (shift-add only).
fn sin_cos_turns(turns: u32) -> (Q30, Q30) {
    const GUARD: u32 = CORDIC_BITS - 30;
    const QUARTER: i64 = 1 << (CORDIC_BITS - 2);
    const HALF: i64 = 1 << (CORDIC_BITS - 1);
    // Fold into [-pi/2, pi/2]; rotating by pi negates both outputs.
    let mut z = (turns as i32 as i64) << (CORDIC_BITS - 32);
    let flip = z.abs() > QUARTER;
    if flip {
        z -= HALF * z.signum();
    }
    let (mut x, mut y) = (CORDIC_GAIN_INV, 0i64);
    for (i, atan) in ATAN_TURNS.iter().enumerate() {
        let (dx, dy) = (y >> i, x >> i);
        if z >= 0 {
            (x, y, z) = (x - dx, y + dy, z - atan);
        } else {
            (x, y, z) = (x + dx, y - dy, z + atan);
        }
    }
    let round = |v: i64| ((v + (1 << (GUARD - 1))) >> GUARD) as Q30;
    let sign = if flip { -1 } else { 1 };
    (sign * round(y), sign * round(x))
}

/// `a * b` exactly, from four 16-bit products: the same integer as `i64::from(a) *
/// i64::from(b)`, without the 64 x 64-bit multiply routine a Cortex-M0+ calls for that
/// (about 4 times the instructions). The partial products fit: `a >> 16` is in
/// `[-2^15, 2^15)` and `a & 0xFFFF` in `[0, 2^16)`.
#[inline(always)]
pub(crate) fn mul_wide(a: i32, b: i32) -> i64 {
    let (ah, al, bh, bl) = (a >> 16, a & 0xFFFF, b >> 16, b & 0xFFFF);
    let high = i64::from(ah * bh) << 32;
    let middle = (i64::from(ah * bl) + i64::from(al * bh)) << 16;
    let low = i64::from((al as u32) * (bl as u32));
    high + middle + low
}

/// `round(a * b / 2^30)` for a sum of products already in `i64` (`2^60` scale).
#[inline]
fn round_q60(acc: i64) -> Q30 {
    ((acc + (1 << 29)) >> 30) as Q30
}

/// A 4-qubit state in [`Q30`]; index as in [`super::State`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedState {
    /// Real parts.
    pub re: [Q30; DIM],
    /// Imaginary parts.
    pub im: [Q30; DIM],
}

impl FixedState {
    /// The basis state `|index>` (`index` taken mod 16).
    pub fn basis(index: usize) -> Self {
        let mut s = Self { re: [0; DIM], im: [0; DIM] };
        s.re[index % DIM] = ONE;
        s
    }

    /// Applies `gate` rotated by `angle` (ignored for CNOT).
    pub fn apply(&mut self, gate: Gate, angle: Angle) {
        let (s, c) = angle.half_sin_cos();
        let (s, c) = (s as i64, c as i64);
        let (wire, kind) = match gate {
            Gate::Cnot { control, target } => return self.cnot(control, target),
            Gate::Rx(w) => (w, 0),
            Gate::Ry(w) => (w, 1),
            Gate::Rz(w) => (w, 2),
        };
        let mask = wire.mask();
        for i in (0..DIM).filter(|i| i & mask == 0) {
            let j = i | mask;
            let (ar, ai, br, bi) =
                (self.re[i] as i64, self.im[i] as i64, self.re[j] as i64, self.im[j] as i64);
            let [nar, nai, nbr, nbi] = match kind {
                // [[c, -is], [-is, c]]
                0 => [c * ar + s * bi, c * ai - s * br, c * br + s * ai, c * bi - s * ar],
                // [[c, -s], [s, c]]
                1 => [c * ar - s * br, c * ai - s * bi, s * ar + c * br, s * ai + c * bi],
                // diag(c - is, c + is)
                _ => [c * ar + s * ai, c * ai - s * ar, c * br - s * bi, c * bi + s * br],
            };
            (self.re[i], self.im[i], self.re[j], self.im[j]) =
                (round_q60(nar), round_q60(nai), round_q60(nbr), round_q60(nbi));
        }
    }

    /// Applies `CNOT(control, target)`; a no-op when both are the same wire.
    pub fn cnot(&mut self, control: Wire, target: Wire) {
        if control == target {
            return;
        }
        let (cm, tm) = (control.mask(), target.mask());
        for i in (0..DIM).filter(|i| i & cm != 0 && i & tm == 0) {
            self.re.swap(i, i | tm);
            self.im.swap(i, i | tm);
        }
    }

    /// `[<Z_0>, .., <Z_3>]` in [`Q30`].
    pub fn expvals(&self) -> [Q30; WIRES] {
        let mut acc = [0i64; WIRES];
        for k in 0..DIM {
            let p = mul_wide(self.re[k], self.re[k]) + mul_wide(self.im[k], self.im[k]);
            for (wire, a) in acc.iter_mut().enumerate() {
                *a += if z_sign(k, wire) { p } else { -p };
            }
        }
        acc.map(round_q60)
    }
}

/// The circuit's final state in fixed point, gate by gate.
///
/// # Errors
/// [`super::Error::WeightLayers`] when `weights` does not match the circuit.
pub fn simulate(
    ansatz: &Ansatz,
    features: &[Angle; WIRES],
    weights: &[FixedLayerWeights],
) -> super::Result<FixedState> {
    ansatz.check_weights(weights)?;
    let mut state = FixedState::basis(0);
    for op in ansatz.ops() {
        state.apply(op.gate, angle_of(op.param, features, weights));
    }
    Ok(state)
}

fn angle_of(param: Option<Param>, features: &[Angle; WIRES], weights: &[FixedLayerWeights]) -> Angle {
    match param {
        Some(Param::Feature(i)) => features[i],
        Some(Param::Weight { layer, wire, k }) => weights[layer][wire][k],
        None => Angle(0),
    }
}

/// The compiled layers in [`Q30`], column-major like [`Unitary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedUnitary {
    rotation: Rotation,
    /// `re[k][j] = Re U[j][k]`.
    re: [[Q30; DIM]; DIM],
    /// `im[k][j] = Im U[j][k]`.
    im: [[Q30; DIM]; DIM],
}

impl FixedUnitary {
    /// Rounds a float unitary to [`Q30`] (on the host, when exporting a model).
    pub fn quantize(u: &Unitary<f64>) -> Self {
        let q = |x: f64| num_traits::Float::round(x * ONE as f64) as Q30;
        Self {
            rotation: u.rotation(),
            re: core::array::from_fn(|k| core::array::from_fn(|j| q(u.get(j, k).re))),
            im: core::array::from_fn(|k| core::array::from_fn(|j| q(u.get(j, k).im))),
        }
    }

    /// Compiles the layers in fixed point, gate by gate, with no float at all.
    ///
    /// # Errors
    /// [`super::Error::WeightLayers`] when `weights` does not match the circuit.
    pub fn compile(ansatz: &Ansatz, weights: &[FixedLayerWeights]) -> super::Result<Self> {
        ansatz.check_weights(weights)?;
        let mut u = Self { rotation: ansatz.rotation(), re: [[0; DIM]; DIM], im: [[0; DIM]; DIM] };
        for k in 0..DIM {
            let mut column = FixedState::basis(k);
            for op in ansatz.layer_ops() {
                column.apply(op.gate, angle_of(op.param, &[Angle(0); WIRES], weights));
            }
            (u.re[k], u.im[k]) = (column.re, column.im);
        }
        Ok(u)
    }

    /// Rebuilds a unitary from its stored parts (column-major, see the field docs).
    pub fn from_parts(rotation: Rotation, re: [[Q30; DIM]; DIM], im: [[Q30; DIM]; DIM]) -> Self {
        Self { rotation, re, im }
    }

    /// The stored parts: rotation, `re[k][j] = Re U[j][k]`, `im[k][j] = Im U[j][k]`.
    pub fn parts(&self) -> (Rotation, &[[Q30; DIM]; DIM], &[[Q30; DIM]; DIM]) {
        (self.rotation, &self.re, &self.im)
    }

    /// The final state for `features`.
    pub fn state(&self, features: &[Angle; WIRES]) -> FixedState {
        let psi = embed(self.rotation, features);
        let mut out = FixedState::basis(0);
        for j in 0..DIM {
            let (mut re, mut im) = (0i64, 0i64);
            for k in 0..DIM {
                let (ur, ui) = (self.re[k][j], self.im[k][j]);
                let (pr, pi) = (psi.re[k], psi.im[k]);
                re += mul_wide(ur, pr) - mul_wide(ui, pi);
                im += mul_wide(ur, pi) + mul_wide(ui, pr);
            }
            (out.re[j], out.im[j]) = (round_q60(re), round_q60(im));
        }
        out
    }

    /// `[<Z_0>, .., <Z_3>]` in [`Q30`] for `features`.
    pub fn expvals(&self, features: &[Angle; WIRES]) -> [Q30; WIRES] {
        self.state(features).expvals()
    }
}

/// The embedded product state, in [`Q30`].
fn embed(rotation: Rotation, features: &[Angle; WIRES]) -> FixedState {
    let mut psi = FixedState::basis(0);
    for (w, x) in features.iter().enumerate() {
        let (s, c) = x.half_sin_cos();
        // R(x)|0> as (re, im) of the |0> and |1> amplitudes.
        let q = match rotation {
            Rotation::X => [(c, 0), (0, -s)],
            Rotation::Y => [(c, 0), (s, 0)],
            Rotation::Z => [(c, -s), (0, 0)],
        };
        for k in (0..1usize << w).rev() {
            let (ar, ai) = (psi.re[k], psi.im[k]);
            for (b, &(qr, qi)) in q.iter().enumerate() {
                psi.re[2 * k + b] = round_q60(mul_wide(ar, qr) - mul_wide(ai, qi));
                psi.im[2 * k + b] = round_q60(mul_wide(ar, qi) + mul_wide(ai, qr));
            }
        }
    }
    psi
}

/// A [`Q30`] value as `f64` (for tests and reports).
pub fn to_f64(q: Q30) -> f64 {
    q as f64 / ONE as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_products_are_exact() {
        let edges =
            [i32::MIN, i32::MIN + 1, -65_537, -65_536, -65_535, -1, 0, 1, 65_535, 65_536, ONE, i32::MAX];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(mul_wide(a, b), i64::from(a) * i64::from(b), "{a} * {b}");
            }
        }
        let mut s = 0x853C_49E6_748F_EA9Bu64;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (a, b) = (s as i32, (s >> 32) as i32 >> (s % 31));
            assert_eq!(mul_wide(a, b), i64::from(a) * i64::from(b), "{a} * {b}");
        }
    }

    #[test]
    fn cordic_matches_libm_over_a_full_turn() {
        let mut worst = 0.0f64;
        for n in 0..4096u32 {
            let a = Angle(n.wrapping_mul(1_048_573).wrapping_add(n));
            let (s, c) = a.half_sin_cos();
            let half = a.to_radians() / 2.0;
            worst = worst.max((to_f64(s) - half.sin()).abs()).max((to_f64(c) - half.cos()).abs());
        }
        println!("CORDIC worst error {worst:e}");
        assert!(worst < 1.0 / (1u64 << 30) as f64, "CORDIC error {worst}");
    }

    #[test]
    fn angle_wraps_every_4_pi() {
        let a = Angle::from_radians(1.25);
        let b = Angle::from_radians(1.25 + 4.0 * core::f64::consts::PI);
        assert!(a.0.abs_diff(b.0) <= 1);
        assert_eq!(Angle::from_radians(-1.0).neg().0, Angle::from_radians(1.0).0);
    }
}
