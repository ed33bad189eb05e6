//! The model, loaded and verified, and batched classification. The only module that imports
//! tract, so a tract upgrade touches this file alone.

use crate::artifacts::{self, LoadError, ModelDir};
use crate::preprocess::{Image, PIXELS, SIDE};
use shared::model::{
    FixedClassifier, FixedPrediction, IntCnn, QuantumHead, CLASSES, CLASS_NAMES, HEAD_FRAC_BITS,
};
use shared::proto::ModelHash;
use shared::quantum::Unitary;
use std::path::Path;
use tract_onnx::prelude::*;

type Plan = std::sync::Arc<TypedRunnableModel>;

/// Fewest images worth a worker thread: 64 images are about 2 ms of work on an x86 core, far
/// more than starting a thread costs.
pub const IMAGES_PER_THREAD: usize = 64;

/// The ONNX graph compiled for one image and for `Options::batch` images.
struct Plans {
    single: Plan,
    batched: Plan,
}

/// Which arithmetic classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// The ONNX CNN in tract, then the circuit and head in `f32`.
    #[default]
    Float,
    /// The whole hybrid as one ONNX graph (`hybrid-full.onnx`: CNN, circuit folded into real
    /// operators, head) in tract: what any ONNX runtime runs.
    Onnx,
    /// The firmware's integer model (`shared::model::FixedClassifier`), bit for bit what an
    /// RP2040 answers for the same 64x64 pixels.
    Fixed,
}

/// How to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Float or fixed point.
    pub kind: EngineKind,
    /// Worker threads; each takes an equal share of a call's images (at least
    /// [`IMAGES_PER_THREAD`] of them).
    pub threads: usize,
    /// Images per tract run. The graph is compiled for exactly this batch size (plus a
    /// one-image plan for the remainder of a call): tract runs a fixed batch size about twice
    /// as fast as a symbolic one. On the 2-core x86 machine here one image per run was the
    /// fastest (28 us per image; 31-33 us for batches of 2 to 64; 62 us with a symbolic batch).
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kind: EngineKind::Float,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            batch: 1,
        }
    }
}

/// The model's answer for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Index into [`CLASS_NAMES`] of the most probable class (the first one on ties).
    pub class: usize,
    /// Softmax of the head's logits, in [`CLASS_NAMES`] order.
    pub probabilities: [f32; CLASSES],
}

impl Prediction {
    /// The class's name.
    pub fn class_name(&self) -> &'static str {
        CLASS_NAMES[self.class]
    }

    /// The prediction for the integer model's answer (on the host, or a device's over the
    /// serial link): the softmax of its fixed-point logits, and its own integer argmax.
    pub fn from_fixed(class: u8, logits: [i32; CLASSES]) -> Self {
        let scale = (1u32 << HEAD_FRAC_BITS) as f32;
        let mut prediction = Self::from_logits(logits.map(|l| l as f32 / scale));
        // Keep the integer argmax even where two logits round to the same f32.
        prediction.class = usize::from(class).min(CLASSES - 1);
        prediction
    }

    fn from_logits(logits: [f32; CLASSES]) -> Self {
        let class =
            logits.iter().enumerate().fold(0, |best, (i, &l)| if l > logits[best] { i } else { best });
        // Shifting by the largest logit keeps `exp` from overflowing.
        let top = logits[class];
        let exp = logits.map(|l| (l - top).exp());
        let sum: f32 = exp.iter().sum();
        Self { class, probabilities: exp.map(|e| e / sum) }
    }
}

/// A failure while running the model.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// tract refused to run the graph on the batch.
    #[error("tract failed: {0}")]
    Tract(String),
    /// The integer model refused the input.
    #[error("integer model failed: {0}")]
    Fixed(shared::nn::Error),
    /// The integer CNN's bytes, checked at load, no longer parse (not expected).
    #[error("integer CNN artifact: {0}")]
    Artifact(shared::model::Error),
    /// A worker thread died (a bug: nothing in a worker is expected to panic).
    #[error("a worker thread panicked")]
    Worker,
}

