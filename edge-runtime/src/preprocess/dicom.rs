//! DICOM Part 10 files -> one 8-bit image, with dicom-rs and checks in front of it.
//!
//! dicom-rs trusts a file's headers in two ways that a damaged file turns into a crash, both
//! found by mutating test files:
//! - it allocates and zero-fills every element's declared length before reading the value, so
//!   an 8 KB file whose length field reads 3 GB made it touch 2.9 GB of memory (on a 1 GB Pi
//!   an out-of-memory kill; under `watch`, the same kill again after every restart);
//! - its LUT code asserts `0 < BitsStored <= 32` instead of returning an error.
//!
//! [`check_lengths`] walks every element header the way dicom-rs will read it and refuses a
//! length beyond the end of the file (of the inflated data set for the deflated transfer
//! syntax, itself bounded), so what dicom-rs allocates is bounded by the file's size;
//! [`check_pixel_module`] refuses pixel descriptions dicom-rs cannot convert.
//!
//! dicom-rs then decompresses the first frame (native, deflated, RLE, JPEG, JPEG 2000 and
//! JPEG XL transfer syntaxes, all in Rust); grayscale images become 8-bit by the rule in
//! `grayscale.rs`, colour images by dicom-rs's conversion to 8-bit RGB.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_object::{DefaultDicomObject, StandardDataDictionary};
use dicom_pixeldata::{BitDepthOption, ConvertOptions, PixelDecoder};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use image::DynamicImage;
use std::io::Read;

use super::grayscale;

/// Where the `DICM` marker ends and the file meta group starts.
const META_START: usize = 132;
const UNDEFINED_LENGTH: u32 = u32::MAX;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const TRANSFER_SYNTAX: Tag = Tag(0x0002, 0x0010);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
/// The largest first frame converted (a 16-bit 4096 x 4096 CT slice is 32 MiB, a mammogram
/// about 50 MiB); a header claiming more is refused before any decoder allocates it.
const MAX_FRAME_BYTES: u64 = 256 << 20;
/// The largest inflated data set of a deflated file: one largest frame and 16 MiB of header.
const MAX_INFLATED_BYTES: u64 = MAX_FRAME_BYTES + (16 << 20);
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// A DICOM Part 10 file: 128-byte preamble, then `DICM`.
pub(super) fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..META_START) == Some(b"DICM")
}

/// The first frame as an 8-bit image: grayscale by the rule of `grayscale.rs` (modality LUT,
/// then the file's window or VOI LUT, else the stored range), colour as 8-bit RGB.
pub(super) fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let syntax = check_lengths(bytes)?;
    if let Some(ts) = TransferSyntaxRegistry.get(&syntax).filter(|ts| !ts.can_decode_all()) {
        return Err(format!("its transfer syntax {} ({}) is not decoded by this build", ts.uid(), ts.name()));
    }
    // `from_reader` expects the stream positioned at the `DICM` marker.
    let object = dicom_object::from_reader(&bytes[128..]).map_err(|e| e.to_string())?;
    check_pixel_module(&object)?;
    let pixels = object.decode_pixel_data_frame(0).map_err(|e| e.to_string())?;
    if pixels.photometric_interpretation().is_monochrome() {
        return grayscale::to_gray8(&pixels).map(DynamicImage::ImageLuma8);
    }
    let options = ConvertOptions::new().with_bit_depth(BitDepthOption::Force8Bit);
    pixels.to_dynamic_image_with_options(0, &options).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    ExplicitLittle,
    ImplicitLittle,
    ExplicitBig,
}

/// Refuses any element, item or fragment whose defined length runs past the end of `bytes`
/// (the whole file), and returns the transfer syntax. Containers (sequences, items of sequences, undefined lengths) are
/// entered rather than skipped, so nested lengths are checked too.
fn check_lengths(bytes: &[u8]) -> Result<String, String> {
    // The file meta group is explicit VR little endian whatever the transfer syntax.
    let mut meta = Walk { bytes, pos: META_START, encoding: Encoding::ExplicitLittle, fragments: false };
    let mut syntax = String::new();
    while meta.next_group()? == Some(0x0002) {
        if let (TRANSFER_SYNTAX, Some(value)) = meta.element()? {
            syntax = String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_string();
        }
    }
    let data_set = &bytes[meta.pos.min(bytes.len())..];
    let inflated;
    let (data_set, encoding) = match syntax.as_str() {
        "1.2.840.10008.1.2" => (data_set, Encoding::ImplicitLittle),
        "1.2.840.10008.1.2.2" => (data_set, Encoding::ExplicitBig),
        DEFLATED => {
            inflated = inflate(data_set)?;
            (inflated.as_slice(), Encoding::ExplicitLittle)
        }
        // Explicit VR little endian and every compressed syntax encode the data set this way.
        _ => (data_set, Encoding::ExplicitLittle),
    };
    check_data_set(data_set, encoding)?;
    Ok(syntax)
}

/// [`check_lengths`] for a bare implicit VR little endian data set (a DIMSE command set):
/// refuses an element longer than the bytes left, before dicom-rs allocates what it claims.
pub(crate) fn check_implicit_data_set(bytes: &[u8]) -> Result<(), String> {
    check_data_set(bytes, Encoding::ImplicitLittle)
}

