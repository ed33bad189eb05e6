use crate::common::{engine, sample, scratch};
use crate::dicom::{dicom_bytes, dicom_file, Photometric};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_object::{InMemDicomObject, Tag};
use edge_runtime::preprocess::{self, InputError};
use edge_runtime::{EngineKind, Image};
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb};
use std::path::{Path, PathBuf};

pub fn first_image() -> (PathBuf, Image) {
    let (path, _, image) = sample(1).swap_remove(0);
    (path, image)
}

pub fn gray(image: &Image) -> ImageBuffer<Luma<u8>, Vec<u8>> {
    ImageBuffer::from_raw(64, 64, image.pixels().to_vec()).expect("64x64")
}

pub fn write(dir: &Path, name: &str, image: &DynamicImage, format: ImageFormat) -> PathBuf {
    let path = dir.join(name);
    image.save_with_format(&path, format).expect("encode");
    path
}

pub fn class_of(image: &Image) -> usize {
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

pub fn assert_fails(path: &Path, expected: fn(&InputError) -> bool) {
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
