//! Tables printed to the terminal.

/// A confusion matrix as aligned text: one row per true class, one column per predicted
/// class, `matrix[true][predicted]` counts.
pub fn confusion(classes: &[String], matrix: &[Vec<usize>]) -> String {
    let width = classes
        .iter()
        .map(|c| c.len())
        .chain(matrix.iter().flatten().map(|n| n.to_string().len()))
        .max()
        .unwrap_or(1)
        .max(4);
    let mut out = format!("{:>width$}", "true\\pred");
    for c in classes {
        out += &format!(" {c:>width$}");
    }
    out.push('\n');
    for (c, row) in classes.iter().zip(matrix) {
        out += &format!("{c:>width$}");
        for n in row {
            out += &format!(" {n:>width$}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_the_widest_name_or_count() {
        let classes = ["cat".to_string(), "airplane".to_string()];
        let table = confusion(&classes, &[vec![12, 3], vec![0, 123456789]]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        // Every line has the same length: the columns line up.
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");
        assert!(lines[2].trim_start().starts_with("airplane"));
        assert!(lines[2].ends_with("123456789"));
    }
}
