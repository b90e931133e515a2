//! The retrieval baseline (`--mode knn`): kNN tag propagation from image embeddings, as the top
//! ImageCLEF systems used it. An image's embedding is its trunk's feature map, globally averaged
//! and L2-normalised; its score for a concept is the similarity-weighted vote of its `k` most
//! similar training images (cosine), `sum_i max(s_i, 0) y_i / sum_i max(s_i, 0)`. The index (the
//! training images' embeddings and labels) is `knn.safetensors` in the run directory.
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::data::augment::Pipeline;
use crate::data::decode::PipelineError;
use crate::data::loader::ImageSource;
use crate::model::Model;
use super::batch::for_each_input;

/// The file of a kNN run's index.
pub(crate) const INDEX: &str = crate::run::names::KNN_INDEX;

/// Training images' embeddings `[N, C]` (unit length) and labels `[N, K]` (0/1).
pub struct KnnIndex {
    pub embeddings: Tensor,
    pub labels: Tensor,
    pub k: usize,
}

impl KnnIndex {
    /// Scores `[B, K]` of query embeddings `[B, C]` (unit length).
    pub fn scores(&self, query: &Tensor) -> Tensor {
        let sims = query.matmul(&self.embeddings.tr());
        let k = self.k.min(self.embeddings.size()[0] as usize).max(1) as i64;
        let (top, idx) = sims.topk(k, 1, true, true);
        let w = top.clamp_min(0.0);
        // [B, k, K]: each neighbour's labels, weighted by its similarity
        let votes = self.labels.index_select(0, &idx.flatten(0, -1)).view([idx.size()[0], k, -1]);
        let num = (votes * w.unsqueeze(-1)).sum_dim_intlist([1].as_slice(), false, Kind::Float);
        num / w.sum_dim_intlist([1].as_slice(), true, Kind::Float).clamp_min(1e-12)
    }

    pub fn save(&self, path: &Path) -> Result<(), tch::TchError> {
        let k = Tensor::from(self.k as i64);
        Tensor::write_safetensors(&[("embeddings", &self.embeddings.to_device(Device::Cpu)), ("labels", &self.labels.to_device(Device::Cpu)), ("k", &k)], path)
    }

    pub fn load(path: &Path, device: Device) -> Result<KnnIndex, tch::TchError> {
        let map: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let get = |n: &str| map.get(n).map(|t| t.to_device(device)).ok_or_else(|| tch::TchError::FileFormat(format!("{} lacks '{n}'", path.display())));
        Ok(KnnIndex { embeddings: get("embeddings")?, labels: get("labels")?, k: get("k")?.int64_value(&[]) as usize })
    }
}

/// An embedding per image: the trunk's features, averaged over space and L2-normalised, `[B, C]`.
pub(crate) fn embed(model: &Model, x: &Tensor) -> Tensor {
    embedding_of(&tch::no_grad(|| model.features(x, false)))
}

/// The embedding of trunk features `[B, C, h, w]`: averaged over space, L2-normalised, `[B, C]`.
pub(crate) fn embedding_of(features: &Tensor) -> Tensor {
    let f = features.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
    let norm = f.norm_scalaropt_dim(2, [1].as_slice(), true).clamp_min(1e-12);
    f / norm
}

/// Embeddings `[N, C]` of every image of `source` (no augmentation), in order.
pub(crate) fn embeddings(model: &Model, pipe: &Pipeline, source: &ImageSource, batch: usize, device: Device) -> Result<Tensor, PipelineError> {
    let mut parts: Vec<Tensor> = Vec::new();
    for_each_input(pipe, source, (0..source.len()).collect(), batch, device, |_, x| {
        parts.push(embed(model, x));
        Ok::<(), PipelineError>(())
    })?;
    Ok(Tensor::cat(&parts, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_are_similarity_weighted_over_the_k_nearest() {
        // three training images on the unit circle with labels [1,0], [1,1], [0,1]
        let e = Tensor::from_slice(&[1f32, 0.0, 0.6, 0.8, 0.0, 1.0]).view([3, 2]);
        let y = Tensor::from_slice(&[1f32, 0.0, 1.0, 1.0, 0.0, 1.0]).view([3, 2]);
        let index = KnnIndex { embeddings: e, labels: y, k: 2 };
        // query (1, 0): similarities 1, 0.6, 0 -> nearest two: 1 and 0.6
        // concept 0: (1*1 + 0.6*1) / 1.6 = 1; concept 1: (0 + 0.6) / 1.6 = 0.375
        let s: Vec<f32> = Vec::try_from(index.scores(&Tensor::from_slice(&[1f32, 0.0]).view([1, 2])).flatten(0, -1)).unwrap();
        assert!((s[0] - 1.0).abs() < 1e-6 && (s[1] - 0.375).abs() < 1e-6, "{s:?}");
        let tmp = tempfile::tempdir().unwrap();
        index.save(&tmp.path().join(INDEX)).unwrap();
        let back = KnnIndex::load(&tmp.path().join(INDEX), Device::Cpu).unwrap();
        assert_eq!(back.k, 2);
        assert!(back.embeddings.equal(&index.embeddings) && back.labels.equal(&index.labels));
    }
}
