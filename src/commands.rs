//! Command implementations: each turns parsed arguments into library calls and prints results.
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use conceptree::data::dataset::{find_image, IMAGE_EXTENSIONS};
use conceptree::data::labels::{read_labels, to_map, write_clef2019, LabelError, LabelFormat, ParseOptions};
use conceptree::data::{self};
use conceptree::eval::{self, metrics, submission};
use conceptree::ontology::{Level, Ontology, OntologyError};
use conceptree::train::{self, DeviceChoice, LoadedRun, TrainConfig, TrainError};
use conceptree::{EXIT_BAD_INPUT, EXIT_FAILURE};

/// A usage problem found by a command (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Map an error to the process exit code: 2 for bad usage or input, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(t) = cause.downcast_ref::<TrainError>() {
            return if t.is_bad_input() { EXIT_BAD_INPUT } else { EXIT_FAILURE };
        }
        if cause.is::<UsageError>()
            || cause.is::<LabelError>()
            || cause.is::<OntologyError>()
            || cause.is::<submission::SubmissionError>()
            || cause.is::<data::dataset::DatasetError>()
            || cause.is::<data::pipeline::PipelineError>()
            || cause.is::<data::cache::CacheError>()
            || cause.is::<conceptree::synth::SynthError>()
        {
            return EXIT_BAD_INPUT;
        }
    }
    EXIT_FAILURE
}

fn load_ontology(path: Option<&Path>) -> Result<Ontology> {
    Ok(match path {
        Some(p) => Ontology::load(p)?,
        None => Ontology::builtin(),
    })
}

pub fn doctor() -> Result<()> {
    println!("conceptree {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch dir     {}", option_env!("CONCEPTREE_LIBTORCH_DIR").unwrap_or("(not recorded at build time)"));
    println!("libtorch_cuda    {}", if option_env!("CONCEPTREE_LINKED_CUDA").is_some() { "linked" } else { "not linked (CPU-only libtorch)" });
    println!("torch version    2.11.0 (tch 0.24.0)");
    let cuda = tch::Cuda::is_available();
    println!("CUDA available   {cuda}");
    if cuda {
        println!("CUDA devices     {}", tch::Cuda::device_count());
        println!("cuDNN available  {} (version {})", tch::Cuda::cudnn_is_available(), tch::utils::version_cudnn());
        println!("CUDA runtime     {}", tch::utils::version_cudart());
        if let Some(name) = cuda_device_name() {
            println!("device 0         {name}");
        }
    }
    println!("CPU threads      {} (libtorch), {} (rayon)", tch::get_num_threads(), rayon::current_num_threads());
    println!("build            {} {}", if cfg!(debug_assertions) { "debug" } else { "release" }, std::env::consts::ARCH);
    // A real op on the default device proves the library works, not only that it links.
    let dev = tch::Device::cuda_if_available();
    let t = tch::Tensor::ones([2, 2], (tch::Kind::Float, dev)).matmul(&tch::Tensor::ones([2, 2], (tch::Kind::Float, dev)));
    println!("matmul check     {:?} on {:?}", Vec::<f32>::try_from(t.flatten(0, -1).to_device(tch::Device::Cpu))?, dev);
    Ok(())
}

fn cuda_device_name() -> Option<String> {
    let out = std::process::Command::new("nvidia-smi").args(["--query-gpu=name,memory.total", "--format=csv,noheader"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string())
}

pub fn synth(out: &Path, n: usize, size: u32, seed: u64) -> Result<()> {
    let cfg = conceptree::synth::SynthConfig { n, size, seed, ..Default::default() };
    let s = conceptree::synth::generate(&cfg, out)?;
    println!("wrote {} phantoms to {} and labels to {}", s.n_images, s.images_dir.display(), s.labels_path.display());
    Ok(())
}

pub fn resume(run: &Path) -> Result<()> {
    let cfg: TrainConfig = serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).map_err(|e| UsageError(format!("{}: {e}", run.join("config.json").display())))?)?;
    let ontology = load_ontology(cfg.ontology.as_deref())?;
    report_training(train::resume(run, &ontology)?)
}

pub fn train(cfg: TrainConfig) -> Result<()> {
    let ontology = load_ontology(cfg.ontology.as_deref())?;
    report_training(train::train(&cfg, &ontology)?)
}

