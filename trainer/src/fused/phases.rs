//! An image row split into the phases of its padded row and joined back: value `i` of the
//! row sits at padded column `x = padding + i`, which belongs to
//! `phases[(x % stride) * phase_len + x / stride]`, so each strided run of the padded row is
//! contiguous in its phase (the padding's places are left as they are). Strides 2 and 4 (the
//! models') go four values of each phase at a time by SSE2 shuffles on x86_64 (every such CPU
//! has it), straight from the row to the phases: through a padded copy, each vector load would
//! wait for the copy's wider stores.

/// The row's values into their phases.
pub fn split(row: &[f32], phases: &mut [f32], phase_len: usize, stride: usize, padding: usize) {
    let place = Place { phase_len, stride, padding };
    let done = grouped::split(row, phases, place);
    for (i, &value) in row.iter().enumerate().skip(done) {
        phases[place.run(i)] = value;
    }
}

/// The inverse of [`split`].
pub fn join(phases: &[f32], row: &mut [f32], phase_len: usize, stride: usize, padding: usize) {
    let place = Place { phase_len, stride, padding };
    let done = grouped::join(phases, row, place);
    for (i, value) in row.iter_mut().enumerate().skip(done) {
        *value = phases[place.run(i)];
    }
}

/// Where a row's values go among the phases.
#[derive(Clone, Copy)]
struct Place {
    phase_len: usize,
    stride: usize,
    padding: usize,
}

impl Place {
    /// Where the row's value `first` goes, the start of its run `first`, `first + stride`, ...
    fn run(self, first: usize) -> usize {
        let x = self.padding + first;
        (x % self.stride) * self.phase_len + x / self.stride
    }
}

/// Strides 2 and 4 by SSE2 shuffles.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod grouped {
    use std::arch::x86_64::*;

    use super::Place;

    /// `N` values from `values` at `at`, as bounds-checked arrays for the vector loads and stores.
    fn array<const N: usize>(values: &[f32], at: usize) -> &[f32; N] {
        values[at..][..N].try_into().expect("N values")
    }
    fn array_mut<const N: usize>(values: &mut [f32], at: usize) -> &mut [f32; N] {
        (&mut values[at..][..N]).try_into().expect("N values")
    }

    /// The 4 x 4 matrix of rows `v` transposed.
    fn transpose(v: [__m128; 4]) -> [__m128; 4] {
        // SAFETY: SSE2 is part of x86_64.
        unsafe {
            let low = (_mm_shuffle_ps::<0x44>(v[0], v[1]), _mm_shuffle_ps::<0x44>(v[2], v[3]));
            let high = (_mm_shuffle_ps::<0xEE>(v[0], v[1]), _mm_shuffle_ps::<0xEE>(v[2], v[3]));
            [
                _mm_shuffle_ps::<0x88>(low.0, low.1),
                _mm_shuffle_ps::<0xDD>(low.0, low.1),
                _mm_shuffle_ps::<0x88>(high.0, high.1),
                _mm_shuffle_ps::<0xDD>(high.0, high.1),
            ]
        }
    }

    /// The row's first values, `4 x stride` at a time; returns how many.
    pub fn split(row: &[f32], phases: &mut [f32], place: Place) -> usize {
        let (stride, groups) = (place.stride, row.len() / (4 * place.stride));
        // SAFETY (each block): SSE2 is part of x86_64; the loads and stores go through arrays
        // taken from the slices with their bounds checked.
        match stride {
            2 => (0..groups).for_each(|g| unsafe {
                let values = array::<8>(row, 8 * g);
                let (v0, v1) = (_mm_loadu_ps(values.as_ptr()), _mm_loadu_ps(values[4..].as_ptr()));
                let mut store =
                    |first: usize, v| _mm_storeu_ps(array_mut::<4>(phases, place.run(first)).as_mut_ptr(), v);
                store(8 * g, _mm_shuffle_ps::<0x88>(v0, v1));
                store(8 * g + 1, _mm_shuffle_ps::<0xDD>(v0, v1));
            }),
            4 => (0..groups).for_each(|g| unsafe {
                let values = array::<16>(row, 16 * g);
                let rows = std::array::from_fn(|t| _mm_loadu_ps(values[4 * t..].as_ptr()));
                for (u, run) in transpose(rows).into_iter().enumerate() {
                    _mm_storeu_ps(array_mut::<4>(phases, place.run(16 * g + u)).as_mut_ptr(), run);
                }
            }),
            _ => return 0,
        }
        groups * 4 * stride
    }

    /// The inverse of [`split`].
    pub fn join(phases: &[f32], row: &mut [f32], place: Place) -> usize {
        let (stride, groups) = (place.stride, row.len() / (4 * place.stride));
        // SAFETY (each block): as in `split`.
        match stride {
            2 => (0..groups).for_each(|g| unsafe {
                let load = |first: usize| _mm_loadu_ps(array::<4>(phases, place.run(first)).as_ptr());
                let (even, odd) = (load(8 * g), load(8 * g + 1));
                let values = array_mut::<8>(row, 8 * g);
                _mm_storeu_ps(values.as_mut_ptr(), _mm_unpacklo_ps(even, odd));
                _mm_storeu_ps(values[4..].as_mut_ptr(), _mm_unpackhi_ps(even, odd));
            }),
            4 => (0..groups).for_each(|g| unsafe {
                let runs =
                    std::array::from_fn(|u| _mm_loadu_ps(array::<4>(phases, place.run(16 * g + u)).as_ptr()));
                let values = array_mut::<16>(row, 16 * g);
                for (rows, values) in transpose(runs).into_iter().zip(values.chunks_exact_mut(4)) {
                    _mm_storeu_ps(values.as_mut_ptr(), rows);
                }
            }),
            _ => return 0,
        }
        groups * 4 * stride
    }
}

/// Elsewhere every value goes one by one.
#[cfg(not(target_arch = "x86_64"))]
mod grouped {
    use super::Place;

    pub fn split(_: &[f32], _: &mut [f32], _: Place) -> usize {
        0
    }
    pub fn join(_: &[f32], _: &mut [f32], _: Place) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_puts_each_value_in_its_phase_and_join_puts_it_back() {
        for stride in 1..=5usize {
            for padding in 0..3usize {
                for len in [0, 1, 3, 8, 9, 16, 18, 31, 64, 70] {
                    let row: Vec<f32> = (0..len).map(|x| x as f32 + 0.5).collect();
                    let phase_len = (len + 2 * padding).div_ceil(stride);
                    let mut phases = vec![f32::NAN; stride * phase_len];
                    split(&row, &mut phases, phase_len, stride, padding);
                    for (i, &value) in row.iter().enumerate() {
                        let x = padding + i;
                        assert_eq!(
                            phases[(x % stride) * phase_len + x / stride],
                            value,
                            "{stride} {padding} {len}"
                        );
                    }
                    let written = phases.iter().filter(|v| !v.is_nan()).count();
                    assert_eq!(written, len, "only the row's places are written");
                    let mut back = vec![f32::NAN; len];
                    join(&phases, &mut back, phase_len, stride, padding);
                    assert_eq!(back, row, "stride {stride}, padding {padding}, len {len}");
                }
            }
        }
    }
}
