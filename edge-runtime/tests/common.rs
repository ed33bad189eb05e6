//! Paths and helpers shared by the test modules.

use edge_runtime::{Engine, EngineKind, Image, Options};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root (`edge-runtime/..`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed model.
pub fn models() -> PathBuf {
    workspace().join("models")
}

/// Medical MNIST beside the checkout.
pub fn data() -> PathBuf {
    workspace().join("../shared/data/medical-mnist")
}

/// The 11,791 test files of split-seed0 (relative to [`data`]), with their class index.
pub fn test_files() -> Vec<(PathBuf, usize)> {
    let path = workspace().join("../shared/data/split-seed0.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let split: serde_json::Value = serde_json::from_slice(&text).expect("split JSON");
    let files = split["test_files"].as_array().expect("test_files list");
    files
        .iter()
        .map(|f| {
            let f = f.as_str().expect("file name");
            let class = f.split('/').next().expect("class folder");
            let index = shared::model::CLASS_NAMES.iter().position(|c| *c == class).expect("known class");
            (data().join(f), index)
        })
        .collect()
}

/// A fresh scratch directory named `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edge-runtime").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The engine on the committed model, loaded once per kind for the whole binary.
pub fn engine(kind: EngineKind) -> &'static Engine {
    static FLOAT: OnceLock<Engine> = OnceLock::new();
    static FIXED: OnceLock<Engine> = OnceLock::new();
    let cell = if kind == EngineKind::Float { &FLOAT } else { &FIXED };
    cell.get_or_init(|| {
        Engine::load(models(), &Options { kind, ..Options::default() }).expect("committed model loads")
    })
}

/// A few test images (the first `per_class` of each class in the split), decoded.
pub fn sample(per_class: usize) -> Vec<(PathBuf, usize, Image)> {
    let mut counts = [0; shared::model::CLASSES];
    test_files()
        .into_iter()
        .filter(|(_, c)| {
            counts[*c] += 1;
            counts[*c] <= per_class
        })
        .map(|(p, c)| {
            let image = edge_runtime::preprocess::load(&p).expect("test image decodes");
            (p, c, image)
        })
        .collect()
}
