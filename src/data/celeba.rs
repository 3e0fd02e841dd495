//! CelebA (§8): the attribute list (40 binary attributes per image), the
//! evaluation partition, and the aligned JPEGs resized to 64×64; its
//! attributes are the benchmark's tasks.

use std::path::{Component, Path};

use rayon::prelude::*;

use crate::data::TaskId;
use crate::data::images::ByteImages;
use crate::error::{Error, Result};
use crate::io::read::read_bounded;

/// Side CelebA's aligned images are resized to (§8).
pub const CELEBA_SIDE: usize = 64;
/// Attributes of CelebA: its tasks.
pub const CELEBA_ATTRIBUTES: usize = 40;
/// Largest CelebA text file read.
const MAX_LIST_BYTES: u64 = 64 << 20;

/// CelebA's attribute list: the names, then per image its file name and
/// 40 values ±1 (as 0/1).
pub type Attributes = (Vec<String>, Vec<(String, [u8; CELEBA_ATTRIBUTES])>);

/// Parses `list_attr_celeba.txt`: a count line, a line of 40 names, then
/// one line per image, `<file> ±1 × 40`.
pub fn parse_celeba_attributes(text: &str) -> std::result::Result<Attributes, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, count) = lines.next().ok_or("is empty")?;
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| format!("line 1: {:?} is not the number of images", count.trim()))?;
    let (_, names) = lines
        .next()
        .ok_or("line 2: the attribute names are missing")?;
    let names: Vec<String> = names.split_whitespace().map(str::to_string).collect();
    if names.len() != CELEBA_ATTRIBUTES {
        return Err(format!(
            "line 2: {} attribute names, expected {CELEBA_ATTRIBUTES}",
            names.len()
        ));
    }
    // The names are the benchmark's task names (records, --tasks).
    for (i, name) in names.iter().enumerate() {
        TaskId::try_from(name.clone()).map_err(|e| format!("line 2: attribute name: {e}"))?;
        if names[..i].contains(name) {
            return Err(format!("line 2: attribute name {name:?} appears twice"));
        }
    }
    let mut rows = Vec::with_capacity(count.min(1 << 20));
    for (number, line) in lines {
        let mut fields = line.split_whitespace();
        let file = image_name(fields.next().expect("non-empty line"), number)?;
        let mut values = [0u8; CELEBA_ATTRIBUTES];
        let mut seen = 0;
        for field in fields {
            if seen == CELEBA_ATTRIBUTES {
                return Err(format!(
                    "line {}: more than {CELEBA_ATTRIBUTES} values",
                    number + 1
                ));
            }
            values[seen] = match field {
                "1" => 1,
                "-1" => 0,
                other => {
                    return Err(format!(
                        "line {}: value {other:?} is not 1 or -1",
                        number + 1
                    ));
                }
            };
            seen += 1;
        }
        if seen != CELEBA_ATTRIBUTES {
            return Err(format!(
                "line {}: {seen} values, expected {CELEBA_ATTRIBUTES}",
                number + 1
            ));
        }
        rows.push((file, values));
    }
    if rows.len() != count {
        return Err(format!(
            "line 1 announces {count} images, the file lists {}",
            rows.len()
        ));
    }
    Ok((names, rows))
}

/// An image's name from line `number` (0-based) of a list: a file name
/// inside the image folder, never a path that leads out of it.
fn image_name(name: &str, number: usize) -> std::result::Result<String, String> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) if !name.contains(['/', '\\']) => Ok(name.to_string()),
        _ => Err(format!(
            "line {}: {name:?} is not the name of a file in the image folder",
            number + 1
        )),
    }
}

/// Parses `list_eval_partition.txt`: `<file> 0|1|2` (train, validation, test).
pub fn parse_celeba_partition(text: &str) -> std::result::Result<Vec<(String, u8)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(number, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [file, split @ ("0" | "1" | "2")] => {
                    Ok((image_name(file, number)?, split.as_bytes()[0] - b'0'))
                }
                _ => Err(format!(
                    "line {}: {line:?} is not `<file> 0|1|2`",
                    number + 1
                )),
            }
        })
        .collect()
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bounded(path, MAX_LIST_BYTES)?;
    String::from_utf8(bytes).map_err(|_| Error::data(path, "is not UTF-8 text"))
}

/// Decodes one aligned CelebA JPEG and resizes it to 64×64 RGB bytes.
pub fn decode_celeba_image(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let image = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
        .map_err(|e| format!("not a readable JPEG: {e}"))?;
    let side = CELEBA_SIDE as u32;
    let resized = image::imageops::resize(
        &image.to_rgb8(),
        side,
        side,
        image::imageops::FilterType::Triangle,
    );
    Ok(resized.into_raw())
}

pub(crate) fn load_celeba(
    dir: &Path,
    limit: Option<usize>,
) -> Result<(Vec<String>, ByteImages, ByteImages)> {
    let attr_path = dir.join("list_attr_celeba.txt");
    let part_path = dir.join("list_eval_partition.txt");
    let (names, rows) =
        parse_celeba_attributes(&read_text(&attr_path)?).map_err(|m| Error::data(&attr_path, m))?;
    let partition =
        parse_celeba_partition(&read_text(&part_path)?).map_err(|m| Error::data(&part_path, m))?;
    if partition.len() != rows.len() {
        return Err(Error::data(
            &part_path,
            format!(
                "lists {} images, {} lists {}",
                partition.len(),
                attr_path.display(),
                rows.len()
            ),
        ));
    }
    let images_dir = if dir.join("img_align_celeba").is_dir() {
        dir.join("img_align_celeba")
    } else {
        dir.to_path_buf()
    };
    let mut splits = [Vec::new(), Vec::new()];
    for (i, ((file, values), (part_file, split))) in rows.iter().zip(&partition).enumerate() {
        if file != part_file {
            return Err(Error::data(
                &part_path,
                format!(
                    "line {}: {part_file:?} where the attribute list has {file:?}",
                    i + 1
                ),
            ));
        }
        // Partition 0 trains, 2 tests; the validation partition (1) is not used.
        let which = match split {
            0 => 0,
            2 => 1,
            _ => continue,
        };
        if splits[which].len() < limit.unwrap_or(usize::MAX) {
            splits[which].push((file.clone(), *values));
        }
    }
    let load = |entries: &Vec<(String, [u8; CELEBA_ATTRIBUTES])>| -> Result<ByteImages> {
        let pixels: Vec<Vec<u8>> = entries
            .par_iter()
            .map(|(file, _)| {
                let path = images_dir.join(file);
                let bytes = read_bounded(&path, MAX_LIST_BYTES)?;
                decode_celeba_image(&bytes).map_err(|m| Error::data(&path, m))
            })
            .collect::<Result<_>>()?;
        Ok(ByteImages {
            pixels: pixels.concat(),
            labels: entries
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .collect(),
        })
    };
    let (train, test) = (load(&splits[0])?, load(&splits[1])?);
    for (stored, name) in [(&train, "training (0)"), (&test, "test (2)")] {
        if stored.labels.is_empty() {
            return Err(Error::data(
                &part_path,
                format!("no image in the {name} partition"),
            ));
        }
    }
    Ok((names, train, test))
}
