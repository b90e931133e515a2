//! The review database: one SQLite file (WAL journal, `synchronous=FULL`, foreign keys on) that
//! holds a review's inputs (models by file hash, the sample with its seed, the blinded order, the
//! predictions and ground truth, the concepts' names and levels) and everything reviewers did.
//!
//! Every reviewer action ([`Action`]) is one `BEGIN IMMEDIATE` ... `COMMIT` transaction that also
//! appends to the `events` log; [`Store::apply`] returns only after the commit, so whatever it
//! acknowledges survives a kill -9 (and, with `synchronous=FULL`, a power cut). Each action
//! carries a request id, unique in the log: a retried request is answered from the log and
//! changes nothing, so a client that resends after a lost answer duplicates nothing.
//!
//! Tables: `meta` (key/value: schema version, how the review was made), `models`, `images` (review
//! order, blinded order, stratum), `concepts`, `image_concepts` (what is judged: the union of the
//! models' concepts per image), `predictions`, `truth`; per reviewer: `verdicts` (the current
//! verdict per image and concept), `missing` (terms the reviewer added), `done`, `reveals` (ground
//! truth shown); and `events`, the append-only log of every acknowledged action.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::model::{BlindMode, ConceptInfo, Item, ModelInfo, ReviewError, ReviewMeta, ReviewSet, Verdict};
use super::sample::Strategy;
use crate::ontology::Level;

/// Version of the schema below; a database of another version is refused.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE models (
    model INTEGER PRIMARY KEY,
    label TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    explain_path TEXT,
    explain_sha256 TEXT
) STRICT;
CREATE TABLE images (
    image_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    shown TEXT NOT NULL,
    stratum TEXT NOT NULL
) STRICT;
CREATE TABLE concepts (cui TEXT PRIMARY KEY, name TEXT, level TEXT) STRICT;
CREATE TABLE image_concepts (
    image_id TEXT NOT NULL REFERENCES images,
    cui TEXT NOT NULL REFERENCES concepts,
    PRIMARY KEY (image_id, cui)
) STRICT;
CREATE TABLE predictions (
    image_id TEXT NOT NULL,
    model INTEGER NOT NULL REFERENCES models,
    cui TEXT NOT NULL,
    score REAL,
    PRIMARY KEY (image_id, model, cui),
    FOREIGN KEY (image_id, cui) REFERENCES image_concepts
) STRICT;
CREATE TABLE truth (
    image_id TEXT NOT NULL REFERENCES images,
    cui TEXT NOT NULL REFERENCES concepts,
    PRIMARY KEY (image_id, cui)
) STRICT;
CREATE TABLE verdicts (
    reviewer TEXT NOT NULL,
    image_id TEXT NOT NULL,
    cui TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('correct', 'wrong', 'unsure')),
    at TEXT NOT NULL,
    PRIMARY KEY (reviewer, image_id, cui),
    FOREIGN KEY (image_id, cui) REFERENCES image_concepts
) STRICT;
CREATE TABLE missing (
    term INTEGER PRIMARY KEY,
    reviewer TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images,
    cui TEXT,
    name TEXT NOT NULL,
    level TEXT,
    at TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX missing_cui ON missing (reviewer, image_id, cui) WHERE cui IS NOT NULL;
CREATE UNIQUE INDEX missing_text ON missing (reviewer, image_id, lower(name)) WHERE cui IS NULL;
CREATE TABLE done (
    reviewer TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images,
    at TEXT NOT NULL,
    PRIMARY KEY (reviewer, image_id)
) STRICT;
CREATE TABLE reveals (
    reviewer TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images,
    at TEXT NOT NULL,
    PRIMARY KEY (reviewer, image_id)
) STRICT;
CREATE TABLE events (
    event INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    reviewer TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images,
    kind TEXT NOT NULL,
    cui TEXT,
    value TEXT,
    term INTEGER,
    at TEXT NOT NULL
) STRICT;
";

/// What a reviewer does; each is one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// Set (or, with `None`, clear) the verdict on a predicted concept.
    Verdict { cui: String, verdict: Option<Verdict> },
    /// Add a missing term: a concept (`cui`) with its name and level, or free text (`cui: None`).
    AddMissing { cui: Option<String>, name: String, level: Option<Level> },
    /// Remove one of the reviewer's missing terms.
    RemoveMissing { term: i64 },
    /// The reviewer is done with the image.
    Done,
    /// The ground truth was shown.
    ShowTruth,
}

