//! Clinical review (`conceptree review`): a radiologist judges, image by image, the concepts that
//! one or more models predicted (correct / wrong / unsure), blind to which model said what, and
//! adds the terms they missed; the report turns those verdicts into clinical precision per level,
//! per concept and per model, agreement between reviewers and the paired difference between models.
//!
//! This file owns the review's inputs and their checks: [`ServeConfig`] (checked before any work),
//! reading the prediction, `--explain`, ground-truth and ontology files into a [`ReviewSet`]
//! ([`prepare`]: a new review is sampled and stored; an existing one is resumed after checking that
//! the files given are the ones it was made from) and [`ReviewError`], the errors of every file of
//! the module. The rest:
//!
//! | file | owns |
//! | --- | --- |
//! | `store.rs` | the SQLite database (WAL): schema, one transaction per verdict, idempotent requests |
//! | `sample.rs` | which images are reviewed and in which order; the blinded order of the models |
//! | `terms.rs` | the vocabulary searched for missing terms: ontology names, UMLS MRCONSO synonyms |
//! | `server.rs` | the web app: routes, token, host and body checks, clean shutdown |
//! | `report.rs` | clinical precision, Cohen's kappa, the paired bootstrap, the Table-5-style page |
//! | `export.rs` | every verdict and missing term as CSV or JSON |
//!
//! The serving rules (ARCHITECTURE.md, rule 10) are kept here: loopback by default and a token for any
//! other address; images reached only by their id in the review set; a verdict acknowledged only
//! after its transaction commits.
pub mod export;
pub mod model;
pub mod report;
pub mod sample;
pub mod server;
pub mod store;
pub mod terms;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::images::ImageDir;
use crate::data::labels::{parse_labels, LabelFormat, LabelRow, ParseOptions};
use crate::ontology::{Level, Ontology};
use crate::predict::ExplainRecord;

pub use sample::Strategy;
pub use store::Store;

/// Seed of the sample and of the blinded order when `--seed` is not given.
pub(crate) const DEFAULT_SEED: u64 = 42;
/// Reviewer name when `--reviewer` is not given.
pub const DEFAULT_REVIEWER: &str = "reviewer";
/// Shortest token accepted (characters).
pub(crate) const MIN_TOKEN_LEN: usize = 16;
/// Longest reviewer name (characters).
pub(crate) const MAX_REVIEWER_LEN: usize = 64;

pub use model::{BlindMode, ConceptInfo, Item, ModelInfo, ReviewError, ReviewMeta, ReviewSet, Verdict};

/// Everything `review serve` needs, checked by [`ServeConfig::check`] before any work.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The review database (created when missing).
    pub db: PathBuf,
    /// Folder of the images; default when resuming: the folder the review was made with.
    pub images: Option<PathBuf>,
    /// Prediction files (ImageCLEF 2019, 2020+ or ROCO layout), one per model.
    pub preds: Vec<PathBuf>,
    /// `predict --explain` files, one per prediction file in the same order (or none).
    pub explain: Vec<PathBuf>,
    /// Ground truth, shown only when the reviewer asks.
    pub gt: Option<PathBuf>,
    /// Ontology file for names and levels (default: the built-in one).
    pub ontology: Option<PathBuf>,
    /// UMLS MRCONSO.RRF (or its folder) for the synonyms searched for missing terms.
    pub synonyms: Option<PathBuf>,
    /// Name stored with every verdict.
    pub reviewer: String,
    /// Number of images to review (default: every image predicted by every model).
    pub sample: Option<usize>,
    /// Seed of the sample and of the blinded order (default [`DEFAULT_SEED`]).
    pub seed: Option<u64>,
    /// How the sample is drawn (default random).
    pub strategy: Option<Strategy>,
    /// How several models are shown (default sets).
    pub blind: Option<BlindMode>,
    /// Address to listen on ([`resolve_bind`] turns a host name into one).
    pub bind: IpAddr,
    /// The host name `bind` was resolved from, if one was given (accepted in the `Host` header).
    pub bind_name: Option<String>,
    /// Port (0: any free port).
    pub port: u16,
    /// Token every request must carry (required for a non-loopback address).
    pub token: Option<String>,
}

