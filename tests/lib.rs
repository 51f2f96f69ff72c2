//! Helpers for the end-to-end tests: run the workspace's binaries as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built binary `name` of package `package`, built first when it is missing or older
/// than the workspace's sources (a binary older than the code would test old behaviour).
///
/// Tests run from `target/<profile>/deps/`, so the binaries live one folder up. A plain
/// `cargo test` builds only test targets, so the binaries are built here with the same
/// cargo and target folder: all of the workspace's targets, so that features resolve as
/// for `cargo test --workspace` and CI's build (the binaries alone would leave out the
/// dev-dependencies' features and rebuild the libraries).
pub fn binary(package: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built.is_none_or(|b| newest_source(&workspace) > b) {
        BUILT.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "--workspace", "--all-targets"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the binaries failed");
        });
    }
    assert!(path.is_file(), "{package} did not build {}", path.display());
    path
}

/// The latest change to the workspace's manifests, lock file and crate sources.
fn newest_source(workspace: &Path) -> std::time::SystemTime {
    fn walk(dir: &Path, newest: &mut std::time::SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(t);
            }
        }
    }
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for file in ["Cargo.toml", "Cargo.lock"] {
        if let Ok(t) = std::fs::metadata(workspace.join(file)).and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    }
    walk(&workspace.join("crates"), &mut newest);
    newest
}

/// Runs a binary with `args` and optional standard input; never reads the user's data
/// folder unless the test sets one.
pub fn run(bin: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &Path)]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(bin);
    cmd.args(args).env_remove(dataset::DATA_DIR_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("start binary");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        // A program may stop reading before the end (it reads one bounded line).
        match pipe.write_all(text.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.expect("write stdin"),
        }
    }
    drop(pipe);
    child.wait_with_output().expect("wait for binary")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that a command failed with exactly one line on stderr, starting `error:`, and
/// returns that line.
pub fn one_line_error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "the command succeeded: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error:"), "{err}");
    err
}

/// One HTTP/1.1 request to `addr` (`127.0.0.1:8080`), the connection closed after it: the
/// status code and the body (chunked bodies decoded). Enough for the local servers the
/// tests talk to (`keraslike serve`, chromedriver) without an HTTP client dependency.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    // A server may answer (413) and close before reading a large body.
    let _ = stream.write_all(body);
    // Read the head, then as much body as it announces (a server may keep the connection
    // open whatever the request said).
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 << 10];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf).expect("read the response");
        assert!(n > 0, "the connection closed before a response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked = head.contains("transfer-encoding: chunked");
    let mut body = raw[split + 4..].to_vec();
    let complete = |body: &[u8]| match length {
        Some(n) => body.len() >= n,
        None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
        None => false,
    };
    while !complete(&body) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    if let Some(n) = length {
        body.truncate(n);
    }
    if chunked {
        let (mut decoded, mut rest) = (Vec::new(), &body[..]);
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..end]).trim(), 16)
                .expect("a chunk size");
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 2 + size + 2..];
        }
        body = decoded;
    }
    (status, body)
}

/// A program started in the background, stopped when dropped.
pub struct Background(pub std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