impl ActionKind {
    fn kind(&self) -> &'static str {
        match self {
            ActionKind::Verdict { .. } => "verdict",
            ActionKind::AddMissing { .. } => "add_missing",
            ActionKind::RemoveMissing { .. } => "remove_missing",
            ActionKind::Done => "done",
            ActionKind::ShowTruth => "show_truth",
        }
    }
    /// (cui, value, term) as logged.
    fn logged(&self) -> (Option<String>, Option<String>, Option<i64>) {
        match self {
            ActionKind::Verdict { cui, verdict } => (Some(cui.clone()), Some(verdict.map_or("clear", |v| v.as_str()).to_string()), None),
            ActionKind::AddMissing { cui, name, .. } => (cui.clone(), Some(name.clone()), None),
            ActionKind::RemoveMissing { term } => (None, None, Some(*term)),
            ActionKind::Done | ActionKind::ShowTruth => (None, None, None),
        }
    }
}

/// One reviewer action on one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Unique per action: a request sent again with the same id is not applied twice.
    pub request_id: String,
    pub reviewer: String,
    pub image: String,
    pub kind: ActionKind,
}

/// The answer to an action, given after its transaction committed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ack {
    /// Its number in the event log.
    pub event: i64,
    /// True when the request id had been applied before (nothing changed now).
    pub duplicate: bool,
    /// The missing term added (or already there).
    pub term: Option<i64>,
    pub at: String,
}

/// A current verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictRow {
    pub reviewer: String,
    pub image: String,
    pub cui: String,
    pub verdict: Verdict,
    pub at: String,
}

/// A term a reviewer said the models missed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingTerm {
    pub term: i64,
    pub reviewer: String,
    pub image: String,
    /// The concept, or `None` for free text.
    pub cui: Option<String>,
    pub name: String,
    pub level: Option<Level>,
    pub at: String,
}

/// One reviewer's state on one image.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub(crate) struct ImageState {
    pub verdicts: BTreeMap<String, Verdict>,
    pub missing: Vec<MissingTerm>,
    pub done: bool,
    pub truth_shown: bool,
}

/// A reviewer's progress: images done, and the first image (review order) not done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub done: usize,
    pub next: Option<usize>,
}

/// A (reviewer, image) pair with its time (done marks, ground-truth reveals).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    pub reviewer: String,
    pub image: String,
    pub at: String,
}

