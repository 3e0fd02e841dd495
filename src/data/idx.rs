//! IDX files (the MNIST format), raw or gzip-compressed (§1).
//!
//! Layout: a big-endian magic `0x0000_08_NN` (`08` = unsigned bytes, `NN` =
//! number of dimensions), then `NN` big-endian u32 dimensions, then the
//! payload. Images have magic 2051 (3 dimensions), labels 2049 (1).

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::read::{MAX_IDX_BYTES, read_bounded, read_to_end_bounded};

/// Magic number of an IDX image file (u8 data, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file (u8 data, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// A decoded IDX file of unsigned bytes.
#[derive(Debug, Clone)]
pub struct IdxArray {
    /// The dimensions from the header.
    pub dims: Vec<usize>,
    /// The payload, row-major.
    pub data: Vec<u8>,
}

/// The bytes of `path`, decompressed when they start with the gzip magic;
/// raw or decompressed, at most [`MAX_IDX_BYTES`].
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    decompress_maybe_gzip(read_bounded(path, MAX_IDX_BYTES)?).map_err(|m| Error::data(path, m))
}

/// `raw`, decompressed when it starts with the gzip magic (at most
/// [`MAX_IDX_BYTES`] once decompressed); the error is a message without
/// the file name.
pub fn decompress_maybe_gzip(raw: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        read_to_end_bounded(
            flate2::read::MultiGzDecoder::new(raw.as_slice()),
            MAX_IDX_BYTES,
        )
        .map_err(|e| format!("corrupt gzip data: {e}"))
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file and checks its magic against `expected_magic`.
pub fn read_idx(path: &Path, expected_magic: u32) -> Result<IdxArray> {
    parse_idx(&read_maybe_gzip(path)?, expected_magic).map_err(|m| Error::data(path, m))
}

/// Parses IDX bytes; the error is a message without the file name.
pub fn parse_idx(bytes: &[u8], expected_magic: u32) -> std::result::Result<IdxArray, String> {
    let word = |i: usize| -> Option<u32> {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let magic = word(0).ok_or("truncated file: shorter than the 4-byte IDX magic")?;
    if magic != expected_magic {
        return Err(format!(
            "bad magic {magic:#010x}, expected {expected_magic:#010x} ({})",
            match expected_magic {
                IMAGES_MAGIC => "IDX images",
                LABELS_MAGIC => "IDX labels",
                _ => "IDX",
            }
        ));
    }
    let ndims = (magic & 0xff) as usize;
    let mut dims = Vec::with_capacity(ndims);
    for i in 0..ndims {
        let d = word(1 + i).ok_or("truncated file: header ends before its dimensions")?;
        dims.push(d as usize);
    }
    let header = 4 * (1 + ndims);
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("dimensions overflow")?;
    let payload = &bytes[header..];
    if payload.len() < expected {
        return Err(format!(
            "truncated file: dimensions {dims:?} need {expected} bytes of data, found {}",
            payload.len()
        ));
    }
    if payload.len() > expected {
        return Err(format!(
            "{} trailing bytes after the {expected} bytes that dimensions {dims:?} describe",
            payload.len() - expected
        ));
    }
    Ok(IdxArray {
        dims,
        data: payload.to_vec(),
    })
}
