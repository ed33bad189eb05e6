use crate::common::{engine, sample, scratch};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, Tag};
use edge_runtime::preprocess::{self, InputError};
use edge_runtime::{EngineKind, Image};
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb};
use std::path::{Path, PathBuf};

fn first_image() -> (PathBuf, Image) {
    let (path, _, image) = sample(1).swap_remove(0);
    (path, image)
}

fn gray(image: &Image) -> ImageBuffer<Luma<u8>, Vec<u8>> {
    ImageBuffer::from_raw(64, 64, image.pixels().to_vec()).expect("64x64")
}

fn write(dir: &Path, name: &str, image: &DynamicImage, format: ImageFormat) -> PathBuf {
    let path = dir.join(name);
    image.save_with_format(&path, format).expect("encode");
    path
}

fn class_of(image: &Image) -> usize {
    engine(EngineKind::Float).classify(std::slice::from_ref(image)).expect("classify")[0].class
}

#[test]
fn lossless_formats_give_the_same_pixels_at_8_and_16_bit() {
    let dir = scratch("formats");
    let (_, original) = first_image();
    let gray8 = DynamicImage::ImageLuma8(gray(&original));
    let gray16 = DynamicImage::ImageLuma16(ImageBuffer::from_fn(64, 64, |x, y| {
        Luma([u16::from(original.pixels()[(y * 64 + x) as usize]) * 257])
    }));
    let rgb = DynamicImage::ImageRgb8(ImageBuffer::from_fn(64, 64, |x, y| {
        let p = original.pixels()[(y * 64 + x) as usize];
        Rgb([p, p, p])
    }));
    let cases = [
        write(&dir, "g8.png", &gray8, ImageFormat::Png),
        write(&dir, "g16.png", &gray16, ImageFormat::Png),
        write(&dir, "rgb.png", &rgb, ImageFormat::Png),
        write(&dir, "g8.bmp", &rgb, ImageFormat::Bmp),
        write(&dir, "g8.tiff", &gray8, ImageFormat::Tiff),
        write(&dir, "g16.tiff", &gray16, ImageFormat::Tiff),
        write(&dir, "rgb.tiff", &rgb, ImageFormat::Tiff),
    ];
    for path in cases {
        let decoded = preprocess::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded, original, "{}", path.display());
    }
}

#[test]
fn other_sizes_are_resized_and_keep_their_class() {
    let dir = scratch("sizes");
    let (_, original) = first_image();
    let big = image::imageops::resize(&gray(&original), 256, 200, image::imageops::FilterType::Triangle);
    let path = write(&dir, "big.jpeg", &DynamicImage::ImageLuma8(big), ImageFormat::Jpeg);
    let decoded = preprocess::load(&path).expect("decodes");
    assert_eq!(class_of(&decoded), class_of(&original));
    let tiny = write(&dir, "tiny.png", &DynamicImage::ImageLuma8(ImageBuffer::new(1, 1)), ImageFormat::Png);
    preprocess::load(&tiny).expect("a 1x1 image is still an image");
}

fn assert_fails(path: &Path, expected: fn(&InputError) -> bool) {
    match preprocess::load(path) {
        Ok(_) => panic!("{} decoded", path.display()),
        Err(e) => {
            assert!(expected(&e), "{}: unexpected {e:?}", path.display());
            assert_eq!(e.path(), path);
            assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
        }
    }
}

#[test]
fn bad_files_of_every_format_are_errors_with_the_path() {
    let dir = scratch("bad");
    let (source, original) = first_image();
    let gray8 = DynamicImage::ImageLuma8(gray(&original));
    let mut files = vec![std::fs::read(&source).expect("jpeg")];
    for format in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Tiff] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        gray8.write_to(&mut bytes, format).expect("encode");
        files.push(bytes.into_inner());
    }
    files.push(dicom_bytes(&original, Photometric::Mono2));
    for (i, bytes) in files.iter().enumerate() {
        // Cut inside the header: no decoder can make an image of it.
        let truncated = dir.join(format!("truncated-{i}"));
        std::fs::write(&truncated, &bytes[..bytes.len().min(140)]).expect("write");
        assert_fails(&truncated, |e| matches!(e, InputError::Decode { .. } | InputError::Dicom { .. }));
        // Garbage after a valid signature.
        let mut corrupt = bytes[..bytes.len().min(132)].to_vec();
        corrupt.extend(std::iter::repeat_n(0xA5, 4096));
        let path = dir.join(format!("corrupt-{i}"));
        std::fs::write(&path, &corrupt).expect("write");
        assert_fails(&path, |e| matches!(e, InputError::Decode { .. } | InputError::Dicom { .. }));
    }
    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").expect("write");
    assert_fails(&empty, |e| matches!(e, InputError::Empty { .. }));
    let text = dir.join("notes.jpg");
    std::fs::write(&text, b"patient notes, not an image").expect("write");
    assert_fails(&text, |e| matches!(e, InputError::Decode { .. }));
    assert_fails(&dir.join("missing.png"), |e| matches!(e, InputError::Io { .. }));
    // A DICOM file without pixel data (a structured report, say).
    let mut report = InMemDicomObject::new_empty();
    report.put(DataElement::new(Tag(0x0008, 0x0060), VR::CS, PrimitiveValue::from("SR")));
    let path = dir.join("report.dcm");
    std::fs::write(&path, dicom_file(report)).expect("write");
    assert_fails(&path, |e| matches!(e, InputError::Dicom { .. }));
}

enum Photometric {
    Mono2,
    Mono1,
}

/// A Part 10 file (preamble, meta group, explicit VR little endian data set).
fn dicom_file(object: InMemDicomObject) -> Vec<u8> {
    let file = object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                .media_storage_sop_instance_uid("1.2.3.4"),
        )
        .expect("meta");
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).expect("write DICOM");
    bytes
}

