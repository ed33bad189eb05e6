//! A DICOM Storage SCP (`edge-runtime receive`): scanners and PACS push images over the
//! network with C-STORE, and each is classified as it arrives.
//!
//! - Associations (dicom-ul): the called AE title must be this node's; Verification (C-ECHO)
//!   and the image storage SOP classes are accepted, in every transfer syntax dicom-rs can
//!   decode as built here; up to `max_associations` at once: more wait for a free one for
//!   `timeout`, then are rejected.
//! - Each C-STORE: the data set, as received, is wrapped in a file meta group (a Part 10 file)
//!   and read by `preprocess::decode`, exactly as `classify` reads a file; classified; kept in
//!   `STORE/<class>/<SOPInstanceUID>.dcm` and sent to a device over serial when asked;
//!   journaled; and only then answered Success. A data set that cannot be decoded is answered
//!   0xC000 (cannot understand) and kept in `STORE/unreadable/`, one over the size limit 0xA700
//!   (out of resources); both are journaled.
//! - Nothing received is lost: Success is sent after the file and the journal line are on
//!   disk (fsync), so a crash or a stop before it leaves the image unacknowledged and the
//!   sender sends it again. A journal line is one `write` in append mode; a line torn by a
//!   power cut is ended with a newline at the next start, so it spoils only itself.
//! - A malformed PDU, a timeout or an abort ends that association (with an A-ABORT where the
//!   connection still works) and a log line; the other associations and the server go on.

use crate::engine::{Engine, Prediction};
use crate::preprocess;
use crate::record;
use crate::stream::{Link, LinkOptions, StreamError};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::{entries::IMPLICIT_VR_LITTLE_ENDIAN, TransferSyntaxRegistry};
use dicom_ul::association::server::AccessControl;
use dicom_ul::association::Association;
use dicom_ul::pdu::{AssociationRJServiceUserReason, PDataValue, PDataValueType, UserIdentity};
use dicom_ul::{Pdu, ServerAssociation, ServerAssociationOptions};
use shared::proto::Classification;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Folder under the store for data sets that could not be decoded.
pub const UNREADABLE_FOLDER: &str = "unreadable";

/// The image storage SOP classes accepted, and Verification.
const ABSTRACT_SYNTAXES: &[&str] = &[
    uids::VERIFICATION,
    uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::CT_IMAGE_STORAGE,
    uids::ENHANCED_CT_IMAGE_STORAGE,
    uids::MR_IMAGE_STORAGE,
    uids::ENHANCED_MR_IMAGE_STORAGE,
    uids::ULTRASOUND_IMAGE_STORAGE,
    uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE,
    uids::NUCLEAR_MEDICINE_IMAGE_STORAGE,
    uids::POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE,
    uids::X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE,
    uids::X_RAY_RADIOFLUOROSCOPIC_IMAGE_STORAGE,
    uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_BYTE_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_WORD_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::VL_PHOTOGRAPHIC_IMAGE_STORAGE,
];

/// DIMSE command fields (PS3.7 E.1).
const C_STORE_RQ: u16 = 0x0001;
const C_ECHO_RQ: u16 = 0x0030;
/// Command Data Set Type: no data set follows.
const NO_DATA_SET: u16 = 0x0101;
/// The longest command set accepted (real ones are about 200 bytes).
const MAX_COMMAND_BYTES: usize = 64 << 10;

/// DIMSE statuses (PS3.7 C and PS3.4 B.2.3).
mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
}

/// How the receiver runs.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// This node's AE title; associations calling another are rejected.
    pub ae_title: String,
    /// The journal: one JSON line per received data set, appended.
    pub journal: PathBuf,
    /// Keep each received file in `DIR/<class>/` (and undecodable ones in `DIR/unreadable/`).
    pub store_to: Option<PathBuf>,
    /// Send each image to a device over serial as well, and journal its answer.
    pub forward: Option<LinkOptions>,
    /// Associations served at once.
    pub max_associations: usize,
    /// The largest data set accepted, in bytes.
    pub max_object_bytes: usize,
    /// How long the network may stay silent within an association, and how long a new one
    /// waits for a free slot.
    pub timeout: Duration,
}

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The journal or the store folder could not be opened.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The device to forward to did not answer.
    #[error("forwarding: {0}")]
    Forward(#[from] StreamError),
}

