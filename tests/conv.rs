//! The convolutional network of §8: the im2col + GEMM convolution against
//! the direct one, max-pooling against its definition, and every gradient
//! of the backward pass (weights, biases, per-channel coupling, under the
//! gain and the variance compensation) against central finite
//! differences in f64, on random small architectures.

use comod::conv::direct::{ConvWeights, conv_input_grad, conv_relu, conv_relu_pool, pad_input};
use comod::conv::heads::Heads;
use comod::conv::heads::heads_loss;
use comod::conv::mix::{Mix, mix_partials, mix_partials_reference};
use comod::conv::modulator::{Modulator, scale_channels, scaled_channels};
use comod::conv::ops::{
    col2im, conv_direct, conv_forward, im2col, maxpool_backward, maxpool_forward,
};
use comod::conv::{ConvArch, ConvNet, ConvWorkspace, Evaluation, Stage};
use comod::data::Shape;
use comod::kernel::Body;
use comod::net::Depth;
use comod::net::simd::Isa;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn random(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Random f32 maps of `batch` × `shape`; `poison` puts an infinity at a
/// random place.
fn input_maps(rng: &mut Xoshiro256PlusPlus, batch: usize, shape: Shape, poison: bool) -> Vec<f32> {
    let mut x: Vec<f32> = random(rng, batch * shape.len())
        .into_iter()
        .map(|v| v as f32)
        .collect();
    if poison {
        let at = rng.random_range(0..x.len());
        x[at] = f32::INFINITY;
    }
    x
}

/// [`conv_relu`] on every body against the direct convolution's ReLU,
/// bit for bit against the scalar body, and its finiteness flag against
/// the outputs; `poison` puts an infinity into the input.
fn check_direct_kernel(
    batch: usize,
    shape: Shape,
    c_out: usize,
    k: usize,
    seed: u64,
    poison: bool,
) -> Result<(), TestCaseError> {
    let c_in = shape.channels;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let x = input_maps(&mut rng, batch, shape, poison);
    let weights = f(random(&mut rng, c_out * k * k * c_in));
    let bias = f(random(&mut rng, c_out));
    let reference = conv_direct(&x, batch, shape, k, &weights, &bias);
    let packed = ConvWeights::new(&weights, &bias, k, c_in);
    // A reused buffer of the right size holding garbage: pad_input must
    // write every value of it.
    let mut padded = vec![1e30; batch * (shape.height + k - 1) * (shape.width + k - 1) * c_in];
    pad_input(&x, batch, shape, k, &mut padded);
    let run = |isa: Isa| {
        let mut out = vec![f32::NAN; reference.len()];
        let finite = conv_relu(isa, &padded, batch, shape, &packed, &mut out);
        (out, finite)
    };
    let (scalar, _) = run(Isa::Scalar);
    let scale = 1.0 + (k * k * c_in) as f32;
    for (i, (a, r)) in scalar.iter().zip(&reference).enumerate() {
        let r = r.max(0.0);
        prop_assert!(
            a.to_bits() == r.to_bits() || (a - r).abs() <= 1e-6 * scale,
            "at {i}: {a} vs {r}"
        );
    }
    let all_finite = scalar.iter().all(|v| v.is_finite());
    for isa in [Isa::Scalar].into_iter().chain(Isa::available()) {
        let (out, finite) = run(isa);
        prop_assert!(
            out.iter()
                .zip(&scalar)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{} differs from scalar",
            isa.name()
        );
        prop_assert_eq!(finite, all_finite, "{} misreports finiteness", isa.name());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// cols·Wᵀ + b equals the six-loop convolution, in f32 and f64.
    #[test]
    fn product_convolution_equals_direct(
        batch in 1usize..4, c_in in 1usize..5, h in 1usize..9, w in 1usize..9,
        c_out in 1usize..7, half in 0usize..3, seed in any::<u64>(),
    ) {
        let k = 2 * half + 1;
        let shape = Shape { channels: c_in, height: h, width: w };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let x = random(&mut rng, batch * shape.len());
        let weights = random(&mut rng, c_out * k * k * c_in);
        let bias = random(&mut rng, c_out);
        let expected = conv_direct(&x, batch, shape, k, &weights, &bias);
        let mut cols = vec![0.0; batch * h * w * k * k * c_in];
        im2col(&x, batch, shape, k, &mut cols);
        let mut out = vec![0.0; batch * h * w * c_out];
        conv_forward(&cols, &weights, &bias, &mut out);
        for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
            prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "f64 at {i}: {a} vs {b}");
        }
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (x32, w32, b32) = (f(&x), f(&weights), f(&bias));
        let mut cols32 = vec![0.0f32; cols.len()];
        im2col(&x32, batch, shape, k, &mut cols32);
        let mut out32 = vec![0.0f32; out.len()];
        conv_forward(&cols32, &w32, &b32, &mut out32);
        let direct32 = conv_direct(&x32, batch, shape, k, &w32, &b32);
        for (i, (a, b)) in out32.iter().zip(&direct32).enumerate() {
            let scale = 1.0 + (k * k * c_in) as f32;
            prop_assert!((a - b).abs() <= 1e-6 * scale, "f32 at {i}: {a} vs {b}");
        }
    }

    /// The direct SIMD kernel gives ReLU of the direct convolution, and
    /// every body the CPU runs gives the scalar body's bits (input channel
    /// counts the bodies specialise, 1, 3, 8, 16 and 32, and others), and
    /// says whether its outputs are finite (an infinite input in some
    /// cases).
    #[test]
    fn direct_kernel_equals_reference_on_every_body(
        batch in 1usize..3, c_in in prop_oneof![1usize..6, Just(8), Just(16), Just(32)],
        h in 1usize..8, w in 1usize..33,
        c_out in 1usize..40, half in 0usize..3, seed in any::<u64>(), poison in any::<bool>(),
    ) {
        check_direct_kernel(batch, Shape { channels: c_in, height: h, width: w }, c_out, 2 * half + 1, seed, poison)?;
    }

    /// The same with one input channel, where the AVX-512 body works on
    /// pairs of pixels for up to 8 output channels (and the last 8 of
    /// more), an odd last pixel alone.
    #[test]
    fn direct_kernel_on_one_input_channel(
        batch in 1usize..3, h in 1usize..6, w in 1usize..33,
        c_out in 1usize..20, half in 0usize..3, seed in any::<u64>(), poison in any::<bool>(),
    ) {
        check_direct_kernel(batch, Shape { channels: 1, height: h, width: w }, c_out, 2 * half + 1, seed, poison)?;
    }

    /// The input gradient by the direct kernel (rotated weights) equals
    /// col2im(dy·W), the adjoint of the product form, and its bodies agree
    /// (on AVX-512, pair tiles of two rows and of a last odd row, up to
    /// the 14 pairs of a 28-pixel row).
    #[test]
    fn direct_input_gradient_equals_the_adjoint_of_im2col(
        batch in 1usize..3, c_in in 1usize..6, h in 1usize..8, w in 1usize..30,
        c_out in 1usize..20, half in 0usize..3, seed in any::<u64>(),
    ) {
        let k = 2 * half + 1;
        let shape = Shape { channels: c_in, height: h, width: w };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let weights = random(&mut rng, c_out * k * k * c_in);
        let dy = random(&mut rng, batch * h * w * c_out);
        let patch = k * k * c_in;
        // Reference in f64: dcols = dy·W, then col2im.
        let mut dcols = vec![0.0f64; batch * h * w * patch];
        for (p, row) in dcols.chunks_exact_mut(patch).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (0..c_out).map(|o| dy[p * c_out + o] * weights[o * patch + j]).sum();
            }
        }
        let mut expected = vec![0.0f64; batch * shape.len()];
        col2im(&dcols, batch, shape, k, &mut expected);
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (w32, dy32) = (f(&weights), f(&dy));
        let run = |isa: Isa| {
            let mut dx = vec![f32::NAN; expected.len()];
            let (mut packed, mut padded) = (ConvWeights::default(), Vec::new());
            conv_input_grad(isa, &dy32, batch, shape, &w32, k, c_out, (&mut packed, &mut padded), &mut dx);
            dx
        };
        let scalar = run(Isa::Scalar);
        let scale = 1.0 + (k * k * c_out) as f32;
        for (i, (a, e)) in scalar.iter().zip(&expected).enumerate() {
            prop_assert!((a - *e as f32).abs() <= 1e-6 * scale, "at {i}: {a} vs {e}");
        }
        for isa in Isa::available() {
            prop_assert!(run(isa).iter().zip(&scalar).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", isa.name());
        }
    }

    /// The conv stage and its max-pool in one pass give, on every body,
    /// the bits of the conv stage then the max-pool (bordered as
    /// `pad_input` lays out a next stage's input, if asked), and say
    /// whether the conv outputs (never written) were finite.
    #[test]
    fn pooled_conv_equals_conv_then_pool(
        batch in 1usize..3, c_in in prop_oneof![1usize..4, Just(8)], half_h in 1usize..5,
        half_w in 1usize..17, c_out in prop_oneof![1usize..20, Just(8), Just(16)],
        half in 0usize..3, border in 0usize..3, seed in any::<u64>(), poison in any::<bool>(),
    ) {
        let (k, h, w) = (2 * half + 1, 2 * half_h, 2 * half_w);
        let shape = Shape { channels: c_in, height: h, width: w };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let x = input_maps(&mut rng, batch, shape, poison);
        let packed = ConvWeights::new(&f(random(&mut rng, c_out * k * k * c_in)), &f(random(&mut rng, c_out)), k, c_in);
        let mut padded = Vec::new();
        pad_input(&x, batch, shape, k, &mut padded);
        let out_shape = Shape { channels: c_out, ..shape };
        for isa in [Isa::Scalar].into_iter().chain(Isa::available()) {
            let mut conv = vec![f32::NAN; batch * out_shape.len()];
            conv_relu(isa, &padded, batch, shape, &packed, &mut conv);
            let mut pool = vec![f32::NAN; batch * out_shape.pooled().len()];
            maxpool_forward(&conv, batch, out_shape, &mut pool);
            let mut expected = Vec::new();
            pad_input(&pool, batch, out_shape.pooled(), 2 * border + 1, &mut expected);
            let mut pooled = vec![f32::NAN; expected.len()];
            let finite = conv_relu_pool(isa, &padded, batch, shape, &packed, border, &mut pooled);
            prop_assert!(pooled.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()), "{} differs", isa.name());
            prop_assert_eq!(finite, conv.iter().all(|v| v.is_finite()), "{} misreports finiteness", isa.name());
        }
    }

    /// An evaluation's passes (conv stages and their max-pools as one,
    /// dense stages on packed weights, on every body) give the logits of
    /// the plain pass bit for bit, and the same fault (the first
    /// non-finite stage output) when an input is infinite.
    #[test]
    fn evaluation_pass_equals_plain_one(seed in any::<u64>(), rows in 1usize..15, poison in any::<bool>()) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let arch = random_arch(&mut rng);
        let mut net = ConvNet::<f32>::init(&arch, seed);
        // Random biases too (the initialisation may zero them).
        for v in net.params.iter_mut() {
            *v += rng.random_range(-0.1..0.1);
        }
        let mut images: Vec<f32> = (0..rows * arch.input.len()).map(|_| rng.random_range(0.0..1.0)).collect();
        if poison {
            let at = rng.random_range(0..images.len());
            images[at] = f32::INFINITY;
        }
        let outcome = |ws: &ConvWorkspace<f32>| {
            let bits: Vec<u32> = ws.logits().iter().map(|v| v.to_bits()).collect();
            let fault = net.first_non_finite(ws).map(|(name, i, v)| (name, i, v.to_bits()));
            (bits, fault)
        };
        let mut plain = net.workspace();
        net.forward(&mut plain, &images, rows, None, None);
        let want = outcome(&plain);
        // One workspace for every body, holding the previous pass.
        let mut ws = net.workspace();
        for body in Body::available() {
            Evaluation::on(&net, body).forward(&mut ws, &images, rows);
            prop_assert_eq!(&outcome(&ws), &want, "{:?}", body);
        }
        // From a later stage's input with its channels scaled (as the
        // modulated network's evaluation runs, from the input an earlier
        // pass left), against the scaled copy through the plain pass:
        // the same bits, or, where a conv stage folds the factors into its
        // weights, the same to rounding (1e-5 of the largest logit).
        let n = arch.stages.len();
        let s = rng.random_range(0..n);
        if !matches!(arch.stages[s], Stage::Maxpool {}) && !poison {
            let maps = plain.activation(s).to_vec();
            let channels = net.shapes()[s].channels;
            let factor: Vec<f32> = (0..channels).map(|_| rng.random_range(0.5..2.0)).collect();
            scaled_channels(&maps, &factor, channels, plain.stage_input_mut(s));
            net.run_stages(&mut plain, rows, s..n, None, None);
            let want = plain.logits().to_vec();
            let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for body in Body::available() {
                let evaluation = Evaluation::on(&net, body);
                evaluation.forward(&mut ws, &images, rows);
                let input = evaluation.stage_input(&ws, s).to_vec();
                evaluation.run_scaled(&mut ws, (&input, &factor), rows, s..n, None);
                let got = ws.logits();
                prop_assert_eq!(got.len(), want.len());
                if matches!(arch.stages[s], Stage::Conv { .. }) {
                    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        prop_assert!((g - w).abs() <= 1e-5 * scale, "{:?} from stage {}: logit {} {} against {}", body, s, i, g, w);
                    }
                } else {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                    prop_assert_eq!(bits(got), bits(&want), "{:?} from stage {}", body, s);
                }
            }
        }
    }

    /// A conv stage's weights packed with its input channels' factors
    /// folded in give the bits of the weights multiplied by hand
    /// (w[o, i, j, c]·f[c]), on every body.
    #[test]
    fn folded_factors_equal_weights_scaled_by_hand(
        c_in in prop_oneof![1usize..6, Just(8), Just(16)], h in 1usize..6, w in 1usize..20,
        c_out in 1usize..40, half in 0usize..3, seed in any::<u64>(),
    ) {
        let (k, shape) = (2 * half + 1, Shape { channels: c_in, height: h, width: w });
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let (weights, bias, x) = (f(random(&mut rng, c_out * k * k * c_in)), f(random(&mut rng, c_out)), f(random(&mut rng, shape.len())));
        let factor: Vec<f32> = (0..c_in).map(|_| rng.random_range(0.1..3.0)).collect();
        let by_hand: Vec<f32> = weights.iter().enumerate().map(|(i, &v)| v * factor[i % c_in]).collect();
        let mut padded = Vec::new();
        pad_input(&x, 1, shape, k, &mut padded);
        for isa in Isa::available() {
            let run = |packed: &ConvWeights| {
                let mut out = vec![f32::NAN; h * w * c_out];
                conv_relu(isa, &padded, 1, shape, packed, &mut out);
                out.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            };
            let mut folded = ConvWeights::default();
            folded.repack_scaled(&weights, &bias, k, c_in, Some(&factor));
            prop_assert_eq!(run(&folded), run(&ConvWeights::new(&by_hand, &bias, k, c_in)), "{:?}", isa);
        }
    }

    /// Scaling channels while copying gives the in-place scaling's bits.
    #[test]
    fn scaled_copy_equals_scaling_in_place(
        rows in 1usize..4, pixels in 1usize..10,
        channels in prop_oneof![1usize..6, Just(8), Just(16), Just(32)], seed in any::<u64>(),
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let maps = f(random(&mut rng, rows * pixels * channels));
        let factors = f(random(&mut rng, rows * channels));
        let mut expected = maps.clone();
        scale_channels(&mut expected, &factors, channels);
        let mut out = vec![f32::NAN; 3];
        scaled_channels(&maps, &factors, channels, &mut out);
        prop_assert!(out.len() == expected.len() && out.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    /// A trial's mix (the factors times the per-channel partials, the
    /// bias, the ReLU and the max-pool after it, in one pass) gives the
    /// bits of the bias rows, the product through `matrixmultiply`, the
    /// ReLU and the max-pool, on every body, odd maps and infinite
    /// partials included.
    #[test]
    fn mix_equals_product_relu_then_pool(
        samples in 1usize..40, channels in prop_oneof![1usize..10, Just(16)],
        h in 1usize..8, w in 1usize..8, c_out in prop_oneof![1usize..20, Just(16), Just(32)],
        pool in any::<bool>(), seed in any::<u64>(), poison in any::<bool>(),
    ) {
        let map = Shape { channels: c_out, height: h, width: w };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let factors: Vec<f32> = random(&mut rng, samples * channels).into_iter().map(|v| v.exp() as f32).collect();
        let partials = input_maps(&mut rng, channels, map, poison);
        let bias = f(random(&mut rng, c_out));
        let mix = Mix { factors: &factors, partials: &partials, bias: &bias, map, pool };
        let mut expected = vec![f32::NAN; samples * mix.out_shape().len()];
        mix_partials_reference(&mix, &mut expected);
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; expected.len()];
            mix_partials(isa, &mix, &mut out);
            prop_assert!(out.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()), "{} differs", isa.name());
        }
    }

    /// Each pooled value is the largest of its 2×2 window.
    #[test]
    fn maxpool_takes_each_windows_maximum(
        batch in 1usize..3, c in prop_oneof![1usize..4, Just(8), Just(16), Just(32), 9usize..12],
        h in 2usize..9, w in 2usize..9, seed in any::<u64>(),
    ) {
        let shape = Shape { channels: c, height: h, width: w };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let x = random(&mut rng, batch * shape.len());
        let pooled = shape.pooled();
        let mut out = vec![0.0; batch * pooled.len()];
        maxpool_forward(&x, batch, shape, &mut out);
        for b in 0..batch {
            for y in 0..pooled.height {
                for xx in 0..pooled.width {
                    for ch in 0..c {
                        let at = |dy: usize, dx: usize| x[((b * h + 2 * y + dy) * w + 2 * xx + dx) * c + ch];
                        let max = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                        let o = ((b * pooled.height + y) * pooled.width + xx) * c + ch;
                        prop_assert_eq!(out[o], max);
                    }
                }
            }
        }
    }

    /// The max-pool's gradient, bit for bit, against the plain rule: each
    /// output's gradient added (to zero) to the first input of its window,
    /// in row-major order, equal to the output, every other input zero. Inputs
    /// drawn from a few values, so that windows tie; gradients include −0;
    /// odd sides leave a last row or column outside every window.
    #[test]
    fn maxpool_gradient_goes_to_the_first_maximum_of_each_window(
        batch in 1usize..3, c in prop_oneof![1usize..4, Just(8), Just(16), 9usize..12],
        h in 1usize..9, w in 1usize..9, seed in any::<u64>(),
    ) {
        let shape = Shape { channels: c, height: h, width: w };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let x: Vec<f32> = (0..batch * shape.len()).map(|_| rng.random_range(0..3) as f32).collect();
        let pooled = shape.pooled();
        let mut out = vec![0.0f32; batch * pooled.len()];
        maxpool_forward(&x, batch, shape, &mut out);
        let dout: Vec<f32> = (0..out.len())
            .map(|_| if rng.random_range(0..4) == 0 { -0.0 } else { rng.random_range(-1.0..1.0) })
            .collect();
        let mut expected = vec![0.0f32; x.len()];
        for b in 0..batch {
            for y in 0..pooled.height {
                for xx in 0..pooled.width {
                    for ch in 0..c {
                        let o = ((b * pooled.height + y) * pooled.width + xx) * c + ch;
                        let window = [(0, 0), (0, 1), (1, 0), (1, 1)]
                            .map(|(dy, dx)| ((b * h + 2 * y + dy) * w + 2 * xx + dx) * c + ch);
                        let taken = window.into_iter().find(|&i| x[i] == out[o]).expect("the maximum is in its window");
                        expected[taken] += dout[o];
                    }
                }
            }
        }
        let mut dx = vec![f32::NAN; x.len()];
        maxpool_backward(&x, &out, &dout, batch, shape, &mut dx);
        for (i, (a, e)) in dx.iter().zip(&expected).enumerate() {
            prop_assert!(a.to_bits() == e.to_bits(), "at {i}: {a} vs {e}");
        }
    }
}

