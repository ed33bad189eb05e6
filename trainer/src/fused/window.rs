//! Max-pool windows: the winner byte the forward pass keeps for each output, and the 2 x 2
//! windows (the models' pool) four at a time, by SSE2 on x86_64 (every such CPU has it) and
//! one by one elsewhere. Both give the same values.

/// Marks an output whose window's largest activation was not positive: the ReLU stopped its
/// gradient.
pub const INACTIVE: u8 = 0x80;

/// [`INACTIVE`] unless `largest` is positive (the ReLU let its gradient through), else 0.
pub fn inactive_unless(largest: f32) -> u8 {
    (1 - u8::from(largest > 0.0)) << 7
}

/// `g` where winner byte `w` says the ReLU was active, else zero: a mask on its bits, so no
/// branch.
pub fn routed(g: f32, w: u8) -> f32 {
    f32::from_bits(g.to_bits() & u32::from(w >> 7).wrapping_sub(1))
}

// The 2 x 2 windows four at a time: by SSE2 on x86_64, one by one elsewhere.
#[cfg(not(target_arch = "x86_64"))]
pub use one_by_one::{pool_2x2, unpool_2x2};
#[cfg(target_arch = "x86_64")]
pub use sse2::{pool_2x2, unpool_2x2};

/// The windows one at a time: the definition, and the code where there is no SSE2.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod one_by_one {
    use super::{inactive_unless, routed, INACTIVE};

    /// `maxps`'s choice: `x` unless `y` is larger or they are equal (so the SSE2 code gives the
    /// same zero's sign).
    fn larger(x: f32, y: f32) -> f32 {
        if x > y {
            x
        } else {
            y
        }
    }

    /// Four adjacent 2 x 2 windows, given the top and bottom rows of their eight columns:
    /// each window's largest activation and its winner byte (the first largest in row-major
    /// order, `dy * 2 + dx`, or'ed with [`INACTIVE`]). Activations are never NaN (the ReLU's
    /// max turns NaN into 0).
    pub fn pool_2x2(top: &[f32; 8], bottom: &[f32; 8]) -> ([f32; 4], [u8; 4]) {
        let mut maxima = [0.0; 4];
        let mut winners = [0; 4];
        for j in 0..4 {
            let [a, b, c, d] = [top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]];
            let m = larger(larger(a, b), larger(c, d));
            // The winner's position is counted, not branched on: which activation wins is
            // data, and a mispredicted branch costs more than the window.
            let lost = |x: f32| u8::from(x != m);
            winners[j] = (lost(a) * (1 + lost(b) * (1 + lost(c)))) | inactive_unless(m);
            maxima[j] = m;
        }
        (maxima, winners)
    }

    /// The inverse of [`pool_2x2`]: each window's gradient `grad` at its winner where the
    /// ReLU was active, zero at the other three positions (all eight columns of `top` and
    /// `bottom` are written); returns the gradients as routed, for the bias.
    pub fn unpool_2x2(
        grad: &[f32; 4],
        winners: &[u8; 4],
        top: &mut [f32; 8],
        bottom: &mut [f32; 8],
    ) -> [f32; 4] {
        let mut gradients = [0.0; 4];
        for j in 0..4 {
            let g = routed(grad[j], winners[j]);
            let position = winners[j] & !INACTIVE;
            let at = |p: u8| if position == p { g } else { 0.0 };
            [top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]] = [at(0), at(1), at(2), at(3)];
            gradients[j] = g;
        }
        gradients
    }
}