/// What the receiver reports while it runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A data set was classified, kept, journaled and acknowledged.
    Classified {
        /// Where it was kept, or its name (`<SOPInstanceUID>.dcm`) when not kept.
        file: &'a str,
        /// The model's answer.
        prediction: &'a Prediction,
        /// The device's answer, when forwarding.
        device: Option<&'a Classification>,
        /// From the last fragment received to the answer.
        elapsed: Duration,
    },
    /// Something worth a log line: associations, refusals, failures.
    Log(String),
}

/// The Storage SCP's state shared by all associations.
pub struct Receiver<'e> {
    engine: &'e Engine,
    options: ReceiveOptions,
    transfer_syntaxes: Vec<&'static str>,
    journal: Mutex<Journal>,
    /// The device link when forwarding; `None` inside after a failure, reconnected on the next
    /// image.
    device: Option<(LinkOptions, Mutex<Option<Link>>)>,
    free_slots: Mutex<usize>,
    slot_freed: Condvar,
}

impl std::fmt::Debug for Receiver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("options", &self.options).finish_non_exhaustive()
    }
}

impl<'e> Receiver<'e> {
    /// Opens the journal (appending) and the store folder, and connects to the device when
    /// forwarding.
    ///
    /// # Errors
    /// [`ReceiveError`] when any of them fails.
    pub fn open(engine: &'e Engine, options: ReceiveOptions) -> Result<Self, ReceiveError> {
        let journal = Journal::open(&options.journal)
            .map_err(|source| ReceiveError::Io { path: options.journal.clone(), source })?;
        if let Some(store) = &options.store_to {
            std::fs::create_dir_all(store)
                .map_err(|source| ReceiveError::Io { path: store.clone(), source })?;
        }
        let device = match &options.forward {
            Some(link) => {
                Some((link.clone(), Mutex::new(Some(Link::connect(link.clone(), engine.model_hash())?))))
            }
            None => None,
        };
        let transfer_syntaxes =
            TransferSyntaxRegistry.iter().filter(|ts| ts.can_decode_all()).map(|ts| ts.uid()).collect();
        Ok(Self {
            engine,
            free_slots: Mutex::new(options.max_associations.max(1)),
            options,
            transfer_syntaxes,
            journal: Mutex::new(journal),
            device,
            slot_freed: Condvar::new(),
        })
    }

    /// The transfer syntaxes offered to senders: those dicom-rs decodes as built here.
    pub fn transfer_syntaxes(&self) -> &[&'static str] {
        &self.transfer_syntaxes
    }

