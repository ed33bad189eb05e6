use crate::common::{engine, models, sample, test_files};
use edge_runtime::{preprocess, Engine, EngineKind, Image, Options, Prediction};
use shared::model::CLASSES;

fn card() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(models().join("model-card.json")).expect("card")).expect("json")
}

#[test]
fn batching_and_threads_do_not_change_answers() {
    // 240 images: enough for three workers of `IMAGES_PER_THREAD`.
    let images: Vec<Image> = sample(40).into_iter().map(|(_, _, i)| i).collect();
    for kind in [EngineKind::Float, EngineKind::Fixed] {
        let reference = engine(kind).classify(&images).expect("classify");
        for (threads, batch) in [(1, 1), (1, 7), (2, 64), (3, 5)] {
            let other = Engine::load(models(), &Options { kind, threads, batch }).expect("load");
            let got = other.classify(&images).expect("classify");
            for (a, b) in reference.iter().zip(&got) {
                assert_eq!(a.class, b.class);
                let worst = a
                    .probabilities
                    .iter()
                    .zip(&b.probabilities)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max);
                assert!(worst < 1e-6, "{kind:?} threads {threads} batch {batch}: {worst}");
            }
        }
    }
    assert!(engine(EngineKind::Float).classify(&[]).expect("empty batch").is_empty());
}

#[test]
fn probabilities_are_distributions_and_engines_agree() {
    let images = sample(50);
    let pixels: Vec<Image> = images.iter().map(|(_, _, i)| i.clone()).collect();
    let float = engine(EngineKind::Float).classify(&pixels).expect("float");
    let fixed = engine(EngineKind::Fixed).classify(&pixels).expect("fixed");
    for (f, q) in float.iter().zip(&fixed) {
        for p in [f, q] {
            let sum: f32 = p.probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5 && p.probabilities.iter().all(|&x| (0.0..=1.0).contains(&x)));
        }
        assert_eq!(f.class, q.class);
    }
    let correct = images.iter().zip(&float).filter(|((_, c, _), p)| *c == p.class).count();
    assert!(correct >= images.len() - 1, "{correct} of {}", images.len());
}

/// Correct count and confusion matrix of `engine` over the whole test split.
fn evaluate(
    engine: &Engine,
    files: &[(std::path::PathBuf, usize)],
    images: &[Image],
) -> (Vec<Prediction>, [[u64; CLASSES]; CLASSES]) {
    let predictions = engine.classify(images).expect("classify");
    let mut confusion = [[0; CLASSES]; CLASSES];
    for ((_, truth), p) in files.iter().zip(&predictions) {
        confusion[*truth][p.class] += 1;
    }
    (predictions, confusion)
}

/// The runtime reproduces the model card on all 11,791 test images: the float engine its
/// accuracy and confusion matrix, the fixed engine its integer accuracy and its agreement
/// with f32. (About 3 s in release on 2 cores.)
#[test]
fn the_test_split_reproduces_the_model_card() {
    let files = test_files();
    let images: Vec<Image> =
        files.iter().map(|(p, _)| preprocess::load(p).unwrap_or_else(|e| panic!("{e}"))).collect();
    let card = card();
    let n = files.len() as f64;
    assert_eq!(files.len() as u64, card["metrics"]["test"]["images"].as_u64().expect("images"));

    let (float, confusion) = evaluate(engine(EngineKind::Float), &files, &images);
    let expected: Vec<Vec<u64>> =
        serde_json::from_value(card["metrics"]["test"]["confusion"].clone()).expect("confusion");
    assert_eq!(confusion.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), expected);
    let correct: u64 = (0..CLASSES).map(|i| confusion[i][i]).sum();
    assert_eq!(correct as f64 / n, card["metrics"]["test"]["accuracy"].as_f64().expect("accuracy"));

    let (fixed, confusion) = evaluate(engine(EngineKind::Fixed), &files, &images);
    let correct: u64 = (0..CLASSES).map(|i| confusion[i][i]).sum();
    assert_eq!(correct as f64 / n, card["fixed_point"]["accuracy"].as_f64().expect("fixed accuracy"));
    let same = float.iter().zip(&fixed).filter(|(a, b)| a.class == b.class).count();
    assert_eq!(same as f64 / n, card["fixed_point"]["agreement_with_f32"].as_f64().expect("agreement"));
}