/// A random small architecture: 1–2 conv stages (kernel 1, 3 or 5), an
/// optional max-pool after each, 1–2 dense stages, 1–3 tasks.
fn random_arch(rng: &mut Xoshiro256PlusPlus) -> ConvArch {
    let (side, width) = (rng.random_range(2..7usize), rng.random_range(2..7usize));
    let mut stages = Vec::new();
    let mut size = side.min(width);
    for _ in 0..rng.random_range(1..3) {
        stages.push(Stage::Conv {
            channels: rng.random_range(1..4),
            kernel: 2 * rng.random_range(0..3usize) + 1,
        });
        if size >= 2 && rng.random_range(0..2) == 1 {
            stages.push(Stage::Maxpool {});
            size /= 2;
        }
    }
    let convs: Vec<usize> = stages
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Stage::Conv { .. }))
        .map(|(i, _)| i + 1)
        .collect();
    for _ in 0..rng.random_range(1..3) {
        stages.push(Stage::Dense {
            size: rng.random_range(1..6),
        });
    }
    let arch = ConvArch {
        format: 2,
        input: Shape {
            channels: rng.random_range(1..3),
            height: side,
            width,
        },
        stages,
        tasks: rng.random_range(1..4),
        modulated_stage: convs[rng.random_range(0..convs.len())],
        beta: rng.random_range(-0.5..0.5),
    };
    arch.validate().expect("a valid random architecture");
    arch
}

