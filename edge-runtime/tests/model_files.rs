use crate::common::{models, scratch};
use edge_runtime::artifacts::{FULL_ONNX_FILE, INT_CNN_FILE, MODEL_CARD_FILE, ONNX_FILE, QUANTUM_HEAD_FILE};
use edge_runtime::{Engine, EngineKind, LoadError, Options};
use std::path::{Path, PathBuf};

/// A copy of the committed model set in a scratch directory.
fn copy_models(name: &str) -> PathBuf {
    let dir = scratch(name);
    for entry in std::fs::read_dir(models()).expect("models/") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
    }
    dir
}

fn load(dir: &Path) -> Result<Engine, LoadError> {
    Engine::load(dir, &Options::default())
}

/// Rewrites the card's entry for `file` to match its current bytes, as a tamperer who also
/// edits the card would; the parsers must then catch what the checksum no longer does.
fn reseal(dir: &Path, file: &str) {
    use sha2::Digest;
    let bytes = std::fs::read(dir.join(file)).expect("artifact");
    let card_path = dir.join(MODEL_CARD_FILE);
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&card_path).expect("card")).expect("json");
    let entry = card["artifacts"]
        .as_array_mut()
        .expect("list")
        .iter_mut()
        .find(|a| a["file"] == file)
        .expect("listed");
    entry["sha256"] =
        sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>().into();
    entry["bytes"] = bytes.len().into();
    std::fs::write(&card_path, serde_json::to_vec(&card).expect("json")).expect("write card");
}

#[test]
fn the_committed_model_loads_in_every_engine() {
    let dir = copy_models("intact");
    load(&dir).expect("float");
    Engine::load(&dir, &Options { kind: EngineKind::Onnx, ..Options::default() }).expect("onnx");
    Engine::load(&dir, &Options { kind: EngineKind::Fixed, ..Options::default() }).expect("fixed");
}

#[test]
fn the_whole_model_graph_is_verified_and_parsed() {
    let onnx = Options { kind: EngineKind::Onnx, ..Options::default() };
    let dir = copy_models("damaged-full-onnx");
    let path = dir.join(FULL_ONNX_FILE);
    let mut bytes = std::fs::read(&path).expect("hybrid-full.onnx");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).expect("damage");
    let err = Engine::load(&dir, &onnx).expect_err("refused");
    assert!(matches!(err, LoadError::Mismatch { what: "sha256", .. }), "{err}");
    assert!(err.to_string().contains(FULL_ONNX_FILE), "{err}");
    // The other engines do not read it.
    load(&dir).expect("float engine without the whole-model graph");

    std::fs::remove_file(&path).expect("remove");
    let err = Engine::load(&dir, &onnx).expect_err("missing file refused");
    assert!(err.to_string().contains(FULL_ONNX_FILE), "{err}");
}

#[test]
fn truncated_onnx_is_a_size_mismatch() {
    let dir = copy_models("truncated-onnx");
    let path = dir.join(ONNX_FILE);
    let bytes = std::fs::read(&path).expect("onnx");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = load(&dir).expect_err("refused");
    assert!(matches!(err, LoadError::Mismatch { what: "size", .. }), "{err}");
    assert!(err.to_string().contains(ONNX_FILE), "{err}");
    // With the card resealed the checksum passes and tract itself refuses the graph.
    reseal(&dir, ONNX_FILE);
    assert!(matches!(load(&dir), Err(LoadError::Onnx { .. })));
}

#[test]
fn a_flipped_byte_is_a_checksum_error_in_every_artifact() {
    for file in [ONNX_FILE, QUANTUM_HEAD_FILE, INT_CNN_FILE] {
        let dir = copy_models(&format!("flipped-{file}"));
        let path = dir.join(file);
        let mut bytes = std::fs::read(&path).expect("artifact");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let err = load(&dir).expect_err("refused");
        assert!(matches!(err, LoadError::Mismatch { what: "sha256", .. }), "{file}: {err}");
    }
}

#[test]
fn a_resealed_qmed_with_a_flipped_byte_fails_its_crc() {
    for file in [QUANTUM_HEAD_FILE, INT_CNN_FILE] {
        let dir = copy_models(&format!("resealed-{file}"));
        let path = dir.join(file);
        let mut bytes = std::fs::read(&path).expect("artifact");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        reseal(&dir, file);
        let err = load(&dir).expect_err("refused");
        assert!(matches!(err, LoadError::Artifact { .. }), "{file}: {err}");
    }
}

#[test]
fn missing_files_are_io_errors_naming_the_file() {
    for file in [ONNX_FILE, QUANTUM_HEAD_FILE, INT_CNN_FILE, MODEL_CARD_FILE] {
        let dir = copy_models(&format!("missing-{file}"));
        std::fs::remove_file(dir.join(file)).expect("remove");
        let err = load(&dir).expect_err("refused");
        assert!(matches!(err, LoadError::Io { .. }), "{file}: {err}");
        assert!(err.to_string().contains(file), "{err}");
    }
}

#[test]
fn an_artifact_missing_from_the_card_or_a_broken_card_is_refused() {
    let dir = copy_models("unlisted");
    let card_path = dir.join(MODEL_CARD_FILE);
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&card_path).expect("card")).expect("json");
    card["artifacts"].as_array_mut().expect("list").retain(|a| a["file"] != QUANTUM_HEAD_FILE);
    std::fs::write(&card_path, serde_json::to_vec(&card).expect("json")).expect("write");
    assert!(matches!(load(&dir), Err(LoadError::NotListed { .. })));

    card["classes"][0] = "Knee".into();
    std::fs::write(&card_path, serde_json::to_vec(&card).expect("json")).expect("write");
    assert!(matches!(load(&dir), Err(LoadError::Classes { .. })));

    std::fs::write(&card_path, b"{\"classes\": [").expect("write");
    assert!(matches!(load(&dir), Err(LoadError::Card { .. })));
}
