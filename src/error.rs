//! Library errors. Config problems carry the key path (and line when known) so `check-config`
//! can report every one of them at once.

use std::fmt;

/// One problem found in a configuration, located by its key path (`consent.max_age_days`,
/// `services[2].hosts[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// All the problems of one configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Why a page could not be rewritten. Every variant ends the response as broken: a consent proxy
/// must not fall back to passing the origin's HTML through unrewritten.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("HTML rewriter failed: {0}")]
    Html(#[from] lol_html::errors::RewritingError),
    #[error("the rewriter was used after it finished or failed")]
    Finished,
    #[error("content decoding failed ({encoding}): {source}")]
    Decode {
        encoding: &'static str,
        source: std::io::Error,
    },
    #[error("content encoding failed ({encoding}): {source}")]
    Encode {
        encoding: &'static str,
        source: std::io::Error,
    },
}

impl RewriteError {
    /// A short label for metrics and logs: why a response was cut (fail closed).
    pub fn reason(&self) -> &'static str {
        match self {
            RewriteError::Html(lol_html::errors::RewritingError::MemoryLimitExceeded(_)) => {
                "rewriter_memory"
            }
            RewriteError::Html(lol_html::errors::RewritingError::ParsingAmbiguity(_)) => {
                "ambiguous_markup"
            }
            RewriteError::Html(_) => "rewriter",
            RewriteError::Decode { source, .. }
                if source.to_string().contains("compression bomb") =>
            {
                "decompression_ratio"
            }
            RewriteError::Decode { .. } => "decode",
            RewriteError::Encode { .. } => "encode",
            RewriteError::Finished => "internal",
        }
    }
}
