//! Keras's `History`: one row of metrics per epoch, saved as `history.csv` and drawn as the
//! course's two matplotlib figures (`loss.png`, `acc.png`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use dataset::output::{Curve, LineChart, write_atomic, write_line_chart};

/// One epoch's metrics; accuracies are fractions, as Keras reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// 1-based, counting epochs of earlier runs this one resumed.
    pub epoch: usize,
    pub loss: f64,
    pub acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    /// Wall-clock time of the epoch (training and validation).
    pub seconds: f64,
}

impl EpochRecord {
    /// The line printed per epoch, in Keras's words.
    pub fn line(&self, epochs: usize) -> String {
        format!(
            "Epoch {}/{epochs} - {:.1}s - loss: {:.4} - acc: {:.4} - val_loss: {:.4} - val_acc: {:.4}",
            self.epoch, self.seconds, self.loss, self.acc, self.val_loss, self.val_acc
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
}

const HEADER: &str = "epoch,loss,acc,val_loss,val_acc,seconds";

impl History {
    pub fn to_csv(&self) -> String {
        let mut out = format!("{HEADER}\n");
        for r in &self.epochs {
            out += &format!(
                "{},{:.6},{:.6},{:.6},{:.6},{:.2}\n",
                r.epoch, r.loss, r.acc, r.val_loss, r.val_acc, r.seconds
            );
        }
        out
    }

    pub fn parse_csv(text: &str, origin: &str) -> Result<Self> {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(HEADER) {
            bail!("{origin}: not a history file (expected the header {HEADER})");
        }
        let mut epochs = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(',').collect();
            let row = || format!("{origin}: line {}", i + 2);
            if fields.len() != 6 {
                bail!("{}: expected 6 fields, found {}", row(), fields.len());
            }
            let num = |k: usize| -> Result<f64> {
                fields[k]
                    .trim()
                    .parse()
                    .with_context(|| format!("{}: field {} is not a number", row(), k + 1))
            };
            epochs.push(EpochRecord {
                epoch: fields[0].trim().parse().with_context(row)?,
                loss: num(1)?,
                acc: num(2)?,
                val_loss: num(3)?,
                val_acc: num(4)?,
                seconds: num(5)?,
            });
        }
        Ok(Self { epochs })
    }

    /// The history saved in `dir`, or an empty one when there is none.
    pub fn load_or_empty(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_csv(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
        }
    }

    /// Writes `history.csv`, `loss.png` and `acc.png` into `dir`. A chart that cannot be
    /// drawn (no font on the machine) is a warning: the CSV holds the same numbers.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let csv = dir.join("history.csv");
        write_atomic(&csv, self.to_csv().as_bytes())?;
        for (file, chart) in [
            ("loss.png", self.loss_chart()),
            ("acc.png", self.acc_chart()),
        ] {
            if let Err(e) = write_line_chart(&dir.join(file), &chart) {
                eprintln!("warning: {e}");
            }
        }
        Ok(())
    }

    fn series(&self, label: &str, f: impl Fn(&EpochRecord) -> f64) -> Curve {
        Curve {
            label: label.to_string(),
            points: self.epochs.iter().map(|r| (r.epoch as f64, f(r))).collect(),
        }
    }

    /// The course's figure: `plt.plot(history['loss']); plt.plot(history['val_loss'])`.
    pub fn loss_chart(&self) -> LineChart {
        LineChart {
            title: "model loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            curves: vec![
                self.series("train", |r| r.loss),
                self.series("validation", |r| r.val_loss),
            ],
        }
    }

    pub fn acc_chart(&self) -> LineChart {
        LineChart {
            title: "model accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            curves: vec![
                self.series("train", |r| r.acc),
                self.series("validation", |r| r.val_acc),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize) -> EpochRecord {
        EpochRecord {
            epoch,
            loss: 0.5 / epoch as f64,
            acc: 0.9,
            val_loss: 0.25,
            val_acc: 0.95,
            seconds: 12.5,
        }
    }

    #[test]
    fn csv_round_trips() {
        let history = History {
            epochs: vec![record(1), record(2)],
        };
        let text = history.to_csv();
        assert!(text.starts_with("epoch,loss,acc,val_loss,val_acc"));
        assert_eq!(History::parse_csv(&text, "h").unwrap(), history);
    }

    #[test]
    fn bad_csv_names_the_file_and_line() {
        let err = History::parse_csv(&format!("{HEADER}\n1,0.5,x,0.1,0.2,3\n"), "h.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("h.csv: line 2"), "{err}");
        assert!(History::parse_csv("a,b\n", "h.csv").is_err());
    }

    #[test]
    fn save_writes_csv_and_figures() {
        let dir = tempfile::tempdir().unwrap();
        let history = History {
            epochs: vec![record(1), record(2), record(3)],
        };
        history.save(dir.path()).unwrap();
        let back = History::load_or_empty(&dir.path().join("history.csv")).unwrap();
        assert_eq!(back.epochs.len(), 3);
        assert!(
            History::load_or_empty(&dir.path().join("none.csv"))
                .unwrap()
                .epochs
                .is_empty()
        );
        let drawn = dir.path().join("loss.png").exists() && dir.path().join("acc.png").exists();
        assert_eq!(drawn, dataset::output::font_available());
    }

    #[test]
    fn epoch_line_reads_like_keras() {
        let line = record(2).line(10);
        assert_eq!(
            line,
            "Epoch 2/10 - 12.5s - loss: 0.2500 - acc: 0.9000 - val_loss: 0.2500 - val_acc: 0.9500"
        );
    }
}
