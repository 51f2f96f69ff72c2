//! TOML configs and cards read with errors on one line: `FILE:LINE:COLUMN: invalid WHAT:
//! MESSAGE`, where the toml crate prints a multi-line source excerpt with a caret.

use serde::de::DeserializeOwned;

/// Parses `text` (read from `origin`, a path or a name) as a `what` ("config", "model
/// card", ...).
pub fn parse<T: DeserializeOwned>(text: &str, origin: &str, what: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let place = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        let message = e.message().trim().replace('\n', "; ");
        format!("{origin}{place}: invalid {what}: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        epochs: u32,
    }

    #[test]
    fn errors_are_one_line_naming_the_place() {
        let err = parse::<Config>("epochs = 3\nroot:x:0", "cfg.toml", "config").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.starts_with("cfg.toml:2:"), "{err}");
        let err = parse::<Config>("epochs = \"three\"", "cfg.toml", "config").unwrap_err();
        assert!(err.starts_with("cfg.toml:1:10: invalid config:"), "{err}");
        let err = parse::<Config>("epoch = 3", "cfg.toml", "config").unwrap_err();
        assert!(err.contains("unknown field `epoch`"), "{err}");
        assert_eq!(
            parse::<Config>("epochs = 3", "x", "config").unwrap().epochs,
            3
        );
    }
}
