//! Properties of the simulator on random circuits (proptest).

use num_complex::Complex64;
use proptest::prelude::*;
use shared::quantum::fixed::{self, Angle, FixedUnitary};
use shared::quantum::{self, Ansatz, Gate, LayerWeights, State, Unitary, Wire, DIM};

const TAU: f64 = std::f64::consts::TAU;

fn angle() -> impl Strategy<Value = f64> {
    -2.0 * TAU..2.0 * TAU
}

fn features() -> impl Strategy<Value = [f64; 4]> {
    proptest::array::uniform4(angle())
}

fn circuit() -> impl Strategy<Value = (Ansatz, Vec<LayerWeights<f64>>)> {
    (1usize..=6).prop_flat_map(|layers| {
        let ranges = proptest::collection::vec(prop_oneof![Just(1u32), Just(2), Just(3), Just(5)], layers);
        let rotation =
            prop_oneof![Just(quantum::Rotation::X), Just(quantum::Rotation::Y), Just(quantum::Rotation::Z)];
        let weights =
            proptest::collection::vec(proptest::array::uniform4(proptest::array::uniform3(angle())), layers);
        (ranges, rotation, weights)
            .prop_map(|(r, rot, w)| (Ansatz::with_ranges(&r).unwrap().with_rotation(rot), w))
    })
}

fn gate() -> impl Strategy<Value = Gate> {
    (0usize..4, 0usize..4, 0u8..4).prop_map(|(a, b, kind)| {
        let (a, b) = (Wire::new(a).unwrap(), Wire::new(b).unwrap());
        match kind {
            0 => Gate::Rx(a),
            1 => Gate::Ry(a),
            2 => Gate::Rz(a),
            _ => Gate::Cnot { control: a, target: b },
        }
    })
}

/// A random normalised state.
fn state() -> impl Strategy<Value = State<f64>> {
    proptest::array::uniform16((-1.0f64..1.0, -1.0f64..1.0)).prop_filter_map("non-zero", |parts| {
        let mut s = State::zero();
        for (a, (re, im)) in s.amplitudes.iter_mut().zip(parts) {
            *a = Complex64::new(re, im);
        }
        let n = s.norm_sqr().sqrt();
        (n > 1e-3).then(|| {
            s.amplitudes.iter_mut().for_each(|a| *a /= n);
            s
        })
    })
}

/// The 16x16 matrix of a one-wire 2x2 matrix, as the Kronecker product I x .. x M x .. x I.
fn kron_on_wire(m: [[Complex64; 2]; 2], wire: usize) -> [[Complex64; DIM]; DIM] {
    let shift = 3 - wire;
    std::array::from_fn(|row| {
        std::array::from_fn(|col| {
            let others_equal = (row ^ col) & !(1 << shift) == 0;
            if others_equal {
                m[(row >> shift) & 1][(col >> shift) & 1]
            } else {
                Complex64::new(0.0, 0.0)
            }
        })
    })
}

