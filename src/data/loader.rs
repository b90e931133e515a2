//! Batches: images loaded in parallel (rayon) on a background thread, at most `prefetch` ahead,
//! from their files or from an image cache, and staged as host tensors for the device.
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::{image_rng, Pipeline};
use super::cache::{CacheError, ImageCache};
use super::decode::PipelineError;

/// A batch of images ready for the model.
#[derive(Debug)]
pub struct Batch {
    /// Dataset indices of the images, in batch order.
    pub indices: Vec<usize>,
    /// `[B, 3, S, S]` row-major.
    pub images: Vec<f32>,
}

/// Where a loader's images come from: their files, or an [`ImageCache`] of them already decoded
/// and resized (same output, bit for bit; only augmentation and normalisation are left to do).
#[derive(Debug, Clone)]
pub struct ImageSource {
    pub paths: Arc<Vec<PathBuf>>,
    /// The cache and each path's entry in it.
    cache: Option<(Arc<ImageCache>, Arc<Vec<usize>>)>,
}

impl From<Arc<Vec<PathBuf>>> for ImageSource {
    fn from(paths: Arc<Vec<PathBuf>>) -> ImageSource {
        ImageSource { paths, cache: None }
    }
}

impl ImageSource {
    /// Read `paths` from `cache`, which must hold every one of them, unchanged, at `size`.
    pub fn cached(paths: Arc<Vec<PathBuf>>, cache: Arc<ImageCache>, size: u32) -> Result<ImageSource, CacheError> {
        let entries = cache.resolve(&paths, size)?;
        Ok(ImageSource { paths, cache: Some((cache, Arc::new(entries))) })
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Image `i` through `pipe` into `out`.
    fn load_into(&self, pipe: &Pipeline, i: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) -> Result<(), PipelineError> {
        match &self.cache {
            None => pipe.load_into(&self.paths[i], rng, out),
            Some((cache, entries)) => {
                let planes = cache.planes(entries[i]).map_err(|e| PipelineError::Decode { path: self.paths[i].clone(), reason: e.to_string() })?;
                pipe.finish_planes(&planes, rng, out);
                Ok(())
            }
        }
    }
}

/// Load the images at `indices` in parallel into one batch buffer.
pub(crate) fn load_batch(pipe: &Pipeline, source: &ImageSource, indices: &[usize], seed: u64, epoch: u64) -> Result<Batch, PipelineError> {
    let len = pipe.image_len();
    let mut images = vec![0f32; indices.len() * len];
    images.par_chunks_mut(len).zip(indices.par_iter()).try_for_each(|(out, &i)| {
        let mut rng = image_rng(seed, epoch, i as u64);
        source.load_into(pipe, i, &mut rng, out)
    })?;
    Ok(Batch { indices: indices.to_vec(), images })
}

/// Batches of one epoch produced on a background thread, at most `prefetch` ahead.
pub struct Loader {
    inner: Prefetch<Batch>,
    pub n_batches: usize,
}

/// The items of an iterator, produced on a background thread at most `prefetch` ahead; stops after
/// the first error, which is still delivered.
struct Prefetch<T> {
    rx: Receiver<Result<T, PipelineError>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Prefetch<T> {
    fn spawn(iter: impl Iterator<Item = Result<T, PipelineError>> + Send + 'static, prefetch: usize) -> Prefetch<T> {
        let (tx, rx) = sync_channel(prefetch.max(1));
        let handle = std::thread::spawn(move || {
            for item in iter {
                let stop = item.is_err();
                if tx.send(item).is_err() || stop {
                    return;
                }
            }
        });
        Prefetch { rx, handle: Some(handle) }
    }

    fn next_item(&mut self) -> Option<Result<T, PipelineError>> {
        match self.rx.recv() {
            Ok(item) => Some(item),
            Err(_) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                None
            }
        }
    }
}

impl Loader {
    /// Start loading `order` in chunks of `batch_size`.
    pub fn start(pipe: Pipeline, source: impl Into<ImageSource>, order: Vec<usize>, batch_size: usize, seed: u64, epoch: u64, prefetch: usize) -> Loader {
        let source: ImageSource = source.into();
        let bs = batch_size.max(1);
        let n_batches = order.len().div_ceil(bs);
        let batches = (0..n_batches).map(move |k| load_batch(&pipe, &source, &order[k * bs..((k + 1) * bs).min(order.len())], seed, epoch));
        Loader { inner: Prefetch::spawn(batches, prefetch), n_batches }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, PipelineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next_item()
    }
}

/// Batches as `[B, 3, S, S]` f32 host tensors, made on a staging thread from a [`Loader`]:
/// pinned (page-locked) when `device` is CUDA, so the training thread only issues a
/// non-blocking copy, `x.to_device_(device, Kind::Float, true, false)`, which is what
/// `DataLoader(pin_memory=True)` + `.to(device, non_blocking=True)` do in PyTorch.
///
/// On an H200 (ResNet50, 224 px, batch 128, fp32) building the tensor and copying it from
/// pageable memory on the training thread took ~40 ms of a ~115 ms step; with this, ~2 ms
/// (BENCHMARKS.md). On CPU devices the tensors are plain (no pinning) and nothing is gained.
pub struct TensorLoader {
    inner: Prefetch<(Vec<usize>, tch::Tensor)>,
    pub n_batches: usize,
}

impl TensorLoader {
    /// Stage `loader`'s batches of `size x size` images for `device`, at most `prefetch` ahead.
    pub fn start(loader: Loader, size: u32, device: tch::Device, prefetch: usize) -> TensorLoader {
        let n_batches = loader.n_batches;
        let s = size as i64;
        let tensors = loader.map(move |b| {
            b.map(|b| {
                let t = tch::Tensor::from_slice(&b.images).view([b.indices.len() as i64, 3, s, s]);
                let t = if device.is_cuda() { t.pin_memory(device) } else { t };
                (b.indices, t)
            })
        });
        TensorLoader { inner: Prefetch::spawn(tensors, prefetch), n_batches }
    }
}

impl Iterator for TensorLoader {
    type Item = Result<(Vec<usize>, tch::Tensor), PipelineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next_item()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::AugmentConfig;
    use crate::data::decode::test_images::write_test_images;

