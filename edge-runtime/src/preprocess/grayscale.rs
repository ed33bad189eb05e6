//! DICOM grayscale samples -> the 8-bit gray the model reads, by one rule (the grayscale
//! pipeline of DICOM PS3.3 C.11):
//!
//! 1. the stored value: `BitsStored` bits ending at `HighBit`, sign-extended when
//!    `PixelRepresentation` is 1;
//! 2. the modality LUT: `RescaleSlope * value + RescaleIntercept` (1 and 0 when absent), e.g.
//!    Hounsfield units for CT;
//! 3. the VOI: the file's first window (`WindowCenter`/`WindowWidth`, with its
//!    `VOILUTFunction`: LINEAR, LINEAR_EXACT or SIGMOID), else its first VOI LUT table, else
//!    the whole stored range after step 2, mapped linearly. Never the image's own minimum and
//!    maximum: a stretch would make a dark image bright, and the model tells ChestCT from
//!    HeadCT partly by brightness;
//! 4. 0..1 -> `round(255 y)`, inverted for MONOCHROME1 so that bright is dense as in every
//!    other format.
//!
//! A 12-bit CT re-encoded from an 8-bit image `p` as `round(p * 4095 / 255)` without a window
//! therefore reads back as exactly `p`, as does the same image with a window spanning the
//! stored range.
//!
//! dicom-pixeldata decompresses; this module replaces its image conversion, which scales its
//! output by the next power of two of `BitsStored` (16-bit samples holding 8 stored bits come
//! out nearly black), narrows 16 to 8 bits by truncation, asserts on VOI LUT descriptors, and
//! min-max stretches windowless images.

use dicom_pixeldata::{
    DecodedPixelData, PhotometricInterpretation, PixelRepresentation, Rescale, VoiLutFunction, WindowLevel,
};
use image::GrayImage;

/// The 8-bit gray image of the first frame of a MONOCHROME1 or MONOCHROME2 image.
pub(super) fn to_gray8(pixels: &DecodedPixelData<'_>) -> Result<GrayImage, String> {
    let stored = StoredSamples::of(pixels)?;
    let rescale =
        pixels.rescale().map_err(|e| e.to_string())?.first().copied().unwrap_or(Rescale::new(1.0, 0.0));
    if !(rescale.slope.is_finite() && rescale.intercept.is_finite()) || rescale.slope == 0.0 {
        return Err(format!(
            "rescale slope {} and intercept {} map every pixel to one value",
            rescale.slope, rescale.intercept
        ));
    }
    let voi = Voi::of(pixels, &stored, rescale)?;
    let invert = *pixels.photometric_interpretation() == PhotometricInterpretation::Monochrome1;
    let data = pixels.frame_data(0).map_err(|e| e.to_string())?;
    let gray = |raw: u32| {
        let y = voi.apply(rescale.apply(stored.value(raw) as f64)).clamp(0.0, 1.0);
        let level = (255.0 * y).round() as u8;
        if invert {
            255 - level
        } else {
            level
        }
    };
    let levels: Vec<u8> = match pixels.bits_allocated() {
        8 => data.iter().map(|&b| gray(u32::from(b))).collect(),
        16 => data.chunks_exact(2).map(|b| gray(u32::from(u16::from_ne_bytes([b[0], b[1]])))).collect(),
        32 => data.chunks_exact(4).map(|b| gray(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))).collect(),
        other => return Err(format!("{other} bits allocated per sample (8, 16 or 32 supported)")),
    };
    GrayImage::from_raw(pixels.columns(), pixels.rows(), levels)
        .ok_or_else(|| format!("the frame holds fewer than {} x {} samples", pixels.rows(), pixels.columns()))
}

/// Where the stored value sits in each allocated sample.
struct StoredSamples {
    bits: u32,
    shift: u32,
    signed: bool,
}

