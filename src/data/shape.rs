//! The shape of an image or a feature map (§8): channel-last,
//! `[height, width, channels]`, as the benchmarks hold their images and
//! the convolutional network its maps.

/// Height, width and channels of one image or feature map (§8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl Shape {
    /// Values in one map.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Values in one map, or `None` when the count overflows (a shape
    /// read from a file is checked with it before [`Shape::len`] is used).
    pub fn checked_len(&self) -> Option<usize> {
        self.channels
            .checked_mul(self.height)
            .and_then(|n| n.checked_mul(self.width))
    }

    /// True for an empty map.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels of one channel.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// The shape with a zero border of `border` pixels on every side, as
    /// the direct convolution reads its input (§8).
    pub fn bordered(&self, border: usize) -> Shape {
        Shape {
            channels: self.channels,
            height: self.height + 2 * border,
            width: self.width + 2 * border,
        }
    }

    /// The shape after a 2×2, stride-2 max-pool (odd edges dropped).
    pub fn pooled(&self) -> Shape {
        Shape {
            channels: self.channels,
            height: self.height / 2,
            width: self.width / 2,
        }
    }
}
