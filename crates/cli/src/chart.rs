//! Line charts of training curves (loss and accuracy per epoch, optimisers side by side)
//! and PNG pictures, written atomically so a chart is never half-written.

use std::path::{Path, PathBuf};

use dataset::output::write_atomic;
use plotters::prelude::*;

use crate::font::ensure_font;

/// Why a chart or picture could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: cannot draw the chart: {reason}")]
    Draw { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] dataset::DatasetError),
}

pub type Result<T> = std::result::Result<T, PlotError>;

/// One line of a chart: a label for the legend and (x, y) points.
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart like the course's matplotlib figures: title, labelled axes, a legend.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub curves: Vec<Curve>,
}

const WIDTH: u32 = 800;
const HEIGHT: u32 = 560;

/// Draws `chart` and writes it to `path` as PNG, atomically.
pub fn write_line_chart(path: &Path, chart: &LineChart) -> Result<()> {
    write_line_charts(path, std::slice::from_ref(chart))
}

/// Draws `charts` side by side in one PNG (e.g. accuracy and loss of the same runs).
pub fn write_line_charts(path: &Path, charts: &[LineChart]) -> Result<()> {
    let fail = |reason: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    ensure_font().map_err(fail)?;
    let width = WIDTH * charts.len().max(1) as u32;
    let mut rgb = vec![255u8; (width * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, HEIGHT)).into_drawing_area();
        let panels = root.split_evenly((1, charts.len().max(1)));
        for (panel, chart) in panels.iter().zip(charts) {
            draw(panel, chart).map_err(|e| fail(e.to_string()))?;
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let image = image::RgbImage::from_raw(width, HEIGHT, rgb)
        .ok_or_else(|| fail("buffer size mismatch".into()))?;
    write_png(path, &image)
}

/// Encodes `image` as PNG and writes it atomically (charts, sample grids).
pub fn write_png(path: &Path, image: &image::RgbImage) -> Result<()> {
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| PlotError::Draw {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(write_atomic(path, &png)?)
}

/// The data's range padded by 5% (a flat line still gets a visible band).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3 * hi.abs().max(1.0));
    (lo - pad, hi + pad)
}

fn draw<'a>(
    root: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    chart: &LineChart,
) -> std::result::Result<(), Box<dyn std::error::Error + 'a>> {
    root.fill(&WHITE)?;
    let points = || chart.curves.iter().flat_map(|c| c.points.iter());
    let (x0, x1) = padded_range(points().map(|p| p.0));
    let (y0, y1) = padded_range(points().map(|p| p.1));
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    // Epochs are whole numbers: label only integral ticks.
    let integral = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 {
            format!("{}", x.round())
        } else {
            String::new()
        }
    };
    let span = (x1 - x0).ceil() as usize;
    ctx.configure_mesh()
        .x_labels(span.clamp(2, 12) + 1)
        .x_label_formatter(&integral)
        .light_line_style(WHITE.mix(0.0))
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    // matplotlib's first colours: blue for training, orange for validation.
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    for (i, curve) in chart.curves.iter().enumerate() {
        let color = palette[i % palette.len()];
        let pts: Vec<(f64, f64)> = curve
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        ctx.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(curve.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        ctx.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    // The legend goes where the curves are not at the right-hand end: below rising
    // curves (accuracy), above falling ones (loss).
    let ends: Vec<f64> = chart
        .curves
        .iter()
        .filter_map(|c| c.points.iter().rev().map(|p| p.1).find(|y| y.is_finite()))
        .collect();
    let end = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
    let position = if end > (y0 + y1) / 2.0 {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    };
    ctx.configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captioned_grid_enlarges_pictures_and_writes_captions_beneath() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let tile = |v: u8| Tile {
            image: image::RgbImage::from_pixel(28, 28, image::Rgb([v, v, v])),
            caption: ["7 0.98".into(), "(true 1)".into()],
        };
        write_captioned_grid(&path, &[tile(0), tile(60), tile(120)], 2).unwrap();
        let grid = image::open(&path).unwrap().to_rgb8();
        // Two columns, two rows of 112-pixel pictures with 34 pixels of caption and gaps.
        assert_eq!(grid.dimensions(), (2 * 120 + 8, 2 * 154 + 8));
        // The first picture fills its 112 pixels (28 enlarged 4 times).
        assert_eq!(grid.get_pixel(8 + 111, 8 + 111).0, [0, 0, 0]);
        assert_eq!(grid.get_pixel(8 + 112, 8).0, [255, 255, 255]);
        // Its caption is drawn: dark pixels under the picture.
        let dark = (8..120)
            .flat_map(|x| (8 + 112..8 + 146).map(move |y| (x, y)))
            .filter(|&(x, y)| grid.get_pixel(x, y).0[0] < 128)
            .count();
        assert!(dark > 20, "{dark} dark caption pixels");
    }

    #[test]
    fn line_chart_is_a_png_with_drawn_curves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        let chart = LineChart {
            title: "model loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            curves: vec![
                Curve {
                    label: "train".into(),
                    points: vec![(1.0, 0.9), (2.0, 0.5), (3.0, 0.3)],
                },
                Curve {
                    label: "validation".into(),
                    points: vec![(1.0, 0.8), (2.0, f64::NAN), (3.0, 0.45)],
                },
            ],
        };
        // The bundled font draws on any machine, system fonts or not.
        write_line_chart(&path, &chart).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
        // Both curve colours appear somewhere in the picture.
        let has = |c: [u8; 3]| img.pixels().any(|p| p.0 == c);
        assert!(has([31, 119, 180]) && has([255, 127, 14]));
        // The title is drawn: dark text pixels in the band above the plot.
        let title_ink = img
            .enumerate_pixels()
            .filter(|(_, y, p)| *y < 40 && p.0.iter().all(|&v| v < 100))
            .count();
        assert!(title_ink > 50, "{title_ink} dark pixels in the title band");
    }

    #[test]
    fn side_by_side_charts_share_one_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("compare.png");
        let chart = |title: &str| LineChart {
            title: title.into(),
            x_label: "epoch".into(),
            y_label: title.into(),
            curves: vec![Curve {
                label: "a".into(),
                points: vec![(1.0, 0.5), (2.0, 0.7)],
            }],
        };
        write_line_charts(&path, &[chart("accuracy"), chart("loss")]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2 * WIDTH, HEIGHT));
        // The curve is drawn in both halves.
        let blue_in = |x0: u32, x1: u32| {
            img.enumerate_pixels()
                .any(|(x, _, p)| x >= x0 && x < x1 && p.0 == [31, 119, 180])
        };
        assert!(blue_in(0, WIDTH) && blue_in(WIDTH, 2 * WIDTH));
    }

    #[test]
    fn padded_range_handles_flat_and_empty_data() {
        let (lo, hi) = padded_range([2.0, 2.0].into_iter());
        assert!(lo < 2.0 && hi > 2.0);
        assert_eq!(padded_range(std::iter::empty()), (0.0, 1.0));
    }
}

