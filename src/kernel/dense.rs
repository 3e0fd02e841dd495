//! A whole network's layers 1..L−1 on the kernel's tiles, for evaluating
//! the retraining methods on a fixed test set (§4): their weights change
//! at every update, so they are packed again for each evaluation (a few
//! hundred thousand values against a hundred million multiply-adds). The
//! dense stages of a convolutional network's evaluations (§8) run on the
//! same tiles ([`dense_rows`]), and so does the MLP's readout in
//! `retrain`'s evaluations; `retrain-last`'s readout, from a fixed set's
//! gated activity, runs with the rows along the lanes ([`dense_lanes`]).
//!
//! The results are bit for bit those of the network's own forward pass
//! ([`crate::net::Model::forward`]) on this CPU: `matrixmultiply`'s
//! AVX-512 kernel splits the inputs into chunks of [`CHUNK`], runs one
//! chain of fused multiply-adds per output and chunk from zero and adds
//! each chunk's sum to the output, which starts at the bias; the tiles
//! here do exactly that, then e^x or ReLU and the layer's factor (its
//! kernel without FMA, on CPUs without AVX2+FMA, rounds differently: the
//! scalar body has no dense tiles, and such CPUs evaluate through the
//! network's forward pass).

use crate::kernel::packed::{LANE_ROWS, packed_index};
use crate::kernel::plan::{PANEL, PackedLayer};
use crate::kernel::{BLOCK, Body, Output, PACK, PackedRows, TALL_WIDTH};
use crate::net::layers::{columns_correct, modulation_factor};
use crate::net::{Model, Nonlinearity};

/// Inputs per chunk of `matrixmultiply`'s f32 products (its `S_KC`).
pub const CHUNK: usize = 256;

/// One packed layer with what follows its product.
#[derive(Clone, Debug)]
struct DenseLayer {
    packed: PackedLayer,
    activation: Nonlinearity,
    /// The layer's factor with the modulation off (exp(−β) on the
    /// modulated layer), 16 per panel; empty when it is 1 everywhere.
    scale: Vec<f32>,
}

/// Layers 1..L−1 of a network, packed for [`dense_blocks`] and [`dense_forward`].
#[derive(Clone, Debug, Default)]
pub struct DensePlan {
    layers: Vec<DenseLayer>,
}

impl DensePlan {
    /// N_{L−1}: the neurons of the plan's last layer, the gated one.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |layer| layer.packed.outputs)
    }

    /// Packs layers 1..L−1 of `model` as they run with the modulation off
    /// at modulator value `m` (see [`DensePlan::repack`]).
    pub fn new(model: &Model<f32>, m: f32) -> DensePlan {
        let mut plan = DensePlan::default();
        plan.repack(model, m);
        plan
    }

    /// Packs layers 1..L−1 of `model` into this plan's buffers, reusing
    /// their allocations: the layers as they run with the modulation off at
    /// modulator value `m` (the factor exp(m·0 − β) on the modulated layer
    /// below the gated one; the gated layer's own factor is left to
    /// [`crate::net::Model::forward_from`]).
    pub fn repack(&mut self, model: &Model<f32>, m: f32) {
        let arch = model.arch();
        self.layers.truncate(arch.gated_layer());
        for l in 1..=arch.gated_layer() {
            if self.layers.len() < l {
                self.layers.push(DenseLayer {
                    packed: PackedLayer::pack(model, l),
                    activation: Nonlinearity::Relu,
                    scale: Vec::new(),
                });
            }
            let layer = &mut self.layers[l - 1];
            layer.packed.repack(model, l);
            layer.activation = model.layer(l).activation.expect("hidden layers have one");
            layer.scale.clear();
            if l == arch.modulated_layer && l < arch.gated_layer() {
                fill_scale(&layer.packed, arch.beta, m, &mut layer.scale);
            }
        }
    }
}

