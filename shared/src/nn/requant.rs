//! Integer requantisation: `round(acc * scale)` as a 31-bit multiplier and a shift, so the
//! firmware never touches a float (the scheme TFLite Micro uses, with one rounding step).

use serde::{Deserialize, Serialize};

/// `round(acc * multiplier / 2^(31 + shift))`, rounding half up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Requant {
    /// The scale's mantissa in `[2^30, 2^31)` (Q31 in `[0.5, 1)`); 0 for a zero scale.
    pub multiplier: i32,
    /// Extra right shift; negative shifts left. The total `31 + shift` is in `1..=62`.
    pub shift: i8,
}

impl Requant {
    /// Smallest and largest `shift` whose total shift stays in `1..=62`.
    pub const SHIFT_RANGE: core::ops::RangeInclusive<i8> = -30..=31;

    /// The nearest representable scale to `scale` (host side, when quantizing a model).
    /// Scales too small for the shift range become zero; too large ones saturate.
    pub fn from_scale(scale: f64) -> Self {
        if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
            return Self { multiplier: 0, shift: 0 };
        }
        // scale = m * 2^e with m in [0.5, 1): multiplier = m * 2^31, shift = -e.
        let e = num_traits::Float::ceil(num_traits::Float::log2(scale)) as i32;
        let mut e = if num_traits::Float::powi(2.0f64, e) == scale { e + 1 } else { e };
        let mut m =
            num_traits::Float::round(scale / num_traits::Float::powi(2.0f64, e) * 2_147_483_648.0) as i64;
        if m == 1 << 31 {
            m >>= 1;
            e += 1;
        }
        let shift = -e;
        if shift > i32::from(*Self::SHIFT_RANGE.end()) {
            return Self { multiplier: 0, shift: 0 };
        }
        if shift < i32::from(*Self::SHIFT_RANGE.start()) {
            return Self { multiplier: i32::MAX, shift: *Self::SHIFT_RANGE.start() };
        }
        Self { multiplier: m as i32, shift: shift as i8 }
    }

    /// Whether the fields are in range (parsers check this before use).
    pub fn is_valid(self) -> bool {
        self.multiplier >= 0 && Self::SHIFT_RANGE.contains(&self.shift)
    }

    /// The scale this represents (for reports and tests).
    pub fn scale(self) -> f64 {
        f64::from(self.multiplier) / num_traits::Float::powi(2.0f64, 31 + i32::from(self.shift))
    }

    /// `round(acc * scale)` in 64 bits.
    #[inline]
    pub fn apply_wide(self, acc: i32) -> i64 {
        let total = 31 + i32::from(self.shift);
        let prod = i64::from(acc) * i64::from(self.multiplier);
        (prod + (1i64 << (total - 1))) >> total
    }

    /// `round(acc * scale)` clamped to `0..=255`: the requantised output of a layer followed
    /// by ReLU (activations are `u8` with zero point 0).
    ///
    /// The same integers as `apply_wide(acc).clamp(0, 255)` with less 64-bit arithmetic for
    /// the usual total shifts of 33 and more (on a Cortex-M0+ 64-bit multiplies and shifts
    /// are library calls): a sum `<= 0` gives 0 (the multiplier is never negative), and
    /// otherwise the high word of an unsigned product decides the result, because
    /// `floor((hi * 2^32 + lo + 2^(t-1)) / 2^t) = floor((hi + 2^(t-33)) / 2^(t-32))` for
    /// `t >= 33` and any `lo < 2^32`.
    #[inline]
    pub fn apply_relu_u8(self, acc: i32) -> u8 {
        let total = 31 + i32::from(self.shift);
        if acc <= 0 || self.multiplier <= 0 {
            return 0;
        }
        if total < 33 {
            return self.apply_wide(acc).clamp(0, 255) as u8;
        }
        // Both factors < 2^31, so hi < 2^30 and the rounding term (<= 2^29) cannot overflow.
        let hi = ((u64::from(acc as u32) * u64::from(self.multiplier as u32)) >> 32) as u32;
        let r = (hi + (1 << (total - 33))) >> (total - 32);
        r.min(255) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn represents_scales_to_31_bits() {
        for scale in [1e-6, 3.3e-4, 0.0123, 0.5, 0.999_999, 1.0, 7.25, 12345.678] {
            let r = Requant::from_scale(scale);
            assert!(r.is_valid(), "{scale}: {r:?}");
            assert!((r.scale() / scale - 1.0).abs() < 1e-9, "{scale} -> {}", r.scale());
        }
    }

    #[test]
    fn rounds_half_up_and_clamps() {
        let half = Requant::from_scale(0.5);
        assert_eq!(half.apply_wide(3), 2);
        assert_eq!(half.apply_wide(-3), -1);
        assert_eq!(half.apply_relu_u8(-100), 0);
        assert_eq!(half.apply_relu_u8(1000), 255);
        assert_eq!(Requant::from_scale(0.0).apply_wide(i32::MAX), 0);
    }
}
