//! Keras's `History`: one row of metrics per epoch, saved as CSV and drawn as the course's
//! matplotlib figures. One type serves `fit` ([`EpochRecord`]: `history.csv`, `loss.png`,
//! `acc.png`) and the DCGAN (`gan::GanEpoch`: `losses.csv`, `loss.png`); a [`Record`]
//! says what one row holds.

use std::path::Path;

use anyhow::{Context, Result, bail};
use cli::{Curve, LineChart, write_line_chart};
use dataset::output::write_atomic;

/// One epoch's row of a [`History`].
pub trait Record: Sized {
    /// The CSV file's name in the run folder.
    const FILE: &'static str;
    /// The CSV header: `epoch` first, then the row's numbers.
    const HEADER: &'static str;
    /// 1-based, counting epochs of earlier runs this one resumed.
    fn epoch(&self) -> usize;
    /// The row's CSV line (no newline).
    fn to_row(&self) -> String;
    /// A row from its CSV fields (as many as the header has); `Err` names the field.
    fn from_fields(fields: &[&str]) -> std::result::Result<Self, String>;
    /// The figures drawn from a history: file name and chart.
    fn charts(history: &History<Self>) -> Vec<(&'static str, LineChart)>;
}

/// The epochs so far, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History<R = EpochRecord> {
    pub epochs: Vec<R>,
}

impl<R> Default for History<R> {
    fn default() -> Self {
        Self { epochs: Vec::new() }
    }
}

impl<R: Record> History<R> {
    pub fn to_csv(&self) -> String {
        let mut out = format!("{}\n", R::HEADER);
        for r in &self.epochs {
            out += &r.to_row();
            out.push('\n');
        }
        out
    }

    pub fn parse_csv(text: &str, origin: &str) -> Result<Self> {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(R::HEADER) {
            bail!(
                "{origin}: not a history file (expected the header {})",
                R::HEADER
            );
        }
        let columns = R::HEADER.split(',').count();
        let mut epochs = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let row = || format!("{origin}: line {}", i + 2);
            if fields.len() != columns {
                bail!(
                    "{}: expected {columns} fields, found {}",
                    row(),
                    fields.len()
                );
            }
            epochs.push(R::from_fields(&fields).map_err(|e| anyhow::anyhow!("{}: {e}", row()))?);
        }
        Ok(Self { epochs })
    }

    /// The history saved at `path`, or an empty one when there is none.
    pub fn load_or_empty(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_csv(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
        }
    }

    /// Writes the CSV and the figures into `dir`. A chart that cannot be drawn (no font
    /// on the machine) is a warning: the CSV holds the same numbers.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(R::FILE), self.to_csv().as_bytes())?;
        for (file, chart) in R::charts(self) {
            if let Err(e) = write_line_chart(&dir.join(file), &chart) {
                eprintln!("warning: {e}");
            }
        }
        Ok(())
    }

    /// One curve of the figures: `value` per epoch.
    pub fn curve(&self, label: &str, value: impl Fn(&R) -> f64) -> Curve {
        Curve {
            label: label.to_string(),
            points: self
                .epochs
                .iter()
                .map(|r| (r.epoch() as f64, value(r)))
                .collect(),
        }
    }
}

/// Parses CSV field `k` (0-based) as a number.
pub fn number<T: std::str::FromStr>(fields: &[&str], k: usize) -> std::result::Result<T, String> {
    fields
        .get(k)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("field {} is not a number", k + 1))
}

/// One epoch's metrics of `fit`; accuracies are fractions, as Keras reports them.
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

impl Record for EpochRecord {
    const FILE: &'static str = "history.csv";
    const HEADER: &'static str = "epoch,loss,acc,val_loss,val_acc,seconds";

    fn epoch(&self) -> usize {
        self.epoch
    }

    fn to_row(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.2}",
            self.epoch, self.loss, self.acc, self.val_loss, self.val_acc, self.seconds
        )
    }

    fn from_fields(f: &[&str]) -> std::result::Result<Self, String> {
        Ok(Self {
            epoch: number(f, 0)?,
            loss: number(f, 1)?,
            acc: number(f, 2)?,
            val_loss: number(f, 3)?,
            val_acc: number(f, 4)?,
            seconds: number(f, 5)?,
        })
    }

    /// The course's figures: `plt.plot(history['loss']); plt.plot(history['val_loss'])`,
    /// and the same for accuracy.
    fn charts(history: &History<Self>) -> Vec<(&'static str, LineChart)> {
        let chart = |title: &str, y_label: &str, train: fn(&Self) -> f64, val: fn(&Self) -> f64| {
            LineChart {
                title: title.into(),
                x_label: "epoch".into(),
                y_label: y_label.into(),
                curves: vec![
                    history.curve("train", train),
                    history.curve("validation", val),
                ],
            }
        };
        vec![
            (
                "loss.png",
                chart("model loss", "loss", |r| r.loss, |r| r.val_loss),
            ),
            (
                "acc.png",
                chart("model accuracy", "accuracy", |r| r.acc, |r| r.val_acc),
            ),
        ]
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
        let history: History = History {
            epochs: vec![record(1), record(2)],
        };
        let text = history.to_csv();
        assert!(text.starts_with("epoch,loss,acc,val_loss,val_acc"));
        assert_eq!(
            History::<EpochRecord>::parse_csv(&text, "h").unwrap(),
            history
        );
    }

    #[test]
    fn bad_csv_names_the_file_and_line() {
        let err = History::<EpochRecord>::parse_csv(
            &format!("{}\n1,0.5,x,0.1,0.2,3\n", EpochRecord::HEADER),
            "h.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("h.csv: line 2"), "{err}");
        assert!(History::<EpochRecord>::parse_csv("a,b\n", "h.csv").is_err());
    }

    #[test]
    fn save_writes_csv_and_figures() {
        let dir = tempfile::tempdir().unwrap();
        let history = History {
            epochs: vec![record(1), record(2), record(3)],
        };
        history.save(dir.path()).unwrap();
        let back = History::<EpochRecord>::load_or_empty(&dir.path().join("history.csv")).unwrap();
        assert_eq!(back.epochs.len(), 3);
        assert!(
            History::<EpochRecord>::load_or_empty(&dir.path().join("none.csv"))
                .unwrap()
                .epochs
                .is_empty()
        );
        let drawn = dir.path().join("loss.png").exists() && dir.path().join("acc.png").exists();
        assert!(
            drawn,
            "loss.png and acc.png are always drawn (bundled font)"
        );
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
