//! `cargo xtask dicom`: DICOM made and sent by toolkits nobody here wrote.
//!
//! - The network: `edge-runtime receive` on loopback. dcmtk's `echoscu` with its AE title and
//!   with another (rejected); 240 test JPEGs wrapped by `img2dcm` (JPEG baseline) and sent by
//!   four `storescu` at once, with damaged files among them (`dcmodify`: Rows beyond the pixel
//!   data, BitsStored 0) that must be answered C000, raw garbage on the port and an aborted
//!   association; every image journaled with the class `classify` gives the same file, the
//!   damaged ones journaled as refused; `echoscu` still answered after all of it.
//! - Transfer syntaxes and bit depths, 60 test images (10 per class) each: pydicom's 8-bit
//!   explicit little endian and dcmtk's transcodings of it (implicit, big endian, deflated,
//!   RLE, JPEG lossless), JPEG 2000 (OpenJPEG's `opj_compress`) and JPEG XL (libjxl's `cjxl`)
//!   codestreams encapsulated by pydicom, a 12-bit CT in Hounsfield units without a window, a
//!   16-bit signed CT with one, a 10-bit MR: `classify` gives every file its JPEG original's
//!   class (the pixels are the same), and each set also goes through `storescu` into the
//!   receiver. JPEG-LS (`dcmcjpls`) is not decoded by this build: every such file is an error
//!   that says so, and the receiver does not accept it.
//!
//! Debian packages: `dcmtk libopenjp2-tools libjxl-tools` (`.ci/run`); pydicom is pinned in
//! `tests/dicom/requirements.txt`.

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Test images sent over the network.
const NETWORK_IMAGES: usize = 240;
/// `storescu` processes sending at once.
const SENDERS: usize = 4;
/// Test images per transfer syntax or bit depth.
const SYNTAX_IMAGES: usize = 60;
const AE_TITLE: &str = "QMEDSCAN";
/// The UID root of the files made here (a test root under dcmtk's, as img2dcm's own).
const UID_ROOT: &str = "1.2.276.0.7230010.3.999";

pub fn run() -> Result<()> {
    for (tool, package) in
        [("img2dcm", "dcmtk"), ("opj_compress", "libopenjp2-tools"), ("cjxl", "libjxl-tools")]
    {
        ensure!(
            Command::new("which").arg(tool).output().is_ok_and(|o| o.status.success()),
            "`{tool}` not found: install Debian's {package} (`.ci/run` does)"
        );
    }
    let edge_runtime = crate::release_binary("edge-runtime")?;
    let root = crate::root();
    let out = crate::target_dir().join("dicom");
    // Files of an earlier run must not pass for this one's.
    let _ = std::fs::remove_dir_all(&out);
    let python = crate::interop::venv("dicom-venv", &root.join("tests/dicom/requirements.txt"))?;
    let runtime = Runtime { binary: edge_runtime, root };

    let syntaxes = make_syntax_files(&python, &out.join("syntaxes"))?;
    let server = Server::start(&runtime, &out.join("receiver"))?;
    network(&runtime, &server, &out)?;
    transfer_syntaxes(&runtime, &server, &syntaxes)?;
    let refused = server.log_lines("refused with status");
    eprintln!("dicom: {} data sets refused by the receiver, as expected", refused.len());
    Ok(())
}

/// The edge-runtime binary, run from the workspace root on the committed model.
struct Runtime {
    binary: PathBuf,
    root: PathBuf,
}

impl Runtime {
    /// `classify --json` of `files`: class by file, and the files refused with their message.
    fn classify(&self, files: &[PathBuf]) -> Result<(BTreeMap<PathBuf, String>, Vec<String>)> {
        let out = Command::new(&self.binary)
            .current_dir(&self.root)
            .args(["--model", "models", "--json", "classify"])
            .args(files)
            .output()
            .context("running edge-runtime classify")?;
        let mut classes = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let row: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("classify printed {line:?}"))?;
            let file = row["file"].as_str().context("a row without its file")?;
            classes.insert(PathBuf::from(file), row["class"].as_str().unwrap_or_default().to_string());
        }
        let errors = String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect();
        Ok((classes, errors))
    }
}

