//! How a run's images become its model's input, stored with the run as `preprocessing.json`:
//! the image size, the normalisation and the layout it was trained with. Prediction and export
//! read this record, not the training configuration. Runs from before the record existed read the
//! same values from their `config.json`.
use serde::{Deserialize, Serialize};

use super::dir::{RunDir, RunError};
use super::names::{CONFIG, PREPROCESSING};
use crate::data::augment::{IMAGENET_MEAN, IMAGENET_STD};
use crate::model::MemoryFormat;

/// From an image file to one `[3, S, S]` input, and the layout and precision of the model that takes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Every image is resized, whole, to `image_size x image_size`.
    pub image_size: u32,
    /// `x[c] = (v / 255 - mean[c]) / std[c]`, per channel (R, G, B).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The memory format asked for at training (auto: channels-last on CPU and with mixed precision).
    pub memory_format: MemoryFormat,
    /// Mixed precision at training (fp16 on CUDA, bf16 on CPU).
    pub amp: bool,
}

/// The fields of a `config.json` that said the same before `preprocessing.json` existed.
#[derive(Deserialize)]
struct FromConfig {
    image_size: u32,
    #[serde(default)]
    memory_format: MemoryFormat,
    #[serde(default)]
    amp: bool,
}

impl Preprocessing {
    /// The image pipeline's preprocessing (ImageNet normalisation, the one `data::augment` implements).
    pub fn new(image_size: u32, memory_format: MemoryFormat, amp: bool) -> Preprocessing {
        Preprocessing { image_size, mean: IMAGENET_MEAN, std: IMAGENET_STD, memory_format, amp }
    }

    /// The record of `run`: `preprocessing.json`, or for a run from before it, the same values
    /// from `config.json`. A normalisation other than the pipeline's is refused: no other is
    /// implemented, and predicting with the wrong one would give wrong answers silently.
    pub fn read(run: &RunDir) -> Result<Preprocessing, RunError> {
        let p = match run.read_json::<Preprocessing>(PREPROCESSING, "the run cannot be used without it") {
            Err(RunError::Missing { .. }) => {
                let c: FromConfig = run.read_json(CONFIG, "the run cannot be used without it")?;
                Preprocessing::new(c.image_size, c.memory_format, c.amp)
            }
            other => other?,
        };
        if (p.mean, p.std) != (IMAGENET_MEAN, IMAGENET_STD) {
            return Err(RunError::Corrupt {
                dir: run.path.clone(),
                file: PREPROCESSING,
                reason: format!("normalisation mean {:?}, std {:?}: this version implements only ImageNet's ({IMAGENET_MEAN:?}, {IMAGENET_STD:?})", p.mean, p.std),
                hint: "predict with the conceptree version that trained the run",
            });
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reads_its_record_or_its_config_from_before_it() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), false).unwrap();
        // a run from before the record: its config.json says the same
        run.write_bytes(CONFIG, br#"{"image_size": 96, "amp": true, "epochs": 3}"#).unwrap();
        assert_eq!(Preprocessing::read(&run).unwrap(), Preprocessing::new(96, MemoryFormat::Auto, true));
        // the record wins
        let p = Preprocessing::new(64, MemoryFormat::Contiguous, false);
        run.write_json(PREPROCESSING, &p).unwrap();
        assert_eq!(Preprocessing::read(&run).unwrap(), p);
        // a normalisation the pipeline does not implement is refused, naming the file
        run.write_json(PREPROCESSING, &Preprocessing { mean: [0.5; 3], ..p }).unwrap();
        let e = Preprocessing::read(&run).unwrap_err().to_string();
        assert!(e.contains("preprocessing.json cannot be used") && e.contains("ImageNet"), "{e}");
    }
}
