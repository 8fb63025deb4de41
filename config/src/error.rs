//! `ConfigError`, and `Problem`: one validation finding with its TOML path.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong in a config file, located by its TOML path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// A TOML path such as `host[1].upstream` or `tls.default_host` (`host[N]`
    /// counts `[[host]]` tables from 0 in file order).
    pub path: String,
    /// What was found and what is expected.
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a config file could not be turned into a [`crate::Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {io}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        io: std::io::Error,
    },
    /// Not TOML, or not our schema (unknown key, wrong type); `message` is
    /// toml's, with line, column and the offending line.
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// Parsed, but wrong: every problem found, never only the first.
    #[error("{}", lines(path, problems).join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// One message per finding, each prefixed with the file: what `run` and
    /// `check` print as `error: ...` lines.
    pub fn messages(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { path, problems } => lines(path, problems),
            other => vec![other.to_string()],
        }
    }
}

fn lines(path: &std::path::Path, problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| format!("{}: {p}", path.display()))
        .collect()
}
