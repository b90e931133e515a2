//! The data set writer: [`generate`] renders every planned image in parallel and writes the JPEGs,
//! `labels.csv`, `meta.csv` and `concepts.tsv`; [`encode_jpeg`] is its JPEG step.
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, GrayImage};
use rayon::prelude::*;

use super::concepts::{concept_table, cui, ANNOTATION_CONCEPTS};
use super::overlays::{annotation_plan, draw_arrow, draw_ring, mark_colour};
use super::config::{SynthConfig, SynthError, SynthSummary};
use super::plan::{image_rng, plan};
use super::render::render;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io { path: path.to_path_buf(), source }
}

/// Encode a grayscale image as JPEG bytes.
pub fn encode_jpeg(img: &GrayImage, quality: u8, path: &Path) -> Result<Vec<u8>, SynthError> {
    encode(img.as_raw(), img.width(), img.height(), ExtendedColorType::L8, quality, path)
}

fn encode(raw: &[u8], width: u32, height: u32, colour: ExtendedColorType, quality: u8, path: &Path) -> Result<Vec<u8>, SynthError> {
    let mut buf = Vec::with_capacity(raw.len() / 4);
    JpegEncoder::new_with_quality(&mut buf, quality.clamp(1, 100))
        .encode(raw, width, height, colour)
        .map_err(|source| SynthError::Image { path: path.to_path_buf(), source })?;
    Ok(buf)
}

/// Write the data set under `out` (created if missing; existing files of the same names are
/// overwritten): `images/SYN_NNNNN.jpg`, `labels.csv`, `meta.csv`, `concepts.tsv`.
/// Images render in parallel; output is byte-identical for the same config.
pub fn generate(cfg: &SynthConfig, out: &Path) -> Result<SynthSummary, SynthError> {
    let planned = plan(cfg)?;
    let images_dir = out.join("images");
    fs::create_dir_all(&images_dir).map_err(io_err(&images_dir))?;

    planned.par_iter().enumerate().try_for_each(|(i, p)| -> Result<(), SynthError> {
        let path = images_dir.join(format!("{}.jpg", p.id));
        let mut rng = image_rng(cfg.seed, i);
        let img = render(&p.spec, cfg.size, &mut rng);
        let marks = cfg.annotations.then(|| annotation_plan(cfg.seed, i)).filter(|&(arrow, ring, _)| arrow || ring);
        let bytes = match marks {
            // marks in colour: the image becomes RGB
            Some((arrow, ring, mut rng)) => {
                let mut rgb = image::DynamicImage::ImageLuma8(img).into_rgb8();
                let colour = mark_colour(&mut rng);
                if arrow {
                    draw_arrow(&mut rgb, colour, &mut rng);
                }
                if ring {
                    draw_ring(&mut rgb, colour, &mut rng);
                }
                encode(rgb.as_raw(), rgb.width(), rgb.height(), ExtendedColorType::Rgb8, cfg.jpeg_quality, &path)?
            }
            None => encode_jpeg(&img, cfg.jpeg_quality, &path)?,
        };
        fs::write(&path, bytes).map_err(io_err(&path))
    })?;

    let mut labels = String::new();
    let mut meta = String::from("id,modality,anatomy,plane_or_view,laterality,group\n");
    let mut concept_counts: BTreeMap<String, usize> = BTreeMap::new();
    for (i, p) in planned.iter().enumerate() {
        let mut cuis = p.spec.cuis();
        if cfg.annotations {
            let (arrow, ring, _) = annotation_plan(cfg.seed, i);
            cuis.extend(arrow.then_some(cui::ARROW_NOISE));
            cuis.extend(ring.then_some(cui::LESION));
            cuis.sort_unstable();
        }
        for c in &cuis {
            *concept_counts.entry((*c).to_string()).or_default() += 1;
        }
        labels.push_str(&format!("{}\t{}\n", p.id, cuis.join(";")));
        meta.push_str(&format!(
            "{},{},{},{},{},{}\n",
            p.id,
            p.spec.modality.name(),
            p.spec.anatomy.name(),
            p.spec.plane_or_view.map_or("", |v| v.name()),
            p.spec.laterality.map_or("", |s| s.name()),
            p.group
        ));
    }
    let mut concepts = String::from("cui\tname\tlevel\tparent\n");
    let extra: &[(&str, &str, &str, &str)] = if cfg.annotations { &ANNOTATION_CONCEPTS } else { &[] };
    for (c, name, level, parent) in concept_table().iter().chain(extra) {
        concepts.push_str(&format!("{c}\t{name}\t{level}\t{parent}\n"));
    }
    let labels_path = out.join("labels.csv");
    let meta_path = out.join("meta.csv");
    let concepts_path = out.join("concepts.tsv");
    fs::write(&labels_path, labels).map_err(io_err(&labels_path))?;
    fs::write(&meta_path, meta).map_err(io_err(&meta_path))?;
    fs::write(&concepts_path, concepts).map_err(io_err(&concepts_path))?;
    Ok(SynthSummary { n_images: planned.len(), labels_path, images_dir, meta_path, concepts_path, concept_counts })
}
