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
use conceptree::data::cache::ImageCache;
use conceptree::data::pipeline::{
    decode, decode_jpeg_scaled, decode_jpeg_zune, decode_raw, image_rng, resize_planes, resize_planes_reference, AugmentConfig,
    ImageSource, Loader, Pipeline, RandomAffine, RawImage, TensorLoader, IMAGENET_MEAN, IMAGENET_STD,
};
use conceptree::eval::metrics::{evaluate, imageclef_f1, EvalHooks, LabelMap};
use conceptree::model::{HeadConfig, HeadKind, HeadSpec, MemoryFormat, Model, ModelConfig, TrunkKind};
use conceptree::train::optim::{Adam, GradScaler};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Reduction, Tensor};

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
    /// Training img/s end to end (loader, forward, BCE loss, backward, Adam), after warm-up steps.
    Train {
        #[arg(long)]
        images: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Read the loss back to the host every N steps (the trainer reads it every step: 1).
        #[arg(long, default_value_t = 1)]
        loss_every: usize,
        #[arg(long, default_value_t = 2)]
        prefetch: usize,
        /// Host-to-device staging: `loader` (as the trainer: pipeline::TensorLoader builds the batch
        /// tensors on a staging thread, pinned on CUDA, copied without blocking) or `plain`
        /// (Vec -> Tensor -> device on the training thread, the trainer's first version).
        #[arg(long, default_value = "loader")]
        staging: String,
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
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value = "resnet50")]
    trunk: String,
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
    #[arg(long, default_value = "auto")]
    memory_format: MemoryFormat,
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
    let threads = if cli.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { cli.threads };
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("rayon pool")?;
    tch::set_num_threads(threads as i32);
    match cli.cmd {
        Cmd::Synth { out, n, size } => synth(&out, n, size),
        Cmd::Stages { images, size, limit, name } => stages(&images, size, limit, &name),
        Cmd::Pipeline { images, size, batch, limit, list_repeat, cache, name } => pipeline(&images, size, batch, limit, list_repeat, cache.as_deref(), &name),
        Cmd::Train { images, model, warmup, loss_every, prefetch, staging, name } => {
            let name = name.unwrap_or_else(|| model.default_name("train"));
            let opts = TrainOpts { warmup, loss_every: loss_every.max(1), prefetch, loader: staging == "loader" };
            if !matches!(staging.as_str(), "loader" | "plain") {
                bail!("--staging loader|plain");
            }
            train(&images, &model, opts, &name)
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
    let cfg = conceptree::synth::SynthConfig { n, size, seed: 42, jpeg_quality: 90 };
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
                ImageCache::build(&once, size, dir)?;
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

fn device_of(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" => bail!("--device cuda, but libtorch sees no CUDA device (run `conceptree doctor`)"),
        o => bail!("unknown device '{o}' (cpu, cuda)"),
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The trainer's flat model, with its precision and memory format set as the trainer sets them.
fn bench_model(vs: &nn::VarStore, m: &ModelArgs, n_labels: usize) -> Result<Model> {
    let (trunk, amp, memory_format) = (m.trunk.as_str(), m.amp, m.memory_format);
    let trunk: TrunkKind = trunk.parse().map_err(anyhow::Error::msg)?;
    let heads = vec![HeadSpec { name: "flat".into(), concepts: (0..n_labels).map(|i| format!("C{i:07}")).collect(), kind: HeadKind::MultiLabel }];
    let mut model = Model::new(&vs.root(), ModelConfig { trunk, head: HeadConfig::for_trunk(trunk), heads, condition_on_previous: false });
    let channels_last = memory_format.channels_last(vs.device(), amp);
    model.set_channels_last(vs, channels_last);
    model.amp = amp;
    let precision = conceptree::model::autocast::precision_label(vs.device(), amp);
    eprintln!("model: {} trunk, {precision}, {}", model.cfg.trunk, if channels_last { "channels-last" } else { "contiguous" });
    Ok(model)
}

struct TrainOpts {
    warmup: usize,
    loss_every: usize,
    prefetch: usize,
    loader: bool,
}

/// One staged batch: dataset indices, and either a pinned host tensor or the plain `Vec<f32>`.
type Staged = Result<(Vec<usize>, Option<Tensor>, Vec<f32>)>;

fn train(images: &Path, m: &ModelArgs, o: TrainOpts, name: &str) -> Result<()> {
    let TrainOpts { warmup, loss_every, prefetch, loader: use_tensor_loader } = o;
    let (size, batch, steps, amp) = (m.size, m.batch, m.steps, m.amp);
    const N_LABELS: usize = 25;
    let device = device_of(&m.device)?;
    tch::manual_seed(0);
    let paths = Arc::new(list_images(images, 0)?);
    let vs = nn::VarStore::new(device);
    let model = bench_model(&vs, m, N_LABELS)?;
    let mut scaler = GradScaler::default();
    let scaled = amp && device.is_cuda(); // loss scaling for fp16 only, as the trainer
    // The trainer's optimizer (train::optim::Adam, lr 1e-4) over every trainable variable.
    let mut params: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(n, _)| !(n.ends_with("running_mean") || n.ends_with("running_var") || n.ends_with("num_batches_tracked")))
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, p) in params.iter_mut() {
        let _ = p.requires_grad_(true);
    }
    let mut opt = Adam::new(vec![(params, 1e-4)]);
    let pipe = Pipeline { size, augment: Some(AugmentConfig::default()) };
    let (mut done, mut seen, mut epoch) = (0usize, 0usize, 0u64);
    let mut t0 = None;
    let mut last_loss = f64::NAN;
    let verbose = std::env::var_os("BENCH_VERBOSE").is_some();
    let mut tw = Instant::now();
    'outer: loop {
        let mut order: Vec<usize> = (0..paths.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch));
        let loader = Loader::start(pipe, paths.clone(), order, batch, 0, epoch, prefetch);
        // As the trainer: pipeline::TensorLoader makes the batch tensors on a staging thread (pinned
        // on CUDA), so the training thread only issues a non-blocking copy (DataLoader(pin_memory=True)
        // + .to(non_blocking=True)). `plain`: Vec<f32> -> Tensor -> device, on the training thread.
        let batches: Box<dyn Iterator<Item = Staged>> = if use_tensor_loader {
            Box::new(TensorLoader::start(loader, size, device, prefetch).map(|b| b.map(|(i, t)| (i, Some(t), Vec::new())).map_err(Into::into)))
        } else {
            Box::new(loader.map(|b| b.map(|b| (b.indices, None, b.images)).map_err(Into::into)))
        };
        for item in batches {
            let (indices, pinned_x, host) = item?;
            let t_wait = tw.elapsed().as_secs_f64();
            let tc = Instant::now();
            let bs = indices.len();
            // like the trainer: targets built on the host, images copied to the device
            let mut y = vec![0f32; bs * N_LABELS];
            for (r, &i) in indices.iter().enumerate() {
                y[r * N_LABELS + i % N_LABELS] = 1.0;
            }
            let y = Tensor::from_slice(&y).view([bs as i64, N_LABELS as i64]).to_device(device);
            let x = match pinned_x {
                Some(t) => t.to_device_(device, Kind::Float, true, false),
                None => Tensor::from_slice(&host).view([bs as i64, 3, size as i64, size as i64]).to_device(device),
            };
            if verbose {
                sync(device);
            }
            let t_copy = tc.elapsed().as_secs_f64();
            let t = Instant::now();
            let logits = model.forward_t(&x, true, true).remove(0);
            let loss = logits.binary_cross_entropy_with_logits(&y, None::<&Tensor>, None::<&Tensor>, Reduction::Mean);
            // BENCH_VERBOSE: per-phase times, synchronising CUDA after each phase (slower; not for the img/s rows)
            let vsync = || if verbose { sync(device) };
            vsync();
            let t_fwd = t.elapsed().as_secs_f64();
            opt.zero_grad();
            if scaled {
                scaler.scale(&loss).backward();
            } else {
                loss.backward();
            }
            vsync();
            let t_bwd = t.elapsed().as_secs_f64() - t_fwd;
            if scaled {
                // as the trainer: unscale, read "finite" back (one sync per step, as GradScaler.step), step or skip
                let finite = bool::try_from(scaler.unscale_(&opt))?;
                if finite {
                    opt.step();
                }
                scaler.update(finite);
            } else {
                opt.step();
            }
            vsync();
            let t_opt = t.elapsed().as_secs_f64() - t_fwd - t_bwd;
            done += 1;
            if verbose {
                eprintln!("step {done}: wait for batch {t_wait:.3}s, to device {t_copy:.3}s, forward {t_fwd:.3}s, backward {t_bwd:.3}s, optimizer {t_opt:.3}s");
            }
            if done % loss_every == 0 {
                last_loss = loss.double_value(&[]);
            }
            if done == warmup {
                sync(device);
                t0 = Some(Instant::now());
            } else if done > warmup {
                seen += bs;
            }
            if done >= warmup + steps {
                break 'outer;
            }
            tw = Instant::now();
        }
        epoch += 1;
    }
    sync(device);
    let dt = t0.map(|t| t.elapsed().as_secs_f64()).unwrap_or(f64::NAN);
    eprintln!("train: {done} steps, last loss {last_loss:.4}, {:.2}s timed", dt);
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
    let (size, batch, steps) = (m.size, m.batch, m.steps);
    let device = device_of(&m.device)?;
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
        s.push_str(&set.iter().cloned().collect::<Vec<_>>().join(";"));
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

