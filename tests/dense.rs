//! The dense forward of the retraining methods' evaluation (§4) against
//! the network's own forward pass: the same bits, on random architectures
//! (beside sizes above the 256-input chunk of the products), random
//! weights, any row count and any β, for both SIMD bodies; and the dense
//! stage of a convolutional network's evaluations (§8) against the same
//! product through `matrixmultiply`. A body the CPU lacks is skipped with
//! a message.

mod common;

use common::{arch_strategy, bodies};
use comod::data::CANVAS_PIXELS;
use comod::kernel::dense::{
    DensePlan, DenseScratch, LaneCount, RowsScratch, dense_forward, dense_lanes, dense_rows,
    has_dense_tiles, lane_block_correct, lane_block_correct_reference,
};
use comod::kernel::packed::LANE_ROWS;
use comod::kernel::plan::{PANEL, PackedLayer, fill_panel, scale_panel};
use comod::kernel::{Body, PackedRows};
use comod::net::layers::scale_rows;
use comod::net::linalg::{Mat, MatMut, gemm};
use comod::net::simd::Isa;
use comod::net::{Arch, Model, Modulation, Nonlinearity};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The SIMD bodies this CPU runs, the ones with dense tiles (a message
/// names each one that cannot be tested here).
fn dense_bodies() -> Vec<Body> {
    bodies()
        .into_iter()
        .filter(|&b| has_dense_tiles(b))
        .collect()
}

/// Checks one network on `rows` random canvases on every SIMD body this
/// CPU runs; `None` when it runs neither.
fn agrees(arch: &Arch, seed: u64, rows: usize, m: f32) -> Option<()> {
    let bodies = dense_bodies();
    if bodies.is_empty() {
        return None;
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut model = Model::<f32>::init(arch, seed);
    // Random biases too (the initialisation zeroes them).
    for l in 1..=arch.depth() {
        for k in model.layer(l).bias.clone() {
            model.params[k] = rng.random_range(-0.3..0.3);
        }
    }
    let canvases: Vec<f32> = (0..rows * CANVAS_PIXELS)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let gated = arch.gated_layer();
    let mut ws = model.workspace(rows);
    let want = model
        .activity_at(&mut ws, &Modulation::off(arch), &canvases, gated, m)
        .to_vec();
    let input = PackedRows::reordered(&canvases, CANVAS_PIXELS, model.input_order());
    let plan = DensePlan::new(&model, m);
    for body in bodies {
        let mut got = vec![f32::NAN; rows * arch.size(gated)];
        dense_forward(body, &plan, &input, &mut got, &mut DenseScratch::default());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{body:?} value {i}: dense {g:e}, forward pass {w:e}"
            );
        }
    }
    Some(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn dense_forward_gives_the_forward_pass_bits(
        arch in arch_strategy(30, 3),
        seed in any::<u64>(),
        rows in 1usize..110,
        m in 0.5f32..1.5,
    ) {
        agrees(&arch, seed, rows, m);
    }
}

/// x·Wᵀ + b, then ReLU when `relu`, as a convolutional network's plain
/// pass computes a dense stage and the MLP's forward pass its readout:
/// the bias, then `matrixmultiply`'s product added.
fn dense_rows_by_matrixmultiply(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    rows: usize,
    relu: bool,
) -> Vec<f32> {
    let (outputs, inputs) = (b.len(), w.len() / b.len());
    let mut y: Vec<f32> = b.iter().copied().cycle().take(rows * outputs).collect();
    gemm(
        Mat::row_major(x, rows, inputs),
        Mat::row_major(w, outputs, inputs).t(),
        true,
        MatMut::row_major(&mut y, rows, outputs),
    );
    if relu {
        y.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The tiles reading rows where they are (whole tiles, then the last
    /// rows padded into one), and those holding rows along the lanes
    /// (whole groups of 16, one or two at a time, and a part group, panels
    /// of every width), give
    /// `matrixmultiply`'s bits, with ReLU (a dense stage) or without (a
    /// readout), also across several 256-input chunks, short panels and
    /// non-finite inputs.
    #[test]
    fn dense_rows_give_matrixmultiply_bits(
        rows in 1usize..70,
        inputs in prop_oneof![1usize..40, 250usize..700],
        outputs in 1usize..70,
        relu in any::<bool>(),
        infinite in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (mut x, w, b) = (draw(rows * inputs), draw(outputs * inputs), draw(outputs));
        if infinite {
            let at = (seed as usize) % x.len();
            x[at] = f32::INFINITY;
        }
        let want = dense_rows_by_matrixmultiply(&x, &w, &b, rows, relu);
        let activation = relu.then_some(Nonlinearity::Relu);
        let layer = PackedLayer::dense(&w, &b, inputs, outputs);
        // One scratch for every body, full of another call's values.
        let mut scratch = RowsScratch::default();
        let along_lanes = PackedRows::along_lanes(&x, inputs);
        for body in dense_bodies() {
            let mut got = vec![f32::NAN; rows * outputs];
            dense_rows(body, &layer, activation, &x, rows, &mut got, &mut scratch);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert_eq!(g.to_bits(), w.to_bits(), "{:?} value {}: {:e} against {:e}", body, i, g, w);
            }
            let mut got = vec![f32::NAN; rows * outputs];
            dense_lanes(body, &layer, activation, &along_lanes, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert_eq!(g.to_bits(), w.to_bits(), "{:?} along the lanes, value {}: {:e} against {:e}", body, i, g, w);
            }
        }
    }

    /// Packed rows (in groups of 12, or along the lanes) scaled input by
    /// input are the scaled rows packed, and the rows selected from them
    /// are the selected rows packed.
    #[test]
    fn scaled_and_selected_packed_rows_are_those_rows_packed(
        rows in 1usize..40,
        width in 1usize..30,
        lanes in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let pack = if lanes { PackedRows::along_lanes } else { PackedRows::new };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-2.0..2.0)).collect() };
        let (x, factor) = (draw(rows * width), draw(width));
        let mut scaled = x.clone();
        scale_rows(&mut scaled, &factor);
        // Into a buffer of another shape and grouping, as an evaluator reuses one.
        let mut got = PackedRows::new(&draw(7 * 3), 3);
        pack(&x, width).scale_inputs_into(&factor, &mut got);
        let want = pack(&scaled, width);
        prop_assert_eq!((got.rows(), got.width(), got.group()), (rows, width, want.group()));
        prop_assert_eq!(got.data(), want.data());
        // Every row once, backwards, then the first again.
        let picked: Vec<usize> = (0..rows).rev().chain([0]).collect();
        let rows_of: Vec<f32> = picked.iter().flat_map(|&r| x[r * width..(r + 1) * width].to_vec()).collect();
        let got = pack(&x, width).select(&picked);
        let want = pack(&rows_of, width);
        prop_assert_eq!((got.rows(), got.group()), (picked.len(), want.group()));
        prop_assert_eq!(got.data(), want.data());
    }

    /// Rows reordered and packed in one pass are the rows reordered, then
    /// packed: any order of a row's values, any number of rows (a last
    /// group part full). The test after it takes the network's own order.
    #[test]
    fn rows_reordered_in_the_packing_are_the_reordered_rows_packed(
        rows in 1usize..40,
        width in 1usize..30,
        order_seed in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let x: Vec<f32> = (0..rows * width).map(|_| rng.random_range(-2.0..2.0)).collect();
        // Any values of the row, some repeated, some left out.
        let mut pick = Xoshiro256PlusPlus::seed_from_u64(order_seed);
        let inputs = pick.random_range(1..2 * width);
        let order: Vec<u16> = (0..inputs).map(|_| pick.random_range(0..width as u16)).collect();
        let reordered: Vec<f32> = x
            .chunks_exact(width)
            .flat_map(|row| order.iter().map(|&p| row[usize::from(p)]))
            .collect();
        let got = PackedRows::reordered(&x, width, &order);
        let want = PackedRows::new(&reordered, inputs);
        prop_assert_eq!((got.rows(), got.width(), got.group()), (rows, inputs, want.group()));
        prop_assert_eq!(got.data(), want.data());
    }
}

