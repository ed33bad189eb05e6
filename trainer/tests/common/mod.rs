//! What the trainer's integration tests share: the data set and its split.

use std::path::PathBuf;

use trainer::data::{Listing, Split};

/// The data set: `TRAINER_DATA`, else `../shared/data/medical-mnist` beside the workspace.
/// Without it the tests fail, naming where they looked (a silent pass would assert nothing).
pub fn data_dir() -> PathBuf {
    let dir = std::env::var_os("TRAINER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/medical-mnist"));
    assert!(dir.is_dir(), "data set not found at {} (set TRAINER_DATA)", dir.display());
    dir
}

/// The data set's listing and `split-seed0.json` beside it (a seeded split without it),
/// limited to `per_class` training and a quarter as many test images per class.
pub fn split(per_class: usize) -> (Listing, Split) {
    let root = data_dir();
    let listing = Listing::scan(&root).expect("data set lists");
    let split_file = root.parent().map(|p| p.join("split-seed0.json")).filter(|p| p.exists());
    let split = match split_file {
        Some(path) => Split::from_file(&path, &listing).expect("split file"),
        None => Split::stratified(&listing, 0.2, 0),
    }
    .limit_per_class(&listing, per_class, 0);
    (listing, split)
}
