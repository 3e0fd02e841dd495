//! The conv stage's weight gradient from the bordered map (§8) against
//! its plain statement ([`weight_grad::reference`]) and against the
//! product form (im2col + `matrixmultiply`, `ops::conv_backward`), bit for
//! bit, on random geometries (beside and above the 256-pixel chunk,
//! channel counts off the register width, kernels 1, 3 and 5), for every
//! SIMD body this CPU runs; the scalar choice declines.

use comod::conv::direct::pad_input;
use comod::conv::ops::{conv_backward, im2col};
use comod::conv::weight_grad::{self, Geometry, try_weight_grad};
use comod::data::Shape;
use comod::net::simd::Isa;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn check(g: Geometry, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut values =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let columns = g.kernel * g.kernel * g.shape.channels;
    let pixels = g.batch * g.shape.pixels();
    let x = values(g.batch * g.shape.len());
    let dy = values(pixels * g.c_out);
    let start = values(g.c_out * columns);
    let mut padded = Vec::new();
    pad_input(&x, g.batch, g.shape, g.kernel, &mut padded);

    let mut reference = start.clone();
    weight_grad::reference(g, &padded, &dy, &mut reference);

    if Isa::Avx2Fma.supported() {
        // matrixmultiply multiplies with FMA on such a CPU.
        let mut cols = vec![0.0f32; pixels * columns];
        im2col(&x, g.batch, g.shape, g.kernel, &mut cols);
        let weights = vec![0.0f32; g.c_out * columns];
        let (mut dw, mut db) = (start.clone(), vec![0.0f32; g.c_out]);
        conv_backward(&cols, &weights, &dy, &mut dw, &mut db, None);
        prop_assert_eq!(bits(&dw), bits(&reference), "product form");
    }
    for isa in Isa::available() {
        let mut dw = start.clone();
        let served = try_weight_grad(isa, g, &padded, &dy, &mut dw);
        if isa == Isa::Scalar {
            prop_assert!(!served, "the scalar choice takes the product form");
            prop_assert_eq!(
                bits(&dw),
                bits(&start),
                "a declined gradient leaves dW alone"
            );
        } else {
            prop_assert!(served, "{} declined", isa.name());
            prop_assert_eq!(bits(&dw), bits(&reference), "{}", isa.name());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bodies_reference_and_product_form_agree_bit_for_bit(
        batch in 1usize..4,
        height in 1usize..13,
        width in 1usize..13,
        channels in 1usize..11,
        c_out in 1usize..21,
        kernel in prop_oneof![Just(1usize), Just(3), Just(5)],
        seed in any::<u64>(),
    ) {
        let shape = Shape { channels, height, width };
        check(Geometry { batch, shape, kernel, c_out }, seed)?;
    }
}

#[test]
fn the_benchmark_stage_agrees() {
    // conv-mnist's second stage (8 → 16 channels, 14×14, 3×3) on 8 images:
    // 1568 pixels, seven chunks.
    let shape = Shape {
        channels: 8,
        height: 14,
        width: 14,
    };
    let g = Geometry {
        batch: 8,
        shape,
        kernel: 3,
        c_out: 16,
    };
    check(g, 7).unwrap();
}
