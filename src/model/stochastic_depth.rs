//! Stochastic depth (Huang et al. 2016), shared by the EfficientNet and ConvNeXt trunks.
use tch::Tensor;

/// Stochastic depth, torchvision's `stochastic_depth(x, p, "row", train)`: in training, each
/// sample's residual branch `[B, ...]` is zeroed with probability `p` and the survivors scaled by
/// `1 / (1 - p)`; identity in evaluation. The draw comes from libtorch's generator, which the
/// trainer reseeds every epoch, so a run is as deterministic as its dropout.
pub(crate) fn stochastic_depth(x: Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x;
    }
    let mut size = vec![1i64; x.dim()];
    size[0] = x.size()[0];
    let mut noise = Tensor::empty(size.as_slice(), (x.kind(), x.device()));
    let _ = noise.bernoulli_float_(1.0 - p);
    let noise = if p < 1.0 { noise / (1.0 - p) } else { noise };
    x * noise
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Stochastic depth zeroes whole samples with probability p and scales the rest; evaluation is
    /// the identity.
    #[test]
    fn stochastic_depth_drops_rows() {
        let x = Tensor::ones([4000, 2, 1, 1], (Kind::Float, Device::Cpu));
        assert!(stochastic_depth(x.shallow_clone(), 0.25, false).equal(&x));
        let v: Vec<f32> = Vec::try_from(stochastic_depth(x.shallow_clone(), 0.25, true).flatten(0, -1)).unwrap();
        assert!(v.chunks(2).all(|r| r[0] == r[1] && (r[0] == 0.0 || (r[0] - 4.0 / 3.0).abs() < 1e-6)));
        let dropped = v.iter().filter(|&&e| e == 0.0).count() as f64 / v.len() as f64;
        assert!((dropped - 0.25).abs() < 0.03, "{dropped}");
    }

    /// The draw comes from libtorch's generator, so a fixed seed gives the same rows and another
    /// seed other rows (in a process of its own: see `test_support::in_own_process`).
    #[test]
    fn a_seed_repeats_the_draw() {
        if !crate::test_support::in_own_process("model::stochastic_depth::tests::a_seed_repeats_the_draw") {
            return;
        }
        let x = Tensor::ones([4000, 1], (Kind::Float, Device::Cpu));
        let draw = |seed: i64| {
            tch::manual_seed(seed);
            stochastic_depth(x.shallow_clone(), 0.25, true)
        };
        assert!(draw(7).equal(&draw(7)));
        assert!(!draw(7).equal(&draw(8)));
    }
}