/// `scale` ← the modulated layer's factor exp(m·0 − β) with the modulation
/// off, 16 per panel of `packed` (1 past a block's last neuron); left empty
/// when it is 1 everywhere.
fn fill_scale(packed: &PackedLayer, beta: f32, m: f32, scale: &mut Vec<f32>) {
    let mut factor = vec![0.0; packed.outputs];
    modulation_factor(m, &vec![0.0; packed.outputs], beta, &mut factor);
    if factor.iter().all(|&f| f == 1.0) {
        return;
    }
    let (per_group, no) = (packed.panels_per_group(), packed.group_outputs());
    scale.resize(packed.groups * per_group * PANEL, 1.0);
    for g in 0..packed.groups {
        for j in 0..no {
            scale[(g * per_group + j / PANEL) * PANEL + j % PANEL] = factor[g * no + j];
        }
    }
}

/// True when `body` has dense tiles (the SIMD bodies).
pub fn has_dense_tiles(body: Body) -> bool {
    matches!(body, Body::Avx2Fma | Body::Avx512)
}

/// Panics unless `body` has dense tiles and this CPU runs it (the entry
/// points' contract with the SIMD bodies).
fn assert_dense_tiles(body: Body) {
    assert!(
        has_dense_tiles(body),
        "the {body:?} body has no dense tiles"
    );
    body.assert_supported();
}

/// Buffers of [`dense_blocks`] and [`dense_forward`], reused across calls.
#[derive(Clone, Debug, Default)]
pub struct DenseScratch {
    hidden: Vec<Vec<f32>>,
}

/// Where a dense tile's rows hold their inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RowLayout {
    /// Input k of row r at `a[(r / PACK)·PACK·width + k·PACK + r % PACK]`:
    /// the kernel's packed rows, `width` inputs per row (a tile of more
    /// than [`PACK`] rows spans several of their groups).
    Packed(usize),
    /// Input k of row r at `a[r·stride + k]`: rows as a caller holds them.
    Strided(usize),
}

impl RowLayout {
    /// The distance from one row's input to the next row's (1 when packed).
    pub(super) fn step(self) -> usize {
        match self {
            RowLayout::Packed(_) => 1,
            RowLayout::Strided(stride) => stride,
        }
    }
}

/// One tile of the dense forward: inputs, panel, bias, factor and output.
pub(super) struct DenseTile<'a> {
    /// The rows' inputs, laid out as `rows` says.
    pub a: &'a [f32],
    /// How `a` holds them.
    pub rows: RowLayout,
    /// Rows of the tile: [`PACK`], or on the AVX-512 body's narrow panels
    /// of packed rows ([`tall_tile`]) several whole groups of them.
    pub height: usize,
    /// Inputs per row.
    pub k: usize,
    /// The tile's panels one after the other, each `[k][16]`.
    pub panel: &'a [f32],
    /// Panels of the tile (the AVX-512 body takes two, the AVX2 body one).
    pub panels: usize,
    /// Their 16 biases each.
    pub bias: &'a [f32],
    /// Their 16 factors each, if any.
    pub scale: Option<&'a [f32]>,
    /// Neurons of the panels that exist.
    pub width: usize,
    /// The nonlinearity after the product; none for a readout.
    pub activation: Option<Nonlinearity>,
}

impl<'a> DenseTile<'a> {
    /// The tile's `rows` rows from row `r` on (its inputs start `r` rows
    /// later), inside one group of [`PACK`].
    pub(super) fn rows(&self, r: usize, rows: usize) -> DenseTile<'a> {
        assert!(r + rows <= self.height.min(PACK), "rows of one group");
        DenseTile {
            a: &self.a[r * self.rows.step()..],
            height: rows,
            ..*self
        }
    }

    /// Panics unless the tile has `rows` rows and every read of them stays
    /// inside its slices (the SIMD bodies rely on it).
    pub(super) fn check(&self, rows: usize) {
        let k = self.k;
        assert!(k > 0, "a tile has inputs");
        assert_eq!(rows, self.height, "the tile's rows");
        let (fits, last) = match self.rows {
            RowLayout::Packed(width) => (
                k <= width && (rows <= PACK || rows.is_multiple_of(PACK)),
                (rows - 1) / PACK * PACK * width + (k - 1) * PACK + (rows - 1) % PACK + 1,
            ),
            RowLayout::Strided(stride) => (rows <= PACK, (rows - 1) * stride + k),
        };
        assert!(
            rows > 0 && fits && last <= self.a.len(),
            "tile rows out of bounds"
        );
        let lanes = self.panels * PANEL;
        assert!(
            self.panels >= 1 && k * lanes <= self.panel.len() && self.bias.len() >= lanes,
            "panel out of bounds"
        );
        assert!(
            self.scale.is_none_or(|s| s.len() >= lanes),
            "factors out of bounds"
        );
        assert!(
            self.width > (self.panels - 1) * PANEL && self.width <= lanes,
            "width outside the tile's panels"
        );
    }
}

