//! Composite stimuli (§1): placement, labels, distractors, noise
//! moments, pools, independence from the thread count and from how a set
//! is split, and the noise of every SIMD body against the plain loop.

use std::path::Path;

use comod::data::composite::{EMPTY, quadrant_pixel};
use comod::data::digits::SMALL_PIXELS;
use comod::data::noise::{LANES, add_noise, add_noise_scalar};
use comod::data::{CANVAS_PIXELS, CompositeKind, CompositeSet, Digits, NOISE_STD, Pool, Task};
use comod::net::simd::Isa;
use comod::rng::rng_for;
use proptest::prelude::*;
use rand::{Rng as _, SeedableRng};

fn shipped() -> Digits {
    Digits::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data")).expect("shipped digits load")
}

/// The 196 pixels of quadrant `q` of a canvas.
fn quadrant(canvas: &[f32], q: usize) -> Vec<f32> {
    (0..SMALL_PIXELS)
        .map(|k| canvas[quadrant_pixel(q, k)])
        .collect()
}

/// The payload of a shipped gzip IDX file after its `header` bytes, read
/// independently of the loader.
fn raw_idx(name: &str, header: usize) -> Vec<u8> {
    use std::io::Read;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes.split_off(header)
}

#[test]
fn shipped_digits_are_read_in_order() {
    let digits = shipped();
    let labels = raw_idx("mnist10k-labels-idx1-ubyte.gz", 8);
    let images = raw_idx("mnist10k-images-idx3-ubyte.gz", 16);
    let test_start = labels.len() * 8 / 10;
    assert_eq!(
        (digits.len(), digits.test_start()),
        (labels.len(), test_start)
    );
    let mut small = [0.0f32; SMALL_PIXELS];
    for (i, (&label, image)) in labels.iter().zip(images.chunks_exact(784)).enumerate() {
        assert_eq!(digits.label(i as u32), label, "label {i}");
        comod::data::digits::downscale(image, &mut small);
        assert_eq!(digits.small(i as u32), &small[..], "digit {i}");
    }
    for class in 0..10u8 {
        for (pool, range) in [
            (Pool::Train, 0..test_start),
            (Pool::Test, test_start..labels.len()),
        ] {
            let want: Vec<u32> = range
                .filter(|&i| labels[i] == class)
                .map(|i| i as u32)
                .collect();
            assert_eq!(
                digits.of_class(pool, class as usize),
                &want[..],
                "{pool:?} {class}"
            );
        }
    }
}

#[test]
fn downscaling_averages_two_by_two_blocks() {
    let mut digit = [0u8; 784];
    digit[0] = 255; // block (0,0): one of four pixels lit
    digit[28 * 26 + 26..28 * 26 + 28].copy_from_slice(&[255, 255]);
    digit[28 * 27 + 26..28 * 27 + 28].copy_from_slice(&[255, 51]);
    let mut small = [0.0f32; 196];
    comod::data::digits::downscale(&digit, &mut small);
    assert_eq!(small[0], 0.25);
    assert!((small[195] - (255.0 * 3.0 + 51.0) / 1020.0).abs() < 1e-7);
    assert_eq!(small.iter().filter(|&&v| v != 0.0).count(), 2);
}

#[test]
fn specific_task_places_target_and_distractors() {
    let digits = shipped();
    let task: Task = "3-8@2".parse().unwrap();
    let set = CompositeSet::generate(
        &digits,
        CompositeKind::Specific {
            task,
            distractors: true,
        },
        Pool::Test,
        400,
        7,
        0.0,
    );
    let mut ones = 0;
    for i in 0..set.len() {
        let canvas = set.image(i);
        let sources = set.sources[i];
        let target = sources[2];
        assert_ne!(target, EMPTY);
        let class = digits.label(target);
        assert_eq!(
            class,
            task.class_of(set.labels[i]),
            "label matches the target digit"
        );
        assert_eq!(class, set.targets[i]);
        ones += set.labels[i] as usize;
        for (q, &source) in sources.iter().enumerate() {
            assert_ne!(source, EMPTY, "quadrant {q} holds a distractor");
            assert!(source as usize >= digits.test_start(), "test pool only");
            assert_eq!(
                quadrant(canvas, q),
                digits.small(source),
                "quadrant {q} shows exactly its digit"
            );
        }
    }
    assert!(
        (150..250).contains(&ones),
        "classes a and b each about half: {ones} of 400"
    );
}