impl ServeConfig {
    /// A configuration with the defaults, for `db`.
    pub fn new(db: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            db: db.into(),
            images: None,
            preds: vec![],
            explain: vec![],
            gt: None,
            ontology: None,
            synonyms: None,
            reviewer: DEFAULT_REVIEWER.into(),
            sample: None,
            seed: None,
            strategy: None,
            blind: None,
            bind: IpAddr::from([127, 0, 0, 1]),
            bind_name: None,
            port: 0,
            token: None,
        }
    }

    /// Refuses options out of range or that cannot go together (bad input, exit code 2).
    pub fn check(&self) -> Result<(), ReviewError> {
        let opt = |option, message: String| Err(ReviewError::Option { option, message });
        if let Some(0) = self.sample {
            return opt("sample", "0: must be at least 1 (leave it out to review every image)".into());
        }
        if !self.explain.is_empty() && self.explain.len() != self.preds.len() {
            return opt("explain", format!("given {} time(s) for {} --pred file(s): give one per prediction file, in the same order", self.explain.len(), self.preds.len()));
        }
        check_reviewer(&self.reviewer)?;
        if let Some(t) = &self.token {
            check_token(t)?;
        }
        if !self.bind.is_loopback() && self.token.is_none() {
            let addr = self.bind_name.as_ref().map_or_else(|| self.bind.to_string(), |n| format!("{n} ({})", self.bind));
            return opt("bind", format!("{addr} is not a loopback address: anyone who can reach it could read the images and write verdicts; give --token (at least {MIN_TOKEN_LEN} characters), which every request must then carry"));
        }
        if self.db.is_dir() {
            return opt("db", format!("{} is a directory; name a database file", self.db.display()));
        }
        Ok(())
    }
}

/// The address `--bind` names: an IP address as it is, or a host name resolved (`localhost`), with
/// the name when it was one. A name with several addresses gives its first IPv4 one, else its
/// first (so `localhost` is 127.0.0.1 even where it also means ::1).
/// Whether a token is needed is decided on the address, not the name ([`ServeConfig::check`]).
pub fn resolve_bind(host: &str) -> Result<(IpAddr, Option<String>), ReviewError> {
    let host = host.trim();
    let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let bad = |message: String| ReviewError::Option { option: "bind", message };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '/' | ':' | '@' | '?' | '#')) {
        return Err(bad(format!("'{}' is neither an IP address nor a host name", crate::cui::excerpt(host, crate::cui::EXCERPT))));
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<IpAddr> = (host, 0u16)
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve host name '{}': {e}", crate::cui::excerpt(host, crate::cui::EXCERPT))))?
        .map(|a| a.ip())
        .collect();
    let ip = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| bad(format!("host name '{}' has no address", crate::cui::excerpt(host, crate::cui::EXCERPT))))?;
    Ok((ip, Some(host.to_string())))
}

/// A reviewer name: 1 to [`MAX_REVIEWER_LEN`] characters, no control characters, not blank.
pub(crate) fn check_reviewer(name: &str) -> Result<(), ReviewError> {
    let bad = |message: String| Err(ReviewError::Option { option: "reviewer", message });
    if name.trim().is_empty() {
        return bad("must not be empty".into());
    }
    if name.chars().count() > MAX_REVIEWER_LEN {
        return bad(format!("'{}': at most {MAX_REVIEWER_LEN} characters", crate::cui::excerpt(name, crate::cui::EXCERPT)));
    }
    if name.chars().any(char::is_control) || name != name.trim() {
        return bad("no control characters or leading/trailing spaces".into());
    }
    Ok(())
}

/// A token: at least [`MIN_TOKEN_LEN`] characters from `A-Z a-z 0-9 - . _ ~` (it travels in a URL
/// and a cookie unchanged).
pub(crate) fn check_token(token: &str) -> Result<(), ReviewError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
    if token.len() < MIN_TOKEN_LEN || !token.chars().all(ok_char) {
        return Err(ReviewError::Option {
            option: "token",
            message: format!("must be at least {MIN_TOKEN_LEN} characters from A-Z a-z 0-9 - . _ ~ (e.g. from `openssl rand -hex 16`)"),
        });
    }
    Ok(())
}

/// The token in `path` (its first line, trimmed), checked like `--token`.
pub fn read_token_file(path: &Path) -> Result<String, ReviewError> {
    let text = crate::text::read_text(path).map_err(ReviewError::read(path))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    check_token(&token)?;
    Ok(token)
}


