//! The trained circuit as quantum hardware would run it: accuracy when `<Z_i>` is estimated
//! from finite shots, under depolarizing gate noise and readout errors
//! (`shared::quantum::noise`), and the angles a device would be given.
//!
//! For every depolarizing probability `p` the noisy outcome distribution of each image is
//! computed once, exactly (density matrix); each readout flip probability `q` is applied to
//! it, and each shot count samples it (a multinomial draw, seeded per image so every setting
//! sees reproducible shots). The head then reads the estimated `<Z>` as it reads the exact one.

use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Binomial, Distribution};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shared::model::QuantumHead;
use shared::quantum::noise::{expvals_of_counts, expvals_of_distribution, NoiseModel};
use shared::quantum::{Ansatz, LayerWeights, DIM, WIRES};

use crate::data;
use crate::model::Model;

/// Images per encoder forward pass.
const ENCODER_BATCH: usize = 512;

/// The encoder's angles for 64x64 gray `images`.
pub fn angles<'a>(
    model: &Model,
    images: impl Iterator<Item = &'a [u8]>,
    device: &Device,
) -> Vec<[f32; WIRES]> {
    let images: Vec<&[u8]> = images.collect();
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(ENCODER_BATCH) {
        let batch = data::images_tensor(chunk.iter().copied(), device);
        let values = model.encoder.forward(batch).into_data().convert::<f32>();
        let values = values.as_slice::<f32>().unwrap_or_default();
        out.extend(values.chunks_exact(WIRES).map(|a| std::array::from_fn(|i| a[i])));
    }
    out
}

/// The settings to evaluate: every combination of the three lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grid {
    /// Shot counts (the exact expectation, "infinitely many shots", is always evaluated too).
    pub shots: Vec<u32>,
    /// Depolarizing probabilities after each gate.
    pub depolarizing: Vec<f64>,
    /// Readout flip probabilities per measured bit.
    pub readout_flip: Vec<f64>,
    /// Seed of the shot sampler.
    pub seed: u64,
}

/// Test accuracy at one setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub depolarizing: f64,
    pub readout_flip: f64,
    /// `None`: exact expectations.
    pub shots: Option<u32>,
    pub accuracy: f64,
}

/// What `trainer noise` writes as `noise.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoiseReport {
    pub model_dir: String,
    pub split: String,
    pub images: usize,
    pub grid: Grid,
    pub noise_model: String,
    pub seconds: f64,
    pub points: Vec<Point>,
}

impl NoiseReport {
    /// The accuracy at one setting, if it was evaluated.
    pub fn accuracy(&self, depolarizing: f64, readout_flip: f64, shots: Option<u32>) -> Option<f64> {
        self.points
            .iter()
            .find(|p| p.depolarizing == depolarizing && p.readout_flip == readout_flip && p.shots == shots)
            .map(|p| p.accuracy)
    }
}

/// One line describing the noise model, for reports.
pub const NOISE_MODEL: &str =
    "depolarizing channel with probability p on each wire a gate acts on, after every gate \
(each Rot as RZ RY RZ, CNOT on control and target); each measured bit flipped with probability q";

