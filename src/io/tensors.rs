//! Reading and writing safetensors files.
//!
//! Float tensors (F32, and F64/F16/BF16 converted to f32) and integer tensors (I64, and
//! I32/U8/… widened to i64) are kept apart: the engine computes in f32, integers are indices
//! (e.g. the golden fixtures' NCE patch ids).

use crate::error::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The whole content of a safetensors file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    pub floats: BTreeMap<String, ArrayD<f32>>,
    pub ints: BTreeMap<String, ArrayD<i64>>,
    /// The free-form `__metadata__` string map.
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    /// Reads a file; errors name the file and say what is wrong (missing, truncated, not
    /// safetensors, unsupported dtype).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_regular_file(path, MAX_TENSOR_FILE)?;
        Self::from_bytes(&bytes).map_err(|msg| Error::at(path, msg))
    }

    /// Parses safetensors bytes; the error is a message without the file name.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        check_framing(bytes)?;
        let st = SafeTensors::deserialize(bytes).map_err(describe)?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(describe)?;
        let mut out = TensorFile {
            metadata: meta
                .metadata()
                .as_ref()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            ..Default::default()
        };
        for (name, view) in st.iter() {
            let shape = IxDyn(view.shape());
            let data = view.data();
            let floats: Option<Vec<f32>> = match view.dtype() {
                Dtype::F32 => Some(le_chunks::<4>(data).map(f32::from_le_bytes).collect()),
                Dtype::F64 => Some(
                    le_chunks::<8>(data)
                        .map(|b| f64::from_le_bytes(b) as f32)
                        .collect(),
                ),
                Dtype::F16 => Some(
                    le_chunks::<2>(data)
                        .map(|b| half::f16::from_le_bytes(b).to_f32())
                        .collect(),
                ),
                Dtype::BF16 => Some(
                    le_chunks::<2>(data)
                        .map(|b| half::bf16::from_le_bytes(b).to_f32())
                        .collect(),
                ),
                _ => None,
            };
            if let Some(v) = floats {
                out.floats.insert(name.to_string(), to_array(shape, v)?);
                continue;
            }
            let ints: Vec<i64> = match view.dtype() {
                Dtype::I64 => le_chunks::<8>(data).map(i64::from_le_bytes).collect(),
                Dtype::I32 => le_chunks::<4>(data)
                    .map(|b| i32::from_le_bytes(b) as i64)
                    .collect(),
                Dtype::I16 => le_chunks::<2>(data)
                    .map(|b| i16::from_le_bytes(b) as i64)
                    .collect(),
                Dtype::I8 => data.iter().map(|&b| b as i8 as i64).collect(),
                Dtype::U8 => data.iter().map(|&b| b as i64).collect(),
                other => {
                    return Err(format!(
                        "tensor '{name}' has unsupported dtype {other:?} (expected F32, F64, F16, BF16 or an integer type)"
                    ));
                }
            };
            out.ints.insert(name.to_string(), to_array(shape, ints)?);
        }
        Ok(out)
    }

    /// Serialises to safetensors bytes (f32 and i64 tensors, metadata).
    pub fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        let mut raw: Vec<(String, RawTensor)> = Vec::new();
        for (name, a) in &self.floats {
            let mut bytes = Vec::with_capacity(a.len() * 4);
            // `iter()` walks the logical (row-major) order whatever the memory layout.
            a.iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
            raw.push((name.clone(), RawTensor::new(Dtype::F32, a.shape(), bytes)));
        }
        for (name, a) in &self.ints {
            if self.floats.contains_key(name) {
                return Err(format!("tensor '{name}' is both a float and an int tensor"));
            }
            let mut bytes = Vec::with_capacity(a.len() * 8);
            a.iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
            raw.push((name.clone(), RawTensor::new(Dtype::I64, a.shape(), bytes)));
        }
        let meta: Option<HashMap<String, String>> = if self.metadata.is_empty() {
            None
        } else {
            Some(self.metadata.clone().into_iter().collect())
        };
        let bytes =
            safetensors::serialize(raw, meta).map_err(|e| format!("cannot serialise: {e}"))?;
        Ok(sorted_header(bytes))
    }

    /// Writes atomically (see [`write_atomic`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes().map_err(|m| Error::at(path, m))?;
        write_atomic(path, &bytes)
    }
}

