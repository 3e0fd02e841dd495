//! The modulation methods' readout (§2, §4): the logits a task reads, for
//! rows of the gated activity z, with the gain g folded into the weights
//! ((g ⊙ z)·Wᵀ + b = z·(W ⊙ g)ᵀ + b).
//!
//! Each logit is summed in a fixed order, the same on every instruction
//! set and whatever the number of rows taken at once:
//! - eight lanes start at +0; for each group q of eight inputs, in order,
//!   lane i ← fma(z[8q + i], w[8q + i], lane i), with z and w taken as 0
//!   past the last input;
//! - the lanes are added as a tree, t_i = lane_i + lane_{i+4},
//!   u_i = t_i + t_{i+2}, s = u_0 + u_1;
//! - the logit is b + s.
//!
//! Two columns share a 16-lane register on AVX-512F (one per half, the
//! rows' eight inputs broadcast to both), or a pair of 8-lane registers on
//! AVX2: a pair readout (§2) costs one pass over its rows. The AVX-512F
//! body loads each row's inputs once for up to five pairs (all ten
//! logits), the AVX2 body once per pair. The scalar body runs the
//! statement lane by lane with `f32::mul_add`, compiled to the FMA
//! instruction where the CPU has it (a software fused multiply-add, with
//! the same bits, elsewhere).

use crate::net::simd::Isa;

/// Inputs summed side by side: one lane each.
const LANES: usize = 8;

/// The weights of the columns a task reads, times the gain, laid out for
/// the lanes: for each group of eight inputs, for each pair of columns,
/// the first column's eight weights, then the second's (zero past the
/// last input, and for a missing second column).
#[derive(Clone, Debug, Default)]
pub struct PairedReadout {
    inputs: usize,
    classes: usize,
    columns: Vec<usize>,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl PairedReadout {
    /// Packs the `columns` of the readout `weights` (`[classes, n]`, with
    /// n = `gain.len()`), each weight times the gain of its input, and
    /// their `bias` (`[classes]`); reuses this readout's allocations.
    pub fn pack(&mut self, weights: &[f32], gain: &[f32], bias: &[f32], columns: &[usize]) {
        let (n, classes) = (gain.len(), bias.len());
        assert_eq!(weights.len(), classes * n, "readout weights [classes, n]");
        assert!(
            columns.iter().all(|&c| c < classes),
            "a column past the classes"
        );
        let groups = n.div_ceil(LANES);
        (self.inputs, self.classes) = (n, classes);
        self.columns.clear();
        self.columns.extend_from_slice(columns);
        self.bias.clear();
        self.bias.extend(columns.iter().map(|&c| bias[c]));
        self.weights.clear();
        for q in 0..groups {
            for pair in columns.chunks(2) {
                for half in 0..2 {
                    let lanes = (0..LANES).map(|i| match pair.get(half) {
                        Some(&c) if LANES * q + i < n => {
                            weights[c * n + LANES * q + i] * gain[LANES * q + i]
                        }
                        _ => 0.0,
                    });
                    self.weights.extend(lanes);
                }
            }
        }
    }

    /// Pairs of columns packed.
    fn pairs(&self) -> usize {
        self.columns.len().div_ceil(2)
    }

    /// out[r·classes + c] ← the logit of column c for row r of `h`
    /// (`[rows, n]`), for the packed columns, in the module's order, by
    /// the code of `isa` (which the CPU must run); other entries of `out`
    /// (`[rows, classes]`) untouched.
    pub fn logits(&self, isa: Isa, h: &[f32], out: &mut [f32]) {
        let (n, classes) = (self.inputs, self.classes);
        assert!(
            n > 0 && h.len().is_multiple_of(n),
            "whole rows of the gated activity"
        );
        let rows = h.len() / n;
        assert_eq!(out.len(), rows * classes, "one logit row per row of h");
        assert!(isa.supported(), "this CPU does not run {isa}");
        match isa {
            // SAFETY: the CPU runs `isa` (asserted); the bodies assert
            // their bounds.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::logits_avx512(self, h, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { x86::logits_avx2(self, h, out) },
            _ => {
                let rows = h.chunks_exact(n).zip(out.chunks_exact_mut(classes));
                // The scalar body's `mul_add` is one instruction where the
                // CPU has FMA, else a call to a software fused multiply-add.
                #[cfg(target_arch = "x86_64")]
                if crate::net::simd::has_avx2_fma() {
                    // SAFETY: the CPU has FMA (checked).
                    return unsafe { x86::rows_scalar_fma(self, rows) };
                }
                for (row, out) in rows {
                    self.row_scalar(row, out);
                }
            }
        }
    }

    /// One row in plain code: the module's statement, lane by lane.
    #[inline(always)]
    fn row_scalar(&self, row: &[f32], out: &mut [f32]) {
        let pairs = self.pairs();
        let (whole, tail) = row.as_chunks::<LANES>();
        let tail = (!tail.is_empty()).then(|| group_of(row, whole.len()));
        let inputs = whole.iter().chain(tail.as_ref());
        let weights = self
            .weights
            .as_chunks::<{ 2 * LANES }>()
            .0
            .chunks_exact(pairs);
        for (p, pair) in self.columns.chunks(2).enumerate() {
            let mut lanes = [[0.0f32; LANES]; 2];
            for (x, weights) in inputs.clone().zip(weights.clone()) {
                let (w0, w1) = weights[p].split_at(LANES);
                for (half, w) in [w0, w1].into_iter().enumerate() {
                    for ((lane, &x), &w) in lanes[half].iter_mut().zip(x).zip(w) {
                        *lane = x.mul_add(w, *lane);
                    }
                }
            }
            for (half, &c) in pair.iter().enumerate() {
                out[c] = self.bias[2 * p + half] + tree_sum(&lanes[half]);
            }
        }
    }
}

/// Inputs 8q..8q + 8 of `row`, zero past its end.
fn group_of(row: &[f32], q: usize) -> [f32; LANES] {
    let mut x = [0.0f32; LANES];
    let part = &row[LANES * q..row.len().min(LANES * (q + 1))];
    x[..part.len()].copy_from_slice(part);
    x
}

/// The lanes added as the module's tree.
fn tree_sum(lanes: &[f32; LANES]) -> f32 {
    let t: [f32; 4] = std::array::from_fn(|i| lanes[i] + lanes[i + 4]);
    let u = [t[0] + t[2], t[1] + t[3]];
    u[0] + u[1]
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, PairedReadout, group_of};

