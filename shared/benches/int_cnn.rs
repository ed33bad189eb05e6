//! The committed integer model on the host: `cargo bench -p shared --bench int_cnn`.
//!
//! Loads `models/cnn-int8.qmed` and `models/quantum-head.qmed` (what the firmware embeds) and
//! times the int8 CNN alone and the whole fixed-point classifier on one image.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shared::model::{FixedClassifier, IntCnn, QuantumHead, IMAGE_LEN};
use std::path::Path;

fn read(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bench(c: &mut Criterion) {
    let cnn_bytes = read(shared::model::INT_CNN_FILE);
    let cnn = IntCnn::decode_from_bytes(&cnn_bytes).expect("committed int8 CNN");
    let head = QuantumHead::decode_from_bytes(&read(shared::model::QUANTUM_HEAD_FILE))
        .expect("committed quantum head");
    println!("integer CNN: {} multiply-accumulates per image", cnn.macs());
    let classifier = FixedClassifier::new(cnn.clone(), head);
    let mut scratch = vec![0u8; classifier.scratch_len()];
    // Speed does not depend on the pixel values: a fixed pattern stands in for an image.
    let image: Vec<u8> = (0..IMAGE_LEN).map(|i| ((i * 2654435761) >> 7) as u8).collect();

    c.bench_function("int8 CNN, 1 image (to angles)", |b| {
        b.iter(|| cnn.run(black_box(&image), &mut scratch).unwrap())
    });
    c.bench_function("fixed-point classifier, 1 image (CNN + circuit + head)", |b| {
        b.iter(|| classifier.classify(black_box(&image), &mut scratch).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