impl StoredSamples {
    fn of(pixels: &DecodedPixelData<'_>) -> Result<Self, String> {
        let (bits, allocated, high_bit) = (
            u32::from(pixels.bits_stored()),
            u32::from(pixels.bits_allocated()),
            u32::from(pixels.high_bit()),
        );
        if bits == 0 || bits > allocated || high_bit >= allocated || high_bit + 1 < bits {
            return Err(format!("{bits} bits stored ending at bit {high_bit} of {allocated} allocated"));
        }
        Ok(Self {
            bits,
            shift: high_bit + 1 - bits,
            signed: pixels.pixel_representation() == PixelRepresentation::Signed,
        })
    }

    fn value(&self, raw: u32) -> i64 {
        let value = i64::from(raw >> self.shift) & ((1i64 << self.bits) - 1);
        if self.signed && value >> (self.bits - 1) == 1 {
            value - (1i64 << self.bits)
        } else {
            value
        }
    }

    /// The smallest and largest stored values.
    fn range(&self) -> (i64, i64) {
        if self.signed {
            (-(1i64 << (self.bits - 1)), (1i64 << (self.bits - 1)) - 1)
        } else {
            (0, (1i64 << self.bits) - 1)
        }
    }
}

/// The VOI transformation, from a modality value to 0..1.
enum Voi<'a> {
    Window(WindowLevel, VoiLutFunction),
    Table { first: i64, entries: &'a [u16], top: f64 },
    Linear { low: f64, high: f64 },
}

impl<'a> Voi<'a> {
    fn of(
        pixels: &'a DecodedPixelData<'_>,
        stored: &StoredSamples,
        rescale: Rescale,
    ) -> Result<Self, String> {
        let window = pixels.window().map_err(|e| e.to_string())?.and_then(|w| w.first().copied());
        let function = pixels
            .voi_lut_function()
            .map_err(|e| e.to_string())?
            .and_then(|f| f.first().copied())
            .unwrap_or(VoiLutFunction::Linear);
        // Widths below the standard's minimum (1, or above 0 for LINEAR_EXACT) describe no
        // window; the next rule applies.
        let valid = |w: &WindowLevel| {
            w.center.is_finite()
                && w.width.is_finite()
                && if function == VoiLutFunction::LinearExact { w.width > 0.0 } else { w.width >= 1.0 }
        };
        if let Some(window) = window.filter(valid) {
            return Ok(Self::Window(window, function));
        }
        let table = pixels.voi_lut_sequence().map_err(|e| e.to_string())?.and_then(|t| t.first());
        if let Some(table) = table.filter(|t| !t.data.is_empty() && (1..=16).contains(&t.bits_stored)) {
            return Ok(Self::Table {
                first: i64::from(table.min_pixel_value),
                entries: &table.data,
                top: f64::from((1u32 << table.bits_stored) - 1),
            });
        }
        let (low, high) = stored.range();
        let (a, b) = (rescale.apply(low as f64), rescale.apply(high as f64));
        Ok(Self::Linear { low: a.min(b), high: a.max(b) })
    }

    fn apply(&self, x: f64) -> f64 {
        match self {
            // PS3.3 C.11.2.1.2.1 and C.11.2.1.3.
            Self::Window(WindowLevel { center: c, width: w }, function) => match function {
                VoiLutFunction::Linear => {
                    let half = (w - 1.0) / 2.0;
                    if x <= c - 0.5 - half {
                        0.0
                    } else if x > c - 0.5 + half {
                        1.0
                    } else {
                        (x - (c - 0.5)) / (w - 1.0) + 0.5
                    }
                }
                VoiLutFunction::LinearExact => ((x - c) / w + 0.5).clamp(0.0, 1.0),
                VoiLutFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
            },
            // PS3.3 C.11.2.1.1: values below the first mapped one take the first entry, above
            // the last the last entry.
            Self::Table { first, entries, top } => {
                let index = (x.round() as i64).saturating_sub(*first).clamp(0, entries.len() as i64 - 1);
                f64::from(entries[index as usize]) / top
            }
            Self::Linear { low, high } => (x - low) / (high - low),
        }
    }
}