/// The test images of every transfer syntax and bit depth: variant name -> files, and the
/// JPEG originals' files in the same order.
struct SyntaxFiles {
    originals: Vec<PathBuf>,
    variants: Vec<(String, Vec<PathBuf>)>,
}

fn make_syntax_files(python: &Path, dir: &Path) -> Result<SyntaxFiles> {
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources).with_context(|| format!("creating {}", sources.display()))?;
    let images = crate::test_files(SYNTAX_IMAGES)?;
    let mut pgms = Vec::new();
    for (i, (name, path)) in images.iter().enumerate() {
        // Decoded by the `image` crate as the runtime decodes the JPEG, so every lossless
        // variant holds exactly the pixels `classify` sees in the original.
        let gray = image::open(path).with_context(|| format!("decoding {name}"))?.to_luma8();
        let pgm = sources.join(format!("{i:04}.pgm"));
        let mut bytes = format!("P5\n{} {}\n255\n", gray.width(), gray.height()).into_bytes();
        bytes.extend_from_slice(gray.as_raw());
        std::fs::write(&pgm, bytes).with_context(|| format!("writing {}", pgm.display()))?;
        tool(
            "opj_compress",
            &["-i".as_ref(), pgm.as_os_str(), "-o".as_ref(), pgm.with_extension("j2k").as_os_str()],
        )?;
        tool("cjxl", &[pgm.as_os_str(), pgm.with_extension("jxl").as_os_str(), "-d".as_ref(), "0".as_ref()])?;
        pgms.push(pgm);
    }
    crate::interop::run_command(
        Command::new(python).arg(crate::root().join("tests/dicom/make_files.py")).arg(dir).args(&pgms),
    )?;
    // dcmtk's transcodings of the plain files.
    let plain: Vec<PathBuf> =
        (0..pgms.len()).map(|i| dir.join("plain").join(format!("{i:04}.dcm"))).collect();
    for (variant, program, option) in [
        ("implicit", "dcmconv", "+ti"),
        ("big-endian", "dcmconv", "+tb"),
        ("deflated", "dcmconv", "+td"),
        ("rle", "dcmcrle", ""),
        ("jpeg-lossless", "dcmcjpeg", "+e1"),
        ("jpeg-ls", "dcmcjpls", ""),
    ] {
        let folder = dir.join(variant);
        std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
        for file in &plain {
            let target = folder.join(file.file_name().context("a file name")?);
            let mut args = vec![file.as_os_str(), target.as_os_str()];
            if !option.is_empty() {
                args.insert(0, option.as_ref());
            }
            tool(program, &args)?;
        }
    }
    let variants = [
        "plain",
        "implicit",
        "big-endian",
        "deflated",
        "rle",
        "jpeg-lossless",
        "j2k",
        "jxl",
        "ct12",
        "ct16-signed-windowed",
        "mr10",
        "jpeg-ls",
    ]
    .iter()
    .map(|v| (v.to_string(), (0..pgms.len()).map(|i| dir.join(v).join(format!("{i:04}.dcm"))).collect()))
    .collect();
    Ok(SyntaxFiles { originals: images.into_iter().map(|(_, p)| p).collect(), variants })
}

/// Runs `program` quietly; its output only when it fails.
fn tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    ensure!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The transfer syntaxes sent with storescu: every variant's but JPEG XL's, which dcmtk 3.6.7
/// does not know (those files go through `classify` only).
const SENT_SYNTAXES: [&str; 9] = [
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
];
/// Secondary capture, CT, MR: the SOP classes of the files sent.
const SENT_CLASSES: [&str; 3] =
    ["1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"];