fn image_object(rows: u16, photometric: &str, bits: u16) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    let us = |v: u16| PrimitiveValue::from(v);
    o.put(DataElement::new(Tag(0x0028, 0x0002), VR::US, us(1)));
    o.put(DataElement::new(Tag(0x0028, 0x0004), VR::CS, PrimitiveValue::from(photometric)));
    o.put(DataElement::new(Tag(0x0028, 0x0010), VR::US, us(rows)));
    o.put(DataElement::new(Tag(0x0028, 0x0011), VR::US, us(rows)));
    o.put(DataElement::new(Tag(0x0028, 0x0100), VR::US, us(bits)));
    o.put(DataElement::new(Tag(0x0028, 0x0101), VR::US, us(bits)));
    o.put(DataElement::new(Tag(0x0028, 0x0102), VR::US, us(bits - 1)));
    o.put(DataElement::new(Tag(0x0028, 0x0103), VR::US, us(0)));
    o
}

/// 8-bit DICOM holding `image` (MONOCHROME1 stores it inverted, as such scanners do).
fn dicom_bytes(image: &Image, photometric: Photometric) -> Vec<u8> {
    let (name, pixels): (&str, Vec<u8>) = match photometric {
        Photometric::Mono2 => ("MONOCHROME2", image.pixels().to_vec()),
        Photometric::Mono1 => ("MONOCHROME1", image.pixels().iter().map(|p| 255 - p).collect()),
    };
    let mut o = image_object(64, name, 8);
    // A window spanning the whole 8-bit range, so the VOI LUT is the identity.
    o.put(DataElement::new(Tag(0x0028, 0x1050), VR::DS, PrimitiveValue::from("128")));
    o.put(DataElement::new(Tag(0x0028, 0x1051), VR::DS, PrimitiveValue::from("256")));
    o.put(DataElement::new(Tag(0x7FE0, 0x0010), VR::OB, PrimitiveValue::from(pixels)));
    dicom_file(o)
}

fn max_difference(a: &Image, b: &Image) -> u8 {
    a.pixels().iter().zip(b.pixels()).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0)
}

#[test]
fn dicom_monochrome2_and_monochrome1_read_as_the_original() {
    let dir = scratch("dicom");
    let (_, original) = first_image();
    for (name, photometric) in [("mono2.dcm", Photometric::Mono2), ("mono1.dcm", Photometric::Mono1)] {
        let path = dir.join(name);
        std::fs::write(&path, dicom_bytes(&original, photometric)).expect("write");
        let decoded = preprocess::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(max_difference(&decoded, &original) <= 1, "{name}");
        assert_eq!(class_of(&decoded), class_of(&original), "{name}");
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
    let mut o = image_object(128, "MONOCHROME2", 16);
    o.put(DataElement::new(Tag(0x0028, 0x1052), VR::DS, PrimitiveValue::from("-1024")));
    o.put(DataElement::new(Tag(0x0028, 0x1053), VR::DS, PrimitiveValue::from("1")));
    o.put(DataElement::new(Tag(0x0028, 0x1050), VR::DS, PrimitiveValue::from("1016")));
    o.put(DataElement::new(Tag(0x0028, 0x1051), VR::DS, PrimitiveValue::from("4080")));
    o.put(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16(stored.into())));
    let path = dir.join("ct16.dcm");
    std::fs::write(&path, dicom_file(o)).expect("write");
    let decoded = preprocess::load(&path).unwrap_or_else(|e| panic!("{e}"));
    // Expected: the same 128x128 pixels through the PNG path (resizing is not lossless, so
    // the original 64x64 is not the reference); the window's rounding allows 1.
    let png = write(&dir, "ct16.png", &DynamicImage::ImageLuma8(big), ImageFormat::Png);
    let expected = preprocess::load(&png).expect("png");
    assert!(max_difference(&decoded, &expected) <= 1, "{}", max_difference(&decoded, &expected));
    assert_eq!(class_of(&decoded), class_of(&original));
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

    let mut o = image_object(64, "MONOCHROME2", 8);
    o.put(DataElement::new(Tag(0x0028, 0x0101), VR::US, PrimitiveValue::from(0u16)));
    o.put(DataElement::new(Tag(0x7FE0, 0x0010), VR::OB, PrimitiveValue::from(original.pixels().to_vec())));
    let path = dir.join("no-bits-stored.dcm");
    std::fs::write(&path, dicom_file(o)).expect("write");
    assert_fails(
        &path,
        |e| matches!(e, InputError::Dicom { reason, .. } if reason.contains("0 bits stored")),
    );
}

#[test]
fn load_all_keeps_order_and_errors_across_threads() {
    let dir = scratch("load-all");
    let good: Vec<PathBuf> = sample(30).into_iter().map(|(p, _, _)| p).collect();
    let bad = dir.join("bad.png");
    std::fs::write(&bad, b"not a png").expect("write");
    // 180 good files with a bad one after every tenth: three decoding threads.
    let mut paths = Vec::new();
    for (i, path) in good.iter().enumerate() {
        paths.push(path.clone());
        if i % 10 == 9 {
            paths.push(bad.clone());
        }
    }
    let loaded = preprocess::load_all(&paths, 3);
    assert_eq!(loaded.len(), paths.len());
    for (path, result) in paths.iter().zip(&loaded) {
        match result {
            Ok(image) => assert_eq!(image, &preprocess::load(path).expect("good")),
            Err(e) => assert_eq!(e.path(), bad),
        }
    }
    assert_eq!(loaded.iter().filter(|r| r.is_err()).count(), 18);
}
