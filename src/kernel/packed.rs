//! The kernel's packed layout of rows (§3): groups of [`PACK`] rows
//! stored input by input, so that a tile reads its rows' inputs from one
//! contiguous stream; and a fixed set's rows kept in it, in groups of
//! [`PACK`] rows or of [`LANE_ROWS`] (the rows of one vector).

/// Rows per group of the packed layout of a block's activities: the rows
/// of a group are stored input by input, `PACK` values per input, so that
/// a tile reads its rows' inputs from one contiguous stream. Every body's
/// tile height divides it, and it divides [`BLOCK`](crate::kernel::BLOCK).
pub const PACK: usize = 12;

/// Rows per group of the layout that puts rows along a vector's lanes
/// ([`crate::kernel::dense::dense_lanes`]): one AVX-512 vector, two AVX2
/// vectors.
pub const LANE_ROWS: usize = 16;

/// The index of row r, input k of a packed buffer of `width` inputs per row.
pub(crate) fn packed_index(r: usize, k: usize, width: usize) -> usize {
    grouped_index(r, k, width, PACK)
}

/// The index of row r, input k of a buffer of `width` inputs per row
/// packed in groups of `group` rows.
fn grouped_index(r: usize, k: usize, width: usize, group: usize) -> usize {
    (r / group) * width * group + k * group + r % group
}

/// Writes `row` as row r of `out`, packed in groups of `group` rows (of
/// `row.len()` inputs per row).
fn pack_row(row: &[f32], r: usize, group: usize, out: &mut [f32]) {
    let base = grouped_index(r, 0, row.len(), group);
    for (k, &v) in row.iter().enumerate() {
        out[base + k * group] = v;
    }
}

/// The number of rows of `width` values in `x`; panics unless `x` holds
/// whole rows.
fn whole_rows(x: &[f32], width: usize) -> usize {
    assert!(
        width > 0 && x.len().is_multiple_of(width),
        "whole rows of {width} values"
    );
    x.len() / width
}

/// Reads row r of `packed`, packed in groups of `group` rows, into `row`.
fn unpack_grouped_row(packed: &[f32], r: usize, group: usize, row: &mut [f32]) {
    let base = grouped_index(r, 0, row.len(), group);
    for (k, v) in row.iter_mut().enumerate() {
        *v = packed[base + k * group];
    }
}

/// Reads row r of the packed buffer `packed` ([`PACK`]) into `row`.
pub(crate) fn unpack_row(packed: &[f32], r: usize, row: &mut [f32]) {
    unpack_grouped_row(packed, r, PACK, row);
}

/// Rows of one layer's activity `[R, N]` in a packed layout (groups of
/// [`PACK`] or [`LANE_ROWS`] rows; rows padded with zeros to whole
/// groups), built once for a fixed data set so that evaluating it needs
/// no repacking (§4).
#[derive(Clone, Debug)]
pub struct PackedRows {
    data: Vec<f32>,
    rows: usize,
    width: usize,
    group: usize,
}

impl Default for PackedRows {
    /// No rows, in groups of [`PACK`].
    fn default() -> PackedRows {
        PackedRows {
            data: Vec::new(),
            rows: 0,
            width: 0,
            group: PACK,
        }
    }
}

impl PackedRows {
    /// Packs the rows of `x`, `width` values each, in groups of [`PACK`]
    /// rows: the layout of the kernel's tiles.
    pub fn new(x: &[f32], width: usize) -> PackedRows {
        PackedRows::grouped(x, width, PACK)
    }

    /// Packs the rows of `x`, `width` values each, in groups of
    /// [`LANE_ROWS`]: the layout of [`crate::kernel::dense::dense_lanes`].
    pub fn along_lanes(x: &[f32], width: usize) -> PackedRows {
        PackedRows::grouped(x, width, LANE_ROWS)
    }

    /// Packs the rows of `x` (`width` values each) in groups of [`PACK`]
    /// rows, row r's input k being its value `order[k]`: the network's
    /// input as its first layer reads it (quadrant-major, §2;
    /// [`crate::net::Model::input_order`]), reordered and packed in one
    /// pass that writes the packed buffer in order, each group's line of
    /// input k gathered from its rows. 500 canvases took 320 µs to reorder
    /// ([`crate::net::Model::reorder_input`]) and 207 µs to pack
    /// ([`PackedRows::new`]), 132 µs here, in throwaway timings on a Zen 4
    /// (`online_retrain-last` packs 500 per run).
    pub fn reordered(x: &[f32], width: usize, order: &[u16]) -> PackedRows {
        let rows = whole_rows(x, width);
        assert!(
            order.iter().all(|&p| usize::from(p) < width),
            "an order of the {width} values of a row"
        );
        let inputs = order.len();
        let mut data = vec![0.0; rows.next_multiple_of(PACK) * inputs];
        for (rows_x, out) in x
            .chunks(PACK * width)
            .zip(data.chunks_exact_mut(PACK * inputs))
        {
            for (line, &at) in out.chunks_exact_mut(PACK).zip(order) {
                for (packed, row) in line.iter_mut().zip(rows_x.chunks_exact(width)) {
                    *packed = row[usize::from(at)];
                }
            }
        }
        PackedRows {
            data,
            rows,
            width: inputs,
            group: PACK,
        }
    }

    /// Packs the rows of `x` in groups of `group` rows.
    fn grouped(x: &[f32], width: usize, group: usize) -> PackedRows {
        let rows = whole_rows(x, width);
        let mut data = vec![0.0; rows.next_multiple_of(group) * width];
        for (r, row) in x.chunks_exact(width).enumerate() {
            pack_row(row, r, group, &mut data);
        }
        PackedRows {
            data,
            rows,
            width,
            group,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows per group: [`PACK`] or [`LANE_ROWS`].
    pub fn group(&self) -> usize {
        self.group
    }

    /// The packed values, whole groups of [`PackedRows::group`] rows.
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
        for group in self.data.chunks_exact(self.width * self.group) {
            for (values, &f) in group.chunks_exact(self.group).zip(factor) {
                out.data.extend(values.iter().map(|&v| v * f));
            }
        }
        (out.rows, out.width, out.group) = (self.rows, self.width, self.group);
    }

    /// The rows at `rows`, in that order, in groups of as many rows.
    pub fn select(&self, rows: &[usize]) -> PackedRows {
        let group = self.group;
        let mut data = vec![0.0; rows.len().next_multiple_of(group) * self.width];
        let mut row = vec![0.0; self.width];
        for (to, &from) in rows.iter().enumerate() {
            unpack_grouped_row(&self.data, from, group, &mut row);
            pack_row(&row, to, group, &mut data);
        }
        PackedRows {
            data,
            rows: rows.len(),
            width: self.width,
            group,
        }
    }
}