fn report_training(s: train::TrainSummary) -> Result<()> {
    println!(
        "trained {} on {} images ({} val) in {:.1}s: val ImageCLEF F1 {:.4} at 0.5, {:.4} with tuned thresholds; run in {}",
        s.concepts,
        s.n_train,
        s.n_val,
        s.seconds,
        s.val_f1_at_half,
        s.val_f1_tuned,
        s.run.display()
    );
    Ok(())
}

/// Ids to predict: from a label/id file, or every image in `images`.
fn ids_to_predict(images: &Path, ids: Option<&Path>) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    match ids {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read id file {}", f.display()))?;
            for (i, line) in text.lines().enumerate() {
                let id = line.split(['\t', ',']).next().unwrap_or("").trim();
                if id.is_empty() || (i == 0 && id.eq_ignore_ascii_case("id")) {
                    continue;
                }
                let p = find_image(images, id)
                    .ok_or_else(|| UsageError(format!("{}:{}: no image for id '{id}' in {}", f.display(), i + 1, images.display())))?;
                out.push((id.to_string(), p));
            }
        }
        None => {
            let rd = std::fs::read_dir(images).map_err(|e| UsageError(format!("cannot read images directory {}: {e}", images.display())))?;
            for entry in rd {
                let p = entry?.path();
                let ext = p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
                if ext.as_deref().is_some_and(|e| IMAGE_EXTENSIONS.contains(&e)) {
                    let id = p.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
                    out.push((id, p));
                }
            }
            out.sort();
        }
    }
    if out.is_empty() {
        bail!(UsageError(format!("no images to predict in {}", images.display())));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub fn predict(model: &Path, images: &Path, ids: Option<&Path>, out: &Path, threshold: Option<f32>, explain: Option<&Path>, batch: usize, device: DeviceChoice) -> Result<()> {
    let dev = train::resolve_device(device)?;
    let run = LoadedRun::open(model, dev)?;
    let ontology = load_ontology(run.config.ontology.as_deref())?;
    let items = ids_to_predict(images, ids)?;
    let paths: Vec<PathBuf> = items.iter().map(|(_, p)| p.clone()).collect();
    let (probs, sets) = run.predict(&ontology, &paths, batch.max(1), threshold)?;
    write_clef2019(out, items.iter().zip(&sets).map(|((id, _), s)| (id.clone(), s.iter().cloned().collect())))
        .with_context(|| format!("cannot write {}", out.display()))?;
    if let Some(path) = explain {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?);
        let concepts = run.model_cfg.concepts();
        for (i, (id, _)) in items.iter().enumerate() {
            let mut levels = serde_json::Map::new();
            let mut start = 0;
            for h in &run.model_cfg.heads {
                let scores: serde_json::Map<String, serde_json::Value> =
                    (start..start + h.concepts.len()).map(|k| (concepts[k].clone(), serde_json::json!(probs[[i, k]]))).collect();
                levels.insert(h.name.clone(), serde_json::Value::Object(scores));
                start += h.concepts.len();
            }
            // the path: predicted concepts ordered from the root down, with names
            let mut path: Vec<(usize, String)> = sets[i].iter().map(|c| (ontology.depth(c).unwrap_or(0), c.clone())).collect();
            path.sort();
            let path: Vec<String> = path.iter().map(|(_, c)| format!("{c} {}", ontology.get(c).map(|x| x.name.as_str()).unwrap_or("?"))).collect();
            writeln!(w, "{}", serde_json::json!({"id": id, "predicted": sets[i], "path": path, "scores": levels}))?;
        }
    }
    println!("wrote predictions for {} images to {}", items.len(), out.display());
    Ok(())
}

/// Ground truth (empty label sets allowed, as in ImageCLEF) and a submission validated against it
/// the way the official pre-check does (unknown/repeated ids and repeated concepts are errors).
fn read_gt_and_submission(
    gt: &Path,
    pred: &Path,
    format: LabelFormat,
    allow_missing: bool,
) -> Result<(std::collections::BTreeMap<String, BTreeSet<String>>, submission::ValidatedSubmission)> {
    let (gt_rows, _) = read_labels(gt, ParseOptions { format, allow_empty: true, ..Default::default() })?;
    let pred_opts = ParseOptions { format: LabelFormat::Auto, allow_empty: true, reject_repeated_cui: true, ..Default::default() };
    let (pred_rows, _) = read_labels(pred, pred_opts)?;
    let gt_map = to_map(&gt_rows);
    let gt_ids: BTreeSet<String> = gt_map.keys().cloned().collect();
    let sub = submission::validate_submission(&gt_ids, &pred_rows, &pred.display().to_string(), allow_missing)?;
    Ok((gt_map, sub))
}