/// A review ready to serve.
pub struct Prepared {
    pub set: ReviewSet,
    pub store: Store,
    /// Image file of every id of the review (looked up once through [`ImageDir`]).
    pub images: HashMap<String, PathBuf>,
    pub terms: terms::Terms,
    /// True when this call made the review; false when it resumed one.
    pub created: bool,
    /// Things the command should tell the user (left-out images, a changed ontology).
    pub notes: Vec<String>,
}

/// SHA-256 of `bytes`, as lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string()
}

/// A file's text (its bytes exactly, read through [`crate::text`]), and their SHA-256.
fn read_hashed(path: &Path) -> Result<(String, String), ReviewError> {
    let text = crate::text::read_text(path).map_err(|source| match crate::text::text_error(&source) {
        Some(t) => ReviewError::Input { path: path.to_path_buf(), line: t.line, message: t.problem.to_string() },
        None => ReviewError::Read { path: path.to_path_buf(), source },
    })?;
    let sha = sha256_hex(text.as_bytes());
    Ok((text, sha))
}

/// A label or prediction file, parsed by the project's label parser from the very bytes hashed.
fn read_label_file(path: &Path) -> Result<(Vec<LabelRow>, String), ReviewError> {
    let (text, sha) = read_hashed(path)?;
    let (rows, _) = parse_labels(&text, path, ParseOptions { format: LabelFormat::Auto, allow_empty: true, ..Default::default() })?;
    Ok((rows, sha))
}

/// Each row's CUIs as strings, by image id.
fn by_id(rows: Vec<LabelRow>) -> HashMap<String, BTreeSet<String>> {
    rows.into_iter().map(|r| (r.cui_set(), r.id)).map(|(cuis, id)| (id, cuis)).collect()
}

/// Per image, the probabilities of an `--explain` file (JSON lines of [`ExplainRecord`]), checked
/// against the prediction file it belongs to: an image in both must have the same predicted set.
fn read_explain(path: &Path, pred_path: &Path, preds: &HashMap<String, BTreeSet<String>>) -> Result<(HashMap<String, BTreeMap<String, f32>>, String), ReviewError> {
    let (text, sha) = read_hashed(path)?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: ExplainRecord = serde_json::from_str(line).map_err(|e| ReviewError::Input {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("not a `predict --explain` record: {}", crate::cui::excerpt(&e.to_string(), 120)),
        })?;
        if let Some(p) = preds.get(&r.id) {
            let theirs: BTreeSet<String> = r.predicted.iter().map(|c| c.to_ascii_uppercase()).collect();
            if &theirs != p {
                return Err(ReviewError::Mismatch {
                    path: path.to_path_buf(),
                    message: format!(
                        "line {}: image '{}' is predicted as {{{}}} here but {{{}}} in {}: this explain file belongs to another prediction file (give --explain in the order of --pred)",
                        i + 1,
                        crate::cui::excerpt(&r.id, crate::cui::EXCERPT),
                        theirs.iter().cloned().collect::<Vec<_>>().join(";"),
                        p.iter().cloned().collect::<Vec<_>>().join(";"),
                        pred_path.display()
                    ),
                });
            }
        }
        out.insert(r.id, r.scores.into_iter().map(|(c, p)| (c.to_ascii_uppercase(), p)).collect());
    }
    Ok((out, sha))
}

/// Unique report names from the files' stems (`flat`, `hier`; `flat-2` for a second `flat`).
fn model_labels(paths: &[PathBuf]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    paths
        .iter()
        .map(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
            let n = seen.entry(stem.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                stem
            } else {
                format!("{stem}-{n}")
            }
        })
        .collect()
}

fn load_ontology(path: Option<&Path>) -> Result<(Ontology, String), ReviewError> {
    Ok(match path {
        Some(p) => (Ontology::load(p)?, absolute(p)),
        None => (Ontology::builtin(), "built-in".into()),
    })
}

/// The stratum of an image: its ground-truth modality concepts (else the models' predicted ones).
fn stratum(onto: &Ontology, truth: &BTreeSet<String>, predicted: &[&BTreeSet<String>]) -> String {
    let on_modality = |s: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        let set: BTreeSet<String> = s.filter(|c| onto.level_of(c) == Some(Level::Modality)).cloned().collect();
        set.into_iter().collect()
    };
    let mut m = on_modality(&mut truth.iter());
    if truth.is_empty() {
        m = on_modality(&mut predicted.iter().flat_map(|s| s.iter()));
    }
    if m.is_empty() {
        "no modality".into()
    } else {
        m.join("+")
    }
}