struct Case {
    net: ConvNet<f64>,
    images: Vec<f64>,
    labels: Vec<u8>,
    m: Vec<f64>,
    coupling: Vec<f64>,
    variance: f64,
    gain: Vec<f64>,
    heads: Heads,
}

impl Case {
    fn loss(&self, net: &ConvNet<f64>, coupling: &[f64]) -> f64 {
        let rows = self.m.len();
        let mut ws = net.workspace();
        let modulator = Modulator {
            m: &self.m,
            coupling,
            beta: net.arch().beta as f64,
            variance: self.variance,
        };
        net.forward(
            &mut ws,
            &self.images,
            rows,
            Some(&modulator),
            Some(&self.gain),
        );
        let mut d = vec![0.0; ws.logits().len()];
        heads_loss(
            ws.logits(),
            net.arch().tasks,
            &self.labels,
            self.heads,
            &mut d,
        )
    }
}

fn build(seed: u64) -> Case {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let arch = random_arch(&mut rng);
    let mut net = ConvNet::<f64>::init(&arch, seed);
    for p in &mut net.params {
        *p += rng.random_range(-0.1..0.1);
    }
    let rows = rng.random_range(1..4);
    let tasks = arch.tasks;
    // The labels of every task; the loss reads those of its heads.
    let all_labels: Vec<u8> = (0..rows * tasks).map(|_| rng.random_range(0..2)).collect();
    let heads = if rng.random_range(0..2) == 1 {
        Heads::All
    } else {
        Heads::One(rng.random_range(0..tasks))
    };
    Case {
        images: random(&mut rng, rows * arch.input.len()),
        labels: heads.labels(&all_labels, tasks),
        m: (0..rows).map(|_| rng.random_range(0.5..1.5)).collect(),
        coupling: random(&mut rng, arch.modulated_channels()),
        variance: if rng.random_range(0..2) == 1 {
            0.3
        } else {
            0.0
        },
        gain: (0..arch.gated_size())
            .map(|_| rng.random_range(0.2..1.8))
            .collect(),
        heads,
        net,
    }
}

