//! Parsing a command line the same way in both programs.

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

/// Parses the process's arguments into `T`, exiting as clap does on `--help` or an error,
/// with two differences:
///
/// - negative numbers are values (`--lr -1` reaches the range check and its message, not
///   clap's "unexpected argument '-1'");
/// - a value that does not parse (`--dataset imagenet`) is reported in one line, like
///   every other bad input: the line already names the flag, the value and what was
///   expected.
pub fn parse<T: CommandFactory + FromArgMatches>() -> T {
    fn allow_negative(cmd: clap::Command) -> clap::Command {
        cmd.allow_negative_numbers(true)
            .mut_subcommands(allow_negative)
    }
    let parsed = allow_negative(T::command())
        .try_get_matches()
        .and_then(|matches| T::from_arg_matches(&matches));
    match parsed {
        Ok(args) => args,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation
            ) =>
        {
            let rendered = e.render().to_string();
            eprintln!(
                "{}",
                rendered.lines().next().unwrap_or("error: invalid value")
            );
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    }
}