/// The file with its JSON header's keys in sorted order: `safetensors::serialize` writes the
/// metadata from a `HashMap`, whose order changes from process to process, and equal states
/// should give equal files. The header keeps its length (the same JSON, reordered), so the
/// offsets of the data are unchanged.
fn sorted_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(n) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    else {
        return bytes;
    };
    let Some(header) = bytes.get(8..8 + n) else {
        return bytes;
    };
    // serde_json's default map is ordered by key.
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(header) else {
        return bytes;
    };
    let Ok(json) = serde_json::to_vec(&v) else {
        return bytes;
    };
    if json.len() <= n {
        bytes[8..8 + json.len()].copy_from_slice(&json);
        bytes[8 + json.len()..8 + n].fill(b' ');
    }
    bytes
}

/// Loads the float tensors of a safetensors file as f32 (F64/F16/BF16 are converted);
/// integer tensors are skipped (see [`load_i64_tensors`]).
pub fn load_tensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, ArrayD<f32>>> {
    Ok(TensorFile::read(path.as_ref())?.floats)
}

/// Loads the integer tensors of a safetensors file as i64; float tensors are skipped.
pub fn load_i64_tensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, ArrayD<i64>>> {
    Ok(TensorFile::read(path.as_ref())?.ints)
}

/// Saves f32 tensors (and optional string metadata) atomically.
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, ArrayD<f32>>,
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let file = TensorFile {
        floats: tensors.clone(),
        ints: BTreeMap::new(),
        metadata: metadata.cloned().unwrap_or_default(),
    };
    file.write(path.as_ref())
}

/// Writes `bytes` to `path` so that readers see either the old file or the complete new one:
/// a temporary file in the same directory (same filesystem, so the rename is atomic), fsync,
/// rename over the target, then fsync the directory so the rename itself survives a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // Renaming over a device (/dev/full) or a directory would replace it, not write to it.
    if let Ok(m) = std::fs::metadata(path)
        && !m.is_file()
    {
        return Err(Error::at(path, "is not a regular file; cannot write there"));
    }
    let tmp = temp_path(path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Directory fsync is not possible everywhere; the data itself is already synced.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::at(path, format_args!("cannot write: {e}"))
    })
}

/// The largest safetensors file read (16 GiB, far above any checkpoint of this model): a bound
/// for what is read into memory whatever the file claims.
pub const MAX_TENSOR_FILE: u64 = 16 << 30;

/// The one reader of input files (pictures, checkpoints): a regular file only, so that a FIFO
/// cannot block forever and /dev/zero cannot be read until memory runs out, and at most
/// `limit` bytes. Errors are one line naming the file.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let cannot = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Error::at(path, "file not found"),
        _ => Error::at(path, format_args!("cannot read: {e}")),
    };
    let kind = |m: &std::fs::Metadata| -> Result<()> {
        if m.is_dir() {
            return Err(Error::at(path, "is a directory, not a file"));
        }
        if !m.is_file() {
            return Err(Error::at(
                path,
                "is not a regular file (a device, FIFO or socket)",
            ));
        }
        if m.len() > limit {
            return Err(Error::at(
                path,
                format_args!(
                    "file too large ({} bytes; at most {limit} are read)",
                    m.len()
                ),
            ));
        }
        Ok(())
    };
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    kind(&std::fs::metadata(path).map_err(cannot)?)?;
    let file = std::fs::File::open(path).map_err(cannot)?;
    // And again on what was opened, in case the name was swapped in between.
    kind(&file.metadata().map_err(cannot)?)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(Error::at(
            path,
            format_args!("file grew past {limit} bytes while read"),
        ));
    }
    Ok(bytes)
}