#[derive(Serialize)]
struct Row {
    name: String,
    unit: String,
    conceptree: Option<f64>,
    reference: Option<f64>,
    /// > 1: conceptree better (throughput: c / r; time and memory: r / c).
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
        // Several lines of one name (repeated runs): the best one counts (max of a rate, min of
        // a time or a size): on a shared machine, the least disturbed run.
        let higher_better = m.unit.ends_with("/s");
        let best = |v: &[Measurement]| {
            let vals = v.iter().filter(|x| x.name == m.name && x.value.is_finite()).map(|x| x.value);
            if higher_better { vals.reduce(f64::max) } else { vals.reduce(f64::min) }
        };
        let (cv, rv) = (best(&c), best(&r));
        let ratio = match (cv, rv) {
            (Some(a), Some(b)) if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() => Some(if higher_better { a / b } else { b / a }),
            _ => None,
        };
        rows.push(Row { name: m.name.clone(), unit: m.unit.clone(), conceptree: cv, reference: rv, ratio });
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&rows)?)?;
    let f = |v: Option<f64>| match v {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.4}"),
        None => "n/a".into(),
    };
    let mut md = String::from("| measurement | unit | conceptree | reference | ratio |\n| --- | --- | ---: | ---: | ---: |\n");
    for row in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.name,
            row.unit,
            f(row.conceptree),
            f(row.reference),
            row.ratio.map_or("n/a".into(), |x| format!("{x:.2}x"))
        ));
    }
    std::fs::write(out.join("table.md"), &md)?;
    print!("{md}");
    eprintln!("ratio > 1: conceptree better (img/s: conceptree / reference; s, MiB: reference / conceptree); repeated runs: best of each side");
    eprintln!("wrote {} and {}", out.join("results.json").display(), out.join("table.md").display());
    Ok(())
}