/// F(a_{L−1}) of every row of `x` (the network's input, reordered as the
/// network reads it, [`PackedRows::reordered`]) into `out`,
/// `[R, N_{L−1}]` row-major, through the layers of `plan`, on `body`,
/// which must be one of the SIMD bodies ([`has_dense_tiles`]).
pub fn dense_forward(
    body: Body,
    plan: &DensePlan,
    x: &PackedRows,
    out: &mut [f32],
    scratch: &mut DenseScratch,
) {
    let n_out = plan.outputs();
    assert_eq!(out.len(), x.rows() * n_out, "one output row per input row");
    dense_blocks(body, plan, x, scratch, |start, block| {
        out[start * n_out..start * n_out + block.len()].copy_from_slice(block);
    });
}

/// [`dense_forward`] a block of [`BLOCK`] rows at a time: hands each
/// block's F(a_{L−1}) to `each_block`, with the index of its first row,
/// `[rows, N_{L−1}]` row-major, while it is still in cache, so that the
/// caller reads it there (and may change it in place) instead of from a
/// whole set's buffer: the retraining methods' evaluation runs the
/// readout on each block (§4).
pub fn dense_blocks(
    body: Body,
    plan: &DensePlan,
    x: &PackedRows,
    scratch: &mut DenseScratch,
    mut each_block: impl FnMut(usize, &mut [f32]),
) {
    assert_dense_tiles(body);
    let last = plan.layers.len() - 1;
    let (n_in, n_out) = (plan.layers[0].packed.inputs, plan.outputs());
    assert_eq!(x.width(), n_in, "rows of the network's input");
    assert_eq!(x.group(), PACK, "rows packed for the tiles");
    scratch.hidden.resize_with(plan.layers.len(), Vec::new);
    for (buffer, layer) in scratch.hidden.iter_mut().zip(&plan.layers) {
        buffer.resize(BLOCK * layer.packed.outputs, 0.0);
    }
    let rows_per_tile = tile_shape(body).0;
    for start in (0..x.rows()).step_by(BLOCK) {
        let real = BLOCK.min(x.rows() - start);
        let rows = real.next_multiple_of(rows_per_tile);
        for (li, layer) in plan.layers.iter().enumerate() {
            let (before, after) = scratch.hidden.split_at_mut(li);
            // Each layer writes rows, which the next reads where they are.
            let input = if li == 0 {
                (&x.data()[start * n_in..], RowLayout::Packed(n_in))
            } else {
                let width = plan.layers[li - 1].packed.outputs;
                (&before[li - 1][..], RowLayout::Strided(width))
            };
            let epilogue = Epilogue {
                scale: (!layer.scale.is_empty()).then_some(&layer.scale[..]),
                activation: Some(layer.activation),
            };
            layer_tiles(body, &layer.packed, epilogue, input, rows, &mut after[0]);
        }
        each_block(start, &mut scratch.hidden[last][..real * n_out]);
    }
}

/// Buffers of [`dense_rows`], reused across calls.
#[derive(Clone, Debug, Default)]
pub struct RowsScratch {
    /// The last rows that fill no whole tile, padded with zero rows.
    tail: Vec<f32>,
    /// Their outputs.
    out: Vec<f32>,
}

