//! Circuit benchmarks: `cargo bench -p shared --bench circuit`.
//!
//! The model's circuit: X embedding + 4 StronglyEntanglingLayers with default ranges.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shared::quantum::fixed::{self, Angle, FixedUnitary};
use shared::quantum::{self, Ansatz, LayerWeights, Unitary};

const LAYERS: usize = 4;
const BATCH: usize = 32;

/// Deterministic angles in [-pi, pi) (a fixed LCG keeps the bench free of an rng dependency).
fn angles(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * std::f32::consts::TAU
        })
        .collect()
}

fn weights(seed: u64) -> Vec<LayerWeights<f32>> {
    angles(LAYERS * 12, seed)
        .chunks(12)
        .map(|l| std::array::from_fn(|w| std::array::from_fn(|k| l[w * 3 + k])))
        .collect()
}

fn batch(seed: u64) -> Vec<[f32; 4]> {
    angles(BATCH * 4, seed).chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

fn bench(c: &mut Criterion) {
    let ansatz = Ansatz::new(LAYERS).unwrap();
    let w = weights(1);
    let xs = batch(2);
    let u = Unitary::compile(&ansatz, &w).unwrap();

    c.bench_function("forward 1 sample f32, compiled unitary", |b| b.iter(|| u.expvals(black_box(&xs[0]))));
    c.bench_function("forward 1 sample f32, gate by gate", |b| {
        b.iter(|| quantum::expvals(&ansatz, black_box(&xs[0]), &w).unwrap())
    });
    c.bench_function("compile unitary f32, 4 layers", |b| {
        b.iter(|| Unitary::compile(&ansatz, black_box(&w)).unwrap())
    });

    let coeffs = batch(3);
    let mut gf = vec![[0.0f32; 4]; BATCH];
    let mut gw = vec![[[0.0f32; 3]; 4]; LAYERS];
    c.bench_function("batch 32 f32, forward + gradients (adjoint)", |b| {
        b.iter(|| quantum::gradient_batch(&ansatz, black_box(&xs), &w, &coeffs, &mut gf, &mut gw).unwrap())
    });
    // The per-batch part of the cost (compile + one backward pass over the layers).
    c.bench_function("batch 1 f32, forward + gradients (adjoint)", |b| {
        b.iter(|| {
            quantum::gradient_batch(&ansatz, black_box(&xs[..1]), &w, &coeffs[..1], &mut gf[..1], &mut gw)
                .unwrap()
        })
    });

    let fx = xs[0].map(|v| Angle::from_radians(v as f64));
    let w64: Vec<LayerWeights<f64>> = w.iter().map(|l| l.map(|r| r.map(f64::from))).collect();
    let fu = FixedUnitary::quantize(&Unitary::compile(&ansatz, &w64).unwrap());
    c.bench_function("forward 1 sample fixed point, compiled unitary", |b| {
        b.iter(|| fu.expvals(black_box(&fx)))
    });
    let fw: Vec<fixed::FixedLayerWeights> =
        w64.iter().map(|l| l.map(|r| r.map(Angle::from_radians))).collect();
    c.bench_function("forward 1 sample fixed point, gate by gate", |b| {
        b.iter(|| fixed::simulate(&ansatz, black_box(&fx), &fw).unwrap().expvals())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