pub fn evaluate(gt: &Path, pred: &Path, ontology: Option<&Path>, format: LabelFormat, allow_missing: bool, json: bool) -> Result<()> {
    let (gt_map, sub) = read_gt_and_submission(gt, pred, format, allow_missing)?;
    let onto = load_ontology(ontology)?;
    let vocab: BTreeSet<String> = gt_map.values().flatten().cloned().collect();
    let hooks = eval::ontology_hooks(&onto, vocab);
    let report = metrics::evaluate(&gt_map, &sub.preds, &hooks);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

pub fn ontology_validate(files: &[PathBuf]) -> Result<()> {
    let mut n_problems = 0;
    if files.is_empty() {
        let o = Ontology::builtin();
        println!("built-in ontology: {} concepts, valid", o.len());
        return Ok(());
    }
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| UsageError(format!("cannot read {}: {e}", f.display())))?;
        let problems = Ontology::validate_tsv_str(&text, &f.display().to_string());
        for p in &problems {
            eprintln!("{p}");
        }
        if problems.is_empty() {
            println!("{}: valid", f.display());
        }
        n_problems += problems.len();
    }
    if n_problems > 0 {
        bail!(UsageError(format!("{n_problems} problem(s) found")));
    }
    Ok(())
}

pub fn ontology_stats(path: Option<&Path>, json: bool) -> Result<()> {
    let o = load_ontology(path)?;
    let s = o.stats();
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{s}");
    }
    Ok(())
}

pub fn ontology_show(cui: &str, path: Option<&Path>) -> Result<()> {
    let o = load_ontology(path)?;
    match o.show(&cui.to_ascii_uppercase()) {
        Some(r) => print!("{r}"),
        None => bail!(UsageError(format!("concept {cui} is not in the ontology"))),
    }
    Ok(())
}

/// Read a CUI -> semantic types table: MRSTY.RRF (`CUI|TUI|...`) or a TSV `cui<TAB>...<TAB>T060;T023`
/// whose semantic types are in the column named `semantic_types`, `semtypes` or `semtype_candidates`
/// (default: the second). Entries may be `T060:Name`. A `semtype_candidates` column (a derived
/// table listing the types seen on every image of the CUI, most specific first) contributes only its
/// first candidate, since the others are usually the caption's other concepts.
fn read_semtypes(path: &Path) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    let mut map: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    let header: Vec<&str> = text.lines().next().unwrap_or("").split('\t').collect();
    let col = header.iter().position(|h| ["semantic_types", "semtypes", "semtype_candidates"].contains(&h.trim())).unwrap_or(1);
    let first_only = header.get(col).is_some_and(|h| h.trim() == "semtype_candidates");
    for (i, line) in text.lines().enumerate() {
        let (cui, rest) = if line.contains('|') {
            let mut f = line.split('|');
            (f.next().unwrap_or(""), f.next().unwrap_or(""))
        } else {
            let f: Vec<&str> = line.split('\t').collect();
            (f.first().copied().unwrap_or(""), f.get(col).copied().unwrap_or(""))
        };
        if i == 0 && !conceptree::data::labels::is_cui(cui) {
            continue; // header
        }
        if !conceptree::data::labels::is_cui(cui) {
            bail!(UsageError(format!("{}:{}: '{cui}' is not a CUI", path.display(), i + 1)));
        }
        let tuis = rest.split(';').map(|t| t.split(':').next().unwrap_or("").trim().to_string()).filter(|t| !t.is_empty());
        let tuis: Vec<String> = if first_only { tuis.take(1).collect() } else { tuis.collect() };
        map.entry(cui.to_ascii_uppercase()).or_default().extend(tuis);
    }
    Ok(map)
}

pub fn ontology_map(labels: &Path, format: LabelFormat, path: Option<&Path>, semtypes: Option<&Path>, json: bool) -> Result<()> {
    let o = load_ontology(path)?;
    let (rows, _) = read_labels(labels, ParseOptions { format, allow_empty: true, ..Default::default() })?;
    let table = semtypes.map(read_semtypes).transpose()?;
    let report = o.map_labels_with(rows.iter().map(|r| r.cuis.as_slice()), table.as_ref());
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}: {} images", labels.display(), rows.len());
        print!("{report}");
    }
    Ok(())
}

