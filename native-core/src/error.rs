//! The crate's error type: a non-zero status code from [`crate::status`]
//! plus a human-readable message, which the FFI edge turns into a return
//! value and the thread's last error.

use std::fmt;

use crate::status::{
    status_name, PF_ERR_BUFFER_TOO_SMALL, PF_ERR_INTERNAL, PF_ERR_INVALID_ARGUMENT, PF_OK,
};

/// A failed operation: status code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: i32,
    message: String,
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with the given (non-zero) status code.
    pub fn new(status: i32, message: impl Into<String>) -> Self {
        debug_assert_ne!(status, PF_OK, "an error needs a failure status");
        Error {
            status,
            message: message.into(),
        }
    }

    /// `PF_ERR_INVALID_ARGUMENT` with a message.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(PF_ERR_INVALID_ARGUMENT, message)
    }

    /// `PF_ERR_BUFFER_TOO_SMALL` with a message.
    pub fn buffer_too_small(message: impl Into<String>) -> Self {
        Self::new(PF_ERR_BUFFER_TOO_SMALL, message)
    }

    /// `PF_ERR_INTERNAL` with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(PF_ERR_INTERNAL, message)
    }

    /// The status code (always negative).
    pub fn status(&self) -> i32 {
        self.status
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, status_name(self.status))
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_status_and_message() {
        let e = Error::invalid_argument("width 0");
        assert_eq!(e.status(), PF_ERR_INVALID_ARGUMENT);
        assert_eq!(e.message(), "width 0");
        assert_eq!(e.to_string(), "width 0 (PF_ERR_INVALID_ARGUMENT)");
        assert_eq!(
            Error::buffer_too_small("x").status(),
            PF_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(Error::internal("x").status(), PF_ERR_INTERNAL);
    }
}
