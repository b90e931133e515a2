//! `conceptree-bench`: throughput benchmarks behind `make bench` (scripts/bench.sh) and
//! scripts/gpu-check.sh. Each measuring subcommand prints one JSON object per line,
//! `{"name", "unit", "value"}`, the same shape as bench/torch_reference.py, so the two sides can
//! be paired by name; `report` pairs them into `results.json` and a table.
//!
//! Subcommands: `synth` (1024 px phantom JPEGs), `stages` (per-stage decoder/resizer comparison,
//! one thread), `pipeline` (Loader img/s), `train` (ResNet + Adam img/s, loader included),
//! `infer` (img/s and peak RSS), `eval` (ImageCLEF F1 and the full report on random sets),
//! `report`.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use conceptree::data::augment::{image_rng, AugmentConfig, Pipeline, RandomAffine, IMAGENET_MEAN, IMAGENET_STD};
use conceptree::data::cache::ImageCache;
use conceptree::data::decode::{decode, decode_jpeg_scaled, decode_jpeg_zune, decode_raw, resize_planes, resize_planes_reference, RawImage};
use conceptree::data::loader::{ImageSource, Loader};
use conceptree::eval::metrics::{evaluate, imageclef_f1, EvalHooks, LabelMap};
use conceptree::events::Event;
use conceptree::model::{HeadKind, HeadLayers, HeadSpec, MemoryFormat, Model, ModelConfig, TrunkKind};
use conceptree::ontology::Ontology;
use conceptree::train::{DeviceChoice, Mode, TrainConfig, Trainer};
use itertools::Itertools;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

