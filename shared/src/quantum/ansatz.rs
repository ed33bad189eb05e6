//! The circuit's structure: embedding rotation, layer count, CNOT ranges, and the gate
//! sequence every simulator walks.

use super::{Error, Result, WIRES};
use heapless::Vec;

/// Most layers a circuit may have (the model uses 4; the golden vectors go up to 6).
pub const MAX_LAYERS: usize = 16;

/// The rotation `AngleEmbedding` uses for the features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rotation {
    /// `RX(x_i)` on wire `i` (PennyLane's default).
    #[default]
    X,
    /// `RY(x_i)`.
    Y,
    /// `RZ(x_i)`.
    Z,
}

/// A wire index, `0..4`, checked once at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Wire(u8);

impl Wire {
    /// The wire `index`, or `None` when it is not below [`WIRES`].
    pub const fn new(index: usize) -> Option<Self> {
        if index < WIRES {
            Some(Self(index as u8))
        } else {
            None
        }
    }

    /// `index mod 4`: always a valid wire.
    pub const fn wrapping(index: usize) -> Self {
        Self((index % WIRES) as u8)
    }

    /// The wire's index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Bit mask of this wire in a state index (wire 0 is the most significant bit).
    pub const fn mask(self) -> usize {
        1 << (WIRES - 1 - self.0 as usize)
    }
}

/// One gate of the circuit. Rotations are `exp(-i angle P / 2)` for the Pauli `P`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Gate {
    /// Rotation about X.
    Rx(Wire),
    /// Rotation about Y.
    Ry(Wire),
    /// Rotation about Z.
    Rz(Wire),
    /// Controlled NOT.
    Cnot {
        /// Control wire.
        control: Wire,
        /// Target wire.
        target: Wire,
    },
}

/// Where a rotation's angle comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Param {
    /// `features[i]`.
    Feature(usize),
    /// `weights[layer][wire][k]`, `k` = 0 (phi), 1 (theta), 2 (omega).
    Weight {
        /// Layer.
        layer: usize,
        /// Wire.
        wire: usize,
        /// Index within `[phi, theta, omega]`.
        k: usize,
    },
}

/// A gate with the parameter that drives it (`None` for CNOT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Op {
    /// The gate.
    pub gate: Gate,
    /// Its angle's source.
    pub param: Option<Param>,
}

impl Op {
    /// The angle of this op for the given arguments (zero for CNOT).
    #[inline]
    pub fn angle<T: Copy + Default>(&self, features: &[T; WIRES], weights: &[[[T; 3]; WIRES]]) -> T {
        match self.param {
            Some(Param::Feature(i)) => features[i],
            Some(Param::Weight { layer, wire, k }) => weights[layer][wire][k],
            None => T::default(),
        }
    }
}

/// Ops per layer: `Rot` = 3 rotations on each of 4 wires, then 4 CNOTs.
const OPS_PER_LAYER: usize = 4 * 3 + WIRES;

/// `AngleEmbedding(rotation)` followed by `StronglyEntanglingLayers(ranges)` on 4 wires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ansatz {
    rotation: Rotation,
    ranges: Vec<u8, MAX_LAYERS>,
}

impl Ansatz {
    /// `layers` layers with PennyLane's default ranges `1, 2, 3, 1, 2, 3, ...`, X embedding.
    ///
    /// # Errors
    /// [`Error::LayerCount`] unless `1 <= layers <= MAX_LAYERS`.
    pub fn new(layers: usize) -> Result<Self> {
        if layers == 0 || layers > MAX_LAYERS {
            return Err(Error::LayerCount { layers });
        }
        let ranges = (0..layers).map(|l| (l % (WIRES - 1) + 1) as u8).collect();
        Ok(Self { rotation: Rotation::X, ranges })
    }

    /// One layer per entry of `ranges`, X embedding. As in PennyLane, a range is taken mod 4
    /// and a multiple of 4 is refused.
    ///
    /// # Errors
    /// [`Error::LayerCount`] for an empty or too long list, [`Error::Range`] for a multiple of 4.
    pub fn with_ranges(ranges: &[u32]) -> Result<Self> {
        if ranges.is_empty() || ranges.len() > MAX_LAYERS {
            return Err(Error::LayerCount { layers: ranges.len() });
        }
        let mut reduced = Vec::new();
        for (layer, &range) in ranges.iter().enumerate() {
            if range % WIRES as u32 == 0 {
                return Err(Error::Range { layer, range });
            }
            // Cannot fail: the length was checked above.
            let _ = reduced.push((range % WIRES as u32) as u8);
        }
        Ok(Self { rotation: Rotation::X, ranges: reduced })
    }

    /// A circuit from ranges already reduced mod 4 and checked (by a parser that validated
    /// them with [`Self::with_ranges`]).
    pub(crate) fn from_validated(rotation: Rotation, ranges: Vec<u8, MAX_LAYERS>) -> Self {
        Self { rotation, ranges }
    }