#[derive(Debug, thiserror::Error)]
pub enum HardwareError {
    #[error(transparent)]
    Circuit(#[from] shared::quantum::Error),
    #[error("{0} angles for {1} labels")]
    Length(usize, usize),
}

/// Accuracy of `head` on images with encoder outputs `angles` and true classes `labels`, at
/// every setting of `grid`.
///
/// # Errors
/// [`HardwareError`] for a probability outside `[0, 1]` or inputs of different lengths.
pub fn evaluate(
    head: &QuantumHead,
    angles: &[[f32; WIRES]],
    labels: &[usize],
    grid: &Grid,
) -> Result<Vec<Point>, HardwareError> {
    if angles.len() != labels.len() {
        return Err(HardwareError::Length(angles.len(), labels.len()));
    }
    let (ansatz, weights) = circuit_f64(head);
    let mut points = Vec::new();
    for &p in &grid.depolarizing {
        let gates = NoiseModel::new(p, 0.0)?;
        // Per image: the distribution before readout, then one correct/incorrect flag per
        // (q, shots) setting.
        let mut settings = Vec::new();
        for &q in &grid.readout_flip {
            let model = NoiseModel::new(p, q)?;
            settings.push((model, None));
            settings.extend(grid.shots.iter().map(|&s| (model, Some(s))));
        }
        let correct: Vec<Vec<bool>> = angles
            .par_iter()
            .zip(labels)
            .enumerate()
            .map(|(n, (a, &label))| {
                let features = a.map(f64::from);
                let before_readout = gates.final_state(&ansatz, &features, &weights)?.probabilities();
                let mut rng =
                    StdRng::seed_from_u64(grid.seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                Ok(settings
                    .iter()
                    .map(|&(model, shots)| {
                        let probabilities = model.read_out(before_readout);
                        let z = match shots {
                            None => expvals_of_distribution(&probabilities),
                            Some(shots) => expvals_of_counts(&sample_counts(&probabilities, shots, &mut rng)),
                        };
                        classify(head, &z) == label
                    })
                    .collect())
            })
            .collect::<Result<_, shared::quantum::Error>>()?;
        for (s, &(model, shots)) in settings.iter().enumerate() {
            let right = correct.iter().filter(|row| row[s]).count();
            let accuracy = right as f64 / angles.len().max(1) as f64;
            points.push(Point { depolarizing: p, readout_flip: model.readout_flip(), shots, accuracy });
        }
    }
    Ok(points)
}

/// The head's most probable class for expectation values `z`.
fn classify(head: &QuantumHead, z: &[f64; WIRES]) -> usize {
    let logits = head.logits(&z.map(|v| v as f32));
    logits.iter().enumerate().fold(0, |best, (c, &l)| if l > logits[best] { c } else { best })
}

/// How many of `shots` fall on each bit string: a multinomial draw as a chain of binomials
/// (outcome `k` takes a binomial share of the shots the earlier outcomes left).
pub fn sample_counts(probabilities: &[f64; DIM], shots: u32, rng: &mut StdRng) -> [u32; DIM] {
    let mut counts = [0u32; DIM];
    let (mut left, mut mass) = (u64::from(shots), 1.0f64);
    for (count, &p) in counts.iter_mut().zip(probabilities) {
        if left == 0 {
            break;
        }
        let share = if mass > 0.0 { (p.max(0.0) / mass).clamp(0.0, 1.0) } else { 1.0 };
        let drawn = Binomial::new(left, share).map_or(0, |b| b.sample(rng));
        *count = drawn as u32;
        left -= drawn;
        mass -= p.max(0.0);
    }
    // Rounding can leave the last outcomes' mass at zero with shots unassigned: give them to
    // the most likely outcome rather than lose them.
    if left > 0 {
        let top = (0..DIM).fold(0, |b, k| if probabilities[k] > probabilities[b] { k } else { b });
        counts[top] += left as u32;
    }
    counts
}

/// The noiseless circuit of `head` as `f64` weights, for export and reference values.
pub fn circuit_f64(head: &QuantumHead) -> (Ansatz, Vec<LayerWeights<f64>>) {
    (head.ansatz(), head.weights().iter().map(|l| l.map(|w| w.map(f64::from))).collect())
}

/// `head`'s circuit as OpenQASM 3, the embedding angles as inputs.
///
/// # Errors
/// [`HardwareError::Circuit`] for weights that cannot be written (non-finite).
pub fn circuit_qasm3(head: &QuantumHead) -> Result<String, HardwareError> {
    let (ansatz, weights) = circuit_f64(head);
    Ok(shared::quantum::qasm::qasm3(&ansatz, &weights)?)
}

/// One image's circuit for another toolchain: its angles, the exact `<Z_i>` a correct
/// simulator must reproduce, and the file holding its OpenQASM 2.0 program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QasmCase {
    pub image: String,
    pub angles: [f64; WIRES],
    pub expvals: [f64; WIRES],
    pub qasm2: String,
}

/// The reference case and the OpenQASM 2.0 program for one image's `angles`.
///
/// # Errors
/// [`HardwareError::Circuit`] for non-finite angles or weights.
pub fn qasm_case(
    head: &QuantumHead,
    image: String,
    angles: &[f32; WIRES],
    qasm2_file: String,
) -> Result<(QasmCase, String), HardwareError> {
    let (ansatz, weights) = circuit_f64(head);
    let angles = angles.map(f64::from);
    let program = shared::quantum::qasm::qasm2(&ansatz, &angles, &weights)?;
    let expvals = shared::quantum::expvals(&ansatz, &angles, &weights)?;
    Ok((QasmCase { image, angles, expvals, qasm2: qasm2_file }, program))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_follow_the_distribution() {
        let mut p = [0.0; DIM];
        (p[0], p[5], p[15]) = (0.5, 0.25, 0.25);
        let mut rng = StdRng::seed_from_u64(7);
        let counts = sample_counts(&p, 100_000, &mut rng);
        assert_eq!(counts.iter().sum::<u32>(), 100_000);
        assert_eq!(
            counts.iter().enumerate().filter(|(k, _)| ![0, 5, 15].contains(k)).map(|(_, c)| c).sum::<u32>(),
            0
        );
        assert!((f64::from(counts[0]) / 1e5 - 0.5).abs() < 0.01, "{counts:?}");
        assert!((f64::from(counts[5]) / 1e5 - 0.25).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_shots() {
        let p = [1.0 / 16.0; DIM];
        let draw = |seed| sample_counts(&p, 1000, &mut StdRng::seed_from_u64(seed));
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