/// `activation`(x·Wᵀ + b) of the `rows` rows of `x` (`[rows, inputs]`)
/// into `out` (`[rows, outputs]`) for a one-group `layer`, on the tiles
/// of `body` (a SIMD one, [`has_dense_tiles`]), which read the rows where
/// they are. The bits are those of the same product through
/// `matrixmultiply` followed by the activation (see the module's note),
/// without packing the weights or the rows at every call: the dense
/// stages of §8 in evaluations (ReLU), and the MLP's readout (none) in
/// the retraining methods' evaluations (§4).
pub fn dense_rows(
    body: Body,
    layer: &PackedLayer,
    activation: Option<Nonlinearity>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    scratch: &mut RowsScratch,
) {
    assert_dense_tiles(body);
    assert_eq!(layer.groups, 1, "a dense layer has one group");
    let (ni, no) = (layer.inputs, layer.outputs);
    assert_eq!(x.len(), rows * ni, "rows of the layer's input");
    assert_eq!(out.len(), rows * no, "rows of the layer's output");
    let epilogue = Epilogue {
        scale: None,
        activation,
    };
    let height = tile_shape(body).0;
    let whole = rows - rows % height;
    let input = (x, RowLayout::Strided(ni));
    layer_tiles(body, layer, epilogue, input, whole, out);
    if whole < rows {
        // The last rows and zero rows below them, as one tile.
        scratch.tail.clear();
        scratch.tail.extend_from_slice(&x[whole * ni..]);
        scratch.tail.resize(height * ni, 0.0);
        scratch.out.resize(height * no, 0.0);
        let input = (&scratch.tail[..], RowLayout::Strided(ni));
        layer_tiles(body, layer, epilogue, input, height, &mut scratch.out);
        out[whole * no..].copy_from_slice(&scratch.out[..(rows - whole) * no]);
    }
}

/// [`dense_rows`] for rows held along the lanes ([`PackedRows::along_lanes`],
/// a fixed set's, built once): each tile holds one output's 16 rows in a
/// vector (two on AVX2) and takes one multiply-add per input and output,
/// so that a layer of few outputs fills every lane, where the row tiles
/// fill 16-neuron panels (a readout of 10 outputs: 10 of 16 lanes). Each
/// output is still the bias plus one chain of FMAs per [`CHUNK`] of inputs
/// in order: the bits of [`dense_rows`]. `out` is `[x.rows(), outputs]`.
/// The readout of `retrain-last`'s evaluations (§4), from the set's gated
/// activity. 1000 rows, 200 → 10, on one thread of an AMD EPYC (Zen 4; a
/// throwaway timing, median of 31 × 100 calls): 37.7 µs against 59.9 µs
/// in the row tiles of packed rows (AVX-512F), 40.9 against 62.4 µs (AVX2).
pub fn dense_lanes(
    body: Body,
    layer: &PackedLayer,
    activation: Option<Nonlinearity>,
    x: &PackedRows,
    out: &mut [f32],
) {
    let (no, rows) = (layer.outputs, x.rows());
    assert_eq!(out.len(), rows * no, "rows of the layer's output");
    dense_lanes_blocks(body, layer, activation, x, |block, sums| {
        // Output o of row r is lane r of vector o.
        let rows_out = &mut out[block.first_row * no + block.first_output..];
        let shape = (block.width, block.rows);
        // SAFETY: the body is a SIMD one whose support was asserted.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match body {
                Body::Avx512 => super::avx512::lanes_to_rows(sums, shape, rows_out, no),
                _ => super::avx2::lanes_to_rows(sums, shape, rows_out, no),
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("{:?}", (sums.len(), shape, rows_out.len()));
    });
}

/// Where a block of [`dense_lanes_blocks`] sits in the layer's output.
#[derive(Clone, Copy, Debug)]
pub struct LaneBlock {
    /// The block's first row.
    pub first_row: usize,
    /// Its real rows (at most [`LANE_ROWS`]; the rest of the lanes are
    /// padding).
    pub rows: usize,
    /// The panel's first output.
    pub first_output: usize,
    /// The panel's outputs (at most [`PANEL`]).
    pub width: usize,
}