pub fn ontology_dot(root: Option<&str>, level: Option<Level>, path: Option<&Path>, out: Option<&Path>) -> Result<()> {
    let o = load_ontology(path)?;
    let dot = o.to_dot(root, level)?;
    let Some(out) = out else {
        print!("{dot}");
        return Ok(());
    };
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("dot").to_ascii_lowercase();
    if ext == "dot" || ext == "gv" {
        std::fs::write(out, dot).with_context(|| format!("cannot write {}", out.display()))?;
    } else {
        let mut child = std::process::Command::new("dot")
            .arg(format!("-T{ext}"))
            .arg("-o")
            .arg(out)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| UsageError(format!("rendering .{ext} needs Graphviz's `dot` on PATH ({e}); use --out FILE.dot instead")))?;
        child.stdin.take().expect("piped").write_all(dot.as_bytes())?;
        let status = child.wait()?;
        if !status.success() {
            bail!("dot failed with {status}");
        }
    }
    println!("wrote {}", out.display());
    Ok(())
}

pub fn ontology_from_umls(rrf: &Path, labels: Option<&Path>, out: &Path) -> Result<()> {
    let restrict = match labels {
        Some(l) => {
            let (rows, _) = read_labels(l, ParseOptions { allow_empty: true, ..Default::default() })?;
            Some(rows.iter().flat_map(|r| r.cuis.iter().cloned()).collect::<BTreeSet<String>>())
        }
        None => None,
    };
    let o = Ontology::from_umls_rrf(rrf, restrict.as_ref())?;
    std::fs::write(out, o.to_tsv()).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} concepts to {}", o.len(), out.display());
    Ok(())
}


pub fn data_stats(labels: &Path, format: LabelFormat, top: usize, min_count: usize, plot: Option<&Path>, ontology: Option<&Path>, json: bool) -> Result<()> {
    let o = load_ontology(ontology)?;
    let (rows, _) = read_labels(labels, ParseOptions { format, allow_empty: true, ..Default::default() })?;
    let describe = |c: &str| (o.get(c).map(|x| x.name.clone()), o.level_of(c).map(|l| l.to_string()));
    let stats = data::stats::dataset_stats(&rows, top, min_count, &describe);
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        println!("{}", labels.display());
        print!("{stats}");
    }
    if let Some(p) = plot {
        let names: Vec<String> = stats.top.iter().map(|t| format!("{} {}", t.cui, t.name.as_deref().unwrap_or(""))).collect();
        let values: Vec<f64> = stats.top.iter().map(|t| t.images as f64).collect();
        let svg = conceptree::report::plot::bar_chart(&format!("Top {} concepts of {}", stats.top.len(), labels.display()), "images", &names, &values);
        let svg_path = p.with_extension("svg");
        std::fs::write(&svg_path, &svg).with_context(|| format!("cannot write {}", svg_path.display()))?;
        let png_path = p.with_extension("png");
        conceptree::report::plot::save_png(&svg, &png_path)?;
        eprintln!("wrote {} and {}", svg_path.display(), png_path.display());
    }
    Ok(())
}

pub fn import_folders(root: &Path, out: &Path) -> Result<()> {
    let rows = data::stats::import_folders(root, out).map_err(|e| UsageError(e.to_string()))?;
    println!("imported {} images into {}", rows.len(), out.display());
    Ok(())
}

pub fn export_folders(labels: &Path, images: &Path, out: &Path, top_k: usize) -> Result<()> {
    let (rows, _) = read_labels(labels, ParseOptions { allow_empty: true, ..Default::default() })?;
    let keep = (top_k > 0).then(|| {
        let map = to_map(&rows);
        let mut counts = std::collections::BTreeMap::new();
        map.values().flatten().for_each(|c| *counts.entry(c.clone()).or_insert(0usize) += 1);
        data::dataset::LabelSpace::top_k(&counts, top_k, 1).concepts.into_iter().collect::<BTreeSet<String>>()
    });
    let n = data::stats::export_folders(&rows, images, out, keep.as_ref()).map_err(|e| UsageError(e.to_string()))?;
    println!("wrote {n} files under {}", out.display());
    Ok(())
}

