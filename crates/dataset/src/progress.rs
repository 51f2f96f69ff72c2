//! The project's one progress-bar look, drawn on a terminal only: data-set downloads here,
//! training epochs through `cli::progress`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// `{label}{prefix} [=====>    ] {counter} ({eta})`; `counter` is an indicatif template
/// piece such as `{pos}/{len}` or `{bytes}/{total_bytes}`.
pub fn style(label: &str, counter: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{label}{{prefix}} [{{bar:30}}] {counter} ({{eta}})"
    ))
    .expect("the callers' templates are constants and valid")
    .progress_chars("=> ")
}

/// A bar of `len` steps in `style`, or a hidden one where standard error is not a
/// terminal (logs and pipes get plain lines from the caller instead).
pub fn bar(len: u64, style: ProgressStyle, prefix: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}