#[test]
fn no_distractor_and_general_composites_leave_other_quadrants_empty() {
    let digits = shipped();
    let task: Task = "1-7@1".parse().unwrap();
    let kinds = [
        CompositeKind::Specific {
            task,
            distractors: false,
        },
        CompositeKind::General,
    ];
    for kind in kinds {
        let set = CompositeSet::generate(&digits, kind, Pool::Train, 300, 11, 0.0);
        let mut seen_quadrants = [0; 4];
        for i in 0..set.len() {
            let canvas = set.image(i);
            let filled: Vec<usize> = (0..4).filter(|&q| set.sources[i][q] != EMPTY).collect();
            assert_eq!(filled.len(), 1);
            let q = filled[0];
            seen_quadrants[q] += 1;
            let source = set.sources[i][q];
            assert!((source as usize) < digits.test_start(), "train pool only");
            assert_eq!(quadrant(canvas, q), digits.small(source));
            for other in (0..4).filter(|&o| o != q) {
                assert!(quadrant(canvas, other).iter().all(|&v| v == 0.0));
            }
            match kind {
                CompositeKind::General => assert_eq!(set.labels[i], digits.label(source)),
                CompositeKind::Specific { .. } => {
                    assert_eq!(q, 1);
                    assert_eq!(task.class_of(set.labels[i]), digits.label(source));
                }
                CompositeKind::Filled => unreachable!("not among the kinds of this test"),
            }
        }
        if kind == CompositeKind::General {
            assert!(
                seen_quadrants.iter().all(|&n| n > 50),
                "uniform quadrants: {seen_quadrants:?}"
            );
        }
    }
}

#[test]
fn background_noise_has_the_stated_moments() {
    let digits = shipped();
    let clean = CompositeSet::generate(&digits, CompositeKind::General, Pool::Test, 300, 5, 0.0);
    let noisy = CompositeSet::generate(
        &digits,
        CompositeKind::General,
        Pool::Test,
        300,
        5,
        NOISE_STD,
    );
    assert_eq!(
        clean.sources, noisy.sources,
        "noise does not change the draw of digits"
    );
    let residual: Vec<f64> = noisy
        .images
        .iter()
        .zip(&clean.images)
        .map(|(n, c)| (n - c) as f64)
        .collect();
    let n = residual.len() as f64;
    let mean = residual.iter().sum::<f64>() / n;
    let var = residual.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    let kurtosis = residual.iter().map(|r| (r - mean).powi(4)).sum::<f64>() / n / var.powi(2);
    assert!(mean.abs() < 5.0 * 0.1 / n.sqrt(), "mean {mean}");
    assert!((var.sqrt() - 0.1).abs() < 0.002, "std {}", var.sqrt());
    assert!((kurtosis - 3.0).abs() < 0.1, "Gaussian kurtosis {kurtosis}");
}

#[test]
fn generation_does_not_depend_on_thread_count() {
    let digits = shipped();
    let task: Task = "0-9@3".parse().unwrap();
    let make = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            CompositeSet::generate(
                &digits,
                CompositeKind::Specific {
                    task,
                    distractors: true,
                },
                Pool::Train,
                257,
                99,
                NOISE_STD,
            )
        })
    };
    let (one, two) = (make(1), make(2));
    assert!(
        one.images
            .iter()
            .zip(&two.images)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert_eq!(one.labels, two.labels);
}

#[test]
fn filled_composites_show_a_digit_of_the_pool_in_every_quadrant() {
    let digits = shipped();
    let set = CompositeSet::generate(&digits, CompositeKind::Filled, Pool::Test, 300, 5, 0.0);
    let mut classes = [0usize; 10];
    for i in 0..set.len() {
        for q in 0..4 {
            let source = set.sources[i][q];
            assert!((source as usize) >= digits.test_start(), "test pool only");
            assert_eq!(quadrant(set.image(i), q), digits.small(source));
            classes[digits.label(source) as usize] += 1;
        }
    }
    assert!(
        classes.iter().all(|&n| n > 80),
        "uniform classes: {classes:?}"
    );
}

