use crate::common::{engine, sample, scratch};
use edge_runtime::EngineKind;
use serialport::{SerialPort, TTYPort};
use shared::model::{CLASSES, CLASS_NAMES};
use shared::proto::{Classification, ModelHash, Responder};
use std::io::{ErrorKind, Read, Write};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A device on the far end of a pseudo-terminal: the firmware's protocol logic
/// ([`Responder`]) around the host's integer model, answering until dropped.
pub struct FakeDevice {
    pub port: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDevice {
    pub fn start(model: ModelHash) -> Self {
        let (mut device, host) = TTYPort::pair().expect("pseudo-terminal pair");
        let port = host.name().expect("pty name");
        device.set_timeout(Duration::from_millis(20)).expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            // The host end must stay open until the test's tool has opened it by name.
            let _host = host;
            let engine = engine(EngineKind::Fixed);
            let mut responder = Responder::new(model, true);
            let mut classify = |pixels: &[u8; shared::model::IMAGE_LEN]| {
                let image = edge_runtime::Image::from_pixels(pixels.to_vec()).expect("64x64");
                let p = engine.classify_integer(&[image]).expect("integer model").remove(0);
                Ok(Classification { class: p.class, logits: p.logits, elapsed_us: 1 })
            };
            let mut buf = [0u8; 256];
            while !stopped.load(Ordering::Relaxed) {
                let mut input = match device.read(&mut buf) {
                    Ok(n) => &buf[..n],
                    Err(e) if e.kind() == ErrorKind::TimedOut => continue,
                    Err(_) => return,
                };
                while !input.is_empty() {
                    let (reply, rest) = responder.process(input, &mut classify);
                    if let Some(reply) = reply {
                        let _ = device.write_all(reply.frame);
                    }
                    input = rest;
                }
            }
        });
        Self { port, stop, thread: Some(thread) }
    }
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn stream(port: &str, extra: &[&str], files: &[std::path::PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
        .args(["--json", "stream", "--port", port])
        .args(extra)
        .args(files)
        .output()
        .expect("run edge-runtime")
}

#[test]
fn stream_prints_the_device_answers_and_reports_bad_files() {
    let device = FakeDevice::start(engine(EngineKind::Fixed).model_hash());
    let images = sample(2);
    let mut files: Vec<_> = images.iter().map(|(p, _, _)| p.clone()).collect();
    let broken = scratch("stream").join("broken.jpeg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really").expect("write");
    files.insert(3, broken);

    let out = stream(&device.port, &["--verify"], &files);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a bad file fails the run: {stderr}");
    assert!(stderr.contains("broken.jpeg"), "{stderr}");
    assert!(stderr.contains("0 answers differ"), "{stderr}");
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), images.len(), "one row per good file");
    let host = engine(EngineKind::Fixed)
        .classify_integer(&images.iter().map(|(_, _, i)| i.clone()).collect::<Vec<_>>())
        .expect("host");
    for ((row, (path, _, _)), want) in rows.iter().zip(&images).zip(&host) {
        assert_eq!(row["file"].as_str(), path.to_str());
        assert_eq!(row["class"].as_str(), Some(CLASS_NAMES[usize::from(want.class)]));
        let logits: Vec<i64> =
            row["device"]["logits"].as_array().expect("logits").iter().filter_map(|v| v.as_i64()).collect();
        assert_eq!(logits, want.logits.map(i64::from), "{}", path.display());
        assert_eq!(row["probabilities"].as_object().map(|p| p.len()), Some(CLASSES));
    }
}

#[test]
fn a_device_with_another_model_is_refused() {
    let device = FakeDevice::start(ModelHash([0xAB; 32]));
    let files = vec![sample(1).remove(0).0];
    let out = stream(&device.port, &[], &files);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&"ab".repeat(32)) && stderr.contains("flash the firmware"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_silent_port_and_a_missing_port_are_clear_errors() {
    let (_device, host) = TTYPort::pair().expect("pseudo-terminal pair");
    let port = host.name().expect("pty name");
    let files = vec![sample(1).remove(0).0];
    let out = stream(&port, &["--timeout", "0.5"], &files);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no answer to the handshake from the device in 0.5 s"), "{stderr}");

    let out = stream("/dev/no-such-port", &[], &files);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot open /dev/no-such-port"), "{stderr}");
}
