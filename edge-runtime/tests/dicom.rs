//! DICOM files: the grayscale rule (modality LUT, then the file's window or VOI LUT, else the
//! stored range), bit depths, signedness, MONOCHROME1, the deflated transfer syntax, and
//! damaged headers. Every file is made here from a real test image with dicom-object; files
//! made by other toolkits (dcmtk, pydicom) in every transfer syntax: `cargo xtask dicom`.

use crate::common::scratch;
use crate::inputs::{assert_fails, class_of, first_image, gray, write};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, Tag};
use edge_runtime::preprocess::{self, InputError};
use edge_runtime::Image;
use image::{DynamicImage, ImageFormat};

const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

pub enum Photometric {
    Mono2,
    Mono1,
}

/// A Part 10 file (preamble, meta group, explicit VR little endian data set).
pub fn dicom_file(object: InMemDicomObject) -> Vec<u8> {
    dicom_file_in(object, EXPLICIT_VR_LITTLE_ENDIAN)
}

fn dicom_file_in(object: InMemDicomObject, transfer_syntax: &str) -> Vec<u8> {
    let file = object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(transfer_syntax)
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                .media_storage_sop_instance_uid("1.2.3.4"),
        )
        .expect("meta");
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).expect("write DICOM");
    bytes
}

fn put(o: &mut InMemDicomObject, group_element: (u16, u16), vr: VR, value: impl Into<PrimitiveValue>) {
    o.put(DataElement::new(Tag(group_element.0, group_element.1), vr, value.into()));
}

/// The image pixel module of a square grayscale image: `stored` bits ending at bit
/// `stored - 1` of `allocated`.
fn image_object(rows: u16, photometric: &str, allocated: u16, stored: u16, signed: bool) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, (0x0028, 0x0002), VR::US, 1u16);
    put(&mut o, (0x0028, 0x0004), VR::CS, photometric);
    put(&mut o, (0x0028, 0x0010), VR::US, rows);
    put(&mut o, (0x0028, 0x0011), VR::US, rows);
    put(&mut o, (0x0028, 0x0100), VR::US, allocated);
    put(&mut o, (0x0028, 0x0101), VR::US, stored);
    put(&mut o, (0x0028, 0x0102), VR::US, stored - 1);
    put(&mut o, (0x0028, 0x0103), VR::US, u16::from(signed));
    o
}

/// 8-bit DICOM holding `image` (MONOCHROME1 stores it inverted, as such scanners do).
pub fn dicom_bytes(image: &Image, photometric: Photometric) -> Vec<u8> {
    let (name, pixels): (&str, Vec<u8>) = match photometric {
        Photometric::Mono2 => ("MONOCHROME2", image.pixels().to_vec()),
        Photometric::Mono1 => ("MONOCHROME1", image.pixels().iter().map(|p| 255 - p).collect()),
    };
    let mut o = image_object(64, name, 8, 8, false);
    // A window spanning the whole 8-bit range, so the VOI LUT is the identity.
    put(&mut o, (0x0028, 0x1050), VR::DS, "128");
    put(&mut o, (0x0028, 0x1051), VR::DS, "256");
    put(&mut o, (0x7FE0, 0x0010), VR::OB, pixels);
    dicom_file(o)
}

