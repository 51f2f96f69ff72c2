//! Opening one image file without trusting it: the `image` crate decodes under limits on
//! size and memory (a 400 KB PNG can declare 20000×20000 pixels), and a JPEG must end in
//! its end-of-image marker and decode without error. `image`'s JPEG decoder (zune-jpeg,
//! lenient) fills a truncated file's missing rows and a corrupt scan's blocks with grey
//! and says nothing; PIL refuses the first and only warns on the second. Here both are
//! errors, so that `--skip-invalid` can drop them and training never sees made-up pixels.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use zune_jpeg::JpegDecoder;
use zune_jpeg::errors::DecodeErrors;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

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
    header(path).map(|(w, h, _)| (w, h))
}

/// [`dimensions`] and the format, from one read of the header.
fn header(path: &Path) -> Result<(u32, u32, Option<ImageFormat>)> {
    let reader = reader(path)?;
    let format = reader.format();
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| bad(path, e.to_string()))?;
    check_size(path, w, h)?;
    check_density(path, format, w, h)?;
    if format == Some(ImageFormat::Jpeg) {
        check_jpeg_end(path)?;
    }
    Ok((w, h, format))
}

/// The most pixels one byte of the format can hold: a JPEG block takes at least one bit
/// of each scan (64 pixels a bit); PNG's deflate expands at most 1032:1, a 1-bit image
/// holding 8 pixels a byte; a BMP's run-length codes give 255 pixels per 2 bytes; GIF's
/// LZW at its limit and anything else get 4,096 (a WebP of one flat colour can beat it,
/// and is refused: no photo is one).
fn max_pixels_per_byte(format: Option<ImageFormat>) -> u64 {
    match format {
        Some(ImageFormat::Jpeg) => 512,
        Some(ImageFormat::Png) => 8 * 1032,
        Some(ImageFormat::Bmp) => 128,
        _ => 4096,
    }
}

/// A file cannot hold more pixels than its format packs into its bytes: a small file
/// declaring a large image is refused before any decoder allocates for it.
fn check_density(path: &Path, format: Option<ImageFormat>, w: u32, h: u32) -> Result<()> {
    let len = std::fs::metadata(path).map_err(io_err(path))?.len();
    let most = max_pixels_per_byte(format).saturating_mul(len);
    if u64::from(w) * u64::from(h) > most {
        return Err(bad(
            path,
            format!(
                "the file's {len} bytes cannot hold the {w}x{h} image its header declares \
                 (at most {most} pixels); it is truncated or corrupt"
            ),
        ));
    }
    Ok(())
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

/// Whether [`open_with`] walks a JPEG's compressed data first ([`crate::jpeg_scan`]):
/// yes for a file seen once; an image folder's files, walked once up front by
/// [`check`], skip it on every later decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanCheck {
    Walk,
    AlreadyDone,
}

/// Everything short of decoding the pixels: the header and its size limit, and for a
/// JPEG its end marker and its compressed data ([`crate::jpeg_scan`], half a decode's
/// cost). Returns the width and height.
pub fn check(path: &Path) -> Result<(u32, u32)> {
    let (w, h, format) = header(path)?;
    match format {
        Some(ImageFormat::Jpeg) => {
            let bytes = std::fs::read(path).map_err(io_err(path))?;
            walk_jpeg(path, &bytes)?;
        }
        Some(ImageFormat::Png) => {
            let bytes = std::fs::read(path).map_err(io_err(path))?;
            check_png_chunks(&bytes).map_err(|reason| bad(path, format!("the PNG is {reason}")))?;
        }
        _ => {}
    }
    Ok((w, h))
}

/// A PNG's chunks each carry a CRC-32 of their bytes, so damage anywhere, and a file cut
/// short (no IEND chunk), shows without inflating anything.
fn check_png_chunks(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut pos = 8; // the signature, already recognised
    loop {
        let header = bytes
            .get(pos..pos + 8)
            .ok_or("truncated (no IEND chunk at its end)")?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let body = bytes.get(pos + 4..pos + 8 + len).ok_or_else(|| {
            format!(
                "truncated inside its {} chunk",
                String::from_utf8_lossy(kind)
            )
        })?;
        let stored = bytes
            .get(pos + 8 + len..pos + 12 + len)
            .ok_or("truncated (no IEND chunk at its end)")?;
        if crc32fast::hash(body).to_be_bytes() != stored {
            return Err(format!(
                "corrupt: the checksum of its {} chunk at byte {pos} does not match",
                String::from_utf8_lossy(kind)
            ));
        }
        if kind == b"IEND" {
            return Ok(());
        }
        pos += 12 + len;
    }
}