    #[test]
    fn load_batch_is_deterministic_across_runs_and_thread_counts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_test_images(dir.path());
        let source = ImageSource::from(Arc::new(paths.clone()));
        let pipe = Pipeline { size: 16, augment: Some(AugmentConfig::default()) };
        let idx: Vec<usize> = vec![6, 0, 3, 1, 5, 2, 4];
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| load_batch(&pipe, &source, &idx, 7, 2).unwrap())
        };
        let a = run(1);
        let b = run(1);
        let c = run(3);
        assert_eq!(a.indices, idx);
        assert_eq!(a.images.len(), idx.len() * pipe.image_len());
        assert!(a.images.iter().all(|v| v.is_finite()));
        assert_eq!(a.images, b.images, "same seed, same thread count");
        assert_eq!(a.images, c.images, "same seed, other thread count");
        // another epoch draws other augmentations
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let d = pool.install(|| load_batch(&pipe, &source, &idx, 7, 3).unwrap());
        assert_ne!(a.images, d.images);
        // an image's slot holds exactly what load_into makes of it
        let len = pipe.image_len();
        let mut one = vec![0f32; len];
        pipe.load_into(&paths[3], &mut image_rng(7, 2, 3), &mut one).unwrap();
        assert_eq!(&a.images[2 * len..3 * len], &one[..]);
    }

    #[test]
    fn loader_yields_the_same_batches_as_load_batch() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Arc::new(write_test_images(dir.path()));
        let pipe = Pipeline { size: 12, augment: Some(AugmentConfig::default()) };
        let order: Vec<usize> = vec![3, 1, 4, 0, 6, 5, 2];
        let got: Vec<Batch> = Loader::start(pipe, paths.clone(), order.clone(), 3, 11, 1, 2).map(|b| b.unwrap()).collect();
        assert_eq!(got.len(), 3);
        for (b, chunk) in got.iter().zip(order.chunks(3)) {
            let want = load_batch(&pipe, &paths.clone().into(), chunk, 11, 1).unwrap();
            assert_eq!(b.indices, chunk);
            assert_eq!(b.images, want.images);
        }
    }

    #[test]
    fn tensor_loader_yields_the_loader_batches_as_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Arc::new(write_test_images(dir.path()));
        let pipe = Pipeline { size: 8, augment: Some(AugmentConfig::default()) };
        let order: Vec<usize> = vec![2, 0, 5, 1, 6];
        let loader = Loader::start(pipe, paths.clone(), order.clone(), 2, 4, 0, 1);
        let got: Vec<(Vec<usize>, tch::Tensor)> = TensorLoader::start(loader, 8, tch::Device::Cpu, 1).map(|b| b.unwrap()).collect();
        assert_eq!(got.len(), 3);
        for ((idx, t), chunk) in got.iter().zip(order.chunks(2)) {
            assert_eq!(idx, chunk);
            assert_eq!(t.size(), vec![chunk.len() as i64, 3, 8, 8]);
            let want = load_batch(&pipe, &paths.clone().into(), chunk, 4, 0).unwrap().images;
            assert_eq!(Vec::<f32>::try_from(t.flatten(0, -1)).unwrap(), want);
        }
    }
}
