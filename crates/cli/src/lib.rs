//! What the two command-line programs (scratch and keraslike) share, so that their output
//! looks the same whichever trained the model:
//!
//! - [`args`]: the command line, parsed alike in both.
//! - [`chart`]: line charts of training curves as PNG, like the course's matplotlib figures.
//! - [`picture`]: weights and activations as pictures (tiles, grids, heat maps).
//! - [`progress`]: the one progress-bar style of every long loop.
//! - [`table`]: tables printed to the terminal (the confusion matrix).
//! - [`interrupt`]: Ctrl-C, one mechanism for every command.
//!
//! The data loader crate (`dataset`) knows nothing of these: it loads and never draws.

pub mod args;
pub mod chart;
mod font;
pub mod interrupt;
pub mod picture;
pub mod progress;
pub mod table;

pub use chart::{
    Curve, LineChart, PlotError, Tile, write_captioned_grid, write_line_chart, write_line_charts,
    write_png,
};
pub use font::FONT_ENV;
