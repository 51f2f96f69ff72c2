//! Opening one image file without trusting it: the `image` crate decodes under limits on
//! size and memory (a 400 KB PNG can declare 20000×20000 pixels), and a JPEG must end in
//! its end-of-image marker (the decoder fills a truncated file's missing rows with grey
//! and says nothing, where PIL, and so Keras, refuses it).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::{DatasetError, Result, io_err};

/// The largest width or height decoded: well above any camera's.
pub const MAX_SIDE: u32 = 16_384;
/// The most memory one decode may take: a 40-megapixel RGBA photo fits.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;
/// How far from its end a JPEG's end-of-image marker is looked for (some cameras append
/// data after it).
const JPEG_TAIL: u64 = 64 << 10;

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

fn bad(path: &Path, reason: String) -> DatasetError {
    DatasetError::BadImage {
        path: path.to_path_buf(),
        reason,
    }
}

fn reader(path: &Path) -> Result<ImageReader<std::io::BufReader<File>>> {
    ImageReader::open(path)
        .map_err(io_err(path))?
        .with_guessed_format()
        .map_err(io_err(path))
}

/// A JPEG without FF D9 (end of image) in its last bytes was cut short. Inside the
/// compressed data FF is always followed by 00 or a restart marker, so FF D9 there can
/// only be the end marker.
fn check_jpeg_end(path: &Path) -> Result<()> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let start = len.saturating_sub(JPEG_TAIL);
    file.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io_err(path))?;
    if tail.windows(2).any(|w| w == [0xff, 0xd9]) {
        Ok(())
    } else {
        Err(bad(
            path,
            "the JPEG is truncated (no end-of-image marker)".into(),
        ))
    }
}

/// Width and height from the file's header (nothing is decoded), with the same checks
/// as [`open`] short of decoding: the size limit, and a JPEG's end marker.
pub fn dimensions(path: &Path) -> Result<(u32, u32)> {
    let reader = reader(path)?;
    let is_jpeg = reader.format() == Some(ImageFormat::Jpeg);
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| bad(path, e.to_string()))?;
    check_size(path, w, h)?;
    if is_jpeg {
        check_jpeg_end(path)?;
    }
    Ok((w, h))
}

fn check_size(path: &Path, w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(bad(path, format!("the image is {w}x{h}: empty")));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(bad(
            path,
            format!("the image is {w}x{h}, over the {MAX_SIDE}-pixel limit per side"),
        ));
    }
    Ok(())
}

/// Decodes the file: its header is checked first ([`dimensions`]), then it is decoded
/// under the limits above.
pub fn open(path: &Path) -> Result<DynamicImage> {
    dimensions(path)?;
    let mut reader = reader(path)?;
    reader.limits(limits());
    reader.decode().map_err(|e| bad(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_bytes() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, ImageFormat::Jpeg).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_whole_jpeg_opens_and_a_truncated_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.jpg");
        let bytes = jpeg_bytes();
        std::fs::write(&whole, &bytes).unwrap();
        assert_eq!(dimensions(&whole).unwrap(), (64, 48));
        assert_eq!(open(&whole).unwrap().width(), 64);

        // Cut inside the compressed rows, past the header: the decoder alone would accept it.
        let half = dir.path().join("half.jpg");
        std::fs::write(&half, &bytes[..bytes.len() * 9 / 10]).unwrap();
        assert!(
            image::open(&half).is_ok(),
            "the image crate decodes it silently"
        );
        for err in [
            dimensions(&half).unwrap_err(),
            open(&half).map(|_| ()).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(
                msg.contains("half.jpg") && msg.contains("truncated"),
                "{msg}"
            );
        }
        // Bytes after the end marker (as some cameras write) are allowed.
        let trailing = dir.path().join("trailing.jpg");
        let mut more = bytes.clone();
        more.extend_from_slice(&[0u8; 1000]);
        std::fs::write(&trailing, more).unwrap();
        assert!(open(&trailing).is_ok());
    }

    #[test]
    fn a_small_file_declaring_a_huge_image_is_refused_without_decoding_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.png");
        // A valid 1×1 PNG whose header is rewritten to claim 20000×20000.
        let mut png = std::io::Cursor::new(Vec::new());
        image::GrayImage::new(1, 1)
            .write_to(&mut png, ImageFormat::Png)
            .unwrap();
        let mut bytes = png.into_inner();
        // IHDR data starts at byte 16: width, height (big-endian); fix the chunk's CRC.
        bytes[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        for err in [
            dimensions(&path).unwrap_err(),
            open(&path).map(|_| ()).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(msg.contains("huge.png") && msg.contains("20000"), "{msg}");
        }
    }

    /// PNG's CRC-32 (ISO 3309), for rewriting a chunk in the test above.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
