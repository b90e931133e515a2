//! Statistics for comparing models, as plain functions over plain data: mean ± sd, percentile
//! bootstrap intervals of a mean (resampling items, or whole groups of items such as the images of
//! one case), a paired precision difference, and Cohen's kappa. Every resampling is seeded, so a
//! figure is repeatable.
//!
//! **Resample what is independent.** When images come in groups (cases, patients, scans), the
//! images of one group are not independent evidence; [`group_bootstrap_ci`] draws whole groups, so
//! its interval is as wide as the number of groups allows (Field & Welsh 2007, "Bootstrapping
//! clustered data"). With every image its own group it is [`bootstrap_ci`], draw for draw.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Mean ± sd of one quantity (over seeds, say).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

impl MeanSd {
    /// Mean and sample standard deviation (0 for one value; NaN for none).
    pub fn of(v: &[f64]) -> MeanSd {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
        MeanSd { mean, sd }
    }
}

/// The 2.5% and 97.5% percentiles of sorted `draws`.
fn percentile_95(mut draws: Vec<f64>) -> (f64, f64) {
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((draws.len() as f64 - 1.0) * q).round() as usize];
    (at(0.025), at(0.975))
}

/// 95% percentile interval of the mean of `values` over `n` resamples of the values (seeded, so
/// repeatable); NaNs for no values.
pub fn bootstrap_ci(values: &[f64], n: usize, seed: u64) -> (f64, f64) {
    let singletons: Vec<usize> = (0..values.len()).collect();
    group_bootstrap_ci(values, &singletons, n, seed)
}