/// The loaded, verified model.
pub struct Engine {
    options: Options,
    plans: Option<Plans>,
    head: QuantumHead,
    unitary: Unitary<f32>,
    /// The integer CNN's bytes: `IntCnn` borrows its weights from them, so the fixed path
    /// parses them (microseconds) per call instead of holding a self-referential struct.
    int_cnn: Vec<u8>,
    /// Identifies the integer model to a device (the serial handshake).
    model_hash: ModelHash,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads the model set in `dir` (the workspace's `models/` holds the committed one) after
    /// checking every artifact against `model-card.json`.
    ///
    /// # Errors
    /// Any [`LoadError`]: a missing, unlisted, damaged or tampered file, or one that does not
    /// parse.
    pub fn load(dir: impl AsRef<Path>, options: &Options) -> Result<Self, LoadError> {
        let dir = ModelDir::open(dir.as_ref())?;
        let head_bytes = dir.read_verified(artifacts::QUANTUM_HEAD_FILE)?;
        let head = QuantumHead::decode_from_bytes(&head_bytes)
            .map_err(|source| LoadError::Artifact { path: dir.path(artifacts::QUANTUM_HEAD_FILE), source })?;
        let int_cnn = dir.read_verified(artifacts::INT_CNN_FILE)?;
        IntCnn::decode_from_bytes(&int_cnn)
            .map_err(|source| LoadError::Artifact { path: dir.path(artifacts::INT_CNN_FILE), source })?;
        // The float engine alone needs the ONNX graph, but every engine verifies the whole set,
        // so `--engine fixed` refuses the same damaged directory the float engine does.
        let encoder = dir.read_verified(artifacts::ONNX_FILE)?;
        let options = Options { threads: options.threads.max(1), batch: options.batch.max(1), ..*options };
        let graph = match options.kind {
            EngineKind::Float => Some((artifacts::ONNX_FILE, encoder)),
            EngineKind::Onnx => {
                Some((artifacts::FULL_ONNX_FILE, dir.read_verified(artifacts::FULL_ONNX_FILE)?))
            }
            EngineKind::Fixed => None,
        };
        let plans = match graph {
            Some((file, onnx)) => {
                let refused =
                    |e: TractError| LoadError::Onnx { path: dir.path(file), reason: format!("{e:#}") };
                let single = optimise(&onnx, 1).map_err(refused)?;
                let batched = if options.batch == 1 {
                    single.clone()
                } else {
                    optimise(&onnx, options.batch).map_err(refused)?
                };
                Some(Plans { single, batched })
            }
            None => None,
        };
        let model_hash = ModelHash::of_artifacts(&int_cnn, &head_bytes);
        Ok(Self { options, plans, unitary: head.unitary(), head, int_cnn, model_hash })
    }

    /// The hash a device running this model's integer artifacts answers in its handshake.
    pub fn model_hash(&self) -> ModelHash {
        self.model_hash
    }

    /// The options the engine runs with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Classifies `images`, one prediction each, in order.
    ///
    /// # Errors
    /// [`InferenceError`] when tract or the integer model fails (not expected for valid
    /// images: every [`Image`] has the model's shape).
    pub fn classify(&self, images: &[Image]) -> Result<Vec<Prediction>, InferenceError> {
        let threads = self.options.threads.min(images.len() / IMAGES_PER_THREAD).max(1);
        if threads == 1 {
            return self.classify_on_this_thread(images);
        }
        let share = images.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = images
                .chunks(share)
                .map(|chunk| scope.spawn(move || self.classify_on_this_thread(chunk)))
                .collect();
            let mut out = Vec::with_capacity(images.len());
            for worker in workers {
                out.extend(worker.join().map_err(|_| InferenceError::Worker)??);
            }
            Ok(out)
        })
    }

    fn classify_on_this_thread(&self, images: &[Image]) -> Result<Vec<Prediction>, InferenceError> {
        match &self.plans {
            Some(plans) => {
                let batches = images.chunks_exact(self.options.batch);
                let rest = batches.remainder().chunks(1).map(|image| (&plans.single, image));
                let mut out = Vec::with_capacity(images.len());
                let tract = |e: TractError| InferenceError::Tract(format!("{e:#}"));
                for (plan, batch) in batches.map(|batch| (&plans.batched, batch)).chain(rest) {
                    if self.options.kind == EngineKind::Onnx {
                        // The graph's first output is the logits.
                        out.extend(
                            run_graph(plan, batch).map_err(tract)?.into_iter().map(Prediction::from_logits),
                        );
                        continue;
                    }
                    for angles in run_graph(plan, batch).map_err(tract)? {
                        let expvals = self.unitary.expvals(&angles);
                        out.push(Prediction::from_logits(self.head.logits(&expvals)));
                    }
                }
                Ok(out)
            }
            None => self.classify_fixed(images),
        }
    }

    fn classify_fixed(&self, images: &[Image]) -> Result<Vec<Prediction>, InferenceError> {
        Ok(self
            .classify_integer(images)?
            .iter()
            .map(|fixed| Prediction::from_fixed(fixed.class, fixed.logits))
            .collect())
    }

    /// The integer model's own answers (class, fixed-point logits, angles, `<Z_i>`), bit for
    /// bit a device's, whatever the engine's kind; on this thread.
    ///
    /// # Errors
    /// [`InferenceError`] when the integer model fails (not expected for valid images).
    pub fn classify_integer(&self, images: &[Image]) -> Result<Vec<FixedPrediction>, InferenceError> {
        // Parsed and validated once at load; a failure here would mean the bytes changed.
        let cnn = IntCnn::decode_from_bytes(&self.int_cnn).map_err(InferenceError::Artifact)?;
        let classifier = FixedClassifier::new(cnn, self.head.clone());
        let mut scratch = vec![0; classifier.scratch_len()];
        images
            .iter()
            .map(|image| classifier.classify(image.pixels(), &mut scratch).map_err(InferenceError::Fixed))
            .collect()
    }
}

/// Loads the ONNX graph and compiles it for exactly `batch` images per run.
fn optimise(onnx: &[u8], batch: usize) -> TractResult<Plan> {
    let mut model = tract_onnx::onnx().model_for_read(&mut &onnx[..])?;
    model.set_input_fact(0, f32::fact([batch, 1, SIDE, SIDE]).into())?;
    model.into_optimized()?.into_runnable()
}

/// The graph's first output for `images`, one row of `N` values each (the encoder's angles,
/// or the whole model's logits).
fn run_graph<const N: usize>(plan: &Plan, images: &[Image]) -> TractResult<Vec<[f32; N]>> {
    let mut input = Vec::with_capacity(images.len() * PIXELS);
    for image in images {
        input.extend(image.pixels().iter().map(|&p| f32::from(p) / 255.0));
    }
    let input = Tensor::from_shape(&[images.len(), 1, SIDE, SIDE], &input)?;
    let outputs = plan.run(tvec!(input.into_tvalue()))?;
    let rows = outputs[0].to_plain_array_view::<f32>()?;
    if rows.shape() != [images.len(), N] {
        anyhow::bail!("the graph returned shape {:?}, expected [{}, {N}]", rows.shape(), images.len());
    }
    Ok(rows.as_slice().map_or_else(
        || rows.outer_iter().map(|row| std::array::from_fn(|i| row[i])).collect(),
        |flat| flat.chunks_exact(N).map(|c| std::array::from_fn(|i| c[i])).collect(),
    ))
}
