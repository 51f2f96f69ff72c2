//! Checksummed, atomic downloads of the canonical data files.
//!
//! Each file is streamed into a temporary file beside its destination, its MD5 checked,
//! and only then renamed into place: an interrupted or corrupt download never leaves a
//! file that a later run would trust.

use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::GzDecoder;
use indicatif::HumanBytes;
use md5::{Digest, Md5};

use crate::error::{DatasetError, Result, io_err};

/// What the MD5 is taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digested {
    /// The bytes as downloaded.
    File,
    /// The decompressed content of a gzip file. MNIST's official checksums are of the raw
    /// IDX files, and mirrors re-compress them, so this is what stays stable.
    Gunzipped,
}

/// One file to download: its name on disk, mirrors tried in order, and its checksum.
#[derive(Debug, Clone)]
pub struct RemoteFile {
    pub name: String,
    pub urls: Vec<String>,
    pub md5: String,
    pub digested: Digested,
}

impl RemoteFile {
    /// `name` fetched from each of `bases` (URLs ending in `/`) in turn.
    pub fn mirrored(name: &str, bases: &[&str], md5: &str, digested: Digested) -> Self {
        Self {
            name: name.to_string(),
            urls: bases.iter().map(|b| format!("{b}{name}")).collect(),
            md5: md5.to_string(),
            digested,
        }
    }
}

/// Downloads `file` into `dir` unless it is already there; returns its path.
pub fn fetch(file: &RemoteFile, dir: &Path) -> Result<PathBuf> {
    let dest = dir.join(&file.name);
    if dest.is_file() {
        return Ok(dest);
    }
    // The folders this call creates (`dir` and any missing parents), innermost first.
    let created: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let result = fetch_into(file, dir, &dest);
    if result.is_err() {
        // A failed download leaves no empty folder behind (remove_dir takes only empty ones).
        for folder in &created {
            let _ = fs::remove_dir(folder);
        }
    }
    result
}

/// Tries each address of `file` in turn; the first verified download becomes `dest`.
fn fetch_into(file: &RemoteFile, dir: &Path, dest: &Path) -> Result<PathBuf> {
    let mut last_error = None;
    for url in &file.urls {
        eprintln!("Downloading {url}");
        match download_verified(url, file, dir) {
            Ok(tmp) => {
                tmp.persist(dest).map_err(|e| DatasetError::Io {
                    path: dest.to_path_buf(),
                    cause: e.error,
                })?;
                return Ok(dest.to_path_buf());
            }
            Err(e) => {
                eprintln!("  failed: {e}");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| DatasetError::Download {
        url: file.name.clone(),
        reason: "no download address known".into(),
    }))
}

/// Streams `url` into a temporary file in `dir` and checks it; the temporary file is
/// deleted when it is dropped, so every error path cleans up after itself.
fn download_verified(url: &str, file: &RemoteFile, dir: &Path) -> Result<tempfile::NamedTempFile> {
    let fail = |reason: String| DatasetError::Download {
        url: url.to_string(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let announced: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut body = response.into_body().into_reader();

    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file.name))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received: u64 = 0;
    let bar = crate::progress::bar(
        announced.unwrap_or(0),
        crate::progress::style("", "{bytes}/{total_bytes}"),
        format!("  {}", file.name),
    );
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(fail(format!(
                    "connection broken after {received} bytes: {e}"
                )));
            }
        };
        tmp.write_all(&buf[..n]).map_err(io_err(tmp.path()))?;
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
        // Logs and pipes (where the bar is hidden) get a line per quarter instead.
        if let (true, Some(len)) = (bar.is_hidden(), announced)
            && let Some(quarter) = quarter_reached(received, received + n as u64, len)
        {
            eprintln!(
                "  {}: {}% ({} of {})",
                file.name,
                quarter * 25,
                HumanBytes(received + n as u64),
                HumanBytes(len)
            );
        }
        received += n as u64;
    }
    bar.finish_and_clear();
    if let Some(len) = announced.filter(|&len| len != received) {
        return Err(fail(format!(
            "truncated: received {received} of {len} bytes"
        )));
    }
    tmp.flush().map_err(io_err(tmp.path()))?;

    let actual = match file.digested {
        Digested::File => hex(&hasher.finalize()),
        Digested::Gunzipped => {
            let f = tmp.as_file_mut();
            f.rewind().map_err(io_err(dir))?;
            md5_of_gunzipped(f).map_err(|e| fail(format!("not a valid gzip file: {e}")))?
        }
    };
    if actual != file.md5 {
        return Err(DatasetError::Checksum {
            name: file.name.clone(),
            expected: file.md5.clone(),
            actual,
        });
    }
    Ok(tmp)
}

/// The highest quarter (1 to 4) of `total` bytes that a read from `before` to `after`
/// bytes passed, if it passed one.
fn quarter_reached(before: u64, after: u64, total: u64) -> Option<u64> {
    if total == 0 {
        return None;
    }
    let quarter = |bytes: u64| (bytes.min(total) * 4 / total).min(4);
    let (from, to) = (quarter(before), quarter(after));
    (to > from).then_some(to)
}

