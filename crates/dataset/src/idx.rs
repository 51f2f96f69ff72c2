//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! Header: two zero bytes, a type byte (0x08 = unsigned byte), a rank byte, then `rank`
//! big-endian u32 dimensions, then the row-major payload. Only u8 payloads are used by
//! these data sets, so only those are read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::{DatasetError, Result, io_err};

const TYPE_U8: u8 = 0x08;
const MAX_RANK: usize = 4;
/// gzip's two magic bytes: decides between compressed and raw whatever the file is called.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// deflate expands at most 1032-fold (258 bytes from a 2-bit code): a header claiming more
/// than that from the file's size cannot be true, and is refused before inflating.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// A u8 IDX array: its dimensions and row-major data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file, gzip or raw (detected by content).
///
/// The payload length implied by the header is checked against the bytes actually present
/// before anything that size is allocated, so a header claiming 2^31 images on a 1 KB file
/// fails cleanly.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bad = |reason: String| DatasetError::BadIdx {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut file, &mut magic).map_err(io_err(path))?;
    let reopened = File::open(path).map_err(io_err(path))?;
    let compressed = got == 2 && magic == GZIP_MAGIC;
    let mut reader: Box<dyn Read> = if compressed {
        Box::new(GzDecoder::new(BufReader::new(reopened)))
    } else {
        Box::new(BufReader::new(reopened))
    };

    let mut head = [0u8; 4];
    if read_up_to(&mut reader, &mut head).map_err(|e| bad(e.to_string()))? < 4 {
        return Err(bad("file shorter than the 4-byte magic number".into()));
    }
    if head[0] != 0 || head[1] != 0 {
        return Err(bad(format!(
            "wrong magic number {:02x}{:02x}{:02x}{:02x} (expected 0000 08 0r)",
            head[0], head[1], head[2], head[3]
        )));
    }
    if head[2] != TYPE_U8 {
        return Err(bad(format!(
            "element type 0x{:02x} is not supported (only 0x08, unsigned byte)",
            head[2]
        )));
    }
    let rank = head[3] as usize;
    if rank == 0 || rank > MAX_RANK {
        return Err(bad(format!("rank {rank} is not in 1..={MAX_RANK}")));
    }
    let mut dim_bytes = vec![0u8; 4 * rank];
    if read_up_to(&mut reader, &mut dim_bytes).map_err(|e| bad(e.to_string()))? < dim_bytes.len() {
        return Err(bad(format!("header truncated: {rank} dimensions expected")));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;

    let header_len = 4 + 4 * rank as u64;
    if compressed && expected as u64 > file_len.saturating_mul(MAX_DEFLATE_RATIO) {
        return Err(bad(format!(
            "header says {dims:?} = {expected} bytes of data, more than a {file_len}-byte gzip \
             file can hold"
        )));
    }
    if !compressed && file_len - header_len != expected as u64 {
        return Err(bad(format!(
            "header says {dims:?} = {expected} bytes of data but the file has {}",
            file_len - header_len
        )));
    }
    // For gzip the true length is only known after decompressing: read at most one byte
    // more than claimed into a vector that grows with the data actually there.
    let mut data = Vec::new();
    reader
        .take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| bad(format!("corrupt gzip stream: {e}")))?;
    if data.len() != expected {
        let what = if data.len() < expected {
            "truncated"
        } else {
            "longer than its header says"
        };
        return Err(bad(format!(
            "{what}: header says {dims:?} = {expected} bytes of data, found {}{}",
            data.len(),
            if data.len() > expected { "+" } else { "" }
        )));
    }
    Ok(IdxArray { dims, data })
}

/// Fills as much of `buf` as the reader has; returns how much that was.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Encodes a u8 array as IDX bytes (used to generate test files).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, TYPE_U8, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_raw_and_gzip_alike() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let bytes = encode_idx(&[2, 3, 4], &data);
        for (name, content) in [
            ("a-idx3-ubyte", bytes.clone()),
            ("a-idx3-ubyte.gz", gzip(&bytes)),
        ] {
            let arr = read_idx(&write(dir.path(), name, &content)).unwrap();
            assert_eq!(arr.dims, vec![2, 3, 4]);
            assert_eq!(arr.data, data);
        }
    }

    #[test]
    fn wrong_magic_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.idx", &[1, 2, 8, 1, 0, 0, 0, 1, 7]);
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(msg.contains("bad.idx") && msg.contains("magic"), "{msg}");
    }

    #[test]
    fn truncated_payload_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode_idx(&[10, 28, 28], &[0u8; 10 * 28 * 28]);
        bytes.truncate(bytes.len() - 100);
        for (name, content) in [("t.idx", bytes.clone()), ("t.idx.gz", gzip(&bytes))] {
            let msg = read_idx(&write(dir.path(), name, &content))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains("7840") || msg.contains("truncated"), "{msg}");
        }
    }

    #[test]
    fn huge_claim_on_tiny_file_fails_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        // 2^31 images of 28x28 claimed, 1 KB present.
        let mut bytes = vec![0, 0, 8, 3];
        for d in [1u32 << 31, 28, 28] {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&[0u8; 1024]);
        for (name, content) in [("huge.idx", bytes.clone()), ("huge.idx.gz", gzip(&bytes))] {
            let msg = read_idx(&write(dir.path(), name, &content))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(name), "{msg}");
        }
    }

    /// A gzip bomb: 32 MB of zeros compress to ~32 KB; the header claims 2^31 images.
    /// Refused from the sizes alone, before inflating anything.
    #[test]
    fn a_gzip_file_claiming_more_than_deflate_can_hold_is_refused_before_inflating() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0, 0, 8, 3];
        for d in [1u32 << 31, 28, 28] {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.resize(bytes.len() + (32 << 20), 0);
        let path = write(dir.path(), "bomb.idx.gz", &gzip(&bytes));
        // This message comes only from the check made before inflating.
        let msg = read_idx(&path).unwrap_err().to_string();
        assert!(
            msg.contains("bomb.idx.gz") && msg.contains("gzip file can hold"),
            "{msg}"
        );
    }

    #[test]
    fn trailing_bytes_and_bad_headers_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut long = encode_idx(&[2], &[1, 2]);
        long.push(3);
        assert!(read_idx(&write(dir.path(), "long.idx", &long)).is_err());
        assert!(read_idx(&write(dir.path(), "short.idx", &[0, 0])).is_err());
        assert!(read_idx(&write(dir.path(), "rank0.idx", &[0, 0, 8, 0])).is_err());
        assert!(read_idx(&write(dir.path(), "f32.idx", &[0, 0, 0x0d, 1, 0, 0, 0, 0])).is_err());
        assert!(read_idx(&write(dir.path(), "empty.idx", &[])).is_err());
        let garbage_gz = [0x1f, 0x8b, 1, 2, 3, 4];
        assert!(read_idx(&write(dir.path(), "garbage.gz", &garbage_gz)).is_err());
        let missing = read_idx(&dir.path().join("missing.idx"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing.idx"), "{missing}");
    }
}
