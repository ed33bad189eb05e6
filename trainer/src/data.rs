//! Medical MNIST on disk -> decoded u8 images in memory -> batches of tensors.
//!
//! Layout: one folder per class under the data root; classes (label order) are the sorted folder
//! names, files within a class are sorted by name. Every image is decoded once, in parallel, to
//! 64x64 gray u8. An image of another size or colour type is converted to 8-bit luma and resized
//! to 64x64 with a triangle (bilinear) filter; the model input is then `u8 / 255`, with no
//! further normalization (every runtime applies the same).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use image::imageops::FilterType;
use rayon::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Side of the square input images.
pub const IMAGE_SIDE: usize = 64;
/// Pixels per image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Errors while reading the data set or the split file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} holds no class folders (expected one folder of images per class)")]
    NoClasses(PathBuf),
    #[error("class folder {0} holds no files")]
    EmptyClass(PathBuf),
    #[error("{0} classes found; labels are stored as u8, so at most 256 are supported")]
    TooManyClasses(usize),
    #[error("split file {path}: {reason}")]
    Split { path: PathBuf, reason: String },
    #[error("no image of {0} could be decoded")]
    NothingDecoded(PathBuf),
    #[error("cannot decode {path}: {source}")]
    Decode { path: PathBuf, source: image::ImageError },
}

/// The files of a data set, before decoding.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The data set folder.
    pub root: PathBuf,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// `(class label, path relative to the root with '/' separators)`, class-then-name order.
    pub files: Vec<(u8, String)>,
}

impl Listing {
    /// Lists `root`, one sub-folder per class.
    ///
    /// # Errors
    /// [`DataError::Io`] when a folder cannot be read, [`DataError::NoClasses`] when `root` has no
    /// sub-folders, [`DataError::EmptyClass`] when a class folder holds no files.
    pub fn scan(root: &Path) -> Result<Self, DataError> {
        let mut classes = Vec::new();
        for entry in fs::read_dir(root).map_err(io_at(root))? {
            let entry = entry.map_err(io_at(root))?;
            if entry.file_type().map_err(io_at(root))?.is_dir() && !is_hidden(&entry.file_name()) {
                classes.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(DataError::NoClasses(root.to_path_buf()));
        }
        if classes.len() > 256 {
            return Err(DataError::TooManyClasses(classes.len()));
        }
        let mut files = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            let mut names = Vec::new();
            for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
                let entry = entry.map_err(io_at(&dir))?;
                if entry.file_type().map_err(io_at(&dir))?.is_file() && !is_hidden(&entry.file_name()) {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            if names.is_empty() {
                return Err(DataError::EmptyClass(dir));
            }
            names.sort();
            files.extend(names.into_iter().map(|name| (label as u8, format!("{class}/{name}"))));
        }
        Ok(Self { root: root.to_path_buf(), classes, files })
    }

    /// Indices into `files`, grouped by class.
    fn by_class(&self) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); self.classes.len()];
        for (i, (label, _)) in self.files.iter().enumerate() {
            groups[*label as usize].push(i);
        }
        groups
    }
}

