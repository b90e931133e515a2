//! `review export`: every current verdict and every missing term of a review database, as CSV
//! (one row each, `kind` = `verdict` or `missing`) or JSON (the review's inputs, its models by
//! hash, the verdicts and the missing terms), with the models that predicted each concept named.
use std::path::Path;

use serde::Serialize;

use super::report::{ReviewData, NO_LEVEL};
use super::store::Store;
use super::{ModelInfo, ReviewError, ReviewMeta};

/// Output format of `review export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportFormat {
    /// The format named by `path`'s extension (`.json`, else CSV).
    pub fn from_path(path: &Path) -> ExportFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => ExportFormat::Json,
            _ => ExportFormat::Csv,
        }
    }
}

/// One exported row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRow {
    /// `verdict` or `missing`.
    pub kind: &'static str,
    pub reviewer: String,
    pub image: String,
    /// Empty for a free-text missing term.
    pub cui: String,
    pub name: String,
    pub level: String,
    /// `correct`, `wrong`, `unsure` (verdicts); empty for missing terms.
    pub verdict: String,
    /// Labels of the models that predicted the concept, `;`-separated.
    pub predicted_by: String,
    pub at: String,
}

#[derive(Serialize)]
struct ExportJson<'a> {
    review: &'a ReviewMeta,
    models: &'a [ModelInfo],
    rows: &'a [ExportRow],
}

/// The rows of a review, verdicts first (by reviewer, image, concept), then missing terms.
pub fn rows(d: &ReviewData) -> Vec<ExportRow> {
    let set = &d.set;
    let predicted_by = |image: &str, cui: Option<&str>| -> String {
        match (set.item(image), cui) {
            (Some(it), Some(c)) => set.models.iter().enumerate().filter(|(m, _)| it.predicted[*m].contains_key(c)).map(|(_, x)| x.label.as_str()).collect::<Vec<_>>().join(";"),
            _ => String::new(),
        }
    };
    let level = |cui: &str| set.level(cui).map_or(NO_LEVEL.to_string(), |l| l.as_str().to_string());
    let mut out: Vec<ExportRow> = d
        .verdicts
        .iter()
        .map(|v| ExportRow {
            kind: "verdict",
            reviewer: v.reviewer.clone(),
            image: v.image.clone(),
            cui: v.cui.clone(),
            name: set.name(&v.cui),
            level: level(&v.cui),
            verdict: v.verdict.as_str().into(),
            predicted_by: predicted_by(&v.image, Some(&v.cui)),
            at: v.at.clone(),
        })
        .collect();
    out.extend(d.missing.iter().map(|m| ExportRow {
        kind: "missing",
        reviewer: m.reviewer.clone(),
        image: m.image.clone(),
        cui: m.cui.clone().unwrap_or_default(),
        name: m.name.clone(),
        level: if m.cui.is_some() { m.level.map_or(NO_LEVEL.to_string(), |l| l.as_str().to_string()) } else { "free text".into() },
        verdict: String::new(),
        predicted_by: predicted_by(&m.image, m.cui.as_deref()),
        at: m.at.clone(),
    }));
    out
}

/// Writes every verdict and missing term of `db` to `out`; returns the number of rows.
pub fn export(db: &Path, out: &Path, format: ExportFormat) -> Result<usize, ReviewError> {
    let store = Store::open_existing(db)?;
    let data = ReviewData::load(&store)?;
    let rows = rows(&data);
    let write = |tmp: &Path| -> std::io::Result<()> {
        match format {
            ExportFormat::Json => {
                let j = ExportJson { review: &data.set.meta, models: &data.set.models, rows: &rows };
                std::fs::write(tmp, serde_json::to_string_pretty(&j).expect("exports serialise") + "\n")
            }
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_path(tmp)?;
                for r in &rows {
                    w.serialize(r).map_err(std::io::Error::other)?;
                }
                w.flush()
            }
        }
    };
    crate::run::dir::write_atomic(out, write).map_err(ReviewError::write(out))?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::super::store::{Action, ActionKind};
    use super::super::testdata::*;
    use super::super::{prepare, Verdict};
    use super::*;

    #[test]
    fn csv_and_json_hold_every_verdict_and_term() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = files(tmp.path());
        let mut p = prepare(&cfg).unwrap();
        let act = |id: &str, image: &str, kind| Action { request_id: id.into(), reviewer: "ann".into(), image: image.into(), kind };
        p.store.apply(&act("1", "I0", ActionKind::Verdict { cui: CT.into(), verdict: Some(Verdict::Correct) })).unwrap();
        p.store.apply(&act("2", "I0", ActionKind::Verdict { cui: AXIAL.into(), verdict: Some(Verdict::Wrong) })).unwrap();
        p.store.apply(&act("3", "I0", ActionKind::AddMissing { cui: Some(PNEUMONIA.into()), name: "Pneumonia".into(), level: None })).unwrap();
        p.store.apply(&act("4", "I1", ActionKind::AddMissing { cui: None, name: "rib fracture, left".into(), level: None })).unwrap();
        drop(p);
        let csv_path = tmp.path().join("v.csv");
        assert_eq!(export(&cfg.db, &csv_path, ExportFormat::from_path(&csv_path)).unwrap(), 4);
        let text = std::fs::read_to_string(&csv_path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "kind,reviewer,image,cui,name,level,verdict,predicted_by,at");
        assert!(lines[1].starts_with(&format!("verdict,ann,I0,{CT},X-Ray Computed Tomography,modality,correct,flat;hier,")), "{}", lines[1]);
        assert!(lines[2].starts_with(&format!("verdict,ann,I0,{AXIAL},")) && lines[2].contains(",wrong,hier,"), "{}", lines[2]);
        assert!(lines[3].starts_with(&format!("missing,ann,I0,{PNEUMONIA},Pneumonia,no level,,,")), "{}", lines[3]);
        assert!(lines[4].contains("\"rib fracture, left\",free text"), "{}", lines[4]);
        let json_path = tmp.path().join("v.JSON");
        export(&cfg.db, &json_path, ExportFormat::from_path(&json_path)).unwrap();
        let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(j["rows"].as_array().unwrap().len(), 4);
        assert_eq!(j["models"][1]["label"], "hier");
        assert_eq!(j["review"]["seed"], 42);
    }
}
