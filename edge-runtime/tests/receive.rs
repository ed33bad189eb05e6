//! `receive`, the DICOM Storage SCP, against a sender made with dicom-ul's client: C-ECHO,
//! C-STORE of real test images over two associations at once (classes equal the engine's and
//! `classify`'s on the kept files), refusals (another AE title, undecodable and oversized data
//! sets), protocol faults (garbage, an abort in mid-transfer, silence), and a restart after a
//! torn journal line. dcmtk as the sender, 200+ images and every transfer syntax:
//! `cargo xtask dicom`.

use crate::common::{engine, sample, scratch};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociation, ClientAssociationOptions, Pdu};
use edge_runtime::{EngineKind, Image};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AE_TITLE: &str = "QMEDTEST";
/// Presentation context ids the test sender proposes (odd numbers, PS3.8 9.3.2.2).
const VERIFICATION_CONTEXT: u8 = 1;
const STORAGE_CONTEXT: u8 = 3;

/// `edge-runtime receive` on a free loopback port, its log collected.
struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    journal: PathBuf,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let journal = dir.join("journal.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
            .args([
                "--json",
                "receive",
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--ae-title",
                AE_TITLE,
                "--journal",
            ])
            .arg(&journal)
            .arg("--store-to")
            .arg(dir.join("store"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start edge-runtime receive");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(" listening on ").nth(1) {
                    let address = rest.split(',').next().unwrap_or_default().to_string();
                    let _ = address_tx.send(address);
                }
                lines.lock().expect("log").push(line);
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no `listening on` line: {:?}", log.lock().expect("log")));
        Self { child, address: address.parse().expect("socket address"), log, journal }
    }

    fn journal(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.journal)
            .expect("journal")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}")))
            .collect()
    }

    /// Waits until a log line contains `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.log.lock().expect("log").iter().any(|l| l.contains(text)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {text:?}: {:?}", self.log.lock().expect("log"));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(
    address: SocketAddr,
    called: &str,
) -> Result<ClientAssociation<TcpStream>, dicom_ul::association::Error> {
    ClientAssociationOptions::new()
        .calling_ae_title("TESTSCU")
        .called_ae_title(called)
        .with_presentation_context(uids::VERIFICATION, vec![IMPLICIT_VR_LITTLE_ENDIAN.uid()])
        .with_presentation_context(
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            vec![EXPLICIT_VR_LITTLE_ENDIAN.uid()],
        )
        .read_timeout(Duration::from_secs(30))
        .establish(address)
}

/// A Secondary Capture data set (explicit VR little endian, no file meta) holding `pixels` as
/// 8-bit MONOCHROME2 `rows` x 64.
fn data_set(sop_instance: &str, rows: u16, pixels: Vec<u8>) -> Vec<u8> {
    let mut o = InMemDicomObject::new_empty();
    let mut put = |tag, vr, value: PrimitiveValue| o.put(DataElement::new(tag, vr, value));
    put(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE.into());
    put(tags::SOP_INSTANCE_UID, VR::UI, sop_instance.into());
    put(tags::SAMPLES_PER_PIXEL, VR::US, 1u16.into());
    put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2".into());
    put(tags::ROWS, VR::US, rows.into());
    put(tags::COLUMNS, VR::US, 64u16.into());
    put(tags::BITS_ALLOCATED, VR::US, 8u16.into());
    put(tags::BITS_STORED, VR::US, 8u16.into());
    put(tags::HIGH_BIT, VR::US, 7u16.into());
    put(tags::PIXEL_REPRESENTATION, VR::US, 0u16.into());
    put(tags::PIXEL_DATA, VR::OB, pixels.into());
    let mut bytes = Vec::new();
    o.write_dataset_with_ts(&mut bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).expect("encode data set");
    bytes
}

fn image_data_set(sop_instance: &str, image: &Image) -> Vec<u8> {
    data_set(sop_instance, 64, image.pixels().to_vec())
}

fn command(elements: Vec<(dicom_core::Tag, VR, PrimitiveValue)>) -> Vec<u8> {
    let object = InMemDicomObject::command_from_element_iter(
        elements.into_iter().map(|(t, vr, v)| DataElement::new(t, vr, v)),
    );
    let mut bytes = Vec::new();
    object.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased()).expect("encode command");
    bytes
}

fn pdata(context: u8, value_type: PDataValueType, is_last: bool, data: Vec<u8>) -> Pdu {
    Pdu::PData { data: vec![PDataValue { presentation_context_id: context, value_type, is_last, data }] }
}