/// storescu's association profile `All`: each SOP class in each transfer syntax, one per
/// presentation context, so every file goes in its own transfer syntax (storescu otherwise
/// proposes uncompressed ones only, and cannot convert JPEG 2000 to them).
fn write_storescu_config(path: &Path) -> Result<()> {
    let mut text = String::from("[[TransferSyntaxes]]\n");
    for (i, uid) in SENT_SYNTAXES.iter().enumerate() {
        text.push_str(&format!("[TS{i}]\nTransferSyntax1 = {uid}\n"));
    }
    text.push_str("[[PresentationContexts]]\n[Contexts]\n");
    let mut n = 0;
    for class in SENT_CLASSES {
        for i in 0..SENT_SYNTAXES.len() {
            n += 1;
            text.push_str(&format!("PresentationContext{n} = {class}\\TS{i}\n"));
        }
    }
    text.push_str("[[Profiles]]\n[All]\nPresentationContexts = Contexts\n");
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `edge-runtime receive` on a free loopback port, its log collected.
struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    journal: PathBuf,
    store: PathBuf,
    storescu_config: PathBuf,
}

impl Server {
    fn start(runtime: &Runtime, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let journal = dir.join("journal.jsonl");
        let store = dir.join("store");
        let storescu_config = dir.join("storescu.cfg");
        write_storescu_config(&storescu_config)?;
        let mut child = Command::new(&runtime.binary)
            .current_dir(&runtime.root)
            .args(["--model", "models", "--json", "receive", "--port", "0", "--bind", "127.0.0.1"])
            .args(["--ae-title", AE_TITLE, "--timeout", "10", "--journal"])
            .arg(&journal)
            .arg("--store-to")
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting edge-runtime receive")?;
        let stderr = child.stderr.take().context("receive's stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(" listening on ").nth(1) {
                    let _ = address_tx.send(rest.split(',').next().unwrap_or_default().to_string());
                }
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let address = address_rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
            anyhow::anyhow!("receive did not start: {:?}", log.lock().unwrap_or_else(|p| p.into_inner()))
        })?;
        let address = address.parse().with_context(|| format!("receive listens on {address:?}"))?;
        eprintln!("dicom: edge-runtime receive listening on {address}");
        Ok(Self { child, address, log, journal, store, storescu_config })
    }

    fn wait_for_log(&self, text: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log_lines(text).is_empty() {
            ensure!(Instant::now() < deadline, "receive never logged {text:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn log_lines(&self, containing: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|l| l.contains(containing))
            .cloned()
            .collect()
    }

    /// The journal's records, once it holds at least `count`.
    fn journal(&self, count: usize) -> Result<Vec<serde_json::Value>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&self.journal).unwrap_or_default();
            let records: Vec<serde_json::Value> =
                text.lines().map(serde_json::from_str).collect::<Result<_, _>>().context("a journal line")?;
            if records.len() >= count {
                return Ok(records);
            }
            if Instant::now() > deadline {
                bail!("the journal has {} records, {count} expected", records.len());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// dcmtk's arguments that reach this server.
    fn peer(&self) -> [String; 4] {
        ["-aec".into(), AE_TITLE.into(), self.address.ip().to_string(), self.address.port().to_string()]
    }

    fn echo(&self, called: &str) -> Result<bool> {
        let status = Command::new("echoscu")
            .args(["-aec", called, &self.address.ip().to_string(), &self.address.port().to_string()])
            .stderr(Stdio::null())
            .status()
            .context("running echoscu")?;
        Ok(status.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `storescu` sending `files`, each in its own transfer syntax (`--abort` ends with an
/// A-ABORT instead of a release); its output.
fn storescu(server: &Server, files: &[PathBuf], extra: &[&str]) -> Result<std::process::Output> {
    Command::new("storescu")
        .arg("-xf")
        .arg(&server.storescu_config)
        .arg("All")
        .args(server.peer())
        .args(extra)
        .args(files)
        .output()
        .context("running storescu")
}

fn network(runtime: &Runtime, server: &Server, out: &Path) -> Result<()> {
    ensure!(server.echo(AE_TITLE)?, "echoscu: no answer from {AE_TITLE}");
    ensure!(!server.echo("SOMEONE-ELSE")?, "an association calling another AE title was accepted");

    // The test JPEGs as scanners' secondary captures, each with a known SOP instance UID.
    let dir = out.join("img2dcm");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let images = crate::test_files(NETWORK_IMAGES)?;
    let mut files = Vec::new();
    for (i, (_, path)) in images.iter().enumerate() {
        let file = dir.join(format!("{i:04}.dcm"));
        let uid = format!("SOPInstanceUID={UID_ROOT}.1.{i}");
        tool("img2dcm", &[path.as_os_str(), file.as_os_str(), "-k".as_ref(), uid.as_ref()])?;
        files.push(file);
    }
    // Damaged copies dcmtk still sends: they parse, but their pixels cannot be decoded.
    let damaged_dir = out.join("damaged");
    std::fs::create_dir_all(&damaged_dir).with_context(|| format!("creating {}", damaged_dir.display()))?;
    let plain = out.join("syntaxes/plain/0000.dcm");
    let mut damaged = Vec::new();
    for (i, change) in ["(0028,0010)=4096", "(0028,0101)=0"].iter().enumerate() {
        let file = damaged_dir.join(format!("damaged-{i}.dcm"));
        std::fs::copy(&plain, &file).with_context(|| format!("copying {}", plain.display()))?;
        let uid = format!("(0008,0018)={UID_ROOT}.2.{i}");
        tool(
            "dcmodify",
            &["-nb".as_ref(), "-m".as_ref(), change.as_ref(), "-m".as_ref(), uid.as_ref(), file.as_os_str()],
        )?;
        damaged.push(file);
    }

    let started = Instant::now();
    let shares: Vec<Vec<PathBuf>> = files
        .chunks(files.len().div_ceil(SENDERS))
        .enumerate()
        .map(|(i, share)| {
            let mut share = share.to_vec();
            // A damaged file in the middle of two of the senders' lists.
            if let Some(bad) = damaged.get(i) {
                share.insert(share.len() / 2, bad.clone());
            }
            share
        })
        .collect();
    let outputs: Vec<Result<std::process::Output>> = std::thread::scope(|scope| {
        // `--no-halt`: a refused image must not stop the rest.
        let senders: Vec<_> =
            shares.iter().map(|share| scope.spawn(|| storescu(server, share, &["--no-halt"]))).collect();
        // Meanwhile: bytes that are not DICOM at all.
        if let Ok(mut garbage) = TcpStream::connect(server.address) {
            let _ = garbage.write_all(b"\x01\x00\x00\x00\x00\x10not an association request at all");
        }
        senders
            .into_iter()
            .map(|s| s.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a sender thread panicked"))))
            .collect()
    });
    for output in outputs {
        let output = output?;
        // storescu reports a refused image on stderr and goes on with the next.
        let text = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !text.contains("Association Rejected") && !text.contains("Association Aborted"),
            "storescu: {text}"
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    // An association aborted by its sender after its image.
    storescu(server, &files[..1], &["--abort"])?;
    server.wait_for_log("aborted the association after 1 images")?;
    ensure!(server.echo(AE_TITLE)?, "echoscu: no answer after the faults");

    // Journal: every image once or more (the aborted association's image again), damaged
    // ones refused.
    let journal = server.journal(files.len() + damaged.len() + 1)?;
    let by_uid: BTreeMap<String, &serde_json::Value> = journal
        .iter()
        .filter_map(|r| r["dicom"]["sop_instance_uid"].as_str().map(|uid| (uid.to_string(), r)))
        .collect();
    let (expected, errors) = runtime.classify(&files)?;
    ensure!(errors.is_empty(), "classify refused some img2dcm files: {errors:?}");
    for (i, file) in files.iter().enumerate() {
        let uid = format!("{UID_ROOT}.1.{i}");
        let record =
            by_uid.get(&uid).with_context(|| format!("{} ({uid}) is not in the journal", file.display()))?;
        let class = expected.get(file).with_context(|| format!("classify skipped {}", file.display()))?;
        ensure!(
            record["class"] == class.as_str(),
            "{}: received as {}, classify says {class}",
            file.display(),
            record["class"]
        );
        let kept = server.store.join(class).join(format!("{uid}.dcm"));
        ensure!(kept.is_file(), "{} was not kept", kept.display());
    }
    for i in 0..damaged.len() {
        let uid = format!("{UID_ROOT}.2.{i}");
        let record = by_uid.get(&uid).with_context(|| format!("damaged file {i} is not in the journal"))?;
        ensure!(record["status"] == "C000", "damaged file {i}: {record}");
    }
    let (originals, _) = runtime.classify(&images.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>())?;
    let same = images.iter().enumerate().filter(|(i, (_, p))| {
        by_uid
            .get(&format!("{UID_ROOT}.1.{i}"))
            .is_some_and(|r| originals.get(p).is_some_and(|c| r["class"] == c.as_str()))
    });
    eprintln!(
        "dicom: {} images from {SENDERS} storescu at once in {seconds:.1} s ({:.0} images/s), every class equal to `classify` on the same files, {} of {} equal to the JPEG originals'; {} damaged files answered C000; garbage and an abort survived",
        files.len(),
        files.len() as f64 / seconds,
        same.count(),
        images.len(),
        damaged.len(),
    );
    Ok(())
}

fn transfer_syntaxes(runtime: &Runtime, server: &Server, syntaxes: &SyntaxFiles) -> Result<()> {
    let (originals, errors) = runtime.classify(&syntaxes.originals)?;
    ensure!(errors.is_empty(), "classify refused test JPEGs: {errors:?}");
    // The data set's own label: the class folder of the original.
    let label = |p: &PathBuf| p.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    let correct = syntaxes.originals.iter().filter(|p| originals.get(*p) == label(p).as_ref()).count();
    eprintln!(
        "dicom: the {} JPEG originals: {correct} classified right; every variant below gives each file its original's class",
        syntaxes.originals.len()
    );
    let mut journaled = server.journal(0)?.len();
    for (variant, files) in &syntaxes.variants {
        let (classes, errors) = runtime.classify(files)?;
        if variant == "jpeg-ls" {
            ensure!(classes.is_empty(), "JPEG-LS files were classified by a build without a JPEG-LS decoder");
            ensure!(
                errors.len() == files.len()
                    && errors
                        .iter()
                        .all(|e| e.contains("(JPEG-LS Lossless Image Compression) is not decoded")),
                "JPEG-LS files: {errors:?}"
            );
            // The receiver declines JPEG-LS presentation contexts; storescu, left with the
            // uncompressed ones, cannot convert JPEG-LS and sends nothing.
            let sent = storescu(server, files, &["--no-halt"])?;
            let said = String::from_utf8_lossy(&sent.stderr);
            ensure!(said.contains("unable to convert dataset from 'JPEG-LS"), "storescu: {said}");
            ensure!(server.journal(0)?.len() == journaled, "the receiver took JPEG-LS images");
            eprintln!(
                "dicom: {variant}: {} files refused with a clear error; the receiver does not offer it",
                files.len()
            );
            continue;
        }
        ensure!(errors.is_empty(), "{variant}: {errors:?}");
        for (file, original) in files.iter().zip(&syntaxes.originals) {
            let class =
                classes.get(file).with_context(|| format!("{variant}: {} not classified", file.display()))?;
            ensure!(
                Some(class) == originals.get(original),
                "{variant}: {} is {class}, its JPEG original {:?}",
                file.display(),
                originals.get(original)
            );
        }
        if variant == "jxl" {
            eprintln!(
                "dicom: {variant}: {} files, classes equal (dcmtk 3.6.7 cannot send JPEG XL)",
                files.len()
            );
            continue;
        }
        let sent = storescu(server, files, &[])?;
        ensure!(sent.status.success(), "{variant}: storescu: {}", String::from_utf8_lossy(&sent.stderr));
        journaled += files.len();
        let journal = server.journal(journaled)?;
        let received = &journal[journaled - files.len()..];
        ensure!(
            received.iter().all(|r| r["status"].is_null() && r["class"].is_string()),
            "{variant}: refused over the network: {:?}",
            received.iter().find(|r| !r["status"].is_null())
        );
        eprintln!("dicom: {variant}: {} files, classes equal, all received", files.len());
    }
    Ok(())
}
