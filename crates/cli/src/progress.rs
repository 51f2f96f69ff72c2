//! The one progress-bar style of every long loop (training epochs, DCGAN epochs), drawn on
//! a terminal only: logs and pipes get the one-line-per-epoch summaries instead.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over the `steps` of epoch `epoch` of `epochs`, or a hidden one when `shown` is
/// false or standard error is not a terminal.
pub fn epoch_bar(shown: bool, steps: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !shown || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("the template is a constant and valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}
