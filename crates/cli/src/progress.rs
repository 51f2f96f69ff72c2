//! The progress bar of every long loop (training epochs, DCGAN epochs), in the project's
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