fn close(analytic: f64, numeric: f64) -> bool {
    (analytic - numeric).abs() <= 1e-6 * (1.0 + numeric.abs())
}

/// The analytic derivative against central differences of `loss_at(step)`
/// (the loss with one entry moved by `step`). A ReLU or max-pool kink
/// inside the step makes a central difference meaningless; it shows as
/// one-sided differences that disagree, so the step shrinks until the loss
/// is smooth across it. A kink at the point itself (no step is smooth)
/// leaves the analytic derivative between the two one-sided ones.
fn matches_finite_differences(analytic: f64, loss_at: impl Fn(f64) -> f64) -> Result<(), String> {
    let at = loss_at(0.0);
    let mut sides = (0.0, 0.0);
    for step in [1e-6, 1e-7, 1e-8] {
        let (plus, minus) = (loss_at(step), loss_at(-step));
        let (right, left) = ((plus - at) / step, (at - minus) / step);
        if (right - left).abs() <= 1e-5 * (1.0 + right.abs()) {
            let numeric = (plus - minus) / (2.0 * step);
            return if close(analytic, numeric) {
                Ok(())
            } else {
                Err(format!("{analytic} vs {numeric} (step {step})"))
            };
        }
        sides = (left, right);
    }
    let (low, high) = (sides.0.min(sides.1), sides.0.max(sides.1));
    if (low - 1e-6..=high + 1e-6).contains(&analytic) {
        Ok(())
    } else {
        Err(format!(
            "{analytic} outside the one-sided [{low}, {high}] at a kink"
        ))
    }
}