/// The tiles of [`dense_lanes`], handed to `sink` as they leave the
/// registers: for each block of [`LANE_ROWS`] rows and each panel,
/// `sums[o][r]` is output `first_output + o` of row `first_row + r`, for
/// o below the block's width and r below its rows (the other values are
/// stale). A sink that needs only a reduction of the outputs (the
/// accuracy of `retrain-last`'s evaluations, §2) reads them there rather
/// than from rows written and read back.
pub fn dense_lanes_blocks(
    body: Body,
    layer: &PackedLayer,
    activation: Option<Nonlinearity>,
    x: &PackedRows,
    mut sink: impl FnMut(LaneBlock, &[[f32; LANE_ROWS]; PANEL]),
) {
    assert_dense_tiles(body);
    assert_eq!(layer.groups, 1, "a dense layer has one group");
    let (ni, rows) = (layer.inputs, x.rows());
    assert_eq!(x.width(), ni, "rows of the layer's input");
    assert_eq!(x.group(), LANE_ROWS, "rows held along the lanes");
    let mut sums = [[[0.0f32; LANE_ROWS]; PANEL]; LANE_GROUPS];
    let per_group = ni * LANE_ROWS;
    for (q, groups) in x.data().chunks(per_group * LANE_GROUPS).enumerate() {
        let first_row = q * LANE_GROUPS * LANE_ROWS;
        for p in 0..layer.panels_per_group() {
            let tile = LaneTile {
                a: groups,
                groups: groups.len() / per_group,
                k: ni,
                panel: layer.panels(0, p, 1),
                bias: layer.panels_bias(0, p, 1),
                width: layer.panels_width(p, 1),
                activation,
            };
            // SAFETY: the body is a SIMD one whose support was asserted.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                match body {
                    Body::Avx512 => super::avx512::lanes_tile(tile, &mut sums),
                    _ => super::avx2::lanes_tile(tile, &mut sums),
                }
            };
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("{:?}", (tile.k, tile.width));
            for (g, sums) in sums.iter().enumerate().take(tile.groups) {
                let first_row = first_row + g * LANE_ROWS;
                let block = LaneBlock {
                    first_row,
                    rows: (rows - first_row).min(LANE_ROWS),
                    first_output: p * PANEL,
                    width: tile.width,
                };
                sink(block, sums);
            }
        }
    }
}

/// Groups of [`LANE_ROWS`] rows of one [`LaneTile`] at most: the AVX-512
/// body runs two at once, each broadcast weight feeding both (one group
/// took 11 loads per 10 FMAs, more than the load ports serve where two
/// 16-lane FMAs issue per cycle), the AVX2 body one after the other (its
/// 16 rows are already two vectors). `dense_lanes` of 1000 rows, 200 → 10
/// on one thread of an AMD EPYC Zen 5 (AVX-512F at full width; median of
/// 31 × 100 calls, five alternating throwaway timings): 18.1–18.4 µs
/// against 21.7–25.4 µs.
pub(super) const LANE_GROUPS: usize = 2;

/// What [`lane_block_correct`] counts on a block of [`dense_lanes_blocks`]'
/// readout: its logits, its real rows' labels and the readout's columns.
#[derive(Clone, Copy, Debug)]
pub struct LaneCount<'a> {
    /// The block's outputs (at most [`PANEL`]).
    pub width: usize,
    /// One label per real row (at most [`LANE_ROWS`]); the lanes past
    /// them are stale and never read.
    pub labels: &'a [u8],
    /// The readout's columns, in order (a label is a position here).
    pub cols: &'a [usize],
}

impl LaneCount<'_> {
    /// Panics unless the block can be counted (the SIMD bodies rely on it).
    pub(super) fn check(&self) {
        assert!(
            self.width <= PANEL && self.labels.len() <= LANE_ROWS,
            "a block's shape"
        );
        assert!(!self.cols.is_empty(), "a readout column");
        assert!(
            self.cols.iter().all(|&c| c < self.width),
            "readout columns of the block"
        );
    }

    /// The labels as the SIMD bodies load them: 16 bytes, zeros past the
    /// real rows.
    pub(super) fn label_lanes(&self) -> [u8; LANE_ROWS] {
        if let Ok(&full) = self.labels.try_into() {
            return full;
        }
        let mut lanes = [0; LANE_ROWS];
        lanes[..self.labels.len()].copy_from_slice(self.labels);
        lanes
    }
}