#[derive(Parser)]
#[command(name = "conceptree-bench", about = "conceptree throughput benchmarks (see BENCHMARKS.md)")]
struct Cli {
    /// Worker threads for the image pipeline (rayon) and libtorch; 0 = all cores.
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write `n` synthetic phantom JPEGs of `size` px (skipped when they are already there).
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 96)]
        n: usize,
        #[arg(long, default_value_t = 1024)]
        size: u32,
    },
    /// Per-stage timings on one thread: decoders, resizers, augmentation; old path vs new.
    Stages {
        #[arg(long)]
        images: PathBuf,
        #[arg(long, default_value_t = 224)]
        size: u32,
        #[arg(long, default_value_t = 300)]
        limit: usize,
        /// Prefix of the measurement names.
        #[arg(long, default_value = "stages")]
        name: String,
    },
    /// Decode + resize + augment + normalise through `Loader` (batches of `batch`), img/s.
    Pipeline {
        #[arg(long)]
        images: PathBuf,
        #[arg(long, default_value_t = 224)]
        size: u32,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Go through the (limited) image list this many times (small sets of large images).
        #[arg(long, default_value_t = 1)]
        list_repeat: usize,
        /// Read the images from an image cache in this directory (built first, untimed, when it
        /// does not hold them): decode and resize are skipped, augment + normalise remain.
        #[arg(long)]
        cache: Option<PathBuf>,
        #[arg(long, default_value = "pipeline")]
        name: String,
    },
    /// Training img/s of the trainer itself (`Trainer::train_epoch`: loader, forward, loss, backward,
    /// Adam, as `conceptree train` runs them) on a flat top-25 run over the images, after warm-up steps.
    Train {
        #[arg(long)]
        images: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long)]
        name: Option<String>,
    },
    /// Inference img/s (no_grad, eval mode) on a random batch, and peak RSS.
    Infer {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        name: Option<String>,
    },
    /// Write random GT/prediction files (ImageCLEF 2019 format) and time the evaluation.
    Eval {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        n_images: usize,
        #[arg(long, default_value_t = 5_000)]
        n_concepts: usize,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Pair conceptree's and the reference's JSON lines into results.json and a markdown table.
    Report {
        #[arg(long)]
        conceptree: PathBuf,
        #[arg(long)]
        reference: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

/// The model, batch and precision of the `train` and `infer` measurements.
#[derive(clap::Args, Debug, Clone)]
struct ModelArgs {
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    #[arg(long, value_enum, default_value_t = TrunkKind::Resnet50)]
    trunk: TrunkKind,
    #[arg(long, default_value_t = 224)]
    size: u32,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Mixed precision as the trainer's --amp (CUDA: fp16 autocast + train::optim::GradScaler; CPU: bf16 autocast).
    #[arg(long)]
    amp: bool,
    /// auto (as the trainer: channels-last on CPU and with --amp), channels-last, contiguous.
    #[arg(long, value_enum, default_value_t = MemoryFormat::Auto)]
    memory_format: MemoryFormat,
    /// The layers between the trunk and the outputs, as the trainer's --head-layers: the paper's
    /// (1x1 convolution, dense layers) or linear (pooling into the output layer, as torchvision's
    /// classifiers are).
    #[arg(long, value_enum, default_value_t = HeadLayers::Paper)]
    head_layers: HeadLayers,
    /// A safetensors state dict with torchvision's names for the trunk (as `train --weights`),
    /// e.g. the one `bench/torch_reference.py weights` wrote, so both sides run the same
    /// weights; without it each side initialises its own at random.
    #[arg(long)]
    weights: Option<PathBuf>,
}

impl ModelArgs {
    /// `<what>_<trunk>_<size>_b<batch>[_amp]`, the name both sides use for a measurement.
    fn default_name(&self, what: &str) -> String {
        format!("{what}_{}_{}_b{}{}", self.trunk, self.size, self.batch, if self.amp { "_amp" } else { "" })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measurement {
    name: String,
    unit: String,
    value: f64,
}

fn emit(name: &str, unit: &str, value: f64) {
    println!("{}", serde_json::to_string(&Measurement { name: name.into(), unit: unit.into(), value }).expect("serialisable"));
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // before any libtorch call (src/cuda.rs): the GPU rows need libtorch's CUDA library
    conceptree::cuda::load();
    let threads = if cli.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { cli.threads };
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("rayon pool")?;
    tch::set_num_threads(threads as i32);
    match cli.cmd {
        Cmd::Synth { out, n, size } => synth(&out, n, size),
        Cmd::Stages { images, size, limit, name } => stages(&images, size, limit, &name),
        Cmd::Pipeline { images, size, batch, limit, list_repeat, cache, name } => pipeline(&images, size, batch, limit, list_repeat, cache.as_deref(), &name),
        Cmd::Train { images, model, warmup, name } => {
            let name = name.unwrap_or_else(|| model.default_name("train"));
            train(&images, &model, warmup, &name)
        }
        Cmd::Infer { model, name } => {
            let name = name.unwrap_or_else(|| model.default_name("infer"));
            infer(&model, &name)
        }
        Cmd::Eval { out, n_images, n_concepts, repeats } => eval(&out, n_images, n_concepts, repeats.max(1)),
        Cmd::Report { conceptree, reference, out } => report(&conceptree, &reference, &out),
    }
}

/// `*.jpg` and `*.png` under `dir`, sorted like the reference's `sorted(glob(jpg) + glob(png))`.
fn list_images(dir: &Path, limit: usize) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("jpg" | "png")))
        .collect();
    v.sort();
    if limit > 0 {
        v.truncate(limit);
    }
    if v.is_empty() {
        bail!("no .jpg/.png images in {}", dir.display());
    }
    Ok(v)
}

fn synth(out: &Path, n: usize, size: u32) -> Result<()> {
    let dir = out.join("images");
    if dir.is_dir() && list_images(&dir, 0).map(|v| v.len() >= n).unwrap_or(false) {
        eprintln!("synth: {} already holds {n} images", dir.display());
        return Ok(());
    }
    let t = Instant::now();
    let cfg = conceptree::synth::SynthConfig { n, size, seed: 42, jpeg_quality: 90, annotations: false };
    conceptree::synth::generate(&cfg, out).context("synth")?;
    eprintln!("synth: wrote {n} {size}x{size} JPEGs to {} in {:.1}s", dir.display(), t.elapsed().as_secs_f64());
    Ok(())
}

/// Median of `reps` timings of `f` over all items, in ms per item.
fn time_per_item<T>(items: &[T], reps: usize, mut f: impl FnMut(&T)) -> f64 {
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            items.iter().for_each(&mut f);
            t.elapsed().as_secs_f64() * 1e3 / items.len() as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The pipeline as it was before the fast path: image crate decode, image's Triangle resize,
/// per-plane warp, `(v / 255 - mean) / std`.
fn old_path(pipe: &Pipeline, path: &Path, rng: &mut ChaCha8Rng, out: &mut [f32]) {
    let raw = RawImage::from_dynamic(&decode(path).expect("decodes"));
    let s = pipe.size as usize;
    let planes = resize_planes_reference(&raw, pipe.size);
    let t = pipe.augment.map(|a| RandomAffine::sample(&a, rng)).unwrap_or(RandomAffine::IDENTITY);
    let n = s * s;
    let mut tmp = vec![0f32; n];
    for ch in 0..3 {
        t.warp(&planes[if planes.len() == 1 { 0 } else { ch }], s, &mut tmp);
        for (d, &v) in out[ch * n..(ch + 1) * n].iter_mut().zip(&tmp) {
            *d = (v / 255.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];
        }
    }
}

fn stages(images: &Path, size: u32, limit: usize, name: &str) -> Result<()> {
    let paths = list_images(images, limit)?;
    let bytes: Vec<Vec<u8>> = paths.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let jpegs: Vec<&Vec<u8>> = bytes.iter().filter(|b| b.starts_with(&[0xFF, 0xD8, 0xFF])).collect();
    let reps = 3;
    let m = |stage: &str, v: f64| emit(&format!("{name}_{stage}"), "ms/img", v);
    m("decode_image_crate", time_per_item(&bytes, reps, |b| drop(image::load_from_memory(b).expect("decodes"))));
    if !jpegs.is_empty() {
        m("decode_zune_jpeg", time_per_item(&jpegs, reps, |b| drop(decode_jpeg_zune(b).expect("handled").expect("decodes"))));
        m(
            "decode_jpeg_decoder",
            time_per_item(&jpegs, reps, |b| drop(jpeg_decoder::Decoder::new(std::io::Cursor::new(b)).decode().expect("decodes"))),
        );
        let scaled_hits = jpegs.iter().filter(|b| decode_jpeg_scaled(b, size).is_some()).count();
        if scaled_hits > 0 {
            m("decode_jpeg_decoder_dct_scaled", time_per_item(&jpegs, reps, |b| drop(decode_jpeg_scaled(b, size))));
            m("decode_jpeg_decoder_dct_scaled_2x", time_per_item(&jpegs, reps, |b| drop(decode_jpeg_scaled(b, 2 * size))));
        } else {
            eprintln!("stages: no image is >= 2x{size} px on both sides; DCT scaling does not apply");
        }
    }
    let raws: Vec<RawImage> = paths.iter().map(|p| decode_raw(p, None)).collect::<Result<_, _>>()?;
    m("resize_image_triangle", time_per_item(&raws, reps, |r| drop(resize_planes_reference(r, size))));
    m("resize_fast_image_resize", time_per_item(&raws, reps, |r| drop(resize_planes(r, size))));
    let small: Vec<RawImage> = raws.iter().take(64).map(|r| planes_to_raw(resize_planes(r, size), size)).collect();
    let pipe = Pipeline { size, augment: Some(AugmentConfig::default()) };
    let mut out = vec![0f32; pipe.image_len()];
    let mut i = 0u64;
    m(
        "augment_normalise",
        time_per_item(&small, reps, |r| {
            i += 1;
            pipe.process_raw_into(r, &mut image_rng(0, 0, i), &mut out)
        }),
    );
    let old = time_per_item(&paths, reps, |p| {
        i += 1;
        old_path(&pipe, p, &mut image_rng(0, 0, i), &mut out)
    });
    let new = time_per_item(&paths, reps, |p| {
        i += 1;
        pipe.load_into(p, &mut image_rng(0, 0, i), &mut out).expect("loads")
    });
    m("total_old_path", old);
    m("total_new_path", new);
    // How far the new path's output is from the old one's, in grey levels (0..255).
    let (mut sum, mut max, mut count) = (0f64, 0f64, 0usize);
    let mut a = vec![0f32; pipe.image_len()];
    let mut b = vec![0f32; pipe.image_len()];
    let n = (size * size) as usize;
    for (k, p) in paths.iter().enumerate().take(100) {
        old_path(&pipe, p, &mut image_rng(5, 0, k as u64), &mut a);
        pipe.load_into(p, &mut image_rng(5, 0, k as u64), &mut b)?;
        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
            let d = ((x - y).abs() * 255.0 * IMAGENET_STD[j / n]) as f64;
            sum += d;
            max = max.max(d);
            count += 1;
        }
    }
    emit(&format!("{name}_new_vs_old_mean_abs_diff"), "grey levels", sum / count as f64);
    emit(&format!("{name}_new_vs_old_max_abs_diff"), "grey levels", max);
    Ok(())
}

fn planes_to_raw(planes: Vec<Vec<u8>>, s: u32) -> RawImage {
    if planes.len() == 1 {
        return RawImage { width: s, height: s, channels: 1, data: planes.into_iter().next().expect("one plane") };
    }
    let data = (0..planes[0].len()).flat_map(|i| [planes[0][i], planes[1][i], planes[2][i]]).collect();
    RawImage { width: s, height: s, channels: 3, data }
}

/// The library's messages on stderr, as the command line words them; no progress display (a
/// benchmark's output is its measurements).
fn messages(event: Event) {
    if !matches!(event, Event::Tick(_)) {
        eprintln!("{event}");
    }
}

fn pipeline(images: &Path, size: u32, batch: usize, limit: usize, list_repeat: usize, cache: Option<&Path>, name: &str) -> Result<()> {
    let once = list_images(images, limit)?;
    let paths = Arc::new(once.iter().cycle().take(once.len() * list_repeat.max(1)).cloned().collect::<Vec<_>>());
    if paths.len() < 2 * batch {
        bail!("need at least {} images for a pipeline measurement, found {}", 2 * batch, paths.len());
    }
    let source = match cache {
        None => ImageSource::from(paths.clone()),
        Some(dir) => {
            let covered = ImageCache::open(dir).ok().is_some_and(|c| c.resolve(&once, size).is_ok());
            if !covered {
                let t = Instant::now();
                ImageCache::build(&once, size, dir, &messages)?;
                eprintln!("built the image cache {} in {:.1} s (not timed below)", dir.display(), t.elapsed().as_secs_f64());
            }
            ImageSource::cached(paths.clone(), Arc::new(ImageCache::open(dir)?), size)?
        }
    };
    let pipe = Pipeline { size, augment: Some(AugmentConfig::default()) };
    let order: Vec<usize> = (0..paths.len()).collect();
    let mut loader = Loader::start(pipe, source, order, batch, 0, 0, 2);
    // The first batch (thread start-up) is excluded, as in the reference.
    loader.next().context("no batch")??;
    let t = Instant::now();
    let mut n = 0usize;
    for b in loader {
        n += b?.indices.len();
    }
    emit(name, "img/s", n as f64 / t.elapsed().as_secs_f64());
    Ok(())
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The trainer's flat model, with its precision and memory format set as the trainer sets them.
fn bench_model(vs: &nn::VarStore, m: &ModelArgs, n_labels: usize) -> Result<Model> {
    let heads = vec![HeadSpec::new("flat", (0..n_labels).map(|i| format!("C{i:07}")).collect(), HeadKind::MultiLabel)];
    let mut cfg = ModelConfig::new(m.trunk, heads);
    cfg.head.layers = m.head_layers;
    let mut model = Model::new(&vs.root(), cfg);
    if let Some(path) = &m.weights {
        let report = conceptree::model::weights::load_trunk_weights(vs, path)?;
        eprintln!("model: {} trunk tensors from {}", report.loaded, path.display());
    }
    let channels_last = m.memory_format.channels_last(vs.device(), m.amp);
    model.set_channels_last(vs, channels_last);
    model.amp = m.amp;
    let precision = conceptree::model::autocast::precision_label(vs.device(), m.amp);
    eprintln!("model: {} trunk, {precision}, {}", model.cfg.trunk, if channels_last { "channels-last" } else { "contiguous" });
    Ok(model)
}

/// Training img/s of `conceptree train`'s own code: a flat top-25 run over the images (image `i`
/// labelled with concept `i mod 25`), trained through `Trainer::train_epoch`, timed from the end
/// of the warm-up steps to the end of the last step (loader waits included).
fn train(images: &Path, m: &ModelArgs, warmup: usize, name: &str) -> Result<()> {
    const N_LABELS: usize = 25;
    let paths = list_images(images, 0)?;
    let work = std::env::temp_dir().join(format!("conceptree-bench-train-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let labels = work.join("labels.csv");
    let rows: String = paths
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}\tC{:07}\n", p.file_stem().and_then(|s| s.to_str()).unwrap_or(""), i % N_LABELS + 1))
        .collect();
    std::fs::write(&labels, rows)?;
    let cfg = TrainConfig {
        train_labels: labels,
        images: images.to_path_buf(),
        out: work.join("run"),
        mode: Mode::Flat,
        top_k: N_LABELS,
        trunk: m.trunk,
        image_size: m.size,
        batch_size: m.batch,
        epochs: 1,
        lr: 1e-4,
        device: m.device,
        amp: m.amp,
        memory_format: m.memory_format,
        head_layers: m.head_layers,
        val_split: 0.05,
        seed: 0,
        ..TrainConfig::default()
    };
    let ontology = Ontology::builtin();
    let result = (|| -> Result<(f64, usize, f64)> {
        let mut trainer = Trainer::new(cfg, &ontology, true, &messages)?;
        let device = m.device.resolve()?;
        let mut stage = trainer.start_stage(0)?;
        let total = warmup + m.steps;
        let (mut done, mut seen, mut t0, mut last_loss) = (0usize, 0usize, None, f64::NAN);
        let mut epoch = 1;
        while done < total {
            trainer.train_epoch(&mut stage, epoch, Some(total - done), &mut |s| {
                done += 1;
                last_loss = s.loss;
                // the step's loss was read back, so the device has finished the step
                if done == warmup {
                    sync(device);
                    t0 = Some(Instant::now());
                } else if done > warmup {
                    seen += s.images;
                }
            })?;
            epoch += 1;
        }
        sync(device);
        Ok((t0.map(|t| t.elapsed().as_secs_f64()).unwrap_or(f64::NAN), seen, last_loss))
    })();
    let _ = std::fs::remove_dir_all(&work);
    let (dt, seen, last_loss) = result?;
    eprintln!("train: {} steps through the trainer, last loss {last_loss:.4}, {dt:.2}s timed", warmup + m.steps);
    emit(name, "img/s", seen as f64 / dt);
    Ok(())
}

/// Peak resident set size of this process (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn infer(m: &ModelArgs, name: &str) -> Result<()> {
    // as `predict` runs its forward passes (and the trainer its steps): freed memory kept for reuse
    conceptree::alloc::keep_freed_memory();
    let (size, batch, steps) = (m.size, m.batch, m.steps);
    let device = m.device.resolve()?;
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = bench_model(&vs, m, 25)?;
    let x = Tensor::randn([batch as i64, 3, size as i64, size as i64], (Kind::Float, device));
    let run = || tch::no_grad(|| model.probabilities(&model.forward_t(&x, false, false)));
    for _ in 0..2 {
        let _ = run();
    }
    sync(device);
    let t = Instant::now();
    for _ in 0..steps {
        let _ = run();
    }
    sync(device);
    emit(name, "img/s", (batch * steps) as f64 / t.elapsed().as_secs_f64());
    emit(&format!("{name}_peak_rss"), "MiB", peak_rss_mib());
    Ok(())
}

fn write_labels(path: &Path, m: &LabelMap) -> Result<()> {
    let mut s = String::new();
    for (id, set) in m {
        s.push_str(id);
        s.push('\t');
        s.push_str(&set.iter().join(";"));
        s.push('\n');
    }
    std::fs::write(path, s).with_context(|| format!("cannot write {}", path.display()))
}

fn eval(out: &Path, n_images: usize, n_concepts: usize, repeats: usize) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Skewed concept frequencies (a few common, a long tail), 1..=8 concepts per image;
    // predictions keep ~70% of the truth and add 0..3 wrong ones; 2% of images get none.
    let concept = |rng: &mut ChaCha8Rng| format!("C{:07}", (n_concepts as f64 * rng.gen::<f64>().powi(3)) as usize);
    let (mut gt, mut pred) = (LabelMap::new(), LabelMap::new());
    for i in 0..n_images {
        let id = format!("IMG_{i:06}");
        let k = rng.gen_range(1..=8);
        let g: BTreeSet<String> = (0..k).map(|_| concept(&mut rng)).collect();
        if rng.gen_bool(0.98) {
            let mut p: BTreeSet<String> = g.iter().filter(|_| rng.gen_bool(0.7)).cloned().collect();
            for _ in 0..rng.gen_range(0..=3) {
                p.insert(concept(&mut rng));
            }
            pred.insert(id.clone(), p);
        }
        gt.insert(id, g);
    }
    write_labels(&out.join("gt.csv"), &gt)?;
    write_labels(&out.join("pred.csv"), &pred)?;
    let best = |f: &mut dyn FnMut() -> f64| -> (f64, f64) {
        let mut times = Vec::new();
        let mut v = 0.0;
        for _ in 0..repeats {
            let t = Instant::now();
            v = f();
            times.push(t.elapsed().as_secs_f64());
        }
        (times.into_iter().fold(f64::INFINITY, f64::min), v)
    };
    let (t_f1, f1) = best(&mut || imageclef_f1(&gt, &pred).f1);
    let (t_all, f1_all) = best(&mut || evaluate(&gt, &pred, &EvalHooks::default()).imageclef_f1);
    eprintln!("eval: ImageCLEF F1 {f1:.6} ({f1_all:.6} from evaluate)");
    let tag = format!("{n_images}x{n_concepts}");
    emit(&format!("eval_f1_{tag}"), "s", t_f1);
    emit(&format!("eval_report_{tag}"), "s", t_all);
    Ok(())
}

fn read_jsonl(path: &Path) -> Result<Vec<Measurement>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("{}: bad line {l}", path.display())))
        .collect()
}