fn walk_jpeg(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::jpeg_scan::check(bytes)
        .map_err(|reason| bad(path, format!("the JPEG is corrupt: {reason}")))
}

/// Decodes the file after every check of [`check`].
pub fn open(path: &Path) -> Result<DynamicImage> {
    open_with(path, ScanCheck::Walk)
}

/// Decodes the file: its header is checked first ([`dimensions`]), then it is decoded
/// under the limits above (a JPEG strictly, [`decode_jpeg`], after the walk of its
/// compressed data unless `scan` says that was done).
pub fn open_with(path: &Path, scan: ScanCheck) -> Result<DynamicImage> {
    let (w, h, format) = header(path)?;
    if format == Some(ImageFormat::Jpeg) {
        // At most 4 bytes a pixel (CMYK) while decoding.
        if u64::from(w) * u64::from(h) * 4 > MAX_DECODE_BYTES {
            return Err(bad(
                path,
                format!(
                    "the image is {w}x{h}: decoding it would take over {} MiB",
                    MAX_DECODE_BYTES >> 20
                ),
            ));
        }
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        if scan == ScanCheck::Walk {
            walk_jpeg(path, &bytes)?;
        }
        return decode_jpeg(&bytes).map_err(|reason| bad(path, reason));
    }
    let mut reader = reader(path)?;
    reader.limits(limits());
    reader.decode().map_err(|e| bad(path, e.to_string()))
}

/// The one complaint of zune-jpeg's strict mode that libjpeg (so PIL) only warns about and
/// that leaves the pixels intact: padding between two header segments, which some
/// cameras and editors write.
const PADDING_BETWEEN_HEADERS: &str = "[strict-mode]: Extra bytes between headers";

/// Decodes a JPEG as `image` does (same decoder, same output colour spaces) but in strict
/// mode, so bad Huffman codes, markers inside the scan and a premature end are errors.
fn decode_jpeg(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    match decode_jpeg_with(bytes, true) {
        Err(DecodeErrors::FormatStatic(PADDING_BETWEEN_HEADERS)) => decode_jpeg_with(bytes, false),
        other => other,
    }
    .map_err(|e| format!("the JPEG is corrupt: {}", e.to_string().trim_matches('"')))
}

