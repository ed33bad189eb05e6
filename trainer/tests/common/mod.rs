//! What the trainer's integration tests share: the data set, its split, gradients as numbers.
#![allow(dead_code)] // each test file uses its own part

use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use trainer::data::{Listing, Split};
use trainer::model::Model;

/// The data set: `TRAINER_DATA`, else `../shared/data/medical-mnist` beside the workspace.
/// Without it the tests fail, naming where they looked (a silent pass would assert nothing).
pub fn data_dir() -> PathBuf {
    let dir = std::env::var_os("TRAINER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/medical-mnist"));
    assert!(dir.is_dir(), "data set not found at {} (set TRAINER_DATA)", dir.display());
    dir
}

/// The data set's listing and `split-seed0.json` beside it (a seeded split without it),
/// limited to `per_class` training and a quarter as many test images per class.
pub fn split(per_class: usize) -> (Listing, Split) {
    let root = data_dir();
    let listing = Listing::scan(&root).expect("data set lists");
    let split_file = root.parent().map(|p| p.join("split-seed0.json")).filter(|p| p.exists());
    let split = match split_file {
        Some(path) => Split::from_file(&path, &listing).expect("split file"),
        None => Split::stratified(&listing, 0.2, 0),
    }
    .limit_per_class(&listing, per_class, 0);
    (listing, split)
}

/// Every float parameter's gradient, flattened, in the module's visiting order.
pub fn gradient_values(model: &Model, grads: &GradientsParams) -> Vec<Vec<f32>> {
    let mut visitor = GradientValues { grads, values: Vec::new() };
    model.visit(&mut visitor);
    visitor.values
}

struct GradientValues<'a> {
    grads: &'a GradientsParams,
    values: Vec<Vec<f32>>,
}

impl ModuleVisitor for GradientValues<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let grad = self.grads.get::<D>(param.id).expect("every parameter has a gradient");
        self.values.push(grad.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 gradient"));
    }
}
