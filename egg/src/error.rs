//! The crate's one error type.

/// Why an egg was refused, or why rendering or a config file update failed.
///
/// Every variant that is about a part of the egg names it by its field path
/// (`variables[2].rules`, `config.files."server.properties".parser`), so the
/// message alone tells an admin what to fix. Parsing is all or nothing: an
/// error means no [`Egg`](crate::Egg) was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is larger than [`MAX_EGG_BYTES`](crate::MAX_EGG_BYTES).
    #[error("the egg is larger than the {limit} byte limit")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The bytes are not well-formed JSON or YAML.
    #[error("malformed {syntax}: {message}")]
    Malformed {
        /// `JSON` or `YAML`.
        syntax: &'static str,
        /// The reader's own message, with line and column.
        message: String,
    },
    /// A field is missing, has the wrong type or a value the egg may not have.
    #[error("{path}: {message}")]
    Field {
        /// Where in the egg, e.g. `variables[2].rules`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A config file's current contents could not be read with its parser.
    #[error("config file {file:?} ({parser}): {message}")]
    ConfigFile {
        /// The file's path inside the server directory.
        file: String,
        /// The parser named by the egg.
        parser: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A key of a config file cannot be set: a `json`/`yaml` path through
    /// a value that is not an object or a list, a list index out of range,
    /// an XML name that is not one, a character the format cannot hold.
    #[error("config file {file:?} ({parser}): cannot set {key:?}: {message}")]
    ConfigKey {
        /// The file's path inside the server directory.
        file: String,
        /// The parser.
        parser: &'static str,
        /// The key, as given.
        key: String,
        /// Why not.
        message: String,
    },
    /// A `file` key or value, or an `ini` key, holds a line break (CR or
    /// LF) or NUL: it would write a line the key does not name, so it is
    /// refused rather than rewritten.
    #[error("config file {file:?} ({parser}): {key:?} contains a line break or NUL")]
    ConfigLineBreak {
        /// The file's path inside the server directory.
        file: String,
        /// The parser.
        parser: &'static str,
        /// The key of the offending edit.
        key: String,
    },
    /// Reading the egg failed.
    #[error("reading the egg: {0}")]
    Io(String),
}

impl Error {
    pub(crate) fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Field {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