fn decode_jpeg_with(bytes: &[u8], strict: bool) -> std::result::Result<DynamicImage, DecodeErrors> {
    let options = DecoderOptions::default()
        .set_strict_mode(strict)
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers()?;
    let (width, height) = decoder.dimensions().ok_or(DecodeErrors::FormatStatic(
        "no image size after the headers",
    ))?;
    let input = decoder
        .input_colorspace()
        .ok_or(DecodeErrors::FormatStatic(
            "no colour space after the headers",
        ))?;
    // `image`'s choice: grey and RGB(A) stay, anything else (YCbCr, CMYK, YCCK) becomes RGB.
    let output = match input {
        ColorSpace::Luma | ColorSpace::LumaA | ColorSpace::RGB | ColorSpace::RGBA => input,
        _ => ColorSpace::RGB,
    };
    decoder.set_options(options.jpeg_set_out_colorspace(output));
    let pixels = decoder.decode()?;
    let (w, h) = (width as u32, height as u32);
    let wrong_size = || DecodeErrors::FormatStatic("decoded data does not match the image size");
    Ok(match output {
        ColorSpace::Luma => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(w, h, pixels).ok_or_else(wrong_size)?,
        ),
        ColorSpace::LumaA => DynamicImage::ImageLumaA8(
            image::GrayAlphaImage::from_raw(w, h, pixels).ok_or_else(wrong_size)?,
        ),
        ColorSpace::RGBA => DynamicImage::ImageRgba8(
            image::RgbaImage::from_raw(w, h, pixels).ok_or_else(wrong_size)?,
        ),
        _ => {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels).ok_or_else(wrong_size)?)
        }
    })
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

    /// Where the entropy-coded data of a baseline JPEG starts: after the SOS segment.
    fn scan_start(bytes: &[u8]) -> usize {
        let sos = bytes.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        let len = usize::from(u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]));
        sos + 2 + len
    }

    fn photo_like_jpeg(grey: bool) -> Vec<u8> {
        let rgb = image::RgbImage::from_fn(160, 120, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 3 + x) as u8,
                ((x * y) % 251) as u8,
            ])
        });
        let img = if grey {
            DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb).to_luma8())
        } else {
            DynamicImage::ImageRgb8(rgb)
        };
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, ImageFormat::Jpeg).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_valid_jpeg_decodes_to_the_same_pixels_as_the_image_crate() {
        for grey in [false, true] {
            let bytes = photo_like_jpeg(grey);
            let ours = decode_jpeg(&bytes).unwrap();
            let theirs = image::load_from_memory(&bytes).unwrap();
            assert_eq!(ours.color(), theirs.color());
            assert_eq!(ours.as_bytes(), theirs.as_bytes(), "grey: {grey}");
        }
    }

    #[test]
    fn random_scan_data_is_refused_where_the_image_crate_decodes_grey_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = photo_like_jpeg(false);
        let start = scan_start(&bytes);
        let end = bytes.len() - 2; // keep the end-of-image marker
        let mut state = 0x2545_f491_u32;
        for b in &mut bytes[start + 40..end - 40] {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *b = state as u8;
        }
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "the lenient decoder accepts it"
        );
        let path = dir.path().join("noise.jpg");
        std::fs::write(&path, &bytes).unwrap();
        assert!(dimensions(&path).is_ok(), "the header is intact");
        let msg = open(&path).map(|_| ()).unwrap_err().to_string();
        assert!(
            msg.contains("noise.jpg") && msg.contains("corrupt"),
            "{msg}"
        );
    }

    #[test]
    fn padding_between_header_segments_is_accepted_as_libjpeg_does() {
        let bytes = photo_like_jpeg(false);
        // Eight zero bytes before the first segment after APP0 (FF E0 at byte 2).
        let app0_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
        let at = 4 + app0_len;
        assert_eq!(bytes[at], 0xff);
        let mut padded = bytes[..at].to_vec();
        padded.extend_from_slice(&[0; 8]);
        padded.extend_from_slice(&bytes[at..]);
        assert!(
            matches!(
                decode_jpeg_with(&padded, true),
                Err(DecodeErrors::FormatStatic(PADDING_BETWEEN_HEADERS))
            ),
            "strict mode alone refuses it"
        );
        let ours = decode_jpeg(&padded).unwrap();
        assert_eq!(
            ours.as_bytes(),
            image::load_from_memory(&bytes).unwrap().as_bytes()
        );
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
        let claim = |bytes: &mut Vec<u8>, side: u32| {
            bytes[16..20].copy_from_slice(&side.to_be_bytes());
            bytes[20..24].copy_from_slice(&side.to_be_bytes());
            let crc = crc32(&bytes[12..29]);
            bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        };
        // Over the per-side limit, then under it but more than the file's bytes can hold.
        for (side, reason) in [(20_000, "pixel limit"), (10_000, "cannot hold")] {
            claim(&mut bytes, side);
            std::fs::write(&path, &bytes).unwrap();
            for err in [
                dimensions(&path).unwrap_err(),
                open(&path).map(|_| ()).unwrap_err(),
            ] {
                let msg = err.to_string();
                assert!(
                    msg.contains("huge.png") && msg.contains(&format!("{side}x{side}")),
                    "{msg}"
                );
                assert!(msg.contains(reason), "{msg}");
            }
        }
    }

    #[test]
    fn a_damaged_or_cut_png_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let img =
            image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 3]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, ImageFormat::Png).unwrap();
        let bytes = png.into_inner();
        let whole = dir.path().join("whole.png");
        std::fs::write(&whole, &bytes).unwrap();
        assert_eq!(check(&whole).unwrap(), (40, 30));

        let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
        let mut damaged = bytes.clone();
        damaged[idat + 20] ^= 0x55; // inside the compressed pixels
        let cut = bytes[..bytes.len() - 20].to_vec();
        for (name, data, reason) in [
            ("damaged.png", damaged, "checksum of its IDAT chunk"),
            ("cut.png", cut, "truncated"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, data).unwrap();
            assert!(dimensions(&path).is_ok(), "{name}: its header reads");
            let msg = check(&path).unwrap_err().to_string();
            assert!(msg.contains(name) && msg.contains(reason), "{msg}");
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
