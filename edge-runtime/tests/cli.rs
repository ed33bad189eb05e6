use crate::common::{sample, scratch, test_files};
use std::process::Command;

fn edge_runtime() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
}

#[test]
fn classify_reports_every_file_and_fails_when_one_is_bad() {
    let dir = scratch("cli");
    let files = sample(1);
    for (path, _, _) in &files {
        std::fs::copy(path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    // Same file names in different classes: keep them apart in sub-folders.
    let nested = dir.join("nested/deeper");
    std::fs::create_dir_all(&nested).expect("mkdir");
    std::fs::copy(&files[0].0, nested.join("again.jpeg")).expect("copy");
    std::fs::write(dir.join("broken.png"), b"\x89PNG\r\n\x1a\nbroken").expect("write");

    let out = edge_runtime().args(["classify", "--json"]).arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.png"), "{stderr}");
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    // Each class folder's first file is unique by name, except where two share one.
    assert!(rows.len() >= 2, "{rows:?}");
    assert!(rows.iter().any(|r| r["file"].as_str().is_some_and(|f| f.ends_with("again.jpeg"))));
    assert!(rows.iter().all(|r| r["probabilities"].as_object().is_some_and(|p| p.len() == 6)));

    // Good files only: exit 0, and the table and CSV have one row per file.
    let good: Vec<_> = test_files().into_iter().take(3).map(|(p, _)| p).collect();
    for (flag, header) in [("--csv", 1), ("--format=table", 1)] {
        let out = edge_runtime().arg("classify").arg(flag).args(&good).output().expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), good.len() + header);
        assert!(String::from_utf8_lossy(&out.stdout).contains("AbdomenCT"));
    }
    let out = edge_runtime()
        .args(["classify", "--engine", "fixed", "--threads", "1"])
        .args(&good)
        .output()
        .expect("run");
    assert!(out.status.success());
}

#[test]
fn watch_refuses_a_zero_interval() {
    let dir = scratch("cli-watch-interval");
    let out = edge_runtime().arg("watch").arg(&dir).args(["--interval", "0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval"));
}

#[test]
fn a_bad_model_directory_exits_2_with_the_reason() {
    let dir = scratch("cli-no-model");
    let out = edge_runtime().arg("--model").arg(&dir).args(["classify", "x.png"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model-card.json"));
}

#[test]
fn folder_links_are_not_followed_and_a_closed_pipe_is_not_an_error() {
    let dir = scratch("cli-links");
    let (path, _, _) = sample(1).swap_remove(0);
    std::fs::create_dir_all(dir.join("a")).expect("mkdir");
    std::fs::copy(&path, dir.join("a/scan.jpeg")).expect("copy");
    // A link back up the tree: followed, it would list scan.jpeg dozens of times.
    std::os::unix::fs::symlink("..", dir.join("a/up")).expect("symlink");
    let out = edge_runtime().args(["classify", "--csv"]).arg(&dir).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    // `edge-runtime classify ... | head -0`: the reader is gone before the first row.
    let mut child = edge_runtime()
        .args(["classify", "--csv"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
