//! How much memory the machine can still give, so that a run can refuse, with the numbers,
//! what would not fit instead of being killed (or aborting) halfway.

/// Bytes the kernel reports as available for new allocations (Linux's `MemAvailable`), or
/// `None` where that is not known.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `Err` with a message naming `what` when `bytes` exceed the memory available (no check
/// where that is unknown).
pub fn check_fits(bytes: u128, what: &str) -> Result<(), String> {
    match available() {
        Some(free) if bytes > u128::from(free) => Err(format!(
            "{what} needs about {}, more than the {} of memory available",
            human(bytes),
            human(u128::from(free))
        )),
        _ => Ok(()),
    }
}

/// 1536 → "1.5 KiB", 3 << 40 → "3.0 TiB".
pub fn human(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 40), "3.0 TiB");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn more_than_the_machine_has_is_refused_and_a_little_is_not() {
        assert!(available().is_some(), "Linux reports MemAvailable");
        let err = check_fits(1 << 70, "the model").unwrap_err();
        assert!(err.contains("the model needs about 1024.0 EiB"), "{err}");
        assert!(check_fits(1 << 20, "a batch").is_ok());
    }
}