/// Reads the inputs of a new review and draws its sample (nothing is written).
pub(crate) fn build_review(cfg: &ServeConfig, onto: &Ontology, ontology_source: &str) -> Result<(ReviewSet, Vec<String>), ReviewError> {
    let images_dir = cfg.images.as_deref().ok_or_else(|| ReviewError::NoReview { db: cfg.db.clone() })?;
    if cfg.preds.is_empty() {
        return Err(ReviewError::NoReview { db: cfg.db.clone() });
    }
    let strategy = cfg.strategy.unwrap_or(Strategy::Random);
    let seed = cfg.seed.unwrap_or(DEFAULT_SEED);
    let blind = cfg.blind.unwrap_or(BlindMode::Sets);
    if strategy == Strategy::Disagreement && cfg.preds.len() < 2 {
        return Err(ReviewError::Option { option: "strategy", message: "disagreement needs at least two --pred files".into() });
    }
    let mut notes = Vec::new();
    let labels = model_labels(&cfg.preds);
    let mut models = Vec::new();
    let mut preds: Vec<HashMap<String, BTreeSet<String>>> = Vec::new();
    let mut shas: HashMap<String, PathBuf> = HashMap::new();
    for (i, p) in cfg.preds.iter().enumerate() {
        let (rows, sha) = read_label_file(p)?;
        if let Some(first) = shas.insert(sha.clone(), p.clone()) {
            return Err(ReviewError::Mismatch { path: p.clone(), message: format!("has the same content as {}: give each model's predictions once", first.display()) });
        }
        preds.push(by_id(rows));
        models.push(ModelInfo { label: labels[i].clone(), path: absolute(p), sha256: sha, explain_path: None, explain_sha256: None });
    }
    let mut scores: Vec<HashMap<String, BTreeMap<String, f32>>> = vec![HashMap::new(); preds.len()];
    for (i, e) in cfg.explain.iter().enumerate() {
        let (s, sha) = read_explain(e, &cfg.preds[i], &preds[i])?;
        scores[i] = s;
        models[i].explain_path = Some(absolute(e));
        models[i].explain_sha256 = Some(sha);
    }
    let (truth, truth_sha) = match &cfg.gt {
        Some(g) => {
            let (rows, sha) = read_label_file(g)?;
            (by_id(rows), Some(sha))
        }
        None => (HashMap::new(), None),
    };

    // candidates: predicted by every model, sorted by id
    let mut ids: Vec<&String> = preds[0].keys().filter(|id| preds.iter().all(|p| p.contains_key(*id))).collect();
    ids.sort();
    let union: BTreeSet<&String> = preds.iter().flat_map(|p| p.keys()).collect();
    if union.len() > ids.len() {
        notes.push(format!("{} image(s) predicted by only some of the models are left out", union.len() - ids.len()));
    }
    if ids.is_empty() {
        return Err(ReviewError::Mismatch { path: cfg.preds[0].clone(), message: "no image is predicted by every --pred file".into() });
    }
    let dir = ImageDir::open(images_dir)?;
    let missing: Vec<&&String> = ids.iter().filter(|id| !matches!(dir.find(id), Ok(Some(_)))).collect();
    if let Some(first) = missing.first() {
        dir.find(first)?; // an ambiguous image is its own error
        let more = if missing.len() > 1 { format!("; {} more image(s) missing", missing.len() - 1) } else { String::new() };
        return Err(ReviewError::MissingImage { id: (**first).clone(), dir: images_dir.to_path_buf(), more });
    }
    if cfg.gt.is_some() {
        let without = ids.iter().filter(|id| !truth.contains_key(**id)).count();
        if without > 0 {
            notes.push(format!("{without} image(s) are not in the ground truth: they have none to show"));
        }
    }
    let empty = BTreeSet::new();
    let candidates: Vec<sample::Candidate> = ids
        .iter()
        .map(|id| {
            let sets: Vec<&BTreeSet<String>> = preds.iter().map(|p| &p[*id]).collect();
            sample::Candidate { stratum: stratum(onto, truth.get(*id).unwrap_or(&empty), &sets), disagreement: sample::disagreement(&sets) }
        })
        .collect();
    let n = cfg.sample.unwrap_or(candidates.len());
    if n > candidates.len() {
        notes.push(format!("--sample {n}: only {} image(s) are predicted by every model; all are reviewed", candidates.len()));
    }
    let chosen = sample::choose(&candidates, n, strategy, seed);
    let orders = sample::model_orders(chosen.len(), models.len(), seed);
    let mut concepts = BTreeMap::new();
    let mut items = Vec::new();
    for (position, (&c, shown)) in chosen.iter().zip(orders).enumerate() {
        let id = ids[c];
        let predicted: Vec<BTreeMap<String, Option<f32>>> =
            preds.iter().enumerate().map(|(m, p)| p[id].iter().map(|cui| (cui.clone(), scores[m].get(id).and_then(|s| s.get(cui)).copied())).collect()).collect();
        let truth = truth.get(id).cloned().unwrap_or_default();
        for cui in predicted.iter().flat_map(|m| m.keys()).chain(truth.iter()) {
            concepts.entry(cui.clone()).or_insert_with(|| ConceptInfo { name: onto.get(cui).map(|x| x.name.clone()), level: onto.level_of(cui) });
        }
        items.push(Item { position, id: id.clone(), shown, predicted, truth, stratum: candidates[c].stratum.clone() });
    }
    let meta = ReviewMeta {
        created: crate::run::dir::utc_now(),
        tool: format!("conceptree {}", env!("CARGO_PKG_VERSION")),
        strategy,
        seed,
        sample: cfg.sample,
        candidates: candidates.len(),
        blind,
        images_dir: absolute(images_dir),
        truth_path: cfg.gt.as_deref().map(absolute),
        truth_sha256: truth_sha,
        ontology: ontology_source.to_string(),
        ontology_hash: onto.content_hash(),
    };
    Ok((ReviewSet::new(meta, models, items, concepts), notes))
}