fn check_data_set(data_set: &[u8], encoding: Encoding) -> Result<(), String> {
    let mut walk = Walk { bytes: data_set, pos: 0, encoding, fragments: false };
    while walk.next_group()?.is_some() {
        walk.element()?;
    }
    Ok(())
}

/// The data set of a deflated file (raw deflate, RFC 1951), refused beyond
/// [`MAX_INFLATED_BYTES`] so that a small file cannot inflate to fill the memory.
fn inflate(deflated: &[u8]) -> Result<Vec<u8>, String> {
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| format!("deflated data set: {e}"))?;
    if inflated.len() as u64 > MAX_INFLATED_BYTES {
        return Err(format!("the deflated data set inflates to more than {MAX_INFLATED_BYTES} bytes"));
    }
    Ok(inflated)
}

struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    encoding: Encoding,
    /// Inside encapsulated pixel data, whose items hold compressed bytes, not elements.
    fragments: bool,
}

impl<'a> Walk<'a> {
    fn take<const N: usize>(&self, at: usize) -> Result<[u8; N], String> {
        self.bytes
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("truncated element header at data set byte {at}"))
    }

    fn u16(&self, at: usize) -> Result<u16, String> {
        let b = self.take(at)?;
        Ok(if self.encoding == Encoding::ExplicitBig { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    fn u32(&self, at: usize) -> Result<u32, String> {
        let b = self.take(at)?;
        Ok(if self.encoding == Encoding::ExplicitBig { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    /// The group of the next element, `None` at the end of the file.
    fn next_group(&self) -> Result<Option<u16>, String> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        self.u16(self.pos).map(Some)
    }

    /// Steps over one element header, and over its value unless it is a container; returns
    /// the tag and the value it stepped over.
    fn element(&mut self) -> Result<(Tag, Option<&'a [u8]>), String> {
        let at = self.pos;
        let tag = Tag(self.u16(at)?, self.u16(at + 2)?);
        // The same header forms and VR choices as dicom-encoding's decoders.
        let (vr, length, header) = if tag.0 == 0xFFFE {
            (VR::UN, self.u32(at + 4)?, 8)
        } else if self.encoding == Encoding::ImplicitLittle {
            let vr = if tag == PIXEL_DATA {
                VR::OW
            } else {
                StandardDataDictionary.by_tag(tag).map_or(VR::UN, |entry| entry.vr().relaxed())
            };
            (vr, self.u32(at + 4)?, 8)
        } else {
            let vr = VR::from_binary(self.take(at + 4)?).unwrap_or(VR::UN);
            match vr {
                VR::OB | VR::OD | VR::OF | VR::OL | VR::OW | VR::SQ | VR::UC | VR::UR | VR::UT | VR::UN => {
                    (vr, self.u32(at + 8)?, 12)
                }
                _ => (vr, u32::from(self.u16(at + 6)?), 8),
            }
        };
        self.pos = at + header;
        if tag == SEQUENCE_END {
            self.fragments = false;
        }
        if length == UNDEFINED_LENGTH {
            // A sequence, an item or encapsulated pixel data: its content follows.
            self.fragments |= tag == PIXEL_DATA;
            return Ok((tag, None));
        }
        let left = self.bytes.len().saturating_sub(self.pos);
        if length as usize > left {
            return Err(format!(
                "element {tag} declares {length} bytes, the file has {left} left (truncated or damaged)"
            ));
        }
        if vr == VR::SQ || (tag == ITEM && !self.fragments) {
            return Ok((tag, None));
        }
        let value = &self.bytes[self.pos..self.pos + length as usize];
        self.pos += length as usize;
        Ok((tag, Some(value)))
    }
}

/// Refuses pixel descriptions dicom-rs would assert on or that would need more than
/// [`MAX_FRAME_BYTES`] for one frame.
fn check_pixel_module(object: &DefaultDicomObject) -> Result<(), String> {
    let get = |group_element: (u16, u16), name: &str| -> Result<u32, String> {
        let tag = Tag(group_element.0, group_element.1);
        let element = object.element(tag).map_err(|_| format!("no {name} {tag}: not an image"))?;
        element.to_int::<u32>().map_err(|e| format!("{name} {tag}: {e}"))
    };
    let rows = get((0x0028, 0x0010), "Rows")?;
    let columns = get((0x0028, 0x0011), "Columns")?;
    let samples = get((0x0028, 0x0002), "SamplesPerPixel")?;
    let allocated = get((0x0028, 0x0100), "BitsAllocated")?;
    let stored = get((0x0028, 0x0101), "BitsStored")?;
    if rows == 0 || columns == 0 {
        return Err(format!("{rows} x {columns} pixels"));
    }
    if !matches!(samples, 1 | 3) {
        return Err(format!("{samples} samples per pixel (1 or 3 supported)"));
    }
    if !matches!(allocated, 8 | 16 | 32) || stored == 0 || stored > allocated {
        return Err(format!("{stored} bits stored in {allocated} allocated (8, 16 or 32 supported)"));
    }
    let frame_bytes = u64::from(rows) * u64::from(columns) * u64::from(samples) * u64::from(allocated / 8);
    if frame_bytes > MAX_FRAME_BYTES {
        return Err(format!(
            "a {rows} x {columns} frame of {frame_bytes} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"
        ));
    }
    Ok(())
}
