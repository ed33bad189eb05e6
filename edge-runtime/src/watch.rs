//! A scanner drop folder: classify each new file once it is complete, optionally move or copy
//! it into one folder per class, and remember what was done across restarts.
//!
//! A file is complete when two scans a poll interval apart see the same size and modification
//! time (scanners and PACS exports write files in pieces and do not signal the end).
//!
//! The journal (JSON, default `DIR/.edge-runtime-journal.json`) records each handled file with
//! its size and modification time, so a restart skips it while a new file that reuses the
//! name is handled again. It is replaced atomically (write a temporary file, sync, rename), so
//! a crash leaves either the old or the new journal, never a torn one. Each scan classifies
//! every complete file, saves the journal, then moves or copies them, then saves the journal
//! again: a crash between the two saves only repeats the (idempotent) delivery, never the
//! classification, and never loses a file. Entries of finished files that have left the
//! folder are dropped, so the journal stays as large as the folder, not its history.
//!
//! Hidden entries (names starting with `.`) are ignored, as are destination folders inside the
//! watched one. Files that fail to decode are reported and journaled, and stay where they are.

use crate::engine::{Engine, InferenceError, Prediction};
use crate::preprocess::{self, InputError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Journal file name inside the watched folder when none is given.
pub const DEFAULT_JOURNAL: &str = ".edge-runtime-journal.json";

/// What to do with a classified file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Leave it where it is.
    Keep,
    /// Move it to `DIR/<class>/`.
    MoveTo(PathBuf),
    /// Copy it to `DIR/<class>/`.
    CopyTo(PathBuf),
}

/// Why the watcher stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The folder, the journal or a destination could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The journal is not one this program wrote.
    #[error("{path}: unreadable journal ({source}); move it away to start afresh")]
    Journal {
        /// The journal.
        path: PathBuf,
        /// The parser's reason.
        source: serde_json::Error,
    },
    /// The engine failed on decodable images.
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WatchError + '_ {
    move |source| WatchError::Io { path: path.to_path_buf(), source }
}

/// What one scan did with one file.
#[derive(Debug)]
pub enum Event {
    /// Classified (and delivered, if asked).
    Classified {
        /// The file, where it was found.
        path: PathBuf,
        /// The model's answer.
        prediction: Prediction,
    },
    /// Could not be read as an image; left in place.
    Failed(InputError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    /// Nanoseconds since 1970 (u64 lasts until 2554; JSON has no u128).
    modified_ns: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    stamp: Stamp,
    /// The class name, or `None` for a file that failed to decode.
    class: Option<String>,
    delivered: bool,
}

/// The drop-folder state: the journal and the files seen in the previous scan.
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    journal_path: PathBuf,
    delivery: Delivery,
    journal: BTreeMap<String, Entry>,
    last_seen: HashMap<PathBuf, Stamp>,
    /// Journal key -> path of the files in the latest scan. Keys are UTF-8 (JSON), so a name
    /// that is not cannot be rebuilt from its key.
    paths: HashMap<String, PathBuf>,
}