/// Bordering a batch large enough to be split over threads (and small
/// ones on the calling thread) writes every map where a plain index-by-
/// index copy puts it, into a reused buffer full of garbage.
#[test]
fn padding_a_large_batch_over_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    for (batch, channels, kernel) in [(300, 8, 3), (7, 3, 5), (1000, 1, 3)] {
        let shape = Shape {
            channels,
            height: 14,
            width: 13,
        };
        let x: Vec<f32> = random(&mut rng, batch * shape.len())
            .iter()
            .map(|&v| v as f32)
            .collect();
        let pad = kernel / 2;
        let (hp, wp) = (shape.height + 2 * pad, shape.width + 2 * pad);
        let mut want = vec![0.0; batch * hp * wp * channels];
        for b in 0..batch {
            for y in 0..shape.height {
                for xx in 0..shape.width {
                    for ch in 0..channels {
                        want[((b * hp + y + pad) * wp + xx + pad) * channels + ch] =
                            x[((b * shape.height + y) * shape.width + xx) * channels + ch];
                    }
                }
            }
        }
        let mut padded = vec![f32::NAN; want.len()];
        pool.install(|| pad_input(&x, batch, shape, kernel, &mut padded));
        assert!(
            padded
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "batch {batch}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every parameter's and every coupling's gradient equals the central
    /// finite difference (f64, step 1e-6, shorter across a kink); the
    /// shallower passes give the same gradients for what they compute.
    #[test]
    fn gradients_match_finite_differences(seed in any::<u64>()) {
        let case = build(seed);
        let net = &case.net;
        let rows = case.m.len();
        let mut ws = net.workspace();
        let modulator = Modulator { m: &case.m, coupling: &case.coupling, beta: net.arch().beta as f64, variance: case.variance };
        net.forward(&mut ws, &case.images, rows, Some(&modulator), Some(&case.gain));
        let mut dlogits = vec![0.0; ws.logits().len()];
        heads_loss(ws.logits(), net.arch().tasks, &case.labels, case.heads, &mut dlogits);
        let mut all = net.zero_grads();
        net.backward(&mut ws, &dlogits, Depth::All, &mut all);
        for i in 0..net.params.len() {
            let moved = |step: f64| {
                let mut moved = net.clone();
                moved.params[i] += step;
                case.loss(&moved, &case.coupling)
            };
            let checked = matches_finite_differences(all.params[i], moved);
            prop_assert!(checked.is_ok(), "param {i}: {}", checked.unwrap_err());
        }
        for k in 0..case.coupling.len() {
            let moved = |step: f64| {
                let mut coupling = case.coupling.clone();
                coupling[k] += step;
                case.loss(net, &coupling)
            };
            let checked = matches_finite_differences(all.coupling[k], moved);
            prop_assert!(checked.is_ok(), "coupling {k}: {}", checked.unwrap_err());
        }
        for depth in [Depth::Coupling, Depth::CouplingAndReadout, Depth::Readout] {
            let mut ws = net.workspace();
            net.forward(&mut ws, &case.images, rows, Some(&modulator), Some(&case.gain));
            let mut part = net.zero_grads();
            net.backward(&mut ws, &dlogits, depth, &mut part);
            let heads = net.head_params();
            prop_assert_eq!(&part.params[heads.weights.start..heads.bias.end], &all.params[heads.weights.start..heads.bias.end]);
            if depth != Depth::Readout {
                prop_assert_eq!(&part.coupling, &all.coupling);
            }
        }
    }
}