/// Wraps an I/O error with the path it happened at.
fn io_at(path: &Path) -> impl Fn(std::io::Error) -> DataError {
    let path = path.to_path_buf();
    move |source| DataError::Io { path: path.clone(), source }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Which listed files train and which test (indices into [`Listing::files`], ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
    /// Where the split came from, for the model card.
    pub source: String,
}

#[derive(Deserialize)]
struct SplitFile {
    test_files: Vec<String>,
}

impl Split {
    /// The split whose test files a split file lists (`{"test_files": ["Class/name", ...]}`,
    /// as `split-seed0.json`); every other listed file trains.
    ///
    /// # Errors
    /// [`DataError::Split`] when the file cannot be read or parsed, or names a file the data set
    /// does not hold.
    pub fn from_file(path: &Path, listing: &Listing) -> Result<Self, DataError> {
        let fail = |reason: String| DataError::Split { path: path.to_path_buf(), reason };
        let text = fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let parsed: SplitFile = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let index: HashMap<&str, usize> =
            listing.files.iter().enumerate().map(|(i, (_, name))| (name.as_str(), i)).collect();
        let mut is_test = vec![false; listing.files.len()];
        let mut missing = Vec::new();
        for name in &parsed.test_files {
            match index.get(name.as_str()) {
                Some(&i) => is_test[i] = true,
                None => missing.push(name.as_str()),
            }
        }
        if !missing.is_empty() {
            let shown = missing.iter().take(3).copied().collect::<Vec<_>>().join(", ");
            return Err(fail(format!(
                "{} test files are not in {} (e.g. {shown}): wrong data folder?",
                missing.len(),
                listing.root.display()
            )));
        }
        let (test, train) = (0..listing.files.len()).partition(|&i| is_test[i]);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let digest = hex(&Sha256::digest(text.as_bytes()));
        Ok(Self { train, test, source: format!("{name} (sha256 {digest})") })
    }

    /// A seeded stratified split: `round(test_fraction * n_c)` random files of each class test.
    pub fn stratified(listing: &Listing, test_fraction: f64, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for mut group in listing.by_class() {
            rng.shuffle(&mut group);
            let n_test = (test_fraction * group.len() as f64).round() as usize;
            test.extend_from_slice(&group[..n_test]);
            train.extend_from_slice(&group[n_test..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        Self {
            train,
            test,
            source: format!(
                "stratified {:.0}/{:.0}, seed {seed}",
                100.0 * (1.0 - test_fraction),
                100.0 * test_fraction
            ),
        }
    }

    /// Keeps at most `per_class` training and `per_class / 4` (at least 1) test files of each
    /// class, chosen with `seed`: quick runs with the same class balance.
    pub fn limit_per_class(&self, listing: &Listing, per_class: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0x5eed_1111);
        let mut pick = |indices: &[usize], keep: usize| {
            let mut groups = vec![Vec::new(); listing.classes.len()];
            for &i in indices {
                groups[listing.files[i].0 as usize].push(i);
            }
            let mut kept: Vec<usize> = groups
                .into_iter()
                .flat_map(|mut g| {
                    rng.shuffle(&mut g);
                    g.truncate(keep);
                    g
                })
                .collect();
            kept.sort_unstable();
            kept
        };
        Self {
            train: pick(&self.train, per_class),
            test: pick(&self.test, (per_class / 4).max(1)),
            source: format!("{}, at most {per_class} train images per class", self.source),
        }
    }
}

/// Decoded images, row-major `[n, 64, 64]` u8, with their labels.
#[derive(Debug, Clone, Default)]
pub struct Images {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    /// Index into [`Listing::files`] of each image.
    pub files: Vec<usize>,
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
    }
}

/// What decoding found besides the images.
#[derive(Debug, Clone, Default)]
pub struct DecodeReport {
    /// Files that could not be read or decoded, with the reason; they were skipped.
    pub skipped: Vec<(PathBuf, String)>,
    /// Images converted because they were not 64x64 8-bit gray.
    pub converted: usize,
    /// SHA-256 over every decoded file's relative path and bytes, in listing order.
    pub content_hash: String,
}

/// Decodes the listed files `indices` in parallel. Unreadable files are skipped and reported.
///
/// # Errors
/// [`DataError::NothingDecoded`] when `indices` is not empty but no file could be decoded.
pub fn decode(listing: &Listing, indices: &[usize]) -> Result<(Images, DecodeReport), DataError> {
    let results: Vec<_> = indices
        .par_iter()
        .map(|&i| {
            let (label, name) = &listing.files[i];
            let path = listing.root.join(name);
            let decoded = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| decode_gray64(&bytes).map(|d| (d, bytes)).map_err(|e| e.to_string()));
            match decoded {
                Ok(((pixels, converted), bytes)) => {
                    let digest = Sha256::new().chain_update(name.as_bytes()).chain_update(&bytes).finalize();
                    Ok((i, *label, pixels, converted, digest))
                }
                Err(reason) => Err((path, reason)),
            }
        })
        .collect();
    let mut images = Images {
        pixels: Vec::with_capacity(indices.len() * IMAGE_PIXELS),
        labels: Vec::with_capacity(indices.len()),
        files: Vec::with_capacity(indices.len()),
    };
    let mut report = DecodeReport::default();
    let mut hash = Sha256::new();
    for result in results {
        match result {
            Ok((file, label, pixels, converted, digest)) => {
                images.pixels.extend_from_slice(&pixels);
                images.labels.push(label);
                images.files.push(file);
                report.converted += usize::from(converted);
                hash.update(digest);
            }
            Err(skipped) => report.skipped.push(skipped),
        }
    }
    if images.is_empty() && !indices.is_empty() {
        return Err(DataError::NothingDecoded(listing.root.clone()));
    }
    report.content_hash = hex(&hash.finalize());
    Ok((images, report))
}

/// A split's images, decoded: `train` and `test` index into `images`.
#[derive(Debug, Clone, Default)]
pub struct SplitImages {
    pub images: Images,
    pub train: Vec<usize>,
    pub test: Vec<usize>,
    pub report: DecodeReport,
}

/// Decodes the files `train` and `test` (indices into [`Listing::files`]) and says which
/// decoded image is which. Skipped files are in the report, as with [`decode`].
///
/// # Errors
/// As [`decode`].
pub fn decode_split(listing: &Listing, train: &[usize], test: &[usize]) -> Result<SplitImages, DataError> {
    let mut wanted: Vec<usize> = train.iter().chain(test).copied().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let (images, report) = decode(listing, &wanted)?;
    let mut is_test = vec![false; listing.files.len()];
    test.iter().for_each(|&i| is_test[i] = true);
    let (test, train) = (0..images.len()).partition(|&i| is_test[images.files[i]]);
    Ok(SplitImages { images, train, test, report })
}

/// Decodes one image file's bytes to 64x64 gray u8; also says whether it had to be converted.
///
/// # Errors
/// The decoder's error for bytes that are not a supported image (JPEG, PNG).
pub fn decode_gray64(bytes: &[u8]) -> Result<(Vec<u8>, bool), image::ImageError> {
    let decoded = image::load_from_memory(bytes)?;
    let side = IMAGE_SIDE as u32;
    if let image::DynamicImage::ImageLuma8(gray) = &decoded {
        if gray.width() == side && gray.height() == side {
            return Ok((gray.as_raw().clone(), false));
        }
    }
    let gray = decoded.to_luma8();
    let resized = if gray.width() == side && gray.height() == side {
        gray
    } else {
        image::imageops::resize(&gray, side, side, FilterType::Triangle)
    };
    Ok((resized.into_raw(), true))
}

/// Reads and decodes one image file (for `predict`).
///
/// # Errors
/// [`DataError::Io`] or [`DataError::Decode`].
pub fn load_image(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    decode_gray64(&bytes)
        .map(|(pixels, _)| pixels)
        .map_err(|source| DataError::Decode { path: path.to_path_buf(), source })
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A batch ready for the model.
pub struct Batch {
    /// `[b, 1, 64, 64]`, pixels / 255.
    pub images: Tensor<4>,
    /// `[b]` class labels.
    pub labels: Tensor<1, Int>,
    /// The same labels as class indices, for the fused loss and for counting right answers.
    pub classes: Vec<usize>,
}

/// Builds the batch of images `indices` on `device`.
pub fn batch(images: &Images, indices: &[usize], device: &Device) -> Batch {
    let classes: Vec<usize> = indices.iter().map(|&i| usize::from(images.labels[i])).collect();
    let labels: Vec<i64> = classes.iter().map(|&class| class as i64).collect();
    Batch {
        images: images_tensor(indices.iter().map(|&i| images.image(i)), device),
        labels: Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        classes,
    }
}

/// `[b, 1, 64, 64]` f32 tensor of `u8 / 255` from gray 64x64 images.
pub fn images_tensor<'a>(images: impl ExactSizeIterator<Item = &'a [u8]>, device: &Device) -> Tensor<4> {
    let count = images.len();
    let mut values = Vec::with_capacity(count * IMAGE_PIXELS);
    for image in images {
        values.extend(image.iter().map(|&p| f32::from(p) / 255.0));
    }
    Tensor::from_data(TensorData::new(values, [count, 1, IMAGE_SIDE, IMAGE_SIDE]), device)
}

/// SplitMix64: a tiny, fast, seedable generator; enough for shuffling, and the same on every
/// platform, so a seed names one run.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            // The modulo bias is below 2^-50 for any slice that fits in memory.
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, width: u32, height: u32) {
        let img =
            image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 7]));
        img.save(path).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trainer-data-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn converts_odd_images_and_skips_unreadable_ones() {
        let root = temp_dir("convert");
        for class in ["b", "a"] {
            fs::create_dir(root.join(class)).unwrap();
        }
        write_png(&root.join("a/x.png"), 100, 80);
        let gray = image::GrayImage::from_pixel(64, 64, image::Luma([9]));
        gray.save(root.join("b/y.png")).unwrap();
        fs::write(root.join("b/broken.jpeg"), b"not an image").unwrap();

        let listing = Listing::scan(&root).unwrap();
        assert_eq!(listing.classes, ["a", "b"]);
        let all: Vec<usize> = (0..listing.files.len()).collect();
        let (images, report) = decode(&listing, &all).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images.labels, [0, 1]);
        assert_eq!(report.converted, 1);
        assert_eq!(report.skipped.len(), 1);
        assert!(report.skipped[0].0.ends_with("b/broken.jpeg"));
        assert!(images.image(1).iter().all(|&p| p == 9));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn empty_or_wrong_folders_are_clear_errors() {
        let root = temp_dir("empty");
        assert!(matches!(Listing::scan(&root), Err(DataError::NoClasses(_))));
        fs::create_dir(root.join("a")).unwrap();
        assert!(matches!(Listing::scan(&root), Err(DataError::EmptyClass(_))));
        assert!(matches!(Listing::scan(&root.join("missing")), Err(DataError::Io { .. })));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn stratified_split_is_seeded_and_balanced() {
        let files = (0..50).map(|i| ((i % 2) as u8, format!("c{}/{i:03}", i % 2))).collect();
        let listing = Listing { root: PathBuf::new(), classes: vec!["c0".into(), "c1".into()], files };
        let a = Split::stratified(&listing, 0.2, 7);
        assert_eq!(a, Split::stratified(&listing, 0.2, 7));
        assert_ne!(a.test, Split::stratified(&listing, 0.2, 8).test);
        assert_eq!(a.test.len(), 10);
        assert_eq!(a.test.iter().filter(|&&i| listing.files[i].0 == 0).count(), 5);
        let limited = a.limit_per_class(&listing, 4, 7);
        assert_eq!((limited.train.len(), limited.test.len()), (8, 2));
    }
}
