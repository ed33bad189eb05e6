//! The fast integer kernels against their definition: the committed model (`models/*.qmed`,
//! what the firmware embeds) gives the same angles and answers whether its convolutions run
//! on re-laid `i32` weights ([`FixedClassifier::new`] on a host, [`FixedClassifier::with_grouped_weights`]
//! on the firmware), on the artifact's `i8` weights ([`IntCnn::run`]), or through a direct
//! `i64` definition of every layer written here.

use shared::model::{FixedClassifier, IntCnn, Layer, QuantumHead, IMAGE_LEN};
use shared::nn::{Conv2dOptions, Requant};
use shared::quantum::fixed::Angle;
use std::path::Path;

fn read(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A convolution + ReLU straight from the definition (explicit padding, `i64` sums).
fn conv(o: &Conv2dOptions, input: &[u8], weights: &[u8], bias: &[i32], rq: &[Requant]) -> Vec<u8> {
    let (h, w, k, s, p) =
        (o.in_height as i64, o.in_width as i64, o.kernel as i64, o.stride as i64, o.padding as i64);
    let c = o.in_channels as i64;
    let mut out = Vec::new();
    for oc in 0..o.out_channels as i64 {
        for oy in 0..o.out_height() as i64 {
            for ox in 0..o.out_width() as i64 {
                let mut acc = i64::from(bias[oc as usize]);
                for ic in 0..c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (y, x) = (oy * s + ky - p, ox * s + kx - p);
                            if (0..h).contains(&y) && (0..w).contains(&x) {
                                let px = i64::from(input[(ic * h * w + y * w + x) as usize]);
                                let wt = weights[(((oc * c + ic) * k + ky) * k + kx) as usize] as i8;
                                acc += px * i64::from(wt);
                            }
                        }
                    }
                }
                out.push(requant_relu(rq[oc as usize], acc));
            }
        }
    }
    out
}

/// `round(acc * m / 2^(31 + shift))`, half up, clamped to a `u8`, in 128-bit arithmetic.
fn requant_relu(r: Requant, acc: i64) -> u8 {
    requant(r, acc).clamp(0, 255) as u8
}

fn requant(r: Requant, acc: i64) -> i64 {
    let total = 31 + i32::from(r.shift);
    let prod = i128::from(acc) * i128::from(r.multiplier);
    ((prod + (1i128 << (total - 1))) >> total) as i64
}

/// The whole CNN from the definitions: image to angles.
fn oracle(cnn: &IntCnn<'_>, image: &[u8]) -> [Angle; 4] {
    let mut x = image.to_vec();
    let mut angles = [Angle(0); 4];
    for layer in &cnn.layers {
        x = match layer {
            Layer::Conv2dRelu(o, q) => conv(o, &x, q.weights, &q.bias, &q.requant),
            Layer::MaxPool(o) => {
                let (h, w, k, s) =
                    (o.in_height as usize, o.in_width as usize, o.kernel as usize, o.stride as usize);
                let mut out = Vec::new();
                for c in 0..o.channels as usize {
                    for oy in 0..o.out_height() {
                        for ox in 0..o.out_width() {
                            let mut m = 0;
                            for ky in 0..k {
                                for kx in 0..k {
                                    m = m.max(x[c * h * w + (oy * s + ky) * w + ox * s + kx]);
                                }
                            }
                            out.push(m);
                        }
                    }
                }
                out
            }
            Layer::DenseRelu(o, q) | Layer::Angles(o, q) => {
                let n = o.inputs as usize;
                let acc: Vec<i64> = (0..o.outputs as usize)
                    .map(|j| {
                        let row = &q.weights[j * n..][..n];
                        let dot: i64 =
                            x.iter().zip(row).map(|(&a, &b)| i64::from(a) * i64::from(b as i8)).sum();
                        i64::from(q.bias[j]) + dot
                    })
                    .collect();
                if matches!(layer, Layer::Angles(..)) {
                    for (a, (&v, &r)) in angles.iter_mut().zip(acc.iter().zip(&q.requant)) {
                        *a = Angle(requant(r, v) as u32);
                    }
                    Vec::new()
                } else {
                    acc.iter().zip(&q.requant).map(|(&v, &r)| requant_relu(r, v)).collect()
                }
            }
        };
    }
    angles
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Random, smooth, saturated and empty images: every ReLU clamp and both requantisation paths.
fn images() -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = (0..24).map(|i| noise(i, IMAGE_LEN)).collect();
    for i in 0..8u32 {
        all.push(
            (0..IMAGE_LEN as u32)
                .map(|p| {
                    let (y, x) = (p / 64, p % 64);
                    ((x * (i + 1) + y * y / (i + 1)) % 256) as u8
                })
                .collect(),
        );
    }
    all.push(vec![0; IMAGE_LEN]);
    all.push(vec![255; IMAGE_LEN]);
    all
}