/// The status of the response the server sends next.
fn response_status(association: &mut ClientAssociation<TcpStream>) -> u16 {
    match association.receive().expect("a response") {
        Pdu::PData { data } => {
            let response = InMemDicomObject::read_dataset_with_ts(
                &data[0].data[..],
                &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
            )
            .expect("response command");
            response.element(tags::STATUS).expect("status").to_int::<u16>().expect("status value")
        }
        other => panic!("expected a response, got {other:?}"),
    }
}

fn echo(association: &mut ClientAssociation<TcpStream>) -> u16 {
    let rq = command(vec![
        (tags::AFFECTED_SOP_CLASS_UID, VR::UI, uids::VERIFICATION.into()),
        (tags::COMMAND_FIELD, VR::US, 0x0030u16.into()),
        (tags::MESSAGE_ID, VR::US, 1u16.into()),
        (tags::COMMAND_DATA_SET_TYPE, VR::US, 0x0101u16.into()),
    ]);
    association.send(&pdata(VERIFICATION_CONTEXT, PDataValueType::Command, true, rq)).expect("send C-ECHO");
    response_status(association)
}

/// Sends the C-STORE command and the data set in 16 KiB fragments, all but the last of
/// `send_last` fragments.
fn send_store(
    association: &mut ClientAssociation<TcpStream>,
    sop_instance: &str,
    data: &[u8],
    send_last: bool,
) {
    let rq = command(vec![
        (tags::AFFECTED_SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE.into()),
        (tags::COMMAND_FIELD, VR::US, 0x0001u16.into()),
        (tags::MESSAGE_ID, VR::US, 7u16.into()),
        (tags::PRIORITY, VR::US, 0u16.into()),
        (tags::COMMAND_DATA_SET_TYPE, VR::US, 0x0000u16.into()),
        (tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, sop_instance.into()),
    ]);
    association.send(&pdata(STORAGE_CONTEXT, PDataValueType::Command, true, rq)).expect("send C-STORE");
    let fragments: Vec<&[u8]> = data.chunks(16 << 10).collect();
    let count = if send_last { fragments.len() } else { fragments.len() - 1 };
    for (i, fragment) in fragments.iter().take(count).enumerate() {
        let last = i + 1 == fragments.len();
        association
            .send(&pdata(STORAGE_CONTEXT, PDataValueType::Data, last, fragment.to_vec()))
            .expect("send data");
    }
}

fn store(association: &mut ClientAssociation<TcpStream>, sop_instance: &str, data: &[u8]) -> u16 {
    send_store(association, sop_instance, data, true);
    response_status(association)
}

#[test]
fn images_are_classified_kept_and_journaled_like_classify() {
    let dir = scratch("receive-store");
    let server = Server::start(&dir, &[]);
    let images = sample(2);
    // Two senders at once, half the images each.
    std::thread::scope(|scope| {
        for (sender, share) in images.chunks(images.len().div_ceil(2)).enumerate() {
            let address = server.address;
            scope.spawn(move || {
                let mut association = connect(address, AE_TITLE).expect("association");
                assert_eq!(echo(&mut association), 0x0000);
                for (i, (_, _, image)) in share.iter().enumerate() {
                    let uid = format!("1.2.826.0.1.3680043.10.1.{sender}.{i}");
                    assert_eq!(store(&mut association, &uid, &image_data_set(&uid, image)), 0x0000, "{uid}");
                }
                association.release().expect("release");
            });
        }
    });
    server.wait_for_log("released the association after 6 images");
    let journal = server.journal();
    assert_eq!(journal.len(), images.len());
    let expected = engine(EngineKind::Float)
        .classify(&images.iter().map(|(_, _, i)| i.clone()).collect::<Vec<_>>())
        .expect("classify");
    let mut kept = Vec::new();
    for (sender, share) in images.chunks(images.len().div_ceil(2)).enumerate() {
        for (i, _) in share.iter().enumerate() {
            let uid = format!("1.2.826.0.1.3680043.10.1.{sender}.{i}");
            let entry =
                journal.iter().find(|e| e["dicom"]["sop_instance_uid"] == uid.as_str()).expect("journaled");
            let prediction = &expected[sender * images.len().div_ceil(2) + i];
            assert_eq!(entry["class"], prediction.class_name(), "{uid}");
            assert_eq!(entry["dicom"]["calling_ae"], "TESTSCU");
            let file = PathBuf::from(entry["file"].as_str().expect("file"));
            assert_eq!(file, dir.join("store").join(prediction.class_name()).join(format!("{uid}.dcm")));
            kept.push((file, prediction.class_name()));
        }
    }
    // The kept files are complete DICOM files that `classify` reads to the same classes.
    let out = Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
        .args(["--json", "classify"])
        .args(kept.iter().map(|(f, _)| f))
        .output()
        .expect("classify");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    for (row, (file, class)) in rows.iter().zip(&kept) {
        assert_eq!(row["file"], file.to_string_lossy().as_ref());
        assert_eq!(row["class"], *class);
    }
}