    /// The same circuit with another embedding rotation.
    pub fn with_rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// The embedding rotation.
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.ranges.len()
    }

    /// The CNOT range of each layer, reduced mod 4.
    pub fn ranges(&self) -> &[u8] {
        &self.ranges
    }

    /// Number of trainable weights, `layers * 4 * 3`.
    pub fn weight_count(&self) -> usize {
        self.layers() * WIRES * 3
    }

    /// Checks that `weights` has one entry per layer.
    ///
    /// # Errors
    /// [`Error::WeightLayers`] otherwise.
    pub fn check_weights<T>(&self, weights: &[[[T; 3]; WIRES]]) -> Result<()> {
        if weights.len() == self.layers() {
            Ok(())
        } else {
            Err(Error::WeightLayers { expected: self.layers(), found: weights.len() })
        }
    }

    /// The whole circuit in time order: the embedding, then every layer.
    pub fn ops(&self) -> impl DoubleEndedIterator<Item = Op> + '_ {
        self.embedding_ops().chain(self.layer_ops())
    }

    /// The embedding: one rotation per wire, driven by the features.
    pub fn embedding_ops(&self) -> impl DoubleEndedIterator<Item = Op> + '_ {
        (0..WIRES).map(move |i| {
            let wire = Wire::wrapping(i);
            let gate = match self.rotation {
                Rotation::X => Gate::Rx(wire),
                Rotation::Y => Gate::Ry(wire),
                Rotation::Z => Gate::Rz(wire),
            };
            Op { gate, param: Some(Param::Feature(i)) }
        })
    }

    /// The entangling layers: they depend on the weights only, so they compile to a unitary.
    pub fn layer_ops(&self) -> impl DoubleEndedIterator<Item = Op> + '_ {
        (0..self.layers() * OPS_PER_LAYER).map(move |n| self.layer_op(n / OPS_PER_LAYER, n % OPS_PER_LAYER))
    }

    /// Where layer `layer`'s CNOTs, in order, send each basis state: `perm[k]` is the image
    /// of `|k>` (layers beyond the circuit's permute nothing).
    pub(crate) fn cnot_permutation(&self, layer: usize) -> [u8; super::DIM] {
        let r = self.ranges.get(layer).copied().unwrap_or(0) as usize;
        core::array::from_fn(|k| {
            let mut k = k;
            if r != 0 {
                for i in 0..WIRES {
                    let (control, target) = (Wire::wrapping(i), Wire::wrapping(i + r));
                    if k & control.mask() != 0 {
                        k ^= target.mask();
                    }
                }
            }
            k as u8
        })
    }

    fn layer_op(&self, layer: usize, j: usize) -> Op {
        if j < 12 {
            // Rot(phi, theta, omega) on wire j / 3 is RZ(phi), then RY(theta), then RZ(omega).
            let (wire, k) = (j / 3, j % 3);
            let w = Wire::wrapping(wire);
            let gate = if k == 1 { Gate::Ry(w) } else { Gate::Rz(w) };
            Op { gate, param: Some(Param::Weight { layer, wire, k }) }
        } else {
            let i = j - 12;
            let r = self.ranges[layer] as usize;
            Op { gate: Gate::Cnot { control: Wire::wrapping(i), target: Wire::wrapping(i + r) }, param: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ranges_follow_pennylane_code() {
        assert_eq!(Ansatz::new(6).unwrap().ranges(), &[1, 2, 3, 1, 2, 3]);
        assert_eq!(Ansatz::new(1).unwrap().ranges(), &[1]);
    }

    #[test]
    fn ranges_reduce_mod_4_and_refuse_multiples() {
        assert_eq!(Ansatz::with_ranges(&[5, 6, 7]).unwrap().ranges(), &[1, 2, 3]);
        assert_eq!(Ansatz::with_ranges(&[1, 4]), Err(Error::Range { layer: 1, range: 4 }));
        assert_eq!(Ansatz::with_ranges(&[]), Err(Error::LayerCount { layers: 0 }));
        assert_eq!(Ansatz::new(MAX_LAYERS + 1), Err(Error::LayerCount { layers: 17 }));
    }

    #[test]
    fn range_two_cnots_in_pennylane_order() {
        let a = Ansatz::with_ranges(&[2]).unwrap();
        let cnots: std::vec::Vec<(usize, usize)> = a
            .ops()
            .filter_map(|op| match op.gate {
                Gate::Cnot { control, target } => Some((control.index(), target.index())),
                _ => None,
            })
            .collect();
        assert_eq!(cnots, [(0, 2), (1, 3), (2, 0), (3, 1)]);
        assert_eq!(a.ops().count(), 4 + 16);
    }
}