/// Checks that the options given describe the review stored in the database.
fn check_resume(cfg: &ServeConfig, set: &ReviewSet) -> Result<(), ReviewError> {
    let other = |message: String| Err(ReviewError::OtherReview { db: cfg.db.clone(), message: format!("{message}; start a new review with another --db, or leave the option out to resume this one") });
    if !cfg.preds.is_empty() {
        let stored: BTreeSet<&str> = set.models.iter().map(|m| m.sha256.as_str()).collect();
        let mut given = BTreeSet::new();
        for p in &cfg.preds {
            let (_, sha) = read_hashed(p)?;
            if !stored.contains(sha.as_str()) {
                return other(format!("holds a review of {} prediction file(s) ({}); {} is not one of them (its content differs)", set.models.len(), set.models.iter().map(|m| m.path.as_str()).collect::<Vec<_>>().join(", "), p.display()));
            }
            given.insert(sha);
        }
        if given.len() != stored.len() {
            return other(format!("holds a review of {} prediction file(s); {} given", stored.len(), given.len()));
        }
    }
    for e in &cfg.explain {
        let (_, sha) = read_hashed(e)?;
        if !set.models.iter().any(|m| m.explain_sha256.as_deref() == Some(sha.as_str())) {
            return other(format!("{} is not an --explain file this review was made with", e.display()));
        }
    }
    if let Some(g) = &cfg.gt {
        let (_, sha) = read_hashed(g)?;
        if set.meta.truth_sha256.as_deref() != Some(sha.as_str()) {
            return other(format!("was made {}; {} differs", set.meta.truth_path.as_deref().map_or("without ground truth".to_string(), |p| format!("with the ground truth {p}")), g.display()));
        }
    }
    let m = &set.meta;
    if cfg.sample.is_some() && cfg.sample != m.sample {
        return other(format!("was sampled with --sample {}", m.sample.map_or("(all)".to_string(), |n| n.to_string())));
    }
    if cfg.seed.is_some_and(|s| s != m.seed) {
        return other(format!("was sampled with --seed {}", m.seed));
    }
    if cfg.strategy.is_some_and(|s| s != m.strategy) {
        return other(format!("was sampled with --strategy {}", m.strategy.as_str()));
    }
    if cfg.blind.is_some_and(|b| b != m.blind) {
        return other(format!("shows the models with --blind {}", m.blind.as_str()));
    }
    Ok(())
}

