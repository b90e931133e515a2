//! Command implementations: argument plumbing only. Each turns parsed arguments into library calls
//! and prints what they return; the logic lives in the library, with its tests. What the library
//! reports on the way comes as events, rendered on stderr by [`crate::render::Stderr`].
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use conceptree::data::labels::{read_labels, to_map, LabelFormat, ParseOptions};
use conceptree::data::{self};
use conceptree::eval::{self, metrics, submission};
use conceptree::events::{Event, Events};
use conceptree::ontology::{Level, Ontology};
use conceptree::predict::{images_to_predict, LoadOptions, LoadedRun};
use conceptree::run::outputs::Plan;
use conceptree::train::{self, run_dir, DeviceChoice, RunDir, TrainConfig};
use conceptree::Error;

use crate::render::Stderr;

/// Let a closed output pipe (`conceptree evaluate ... | head`) end the process quietly, as it does
/// for other command-line tools, instead of a "Broken pipe" panic: restore the default SIGPIPE
/// action, which Rust's runtime sets to "ignore".
pub fn reset_sigpipe() {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: resetting a signal's disposition to its default, before any thread starts.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}

/// Print an error with its causes, each once.
pub fn report_error(e: &Error) {
    eprintln!("error: {}", e.report());
}

fn load_ontology(path: Option<&Path>) -> Result<Ontology, Error> {
    Ok(match path {
        Some(p) => Ontology::load(p)?,
        None => Ontology::builtin(),
    })
}

pub fn doctor() -> Result<(), Error> {
    println!("conceptree {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch dir     {}", option_env!("CONCEPTREE_LIBTORCH_DIR").unwrap_or("(not recorded at build time)"));
    println!("libtorch_cuda    {}", conceptree::cuda::load());
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
    } else {
        println!("cuDNN available  false (no CUDA device, so cuDNN is not used)");
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

pub fn synth(out: &Path, cfg: conceptree::synth::SynthConfig, force: bool) -> Result<(), Error> {
    Plan::new().folder("--out", out).check()?;
    data::output::prepare(out, force)?;
    let s = conceptree::synth::generate(&cfg, out)?;
    println!("wrote {} phantoms to {} and labels to {}", s.n_images, s.images_dir.display(), s.labels_path.display());
    Ok(())
}

/// The ontology a run was trained with: its own copy, else the file it names, else the built-in one.
fn run_ontology(run: &Path, cfg: &TrainConfig) -> Result<Ontology, Error> {
    let own = run.join(run_dir::ONTOLOGY);
    if own.is_file() {
        return Ok(Ontology::load(&own)?);
    }
    load_ontology(cfg.ontology.as_deref())
}

pub fn resume(run: &Path) -> Result<(), Error> {
    let cfg = run_dir::read_config(&RunDir::open_for_reading(run)?)?;
    let ontology = run_ontology(run, &cfg)?;
    report_training(train::resume(run, &ontology, &Stderr::new())?)
}

pub fn train(cfg: TrainConfig, force: bool) -> Result<(), Error> {
    Plan::new()
        .input("--labels", &cfg.train_labels)
        .input("--images", &cfg.images)
        .input_opt("--val-labels", cfg.val_labels.as_deref())
        .input_opt("--groups", cfg.groups.as_deref())
        .input_opt("--weights", cfg.weights.as_deref())
        .input_opt("--ontology", cfg.ontology.as_deref())
        .input_opt("--image-cache", cfg.image_cache.as_deref())
        .creates_run(&cfg.out)
        .folder("--out", &cfg.out)
        .check()?;
    let ontology = load_ontology(cfg.ontology.as_deref())?;
    report_training(train::train(&cfg, &ontology, force, &Stderr::new())?)
}

fn report_training(s: train::TrainSummary) -> Result<(), Error> {
    println!(
        "trained a model of {} concept{} on {} images ({} for validation) in {:.1} s: validation ImageCLEF F1 {:.4} at threshold 0.5, {:.4} with the tuned thresholds; run in {}",
        s.concepts,
        if s.concepts == 1 { "" } else { "s" },
        s.n_train,
        s.n_val,
        s.seconds,
        s.val_f1_at_half,
        s.val_f1_tuned,
        s.run.display()
    );
    Ok(())
}

/// `conceptree predict`'s arguments.
pub struct PredictCommand {
    pub model: PathBuf,
    pub images: PathBuf,
    pub ids: Option<PathBuf>,
    pub out: PathBuf,
    pub explain: Option<PathBuf>,
    pub batch_size: usize,
    pub device: DeviceChoice,
    pub skip_bad: bool,
    pub resume: bool,
    pub shard: Option<conceptree::predict::shard::Shard>,
    pub load: LoadOptions,
}

pub fn predict(a: PredictCommand) -> Result<(), Error> {
    use conceptree::predict::shard;
    use conceptree::predict::stream::{partial_path, predict_into_files, progress_path, StreamOptions};
    if a.batch_size == 0 {
        return Err(Error::usage("--batch-size 0: must be at least 1"));
    }
    Plan::new()
        .reads_run("--model", &a.model)
        .input("--images", &a.images)
        .input_opt("--ids", a.ids.as_deref())
        .input_opt("--ontology", a.load.ontology.as_deref())
        .file("--out", &a.out)
        .file_opt("--explain", a.explain.as_deref())
        // the files predict keeps beside its outputs while it runs
        .file("--out", &partial_path(&a.out))
        .file("--out", &progress_path(&a.out))
        .file_opt("--explain", a.explain.as_deref().map(partial_path).as_deref())
        .file_opt("--out", a.shard.map(|_| shard::record_path(&a.out)).as_deref())
        .check()?;
    let events = Stderr::new();
    let run = LoadedRun::open(&a.model, a.device.resolve()?, &a.load)?;
    for note in &run.notes {
        events.emit(Event::Note(note.clone()));
    }
    let (mut ids, mut paths, skipped, dir) = images_to_predict(&a.images, a.ids.as_deref(), a.skip_bad)?;
    if !dir.ignored.is_empty() {
        events.emit(Event::NotImages { dir: dir.dir.clone(), ignored: dir.ignored.to_string() });
    }
    drop(dir);
    if !skipped.is_empty() {
        events.emit(Event::Text(skipped.to_string()));
    }
    let opts = StreamOptions { out: a.out.clone(), explain: a.explain.clone(), batch_size: a.batch_size, resume: a.resume };
    let record = a.shard.map(|sh| shard::take_block(&run, sh, &mut ids, &mut paths, &opts)).transpose()?;
    let summary = predict_into_files(&run, &ids, std::sync::Arc::new(paths), &opts, &events)?;
    if summary.nothing_to_resume {
        eprintln!("note: --resume: there was no interrupted prediction into {}; predicted from the start", a.out.display());
    } else if summary.resumed_from > 0 {
        eprintln!("resumed after {} of {} images", summary.resumed_from, summary.n_images);
    }
    if let Some(r) = &record {
        shard::write_record(&a.out, r)?;
        eprintln!("shard {} of {}: images {}..{} of {}; record in {}", r.shard.index, r.shard.count, r.first + 1, r.end, r.n_images, shard::record_path(&a.out).display());
    }
    let skipped = if skipped.is_empty() { String::new() } else { format!(" ({} skipped)", skipped.skipped.len()) };
    println!("wrote predictions for {} image{} to {}{skipped}", summary.n_images, if summary.n_images == 1 { "" } else { "s" }, a.out.display());
    Ok(())
}

/// `conceptree merge`: the shards of a sharded prediction joined into one submission.
pub fn merge(shards: &[PathBuf], out: &Path, explain: Option<&Path>) -> Result<(), Error> {
    use conceptree::predict::shard::record_path;
    let records: Vec<PathBuf> = shards.iter().map(|s| record_path(s)).collect();
    Plan::new().inputs("SHARD", shards).inputs("SHARD", &records).file("--out", out).file_opt("--explain", explain).check()?;
    let n = conceptree::predict::shard::merge(shards, out, explain)?;
    println!("merged {} shard(s), {n} images, into {}", shards.len(), out.display());
    Ok(())
}

/// `conceptree export`: the run as a TorchScript module and its description.
pub fn export(cfg: conceptree::predict::export::ExportConfig) -> Result<(), Error> {
    Plan::new().reads_run("--model", &cfg.model).input_opt("--examples", cfg.examples.as_deref()).folder("--out", &cfg.out).check()?;
    let s = conceptree::predict::export::export(&cfg)?;
    let examples = if s.examples > 0 { format!(" and {} example images", s.examples) } else { String::new() };
    println!(
        "exported {} ({} concepts{examples}) to {}: {}; the saved module reproduces the model's probabilities within {:.1e}",
        cfg.model.display(),
        s.concepts,
        cfg.out.display(),
        s.files.iter().filter_map(|f| f.file_name()).map(|f| f.to_string_lossy().into_owned()).collect::<Vec<_>>().join(", "),
        s.max_diff
    );
    Ok(())
}

/// Ground truth (empty label sets allowed, as in ImageCLEF) and a submission validated against it
/// the way the official pre-check does (unknown/repeated ids and repeated concepts are errors).
fn read_gt_and_submission(gt: &Path, pred: &Path, format: LabelFormat, allow_missing: bool) -> Result<(BTreeMap<String, BTreeSet<String>>, submission::ValidatedSubmission), Error> {
    let (gt_rows, _) = read_labels(gt, ParseOptions { format, allow_empty: true, ..Default::default() })?;
    let pred_opts = ParseOptions { format: LabelFormat::Auto, allow_empty: true, reject_repeated_cui: true, ..Default::default() };
    let (pred_rows, _) = read_labels(pred, pred_opts)?;
    let gt_map = to_map(&gt_rows);
    let gt_ids: BTreeSet<String> = gt_map.keys().cloned().collect();
    let pred_rows: Vec<submission::SubmissionRow> = pred_rows.iter().map(Into::into).collect();
    let sub = submission::validate_submission(&gt_ids, &pred_rows, &pred.display().to_string(), allow_missing)?;
    Ok((gt_map, sub))
}

/// `conceptree evaluate`'s arguments.
pub struct EvaluateCommand {
    pub gt: PathBuf,
    pub pred: PathBuf,
    pub ontology: Option<PathBuf>,
    pub format: LabelFormat,
    pub allow_missing: bool,
    pub json: bool,
    pub secondary: Option<PathBuf>,
    pub secondary_levels: Vec<Level>,
}

pub fn evaluate(a: EvaluateCommand) -> Result<(), Error> {
    let (gt_map, sub) = read_gt_and_submission(&a.gt, &a.pred, a.format, a.allow_missing)?;
    let onto = load_ontology(a.ontology.as_deref())?;
    let vocab: BTreeSet<String> = gt_map.values().flatten().cloned().collect();
    let hooks = eval::ontology_hooks(&onto, vocab);
    let mut report = metrics::evaluate(&gt_map, &sub.preds, &hooks);
    let secondary = match (&a.secondary, a.secondary_levels.is_empty()) {
        (Some(_), false) => return Err(Error::usage("give either --secondary or --secondary-levels, not both")),
        (Some(f), true) => Some((conceptree::data::labels::read_concept_list(f)?, f.display().to_string())),
        (None, false) => Some((onto.concepts_on_levels(&a.secondary_levels), format!("the ontology's {} concepts", a.secondary_levels.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ")))),
        (None, true) => None,
    };
    report.secondary = secondary.map(|(allowed, source)| metrics::secondary_f1(&gt_map, &sub.preds, &allowed, &source));
    let json = a.json;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    } else {
        print!("{}", report.render(&|c| onto.get(c).map(|x| x.name.clone())));
    }
    Ok(())
}

pub fn ontology_validate(files: &[PathBuf]) -> Result<(), Error> {
    if files.is_empty() {
        println!("built-in ontology: {} concepts, valid", Ontology::builtin().len());
        return Ok(());
    }
    let mut n_problems = 0;
    for f in files {
        let text = conceptree::text::read_text(f).map_err(Error::read(f))?;
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
        return Err(Error::usage(format!("{n_problems} problem(s) found")));
    }
    Ok(())
}

pub fn ontology_stats(path: Option<&Path>, json: bool) -> Result<(), Error> {
    let s = load_ontology(path)?.stats();
    if json {
        println!("{}", serde_json::to_string_pretty(&s).expect("stats serialise"));
    } else {
        print!("{s}");
    }
    Ok(())
}

pub fn ontology_show(cui: &str, path: Option<&Path>) -> Result<(), Error> {
    match load_ontology(path)?.show(&cui.to_ascii_uppercase()) {
        Some(r) => print!("{r}"),
        None => return Err(Error::usage(format!("concept {} is not in the ontology", conceptree::cui::excerpt(cui, conceptree::cui::EXCERPT)))),
    }
    Ok(())
}

pub fn ontology_map(labels: &Path, format: LabelFormat, path: Option<&Path>, semtypes: Option<&Path>, json: bool) -> Result<(), Error> {
    let o = load_ontology(path)?;
    let (rows, report) = read_labels(labels, ParseOptions { format, allow_empty: true, ..Default::default() })?;
    if let Some(note) = report.detected_note() {
        eprintln!("{note}");
    }
    let table = semtypes.map(conceptree::ontology::semtypes::read_cui_semtypes).transpose()?;
    let cuis: Vec<Vec<String>> = rows.iter().map(|r| r.cui_strings()).collect();
    let report = o.map_labels_with(cuis.iter().map(Vec::as_slice), table.as_ref());
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    } else {
        println!("{}: {} images", labels.display(), rows.len());
        print!("{report}");
    }
    Ok(())
}

pub fn ontology_dot(root: Option<&str>, level: Option<Level>, path: Option<&Path>, out: Option<&Path>) -> Result<(), Error> {
    Plan::new().input_opt("--ontology", path).file_opt("--out", out).check()?;
    let dot = load_ontology(path)?.to_dot(root, level)?;
    match out {
        None => print!("{dot}"),
        Some(out) => {
            conceptree::ontology::write_dot(&dot, out)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}

pub fn ontology_from_umls(rrf: &Path, labels: Option<&Path>, out: &Path) -> Result<(), Error> {
    Plan::new().input("--rrf", rrf).input_opt("--labels", labels).file("--out", out).check()?;
    let restrict = match labels {
        Some(l) => Some(read_labels(l, ParseOptions { allow_empty: true, ..Default::default() })?.0.iter().flat_map(|r| r.cui_strings()).collect::<BTreeSet<String>>()),
        None => None,
    };
    let o = Ontology::from_umls_rrf(rrf, restrict.as_ref())?;
    std::fs::write(out, o.to_tsv()).map_err(Error::write(out))?;
    println!("wrote {} concepts to {}", o.len(), out.display());
    Ok(())
}

pub fn data_stats(labels: &Path, format: LabelFormat, top: usize, min_count: usize, plot: Option<&Path>, ontology: Option<&Path>, json: bool) -> Result<(), Error> {
    if let Some(p) = plot {
        Plan::new().input("--labels", labels).input_opt("--ontology", ontology).file("--plot", &p.with_extension("svg")).file("--plot", &p.with_extension("png")).check()?;
    }
    let o = load_ontology(ontology)?;
    let (rows, report) = read_labels(labels, ParseOptions { format, allow_empty: true, ..Default::default() })?;
    if let Some(note) = report.detected_note() {
        eprintln!("{note}");
    }
    let describe = |c: &str| (o.get(c).map(|x| x.name.clone()), o.level_of(c).map(|l| l.to_string()));
    let stats = data::stats::dataset_stats(&rows, top, min_count, &describe);
    if json {
        println!("{}", serde_json::to_string_pretty(&stats).expect("stats serialise"));
    } else {
        println!("{}", labels.display());
        print!("{stats}");
    }
    if let Some(p) = plot {
        let (svg, png) = conceptree::report::figures::top_concepts(&stats, &format!("Top {} concepts of {}", stats.top.len(), labels.display()), p)?;
        eprintln!("wrote {} and {}", svg.display(), png.display());
    }
    Ok(())
}

pub fn data_ceiling(labels: &Path, format: LabelFormat, ks: &[usize], levels: &[Level], noise: conceptree::eval::ceiling::Noise, ontology: Option<&Path>, json: bool) -> Result<(), Error> {
    if ks.contains(&0) {
        return Err(Error::usage("--top-k 0: every K must be at least 1"));
    }
    let o = load_ontology(ontology)?;
    let (rows, report) = read_labels(labels, ParseOptions { format, allow_empty: true, ..Default::default() })?;
    if let Some(note) = report.detected_note() {
        eprintln!("{note}");
    }
    let c = conceptree::eval::ceiling::ceilings(&to_map(&rows), &o, levels, ks, noise);
    if json {
        println!("{}", serde_json::to_string_pretty(&c).expect("ceilings serialise"));
    } else {
        print!("{c}");
    }
    Ok(())
}

pub fn import_folders(root: &Path, out: &Path) -> Result<(), Error> {
    Plan::new().input("--root", root).folder("--out", out).check()?;
    let rows = data::stats::import_folders(root, out)?;
    println!("imported {} images into {}", rows.len(), out.display());
    Ok(())
}

pub fn export_folders(labels: &Path, images: &Path, out: &Path, top_k: usize) -> Result<(), Error> {
    Plan::new().input("--labels", labels).input("--images", images).folder("--out", out).check()?;
    let (rows, _) = read_labels(labels, ParseOptions { allow_empty: true, ..Default::default() })?;
    let n = data::stats::export_folders(&rows, images, out, top_k)?;
    println!("wrote {n} files under {}", out.display());
    Ok(())
}

/// `conceptree data cache`: decode and resize the images of one or more label files once.
pub fn data_cache(labels: &[PathBuf], images: &Path, size: u32, out: &Path, skip_bad: bool, force: bool) -> Result<(), Error> {
    conceptree::train::config::check_image_size(size)?;
    Plan::new().inputs("--labels", labels).input("--images", images).folder("--out", out).check()?;
    data::output::prepare(out, force)?;
    let (paths, skipped) = data::cache::images_of_label_files(labels, images, skip_bad)?;
    if !skipped.is_empty() {
        eprint!("{skipped}");
    }
    let t = std::time::Instant::now();
    let rep = data::cache::ImageCache::build(&paths, size, out, &Stderr::new())?;
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

/// The inputs every `experiment` reads, and its output folder.
fn experiment_plan(base: &TrainConfig, labels: &Path, images: &Path, groups: Option<&Path>, out: &Path) -> Plan {
    Plan::new()
        .input("--labels", labels)
        .input("--images", images)
        .input_opt("--groups", groups)
        .input_opt("--weights", base.weights.as_deref())
        .input_opt("--ontology", base.ontology.as_deref())
        .input_opt("--image-cache", base.image_cache.as_deref())
        .folder("--out", out)
}

pub fn experiment_paper(cfg: conceptree::experiment::ExperimentConfig) -> Result<(), Error> {
    experiment_plan(&cfg.base, &cfg.labels, &cfg.images, cfg.groups.as_deref(), &cfg.out).check()?;
    let ontology = load_ontology(cfg.base.ontology.as_deref())?;
    let results = conceptree::experiment::run_paper(&cfg, &ontology, &Stderr::new())?;
    print!("{}", conceptree::experiment::table4_markdown(&results, &cfg.base));
    println!("\nwrote {} (table3.*, figure1.svg, table4.md, table4.json, runs/)", cfg.out.display());
    Ok(())
}

pub fn experiment_compare(cfg: conceptree::experiment::compare::CompareConfig) -> Result<(), Error> {
    let test = cfg.test.as_ref();
    experiment_plan(&cfg.base, &cfg.labels, &cfg.images, cfg.groups.as_deref(), &cfg.out)
        .input_opt("--test-labels", test.map(|t| t.0.as_path()))
        .input_opt("--test-images", test.map(|t| t.1.as_path()))
        .check()?;
    let ontology = load_ontology(cfg.base.ontology.as_deref())?;
    let rows = conceptree::experiment::compare::run_compare(&cfg, &ontology, &Stderr::new())?;
    print!("{}", conceptree::experiment::compare::compare_markdown(&rows, &cfg));
    println!("\nwrote {} (compare.md, compare.json, compare.svg, runs/)", cfg.out.display());
    Ok(())
}

/// `conceptree analyse`'s arguments.
pub struct AnalyseCommand {
    pub gt: PathBuf,
    pub pred: PathBuf,
    pub out: PathBuf,
    pub ontology: Option<PathBuf>,
    pub scores: Option<PathBuf>,
    pub format: LabelFormat,
    pub allow_missing: bool,
    pub cfg: conceptree::report::analyse::AnalyseConfig,
}

/// `conceptree analyse`: reads and validates like [`evaluate`], then writes the error-analysis
/// report (`report.html`, `summary.md`, `analysis.json`, SVG plots) into `out`.
pub fn analyse(a: AnalyseCommand) -> Result<(), Error> {
    use conceptree::report::{analyse as an, html};
    a.cfg.validate()?;
    Plan::new()
        .input("--gt", &a.gt)
        .input("--pred", &a.pred)
        .input_opt("--images", a.cfg.images.as_deref())
        .input_opt("--scores", a.scores.as_deref())
        .input_opt("--ontology", a.ontology.as_deref())
        .folder("--out", &a.out)
        .check()?;
    let (gt_map, sub) = read_gt_and_submission(&a.gt, &a.pred, a.format, a.allow_missing)?;
    let onto = load_ontology(a.ontology.as_deref())?;
    let score_map = a.scores.as_deref().map(an::read_scores).transpose()?;
    let mut r = an::analyse(&gt_map, &sub.preds, &onto, score_map.as_ref(), &a.cfg)?;
    r.inputs.insert("ground truth".into(), a.gt.display().to_string());
    r.inputs.insert("predictions".into(), a.pred.display().to_string());
    if let Some(d) = &a.cfg.images {
        r.inputs.insert("images".into(), d.display().to_string());
    }
    if let Some(s) = &a.scores {
        r.inputs.insert("scores".into(), s.display().to_string());
    }
    let files = html::write_report(&r, &a.out)?;
    println!("ImageCLEF F1 {:.4} over {} images; {} exactly right", r.metrics.imageclef_f1, r.metrics.n_images, r.count(an::ErrorKind::Correct));
    let kinds: Vec<String> = r.error_counts.iter().filter(|k| k.kind != an::ErrorKind::Correct).map(|k| format!("{} {}", k.kind.as_str(), k.count)).collect();
    println!("errors: {}", kinds.join(", "));
    if let Some(c) = &r.threshold_curve {
        println!("best global threshold {:.2}: ImageCLEF F1 {:.4}", c.best_threshold, c.best_f1);
    }
    if r.missing_thumbnails > 0 {
        println!("{} sample image(s) without thumbnail", r.missing_thumbnails);
    }
    println!("wrote {} and {} ({})", files.markdown.display(), files.html.display(), a.out.display());
    Ok(())
}

/// `conceptree review serve`: prepares (or resumes) the review, serves it until Ctrl-C.
pub fn review_serve(mut cfg: conceptree::review::ServeConfig, token_file: Option<&Path>) -> Result<(), Error> {
    use conceptree::review;
    Plan::new()
        .inputs("--pred", &cfg.preds)
        .inputs("--explain", &cfg.explain)
        .input_opt("--gt", cfg.gt.as_deref())
        .input_opt("--images", cfg.images.as_deref())
        .input_opt("--ontology", cfg.ontology.as_deref())
        .input_opt("--synonyms", cfg.synonyms.as_deref())
        .input_opt("--token-file", token_file)
        .file("--db", &cfg.db)
        .check()?;
    if let Some(f) = token_file {
        cfg.token = Some(review::read_token_file(f)?);
    }
    let p = review::prepare(&cfg)?;
    for n in &p.notes {
        eprintln!("note: {n}");
    }
    let what = format!("{} review of {}", if p.created { "new" } else { "resumed" }, cfg.db.display());
    let blind = p.set.meta.blind.as_str();
    let served = review::server::serve(p, &cfg, std::sync::Arc::new(Stderr::new()), |r| {
        println!("{what}: {} image(s), {} model(s) shown blind ({blind}), reviewer '{}', {} done", r.images, r.models, cfg.reviewer, r.done);
        match &r.remote_url {
            Some(remote) => {
                println!("listening on all interfaces, port {}: from another machine, open {remote}", r.addr.port());
                println!("open {} (this machine)", r.url);
            }
            None => println!("open {}", r.url),
        }
        println!("Ctrl-C stops the server; every verdict shown as saved is already on disk");
    })?;
    println!("stopped: {} action(s) saved in this session, {} in all", served.actions, served.total);
    Ok(())
}

/// `conceptree review report`.
pub fn review_report(db: &Path, out: Option<&Path>, json: bool, opts: &conceptree::review::report::ReportOptions) -> Result<(), Error> {
    use conceptree::review::report;
    if let Some(out) = out {
        Plan::new().input("--db", db).input_opt("--images", opts.images.as_deref()).folder("--out", out).check()?;
    }
    let r = report::report_db(db, opts)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).expect("reports serialise"));
    } else {
        print!("{}", report::render_text(&r));
    }
    if let Some(out) = out {
        let f = report::write_report(&r, out, opts.max_images)?;
        eprintln!("wrote {} and {}", f.html.display(), f.json.display());
    }
    Ok(())
}

/// `conceptree review export`.
pub fn review_export(db: &Path, out: &Path, format: Option<conceptree::review::export::ExportFormat>) -> Result<(), Error> {
    use conceptree::review::export;
    Plan::new().input("--db", db).file("--out", out).check()?;
    let n = export::export(db, out, format.unwrap_or_else(|| export::ExportFormat::from_path(out)))?;
    println!("wrote {n} row(s) to {}", out.display());
    Ok(())
}