#[test]
fn bad_senders_and_data_sets_are_refused_and_the_server_goes_on() {
    let dir = scratch("receive-refuse");
    let server = Server::start(&dir, &["--max-object-mib", "1", "--timeout", "3"]);
    let (_, _, image) = sample(1).swap_remove(0);

    // Another AE title: rejected at association.
    let refused = connect(server.address, "SOMEONE");
    assert!(refused.is_err(), "an association calling another AE title was accepted");
    server.wait_for_log("association refused");

    // Not DICOM at all.
    let mut garbage = TcpStream::connect(server.address).expect("connect");
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n").expect("write");
    drop(garbage);

    let mut association = connect(server.address, AE_TITLE).expect("association");
    // Pixel data shorter than Rows x Columns: cannot be decoded, answered C000.
    let truncated = data_set("1.2.3.4.1", 64, vec![0u8; 100]);
    assert_eq!(store(&mut association, "1.2.3.4.1", &truncated), 0xC000);
    // 2 MiB over a 1 MiB limit: answered A700 once all of it has arrived.
    let big = data_set("1.2.3.4.2", 32 << 10, vec![7u8; 2 << 20]);
    assert_eq!(store(&mut association, "1.2.3.4.2", &big), 0xA700);
    // The same association still stores a good image.
    assert_eq!(store(&mut association, "1.2.3.4.3", &image_data_set("1.2.3.4.3", &image)), 0x0000);
    association.release().expect("release");

    // An abort in mid-transfer: nothing journaled for that image.
    let mut association = connect(server.address, AE_TITLE).expect("association");
    send_store(&mut association, "1.2.3.4.4", &data_set("1.2.3.4.4", 1024, vec![1u8; 64 << 10]), false);
    association.abort().expect("abort");
    server.wait_for_log("the data set in transfer was dropped unacknowledged");

    // A malformed PDU inside an association: a P-DATA whose item claims more bytes than the
    // PDU holds. The server aborts that association.
    let mut broken = connect(server.address, AE_TITLE).expect("association");
    broken.inner_stream().write_all(&[0x04, 0, 0, 0, 0, 6, 0, 0, 0, 0x40, 3, 0]).expect("write");
    match broken.receive() {
        Ok(Pdu::AbortRQ { .. }) | Err(_) => {}
        Ok(other) => panic!("a malformed PDU was answered with {other:?}"),
    }
    server.wait_for_log("association with TESTSCU aborted after 0 images");

    // Silence beyond --timeout: the server aborts the association.
    let mut silent = connect(server.address, AE_TITLE).expect("association");
    std::thread::sleep(Duration::from_secs(4));
    match silent.receive() {
        Ok(Pdu::AbortRQ { .. }) | Err(_) => {}
        Ok(other) => panic!("a silent association was kept: {other:?}"),
    }
    server.wait_for_log("nothing received for 3s (--timeout)");

    // And the server still serves.
    let mut association = connect(server.address, AE_TITLE).expect("association after the faults");
    assert_eq!(echo(&mut association), 0x0000);
    assert_eq!(store(&mut association, "1.2.3.4.5", &image_data_set("1.2.3.4.5", &image)), 0x0000);
    association.release().expect("release");
    server.wait_for_log("released the association after 1 images");

    let journal = server.journal();
    let status_of = |uid: &str| {
        let entry =
            journal.iter().find(|e| e["dicom"]["sop_instance_uid"] == uid).unwrap_or_else(|| panic!("{uid}"));
        (
            entry["status"].as_str().unwrap_or("0000").to_string(),
            entry["error"].as_str().unwrap_or("").to_string(),
        )
    };
    let (status, error) = status_of("1.2.3.4.1");
    assert_eq!(status, "C000");
    assert!(error.contains("1.2.3.4.1.dcm"), "{error}");
    assert!(
        dir.join("store/unreadable/1.2.3.4.1.dcm").is_file(),
        "the undecodable file is kept for inspection"
    );
    let (status, error) = status_of("1.2.3.4.2");
    assert_eq!(status, "A700");
    assert!(error.contains("exceeds the 1048576-byte limit"), "{error}");
    assert_eq!(status_of("1.2.3.4.3").0, "0000");
    assert_eq!(status_of("1.2.3.4.5").0, "0000");
    assert!(
        journal.iter().all(|e| e["dicom"]["sop_instance_uid"] != "1.2.3.4.4"),
        "the aborted image was journaled"
    );
    assert_eq!(journal.len(), 4);
}