/// §2's accuracy counted on one block of [`dense_lanes_blocks`]' readout:
/// how many of its real rows have their label's readout column as the
/// best (the first of `cols`, in order, replaced where a later one is
/// strictly larger: [`columns_correct`]); `None` when one of those rows
/// has a logit, among the block's `width`, that is not finite.
/// `retrain-last`'s evaluations count here with the logits in registers;
/// the scalar body, which has no lanes tiles, runs the plain reference
/// [`lane_block_correct_reference`].
#[inline]
pub fn lane_block_correct(
    body: Body,
    sums: &[[f32; LANE_ROWS]; PANEL],
    count: LaneCount<'_>,
) -> Option<usize> {
    // Each body checks the block (the SIMD ones rely on it).
    // SAFETY: the bodies' instruction sets are checked by `has_dense_tiles`.
    #[cfg(target_arch = "x86_64")]
    if has_dense_tiles(body) {
        return unsafe {
            match body {
                Body::Avx512 => super::avx512::lanes_correct(sums, count),
                _ => super::avx2::lanes_correct(sums, count),
            }
        };
    }
    lane_block_correct_reference(sums, count)
}

/// [`lane_block_correct`] in plain code: every logit of the real rows
/// tested, then [`columns_correct`].
pub fn lane_block_correct_reference(
    sums: &[[f32; LANE_ROWS]; PANEL],
    count: LaneCount<'_>,
) -> Option<usize> {
    count.check();
    let (logits, rows) = (&sums[..count.width], count.labels.len());
    let finite = (logits.iter()).all(|lanes| lanes[..rows].iter().all(|x| x.is_finite()));
    finite.then(|| columns_correct(logits, count.labels, count.cols))
}

/// Panics unless rows 0..`real` (at most [`LANE_ROWS`]), `stride` apart
/// in an output of `len` values, hold outputs 0..`width` (at most
/// [`PANEL`]): what the bodies' `lanes_to_rows` write.
pub(super) fn check_lane_rows((width, real): (usize, usize), len: usize, stride: usize) {
    assert!(
        width <= PANEL && real <= LANE_ROWS && (real == 0 || (real - 1) * stride + width <= len),
        "rows of the output"
    );
}

/// One tile of [`dense_lanes`]: one or two groups of 16 rows along the
/// lanes × the neurons of one panel.
#[derive(Clone, Copy)]
pub(super) struct LaneTile<'a> {
    /// The groups' inputs, input i of row r of group g at
    /// `a[(g·k + i)·LANE_ROWS + r]`.
    pub a: &'a [f32],
    /// Groups of [`LANE_ROWS`] rows (1 to [`LANE_GROUPS`]).
    pub groups: usize,
    /// Inputs per row.
    pub k: usize,
    /// The panel, `[k][16]`.
    pub panel: &'a [f32],
    /// Its 16 biases.
    pub bias: &'a [f32],
    /// Neurons of the panel that exist (1..=16).
    pub width: usize,
    /// The nonlinearity after the product; none for a readout.
    pub activation: Option<Nonlinearity>,
}

impl<'a> LaneTile<'a> {
    /// Panics unless every read of the tile stays inside its slices (the
    /// SIMD bodies rely on it).
    pub(super) fn check(&self) {
        assert!(self.k > 0, "a tile has inputs");
        assert!(
            (1..=LANE_GROUPS).contains(&self.groups),
            "one or two groups of rows"
        );
        assert!(
            self.a.len() >= self.groups * self.k * LANE_ROWS,
            "rows out of bounds"
        );
        assert!(
            self.panel.len() >= self.k * PANEL && self.bias.len() >= PANEL,
            "panel out of bounds"
        );
        assert!((1..=PANEL).contains(&self.width), "1 to 16 neurons");
    }