impl Watcher {
    /// Opens `dir`, reading the journal at `journal` (default [`DEFAULT_JOURNAL`] in `dir`) if
    /// a previous run left one.
    ///
    /// # Errors
    /// [`WatchError::Io`] or [`WatchError::Journal`].
    pub fn open(dir: &Path, journal: Option<PathBuf>, delivery: Delivery) -> Result<Self, WatchError> {
        std::fs::read_dir(dir).map_err(io(dir))?;
        let journal_path = journal.unwrap_or_else(|| dir.join(DEFAULT_JOURNAL));
        let journal = match std::fs::read(&journal_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| WatchError::Journal { path: journal_path.clone(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(WatchError::Io { path: journal_path, source }),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            journal_path,
            delivery,
            journal,
            last_seen: HashMap::new(),
            paths: HashMap::new(),
        })
    }

    /// One scan: finishes deliveries a previous run left undone, then classifies and delivers
    /// every file that has not changed since the previous scan and is not in the journal.
    ///
    /// # Errors
    /// [`WatchError`] for folder or journal I/O and engine failures; bad image files are
    /// [`Event::Failed`] instead.
    pub fn scan(&mut self, engine: &Engine) -> Result<Vec<Event>, WatchError> {
        let mut seen = HashMap::new();
        self.list(&self.dir.clone(), &mut seen)?;
        let mut ready = Vec::new();
        for (path, stamp) in &seen {
            let key = self.key(path);
            let done = self.journal.get(&key).is_some_and(|e| e.stamp == *stamp);
            if !done && self.last_seen.get(path) == Some(stamp) {
                ready.push((path.clone(), key, *stamp));
            }
        }
        ready.sort();
        // Forget finished files that are no longer in the folder (moved to their class folder,
        // or removed), so the journal stays the size of the folder, not of its history.
        let before = self.journal.len();
        self.paths = seen.keys().map(|path| (self.key(path), path.clone())).collect();
        let paths = &self.paths;
        self.journal.retain(|key, entry| !entry.delivered || paths.contains_key(key));
        let pruned = self.journal.len() != before;
        self.last_seen = seen;

        let mut events = Vec::new();
        let mut images = Vec::new();
        let mut decoded = Vec::new();
        let paths: Vec<&Path> = ready.iter().map(|(path, _, _)| path.as_path()).collect();
        let loaded = preprocess::load_all(&paths, engine.options().threads);
        for ((path, key, stamp), loaded) in ready.into_iter().zip(loaded) {
            match loaded {
                Ok(image) => {
                    images.push(image);
                    decoded.push((path, key, stamp));
                }
                // Removed or renamed since the listing: a later scan sees it where it went.
                Err(InputError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    self.journal.insert(key, Entry { stamp, class: None, delivered: true });
                    events.push(Event::Failed(error));
                }
            }
        }
        let predictions = engine.classify(&images)?;
        for ((path, key, stamp), prediction) in decoded.into_iter().zip(predictions) {
            let class = Some(prediction.class_name().to_string());
            self.journal.insert(key, Entry { stamp, class, delivered: self.delivery == Delivery::Keep });
            events.push(Event::Classified { path, prediction });
        }
        if pruned || !events.is_empty() {
            self.save()?;
        }
        if self.deliver_pending()? {
            self.save()?;
        }
        Ok(events)
    }

    /// Moves or copies every journaled, undelivered file; says whether any was.
    fn deliver_pending(&mut self) -> Result<bool, WatchError> {
        let (root, copy) = match &self.delivery {
            Delivery::Keep => return Ok(false),
            Delivery::MoveTo(root) => (root.clone(), false),
            Delivery::CopyTo(root) => (root.clone(), true),
        };
        let mut any = false;
        for (key, entry) in self.journal.iter_mut().filter(|(_, e)| !e.delivered) {
            let Some(class) = &entry.class else { continue };
            let source = self.paths.get(key).cloned().unwrap_or_else(|| self.dir.join(key));
            let folder = root.join(class);
            std::fs::create_dir_all(&folder).map_err(io(&folder))?;
            let name = source.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(key.as_str()));
            let target = folder.join(&name);
            match std::fs::metadata(&source) {
                // Moved before a crash, or removed by someone else: nothing left to deliver.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source_err) => return Err(WatchError::Io { path: source, source: source_err }),
                Ok(meta) if copy => {
                    // A copy of the same size already there is this file, delivered before a
                    // crash that came before the journal save.
                    let same = std::fs::metadata(&target).is_ok_and(|t| t.len() == meta.len());
                    if !same {
                        let temp = folder.join(format!(".{}.partial", name.display()));
                        std::fs::copy(&source, &temp).map_err(io(&temp))?;
                        std::fs::rename(&temp, unused(&target)).map_err(io(&target))?;
                    }
                }
                Ok(_) => move_file(&source, &unused(&target))?,
            }
            entry.delivered = true;
            any = true;
        }
        Ok(any)
    }

    fn key(&self, path: &Path) -> String {
        path.strip_prefix(&self.dir).unwrap_or(path).to_string_lossy().into_owned()
    }

    fn list(&self, dir: &Path, out: &mut HashMap<PathBuf, Stamp>) -> Result<(), WatchError> {
        let entries = match std::fs::read_dir(dir) {
            // A sub-folder removed between its parent's listing and this one (scanners and
            // export tools create and remove temporary folders): nothing left to classify.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != self.dir => return Ok(()),
            entries => entries.map_err(io(dir))?,
        };
        for entry in entries {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let destination = match &self.delivery {
                Delivery::Keep => false,
                Delivery::MoveTo(d) | Delivery::CopyTo(d) => path == *d,
            };
            if hidden || destination || path == self.journal_path {
                continue;
            }
            // A file deleted between listing and stat is simply not there this scan.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                self.list(&path, out)?;
            } else if meta.is_file() {
                let modified_ns = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                out.insert(path, Stamp { size: meta.len(), modified_ns });
            }
        }
        Ok(())
    }

    fn save(&self) -> Result<(), WatchError> {
        let temp = self.journal_path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.journal)
            .map_err(|source| WatchError::Journal { path: self.journal_path.clone(), source })?;
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&temp).map_err(io(&temp))?;
            file.write_all(&bytes).map_err(io(&temp))?;
            // Durable before the rename makes it the journal.
            file.sync_all().map_err(io(&temp))?;
        }
        std::fs::rename(&temp, &self.journal_path).map_err(io(&self.journal_path))
    }
}

/// `target`, or `name-1.ext`, `name-2.ext`, ... when taken: delivery never overwrites.
fn unused(target: &Path) -> PathBuf {
    let stem = target.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = target.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let mut candidate = target.to_path_buf();
    let mut n = 1;
    while candidate.exists() {
        candidate = target.with_file_name(format!("{stem}-{n}{ext}"));
        n += 1;
    }
    candidate
}

/// Rename, or copy + remove across file systems (a drop folder on one disk, sorted on another).
fn move_file(source: &Path, target: &Path) -> Result<(), WatchError> {
    if std::fs::rename(source, target).is_ok() {
        return Ok(());
    }
    let temp = target.with_extension("partial");
    std::fs::copy(source, &temp).map_err(io(&temp))?;
    std::fs::rename(&temp, target).map_err(io(target))?;
    std::fs::remove_file(source).map_err(io(source))
}
