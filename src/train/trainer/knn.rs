//! kNN mode's own fit path: nothing is trained. The trunk (`--weights`) embeds the training images;
//! those embeddings and the images' labels are the index (`knn.safetensors`) that scores an image
//! by the similarity-weighted votes of its `k` nearest training images. The trainer's stages,
//! epochs and optimiser are never touched: a kNN run has none.
use ndarray::Array2;
use tch::Tensor;

use super::Trainer;
use crate::data::augment::Pipeline;
use crate::data::dataset::multi_hot;
use crate::events::Event;
use crate::infer::batch::store_rows;
use crate::infer::knn::{embeddings, KnnIndex, INDEX};
use crate::train::error::TrainError;
use crate::train::run_dir::{self, RunError};

impl Trainer<'_> {
    /// Embed the training images, write the index (`knn.safetensors`) and the trunk's weights
    /// (`model.safetensors`), and return the validation images' scores (`k` neighbours vote).
    pub(super) fn fit_knn(&mut self, k: usize) -> Result<Array2<f32>, TrainError> {
        let pipe = Pipeline { size: self.cfg.image_size, augment: None };
        let concepts = self.model_cfg.concepts();
        let labels = Tensor::from_slice(&multi_hot(&concepts, &self.data.train.labels)).view([-1, concepts.len() as i64]).to_device(self.device);
        let index = KnnIndex { embeddings: embeddings(&self.model, &pipe, &self.data.train_source, self.cfg.batch_size, self.device)?, labels, k };
        let path = self.run.file(INDEX);
        run_dir::write_atomic(&path, |tmp| index.save(tmp).map_err(|e| std::io::Error::other(run_dir::short_tch_error(&e)))).map_err(|source| RunError::Write { path, source })?;
        self.run.save_model(&self.vs)?;
        let scores = index.scores(&embeddings(&self.model, &pipe, &self.data.val_source, self.cfg.batch_size, self.device)?);
        let mut out = Array2::<f32>::zeros((self.data.val.len(), concepts.len()));
        store_rows(&mut out, &(0..self.data.val.len()).collect::<Vec<_>>(), &scores)?;
        self.events.emit(Event::KnnIndex { images: self.data.train.len(), concepts: concepts.len(), k });
        Ok(out)
    }
}