/// The temporary file [`write_atomic`] writes before renaming it to `path`:
/// `.<name>.tmp.<pid>` beside it, the name cut so that the whole stays within 255 bytes (the
/// usual limit of a file name, which a legal 250-byte `<name>` would otherwise exceed).
pub fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::at(path, "not a file path"))?;
    let suffix = format!(".tmp.{}", std::process::id());
    let room = 255 - 1 - suffix.len();
    #[cfg(unix)]
    let stem = {
        // A Unix name is any bytes, so it may be cut anywhere.
        use std::os::unix::ffi::OsStrExt;
        let b = name.as_bytes();
        std::ffi::OsStr::from_bytes(&b[..b.len().min(room)]).to_os_string()
    };
    #[cfg(not(unix))]
    let stem = {
        let t = name.to_string_lossy();
        let mut end = t.len().min(room);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        std::ffi::OsString::from(&t[..end])
    };
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(stem);
    tmp.push(suffix);
    Ok(path.with_file_name(tmp))
}

/// Removes the temporary files of [`write_atomic`] (`.<name>.tmp.<pid>`) in `dir` whose process
/// is gone (killed while writing: SIGKILL, SIGTERM, a second Ctrl-C); a live process's are
/// kept. Call it holding the directory's lock. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let owner = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp."))
            .and_then(|(_, pid)| pid.parse::<u32>().ok());
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if let Some(pid) = owner
            && is_file
            && !crate::lock::process_alive(pid)
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Checks the 8-byte header length against the file size first, so that a truncated file is
/// reported as such rather than as a generic parse error.
fn check_framing(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 8 {
        return Err(format!(
            "not a safetensors file or truncated ({} bytes, too short for a header)",
            bytes.len()
        ));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    // The format caps headers at 100 MB; a larger value means this is not safetensors at all.
    if n > 100_000_000 || (n > 0 && bytes.get(8) != Some(&b'{') && (n as usize) < bytes.len()) {
        return Err("not a safetensors file (bad header)".into());
    }
    if 8 + n > bytes.len() as u64 {
        return Err(format!(
            "truncated safetensors file (header needs {} bytes, file has {})",
            8 + n,
            bytes.len()
        ));
    }
    Ok(())
}

fn describe(e: SafeTensorError) -> String {
    match e {
        SafeTensorError::InvalidHeader(_)
        | SafeTensorError::InvalidHeaderDeserialization(_)
        | SafeTensorError::HeaderTooSmall
        | SafeTensorError::InvalidHeaderLength
        | SafeTensorError::HeaderTooLarge => "not a safetensors file (bad header)".into(),
        SafeTensorError::MetadataIncompleteBuffer => {
            "truncated or corrupt safetensors file (tensor data does not match the header)".into()
        }
        other => format!("corrupt safetensors file ({other})"),
    }
}

fn le_chunks<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    data.chunks_exact(N).map(|c| c.try_into().unwrap())
}

fn to_array<T>(shape: IxDyn, v: Vec<T>) -> std::result::Result<ArrayD<T>, String> {
    ArrayD::from_shape_vec(shape, v).map_err(|e| format!("tensor shape does not match data: {e}"))
}

/// A tensor's bytes ready for `safetensors::serialize`.
struct RawTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl RawTensor {
    fn new(dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Self {
        RawTensor {
            dtype,
            shape: shape.to_vec(),
            bytes,
        }
    }
}

impl View for RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sincut-io-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn equal_contents_give_equal_bytes() {
        // Enough metadata keys that a HashMap's order would differ between two maps.
        let mut f = TensorFile::default();
        for k in 0..16 {
            f.metadata.insert(format!("key{k}"), format!("{k}"));
        }
        f.floats
            .insert("w".into(), ArrayD::from_elem(IxDyn(&[2, 3]), 1.5f32));
        let a = f.to_bytes().unwrap();
        for _ in 0..8 {
            assert_eq!(f.to_bytes().unwrap(), a);
        }
        let back = TensorFile::from_bytes(&a).unwrap();
        assert_eq!(back.metadata, f.metadata);
        assert_eq!(back.floats, f.floats);
    }

