//! Integer CNN and the whole fixed-point classifier on the host:
//! `cargo bench -p shared --bench int_cnn`.
//!
//! The network has the default hybrid's shape (conv 4x4/4 -> 16, conv 3x3 -> 32 + pool,
//! conv 3x3 -> 32 + pool, dense -> 4 angles) with deterministic weights: speed depends on
//! the shape, not on the values.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shared::model::{FixedClassifier, FloatCnn, FloatLayer, QuantumHead, IMAGE_LEN};
use shared::nn::{Conv2dOptions, DenseOptions, MaxPoolOptions};
use shared::quantum::{Ansatz, LayerWeights};

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale
        })
        .collect()
}

fn conv(c_in: u16, c_out: u16, side: u16, kernel: u8, stride: u8, padding: u8, seed: u64) -> FloatLayer {
    let options = Conv2dOptions {
        in_channels: c_in,
        out_channels: c_out,
        in_height: side,
        in_width: side,
        kernel,
        stride,
        padding,
    };
    FloatLayer::Conv2dRelu {
        options,
        weights: values(options.weights_len(), seed, 0.3),
        bias: values(c_out as usize, seed + 1, 0.1),
    }
}

fn network() -> FloatCnn {
    let pool = |channels, side| {
        FloatLayer::MaxPool(MaxPoolOptions {
            channels,
            in_height: side,
            in_width: side,
            kernel: 2,
            stride: 2,
        })
    };
    let fc = DenseOptions { inputs: 32 * 4 * 4, outputs: 4 };
    FloatCnn {
        layers: vec![
            conv(1, 16, 64, 4, 4, 0, 1),
            conv(16, 32, 16, 3, 1, 1, 3),
            pool(32, 16),
            conv(32, 32, 8, 3, 1, 1, 5),
            pool(32, 8),
            FloatLayer::Angles {
                options: fc,
                weights: values(fc.weights_len(), 7, 0.1),
                bias: values(4, 8, 0.1),
            },
        ],
    }
}

fn image(seed: u64) -> Vec<u8> {
    (0..IMAGE_LEN).map(|i| ((i as u64 * 2654435761 + seed) >> 7) as u8).collect()
}

fn bench(c: &mut Criterion) {
    let float = network();
    let calibration = [image(1), image(2)];
    let quantized = float.quantize(&[&calibration[0], &calibration[1]]).unwrap();
    let cnn = quantized.as_int_cnn().unwrap();
    let weights: Vec<LayerWeights<f32>> = (0..4)
        .map(|l| std::array::from_fn(|w| std::array::from_fn(|k| (l + 2 * w + 3 * k) as f32 * 0.3)))
        .collect();
    let head = QuantumHead::new(&Ansatz::new(4).unwrap(), &weights, [[0.5; 4]; 6], [0.0; 6]).unwrap();
    let classifier = FixedClassifier::new(cnn.clone(), head);
    let mut scratch = vec![0u8; classifier.scratch_len()];
    let img = image(9);
    println!("integer CNN: {} multiply-accumulates per image", cnn.macs());

    c.bench_function("int8 CNN, 1 image (to angles)", |b| {
        b.iter(|| cnn.run(black_box(&img), &mut scratch).unwrap())
    });
    c.bench_function("fixed-point classifier, 1 image (CNN + circuit + head)", |b| {
        b.iter(|| classifier.classify(black_box(&img), &mut scratch).unwrap())
    });
    c.bench_function("float reference CNN, 1 image", |b| b.iter(|| float.angles(black_box(&img)).unwrap()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