/// The review database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// A request id for an action the server starts itself (unique in this process and across runs).
pub(crate) fn server_request_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("srv-{nanos:x}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

impl Store {
    /// Opens `path`, making an empty review database when the file does not exist.
    pub fn open(path: &Path) -> Result<Store, ReviewError> {
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)
    }

    /// Opens an existing review database (for the report and export); a missing file is an error.
    pub(crate) fn open_existing(path: &Path) -> Result<Store, ReviewError> {
        if !path.is_file() {
            return Err(ReviewError::Read { path: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such review database") });
        }
        let s = Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        if !s.has_review()? {
            return Err(ReviewError::NotADatabase { db: path.to_path_buf(), message: "it holds no review yet".into() });
        }
        Ok(s)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Store, ReviewError> {
        if path.is_dir() {
            return Err(ReviewError::Option { option: "db", message: format!("{} is a directory; name a database file", path.display()) });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(ReviewError::Write { path: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("folder {} does not exist", parent.display())) });
            }
        }
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(|e| Self::open_error(path, e))?;
        let mut s = Store { conn, path: path.to_path_buf() };
        s.conn.busy_timeout(Duration::from_secs(30)).map_err(|e| s.db(e))?;
        let mode: String = s.conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| Self::open_error(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(ReviewError::NotADatabase { db: path.to_path_buf(), message: format!("its journal cannot be switched to WAL (it stays {mode})") });
        }
        s.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| s.db(e))?;
        s.conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| s.db(e))?;
        s.init_schema()?;
        Ok(s)
    }

    fn open_error(path: &Path, e: rusqlite::Error) -> ReviewError {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => ReviewError::NotADatabase { db: path.to_path_buf(), message: "the file is not an SQLite database".into() },
            Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) | Some(ErrorCode::ReadOnly) => {
                ReviewError::Write { path: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()) }
            }
            _ => ReviewError::Db { db: path.to_path_buf(), source: e },
        }
    }

    fn db(&self, source: rusqlite::Error) -> ReviewError {
        ReviewError::Db { db: self.path.clone(), source }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init_schema(&mut self) -> Result<(), ReviewError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| Self::open_error(&self.path, e))?;
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)).map_err(|e| Self::open_error(&self.path, e))?;
        if tables == 0 {
            tx.execute_batch(SCHEMA).map_err(|source| ReviewError::Db { db: self.path.clone(), source })?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('schema', ?1)", [SCHEMA_VERSION.to_string()]).map_err(|source| ReviewError::Db { db: self.path.clone(), source })?;
            tx.commit().map_err(|source| ReviewError::Db { db: self.path.clone(), source })?;
            return Ok(());
        }
        let version: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))
            .optional()
            .map_err(|_| ReviewError::NotADatabase { db: self.path.clone(), message: "it is an SQLite database with other tables".into() })?;
        match version {
            Some(v) if v == SCHEMA_VERSION.to_string() => Ok(()),
            Some(v) => Err(ReviewError::NotADatabase { db: self.path.clone(), message: format!("its schema version is {v}; this conceptree reads version {SCHEMA_VERSION}") }),
            None => Err(ReviewError::NotADatabase { db: self.path.clone(), message: "it is an SQLite database with other tables".into() }),
        }
    }

    /// Whether a review has been stored.
    pub(crate) fn has_review(&self) -> Result<bool, ReviewError> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM models", [], |r| r.get(0)).map_err(|e| self.db(e))?;
        Ok(n > 0)
    }

    /// Stores a new review (inputs, sample, blinded order), all in one transaction.
    pub(crate) fn create_review(&mut self, set: &ReviewSet) -> Result<(), ReviewError> {
        let path = self.path.clone();
        let db = |source| ReviewError::Db { db: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let n: i64 = tx.query_row("SELECT count(*) FROM models", [], |r| r.get(0)).map_err(db)?;
        if n > 0 {
            return Err(ReviewError::OtherReview { db: path.clone(), message: "another process stored a review in it meanwhile".into() });
        }
        let m = &set.meta;
        let meta: Vec<(&str, String)> = vec![
            ("created", m.created.clone()),
            ("tool", m.tool.clone()),
            ("strategy", m.strategy.as_str().into()),
            ("seed", m.seed.to_string()),
            ("sample", m.sample.map(|n| n.to_string()).unwrap_or_default()),
            ("candidates", m.candidates.to_string()),
            ("blind", m.blind.as_str().into()),
            ("images_dir", m.images_dir.clone()),
            ("truth_path", m.truth_path.clone().unwrap_or_default()),
            ("truth_sha256", m.truth_sha256.clone().unwrap_or_default()),
            ("ontology", m.ontology.clone()),
            ("ontology_hash", m.ontology_hash.clone()),
        ];
        for (k, v) in meta {
            tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", params![k, v]).map_err(db)?;
        }
        for (i, mo) in set.models.iter().enumerate() {
            tx.execute(
                "INSERT INTO models (model, label, path, sha256, explain_path, explain_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![i as i64, mo.label, mo.path, mo.sha256, mo.explain_path, mo.explain_sha256],
            )
            .map_err(db)?;
        }
        for (cui, c) in &set.concepts {
            tx.execute("INSERT INTO concepts (cui, name, level) VALUES (?1, ?2, ?3)", params![cui, c.name, c.level.map(|l| l.as_str())]).map_err(db)?;
        }
        for it in &set.items {
            let shown = it.shown.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(",");
            tx.execute("INSERT INTO images (image_id, position, shown, stratum) VALUES (?1, ?2, ?3, ?4)", params![it.id, it.position as i64, shown, it.stratum]).map_err(db)?;
            for cui in it.concepts() {
                tx.execute("INSERT INTO image_concepts (image_id, cui) VALUES (?1, ?2)", params![it.id, cui]).map_err(db)?;
            }
            for (m, p) in it.predicted.iter().enumerate() {
                for (cui, score) in p {
                    tx.execute("INSERT INTO predictions (image_id, model, cui, score) VALUES (?1, ?2, ?3, ?4)", params![it.id, m as i64, cui, score.map(f64::from)]).map_err(db)?;
                }
            }
            for cui in &it.truth {
                tx.execute("INSERT INTO truth (image_id, cui) VALUES (?1, ?2)", params![it.id, cui]).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn meta_map(&self) -> Result<BTreeMap<String, String>, ReviewError> {
        let mut st = self.conn.prepare("SELECT key, value FROM meta").map_err(|e| self.db(e))?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn corrupt(&self, what: String) -> ReviewError {
        ReviewError::NotADatabase { db: self.path.clone(), message: format!("its review is damaged: {what}") }
    }

    /// The stored review.
    pub fn load(&self) -> Result<ReviewSet, ReviewError> {
        let kv = self.meta_map()?;
        let get = |k: &str| kv.get(k).cloned().ok_or_else(|| self.corrupt(format!("no '{k}' in meta")));
        let opt = |k: &str| kv.get(k).filter(|v| !v.is_empty()).cloned();
        let meta = ReviewMeta {
            created: get("created")?,
            tool: get("tool")?,
            strategy: Strategy::parse(&get("strategy")?).ok_or_else(|| self.corrupt("strategy".into()))?,
            seed: get("seed")?.parse().map_err(|_| self.corrupt("seed".into()))?,
            sample: opt("sample").map(|s| s.parse()).transpose().map_err(|_| self.corrupt("sample".into()))?,
            candidates: get("candidates")?.parse().map_err(|_| self.corrupt("candidates".into()))?,
            blind: BlindMode::parse(&get("blind")?).ok_or_else(|| self.corrupt("blind".into()))?,
            images_dir: get("images_dir")?,
            truth_path: opt("truth_path"),
            truth_sha256: opt("truth_sha256"),
            ontology: get("ontology")?,
            ontology_hash: get("ontology_hash")?,
        };
        let q = |e| self.db(e);
        let mut st = self.conn.prepare("SELECT model, label, path, sha256, explain_path, explain_sha256 FROM models ORDER BY model").map_err(q)?;
        let models: Vec<ModelInfo> = st
            .query_map([], |r| Ok(ModelInfo { label: r.get(1)?, path: r.get(2)?, sha256: r.get(3)?, explain_path: r.get(4)?, explain_sha256: r.get(5)? }))
            .map_err(q)?
            .collect::<Result<_, _>>()
            .map_err(q)?;
        let n_models = models.len();
        let mut st = self.conn.prepare("SELECT cui, name, level FROM concepts").map_err(q)?;
        let mut concepts = BTreeMap::new();
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?))).map_err(q)? {
            let (cui, name, level) = row.map_err(q)?;
            let level = level.map(|l| Level::from_str(&l)).transpose().map_err(|e| self.corrupt(e.to_string()))?;
            concepts.insert(cui, ConceptInfo { name, level });
        }
        let mut st = self.conn.prepare("SELECT image_id, position, shown, stratum FROM images ORDER BY position").map_err(q)?;
        let mut items = Vec::new();
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))).map_err(q)? {
            let (id, position, shown, stratum) = row.map_err(q)?;
            if position != items.len() as i64 {
                return Err(self.corrupt(format!("image positions are not 0..N (image '{id}' at {position})")));
            }
            let shown: Vec<usize> = shown.split(',').filter(|s| !s.is_empty()).map(|s| s.parse::<usize>()).collect::<Result<_, _>>().map_err(|_| self.corrupt(format!("blinded order of '{id}'")))?;
            if shown.iter().copied().collect::<BTreeSet<_>>() != (0..n_models).collect() {
                return Err(self.corrupt(format!("blinded order of '{id}' is not a permutation of the models")));
            }
            items.push(Item { position: position as usize, id, shown, predicted: vec![BTreeMap::new(); n_models], truth: BTreeSet::new(), stratum });
        }
        let index: std::collections::HashMap<String, usize> = items.iter().map(|it| (it.id.clone(), it.position)).collect();
        let mut st = self.conn.prepare("SELECT image_id, model, cui, score FROM predictions").map_err(q)?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<f64>>(3)?))).map_err(q)? {
            let (id, m, cui, score) = row.map_err(q)?;
            let i = *index.get(&id).ok_or_else(|| self.corrupt(format!("prediction for unknown image '{id}'")))?;
            let m = usize::try_from(m).ok().filter(|m| *m < n_models).ok_or_else(|| self.corrupt(format!("prediction of unknown model {m}")))?;
            items[i].predicted[m].insert(cui, score.map(|s| s as f32));
        }
        let mut st = self.conn.prepare("SELECT image_id, cui FROM truth").map_err(q)?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(q)? {
            let (id, cui) = row.map_err(q)?;
            let i = *index.get(&id).ok_or_else(|| self.corrupt(format!("ground truth for unknown image '{id}'")))?;
            items[i].truth.insert(cui);
        }
        Ok(ReviewSet::new(meta, models, items, concepts))
    }

    /// Applies one action in one transaction and answers after the commit.
    pub fn apply(&mut self, a: &Action) -> Result<Ack, ReviewError> {
        let path = self.path.clone();
        let db = |source| ReviewError::Db { db: path.clone(), source };
        let (cui, value, term) = a.kind.logged();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        type Logged = (i64, String, String, String, Option<String>, Option<String>, Option<i64>, String);
        let before: Option<Logged> = tx
            .query_row("SELECT event, reviewer, image_id, kind, cui, value, term, at FROM events WHERE request_id = ?1", [&a.request_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })
            .optional()
            .map_err(db)?;
        if let Some((event, reviewer, image, kind, l_cui, l_value, l_term, at)) = before {
            let same = reviewer == a.reviewer && image == a.image && kind == a.kind.kind() && l_cui == cui && l_value == value && (matches!(a.kind, ActionKind::AddMissing { .. }) || l_term == term);
            if !same {
                return Err(ReviewError::ReusedRequest { request_id: crate::cui::excerpt(&a.request_id, crate::cui::EXCERPT) });
            }
            return Ok(Ack { event, duplicate: true, term: l_term, at });
        }
        let known: bool = tx.query_row("SELECT count(*) FROM images WHERE image_id = ?1", [&a.image], |r| r.get::<_, i64>(0)).map_err(db)? > 0;
        if !known {
            return Err(ReviewError::UnknownImage { id: crate::cui::excerpt(&a.image, crate::cui::EXCERPT) });
        }
        let at = crate::run::dir::utc_now();
        let mut term_out = None;
        match &a.kind {
            ActionKind::Verdict { cui, verdict } => {
                let judged: bool = tx.query_row("SELECT count(*) FROM image_concepts WHERE image_id = ?1 AND cui = ?2", params![a.image, cui], |r| r.get::<_, i64>(0)).map_err(db)? > 0;
                if !judged {
                    return Err(ReviewError::NotPredicted { image: a.image.clone(), cui: crate::cui::excerpt(cui, crate::cui::EXCERPT) });
                }
                match verdict {
                    Some(v) => tx
                        .execute(
                            "INSERT INTO verdicts (reviewer, image_id, cui, verdict, at) VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT (reviewer, image_id, cui) DO UPDATE SET verdict = excluded.verdict, at = excluded.at",
                            params![a.reviewer, a.image, cui, v.as_str(), at],
                        )
                        .map_err(db)?,
                    None => tx.execute("DELETE FROM verdicts WHERE reviewer = ?1 AND image_id = ?2 AND cui = ?3", params![a.reviewer, a.image, cui]).map_err(db)?,
                };
            }
            ActionKind::AddMissing { cui, name, level } => {
                let existing: Option<i64> = match cui {
                    Some(c) => tx.query_row("SELECT term FROM missing WHERE reviewer = ?1 AND image_id = ?2 AND cui = ?3", params![a.reviewer, a.image, c], |r| r.get(0)),
                    None => tx.query_row("SELECT term FROM missing WHERE reviewer = ?1 AND image_id = ?2 AND cui IS NULL AND lower(name) = lower(?3)", params![a.reviewer, a.image, name], |r| r.get(0)),
                }
                .optional()
                .map_err(db)?;
                term_out = Some(match existing {
                    Some(t) => t,
                    None => {
                        tx.execute("INSERT INTO missing (reviewer, image_id, cui, name, level, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", params![a.reviewer, a.image, cui, name, level.map(|l| l.as_str()), at]).map_err(db)?;
                        tx.last_insert_rowid()
                    }
                });
            }
            ActionKind::RemoveMissing { term } => {
                let n = tx.execute("DELETE FROM missing WHERE term = ?1 AND reviewer = ?2 AND image_id = ?3", params![term, a.reviewer, a.image]).map_err(db)?;
                if n == 0 {
                    return Err(ReviewError::UnknownTerm { image: a.image.clone(), term: *term });
                }
                term_out = Some(*term);
            }
            ActionKind::Done => {
                tx.execute("INSERT OR IGNORE INTO done (reviewer, image_id, at) VALUES (?1, ?2, ?3)", params![a.reviewer, a.image, at]).map_err(db)?;
            }
            ActionKind::ShowTruth => {
                tx.execute("INSERT OR IGNORE INTO reveals (reviewer, image_id, at) VALUES (?1, ?2, ?3)", params![a.reviewer, a.image, at]).map_err(db)?;
            }
        }
        tx.execute(
            "INSERT INTO events (request_id, reviewer, image_id, kind, cui, value, term, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![a.request_id, a.reviewer, a.image, a.kind.kind(), cui, value, term_out.or(term), at],
        )
        .map_err(db)?;
        let event = tx.last_insert_rowid();
        tx.commit().map_err(db)?;
        Ok(Ack { event, duplicate: false, term: term_out, at })
    }

    /// `reviewer`'s verdicts, missing terms and marks on `image`.
    pub(crate) fn image_state(&self, reviewer: &str, image: &str) -> Result<ImageState, ReviewError> {
        let q = |e| self.db(e);
        let mut s = ImageState::default();
        let mut st = self.conn.prepare_cached("SELECT cui, verdict FROM verdicts WHERE reviewer = ?1 AND image_id = ?2").map_err(q)?;
        for row in st.query_map([reviewer, image], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(q)? {
            let (cui, v) = row.map_err(q)?;
            s.verdicts.insert(cui, Verdict::parse(&v).ok_or_else(|| self.corrupt(format!("verdict '{v}'")))?);
        }
        s.missing = self.missing_where("WHERE reviewer = ?1 AND image_id = ?2", &[reviewer, image])?;
        s.done = self.conn.query_row("SELECT count(*) FROM done WHERE reviewer = ?1 AND image_id = ?2", [reviewer, image], |r| r.get::<_, i64>(0)).map_err(q)? > 0;
        s.truth_shown = self.conn.query_row("SELECT count(*) FROM reveals WHERE reviewer = ?1 AND image_id = ?2", [reviewer, image], |r| r.get::<_, i64>(0)).map_err(q)? > 0;
        Ok(s)
    }

    /// How far `reviewer` has come.
    pub fn progress(&self, reviewer: &str) -> Result<Progress, ReviewError> {
        let q = |e| self.db(e);
        let done: i64 = self.conn.query_row("SELECT count(*) FROM done WHERE reviewer = ?1", [reviewer], |r| r.get(0)).map_err(q)?;
        let next: Option<i64> = self
            .conn
            .query_row("SELECT min(position) FROM images WHERE image_id NOT IN (SELECT image_id FROM done WHERE reviewer = ?1)", [reviewer], |r| r.get(0))
            .map_err(q)?;
        Ok(Progress { done: done as usize, next: next.map(|p| p as usize) })
    }

    /// Every current verdict, by reviewer, image and concept.
    pub fn verdicts(&self) -> Result<Vec<VerdictRow>, ReviewError> {
        let q = |e| self.db(e);
        let mut st = self.conn.prepare("SELECT reviewer, image_id, cui, verdict, at FROM verdicts ORDER BY reviewer, image_id, cui").map_err(q)?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?))).map_err(q)?;
        let mut out = Vec::new();
        for row in rows {
            let (reviewer, image, cui, v, at) = row.map_err(q)?;
            let verdict = Verdict::parse(&v).ok_or_else(|| self.corrupt(format!("verdict '{v}'")))?;
            out.push(VerdictRow { reviewer, image, cui, verdict, at });
        }
        Ok(out)
    }

    fn missing_where(&self, clause: &str, args: &[&str]) -> Result<Vec<MissingTerm>, ReviewError> {
        let q = |e| self.db(e);
        let sql = format!("SELECT term, reviewer, image_id, cui, name, level, at FROM missing {clause} ORDER BY term");
        let mut st = self.conn.prepare_cached(&sql).map_err(q)?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, String>(4)?, r.get::<_, Option<String>>(5)?, r.get::<_, String>(6)?))
            })
            .map_err(q)?;
        let mut out = Vec::new();
        for row in rows {
            let (term, reviewer, image, cui, name, level, at) = row.map_err(q)?;
            let level = level.map(|l| Level::from_str(&l)).transpose().map_err(|e| self.corrupt(e.to_string()))?;
            out.push(MissingTerm { term, reviewer, image, cui, name, level, at });
        }
        Ok(out)
    }

    /// Every missing term.
    pub fn missing(&self) -> Result<Vec<MissingTerm>, ReviewError> {
        self.missing_where("", &[])
    }

    fn marks(&self, table: &str) -> Result<Vec<Mark>, ReviewError> {
        let q = |e| self.db(e);
        let mut st = self.conn.prepare(&format!("SELECT reviewer, image_id, at FROM {table} ORDER BY reviewer, image_id")).map_err(q)?;
        let rows = st.query_map([], |r| Ok(Mark { reviewer: r.get(0)?, image: r.get(1)?, at: r.get(2)? })).map_err(q)?;
        rows.collect::<Result<_, _>>().map_err(q)
    }

    /// Every (reviewer, image) marked done.
    pub fn done(&self) -> Result<Vec<Mark>, ReviewError> {
        self.marks("done")
    }

    /// Every (reviewer, image) whose ground truth was shown.
    pub(crate) fn reveals(&self) -> Result<Vec<Mark>, ReviewError> {
        self.marks("reveals")
    }

    /// Number of acknowledged actions.
    pub(crate) fn event_count(&self) -> Result<usize, ReviewError> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).map_err(|e| self.db(e))?;
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::*;
    use super::super::{prepare, ServeConfig};
    use super::*;
    use crate::classify::Classify;

    fn action(id: &str, image: &str, kind: ActionKind) -> Action {
        Action { request_id: id.into(), reviewer: "ann".into(), image: image.into(), kind }
    }

    fn verdict(cui: &str, v: Verdict) -> ActionKind {
        ActionKind::Verdict { cui: cui.into(), verdict: Some(v) }
    }

    #[test]
    fn a_review_round_trips_and_the_database_is_wal() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = files(tmp.path());
        let p = prepare(&cfg).unwrap();
        let set = p.set.clone();
        drop(p);
        let s = Store::open_existing(&cfg.db).unwrap();
        assert_eq!(s.load().unwrap(), set);
        let mode: String = s.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = s.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn actions_are_checked_applied_once_and_logged() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = files(tmp.path());
        let mut s = prepare(&cfg).unwrap().store;
        let a = s.apply(&action("r1", "I0", verdict(CT, Verdict::Correct))).unwrap();
        assert!(!a.duplicate);
        // the same request again: answered from the log, nothing applied twice
        let again = s.apply(&action("r1", "I0", verdict(CT, Verdict::Correct))).unwrap();
        assert!(again.duplicate && again.event == a.event);
        assert_eq!(s.event_count().unwrap(), 1);
        // the same id for something else is refused
        let e = s.apply(&action("r1", "I0", verdict(CT, Verdict::Wrong))).unwrap_err();
        assert!(matches!(e, ReviewError::ReusedRequest { .. }) && e.is_bad_input());
        // a later verdict replaces the earlier one; clearing removes it
        s.apply(&action("r2", "I0", verdict(CT, Verdict::Wrong))).unwrap();
        s.apply(&action("r3", "I0", verdict(CHEST, Verdict::Unsure))).unwrap();
        let st = s.image_state("ann", "I0").unwrap();
        assert_eq!(st.verdicts, BTreeMap::from([(CT.to_string(), Verdict::Wrong), (CHEST.to_string(), Verdict::Unsure)]));
        s.apply(&action("r4", "I0", ActionKind::Verdict { cui: CHEST.into(), verdict: None })).unwrap();
        assert_eq!(s.image_state("ann", "I0").unwrap().verdicts.len(), 1);
        assert!(s.image_state("bob", "I0").unwrap().verdicts.is_empty(), "per reviewer");
        // unknown image, a concept nobody predicted for the image
        assert!(matches!(s.apply(&action("r5", "nope", ActionKind::Done)).unwrap_err(), ReviewError::UnknownImage { .. }));
        let e = s.apply(&action("r6", "I2", verdict(CHEST, Verdict::Correct))).unwrap_err();
        assert!(matches!(e, ReviewError::NotPredicted { .. }), "{e}");
        // I2: MRI by flat; MRI + pneumonia by hier -> pneumonia is judged once for the image
        s.apply(&action("r7", "I2", verdict(PNEUMONIA, Verdict::Wrong))).unwrap();
        // missing terms: a concept once per image, free text by case-insensitive text
        let t1 = s.apply(&action("m1", "I2", ActionKind::AddMissing { cui: Some(CHEST.into()), name: "Chest".into(), level: Some(Level::Anatomy) })).unwrap().term.unwrap();
        let t1b = s.apply(&action("m2", "I2", ActionKind::AddMissing { cui: Some(CHEST.into()), name: "Chest".into(), level: Some(Level::Anatomy) })).unwrap().term.unwrap();
        assert_eq!(t1, t1b);
        let t2 = s.apply(&action("m3", "I2", ActionKind::AddMissing { cui: None, name: "Pleural effusion".into(), level: None })).unwrap().term.unwrap();
        assert_eq!(s.apply(&action("m4", "I2", ActionKind::AddMissing { cui: None, name: "pleural EFFUSION".into(), level: None })).unwrap().term, Some(t2));
        assert_eq!(s.image_state("ann", "I2").unwrap().missing.len(), 2);
        s.apply(&action("m5", "I2", ActionKind::RemoveMissing { term: t2 })).unwrap();
        assert!(matches!(s.apply(&action("m6", "I2", ActionKind::RemoveMissing { term: t2 })).unwrap_err(), ReviewError::UnknownTerm { .. }));
        // progress: done marks, the first image not done
        let first = s.load().unwrap().items[0].id.clone();
        s.apply(&action("d1", &first, ActionKind::Done)).unwrap();
        s.apply(&action("d2", &first, ActionKind::Done)).unwrap();
        assert_eq!(s.progress("ann").unwrap(), Progress { done: 1, next: Some(1) });
        assert_eq!(s.progress("bob").unwrap(), Progress { done: 0, next: Some(0) });
        assert_eq!(s.verdicts().unwrap().len(), 2);
        assert_eq!(s.missing().unwrap().len(), 1);
        assert_eq!(s.done().unwrap().len(), 1);
    }

    #[test]
    fn other_files_are_not_taken_for_a_review() {
        let tmp = tempfile::tempdir().unwrap();
        let junk = tmp.path().join("junk.sqlite");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let e = Store::open(&junk).err().unwrap();
        assert!(matches!(e, ReviewError::NotADatabase { .. }) && e.is_bad_input(), "{e}");
        let other = tmp.path().join("other.sqlite");
        Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x INTEGER);").unwrap();
        assert!(matches!(Store::open(&other).err().unwrap(), ReviewError::NotADatabase { .. }));
        let e = Store::open_existing(&tmp.path().join("none.sqlite")).err().unwrap();
        assert!(e.is_bad_input(), "{e}");
        let e = Store::open(&tmp.path().join("no/such/dir.sqlite")).err().unwrap();
        assert!(e.is_bad_input(), "{e}");
        let empty = tmp.path().join("empty.sqlite");
        drop(Store::open(&empty).unwrap());
        assert!(matches!(Store::open_existing(&empty).err().unwrap(), ReviewError::NotADatabase { .. }));
        let _ = ServeConfig::new(&empty);
    }
}
