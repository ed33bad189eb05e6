//! Max pooling on `u8` activations.

use super::error::{check_len, Error, Result};
use serde::{Deserialize, Serialize};

/// Shape of a max pooling layer (no padding; `[C][H][W]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MaxPoolOptions {
    /// Channels.
    pub channels: u16,
    /// Input height.
    pub in_height: u16,
    /// Input width.
    pub in_width: u16,
    /// Square window size.
    pub kernel: u8,
    /// Stride in both directions.
    pub stride: u8,
}

impl MaxPoolOptions {
    /// Checks that the options describe a layer with a non-empty output.
    ///
    /// # Errors
    /// [`Error::Options`] otherwise.
    pub fn validate(&self) -> Result<()> {
        if self.channels == 0 || self.kernel == 0 || self.stride == 0 {
            return Err(Error::Options("zero channels, kernel or stride"));
        }
        if self.kernel as u16 > self.in_height || self.kernel as u16 > self.in_width {
            return Err(Error::Options("window larger than the input"));
        }
        Ok(())
    }

    /// Output height.
    pub fn out_height(&self) -> usize {
        (self.in_height as usize).saturating_sub(self.kernel as usize) / self.stride.max(1) as usize + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.in_width as usize).saturating_sub(self.kernel as usize) / self.stride.max(1) as usize + 1
    }

    /// Input elements.
    pub fn input_len(&self) -> usize {
        self.channels as usize * self.in_height as usize * self.in_width as usize
    }

    /// Output elements.
    pub fn output_len(&self) -> usize {
        self.channels as usize * self.out_height() * self.out_width()
    }
}

/// `output = max over each window of input`.
///
/// # Errors
/// [`Error::Length`] when a buffer does not match `options`; [`Error::Options`] for invalid
/// options.
pub fn max_pool(options: &MaxPoolOptions, input: &[u8], output: &mut [u8]) -> Result<()> {
    options.validate()?;
    check_len("input", options.input_len(), input.len())?;
    check_len("output", options.output_len(), output.len())?;
    let (h, w) = (options.in_height as usize, options.in_width as usize);
    let (k, s) = (options.kernel as usize, options.stride as usize);
    let (oh, ow) = (options.out_height(), options.out_width());
    if (k, s) == (2, 2) {
        // The model's pooling: two input rows per output row, no bounds checks inside.
        for (in_plane, out_plane) in input.chunks_exact(h * w).zip(output.chunks_exact_mut(oh * ow)) {
            for (rows, out_row) in in_plane.chunks_exact(2 * w).zip(out_plane.chunks_exact_mut(ow)) {
                let (top, bottom) = rows.split_at(w);
                for (y, (a, b)) in out_row.iter_mut().zip(top.chunks_exact(2).zip(bottom.chunks_exact(2))) {
                    *y = a[0].max(a[1]).max(b[0].max(b[1]));
                }
            }
        }
        return Ok(());
    }
    for (in_plane, out_plane) in input.chunks_exact(h * w).zip(output.chunks_exact_mut(oh * ow)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let window = (0..k).flat_map(|ky| {
                    let row = (oy * s + ky) * w + ox * s;
                    in_plane[row..row + k].iter().copied()
                });
                out_plane[oy * ow + ox] = window.max().unwrap_or(0);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_by_two_windows() {
        let o = MaxPoolOptions { channels: 1, in_height: 2, in_width: 4, kernel: 2, stride: 2 };
        let mut out = [0u8; 2];
        max_pool(&o, &[1, 9, 3, 4, 5, 2, 8, 7], &mut out).unwrap();
        assert_eq!(out, [9, 8]);
        assert!(max_pool(&o, &[0; 7], &mut out).is_err());
    }

    #[test]
    fn matches_the_definition_on_odd_and_even_sizes() {
        for (c, h, w, k, s) in
            [(2, 5, 7, 2, 2), (3, 8, 8, 2, 2), (1, 6, 9, 3, 2), (2, 4, 6, 2, 1), (1, 3, 3, 2, 2)]
        {
            let o = MaxPoolOptions { channels: c, in_height: h, in_width: w, kernel: k, stride: s };
            let input: std::vec::Vec<u8> = (0..o.input_len()).map(|i| (i * 89 % 251) as u8).collect();
            let mut out = std::vec![0u8; o.output_len()];
            max_pool(&o, &input, &mut out).unwrap();
            let (h, w, k, s) = (h as usize, w as usize, k as usize, s as usize);
            let mut want = std::vec::Vec::new();
            for plane in input.chunks(h * w) {
                for oy in 0..o.out_height() {
                    for ox in 0..o.out_width() {
                        let window = (0..k * k).map(|i| plane[(oy * s + i / k) * w + ox * s + i % k]);
                        want.push(window.max().unwrap());
                    }
                }
            }
            assert_eq!(out, want, "{o:?}");
        }
    }
}