    /// Group `g` of the tile's rows, as a tile of its own.
    pub(super) fn group(&self, g: usize) -> LaneTile<'a> {
        assert!(g < self.groups, "a group of the tile");
        let values = self.k * LANE_ROWS;
        LaneTile {
            a: &self.a[g * values..(g + 1) * values],
            groups: 1,
            ..*self
        }
    }
}

/// Rows and panels of one tile of `body`: the AVX-512 body's tiles are
/// 12 rows × 2 panels, the AVX2 body's 12 × 1 (a whole packed group, which
/// it runs as two register tiles of 6 rows, or at once on a narrow panel).
fn tile_shape(body: Body) -> (usize, usize) {
    if body == Body::Avx512 {
        (12, 2)
    } else {
        (12, 1)
    }
}

/// True when [`layer_tiles`] runs a panel of `width` neurons over rows
/// laid out as `layout` as one tile of every row (the narrow panels of
/// packed rows on the AVX-512 body, [`TALL_WIDTH`], the encoder's last 4
/// neurons of each quadrant): 4 groups of 12 rows fill 12 or 24 vectors.
/// It runs with the last row tile, when every row is in cache.
/// In profiles of `online_retrain` (AMD EPYC Zen 5, whose AVX-512F runs
/// at full width) the encoder's narrow tiles went from 4.8 % to 2.9 % of
/// the dense tiles' time, which is 86 % of a run.
fn tall_tile(body: Body, layout: RowLayout, width: usize) -> bool {
    body == Body::Avx512 && width <= TALL_WIDTH && matches!(layout, RowLayout::Packed(_))
}

/// What follows a layer's product in [`layer_tiles`].
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    /// The layer's factors, 16 per panel, if any.
    scale: Option<&'a [f32]>,
    /// The nonlinearity after the product, if any.
    activation: Option<Nonlinearity>,
}

/// One layer on the tiles of `body` (a SIMD one whose support the caller
/// asserted): `rows` rows (a multiple of the tile height) of `input`,
/// laid out as `layout` says, into `out` as rows (`[rows, outputs]`),
/// which the next layer reads where they are: a packed output cost a
/// transposition per tile.
fn layer_tiles(
    body: Body,
    packed: &PackedLayer,
    epilogue: Epilogue<'_>,
    (input, layout): (&[f32], RowLayout),
    rows: usize,
    out: &mut [f32],
) {
    let (rows_per_tile, panels_per_tile) = tile_shape(body);
    let (ni, no) = (packed.group_inputs(), packed.group_outputs());
    for g in 0..packed.groups {
        for q in (0..rows).step_by(rows_per_tile) {
            for p in (0..packed.panels_per_group()).step_by(panels_per_tile) {
                let count = panels_per_tile.min(packed.panels_per_group() - p);
                let width = packed.panels_width(p, count);
                // The tile's first row and its rows.
                let (q, height) = match tall_tile(body, layout, width) {
                    // Every row at once, with the last row tile.
                    true if q + rows_per_tile >= rows => (0, rows),
                    true => continue,
                    false => (q, rows_per_tile),
                };
                let column = g * no + p * PANEL;
                let scale_at = (g * packed.panels_per_group() + p) * PANEL;
                let first = match layout {
                    RowLayout::Packed(inputs) => packed_index(q, g * ni, inputs),
                    RowLayout::Strided(stride) => q * stride + g * ni,
                };
                let tile = DenseTile {
                    a: &input[first..],
                    rows: layout,
                    height,
                    k: ni,
                    panel: packed.panels(g, p, count),
                    panels: count,
                    bias: packed.panels_bias(g, p, count),
                    scale: epilogue
                        .scale
                        .map(|s| &s[scale_at..scale_at + count * PANEL]),
                    width,
                    activation: epilogue.activation,
                };
                let (at, layout) = (q * packed.outputs + column, Output::Rows(packed.outputs));
                let out = &mut out[at..];
                // SAFETY: the body is a SIMD one whose support the caller asserted.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match body {
                        Body::Avx512 => super::avx512::dense_tile(tile, out, layout),
                        _ => super::avx2::dense_tile(tile, out, layout),
                    }
                };
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("{:?}", (tile.k, out.len(), layout));
            }
        }
    }
}