/// The windows four at a time in SSE2's 128-bit lanes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod sse2 {
    use std::arch::x86_64::*;

    use super::INACTIVE;

    /// `one_by_one::pool_2x2`, the four windows side by side in the lanes.
    pub fn pool_2x2(top: &[f32; 8], bottom: &[f32; 8]) -> ([f32; 4], [u8; 4]) {
        let mut maxima = [0.0; 4];
        // SAFETY: SSE2 is part of x86_64; every load and store stays inside its array.
        let code = unsafe {
            let (t0, t1) = (_mm_loadu_ps(top.as_ptr()), _mm_loadu_ps(top.as_ptr().add(4)));
            let (b0, b1) = (_mm_loadu_ps(bottom.as_ptr()), _mm_loadu_ps(bottom.as_ptr().add(4)));
            // Each window's [a b; c d] across the four windows: the even and odd columns.
            let a = _mm_shuffle_ps::<0b10_00_10_00>(t0, t1);
            let b = _mm_shuffle_ps::<0b11_01_11_01>(t0, t1);
            let c = _mm_shuffle_ps::<0b10_00_10_00>(b0, b1);
            let d = _mm_shuffle_ps::<0b11_01_11_01>(b0, b1);
            let m = _mm_max_ps(_mm_max_ps(a, b), _mm_max_ps(c, d));
            _mm_storeu_ps(maxima.as_mut_ptr(), m);
            // All-ones where each lost; the position is minus the sum of "a lost", "a and b
            // lost", "a, b and c lost".
            let a_lost = _mm_cmpneq_ps(a, m);
            let ab_lost = _mm_and_ps(a_lost, _mm_cmpneq_ps(b, m));
            let abc_lost = _mm_and_ps(ab_lost, _mm_cmpneq_ps(c, m));
            let lost = _mm_add_epi32(
                _mm_add_epi32(_mm_castps_si128(a_lost), _mm_castps_si128(ab_lost)),
                _mm_castps_si128(abc_lost),
            );
            let position = _mm_sub_epi32(_mm_setzero_si128(), lost);
            let inactive = _mm_and_si128(
                _mm_castps_si128(_mm_cmpngt_ps(m, _mm_setzero_ps())),
                _mm_set1_epi32(i32::from(INACTIVE)),
            );
            let code = _mm_or_si128(position, inactive);
            let bytes = _mm_packus_epi16(_mm_packs_epi32(code, code), _mm_setzero_si128());
            _mm_cvtsi128_si32(bytes)
        };
        (maxima, code.to_le_bytes())
    }

    /// `one_by_one::unpool_2x2`, the four windows side by side in the lanes.
    pub fn unpool_2x2(
        grad: &[f32; 4],
        winners: &[u8; 4],
        top: &mut [f32; 8],
        bottom: &mut [f32; 8],
    ) -> [f32; 4] {
        let mut gradients = [0.0; 4];
        // SAFETY: SSE2 is part of x86_64; every load and store stays inside its array.
        unsafe {
            let zero = _mm_setzero_si128();
            let bytes = _mm_cvtsi32_si128(i32::from_le_bytes(*winners));
            let code = _mm_unpacklo_epi16(_mm_unpacklo_epi8(bytes, zero), zero);
            let active = _mm_cmpeq_epi32(_mm_and_si128(code, _mm_set1_epi32(i32::from(INACTIVE))), zero);
            let g = _mm_and_ps(_mm_loadu_ps(grad.as_ptr()), _mm_castsi128_ps(active));
            _mm_storeu_ps(gradients.as_mut_ptr(), g);
            let position = _mm_and_si128(code, _mm_set1_epi32(i32::from(!INACTIVE)));
            let at = |p: i32| _mm_and_ps(g, _mm_castsi128_ps(_mm_cmpeq_epi32(position, _mm_set1_epi32(p))));
            let (a, b, c, d) = (at(0), at(1), at(2), at(3));
            _mm_storeu_ps(top.as_mut_ptr(), _mm_unpacklo_ps(a, b));
            _mm_storeu_ps(top.as_mut_ptr().add(4), _mm_unpackhi_ps(a, b));
            _mm_storeu_ps(bottom.as_mut_ptr(), _mm_unpacklo_ps(c, d));
            _mm_storeu_ps(bottom.as_mut_ptr().add(4), _mm_unpackhi_ps(c, d));
        }
        gradients
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of windows with ties (equal values, zeros of both signs), negatives and a spread.
    fn windows() -> Vec<([f32; 8], [f32; 8])> {
        let values = [-1.5, -0.0, 0.0, 0.25, 0.25, 1.0, 3.0, 3.0, -2.0, 0.5];
        let mut rows = Vec::new();
        for seed in 0..2000usize {
            let pick = |i: usize| values[(seed * 7 + i * 13 + seed / 10 * i * i) % values.len()];
            rows.push((std::array::from_fn(pick), std::array::from_fn(|i| pick(i + 8))));
        }
        rows
    }

    #[test]
    fn pool_2x2_equals_one_by_one_and_picks_the_first_largest() {
        for (top, bottom) in windows() {
            let (maxima, winners) = pool_2x2(&top, &bottom);
            assert_eq!((maxima, winners), one_by_one::pool_2x2(&top, &bottom));
            for j in 0..4 {
                let window = [top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]];
                let first = window.iter().position(|&x| x == maxima[j]).expect("the max is in its window");
                assert_eq!(usize::from(winners[j] & !INACTIVE), first, "{window:?}");
                assert_eq!(winners[j] & INACTIVE != 0, maxima[j] <= 0.0, "{window:?}");
                assert!(window.iter().all(|&x| x <= maxima[j]));
            }
        }
    }

    #[test]
    fn unpool_2x2_routes_each_gradient_to_its_winner_only() {
        let grad = [0.5, -2.0, 3.25, 7.0];
        for (top, bottom) in windows() {
            let (_, winners) = pool_2x2(&top, &bottom);
            let (mut up, mut down) = ([f32::NAN; 8], [f32::NAN; 8]);
            let routed_grads = unpool_2x2(&grad, &winners, &mut up, &mut down);
            let (mut up_ref, mut down_ref) = ([f32::NAN; 8], [f32::NAN; 8]);
            assert_eq!(routed_grads, one_by_one::unpool_2x2(&grad, &winners, &mut up_ref, &mut down_ref));
            assert_eq!((up, down), (up_ref, down_ref));
            for j in 0..4 {
                let window = [up[2 * j], up[2 * j + 1], down[2 * j], down[2 * j + 1]];
                let expected = if winners[j] & INACTIVE == 0 { grad[j] } else { 0.0 };
                assert_eq!(routed_grads[j], expected);
                let position = usize::from(winners[j] & !INACTIVE);
                for (p, &value) in window.iter().enumerate() {
                    assert_eq!(value, if p == position { expected } else { 0.0 }, "{window:?}");
                }
            }
        }
    }
}