#[test]
fn a_set_drawn_piece_by_piece_is_the_set_drawn_whole() {
    let digits = shipped();
    let kind = CompositeKind::Specific {
        task: "2-7@0".parse().unwrap(),
        distractors: true,
    };
    let whole = CompositeSet::generate(&digits, kind, Pool::Test, 23, 4, NOISE_STD);
    let mut piece = CompositeSet::default();
    let mut images = Vec::new();
    // Pieces that start off the noise's groups of LANES canvases.
    for range in [0..5, 5..14, 14..15, 15..23] {
        piece.regenerate(&digits, kind, Pool::Test, range, 4, NOISE_STD);
        images.extend_from_slice(&piece.images);
    }
    assert_eq!(images.len(), whole.images.len());
    assert!(
        images
            .iter()
            .zip(&whole.images)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "a piece's canvases differ from the whole set's"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every body's noise is `StandardNormal`'s, pixel by pixel and bit for
    /// bit, from each canvas's own generator, and leaves each generator
    /// where the plain loop leaves it. 64 cases × 4 canvases × 784 pixels
    /// draw about 200 000 values: a few thousand of them leave the
    /// ziggurat's common case, a few dozen in its tail.
    #[test]
    fn every_body_draws_the_noise_of_the_plain_loop(
        seed in any::<u64>(),
        noise_std in prop_oneof![Just(NOISE_STD), 0.001f32..3.0],
        background in prop::collection::vec(-2.0f32..2.0, LANES * CANVAS_PIXELS),
    ) {
        let generators = || (0..LANES as u64).map(|l| rng_for(seed, &[l.into()])).collect::<Vec<_>>();
        let mut want_rngs = generators();
        let mut want = background.clone();
        add_noise_scalar(&mut want_rngs, &mut want, noise_std);
        for isa in Isa::available() {
            let mut rngs = generators();
            let mut got = background.clone();
            add_noise(isa, &mut rngs, &mut got, noise_std);
            for (p, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert_eq!(g.to_bits(), w.to_bits(), "{} body, canvas {}, pixel {}", isa, p / CANVAS_PIXELS, p % CANVAS_PIXELS);
            }
            for (l, (r, w)) in rngs.iter().zip(&want_rngs).enumerate() {
                prop_assert_eq!(r.state(), w.state(), "{} body, generator {}", isa, l);
            }
        }
    }
}

/// A generator whose next 64-bit draw is `bits`: xoshiro256++ outputs
/// rotl(s0 + s3, 23) + s0, so s3 follows from s0 and the output; the rest
/// of the state comes from `seed`.
fn generator_drawing_next(bits: u64, seed: u64) -> comod::rng::Rng {
    let mut fill = rng_for(seed, &["state".into()]);
    let [s0, s1, s2]: [u64; 3] = std::array::from_fn(|_| fill.next_u64());
    let s3 = bits.wrapping_sub(s0).rotate_right(23).wrapping_sub(s0);
    let mut bytes = [0u8; 32];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip([s0, s1, s2, s3]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let rng = comod::rng::Rng::from_seed(bytes);
    assert_eq!(
        rng.clone().next_u64(),
        bits,
        "the crafted generator's next draw"
    );
    rng
}

/// The 64-bit draw that `StandardNormal`'s ziggurat reads as box `i` and
/// point `u` in [-1, 1) (near it, where u + 3 rounds): the low 8 bits pick
/// the box, the top 52 the mantissa of u + 3 in [2, 4).
fn ziggurat_draw(i: u64, u: f64) -> u64 {
    let mantissa = (u + 3.0).to_bits() & ((1 << 52) - 1);
    (mantissa << 12) | i
}

/// The ziggurat's rare cases, each forced as a canvas's first draw beside
/// common ones: box 0 inside and beyond box 1's width (the tail), a box's
/// edge (its second test) at u near ±1, the top two boxes on both sides
/// of box 254's bound and u = 0. Every body matches the plain loop there.
#[test]
fn every_body_draws_the_rare_cases_of_the_plain_loop() {
    let firsts = [
        (0, 0.5),
        (0, -0.999),
        (0, 0.999),
        (1, 0.9999),
        (128, -1.0),
        (128, 0.999_999),
        (254, 0.3),
        (254, 0.999),
        (255, 0.1),
        (255, -0.9),
        (7, 0.0),
        (200, -0.25),
    ];
    for (g, group) in firsts.chunks_exact(LANES).enumerate() {
        let generators = || {
            group
                .iter()
                .enumerate()
                .map(|(l, &(i, u))| {
                    generator_drawing_next(ziggurat_draw(i, u), (g * LANES + l) as u64)
                })
                .collect::<Vec<_>>()
        };
        let mut want_rngs = generators();
        let mut want = vec![0.0f32; LANES * CANVAS_PIXELS];
        add_noise_scalar(&mut want_rngs, &mut want, NOISE_STD);
        for isa in Isa::available() {
            let mut rngs = generators();
            let mut got = vec![0.0f32; LANES * CANVAS_PIXELS];
            add_noise(isa, &mut rngs, &mut got, NOISE_STD);
            for (p, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{isa} body, canvas {}, pixel {}, first draw {:?}",
                    p / CANVAS_PIXELS,
                    p % CANVAS_PIXELS,
                    group[p / CANVAS_PIXELS]
                );
            }
            for (r, w) in rngs.iter().zip(&want_rngs) {
                assert_eq!(r.state(), w.state(), "{isa} body");
            }
        }
    }
}
