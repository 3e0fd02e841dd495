//! Reading and writing safetensors files (§7) with validation that names
//! the tensor at fault; writes are atomic ([`crate::io::atomic`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::io::read::{MAX_TENSOR_FILE_BYTES, read_bounded};

/// A tensor to write: little-endian f32 or i64 data with its shape.
#[derive(Clone, Debug)]
pub enum TensorData {
    /// f32 values.
    F32(Vec<f32>),
    /// i64 values.
    I64(Vec<i64>),
}

impl TensorData {
    fn bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// The safetensors bytes of `tensors` (sorted by name) with `metadata`;
/// `path` names the file they are for in an error (a shape that does not
/// match its values).
pub fn encode_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, TensorData)],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut sorted: Vec<&(String, Vec<usize>, TensorData)> = tensors.iter().collect();
    sorted.sort_by(|x, y| x.0.cmp(&y.0));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let sorted_metadata: std::collections::BTreeMap<_, _> = metadata.into_iter().collect();
        header.insert("__metadata__".into(), serde_json::json!(sorted_metadata));
    }
    let mut data = Vec::new();
    for (name, shape, tensor) in &sorted {
        let count: usize = shape.iter().product();
        let len = match tensor {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        };
        if count != len {
            return Err(Error::tensor(
                path,
                format!("tensor {name}: shape {shape:?} needs {count} values, got {len}"),
            ));
        }
        let start = data.len();
        data.extend(tensor.bytes());
        let dtype = match tensor {
            TensorData::F32(_) => "F32",
            TensorData::I64(_) => "I64",
        };
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut json = serde_json::to_vec(&header).expect("a JSON map always serialises");
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + json.len() + data.len());
    bytes.extend((json.len() as u64).to_le_bytes());
    bytes.extend(json);
    bytes.extend(data);
    Ok(bytes)
}

/// Writes `tensors` and `metadata` to `path` atomically. The header is
/// written with sorted keys and the data in name order, so the same
/// tensors always give the same bytes (§6); the layout is the
/// safetensors format: u64 header length, JSON header padded with spaces to
/// a multiple of 8 bytes, then the tensors' little-endian data back to back.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, TensorData)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    write_atomic(path, &encode_tensors(path, tensors, metadata)?)
}

/// A safetensors file read into memory, with typed, validated accessors.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Reads and parses the header of `path`.
    pub fn read(path: &Path) -> Result<TensorFile> {
        let bytes = read_bounded(path, MAX_TENSOR_FILE_BYTES)?;
        TensorFile::from_bytes(path, bytes)
    }

    /// Parses `bytes` as a safetensors file; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<TensorFile> {
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::tensor(path, format!("not a valid safetensors file: {e}")))?;
        SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::tensor(path, format!("not a valid safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        Ok(TensorFile {
            path: path.to_path_buf(),
            bytes,
            metadata,
        })
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("validated in TensorFile::read")
    }

    /// Names of all tensors, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tensors()
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    /// Fails, naming the first tensor not in `allowed`, when the file
    /// holds one (input files of §7 hold only the tensors they document).
    pub fn only_tensors(&self, allowed: &[&str]) -> Result<()> {
        match self
            .names()
            .into_iter()
            .find(|n| !allowed.contains(&n.as_str()))
        {
            Some(extra) => Err(self.error(format!(
                "unexpected tensor {extra} (expected {})",
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// Fails, naming every metadata key not in `known` and listing the
    /// known ones, when the file holds one: a misspelt key must not
    /// silently leave its default in place (§7).
    pub fn only_metadata(&self, known: &[&str]) -> Result<()> {
        let mut unknown: Vec<&str> = self
            .metadata
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        Err(self.error(format!(
            "unknown metadata key{} {} (known: {})",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", "),
            known.join(", ")
        )))
    }

    /// True if the file holds tensor `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors().tensor(name).is_ok()
    }

    /// A metadata string.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// All metadata strings.
    pub fn all_metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// An error about this file.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::tensor(&self.path, message)
    }

    /// The shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let tensors = self.tensors();
        let view = tensors
            .tensor(name)
            .map_err(|_| self.error(format!("missing tensor {name}")))?;
        Ok(view.shape().to_vec())
    }

    fn view(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<Vec<u8>> {
        let tensors = self.tensors();
        let view = tensors
            .tensor(name)
            .map_err(|_| self.error(format!("missing tensor {name}")))?;
        if view.dtype() != dtype {
            return Err(self.error(format!(
                "tensor {name} has dtype {:?}, expected {dtype:?}",
                view.dtype()
            )));
        }
        if view.shape() != shape {
            return Err(self.error(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                view.shape()
            )));
        }
        Ok(view.data().to_vec())
    }

    /// Tensor `name` as f32 of exactly `shape`, every value finite.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let values: Vec<f32> = self
            .view(name, Dtype::F32, shape)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.error(format!(
                "tensor {name} has a non-finite value {} at index {i}",
                values[i]
            )));
        }
        Ok(values)
    }

    /// Tensor `name` as i64 of exactly `shape`.
    pub fn i64(&self, name: &str, shape: &[usize]) -> Result<Vec<i64>> {
        Ok(self
            .view(name, Dtype::I64, shape)?
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect())
    }
}