    /// Serves associations on `listener`, each on its own thread, until the process ends.
    pub fn serve(&self, listener: &TcpListener, on_event: &(dyn Fn(Event<'_>) + Sync)) {
        std::thread::scope(|scope| {
            for connection in listener.incoming() {
                match connection {
                    Ok(socket) => {
                        scope.spawn(move || self.associate(socket, on_event));
                    }
                    Err(e) => {
                        // Out of file descriptors, say: the connection is gone, the server is not.
                        on_event(Event::Log(format!("accepting a connection failed: {e}")));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });
    }

    fn associate(&self, socket: TcpStream, on_event: &(dyn Fn(Event<'_>) + Sync)) {
        let peer = socket.peer_addr().map_or_else(|_| "unknown peer".to_string(), |a| a.to_string());
        let slot = self.take_slot();
        let mut options = ServerAssociationOptions::new()
            .ae_access_control(CalledAeTitle { busy: slot.is_none() })
            .ae_title(self.options.ae_title.as_str())
            .strict(true)
            .read_timeout(self.options.timeout)
            .write_timeout(self.options.timeout);
        for uid in ABSTRACT_SYNTAXES {
            options = options.with_abstract_syntax(*uid);
        }
        for uid in &self.transfer_syntaxes {
            options = options.with_transfer_syntax(*uid);
        }
        let mut association = match options.establish(socket) {
            Ok(association) => association,
            Err(e) => {
                let busy = if slot.is_none() { " (all associations busy)" } else { "" };
                on_event(Event::Log(format!("{peer}: association refused{busy}: {}", error_chain(&e))));
                return;
            }
        };
        let calling = association.peer_ae_title().trim().to_string();
        on_event(Event::Log(format!("{peer}: association with {calling}")));
        let mut exchange = Exchange { receiver: self, calling: &calling, on_event, stored: 0 };
        match exchange.run(&mut association) {
            Ok(Ended::Released) => {
                on_event(Event::Log(format!(
                    "{peer}: {calling} released the association after {} images",
                    exchange.stored
                )));
            }
            Ok(Ended::Aborted { in_transfer }) => {
                let dropped =
                    if in_transfer { "; the data set in transfer was dropped unacknowledged" } else { "" };
                on_event(Event::Log(format!(
                    "{peer}: {calling} aborted the association after {} images{dropped}",
                    exchange.stored
                )));
            }
            Err(reason) => {
                on_event(Event::Log(format!(
                    "{peer}: association with {calling} aborted after {} images: {reason}",
                    exchange.stored
                )));
                // The connection may already be gone; the abort is a courtesy.
                let _ = association.abort();
            }
        }
        drop(slot);
    }

    /// A slot for one association, waiting up to the timeout for one to be free.
    fn take_slot(&self) -> Option<Slot<'_, 'e>> {
        let free = self.free_slots.lock().unwrap_or_else(|p| p.into_inner());
        let (mut free, _) = self
            .slot_freed
            .wait_timeout_while(free, self.options.timeout, |free| *free == 0)
            .unwrap_or_else(|p| p.into_inner());
        if *free == 0 {
            return None;
        }
        *free -= 1;
        Some(Slot(self))
    }

    /// Decodes, classifies, keeps, forwards and journals one data set; the DIMSE status and
    /// error comment to answer.
    fn store(
        &self,
        request: &Request,
        calling: &str,
        data: Received,
        on_event: &(dyn Fn(Event<'_>) + Sync),
    ) -> (u16, String) {
        let started = Instant::now();
        let name = file_name(&request.sop_instance);
        let outcome = match data {
            Received::Oversized(bytes) => Err((
                status::OUT_OF_RESOURCES,
                format!(
                    "a data set of {bytes} bytes exceeds the {}-byte limit",
                    self.options.max_object_bytes
                ),
            )),
            Received::Complete(data, transfer_syntax) => {
                self.classify(request, calling, &transfer_syntax, &data, &name, on_event)
            }
        };
        let mut entry = match &outcome {
            Ok(c) => {
                let ms = started.elapsed().as_secs_f64() * 1e3;
                let mut entry = record::json(&c.file, &c.prediction, ms, c.device.as_ref());
                if let Some(error) = &c.device_error {
                    entry["device_error"] = error.as_str().into();
                }
                entry
            }
            Err((status, comment)) => {
                serde_json::json!({ "file": name, "error": comment, "status": format!("{status:04X}") })
            }
        };
        entry["dicom"] = serde_json::json!({
            "calling_ae": calling,
            "sop_class_uid": request.sop_class,
            "sop_instance_uid": request.sop_instance,
            "received_unix_s": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        });
        if let Err(e) = self.journal.lock().unwrap_or_else(|p| p.into_inner()).append(&entry) {
            let problem = format!("cannot append to the journal {}: {e}", self.options.journal.display());
            on_event(Event::Log(format!("{name} from {calling}: refused with status A700: {problem}")));
            return (status::OUT_OF_RESOURCES, problem);
        }
        match outcome {
            Ok(c) => {
                on_event(Event::Classified {
                    file: &c.file,
                    prediction: &c.prediction,
                    device: c.device.as_ref(),
                    elapsed: started.elapsed(),
                });
                (status::SUCCESS, String::new())
            }
            Err((status, comment)) => {
                on_event(Event::Log(format!(
                    "{name} from {calling}: refused with status {status:04X}: {comment}"
                )));
                (status, comment)
            }
        }
    }

    /// [`Self::store`]'s work for a complete data set; a refusal is the status and comment.
    fn classify(
        &self,
        request: &Request,
        calling: &str,
        transfer_syntax: &str,
        data: &[u8],
        name: &str,
        on_event: &(dyn Fn(Event<'_>) + Sync),
    ) -> Result<Classified, (u16, String)> {
        let file =
            part10(request, transfer_syntax, calling, data).map_err(|e| (status::CANNOT_UNDERSTAND, e))?;
        let image = match preprocess::decode(&file, Path::new(name)) {
            Ok(image) => image,
            Err(error) => {
                let mut comment = error.to_string();
                if let Some(store) = &self.options.store_to {
                    if let Err(e) = write_durably(&store.join(UNREADABLE_FOLDER), name, &file) {
                        comment.push_str(&format!("; not kept: {e}"));
                    }
                }
                return Err((status::CANNOT_UNDERSTAND, comment));
            }
        };
        let prediction = self
            .engine
            .classify(std::slice::from_ref(&image))
            .map_err(|e| (status::PROCESSING_FAILURE, e.to_string()))?
            .into_iter()
            .next()
            .ok_or((status::PROCESSING_FAILURE, "the engine gave no answer".to_string()))?;
        let (device, device_error) = self.forward(&image, on_event);
        let file = match &self.options.store_to {
            Some(store) => write_durably(&store.join(prediction.class_name()), name, &file)
                .map_err(|e| (status::OUT_OF_RESOURCES, format!("cannot keep the file: {e}")))?
                .to_string_lossy()
                .into_owned(),
            None => name.to_string(),
        };
        Ok(Classified { file, prediction, device, device_error })
    }

    /// The device's answer for `image` when forwarding, or why there is none. A failed link is
    /// dropped and connected again for the next image, so a device unplugged for a while
    /// costs its answers, not the server.
    fn forward(
        &self,
        image: &preprocess::Image,
        on_event: &(dyn Fn(Event<'_>) + Sync),
    ) -> (Option<Classification>, Option<String>) {
        let Some((options, device)) = &self.device else { return (None, None) };
        let mut device = device.lock().unwrap_or_else(|p| p.into_inner());
        let mut link = match device.take() {
            Some(link) => link,
            None => match Link::connect(options.clone(), self.engine.model_hash()) {
                Ok(link) => link,
                Err(e) => return (None, Some(e.to_string())),
            },
        };
        let answer =
            link.classify(image, |r| on_event(Event::Log(format!("device: {}; {}", r.problem, r.action))));
        match answer {
            Ok(answer) => {
                *device = Some(link);
                (Some(answer.classification), None)
            }
            Err(e) => {
                on_event(Event::Log(format!("device: {e}; reconnecting for the next image")));
                (None, Some(e.to_string()))
            }
        }
    }
}

/// One association's conversation.
struct Exchange<'r, 'e> {
    receiver: &'r Receiver<'e>,
    calling: &'r str,
    on_event: &'r (dyn Fn(Event<'_>) + Sync),
    /// Data sets answered Success.
    stored: usize,
}

/// How an association ended without a fault.
enum Ended {
    Released,
    /// By the sender, maybe in the middle of a data set.
    Aborted {
        in_transfer: bool,
    },
}

/// A data set as it arrived.
enum Received {
    /// Its bytes and its presentation context's transfer syntax.
    Complete(Vec<u8>, String),
    /// Over the size limit: only its length was counted.
    Oversized(usize),
}

/// A data set being received: its command, the bytes so far and their count.
struct Pending {
    request: Request,
    data: Vec<u8>,
    length: usize,
}

impl Exchange<'_, '_> {
    /// Serves P-DATA until the peer releases or aborts; `Err` on a protocol fault.
    fn run(&mut self, association: &mut ServerAssociation<TcpStream>) -> Result<Ended, String> {
        let limit = self.receiver.options.max_object_bytes;
        let mut command = Vec::new();
        let mut pending: Option<Pending> = None;
        loop {
            let pdu = association.receive().map_err(|e| {
                if timed_out(&e) {
                    format!("nothing received for {:?} (--timeout)", self.receiver.options.timeout)
                } else {
                    error_chain(&e)
                }
            })?;
            match pdu {
                Pdu::PData { data } => {
                    for mut value in data {
                        match value.value_type {
                            PDataValueType::Command => {
                                if pending.is_some() {
                                    return Err("a command arrived before the previous data set ended".into());
                                }
                                if command.len() + value.data.len() > MAX_COMMAND_BYTES {
                                    return Err(format!("a command set over {MAX_COMMAND_BYTES} bytes"));
                                }
                                command.append(&mut value.data);
                                if value.is_last {
                                    let request = Request::parse(&command, value.presentation_context_id)?;
                                    command.clear();
                                    if request.has_data_set {
                                        pending = Some(Pending { request, data: Vec::new(), length: 0 });
                                    } else {
                                        self.answer_command(association, &request)?;
                                    }
                                }
                            }
                            PDataValueType::Data => {
                                let Some(p) = pending.as_mut() else {
                                    return Err("a data set fragment without its command".into());
                                };
                                if value.presentation_context_id != p.request.context {
                                    return Err("a data set fragment on another presentation context".into());
                                }
                                p.length += value.data.len();
                                if p.length <= limit {
                                    p.data.append(&mut value.data);
                                } else {
                                    // Counted, not kept: the sender gets its answer when it has sent it all.
                                    p.data = Vec::new();
                                }
                                if value.is_last {
                                    if let Some(p) = pending.take() {
                                        self.answer_data_set(association, p)?;
                                    }
                                }
                            }
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    association.send(&Pdu::ReleaseRP).map_err(|e| error_chain(&e))?;
                    return Ok(Ended::Released);
                }
                Pdu::AbortRQ { .. } => return Ok(Ended::Aborted { in_transfer: pending.is_some() }),
                other => return Err(format!("unexpected {}", other.short_description())),
            }
        }
    }

    /// Answers a command without a data set: C-ECHO, or a refusal.
    fn answer_command(
        &self,
        association: &mut ServerAssociation<TcpStream>,
        request: &Request,
    ) -> Result<(), String> {
        match request.command {
            C_ECHO_RQ => respond(association, request, status::SUCCESS, ""),
            C_STORE_RQ => {
                respond(association, request, status::CANNOT_UNDERSTAND, "C-STORE without a data set")
            }
            _ => respond(
                association,
                request,
                status::UNRECOGNIZED_OPERATION,
                "only C-ECHO and C-STORE are served",
            ),
        }
    }

    /// Answers a command whose data set has arrived.
    fn answer_data_set(
        &mut self,
        association: &mut ServerAssociation<TcpStream>,
        p: Pending,
    ) -> Result<(), String> {
        if p.request.command != C_STORE_RQ {
            return respond(
                association,
                &p.request,
                status::UNRECOGNIZED_OPERATION,
                "only C-ECHO and C-STORE are served",
            );
        }
        let received = if p.length > self.receiver.options.max_object_bytes {
            Received::Oversized(p.length)
        } else {
            let transfer_syntax = association
                .presentation_contexts()
                .iter()
                .find(|pc| pc.id == p.request.context)
                .map(|pc| pc.transfer_syntax.trim_end_matches(['\0', ' ']).to_string())
                .ok_or("a data set on a presentation context that was not negotiated")?;
            Received::Complete(p.data, transfer_syntax)
        };
        let (status, comment) = self.receiver.store(&p.request, self.calling, received, self.on_event);
        if status == status::SUCCESS {
            self.stored += 1;
        }
        respond(association, &p.request, status, &comment)
    }
}

/// What a DIMSE request asks.
struct Request {
    /// The presentation context it came on (the answer goes on the same one).
    context: u8,
    command: u16,
    message_id: u16,
    sop_class: String,
    sop_instance: String,
    has_data_set: bool,
}

impl Request {
    fn parse(bytes: &[u8], context: u8) -> Result<Self, String> {
        // Command sets are implicit VR little endian (PS3.7 6.3.1); their lengths are checked
        // first for the same reason as a file's.
        preprocess::dicom::check_implicit_data_set(bytes)
            .map_err(|e| format!("malformed command set: {e}"))?;
        let command = InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .map_err(|e| format!("malformed command set: {e}"))?;
        let number = |tag| command.element(tag).ok().and_then(|e| e.to_int::<u16>().ok());
        let text = |tag| {
            command
                .element(tag)
                .ok()
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                .unwrap_or_default()
        };
        Ok(Self {
            context,
            command: number(tags::COMMAND_FIELD).ok_or("a command set without a Command Field")?,
            message_id: number(tags::MESSAGE_ID).unwrap_or(0),
            sop_class: text(tags::AFFECTED_SOP_CLASS_UID),
            sop_instance: text(tags::AFFECTED_SOP_INSTANCE_UID),
            has_data_set: number(tags::COMMAND_DATA_SET_TYPE).is_some_and(|t| t != NO_DATA_SET),
        })
    }
}

/// Sends the response to `request` with `status`, and `comment` when it is not Success.
fn respond(
    association: &mut ServerAssociation<TcpStream>,
    request: &Request,
    status: u16,
    comment: &str,
) -> Result<(), String> {
    let us = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    let mut elements = vec![
        us(tags::COMMAND_FIELD, request.command | 0x8000),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, request.message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status),
    ];
    for (tag, uid) in [
        (tags::AFFECTED_SOP_CLASS_UID, &request.sop_class),
        (tags::AFFECTED_SOP_INSTANCE_UID, &request.sop_instance),
    ] {
        if !uid.is_empty() {
            elements.push(DataElement::new(tag, VR::UI, PrimitiveValue::from(uid.as_str())));
        }
    }
    if status != status::SUCCESS && !comment.is_empty() {
        // Error Comment is an LO: at most 64 characters.
        let short: String = comment.chars().take(64).collect();
        elements.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, PrimitiveValue::from(short)));
    }
    let mut bytes = Vec::new();
    InMemDicomObject::command_from_element_iter(elements)
        .write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| format!("cannot encode a response: {e}"))?;
    let value = PDataValue {
        presentation_context_id: request.context,
        value_type: PDataValueType::Command,
        is_last: true,
        data: bytes,
    };
    association.send(&Pdu::PData { data: vec![value] }).map_err(|e| error_chain(&e))
}

/// A data set read into a Part 10 file: preamble, `DICM`, file meta group, the data set's bytes
/// as received.
fn part10(request: &Request, transfer_syntax: &str, calling: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(request.sop_class.as_str())
        .media_storage_sop_instance_uid(request.sop_instance.as_str())
        .transfer_syntax(transfer_syntax)
        .source_application_entity_title(calling)
        .build()
        .map_err(|e| format!("cannot make its file meta group: {e}"))?;
    let mut file = Vec::with_capacity(1024 + data.len());
    file.resize(128, 0);
    file.extend_from_slice(b"DICM");
    meta.write(&mut file).map_err(|e| format!("cannot write its file meta group: {e}"))?;
    file.extend_from_slice(data);
    Ok(file)
}

/// A classified data set.
struct Classified {
    file: String,
    prediction: Prediction,
    device: Option<Classification>,
    device_error: Option<String>,
}

/// `<SOPInstanceUID>.dcm`, with anything but letters, digits, `.` and `-` replaced: a UID is
/// digits and dots, and a sender's string must not name another folder.
fn file_name(uid: &str) -> String {
    let safe: String = uid
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    if safe.is_empty() {
        "no-sop-instance-uid.dcm".into()
    } else {
        format!("{safe}.dcm")
    }
}

/// Writes `DIR/name` so that it is either absent or complete, and durable once this returns
/// (temporary file, sync, rename, sync of the folder). The same name again replaces the file:
/// a sender resending an unacknowledged image.
fn write_durably(folder: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(folder)?;
    let target = folder.join(name);
    let temp = folder.join(format!(".{name}.{}.partial", NEXT.fetch_add(1, Ordering::Relaxed)));
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, &target)) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    // Makes the rename itself durable; folders cannot be opened for this on every system.
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(target)
}

/// The journal: JSON lines, appended, each synced before its image is acknowledged.
struct Journal {
    file: File,
}

impl Journal {
    fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let length = file.metadata()?.len();
        if length > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(length - 1))?;
            file.read_exact(&mut last)?;
            // A line torn by a crash: end it, so the next record starts on its own line.
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                file.sync_data()?;
            }
        }
        Ok(Self { file })
    }

    fn append(&mut self, entry: &serde_json::Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

/// One association's claim on [`ReceiveOptions::max_associations`], given back on drop.
struct Slot<'r, 'e>(&'r Receiver<'e>);

impl Drop for Slot<'_, '_> {
    fn drop(&mut self) {
        *self.0.free_slots.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.slot_freed.notify_one();
    }
}

/// Accepts associations that call this node's AE title, while a slot is free.
struct CalledAeTitle {
    busy: bool,
}

impl AccessControl for CalledAeTitle {
    fn check_access(
        &self,
        this_ae_title: &str,
        _calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        } else if self.busy {
            Err(AssociationRJServiceUserReason::NoReasonGiven)
        } else {
            Ok(())
        }
    }
}

/// Whether a socket read timed out somewhere in `error`'s causes.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

/// An error with its causes, `a: b: c` (dicom-ul's messages alone say only "failed to
/// receive pdu").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