#[test]
fn the_committed_model_is_bit_identical_on_every_kernel_path() {
    let cnn_bytes = read(shared::model::INT_CNN_FILE);
    let cnn = IntCnn::decode_from_bytes(&cnn_bytes).expect("committed int8 CNN");
    let head =
        QuantumHead::decode_from_bytes(&read(shared::model::QUANTUM_HEAD_FILE)).expect("committed head");
    let host = FixedClassifier::new(cnn.clone(), head.clone());
    let mut buffer = vec![0i32; cnn.grouped_len()];
    let device =
        FixedClassifier::with_grouped_weights(cnn.clone(), head, &mut buffer).expect("grouped weights");
    let mut scratch = vec![0u8; host.scratch_len()];
    let mut grouped = vec![0i32; cnn.grouped_len()];
    cnn.group_weights(&mut grouped).unwrap();
    for (n, image) in images().iter().enumerate() {
        let want = oracle(&cnn, image);
        assert_eq!(cnn.run(image, &mut scratch).unwrap(), want, "image {n}: i8 weights");
        assert_eq!(cnn.run_grouped(image, &mut scratch, &grouped).unwrap(), want, "image {n}: grouped");
        let (a, b) =
            (host.classify(image, &mut scratch).unwrap(), device.classify(image, &mut scratch).unwrap());
        assert_eq!(a.angles, want, "image {n}: FixedClassifier::new");
        assert_eq!(a, b, "image {n}: FixedClassifier::with_grouped_weights");
    }
}

#[test]
fn short_grouped_buffers_are_errors() {
    let cnn_bytes = read(shared::model::INT_CNN_FILE);
    let cnn = IntCnn::decode_from_bytes(&cnn_bytes).unwrap();
    let mut short = vec![0i32; cnn.grouped_len() - 1];
    assert!(cnn.group_weights(&mut short).is_err());
    let mut scratch = vec![0u8; cnn.scratch_len()];
    assert!(cnn.run_grouped(&[0; IMAGE_LEN], &mut scratch, &short).is_err());
}

#[test]
fn requantisation_matches_its_definition() {
    // Both paths of `apply_relu_u8` (total shift above and below 33) at the edges.
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let edges = [i32::MIN, -1, 0, 1, 2, 255, 65_535, 65_536, 1 << 24, i32::MAX];
    for _ in 0..20_000 {
        let shift = (next() % 62) as i8 - 30;
        let multiplier = match next() % 4 {
            0 => 0,
            1 => 1 << 30,
            2 => i32::MAX,
            _ => (1 << 30) + (next() % (1 << 30)) as i32,
        };
        let r = Requant { multiplier, shift };
        assert!(r.is_valid());
        let acc = if next() % 3 == 0 {
            edges[(next() % edges.len() as u64) as usize]
        } else {
            next() as i32 >> (next() % 31)
        };
        assert_eq!(r.apply_relu_u8(acc), requant_relu(r, i64::from(acc)), "{r:?} acc {acc}");
        assert_eq!(r.apply_wide(acc), requant(r, i64::from(acc)), "{r:?} acc {acc}");
    }
}