/// One side's repeated measurements of one name.
#[derive(Serialize, Clone, Copy)]
struct Summary {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

impl Summary {
    fn of(mut v: Vec<f64>) -> Option<Summary> {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Summary { median, min: v[0], max: v[n - 1], n })
    }
}

#[derive(Serialize)]
struct Row {
    name: String,
    unit: String,
    conceptree: Option<Summary>,
    reference: Option<Summary>,
    /// Of the medians; > 1: conceptree better (throughput: c / r; time and memory: r / c).
    ratio: Option<f64>,
}

fn report(conceptree: &Path, reference: &Path, out: &Path) -> Result<()> {
    let c = read_jsonl(conceptree)?;
    let r = if reference.exists() { read_jsonl(reference)? } else { Vec::new() };
    let mut rows: Vec<Row> = Vec::new();
    let mut seen = BTreeMap::new();
    for m in c.iter().chain(&r) {
        if seen.insert(m.name.clone(), ()).is_some() {
            continue;
        }
        // Several lines of one name (repeated runs, the two sides alternating): the median counts,
        // and the spread (min-max) says how much the shared machine moved it.
        let higher_better = m.unit.ends_with("/s");
        let summary = |v: &[Measurement]| Summary::of(v.iter().filter(|x| x.name == m.name).map(|x| x.value).collect());
        let (cv, rv) = (summary(&c), summary(&r));
        let ratio = match (cv, rv) {
            (Some(a), Some(b)) if a.median > 0.0 && b.median > 0.0 => Some(if higher_better { a.median / b.median } else { b.median / a.median }),
            _ => None,
        };
        rows.push(Row { name: m.name.clone(), unit: m.unit.clone(), conceptree: cv, reference: rv, ratio });
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&rows)?)?;
    let num = |x: f64| match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 1.0 => format!("{x:.2}"),
        _ => format!("{x:.4}"),
    };
    let f = |v: Option<Summary>| match v {
        Some(s) if s.n > 1 => format!("{} ({}–{}, n={})", num(s.median), num(s.min), num(s.max), s.n),
        Some(s) => num(s.median),
        None => "n/a".into(),
    };
    let mut md = String::from("| measurement | unit | conceptree | reference | ratio |\n| --- | --- | ---: | ---: | ---: |\n");
    for row in &rows {
        md.push_str(&format!("| {} | {} | {} | {} | {} |\n", row.name, row.unit, f(row.conceptree), f(row.reference), row.ratio.map_or("n/a".into(), |x| format!("{x:.2}x"))));
    }
    std::fs::write(out.join("table.md"), &md)?;
    print!("{md}");
    eprintln!("ratio of the medians > 1: conceptree better (img/s: conceptree / reference; s, MiB: reference / conceptree); repeated runs: median (min–max, n)");
    eprintln!("wrote {} and {}", out.join("results.json").display(), out.join("table.md").display());
    Ok(())
}
