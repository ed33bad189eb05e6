use crate::common::{engine, sample, scratch};
use edge_runtime::watch::{Delivery, Event, Watcher};
use edge_runtime::EngineKind;
use std::path::Path;

/// Files under `root`, relative to it, sorted.
fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(relative) = path.strip_prefix(root) {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn drop_folder_moves_each_file_once_and_survives_bad_files_and_restarts() {
    let root = scratch("watch");
    let (drop, sorted) = (root.join("drop"), root.join("sorted"));
    std::fs::create_dir_all(&drop).expect("mkdir");
    let images = sample(1);
    let engine = engine(EngineKind::Float);
    let mut watcher = Watcher::open(&drop, None, Delivery::MoveTo(sorted.clone())).expect("open");

    for (i, (path, _, _)) in images.iter().enumerate() {
        std::fs::copy(path, drop.join(format!("scan-{i}.jpeg"))).expect("copy");
    }
    std::fs::write(drop.join("bad.png"), b"not a png").expect("write");
    // The first scan only sees the files; they are complete once unchanged for a scan.
    assert!(watcher.scan(engine).expect("scan").is_empty());
    let events = watcher.scan(engine).expect("scan");
    assert_eq!(events.len(), images.len() + 1);
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Failed(_))).count(), 1);
    let moved = files_under(&sorted);
    for (i, (_, class, _)) in images.iter().enumerate() {
        let name = format!("{}/scan-{i}.jpeg", shared::model::CLASS_NAMES[*class]);
        assert!(moved.contains(&name), "{name} not in {moved:?}");
    }
    // The bad file stays, and neither this watcher nor a restarted one reports it again.
    assert!(watcher.scan(engine).expect("scan").is_empty());
    std::mem::drop(watcher);
    let mut restarted = Watcher::open(&drop, None, Delivery::MoveTo(sorted.clone())).expect("reopen");
    assert!(restarted.scan(engine).expect("scan").is_empty());
    assert!(restarted.scan(engine).expect("scan").is_empty());
    // A new file with a used name is a new scan.
    std::fs::copy(&images[0].0, drop.join("scan-0.jpeg")).expect("copy");
    restarted.scan(engine).expect("scan");
    assert_eq!(restarted.scan(engine).expect("scan").len(), 1);
    assert!(files_under(&sorted).iter().any(|f| f.ends_with("scan-0-1.jpeg")));
}

#[test]
fn a_delivery_interrupted_by_a_crash_is_finished_without_classifying_again() {
    let root = scratch("watch-copy");
    let (drop, sorted) = (root.join("drop"), root.join("sorted"));
    std::fs::create_dir_all(&drop).expect("mkdir");
    let (path, class, _) = sample(1).swap_remove(0);
    std::fs::copy(&path, drop.join("a.jpeg")).expect("copy");
    let engine = engine(EngineKind::Float);
    let mut first = Watcher::open(&drop, None, Delivery::CopyTo(sorted.clone())).expect("open");
    first.scan(engine).expect("scan");
    assert_eq!(first.scan(engine).expect("scan").len(), 1);
    let copied = sorted.join(shared::model::CLASS_NAMES[class]).join("a.jpeg");
    assert!(copied.exists() && drop.join("a.jpeg").exists());
    // Recreate the state a crash after the first journal save leaves: classified, not
    // delivered.
    std::fs::remove_file(&copied).expect("remove");
    let journal = drop.join(edge_runtime::watch::DEFAULT_JOURNAL);
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&journal).expect("journal")).expect("json");
    state["a.jpeg"]["delivered"] = false.into();
    std::fs::write(&journal, serde_json::to_vec(&state).expect("json")).expect("write");
    let mut restarted = Watcher::open(&drop, None, Delivery::CopyTo(sorted.clone())).expect("reopen");
    assert!(restarted.scan(engine).expect("scan").is_empty(), "classified again");
    assert!(copied.exists());
    assert_eq!(files_under(&sorted).len(), 1);
}

#[test]
fn the_journal_forgets_files_that_left_the_folder() {
    let root = scratch("watch-journal");
    let (drop, sorted) = (root.join("drop"), root.join("sorted"));
    std::fs::create_dir_all(drop.join("sub")).expect("mkdir");
    let (path, _, _) = sample(1).swap_remove(0);
    std::fs::copy(&path, drop.join("sub/a.jpeg")).expect("copy");
    let engine = engine(EngineKind::Float);
    let mut watcher = Watcher::open(&drop, None, Delivery::MoveTo(sorted)).expect("open");
    watcher.scan(engine).expect("scan");
    assert_eq!(watcher.scan(engine).expect("scan").len(), 1);
    let journal = drop.join(edge_runtime::watch::DEFAULT_JOURNAL);
    let read = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&journal).expect("journal")).expect("json")
    };
    assert!(read().get("sub/a.jpeg").is_some());
    // The file was moved out and its sub-folder removed: its entry goes.
    std::fs::remove_dir(drop.join("sub")).expect("rmdir");
    assert!(watcher.scan(engine).expect("scan").is_empty());
    assert_eq!(read(), serde_json::json!({}));
}

/// Linux file names are bytes: one that is not UTF-8 (a journal key cannot hold it exactly)
/// is still classified once and moved.
#[test]
fn a_file_name_that_is_not_utf8_is_handled_once() {
    use std::os::unix::ffi::OsStrExt;
    let root = scratch("watch-bytes");
    let (drop, sorted) = (root.join("drop"), root.join("sorted"));
    std::fs::create_dir_all(&drop).expect("mkdir");
    let (path, class, _) = sample(1).swap_remove(0);
    let name = std::ffi::OsStr::from_bytes(b"scan-\xff.jpeg");
    std::fs::copy(&path, drop.join(name)).expect("copy");
    let engine = engine(EngineKind::Float);
    let mut watcher = Watcher::open(&drop, None, Delivery::MoveTo(sorted.clone())).expect("open");
    let events: usize = (0..5).map(|_| watcher.scan(engine).expect("scan").len()).sum();
    assert_eq!(events, 1);
    assert!(sorted.join(shared::model::CLASS_NAMES[class]).join(name).exists());
}
