//! Which images a review holds, in which order they are shown, and in which order the models'
//! concept sets are shown on each image (the blinding). Every draw is seeded (ChaCha8), so the
//! same inputs and seed give the same review; the seed is stored with it.
//!
//! Strategies (`--strategy`), each over the images predicted by every model:
//! - `random`: a uniform sample without replacement.
//! - `stratified`: the images are grouped by stratum (the modality concepts of the ground truth,
//!   else of the predictions); the groups are taken in turn, one random image each, until the
//!   sample is full, so a rare modality is reviewed as often as a common one (as far as it has images).
//! - `disagreement`: the images on which the models disagree most (mean pairwise Jaccard distance
//!   of their predicted sets; ties in random order).
//!
//! Whatever the strategy, the chosen images are shown in a random order, so the order carries no
//! hint of the stratum or of the disagreement.
use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the images of a review are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Uniformly at random.
    Random,
    /// The same number from each modality (of the ground truth, else of the predictions).
    Stratified,
    /// Where the models disagree most.
    Disagreement,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::Stratified => "stratified",
            Strategy::Disagreement => "disagreement",
        }
    }
    pub fn parse(s: &str) -> Option<Strategy> {
        [Strategy::Random, Strategy::Stratified, Strategy::Disagreement].into_iter().find(|x| x.as_str() == s)
    }
}

/// What the strategies need to know of a candidate image.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub stratum: String,
    /// Mean pairwise Jaccard distance of the models' predicted sets, in [0, 1].
    pub disagreement: f64,
}

/// 1 - |A ∩ B| / |A ∪ B|; two empty sets agree (0).
pub(crate) fn jaccard_distance(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    1.0 - a.intersection(b).count() as f64 / union as f64
}

/// Mean Jaccard distance over every pair of sets (0 for fewer than two).
pub fn disagreement(sets: &[&BTreeSet<String>]) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for i in 0..sets.len() {
        for j in i + 1..sets.len() {
            sum += jaccard_distance(sets[i], sets[j]);
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Indices of `n` candidates (all when `n` exceeds them) drawn by `strategy`, in the order shown.
pub fn choose(candidates: &[Candidate], n: usize, strategy: Strategy, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = n.min(candidates.len());
    let mut chosen: Vec<usize> = match strategy {
        Strategy::Random => {
            let mut all: Vec<usize> = (0..candidates.len()).collect();
            all.shuffle(&mut rng);
            all.truncate(n);
            all
        }
        Strategy::Stratified => {
            let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, c) in candidates.iter().enumerate() {
                groups.entry(c.stratum.as_str()).or_default().push(i);
            }
            let mut queues: Vec<std::vec::IntoIter<usize>> = groups
                .into_values()
                .map(|mut g| {
                    g.shuffle(&mut rng);
                    g.into_iter()
                })
                .collect();
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                for q in queues.iter_mut() {
                    if out.len() < n {
                        if let Some(i) = q.next() {
                            out.push(i);
                        }
                    }
                }
            }
            out
        }
        Strategy::Disagreement => {
            let mut all: Vec<usize> = (0..candidates.len()).collect();
            all.shuffle(&mut rng); // ties in random order
            all.sort_by(|a, b| candidates[*b].disagreement.total_cmp(&candidates[*a].disagreement));
            all.truncate(n);
            all
        }
    };
    chosen.shuffle(&mut rng);
    chosen
}

/// For each of `n_items` images, the order in which the `n_models` models' sets are shown.
pub(crate) fn model_orders(n_items: usize, n_models: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1); // independent of the sample's draws
    (0..n_items)
        .map(|_| {
            let mut o: Vec<usize> = (0..n_models).collect();
            o.shuffle(&mut rng);
            o
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn jaccard_by_hand() {
        assert_eq!(jaccard_distance(&set(&[]), &set(&[])), 0.0);
        assert_eq!(jaccard_distance(&set(&["a"]), &set(&[])), 1.0);
        // {a,b,c} vs {b,c,d}: 2 shared of 4
        assert!((jaccard_distance(&set(&["a", "b", "c"]), &set(&["b", "c", "d"])) - 0.5).abs() < 1e-12);
        let (a, b, c) = (set(&["a"]), set(&["a"]), set(&["b"]));
        // pairs: (a,b) 0, (a,c) 1, (b,c) 1 -> 2/3
        assert!((disagreement(&[&a, &b, &c]) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(disagreement(&[&a]), 0.0);
    }

    fn cands(strata: &[&str], dis: &[f64]) -> Vec<Candidate> {
        strata.iter().zip(dis).map(|(s, d)| Candidate { stratum: s.to_string(), disagreement: *d }).collect()
    }

    #[test]
    fn draws_are_seeded_and_without_repeats() {
        let c = cands(&["a"; 50], &[0.0; 50]);
        for s in [Strategy::Random, Strategy::Stratified, Strategy::Disagreement] {
            let x = choose(&c, 20, s, 7);
            assert_eq!(x, choose(&c, 20, s, 7), "{s:?} is seeded");
            assert_ne!(x, choose(&c, 20, s, 8), "{s:?} depends on the seed");
            assert_eq!(x.iter().collect::<BTreeSet<_>>().len(), 20, "{s:?} draws without replacement");
        }
        assert_eq!(choose(&c, 500, Strategy::Random, 1).len(), 50, "at most every candidate");
    }

    #[test]
    fn stratified_takes_the_strata_in_turn() {
        // 10 CT, 2 MRI, 1 x-ray: a sample of 6 holds every MRI and x-ray image and 3 CT
        let mut strata = vec!["ct"; 10];
        strata.extend(["mri", "mri", "xr"]);
        let c = cands(&strata, &[0.0; 13]);
        let x = choose(&c, 6, Strategy::Stratified, 3);
        let count = |s: &str| x.iter().filter(|i| c[**i].stratum == s).count();
        assert_eq!((count("ct"), count("mri"), count("xr")), (3, 2, 1));
    }

    #[test]
    fn disagreement_takes_the_most_disputed_images() {
        let c = cands(&["a"; 6], &[0.1, 0.9, 0.0, 0.8, 0.5, 0.2]);
        let x: BTreeSet<usize> = choose(&c, 3, Strategy::Disagreement, 5).into_iter().collect();
        assert_eq!(x, BTreeSet::from([1, 3, 4]));
    }

    #[test]
    fn model_orders_are_permutations_that_vary() {
        let o = model_orders(40, 2, 11);
        assert!(o.iter().all(|p| { let mut q = p.clone(); q.sort(); q == vec![0, 1] }));
        let first = o.iter().filter(|p| p[0] == 0).count();
        assert!((5..=35).contains(&first), "both orders occur: {first} of 40 show model 0 first");
        assert_eq!(o, model_orders(40, 2, 11));
    }
}