fn md5_of_gunzipped(f: &mut File) -> std::io::Result<String> {
    let mut hasher = Md5::new();
    let mut gz = GzDecoder::new(BufReader::new(f));
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = gz.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::thread;

    /// What the test server sends for one request.
    enum Reply {
        Ok(Vec<u8>),
        NotFound,
        /// Announces the full length, sends only the first `n` bytes, then closes.
        Truncated(Vec<u8>, usize),
    }

    /// A one-request HTTP/1.1 server on 127.0.0.1; returns its base URL.
    fn serve_once(reply: Reply) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let (head, body): (String, &[u8]) = match &reply {
                Reply::Ok(b) => (
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", b.len()),
                    b,
                ),
                Reply::NotFound => (
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n".into(),
                    &[],
                ),
                Reply::Truncated(b, n) => (
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", b.len()),
                    &b[..*n],
                ),
            };
            let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
            let _ = stream.write_all(body);
        });
        format!("http://{addr}/")
    }

    fn md5_hex(bytes: &[u8]) -> String {
        hex(&Md5::digest(bytes))
    }

    fn leftover_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn plain_progress_lines_come_once_per_quarter() {
        let lines: Vec<u64> = (0..100u64)
            .filter_map(|i| quarter_reached(i * 10, (i + 1) * 10, 1000))
            .collect();
        assert_eq!(lines, [1, 2, 3, 4]);
        // A read that jumps past several quarters reports the last; none past the end.
        assert_eq!(quarter_reached(0, 800, 1000), Some(3));
        assert_eq!(quarter_reached(1000, 1200, 1000), None);
        assert_eq!(quarter_reached(0, 10, 0), None);
    }

    #[test]
    fn downloads_verifies_and_caches() {
        let dir = tempfile::tempdir().unwrap();
        let payload = b"hello data".repeat(1000);
        let base = serve_once(Reply::Ok(payload.clone()));
        let file = RemoteFile::mirrored("f.bin", &[&base], &md5_hex(&payload), Digested::File);
        let path = fetch(&file, dir.path()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), payload);
        assert_eq!(leftover_files(dir.path()), vec!["f.bin".to_string()]);
        // Cached: a second fetch makes no request (the server is gone).
        assert_eq!(fetch(&file, dir.path()).unwrap(), path);
    }

    #[test]
    fn verifies_gunzipped_content() {
        let dir = tempfile::tempdir().unwrap();
        let raw = b"idx payload".repeat(100);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        let base = serve_once(Reply::Ok(gz.clone()));
        let file = RemoteFile::mirrored("f.gz", &[&base], &md5_hex(&raw), Digested::Gunzipped);
        let path = fetch(&file, dir.path()).unwrap();
        assert_eq!(fs::read(path).unwrap(), gz);
    }

    #[test]
    fn not_found_is_a_clear_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let base = serve_once(Reply::NotFound);
        let file = RemoteFile::mirrored("f.bin", &[&base], "00", Digested::File);
        let msg = fetch(&file, dir.path()).unwrap_err().to_string();
        assert!(msg.contains("404") && msg.contains("f.bin"), "{msg}");
        assert!(leftover_files(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_download_leaves_no_folder_it_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data").join("mnist");
        let base = serve_once(Reply::NotFound);
        let file = RemoteFile::mirrored("f.bin", &[&base], "00", Digested::File);
        assert!(fetch(&file, &target).is_err());
        assert!(
            !dir.path().join("data").exists(),
            "an empty data/ or data/mnist/ was left"
        );
    }

    #[test]
    fn wrong_checksum_deletes_the_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = serve_once(Reply::Ok(b"tampered".to_vec()));
        let file = RemoteFile::mirrored("f.bin", &[&base], &md5_hex(b"original"), Digested::File);
        let err = fetch(&file, dir.path()).unwrap_err();
        assert!(matches!(err, DatasetError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("checksum mismatch"));
        assert!(leftover_files(dir.path()).is_empty());
    }

    #[test]
    fn truncated_response_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let payload = vec![7u8; 100_000];
        let base = serve_once(Reply::Truncated(payload.clone(), 30_000));
        let file = RemoteFile::mirrored("f.bin", &[&base], &md5_hex(&payload), Digested::File);
        let msg = fetch(&file, dir.path()).unwrap_err().to_string();
        assert!(msg.contains("f.bin"), "{msg}");
        assert!(leftover_files(dir.path()).is_empty());
    }

    #[test]
    fn falls_back_to_the_next_mirror() {
        let dir = tempfile::tempdir().unwrap();
        let payload = b"mirrored".to_vec();
        let dead = serve_once(Reply::NotFound);
        let good = serve_once(Reply::Ok(payload.clone()));
        let file =
            RemoteFile::mirrored("f.bin", &[&dead, &good], &md5_hex(&payload), Digested::File);
        assert_eq!(
            fs::read(fetch(&file, dir.path()).unwrap()).unwrap(),
            payload
        );
    }
}
