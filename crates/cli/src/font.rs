//! The font for chart text (plotters draws none without one): DejaVu Sans, compiled in,
//! so every machine draws the same charts; `DL_PLOT_FONT` picks another TrueType font.

use std::path::Path;
use std::sync::OnceLock;

use plotters::style::FontStyle;

/// Environment variable naming a TrueType font for chart text instead of the bundled
/// DejaVu Sans.
pub const FONT_ENV: &str = "DL_PLOT_FONT";

/// Registers the chart font with plotters once; `Err` says why none could be used.
pub(crate) fn ensure_font() -> std::result::Result<(), String> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let asked = std::env::var_os(FONT_ENV);
        let bytes = font_bytes(asked.as_deref().map(Path::new));
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
            return Ok(());
        }
        eprintln!("warning: {FONT_ENV} is not a TrueType font; using the bundled DejaVu Sans");
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the bundled DejaVu Sans could not be loaded".to_string())
    })
    .clone()
}

/// The bytes of the font at `asked`, or of the bundled DejaVu Sans when none is asked
/// for or it cannot be read (with a warning).
fn font_bytes(asked: Option<&Path>) -> &'static [u8] {
    let Some(path) = asked else {
        return dejavu::sans::regular();
    };
    match std::fs::read(path) {
        // plotters keeps registered fonts for the life of the program.
        Ok(bytes) => Box::leak(bytes.into_boxed_slice()),
        Err(e) => {
            eprintln!(
                "warning: {FONT_ENV}={}: {e}; using the bundled DejaVu Sans",
                path.display()
            );
            dejavu::sans::regular()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_font_stands_in_for_a_missing_one() {
        let bundled = dejavu::sans::regular();
        // A TrueType file starts with the version 0x00010000.
        assert_eq!(&bundled[..4], &[0, 1, 0, 0]);
        assert_eq!(font_bytes(None), bundled);
        assert_eq!(font_bytes(Some(Path::new("/no/such/font.ttf"))), bundled);
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.ttf");
        std::fs::write(&other, b"not bundled").unwrap();
        assert_eq!(font_bytes(Some(&other)), b"not bundled");
    }
}