/// One picture of a [`write_captioned_grid`]: its pixels and up to two caption lines.
#[derive(Debug, Clone)]
pub struct Tile {
    pub image: image::RgbImage,
    pub caption: [String; 2],
}

/// Side of a tile's picture in the grid: every picture is scaled (nearest neighbour) to
/// fit it, so that a 28×28 digit reads at a glance and a photo stays small.
const TILE: u32 = 112;

/// `tiles` in rows of `cols`, each picture scaled to [`TILE`] pixels with its caption
/// beneath, on white, as one PNG written atomically.
pub fn write_captioned_grid(path: &Path, tiles: &[Tile], cols: usize) -> Result<()> {
    let fail = |reason: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    ensure_font().map_err(fail)?;
    let cols = cols.clamp(1, tiles.len().max(1)) as u32;
    let rows = (tiles.len() as u32).div_ceil(cols).max(1);
    let (gap, text_h) = (8u32, 34u32);
    let (cell_w, cell_h) = (TILE + gap, TILE + text_h + gap);
    let (width, height) = (cols * cell_w + gap, rows * cell_h + gap);
    let mut canvas = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (i, tile) in tiles.iter().enumerate() {
        let (x0, y0) = (
            gap + (i as u32 % cols) * cell_w,
            gap + (i as u32 / cols) * cell_h,
        );
        // Fitted into TILE × TILE, keeping its shape, nearest neighbour (crisp pixels).
        let (w, h) = tile.image.dimensions();
        let side = w.max(h).max(1);
        let (tw, th) = ((w * TILE / side).max(1), (h * TILE / side).max(1));
        for y in 0..th {
            for x in 0..tw {
                let pixel = *tile.image.get_pixel(x * w / tw, y * h / th);
                canvas.put_pixel(x0 + x, y0 + y, pixel);
            }
        }
    }
    let mut rgb = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let style = ("sans-serif", 13).into_font().color(&BLACK);
        for (i, tile) in tiles.iter().enumerate() {
            let (x0, y0) = (
                gap + (i as u32 % cols) * cell_w,
                gap + (i as u32 / cols) * cell_h,
            );
            for (line, text) in tile.caption.iter().enumerate() {
                let at = (x0 as i32, (y0 + TILE + 2 + 15 * line as u32) as i32);
                root.draw_text(text, &style, at)
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let image = image::RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| fail("buffer size mismatch".into()))?;
    write_png(path, &image)
}