/// 95% percentile interval of the mean of `values` over `n` resamples of whole groups: `group[i]`
/// names the group of `values[i]`; each resample draws as many groups as there are, with
/// replacement, and takes the mean over every value of the drawn groups (a group drawn twice counts
/// twice). Groups are numbered in order of first appearance, so the draws do not depend on the
/// numbers chosen. NaNs for no values.
pub(crate) fn group_bootstrap_ci(values: &[f64], group: &[usize], n: usize, seed: u64) -> (f64, f64) {
    assert_eq!(values.len(), group.len(), "one group per value");
    if values.is_empty() || n == 0 {
        return (f64::NAN, f64::NAN);
    }
    // (sum, count) per group, groups in order of first appearance
    let mut index = std::collections::HashMap::new();
    let mut sums: Vec<(f64, usize)> = Vec::new();
    for (&v, g) in values.iter().zip(group) {
        let k = *index.entry(g).or_insert_with(|| {
            sums.push((0.0, 0));
            sums.len() - 1
        });
        sums[k].0 += v;
        sums[k].1 += 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g = sums.len();
    let draws = (0..n)
        .map(|_| {
            let (mut s, mut c) = (0.0, 0usize);
            for _ in 0..g {
                let (gs, gc) = sums[rng.gen_range(0..g)];
                s += gs;
                c += gc;
            }
            s / c as f64
        })
        .collect();
    percentile_95(draws)
}

/// Per item (correct, judged) of two models, over which [`paired_difference`] resamples.
pub type PairedCounts = Vec<[(usize, usize); 2]>;

/// precision(A) - precision(B) over `per_item` counts, with a percentile bootstrap over items
/// (`resamples` draws seeded by `seed`): (difference, low, high, resamples used, left out). A
/// resample in which a model judged nothing has no difference and is left out (and counted).
pub fn paired_difference(per_item: &PairedCounts, resamples: usize, seed: u64) -> (Option<f64>, Option<f64>, Option<f64>, usize, usize) {
    let diff = |rows: &mut dyn Iterator<Item = &[(usize, usize); 2]>| {
        let mut s = [(0usize, 0usize); 2];
        for r in rows {
            for m in 0..2 {
                s[m].0 += r[m].0;
                s[m].1 += r[m].1;
            }
        }
        match (s[0].1, s[1].1) {
            (0, _) | (_, 0) => None,
            (ja, jb) => Some(s[0].0 as f64 / ja as f64 - s[1].0 as f64 / jb as f64),
        }
    };
    let observed = diff(&mut per_item.iter());
    if observed.is_none() || per_item.is_empty() {
        return (observed, None, None, 0, 0);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = per_item.len();
    let mut draws = Vec::with_capacity(resamples);
    let mut left_out = 0;
    for _ in 0..resamples {
        let idx: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
        match diff(&mut idx.iter().map(|&i| &per_item[i])) {
            Some(d) => draws.push(d),
            None => left_out += 1,
        }
    }
    if draws.is_empty() {
        return (observed, None, None, 0, left_out);
    }
    let used = draws.len();
    let (low, high) = percentile_95(draws);
    (observed, Some(low), Some(high), used, left_out)
}

/// Cohen's kappa of two raters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Kappa {
    pub n: usize,
    /// Share of pairs with the same rating (p_o).
    pub agreement: f64,
    /// Agreement expected by chance from the raters' own shares (p_e).
    pub expected: f64,
    /// (p_o - p_e) / (1 - p_e); `None` when p_e = 1 or there are no pairs.
    pub kappa: Option<f64>,
}

/// Cohen's kappa over `pairs` of ratings, each one of `categories`.
pub(crate) fn cohen_kappa<T: PartialEq + Copy>(pairs: &[(T, T)], categories: &[T]) -> Kappa {
    let n = pairs.len();
    if n == 0 {
        return Kappa { n, agreement: f64::NAN, expected: f64::NAN, kappa: None };
    }
    let nf = n as f64;
    let agreement = pairs.iter().filter(|(a, b)| a == b).count() as f64 / nf;
    let share = |f: &dyn Fn(&(T, T)) -> T, v: T| pairs.iter().filter(|p| f(p) == v).count() as f64 / nf;
    let expected: f64 = categories.iter().map(|&v| share(&|p| p.0, v) * share(&|p| p.1, v)).sum();
    let kappa = (expected < 1.0 - 1e-12).then(|| (agreement - expected) / (1.0 - expected));
    Kappa { n, agreement, expected, kappa }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_bootstrap_by_hand() {
        // two cases: case 0 holds three images with F1 difference 1, case 1 one image with 0.
        // Resampling the 2 cases gives 4 equally likely draws: {0,0} mean 1, {1,1} mean 0, and
        // {0,1} or {1,0} mean 3/4. So the 2.5% point is 0 and the 97.5% point is 1, where
        // resampling the 4 images instead would give means in quarters, mostly near 3/4.
        let values = [1.0, 1.0, 1.0, 0.0];
        let (lo, hi) = group_bootstrap_ci(&values, &[0, 0, 0, 1], 4000, 3);
        assert_eq!((lo, hi), (0.0, 1.0));
        // every draw is one of the three means
        let (lo, hi) = group_bootstrap_ci(&values, &[7, 7, 7, 2], 4000, 3);
        assert_eq!((lo, hi), (0.0, 1.0), "group numbers do not matter");
        // one group: every resample is the whole set
        assert_eq!(group_bootstrap_ci(&values, &[5; 4], 100, 1), (0.75, 0.75));
        assert!(group_bootstrap_ci(&[], &[], 100, 1).0.is_nan());
    }

    #[test]
    fn singleton_groups_are_the_item_bootstrap_and_groups_widen_the_interval() {
        let values: Vec<f64> = (0..60).map(|i| if i < 30 { 0.05 } else { -0.01 } + (i % 7) as f64 * 0.001).collect();
        // the item bootstrap written out directly (as compare.rs had it before groups): same draws
        let direct = |n: usize, seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let means: Vec<f64> = (0..n).map(|_| (0..values.len()).map(|_| values[rng.gen_range(0..values.len())]).sum::<f64>() / values.len() as f64).collect();
            percentile_95(means)
        };
        let singletons: Vec<usize> = (0..60).collect();
        assert_eq!(group_bootstrap_ci(&values, &singletons, 2000, 9), direct(2000, 9));
        assert_eq!(bootstrap_ci(&values, 2000, 9), direct(2000, 9));
        // the same values in 6 cases of 10 alike images: fewer independent draws, a wider interval
        let cases: Vec<usize> = (0..60).map(|i| i / 10).collect();
        let (a, b) = bootstrap_ci(&values, 2000, 9);
        let (c, d) = group_bootstrap_ci(&values, &cases, 2000, 9);
        assert!(d - c > 2.0 * (b - a), "images [{a}, {b}] cases [{c}, {d}]");
    }

    #[test]
    fn mean_sd_and_kappa_by_hand() {
        let m = MeanSd::of(&[1.0, 2.0, 3.0]);
        assert_eq!((m.mean, m.sd), (2.0, 1.0));
        assert_eq!(MeanSd::of(&[4.0]).sd, 0.0);
        // 10 pairs, 8 agree; rater shares 0.5/0.5 and 0.5/0.5: p_e = 0.5, kappa = (0.8-0.5)/0.5 = 0.6
        let mut pairs = vec![(true, true); 4];
        pairs.extend(vec![(false, false); 4]);
        pairs.extend([(true, false), (false, true)]);
        let k = cohen_kappa(&pairs, &[true, false]);
        assert!((k.kappa.unwrap() - 0.6).abs() < 1e-12, "{k:?}");
        assert_eq!(cohen_kappa::<bool>(&[], &[true, false]).kappa, None);
    }
}
