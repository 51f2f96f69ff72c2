//! `scratch compare`: several configs' runs side by side, as one CSV (a row per run and
//! epoch) and one chart (test accuracy and training loss per epoch, a curve per run), as
//! the course compares its optimisers.

use std::path::Path;

use cli::{Curve, LineChart};

use crate::train::EpochStats;

/// One config's epochs.
pub struct Run {
    pub name: String,
    pub epochs: Vec<EpochStats>,
}

/// `config,epoch,loss,train_acc,test_acc,seconds`, a row per run and epoch.
pub fn csv(runs: &[Run]) -> String {
    let mut csv = String::from("config,epoch,loss,train_acc,test_acc,seconds\n");
    for run in runs {
        for e in &run.epochs {
            csv += &format!(
                "{},{},{},{},{},{:.3}\n",
                run.name, e.epoch, e.loss, e.train_accuracy, e.test_accuracy, e.seconds
            );
        }
    }
    csv
}

/// Test accuracy and training loss per epoch, a curve per run.
pub fn charts(runs: &[Run]) -> [LineChart; 2] {
    let curves = |value: fn(&EpochStats) -> f32| {
        runs.iter()
            .map(|run| Curve {
                label: run.name.clone(),
                points: run
                    .epochs
                    .iter()
                    .map(|e| (e.epoch as f64, value(e) as f64))
                    .collect(),
            })
            .collect()
    };
    [
        LineChart {
            title: "test accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            curves: curves(|e| e.test_accuracy),
        },
        LineChart {
            title: "training loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy".into(),
            curves: curves(|e| e.loss),
        },
    ]
}

/// Writes `out/compare.csv` and `out/compare.png`; returns what was written, for the
/// user. A chart that cannot be drawn (no font) is a warning: the CSV holds the numbers.
pub fn write(out: &Path, runs: &[Run]) -> anyhow::Result<String> {
    let csv_path = out.join("compare.csv");
    dataset::output::write_atomic(&csv_path, csv(runs).as_bytes())?;
    let png_path = out.join("compare.png");
    Ok(match cli::write_line_charts(&png_path, &charts(runs)) {
        Ok(()) => format!("wrote {} and {}", png_path.display(), csv_path.display()),
        Err(e) => {
            eprintln!("warning: {e}");
            format!("wrote {}", csv_path.display())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, accuracies: &[f32]) -> Run {
        Run {
            name: name.into(),
            epochs: accuracies
                .iter()
                .enumerate()
                .map(|(i, &a)| EpochStats {
                    epoch: i + 1,
                    loss: 1.0 - a,
                    train_accuracy: a,
                    test_accuracy: a,
                    seconds: 0.25,
                })
                .collect(),
        }
    }

    #[test]
    fn one_csv_row_and_one_point_per_run_and_epoch() {
        let runs = [run("sgd", &[0.5, 0.75]), run("adam", &[0.875])];
        assert_eq!(
            csv(&runs),
            "config,epoch,loss,train_acc,test_acc,seconds\n\
             sgd,1,0.5,0.5,0.5,0.250\nsgd,2,0.25,0.75,0.75,0.250\nadam,1,0.125,0.875,0.875,0.250\n"
        );
        let [accuracy, loss] = charts(&runs);
        assert_eq!(accuracy.curves[0].points, vec![(1.0, 0.5), (2.0, 0.75)]);
        assert_eq!(loss.curves[1].label, "adam");
        assert_eq!(loss.curves[1].points, vec![(1.0, 0.125)]);
    }
}