#[test]
fn the_input_packed_in_its_order_is_the_reordered_input_packed() {
    let model = Model::<f32>::init(&Arch::preset("paper3", 1).unwrap(), 1);
    let canvases: Vec<f32> = (0..25 * CANVAS_PIXELS).map(|i| (i % 97) as f32).collect();
    let got = PackedRows::reordered(&canvases, CANVAS_PIXELS, model.input_order());
    let want = PackedRows::new(&model.reorder_input(&canvases), CANVAS_PIXELS);
    assert_eq!(got.data(), want.data());
}

#[test]
fn presets_give_the_forward_pass_bits() {
    // 400 and 784-wide inputs: products of more than one 256-input chunk.
    for (name, layer) in [
        ("paper3", 1),
        ("deep4", 2),
        ("local2", 1),
        ("relu-deep4", 1),
    ] {
        let arch = Arch::preset(name, layer).unwrap();
        if agrees(&arch, 5, 101, 1.0).is_none() {
            return;
        }
    }
}

#[test]
fn a_repacked_plan_equals_a_fresh_one() {
    // One plan reused across networks of other shapes, weights and β (as
    // an evaluator repacks it at every evaluation) computes what a fresh
    // plan computes.
    let Some(&body) = dense_bodies().last() else {
        eprintln!("this CPU has no SIMD body: the dense tiles are not tested");
        return;
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let canvases: Vec<f32> = (0..37 * CANVAS_PIXELS)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let mut reused = DensePlan::default();
    for (name, layer, beta, seed) in [
        ("deep4", 1, 0.0, 1),
        ("paper3", 1, 0.3, 2),
        ("local2", 2, 0.0, 3),
        ("paper3", 1, -0.2, 4),
    ] {
        let mut arch = Arch::preset(name, layer).unwrap();
        arch.beta = beta;
        let model = Model::<f32>::init(&arch, seed);
        let input = PackedRows::reordered(&canvases, CANVAS_PIXELS, model.input_order());
        let run = |plan: &DensePlan| {
            let mut out = vec![f32::NAN; 37 * arch.size(arch.gated_layer())];
            dense_forward(body, plan, &input, &mut out, &mut DenseScratch::default());
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        reused.repack(&model, 1.0);
        assert_eq!(
            run(&reused),
            run(&DensePlan::new(&model, 1.0)),
            "{name} β {beta}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A panel holds its neurons' weights transposed, zero past the last
    /// neuron, by every instruction set's code, over a buffer full of
    /// other values.
    #[test]
    fn a_panel_holds_the_transposed_weights(
        width in 0usize..=PANEL,
        inputs in 1usize..300,
        seed in any::<u64>(),
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let rows: Vec<f32> = (0..width * inputs).map(|_| rng.random_range(-1.0..1.0)).collect();
        for isa in Isa::available() {
            let mut panel = vec![f32::NAN; inputs * PANEL];
            fill_panel(isa, &rows, inputs, width, &mut panel);
            for k in 0..inputs {
                for c in 0..PANEL {
                    let want = if c < width { rows[c * inputs + k] } else { 0.0 };
                    let got = panel[k * PANEL + c];
                    prop_assert_eq!(got.to_bits(), want.to_bits(), "{:?} input {} lane {}", isa, k, c);
                }
            }
        }
    }

    /// A panel's weights times their inputs' factors, each product rounded
    /// once, by every instruction set's code over a buffer full of other
    /// values: the bits of the plain product, tiny, huge and signed
    /// values included.
    #[test]
    fn a_scaled_panel_holds_each_weight_times_its_factor(
        inputs in 1usize..300,
        seed in any::<u64>(),
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut value = || rng.random_range(-1.0f32..1.0) * 10f32.powi(rng.random_range(-40..=38));
        let from: Vec<f32> = (0..inputs * PANEL).map(|_| value()).collect();
        let factor: Vec<f32> = (0..inputs).map(|_| value()).collect();
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; inputs * PANEL];
            scale_panel(isa, &from, &factor, &mut out);
            for (i, (&got, &w)) in out.iter().zip(&from).enumerate() {
                let want = w * factor[i / PANEL];
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{:?} input {} lane {}", isa, i / PANEL, i % PANEL);
            }
        }
    }

    /// A packed layer's buffers reused for the layers of a network, of
    /// every shape, up and down, hold what a fresh packing holds.
    #[test]
    fn repacking_leaves_nothing_of_the_last_layer(arch in arch_strategy(30, 3), seed in any::<u64>()) {
        let model = Model::<f32>::init(&arch, seed);
        let depth = arch.depth();
        let mut reused = PackedLayer::default();
        for l in (1..=depth).chain((1..depth).rev()) {
            reused.repack(&model, l);
            let fresh = PackedLayer::pack(&model, l);
            for g in 0..fresh.groups {
                let panels = fresh.panels_per_group();
                prop_assert_eq!(reused.panels(g, 0, panels), fresh.panels(g, 0, panels), "layer {}", l);
                prop_assert_eq!(reused.panels_bias(g, 0, panels), fresh.panels_bias(g, 0, panels), "layer {}", l);
            }
        }
    }

    /// A layer with its inputs scaled (the modulated evaluation's layer
    /// ℓ+1, §4) holds each packed weight times its input's factor, the
    /// biases as they are, for dense and local layers, in one buffer
    /// reused up and down a network's layers.
    #[test]
    fn scaled_inputs_hold_each_weight_times_its_factor(arch in arch_strategy(30, 3), seed in any::<u64>()) {
        let model = Model::<f32>::init(&arch, seed);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 1);
        let mut scaled = PackedLayer::default();
        for l in (1..=arch.depth()).chain((1..arch.depth()).rev()) {
            let layer = PackedLayer::pack(&model, l);
            let factor: Vec<f32> = (0..layer.inputs).map(|_| rng.random_range(0.1..3.0)).collect();
            scaled.scale_inputs(&layer, &factor);
            let (ni, panels) = (layer.group_inputs(), layer.panels_per_group());
            prop_assert_eq!((scaled.groups, scaled.inputs, scaled.outputs), (layer.groups, layer.inputs, layer.outputs));
            for g in 0..layer.groups {
                prop_assert_eq!(scaled.panels_bias(g, 0, panels), layer.panels_bias(g, 0, panels), "layer {}", l);
                for p in 0..panels {
                    let (got, packed) = (scaled.panels(g, p, 1), layer.panels(g, p, 1));
                    for (i, (&got, &w)) in got.iter().zip(packed).enumerate() {
                        let want = w * factor[g * ni + i / PANEL];
                        prop_assert_eq!(got.to_bits(), want.to_bits(), "layer {} group {} panel {} entry {}", l, g, p, i);
                    }
                }
            }
        }
    }
}

/// A logit of a readout block: mostly small integers, so that rows tie
/// between columns, with ±0, ±inf and NaN now and then.
fn block_logit() -> impl Strategy<Value = f32> {
    prop_oneof![
        12 => (-2i32..=2).prop_map(|v| v as f32),
        1 => prop_oneof![Just(0.0f32), Just(-0.0), Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(f32::NAN)],
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// §2's accuracy counted on a block of readout lanes
    /// ([`lane_block_correct`], `retrain-last`'s evaluations) is the plain
    /// count on every body: ties kept by the first readout column, a
    /// non-finite logit of a real row giving none, and the stale lanes
    /// past the block's rows and outputs never read.
    #[test]
    fn a_lane_block_counts_what_its_reference_counts(
        width in 1usize..=PANEL,
        rows in 0usize..=LANE_ROWS,
        values in prop::collection::vec(block_logit(), PANEL * LANE_ROWS),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..12),
        label_picks in prop::collection::vec(any::<prop::sample::Index>(), LANE_ROWS),
    ) {
        let mut sums = [[0.0f32; LANE_ROWS]; PANEL];
        for (o, lanes) in sums.iter_mut().enumerate() {
            lanes.copy_from_slice(&values[o * LANE_ROWS..(o + 1) * LANE_ROWS]);
        }
        let cols: Vec<usize> = picks.iter().map(|p| p.index(width)).collect();
        // Labels up to one past the last readout column: a row no column wins.
        let labels: Vec<u8> = label_picks[..rows].iter().map(|p| p.index(cols.len() + 1) as u8).collect();
        let count = LaneCount { width, labels: &labels, cols: &cols };
        let want = lane_block_correct_reference(&sums, count);
        for body in dense_bodies().into_iter().chain([Body::Scalar]) {
            let got = lane_block_correct(body, &sums, count);
            prop_assert_eq!(got, want, "{:?}", body);
        }
    }
}

/// The reference [`lane_block_correct_reference`] on a block written out:
/// the first of two equal best columns wins, a NaN past the block's rows
/// or outputs is not read, and one in a real row gives no count.
#[test]
fn a_lane_block_reference_counts_by_hand() {
    let mut sums = [[f32::NAN; LANE_ROWS]; PANEL];
    // Rows 0..3 of columns 0..3; row 0 ties columns 1 and 2.
    for (o, column) in [[1.0, 5.0, 0.0], [3.0, 2.0, -1.0], [3.0, 9.0, -2.0]]
        .iter()
        .enumerate()
    {
        sums[o][..3].copy_from_slice(column);
    }
    // Readout columns 2, 1, 0: row 0's best is column 2 (first of the tie,
    // readout index 0), row 1's column 2 (index 0), row 2's column 0 (index 2).
    let count = |sums: &_, labels: &[u8], cols: &[usize]| {
        let count = LaneCount {
            width: 3,
            labels,
            cols,
        };
        lane_block_correct_reference(sums, count)
    };
    assert_eq!(count(&sums, &[0, 0, 2], &[2, 1, 0]), Some(3));
    assert_eq!(count(&sums, &[1, 0, 2], &[2, 1, 0]), Some(2));
    assert_eq!(count(&sums, &[0, 0], &[1, 2]), Some(1));
    sums[1][2] = f32::NAN;
    assert_eq!(count(&sums, &[0, 0, 2], &[2, 1, 0]), None);
    assert_eq!(count(&sums, &[0, 0], &[2, 1, 0]), Some(2));
}