/// Opens (or makes) the review of `cfg`: a database without a review gets one drawn from the
/// inputs, in one transaction; a database with one is resumed after checking the inputs given
/// against it. Every image of the review must have its file in the image folder.
pub fn prepare(cfg: &ServeConfig) -> Result<Prepared, ReviewError> {
    cfg.check()?;
    if cfg.images.is_none() && cfg.preds.is_empty() && !cfg.db.exists() {
        return Err(ReviewError::NoReview { db: cfg.db.clone() });
    }
    let (onto, onto_source) = load_ontology(cfg.ontology.as_deref())?;
    let mut store = Store::open(&cfg.db)?;
    let mut notes = Vec::new();
    let created = !store.has_review()?;
    let set = if created {
        let (set, n) = build_review(cfg, &onto, &onto_source)?;
        notes.extend(n);
        store.create_review(&set)?;
        set
    } else {
        let set = store.load()?;
        check_resume(cfg, &set)?;
        if set.meta.ontology_hash != onto.content_hash() {
            notes.push(format!("the ontology ({onto_source}) differs from the one the review was made with ({}): names and levels of the review stay as stored; search uses the new one", set.meta.ontology));
        }
        set
    };
    let dir_path = cfg.images.clone().unwrap_or_else(|| PathBuf::from(&set.meta.images_dir));
    let dir = ImageDir::open(&dir_path)?;
    let mut images = HashMap::new();
    let mut missing = Vec::new();
    for it in &set.items {
        match dir.find(&it.id)? {
            Some(p) => {
                images.insert(it.id.clone(), p.to_path_buf());
            }
            None => missing.push(it.id.clone()),
        }
    }
    if let Some(first) = missing.first() {
        let more = if missing.len() > 1 { format!("; {} more image(s) of the review missing", missing.len() - 1) } else { String::new() };
        return Err(ReviewError::MissingImage { id: first.clone(), dir: dir_path, more });
    }
    let synonyms = match &cfg.synonyms {
        Some(p) => Some(terms::read_mrconso(p, &|c| onto.contains(c))?),
        None => None,
    };
    let terms = terms::Terms::new(&onto, synonyms.as_ref());
    Ok(Prepared { set, store, images, terms, created, notes })
}

#[cfg(test)]
pub(crate) mod testdata {
    //! A small review on disk for the tests of this module's files.
    use super::*;

    pub const CT: &str = "C0040405";
    pub const MRI: &str = "C0024485";
    pub const CHEST: &str = "C0817096";
    pub const ABDOMEN: &str = "C0000726";
    pub const AXIAL: &str = "C0205131";
    pub const PNEUMONIA: &str = "C0032285";