/// `--forward`: each image also goes to a device (the firmware's protocol on a pseudo-terminal)
/// and its answer is journaled; when the device goes away, images are still stored, journaled
/// with the reason, and acknowledged.
#[cfg(unix)]
#[test]
fn forwarded_images_carry_the_device_answer() {
    let dir = scratch("receive-forward");
    let device = crate::stream::FakeDevice::start(engine(EngineKind::Fixed).model_hash());
    let server = Server::start(&dir, &["--forward", &device.port, "--device-timeout", "0.5"]);
    let images = sample(1);
    let mut association = connect(server.address, AE_TITLE).expect("association");
    for (i, (_, _, image)) in images.iter().enumerate() {
        let uid = format!("1.2.3.6.{i}");
        assert_eq!(store(&mut association, &uid, &image_data_set(&uid, image)), 0x0000);
    }
    drop(device);
    let (_, _, image) = &images[0];
    assert_eq!(store(&mut association, "1.2.3.6.99", &image_data_set("1.2.3.6.99", image)), 0x0000);
    association.release().expect("release");
    server.wait_for_log("released the association");

    let journal = server.journal();
    let host = engine(EngineKind::Fixed)
        .classify_integer(&images.iter().map(|(_, _, i)| i.clone()).collect::<Vec<_>>())
        .expect("integer model");
    for (i, expected) in host.iter().enumerate() {
        let uid = format!("1.2.3.6.{i}");
        let entry =
            journal.iter().find(|e| e["dicom"]["sop_instance_uid"] == uid.as_str()).expect("journaled");
        assert_eq!(entry["device"]["logits"], serde_json::json!(expected.logits), "{uid}");
    }
    let unplugged =
        journal.iter().find(|e| e["dicom"]["sop_instance_uid"] == "1.2.3.6.99").expect("journaled");
    assert!(unplugged["device"].is_null(), "{unplugged}");
    assert!(unplugged["device_error"].is_string(), "{unplugged}");
    assert!(unplugged["class"].is_string(), "{unplugged}");
}

/// `--max-associations 1`: a second sender waits for the slot up to `--timeout`, then is
/// rejected; once the first releases, a new one is served.
#[test]
fn associations_beyond_the_limit_wait_then_are_rejected() {
    let dir = scratch("receive-limit");
    let server = Server::start(&dir, &["--max-associations", "1", "--timeout", "2"]);
    let mut first = connect(server.address, AE_TITLE).expect("first association");
    let address = server.address;
    let second = std::thread::spawn(move || connect(address, AE_TITLE).map(|_| ()));
    // The first stays busy (never silent for --timeout) until the second has given up.
    let started = Instant::now();
    while !second.is_finished() && started.elapsed() < Duration::from_secs(20) {
        assert_eq!(echo(&mut first), 0x0000);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        second.join().expect("second sender").is_err(),
        "a second association was served beyond the limit"
    );
    server.wait_for_log("association refused (all associations busy)");
    first.release().expect("release");
    let mut third = connect(server.address, AE_TITLE).expect("an association once the slot is free");
    assert_eq!(echo(&mut third), 0x0000);
    third.release().expect("release");
}

#[test]
fn a_restart_continues_the_journal_after_a_torn_line() {
    let dir = scratch("receive-restart");
    let (_, _, image) = sample(1).swap_remove(0);
    let journal = dir.join("journal.jsonl");
    // A power cut in the middle of a line.
    std::fs::write(&journal, "{\"file\":\"a.dcm\",\"class\":\"CXR\"}\n{\"file\":\"b.dc").expect("write");
    let server = Server::start(&dir, &[]);
    let mut association = connect(server.address, AE_TITLE).expect("association");
    assert_eq!(store(&mut association, "1.2.3.5", &image_data_set("1.2.3.5", &image)), 0x0000);
    association.release().expect("release");
    server.wait_for_log("released the association");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[1], "{\"file\":\"b.dc");
    let last: serde_json::Value = serde_json::from_str(lines[2]).expect("the new record is a whole line");
    assert_eq!(last["dicom"]["sop_instance_uid"], "1.2.3.5");
}