proptest! {
    #[test]
    fn norm_is_preserved((ansatz, w) in circuit(), x in features()) {
        let s = quantum::simulate(&ansatz, &x, &w).unwrap();
        prop_assert!((s.norm_sqr() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gate_then_inverse_is_identity(s in state(), g in gate(), a in angle()) {
        let mut t = s;
        t.apply(g, a);
        t.apply_inverse(g, a);
        for (p, q) in s.amplitudes.iter().zip(&t.amplitudes) {
            prop_assert!((p - q).norm() < 1e-12);
        }
    }

    #[test]
    fn single_wire_gates_match_dense_kronecker_reference(s in state(), w in 0usize..4, a in angle()) {
        let (c, sn) = ((a / 2.0).cos(), (a / 2.0).sin());
        let i = Complex64::i();
        let one = Complex64::new(1.0, 0.0);
        let ry = [[one * c, -one * sn], [one * sn, one * c]];
        let mut t = s;
        t.apply(Gate::Ry(Wire::new(w).unwrap()), a);
        let rx = [[one * c, -i * sn], [-i * sn, one * c]];
        let mut u = s;
        u.apply(Gate::Rx(Wire::new(w).unwrap()), a);
        for (m, got) in [(ry, t), (rx, u)] {
            let dense = kron_on_wire(m, w);
            for (row, amp) in dense.iter().zip(&got.amplitudes) {
                let expect: Complex64 = row.iter().zip(&s.amplitudes).map(|(m, a)| m * a).sum();
                prop_assert!((expect - amp).norm() < 1e-12);
            }
        }
    }

    #[test]
    fn compiled_unitary_equals_gate_by_gate((ansatz, w) in circuit(), x in features()) {
        let gate_by_gate = quantum::simulate(&ansatz, &x, &w).unwrap();
        let compiled = Unitary::compile(&ansatz, &w).unwrap().state(&x);
        for (p, q) in gate_by_gate.amplitudes.iter().zip(&compiled.amplitudes) {
            prop_assert!((p - q).norm() < 1e-12);
        }
    }

    #[test]
    fn gradients_equal_finite_differences((ansatz, w) in circuit(), x in features(), c in proptest::array::uniform4(-1.0f64..1.0)) {
        let cost = |x: &[f64; 4], w: &[LayerWeights<f64>]| -> f64 {
            quantum::expvals(&ansatz, x, w).unwrap().iter().zip(&c).map(|(e, c)| e * c).sum()
        };
        let mut gw = vec![[[0.0; 3]; 4]; ansatz.layers()];
        let gf = quantum::gradient(&ansatz, &x, &w, &c, &mut gw).unwrap();
        let h = 1e-6;
        for i in 0..4 {
            let (mut xp, mut xm) = (x, x);
            xp[i] += h;
            xm[i] -= h;
            let fd = (cost(&xp, &w) - cost(&xm, &w)) / (2.0 * h);
            prop_assert!((fd - gf[i]).abs() < 1e-7, "feature {i}: {fd} vs {}", gf[i]);
        }
        for l in 0..ansatz.layers() {
            for wire in 0..4 {
                for k in 0..3 {
                    let (mut wp, mut wm) = (w.clone(), w.clone());
                    wp[l][wire][k] += h;
                    wm[l][wire][k] -= h;
                    let fd = (cost(&x, &wp) - cost(&x, &wm)) / (2.0 * h);
                    prop_assert!((fd - gw[l][wire][k]).abs() < 1e-7);
                }
            }
        }
    }

    #[test]
    fn batch_gradient_equals_per_sample_adjoint((ansatz, w) in circuit(), xs in proptest::collection::vec(features(), 1..5)) {
        let coeffs: Vec<[f64; 4]> = xs.iter().map(|x| x.map(|v| v.sin())).collect();
        let mut gf = vec![[0.0; 4]; xs.len()];
        let mut gw = vec![[[0.0; 3]; 4]; ansatz.layers()];
        quantum::gradient_batch(&ansatz, &xs, &w, &coeffs, &mut gf, &mut gw).unwrap();
        let mut sum = vec![[[0.0; 3]; 4]; ansatz.layers()];
        for ((x, c), g) in xs.iter().zip(&coeffs).zip(&gf) {
            let mut one = vec![[[0.0; 3]; 4]; ansatz.layers()];
            let f = quantum::gradient(&ansatz, x, &w, c, &mut one).unwrap();
            for (a, b) in f.iter().zip(g) {
                prop_assert!((a - b).abs() < 1e-12);
            }
            for (s, o) in sum.iter_mut().flatten().flatten().zip(one.iter().flatten().flatten()) {
                *s += o;
            }
        }
        for (s, g) in sum.iter().flatten().flatten().zip(gw.iter().flatten().flatten()) {
            prop_assert!((s - g).abs() < 1e-12);
        }
    }

    #[test]
    fn fixed_point_within_bound((ansatz, w) in circuit(), x in features()) {
        let exact = quantum::expvals(&ansatz, &x, &w).unwrap();
        let fx = x.map(Angle::from_radians);
        let fw: Vec<fixed::FixedLayerWeights> = w.iter().map(|l| l.map(|r| r.map(Angle::from_radians))).collect();
        let bound = fixed::expval_error_bound(ansatz.layers());
        let paths = [
            fixed::simulate(&ansatz, &fx, &fw).unwrap().expvals(),
            FixedUnitary::compile(&ansatz, &fw).unwrap().expvals(&fx),
            FixedUnitary::quantize(&Unitary::compile(&ansatz, &w).unwrap()).expvals(&fx),
        ];
        for e in paths {
            for (got, want) in e.iter().zip(&exact) {
                prop_assert!((fixed::to_f64(*got) - want).abs() <= bound);
            }
        }
    }
}

#[test]
fn shape_errors_are_reported_not_panicked() {
    let ansatz = Ansatz::new(2).unwrap();
    let one_layer = vec![[[0.0f64; 3]; 4]; 1];
    assert_eq!(
        quantum::expvals(&ansatz, &[0.0; 4], &one_layer),
        Err(quantum::Error::WeightLayers { expected: 2, found: 1 })
    );
    assert!(Unitary::compile(&ansatz, &one_layer).is_err());
    let weights = vec![[[0.0f64; 3]; 4]; 2];
    let mut gf = vec![[0.0; 4]; 1];
    let mut gw = vec![[[0.0; 3]; 4]; 2];
    assert_eq!(
        quantum::gradient_batch(&ansatz, &[[0.0; 4]; 2], &weights, &[[0.0; 4]; 2], &mut gf, &mut gw),
        Err(quantum::Error::BatchLength { expected: 2, found: 1 })
    );
}
