//! The kernel's packed layout of rows (§3): groups of [`PACK`] rows
//! stored input by input, so that a tile reads its rows' inputs from one
//! contiguous stream; and a fixed set's rows kept in it.

/// Rows per group of the packed layout of a block's activities: the rows
/// of a group are stored input by input, `PACK` values per input, so that
/// a tile reads its rows' inputs from one contiguous stream. Every body's
/// tile height divides it, and it divides [`BLOCK`](crate::kernel::BLOCK).
pub const PACK: usize = 12;

/// The index of row r, input k of a packed buffer of `width` inputs per row.
pub(crate) fn packed_index(r: usize, k: usize, width: usize) -> usize {
    (r / PACK) * width * PACK + k * PACK + r % PACK
}

/// Writes `row` as row r of the packed buffer `out` (of `row.len()` inputs per row).
pub(crate) fn pack_row(row: &[f32], r: usize, out: &mut [f32]) {
    let base = packed_index(r, 0, row.len());
    for (k, &v) in row.iter().enumerate() {
        out[base + k * PACK] = v;
    }
}

/// Reads row r of the packed buffer `packed` into `row`.
pub(crate) fn unpack_row(packed: &[f32], r: usize, row: &mut [f32]) {
    let base = packed_index(r, 0, row.len());
    for (k, v) in row.iter_mut().enumerate() {
        *v = packed[base + k * PACK];
    }
}

/// Rows of one layer's activity `[R, N]` in the kernel's packed layout
/// ([`PACK`]; rows padded with zeros to whole groups), built once for a
/// fixed data set so that evaluating it needs no repacking (§4).
#[derive(Clone, Debug, Default)]
pub struct PackedRows {
    data: Vec<f32>,
    rows: usize,
    width: usize,
}

impl PackedRows {
    /// Packs the rows of `x`, `width` values each.
    pub fn new(x: &[f32], width: usize) -> PackedRows {
        assert!(
            width > 0 && x.len().is_multiple_of(width),
            "whole rows of {width} values"
        );
        let rows = x.len() / width;
        let mut data = vec![0.0; rows.next_multiple_of(PACK) * width];
        for (r, row) in x.chunks_exact(width).enumerate() {
            pack_row(row, r, &mut data);
        }
        PackedRows { data, rows, width }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The packed values, whole groups of [`PACK`] rows.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// `out` ← these rows with input k times `factor[k]` (each value
    /// multiplied once, as [`crate::net::layers::scale_rows`] does rows),
    /// reusing `out`'s allocation: a set's gated activity times the gated
    /// layer's factor with the modulation off (§2, exp(−β) when the gated
    /// layer is the modulated one).
    pub fn scale_inputs_into(&self, factor: &[f32], out: &mut PackedRows) {
        assert_eq!(factor.len(), self.width, "one factor per input");
        out.data.clear();
        for group in self.data.chunks_exact(self.width * PACK) {
            for (values, &f) in group.chunks_exact(PACK).zip(factor) {
                out.data.extend(values.iter().map(|&v| v * f));
            }
        }
        (out.rows, out.width) = (self.rows, self.width);
    }

    /// The rows at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> PackedRows {
        let mut data = vec![0.0; rows.len().next_multiple_of(PACK) * self.width];
        let mut row = vec![0.0; self.width];
        for (to, &from) in rows.iter().enumerate() {
            unpack_row(&self.data, from, &mut row);
            pack_row(&row, to, &mut data);
        }
        PackedRows {
            data,
            rows: rows.len(),
            width: self.width,
        }
    }
}
