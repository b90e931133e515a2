//! Batch inference: a model run over a set of images in batches (eval mode, no augmentation), and
//! the batches' probabilities gathered on the host. Used by training's validation, `predict` and
//! the kNN index.
use ndarray::Array2;
use tch::{Device, Kind, Tensor};

use crate::data::augment::Pipeline;
use crate::data::decode::PipelineError;
use crate::data::loader::{ImageSource, Loader, TensorLoader};
use crate::model::Model;

/// The images of `source` at `order` (no augmentation), in that order, in batches of `batch` on
/// `device`: each batch's dataset indices and images `[B, 3, S, S]` go to `on_batch`.
pub fn for_each_input<E: From<PipelineError>>(pipe: &Pipeline, source: &ImageSource, order: Vec<usize>, batch: usize, device: Device, mut on_batch: impl FnMut(&[usize], &Tensor) -> Result<(), E>) -> Result<(), E> {
    let loader = Loader::start(*pipe, source.clone(), order, batch, 0, 0, 2);
    for b in TensorLoader::start(loader, pipe.size, device, 2) {
        let (indices, x) = b?;
        let x = x.to_device_(device, Kind::Float, true, false);
        on_batch(&indices, &x)?;
    }
    Ok(())
}

/// Run `model` (eval mode, no augmentation) over every image of `source` in batches of `batch`,
/// handing each batch's dataset indices and per-head logits to `on_batch`.
pub fn for_each_batch<E: From<PipelineError>>(
    model: &Model,
    pipe: &Pipeline,
    source: &ImageSource,
    batch: usize,
    device: Device,
    mut on_batch: impl FnMut(&[usize], Vec<Tensor>) -> Result<(), E>,
) -> Result<(), E> {
    for_each_input(pipe, source, (0..source.len()).collect(), batch, device, |indices, x| on_batch(indices, tch::no_grad(|| model.forward_t(x, false, false))))
}

/// Copy a batch's probabilities `[B, K]` into the rows `indices` of `out`.
pub fn store_rows(out: &mut Array2<f32>, indices: &[usize], probs: &Tensor) -> Result<(), tch::TchError> {
    let probs = rows(probs)?;
    for (r, &i) in indices.iter().enumerate() {
        out.row_mut(i).assign(&probs.row(r));
    }
    Ok(())
}

/// A `[B, K]` tensor (any device and float kind) as an f32 matrix on the host.
pub fn rows(t: &Tensor) -> Result<Array2<f32>, tch::TchError> {
    let (b, k) = t.size2()?;
    let v: Vec<f32> = Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))?;
    Ok(Array2::from_shape_vec((b as usize, k as usize), v).expect("a [B, K] tensor has B * K values"))
}