    /// Six 8x8 grey PNGs `I0`..`I5`, two prediction files and a ground truth, in `dir`.
    pub fn files(dir: &Path) -> ServeConfig {
        let images = dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        for i in 0..6 {
            image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * 16 + y * 8 + i * 20) as u8])).save(images.join(format!("I{i}.png"))).unwrap();
        }
        let a = format!("I0\t{CT};{CHEST}\nI1\t{CT};{ABDOMEN}\nI2\t{MRI}\nI3\t{CT};{AXIAL}\nI4\t\nI5\t{MRI};{CHEST}\n");
        let b = format!("I0\t{CT};{CHEST};{AXIAL}\nI1\t{MRI};{ABDOMEN}\nI2\t{MRI};{PNEUMONIA}\nI3\t{CT}\nI4\t{CT}\nI5\t{MRI}\n");
        let gt = format!("I0\t{CT};{CHEST};{PNEUMONIA}\nI1\t{CT};{ABDOMEN}\nI2\t{MRI}\nI3\t{CT};{AXIAL}\nI4\t{CT}\nI5\t{MRI};{CHEST}\n");
        std::fs::write(dir.join("flat.csv"), a).unwrap();
        std::fs::write(dir.join("hier.csv"), b).unwrap();
        std::fs::write(dir.join("gt.csv"), gt).unwrap();
        let mut cfg = ServeConfig::new(dir.join("review.sqlite"));
        cfg.images = Some(images);
        cfg.preds = vec![dir.join("flat.csv"), dir.join("hier.csv")];
        cfg.gt = Some(dir.join("gt.csv"));
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;
    use crate::classify::Classify;

    #[test]
    fn bind_takes_addresses_and_host_names() {
        assert_eq!(resolve_bind("127.0.0.1").unwrap(), (IpAddr::from([127, 0, 0, 1]), None));
        assert_eq!(resolve_bind("0.0.0.0").unwrap(), (IpAddr::from([0, 0, 0, 0]), None));
        assert_eq!(resolve_bind("[::1]").unwrap(), (std::net::Ipv6Addr::LOCALHOST.into(), None));
        let (ip, name) = resolve_bind("localhost").unwrap();
        assert!(ip.is_loopback() && ip.is_ipv4() && name.as_deref() == Some("localhost"), "{ip} {name:?}");
        for bad in ["", "a b", "http://x", "host:80"] {
            let e = resolve_bind(bad).unwrap_err();
            assert!(e.to_string().contains("--bind") && e.is_bad_input(), "{bad}: {e}");
        }
        let e = resolve_bind("no-such-host.invalid").unwrap_err();
        assert!(e.to_string().contains("cannot resolve host name 'no-such-host.invalid'") && e.is_bad_input(), "{e}");
        // a name is judged by its address: loopback needs no token, anything else does (and says both)
        let tmp = tempfile::tempdir().unwrap();
        let mut c = files(tmp.path());
        (c.bind, c.bind_name) = (ip, name);
        assert!(c.check().is_ok());
        (c.bind, c.bind_name) = (IpAddr::from([10, 1, 2, 3]), Some("ws-7".into()));
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("ws-7 (10.1.2.3) is not a loopback address") && e.contains("--token"), "{e}");
    }

    #[test]
    fn options_are_checked_before_any_work() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = files(tmp.path());
        assert!(c.check().is_ok());
        c.sample = Some(0);
        assert!(c.check().unwrap_err().to_string().contains("--sample"));
        c.sample = None;
        c.bind = "0.0.0.0".parse().unwrap();
        let e = c.check().unwrap_err();
        assert!(e.to_string().contains("--token") && e.is_bad_input(), "{e}");
        c.token = Some("short".into());
        assert!(c.check().unwrap_err().to_string().contains("at least 16"));
        c.token = Some("0123456789abcdef0123".into());
        assert!(c.check().is_ok());
        c.explain = vec![tmp.path().join("x.jsonl")];
        assert!(c.check().unwrap_err().to_string().contains("--explain"));
        c.explain.clear();
        for bad in ["", " bob", "a\u{7}b", &"x".repeat(65)] {
            c.reviewer = bad.to_string();
            assert!(c.check().is_err(), "{bad:?}");
        }
        c.reviewer = "Dr. Émile Roux".into();
        assert!(c.check().is_ok());
        c.db = tmp.path().to_path_buf();
        assert!(c.check().unwrap_err().to_string().contains("directory"));
    }

    #[test]
    fn a_review_is_made_once_and_resumed_with_the_same_inputs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = files(tmp.path());
        cfg.sample = Some(4);
        let p = prepare(&cfg).unwrap();
        assert!(p.created);
        assert_eq!(p.set.items.len(), 4);
        assert_eq!(p.set.models.iter().map(|m| m.label.as_str()).collect::<Vec<_>>(), ["flat", "hier"]);
        assert_eq!(p.set.models[0].sha256, sha256_hex(&std::fs::read(tmp.path().join("flat.csv")).unwrap()));
        assert_eq!(p.set.meta.seed, DEFAULT_SEED);
        let first = p.set.clone();
        drop(p);
        // resumed with nothing but the database, and with the same files in another order
        let bare = ServeConfig { images: None, preds: vec![], gt: None, sample: None, ..cfg.clone() };
        assert_eq!(prepare(&bare).unwrap().set, first);
        let swapped = ServeConfig { preds: vec![cfg.preds[1].clone(), cfg.preds[0].clone()], ..cfg.clone() };
        let again = prepare(&swapped).unwrap();
        assert!(!again.created);
        assert_eq!(again.set, first);
        drop(again);
        // other options or files are refused, naming what differs
        let e = prepare(&ServeConfig { seed: Some(7), ..cfg.clone() }).err().unwrap();
        assert!(e.to_string().contains("--seed 42") && e.is_bad_input(), "{e}");
        std::fs::write(tmp.path().join("other.csv"), "I0\tC0040405\n").unwrap();
        let e = prepare(&ServeConfig { preds: vec![cfg.preds[0].clone(), tmp.path().join("other.csv")], ..cfg.clone() }).err().unwrap();
        assert!(e.to_string().contains("other.csv"), "{e}");
        let e = prepare(&ServeConfig { blind: Some(BlindMode::Union), ..cfg.clone() }).err().unwrap();
        assert!(e.to_string().contains("--blind sets"), "{e}");
    }

    #[test]
    fn inputs_that_do_not_fit_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = files(tmp.path());
        // the same file twice
        let twice = ServeConfig { preds: vec![cfg.preds[0].clone(), cfg.preds[0].clone()], ..cfg.clone() };
        assert!(prepare(&twice).err().unwrap().to_string().contains("same content"));
        // an image without a file
        std::fs::remove_file(tmp.path().join("images/I3.png")).unwrap();
        let e = prepare(&ServeConfig { db: tmp.path().join("b.sqlite"), ..cfg.clone() }).err().unwrap();
        assert!(matches!(e, ReviewError::MissingImage { ref id, .. } if id == "I3") && e.is_bad_input(), "{e}");
        // no review and nothing to make one from
        let e = prepare(&ServeConfig::new(tmp.path().join("c.sqlite"))).err().unwrap();
        assert!(matches!(e, ReviewError::NoReview { .. }), "{e}");
        // a malformed prediction file names its line
        std::fs::write(tmp.path().join("bad.csv"), "I0\tC0040405\nI1\tnotacui\n").unwrap();
        let e = prepare(&ServeConfig { db: tmp.path().join("d.sqlite"), preds: vec![tmp.path().join("bad.csv")], ..cfg.clone() }).err().unwrap();
        assert!(e.to_string().contains("bad.csv:2") && e.is_bad_input(), "{e}");
        // disagreement needs two models
        let e = prepare(&ServeConfig { db: tmp.path().join("e.sqlite"), preds: vec![cfg.preds[0].clone()], strategy: Some(Strategy::Disagreement), ..cfg.clone() }).err().unwrap();
        assert!(e.to_string().contains("--strategy"), "{e}");
    }

    #[test]
    fn explain_scores_are_stored_and_checked_against_their_prediction_file() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = files(tmp.path());
        let rec = |id: &str, predicted: &[&str], scores: &[(&str, f32)]| {
            let r = ExplainRecord {
                id: id.into(),
                predicted: predicted.iter().map(|s| s.to_string()).collect(),
                path: vec![],
                scores: scores.iter().map(|(c, p)| (c.to_string(), *p)).collect(),
                decisions: vec![],
            };
            serde_json::to_string(&r).unwrap()
        };
        let ea = tmp.path().join("flat.jsonl");
        std::fs::write(&ea, format!("{}\n{}\n", rec("I0", &[CT, CHEST], &[(CT, 0.9), (CHEST, 0.75), (MRI, 0.1)]), rec("I2", &[MRI], &[(MRI, 0.8)]))).unwrap();
        let eb = tmp.path().join("hier.jsonl");
        std::fs::write(&eb, rec("I3", &[CT], &[(CT, 0.6)]) + "\n").unwrap();
        let p = prepare(&ServeConfig { explain: vec![ea.clone(), eb.clone()], ..cfg.clone() }).unwrap();
        let i0 = p.set.item("I0").unwrap();
        assert_eq!(i0.predicted[0][CHEST], Some(0.75));
        assert_eq!(i0.predicted[1][AXIAL], None, "no record for this image in the second file");
        // swapped: the records disagree with the prediction files
        let e = prepare(&ServeConfig { db: tmp.path().join("x.sqlite"), explain: vec![eb, ea], ..cfg.clone() }).err().unwrap();
        assert!(e.to_string().contains("belongs to another prediction file") && e.is_bad_input(), "{e}");
        std::fs::write(tmp.path().join("junk.jsonl"), "{\"id\": 3}\n").unwrap();
        let e = prepare(&ServeConfig { db: tmp.path().join("y.sqlite"), explain: vec![tmp.path().join("junk.jsonl"), tmp.path().join("junk.jsonl")], ..cfg }).err().unwrap();
        assert!(e.to_string().contains("junk.jsonl:1"), "{e}");
    }
}