fn decode(bytes: &[u8], name: &str) -> Image {
    preprocess::decode(bytes, name.as_ref()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn max_difference(a: &Image, b: &Image) -> u8 {
    a.pixels().iter().zip(b.pixels()).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0)
}

#[test]
fn dicom_monochrome2_and_monochrome1_read_as_the_original() {
    let (_, original) = first_image();
    for (name, photometric) in [("mono2.dcm", Photometric::Mono2), ("mono1.dcm", Photometric::Mono1)] {
        assert_eq!(decode(&dicom_bytes(&original, photometric), name), original, "{name}");
    }
}

#[test]
fn dicom_16_bit_ct_applies_rescale_and_window() {
    let dir = scratch("dicom16");
    let (_, original) = first_image();
    // Hounsfield units h = 16 p - 1024, stored as h + 1024 with slope 1 and intercept -1024 at
    // 128x128 (resized back to 64x64), and a window mapping [-1024, 3056) onto [0, 255].
    let big = image::imageops::resize(&gray(&original), 128, 128, image::imageops::FilterType::Triangle);
    let stored: Vec<u16> = big.pixels().map(|p| u16::from(p.0[0]) * 16).collect();
    let mut o = image_object(128, "MONOCHROME2", 16, 16, false);
    put(&mut o, (0x0028, 0x1052), VR::DS, "-1024");
    put(&mut o, (0x0028, 0x1053), VR::DS, "1");
    put(&mut o, (0x0028, 0x1050), VR::DS, "1016");
    put(&mut o, (0x0028, 0x1051), VR::DS, "4080");
    put(&mut o, (0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16(stored.into()));
    let decoded = decode(&dicom_file(o), "ct16.dcm");
    // Expected: the same 128x128 pixels through the PNG path (resizing is not lossless, so
    // the original 64x64 is not the reference); the window's rounding allows 1.
    let png = write(&dir, "ct16.png", &DynamicImage::ImageLuma8(big), ImageFormat::Png);
    let expected = preprocess::load(&png).expect("png");
    assert!(max_difference(&decoded, &expected) <= 1, "{}", max_difference(&decoded, &expected));
    assert_eq!(class_of(&decoded), class_of(&original));
}

/// How an 8-bit image is re-encoded as a deeper DICOM image, as a PACS would store a CT.
struct Encoding {
    allocated: u16,
    stored: u16,
    signed: bool,
    /// Rescale slope and intercept written to the file.
    rescale: Option<(f64, f64)>,
    /// Write a window spanning the stored range (after the rescale).
    window: bool,
    mono1: bool,
}

impl Encoding {
    /// `p` in 0..=255 spread over the stored range: `round(p (2^bits - 1) / 255)`, shifted
    /// down by half the range when signed, inverted for MONOCHROME1 and for a negative slope
    /// (which maps high stored values to low modality values).
    fn stored_value(&self, p: u8) -> i64 {
        let negative = self.rescale.is_some_and(|(slope, _)| slope < 0.0);
        let p = if self.mono1 != negative { 255 - i64::from(p) } else { i64::from(p) };
        let top = (1i64 << self.stored) - 1;
        let value = (p * top + 127) / 255;
        if self.signed {
            value - (1i64 << (self.stored - 1))
        } else {
            value
        }
    }

    fn file(&self, image: &Image) -> Vec<u8> {
        let photometric = if self.mono1 { "MONOCHROME1" } else { "MONOCHROME2" };
        let mut o = image_object(64, photometric, self.allocated, self.stored, self.signed);
        let values = image.pixels().iter().map(|&p| self.stored_value(p));
        match self.allocated {
            8 => put(&mut o, (0x7FE0, 0x0010), VR::OB, values.map(|v| v as u8).collect::<Vec<u8>>()),
            // Two's complement in 16 bits (sign-extended beyond the stored bits).
            _ => {
                put(&mut o, (0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16(values.map(|v| v as u16).collect()))
            }
        }
        let (slope, intercept) = self.rescale.unwrap_or((1.0, 0.0));
        if self.rescale.is_some() {
            put(&mut o, (0x0028, 0x1052), VR::DS, intercept.to_string());
            put(&mut o, (0x0028, 0x1053), VR::DS, slope.to_string());
        }
        if self.window {
            let (low, high) = if self.signed {
                (-(1i64 << (self.stored - 1)), (1i64 << (self.stored - 1)) - 1)
            } else {
                (0, (1i64 << self.stored) - 1)
            };
            let (a, b) = (low as f64 * slope + intercept, high as f64 * slope + intercept);
            let (low, high) = (a.min(b), a.max(b));
            put(&mut o, (0x0028, 0x1050), VR::DS, ((low + high) / 2.0 + 0.5).to_string());
            put(&mut o, (0x0028, 0x1051), VR::DS, (high - low + 1.0).to_string());
        }
        dicom_file(o)
    }
}

/// The rule of `preprocess/grayscale.rs`: without a window the stored range maps linearly
/// onto 0..255, so an 8-bit image re-encoded at any depth, signed or not, rescaled or not,
/// reads back exactly; with a window spanning that range likewise. A dark image stays dark
/// (dicom-rs's own conversion stretched each image's minimum and maximum to 0 and 255, which
/// read a third of re-encoded CTs as HeadCT).
#[test]
fn deeper_dicom_images_read_back_as_the_8_bit_original() {
    let (_, original) = first_image();
    let dark =
        Image::from_pixels(original.pixels().iter().map(|&p| (u16::from(p) * 100 / 255) as u8).collect())
            .expect("64x64");
    let base =
        Encoding { allocated: 16, stored: 12, signed: false, rescale: None, window: false, mono1: false };
    let cases = [
        ("12-bit", Encoding { ..base }),
        ("12-bit CT in HU", Encoding { rescale: Some((1.0, -1024.0)), ..base }),
        ("12-bit signed", Encoding { signed: true, ..base }),
        ("12-bit signed, slope 2", Encoding { signed: true, rescale: Some((2.0, -1000.0)), ..base }),
        ("12-bit, negative slope", Encoding { rescale: Some((-1.0, 3000.0)), ..base }),
        ("12-bit windowed", Encoding { window: true, rescale: Some((1.0, -1024.0)), ..base }),
        ("12-bit MONOCHROME1", Encoding { mono1: true, ..base }),
        ("10-bit", Encoding { stored: 10, ..base }),
        ("16-bit", Encoding { stored: 16, ..base }),
        ("16-bit signed, windowed", Encoding { stored: 16, signed: true, window: true, ..base }),
        ("8 bits in 16", Encoding { stored: 8, ..base }),
        ("8-bit windowless", Encoding { allocated: 8, stored: 8, ..base }),
    ];
    for (name, encoding) in &cases {
        for (which, image) in [("original", &original), ("dark", &dark)] {
            let decoded = decode(&encoding.file(image), name);
            assert_eq!(max_difference(&decoded, image), 0, "{name}, {which} image");
        }
    }
}

/// A VOI LUT table (and no window) maps the stored values: here onto 8-bit output, the
/// identity on the original's 8-bit values.
#[test]
fn a_voi_lut_table_is_applied() {
    let (_, original) = first_image();
    let encoding =
        Encoding { allocated: 16, stored: 12, signed: false, rescale: None, window: false, mono1: false };
    let mut o = image_object(64, "MONOCHROME2", 16, 12, false);
    let stored: Vec<u16> = original.pixels().iter().map(|&p| encoding.stored_value(p) as u16).collect();
    put(&mut o, (0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16(stored.into()));
    // LUT Descriptor: 4096 entries, first mapped value 0, 8 bits per entry.
    let mut lut = InMemDicomObject::new_empty();
    put(&mut lut, (0x0028, 0x3002), VR::US, PrimitiveValue::U16(vec![4096u16, 0, 8].into()));
    let entries: Vec<u16> = (0..4096u32).map(|v| ((v * 255 + 2047) / 4095) as u16).collect();
    put(&mut lut, (0x0028, 0x3006), VR::US, PrimitiveValue::U16(entries.into()));
    o.put(DataElement::new(Tag(0x0028, 0x3010), VR::SQ, DataSetSequence::from(vec![lut])));
    assert_eq!(decode(&dicom_file(o), "voi-lut.dcm"), original);
}

/// The deflated transfer syntax reads like the plain one; a deflated data set that would
/// inflate beyond the limit (a "zip bomb": 300 MB of zeros in 300 KB) is refused before
/// dicom-rs inflates it.
#[test]
fn deflated_files_are_read_and_bombs_refused() {
    let (_, original) = first_image();
    let plain = dicom_bytes(&original, Photometric::Mono2);
    let object = dicom_object::from_reader(&plain[128..]).expect("parse").into_inner();
    let deflated = dicom_file_in(object, DEFLATED);
    assert!(deflated.len() < plain.len(), "{} vs {} bytes", deflated.len(), plain.len());
    assert_eq!(decode(&deflated, "deflated.dcm"), original);

    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(DEFLATED)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid("1.2.3.4")
        .build()
        .expect("meta");
    let mut bomb = vec![0u8; 128];
    bomb.extend_from_slice(b"DICM");
    meta.write(&mut bomb).expect("meta");
    let mut encoder = flate2::write::DeflateEncoder::new(bomb, flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        std::io::Write::write_all(&mut encoder, &zeros).expect("deflate");
    }
    let bomb = encoder.finish().expect("deflate");
    let dir = scratch("dicom-deflate");
    let path = dir.join("bomb.dcm");
    std::fs::write(&path, &bomb).expect("write");
    assert_fails(
        &path,
        |e| matches!(e, InputError::Dicom { reason, .. } if reason.contains("inflates to more than")),
    );
}
/// Damaged DICOM headers that dicom-rs alone turns into a crash: a length field far beyond
/// the end of the file (it would allocate it: 2.9 GB for an 8 KB file) and BitsStored 0 (it
/// asserts). Both must be ordinary errors that name the problem.
#[test]
fn damaged_dicom_headers_are_errors_not_crashes() {
    let dir = scratch("dicom-damaged");
    let (_, original) = first_image();
    let mut huge = dicom_bytes(&original, Photometric::Mono2);
    // Pixel Data (7FE0,0010), VR OB, 2 reserved bytes, then the 32-bit length.
    let header = [0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0];
    let at = huge.windows(8).position(|w| w == header).expect("pixel data header") + 8;
    huge[at..at + 4].copy_from_slice(&0xB000_0000u32.to_le_bytes());
    let path = dir.join("huge-length.dcm");
    std::fs::write(&path, &huge).expect("write");
    assert_fails(
        &path,
        |e| matches!(e, InputError::Dicom { reason, .. } if reason.contains("(7FE0,0010) declares")),
    );

    let mut o = image_object(64, "MONOCHROME2", 8, 8, false);
    o.put(DataElement::new(Tag(0x0028, 0x0101), VR::US, PrimitiveValue::from(0u16)));
    o.put(DataElement::new(Tag(0x7FE0, 0x0010), VR::OB, PrimitiveValue::from(original.pixels().to_vec())));
    let path = dir.join("no-bits-stored.dcm");
    std::fs::write(&path, dicom_file(o)).expect("write");
    assert_fails(
        &path,
        |e| matches!(e, InputError::Dicom { reason, .. } if reason.contains("0 bits stored")),
    );
}