/// `conceptree data cache`: decode and resize the images of one or more label files into an
/// on-disk cache that `train --image-cache` reads instead of the files.
pub fn data_cache(labels: &[PathBuf], images: &Path, size: u32, out: &Path, skip_bad: bool) -> Result<()> {
    if !(16..=1024).contains(&size) {
        return Err(UsageError(format!("--size {size} is outside 16..=1024")).into());
    }
    let opts = ParseOptions { skip_bad, ..Default::default() };
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut skipped: Option<data::labels::SkipReport> = None;
    for l in labels {
        let (rows, mut skip) = read_labels(l, opts)?;
        let (ds, img_skip) = data::dataset::Dataset::open(&rows, &l.display().to_string(), images, skip_bad)?;
        skip.merge(img_skip);
        paths.extend(ds.paths);
        match skipped.as_mut() {
            Some(s) => s.merge(skip),
            None => skipped = Some(skip),
        }
    }
    if let Some(s) = skipped.filter(|s| !s.is_empty()) {
        eprint!("{s}");
    }
    paths.sort();
    paths.dedup();
    let t = std::time::Instant::now();
    let rep = data::cache::ImageCache::build(&paths, size, out)?;
    println!(
        "cached {} images ({} grey, {} colour) at {size}x{size}: {:.1} MiB in {:.1} s -> {}",
        rep.images,
        rep.grey,
        rep.images - rep.grey,
        rep.bytes as f64 / (1u64 << 20) as f64,
        t.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

pub fn experiment_paper(cfg: conceptree::experiment::ExperimentConfig) -> Result<()> {
    let ontology = load_ontology(cfg.base.ontology.as_deref())?;
    let results = conceptree::experiment::run_paper(&cfg, &ontology)?;
    print!("{}", conceptree::experiment::table4_markdown(&results, &cfg.base));
    println!("\nwrote {} (table3.*, figure1.svg, table4.md, table4.json, runs/)", cfg.out.display());
    Ok(())
}

/// `conceptree analyse`: reads and validates like [`evaluate`], then writes the error-analysis
/// report (`report.html`, `summary.md`, `analysis.json`, SVG plots) into `out`.
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    gt: &Path,
    pred: &Path,
    out: &Path,
    ontology: Option<&Path>,
    scores: Option<&Path>,
    format: LabelFormat,
    allow_missing: bool,
    cfg: conceptree::report::analyse::AnalyseConfig,
) -> Result<()> {
    use conceptree::report::{analyse as an, html};
    let bad = |e: an::AnalyseError| if e.is_bad_input() { anyhow::Error::new(UsageError(e.to_string())) } else { anyhow::Error::new(e) };
    cfg.validate().map_err(bad)?;
    let (gt_map, sub) = read_gt_and_submission(gt, pred, format, allow_missing)?;
    let onto = load_ontology(ontology)?;
    let score_map = scores.map(an::read_scores).transpose().map_err(bad)?;
    let mut a = an::analyse(&gt_map, &sub.preds, &onto, score_map.as_ref(), &cfg).map_err(bad)?;
    a.inputs.insert("ground truth".into(), gt.display().to_string());
    a.inputs.insert("predictions".into(), pred.display().to_string());
    if let Some(d) = &cfg.images {
        a.inputs.insert("images".into(), d.display().to_string());
    }
    if let Some(s) = scores {
        a.inputs.insert("scores".into(), s.display().to_string());
    }
    let files = html::write_report(&a, out)?;
    println!("ImageCLEF F1 {:.4} over {} images; {} exactly right", a.metrics.imageclef_f1, a.metrics.n_images, a.count(an::ErrorKind::Correct));
    let kinds: Vec<String> = a.error_counts.iter().filter(|k| k.kind != an::ErrorKind::Correct).map(|k| format!("{} {}", k.kind.as_str(), k.count)).collect();
    println!("errors: {}", kinds.join(", "));
    if let Some(c) = &a.threshold_curve {
        println!("best global threshold {:.2}: ImageCLEF F1 {:.4}", c.best_threshold, c.best_f1);
    }
    if a.missing_thumbnails > 0 {
        println!("{} sample image(s) without thumbnail", a.missing_thumbnails);
    }
    println!("wrote {} and {} ({})", files.markdown.display(), files.html.display(), out.display());
    Ok(())
}