    #[test]
    fn round_trip_floats_ints_metadata() {
        let dir = tmpdir("rt");
        let path = dir.join("a.safetensors");
        let mut f = TensorFile::default();
        // A transposed (non-standard layout) array must be written in logical order.
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0f32, 2., 3., 4., 5., 6.]).unwrap();
        f.floats.insert("x".into(), a.t().to_owned().into_dyn());
        f.floats.insert("t".into(), a.clone().reversed_axes());
        f.floats
            .insert("s".into(), ArrayD::from_elem(IxDyn(&[1]), -0.5f32));
        f.ints.insert(
            "ids".into(),
            ArrayD::from_shape_vec(IxDyn(&[3]), vec![0i64, 7, -1]).unwrap(),
        );
        f.metadata.insert("k".into(), "v".into());
        f.write(&path).unwrap();
        let g = TensorFile::read(&path).unwrap();
        assert_eq!(f, g);
        assert_eq!(g.floats["t"][[2, 1]], 6.0);
        // No temporary file left behind.
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clear_errors() {
        let dir = tmpdir("err");
        let missing = dir.join("missing.safetensors");
        let e = load_tensors(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing.safetensors") && e.contains("not found"),
            "{e}"
        );

        let junk = dir.join("junk.safetensors");
        std::fs::write(&junk, b"hello world, this is not a tensor file").unwrap();
        let e = load_tensors(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.safetensors") && e.contains("not a safetensors"),
            "{e}"
        );

        let mut m = BTreeMap::new();
        m.insert("w".to_string(), ArrayD::from_elem(IxDyn(&[16, 16]), 1.0f32));
        let good = dir.join("good.safetensors");
        save_tensors(&good, &m, None).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        for cut in [4, 20, bytes.len() - 1] {
            let t = dir.join("trunc.safetensors");
            std::fs::write(&t, &bytes[..cut]).unwrap();
            let e = load_tensors(&t).unwrap_err().to_string();
            assert!(
                e.contains("trunc.safetensors") && e.contains("truncated"),
                "{cut}: {e}"
            );
            assert!(!e.contains('\n'));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn converts_half_and_double() {
        let half_bits: [u16; 7] = [0x3c00, 0xc000, 0x0001, 0x8001, 0x7bff, 0x7c00, 0x7e00];
        let bytes: Vec<u8> = half_bits.iter().flat_map(|h| h.to_le_bytes()).collect();
        let bf: Vec<u8> = [0x3f80u16, 0xc040]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let file = safetensors::serialize(
            [
                ("h", RawTensor::new(Dtype::F16, &[7], bytes)),
                ("b", RawTensor::new(Dtype::BF16, &[2], bf)),
            ],
            None,
        )
        .unwrap();
        let f = TensorFile::from_bytes(&file).unwrap();
        let h = f.floats["h"].as_slice().unwrap();
        assert_eq!(
            &h[..5],
            &[1.0, -2.0, 2f32.powi(-24), -(2f32.powi(-24)), 65504.0]
        );
        assert!(h[5].is_infinite() && h[6].is_nan());
        assert_eq!(f.floats["b"].as_slice().unwrap(), &[1.0f32, -3.0]);
        let data: Vec<u8> = [1.5f64, -3.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes =
            safetensors::serialize([("d", RawTensor::new(Dtype::F64, &[2], data))], None).unwrap();
        let f = TensorFile::from_bytes(&bytes).unwrap();
        assert_eq!(f.floats["d"].as_slice().unwrap(), &[1.5f32, -3.25]);
    }
}
