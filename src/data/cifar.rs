//! CIFAR-100 in its binary version (§8): records of a coarse-label byte,
//! a fine-label byte and 3072 channel-major pixel bytes; its 20 coarse
//! classes are the benchmark's one-vs-rest tasks.

use std::path::Path;

use crate::data::images::ByteImages;
use crate::error::{Error, Result};
use crate::io::read::{MAX_IDX_BYTES, read_bounded};

/// Side of a CIFAR-100 image.
pub const CIFAR_SIDE: usize = 32;
/// Bytes of one CIFAR-100 record: coarse label, fine label, 3×32×32 pixels.
pub const CIFAR_RECORD: usize = 2 + 3 * CIFAR_SIDE * CIFAR_SIDE;
/// Coarse classes of CIFAR-100: its tasks.
pub const CIFAR_COARSE: usize = 20;
/// Fine classes of CIFAR-100.
pub const CIFAR_FINE: usize = 100;
/// Reads a CIFAR-100 binary file (§8): records of a coarse-label byte
/// (< 20), a fine-label byte (< 100) and 3072 channel-major pixel bytes;
/// pixels are stored channel-last, labels as the 20 one-vs-rest tasks.
pub(crate) fn load_cifar(path: &Path, limit: Option<usize>) -> Result<ByteImages> {
    let bytes = read_bounded(path, MAX_IDX_BYTES)?;
    parse_cifar(&bytes, limit).map_err(|m| Error::data(path, m))
}

/// The parser of `load_cifar`, on the file's bytes.
pub fn parse_cifar_records(bytes: &[u8]) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let stored = parse_cifar(bytes, None)?;
    Ok((stored.pixels, stored.labels))
}

fn parse_cifar(bytes: &[u8], limit: Option<usize>) -> std::result::Result<ByteImages, String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(format!(
            "{} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-100 records",
            bytes.len()
        ));
    }
    let count = (bytes.len() / CIFAR_RECORD).min(limit.unwrap_or(usize::MAX));
    let plane = CIFAR_SIDE * CIFAR_SIDE;
    let mut stored = ByteImages {
        pixels: vec![0; count * 3 * plane],
        labels: vec![0; count * CIFAR_COARSE],
    };
    for (i, record) in bytes.chunks_exact(CIFAR_RECORD).take(count).enumerate() {
        let (coarse, fine) = (record[0] as usize, record[1] as usize);
        if coarse >= CIFAR_COARSE || fine >= CIFAR_FINE {
            return Err(format!(
                "record {i}: labels coarse {coarse} fine {fine} (need < {CIFAR_COARSE} and < {CIFAR_FINE})"
            ));
        }
        stored.labels[i * CIFAR_COARSE + coarse] = 1;
        let out = &mut stored.pixels[i * 3 * plane..(i + 1) * 3 * plane];
        for p in 0..plane {
            for c in 0..3 {
                out[p * 3 + c] = record[2 + c * plane + p];
            }
        }
    }
    Ok(stored)
}
