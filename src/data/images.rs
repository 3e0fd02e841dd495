//! Labelled images of a multi-task benchmark (§8): in f32 for a network,
//! or as bytes while a data set is held in memory.

/// Labelled images in f32, ready for a network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Images {
    /// `[n, H, W, C]` in [0, 1] (plus noise for composites).
    pub images: Vec<f32>,
    /// `[n, tasks]`, 0 or 1.
    pub labels: Vec<u8>,
}

impl Images {
    /// Number of examples.
    pub fn len(&self, tasks: usize) -> usize {
        self.labels.len() / tasks
    }
}

/// Labelled images held as bytes, channel-last (the external data sets).
#[derive(Clone, Debug, Default)]
pub struct ByteImages {
    /// `[n, H, W, C]` pixel bytes.
    pub pixels: Vec<u8>,
    /// `[n, tasks]`, 0 or 1.
    pub labels: Vec<u8>,
}