    /// The tree of the module's statement on the eight lanes of `v`, in
    /// lane 0.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tree_avx2(v: __m256) -> f32 {
        let t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let u = _mm_add_ps(t, _mm_movehl_ps(t, t));
        _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps::<1>(u, u)))
    }

    /// Registers whose trees [`trees_avx512`] adds at once.
    const TREES: usize = 8;

    /// The tree of the module's statement in each half of each of the
    /// [`TREES`] registers of `v`, 16 sums at once into `sums`: sum 2a + h
    /// is half h of register a. Each step adds two registers of shuffled
    /// blocks or lanes, so the three steps take 21 shuffles and additions
    /// for 16 sums, where a tree per register took 6 for 2 and two
    /// extractions. (Lane 4k + j after the last step holds half k mod 2 of
    /// register 2j + k / 2; one permutation puts the sums in order.) The
    /// same additions, so the same bits. With the sums written to the
    /// logits column by column and [`for_each_group`]'s loop, all ten
    /// logits of 1000 rows of 200 inputs (one thread of a Zen 4, throwaway
    /// timings, median of 31 × 100 calls) took 43.0 µs against 82 µs.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn trees_avx512(v: &[__m512; TREES], sums: &mut [f32]) {
        // t: blocks 0 and 1 (and 2 and 3) of each register, added, the
        // four t of both halves of registers 2j and 2j + 1 in one.
        let t: [__m512; 4] = std::array::from_fn(|j| {
            let (a, b) = (v[2 * j], v[2 * j + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
            )
        });
        // u: lanes 0, 1 + lanes 2, 3 of each block, two t registers in one.
        let u: [__m512; 2] = std::array::from_fn(|i| {
            let (a, b) = (t[2 * i], t[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
                _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
            )
        });
        // s: u0 + u1, both u registers in one.
        let s = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(u[0], u[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(u[0], u[1]),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        assert_eq!(sums.len(), 2 * TREES, "16 sums");
        // SAFETY: `sums` holds 16 floats (asserted).
        unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), _mm512_permutexvar_ps(order, s)) };
    }

    /// `step(q, x, stride)` for each group q of eight inputs of the `R`
    /// rows of `h` (`[R, n]`, as its callers assert), in order, with the rows' eight inputs at
    /// x + r·stride: in `h` for the whole groups, then, if n is not a
    /// multiple of eight, in a copy of the last inputs with zeros past
    /// the end. The whole groups run in a loop of their own, so that the
    /// sums stay in registers: with the copy's branch inside the loop,
    /// the AVX-512F body kept half its 20 sums in memory.
    #[inline(always)]
    fn for_each_group<const R: usize>(
        h: &[f32],
        n: usize,
        mut step: impl FnMut(usize, *const f32, usize),
    ) {
        let whole = n / LANES;
        for q in 0..whole {
            step(q, h[q * LANES..].as_ptr(), n);
        }
        if whole * LANES < n {
            let tail: [[f32; LANES]; R] =
                std::array::from_fn(|r| group_of(&h[r * n..(r + 1) * n], whole));
            step(whole, tail.as_ptr().cast::<f32>(), LANES);
        }
    }

    /// The scalar body's rows with `mul_add` compiled to the FMA
    /// instruction: the same code and bits as without it, several times
    /// faster than the software fused multiply-add.
    ///
    /// # Safety
    /// FMA must be available.
    #[target_feature(enable = "fma")]
    pub(super) unsafe fn rows_scalar_fma<'a>(
        readout: &PairedReadout,
        rows: impl Iterator<Item = (&'a [f32], &'a mut [f32])>,
    ) {
        for (row, out) in rows {
            readout.row_scalar(row, out);
        }
    }

    /// Rows taken at once by the AVX-512F body.
    const ROWS: usize = 4;

    /// Rows taken at once by the AVX2 body: 6 rows × one pair are 12
    /// chains of fused multiply-adds, where 4 rows' 8 chains waited on the
    /// FMA's latency. All ten logits of 1000 rows of 200 inputs (one
    /// thread of a Zen 4, throwaway timings, median of 31 × 100 calls)
    /// took 47.0–47.5 µs against 55.0 µs.
    const ROWS_AVX2: usize = 6;

    /// `group` on the rows of `h` and their logits `out`, `R` at a time,
    /// then `one` on each row left.
    #[inline(always)]
    fn in_groups<const R: usize>(
        readout: &PairedReadout,
        h: &[f32],
        out: &mut [f32],
        mut group: impl FnMut(&[f32], &mut [f32]),
        mut one: impl FnMut(&[f32], &mut [f32]),
    ) {
        let (n, classes) = (readout.inputs, readout.classes);
        let grouped = h.len() / n / R * R;
        let (h_groups, h_rest) = h.split_at(grouped * n);
        let (out_groups, out_rest) = out.split_at_mut(grouped * classes);
        let groups = h_groups.chunks_exact(R * n);
        for (h, out) in groups.zip(out_groups.chunks_exact_mut(R * classes)) {
            group(h, out);
        }
        for (h, out) in h_rest
            .chunks_exact(n)
            .zip(out_rest.chunks_exact_mut(classes))
        {
            one(h, out);
        }
    }

    /// Every row of `h` by [`rows_avx2`].
    ///
    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn logits_avx2(readout: &PairedReadout, h: &[f32], out: &mut [f32]) {
        // SAFETY (both): AVX2 and FMA are available (this function's contract).
        in_groups::<ROWS_AVX2>(
            readout,
            h,
            out,
            |h, out| unsafe { rows_avx2::<ROWS_AVX2>(readout, h, out) },
            |h, out| unsafe { rows_avx2::<1>(readout, h, out) },
        );
    }

    /// Pairs of columns whose sums one call of [`rows_avx512`] keeps in
    /// registers ([`ROWS`] rows × 5 pairs: 20 of the 32).
    const MAX_PAIRS: usize = 5;

    /// Every row of `h` by [`all_pairs_avx512`].
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn logits_avx512(readout: &PairedReadout, h: &[f32], out: &mut [f32]) {
        // SAFETY (both): AVX-512F is available (this function's contract).
        in_groups::<ROWS>(
            readout,
            h,
            out,
            |h, out| unsafe { all_pairs_avx512::<ROWS>(readout, h, out) },
            |h, out| unsafe { all_pairs_avx512::<1>(readout, h, out) },
        );
    }

    /// `R` rows of `h` (`[R, n]`) into `out` (`[R, classes]`), two 8-lane
    /// registers per row and pair of columns.
    ///
    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn rows_avx2<const R: usize>(readout: &PairedReadout, h: &[f32], out: &mut [f32]) {
        let (n, classes) = (readout.inputs, readout.classes);
        assert!(h.len() == R * n && out.len() == R * classes);
        let (groups, pairs) = (n.div_ceil(LANES), readout.pairs());
        assert_eq!(readout.weights.len(), groups * pairs * 2 * LANES);
        for (p, pair) in readout.columns.chunks(2).enumerate() {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for_each_group::<R>(h, n, |q, x, stride| {
                // SAFETY: the weights hold `groups` groups of `pairs`
                // pairs of 16 (asserted); eight inputs of row r start at
                // x + r·stride (`for_each_group`).
                unsafe {
                    let w = readout.weights.as_ptr().add((q * pairs + p) * 2 * LANES);
                    let (w0, w1) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(LANES)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = _mm256_loadu_ps(x.add(r * stride));
                        acc[0] = _mm256_fmadd_ps(x, w0, acc[0]);
                        acc[1] = _mm256_fmadd_ps(x, w1, acc[1]);
                    }
                }
            });
            for (r, acc) in acc.iter().enumerate() {
                for (half, &c) in pair.iter().enumerate() {
                    // SAFETY: AVX2 is available (this function's contract).
                    let s = unsafe { tree_avx2(acc[half]) };
                    out[r * classes + c] = readout.bias[2 * p + half] + s;
                }
            }
        }
    }

    /// `R` rows of `h` into `out` for the `P` pairs of columns from pair
    /// `first`, one 16-lane register per row and pair (the first column
    /// in lanes 0..8, the second in 8..16): each row's eight inputs are
    /// loaded once for the P pairs.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn rows_avx512<const R: usize, const P: usize>(
        readout: &PairedReadout,
        first: usize,
        h: &[f32],
        out: &mut [f32],
    ) {
        let (n, classes) = (readout.inputs, readout.classes);
        assert!(h.len() == R * n && out.len() == R * classes);
        let (groups, pairs) = (n.div_ceil(LANES), readout.pairs());
        assert!(first + P <= pairs && readout.weights.len() == groups * pairs * 2 * LANES);
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        for_each_group::<R>(h, n, |q, x, stride| {
            // SAFETY: the weights hold `groups` groups of `pairs` pairs of
            // 16 (asserted), and first + P ≤ pairs; eight inputs of row r
            // start at x + r·stride (`for_each_group`).
            unsafe {
                let at = readout
                    .weights
                    .as_ptr()
                    .add((q * pairs + first) * 2 * LANES);
                let w: [__m512; P] =
                    std::array::from_fn(|p| _mm512_loadu_ps(at.add(p * 2 * LANES)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    // The eight inputs in both halves (a 256-bit
                    // broadcast that needs only AVX-512F).
                    let x = _mm256_loadu_pd(x.add(r * stride).cast::<f64>());
                    let x = _mm512_castpd_ps(_mm512_broadcast_f64x4(x));
                    for (acc, &w) in acc.iter_mut().zip(&w) {
                        *acc = _mm512_fmadd_ps(x, w, *acc);
                    }
                }
            }
        });
        // The trees of the R·P registers, row by row, TREES at a time
        // (the last batch padded with zeros): sum 2(rP + p) + h is row
        // r's logit of column h of pair first + p.
        let mut sums = [0.0f32; SUMS];
        let batches = acc.as_flattened().chunks(TREES);
        for (registers, sums) in batches.zip(sums.chunks_exact_mut(2 * TREES)) {
            let v =
                std::array::from_fn(|a| registers.get(a).copied().unwrap_or(_mm512_setzero_ps()));
            // SAFETY: AVX-512F is available (this function's contract).
            unsafe { trees_avx512(&v, sums) };
        }
        let columns = &readout.columns[2 * first..readout.columns.len().min(2 * (first + P))];
        let bias = &readout.bias[2 * first..][..columns.len()];
        for (sums, out) in sums.chunks_exact(2 * P).zip(out.chunks_exact_mut(classes)) {
            for ((&c, &b), &s) in columns.iter().zip(bias).zip(sums) {
                out[c] = b + s;
            }
        }
    }

    /// Room for the sums of [`rows_avx512`]: [`ROWS`] rows × [`MAX_PAIRS`]
    /// pairs × 2, in whole batches of [`TREES`] registers.
    const SUMS: usize = (ROWS * MAX_PAIRS).next_multiple_of(TREES) * 2;

    /// [`rows_avx512`] for every pair, up to [`MAX_PAIRS`] at once.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn all_pairs_avx512<const R: usize>(
        readout: &PairedReadout,
        h: &[f32],
        out: &mut [f32],
    ) {
        let mut first = 0;
        while first < readout.pairs() {
            let count = MAX_PAIRS.min(readout.pairs() - first);
            // SAFETY: AVX-512F is available (this function's contract).
            unsafe {
                match count {
                    1 => rows_avx512::<R, 1>(readout, first, h, out),
                    2 => rows_avx512::<R, 2>(readout, first, h, out),
                    3 => rows_avx512::<R, 3>(readout, first, h, out),
                    4 => rows_avx512::<R, 4>(readout, first, h, out),
                    _ => rows_avx512::<R, MAX_PAIRS>(readout, first, h, out),
                }
            }
            first += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The module's statement for one logit, written out with no lanes
    /// in memory: lane i sums the inputs k ≡ i (mod 8) by FMA from +0.
    fn logit_by_statement(row: &[f32], w: &[f32], g: &[f32], bias: f32) -> f32 {
        let mut lanes = [0.0f32; LANES];
        for k in 0..row.len().next_multiple_of(LANES) {
            let (x, wg) = if k < row.len() {
                (row[k], w[k] * g[k])
            } else {
                (0.0, 0.0)
            };
            lanes[k % LANES] = x.mul_add(wg, lanes[k % LANES]);
        }
        let t = [
            lanes[0] + lanes[4],
            lanes[1] + lanes[5],
            lanes[2] + lanes[6],
            lanes[3] + lanes[7],
        ];
        bias + ((t[0] + t[2]) + (t[1] + t[3]))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Every instruction set, row count (whole groups of rows and the
        /// rest), width and choice of columns gives the statement's bits,
        /// and leaves the other logits alone.
        #[test]
        fn logits_follow_the_statement(
            rows in 1usize..30,
            n in 1usize..70,
            columns in prop_oneof![
                Just(vec![7usize, 2]),
                Just((0..10).collect::<Vec<usize>>()),
                // Up to seven pairs (columns may repeat): past the
                // AVX-512F body's five pairs at once.
                proptest::collection::vec(0usize..10, 1..15),
            ],
            seed in any::<u64>(),
        ) {
            use rand::{RngExt, SeedableRng};
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut draw = |len: usize| -> Vec<f32> {
                (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
            };
            let (h, w, g, b) = (draw(rows * n), draw(10 * n), draw(n), draw(10));
            let mut readout = PairedReadout::default();
            readout.pack(&w, &g, &b, &columns);
            // The scalar body's plain code, compiled without FMA (the
            // software fused multiply-add a CPU without FMA runs), beside
            // every instruction set's own.
            let mut plain = vec![f32::NAN; rows * 10];
            for (row, out) in h.chunks_exact(n).zip(plain.chunks_exact_mut(10)) {
                readout.row_scalar(row, out);
            }
            let runs = Isa::available().into_iter().map(|isa| {
                let mut out = vec![f32::NAN; rows * 10];
                readout.logits(isa, &h, &mut out);
                (isa.name(), out)
            });
            for (isa, out) in std::iter::once(("plain scalar", plain)).chain(runs) {
                for r in 0..rows {
                    for c in 0..10 {
                        let got = out[r * 10 + c];
                        if columns.contains(&c) {
                            let row = &h[r * n..(r + 1) * n];
                            let want = logit_by_statement(row, &w[c * n..(c + 1) * n], &g, b[c]);
                            prop_assert_eq!(got.to_bits(), want.to_bits(), "{} row {} logit {}", isa, r, c);
                        } else {
                            prop_assert!(got.is_nan(), "{}: logit {} of row {} written", isa, c, r);
                        }
                    }
                }
            }
        }
    }
}
