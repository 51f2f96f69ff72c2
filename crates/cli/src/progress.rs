//! The progress bar of every long loop (training epochs, DCGAN epochs, predictions), in the project's
//! one style ([`dataset::progress`]), drawn on a terminal only: logs and pipes get the
//! one-line-per-epoch summaries instead.

use indicatif::ProgressBar;

/// A bar over the `steps` of epoch `epoch` of `epochs`, or a hidden one when `shown` is
/// false or standard error is not a terminal.
pub fn epoch_bar(shown: bool, steps: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let style = dataset::progress::style("epoch ", "{pos}/{len} {msg}");
    dataset::progress::bar(steps, style, format!("{epoch}/{epochs}"))
}

/// A bar over `items` images being `doing` ("predict"), hidden when standard error is
/// not a terminal.
pub fn items_bar(items: u64, doing: &str) -> ProgressBar {
    let style = dataset::progress::style(&format!("{doing} "), "{pos}/{len} images");
    dataset::progress::bar(items, style, String::new())
}
