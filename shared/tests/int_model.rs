//! The integer model: quantisation tracks the float network, artifacts round-trip, and no
//! byte sequence makes a parser panic.

use proptest::prelude::*;
use shared::model::{self, FloatCnn, FloatLayer, IntCnn, Kind, QuantumHead, IMAGE_LEN};
use shared::nn::{Conv2dOptions, DenseOptions, MaxPoolOptions};

/// Deterministic values in [-1, 1) (an LCG keeps the test free of an rng dependency).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale
        })
        .collect()
}

/// A network shaped like the model's CNN part: conv/pool twice, a hidden layer, 4 angles.
fn network() -> FloatCnn {
    let c1 = Conv2dOptions {
        in_channels: 1,
        out_channels: 4,
        in_height: 64,
        in_width: 64,
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    let p1 = MaxPoolOptions { channels: 4, in_height: 32, in_width: 32, kernel: 2, stride: 2 };
    let c2 = Conv2dOptions {
        in_channels: 4,
        out_channels: 8,
        in_height: 16,
        in_width: 16,
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    let p2 = MaxPoolOptions { channels: 8, in_height: 16, in_width: 16, kernel: 2, stride: 2 };
    let d1 = DenseOptions { inputs: 8 * 8 * 8, outputs: 16 };
    let d2 = DenseOptions { inputs: 16, outputs: 4 };
    FloatCnn {
        layers: vec![
            FloatLayer::Conv2dRelu {
                options: c1,
                weights: values(c1.weights_len(), 1, 0.5),
                bias: values(4, 2, 0.1),
            },
            FloatLayer::MaxPool(p1),
            FloatLayer::Conv2dRelu {
                options: c2,
                weights: values(c2.weights_len(), 3, 0.3),
                bias: values(8, 4, 0.1),
            },
            FloatLayer::MaxPool(p2),
            FloatLayer::DenseRelu {
                options: d1,
                weights: values(d1.weights_len(), 5, 0.1),
                bias: values(16, 6, 0.1),
            },
            FloatLayer::Angles {
                options: d2,
                weights: values(d2.weights_len(), 7, 0.5),
                bias: values(4, 8, 0.2),
            },
        ],
    }
}

/// Smooth synthetic images (gradients and rings), different per seed.
fn image(seed: u64) -> Vec<u8> {
    let (a, b) = ((seed % 7) as f32 + 1.0, (seed % 5) as f32 + 2.0);
    (0..IMAGE_LEN)
        .map(|i| {
            let (y, x) = ((i / 64) as f32, (i % 64) as f32);
            let r = ((x - 32.0).powi(2) + (y - 32.0).powi(2)).sqrt();
            (127.5 + 127.5 * (r / a).sin() * (x / (b * 8.0)).cos()) as u8
        })
        .collect()
}

#[test]
fn integer_network_tracks_the_float_network() {
    let float = network();
    let calibration: Vec<Vec<u8>> = (0..16).map(image).collect();
    let refs: Vec<&[u8]> = calibration.iter().map(Vec::as_slice).collect();
    let quantized = float.quantize(&refs).unwrap();
    let cnn = quantized.as_int_cnn().unwrap();
    let mut scratch = vec![0u8; cnn.scratch_len()];
    let mut worst = 0.0f64;
    for seed in 100..140 {
        let img = image(seed);
        let want = float.angles(&img).unwrap();
        let got = cnn.run(&img, &mut scratch).unwrap();
        for (w, g) in want.iter().zip(&got) {
            // Angles wrap modulo 4 pi; compare on the circle.
            let d = (g.to_radians() - f64::from(*w)).rem_euclid(4.0 * std::f64::consts::PI);
            worst = worst.max(d.min(4.0 * std::f64::consts::PI - d));
        }
    }
    assert!(worst < 0.05, "largest angle error {worst} rad");
}

#[test]
fn int_cnn_round_trips_and_refuses_damage() {
    let float = network();
    let calibration = [image(1)];
    let quantized = float.quantize(&[&calibration[0]]).unwrap();
    let cnn = quantized.as_int_cnn().unwrap();
    let bytes = cnn.encode_to_vec();
    assert_eq!(IntCnn::decode_from_bytes(&bytes).unwrap(), cnn);
    let mut buf = vec![0u8; bytes.len()];
    assert_eq!(cnn.encode_to_slice(&mut buf).unwrap(), &bytes[..]);
    assert_eq!(
        QuantumHead::decode_from_bytes(&bytes),
        Err(model::Error::WrongKind { expected: Kind::QuantumHead as u16, found: Kind::IntCnn as u16 })
    );
    for len in (0..bytes.len()).step_by(7) {
        assert!(IntCnn::decode_from_bytes(&bytes[..len]).is_err());
    }
    for at in (0..bytes.len()).step_by(3) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(IntCnn::decode_from_bytes(&bad).is_err(), "flip at {at}");
    }
}

#[test]
fn run_reports_bad_buffers() {
    let cnn_owned = network().quantize(&[&image(3)]).unwrap();
    let cnn = cnn_owned.as_int_cnn().unwrap();
    let mut scratch = vec![0u8; cnn.scratch_len()];
    assert!(cnn.run(&[0u8; 100], &mut scratch).is_err());
    assert!(cnn.run(&image(1), &mut scratch[..10]).is_err());
}

#[test]
fn layers_that_do_not_chain_are_refused() {
    let mut float = network();
    float.layers.swap(0, 1);
    assert!(float.quantize(&[&image(0)]).is_err());
    let mut float = network();
    float.layers.pop();
    assert!(float.quantize(&[&image(0)]).is_err(), "a network must end in the angles layer");
}

proptest! {
    #[test]
    fn parsers_never_panic_on_sealed_garbage(payload in proptest::collection::vec(any::<u8>(), 0..600)) {
        // Valid containers around arbitrary payloads reach the payload decoders.
        let head = model::seal_to_vec(Kind::QuantumHead, &payload);
        let _ = QuantumHead::decode_from_bytes(&head);
        let cnn = model::seal_to_vec(Kind::IntCnn, &payload);
        let _ = IntCnn::decode_from_bytes(&cnn);
    }

    #[test]
    fn parsers_never_panic_on_raw_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = QuantumHead::decode_from_bytes(&bytes);
        let _ = IntCnn::decode_from_bytes(&bytes);
    }
}

#[test]
fn fixed_classifier_picks_the_largest_fixed_logit() {
    use shared::model::FixedClassifier;
    use shared::quantum::{Ansatz, LayerWeights};
    let cnn_owned = network().quantize(&[&image(3), &image(4)]).unwrap();
    let weights: Vec<LayerWeights<f32>> =
        (0..4).map(|l| std::array::from_fn(|w| std::array::from_fn(|k| (l + w + k) as f32 * 0.4))).collect();
    let head_weight =
        std::array::from_fn(|j| std::array::from_fn(|i| ((j * 4 + i) as f32 * 0.7).sin() * 3.0));
    let head = QuantumHead::new(&Ansatz::new(4).unwrap(), &weights, head_weight, [0.1; 6]).unwrap();
    let classifier = FixedClassifier::new(cnn_owned.as_int_cnn().unwrap(), head.clone());
    let mut scratch = vec![0u8; classifier.scratch_len()];
    for seed in 0..8 {
        let p = classifier.classify(&image(seed), &mut scratch).unwrap();
        let best = *p.logits.iter().max().unwrap();
        assert_eq!(p.logits[p.class as usize], best);
        assert_eq!(p.expvals, head.fixed_unitary().expvals(&p.angles));
        assert_eq!(p.logits, head.logits_fixed(&p.expvals));
    }
}
