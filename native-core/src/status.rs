//! Status codes returned (as `i32`, or widened to `isize`) by the `pf_*`
//! exports. Zero is success; every failure is negative, and the failing call
//! leaves a message readable with `pf_last_error` on the same thread.

/// Success.
pub const PF_OK: i32 = 0;
/// An argument was null, out of range or otherwise malformed.
pub const PF_ERR_INVALID_ARGUMENT: i32 = -1;
/// The requested object does not exist.
pub const PF_ERR_NOT_FOUND: i32 = -2;
/// The operation is not supported on this machine or build.
pub const PF_ERR_UNSUPPORTED: i32 = -3;
/// An operating-system or device I/O operation failed.
pub const PF_ERR_IO: i32 = -4;
/// A panic was caught at the FFI boundary.
pub const PF_ERR_PANIC: i32 = -5;
/// The caller's buffer cannot hold the result.
pub const PF_ERR_BUFFER_TOO_SMALL: i32 = -6;
/// An internal invariant failed.
pub const PF_ERR_INTERNAL: i32 = -7;

/// The symbolic name of a status code, for messages and tests.
pub fn status_name(status: i32) -> &'static str {
    match status {
        PF_OK => "PF_OK",
        PF_ERR_INVALID_ARGUMENT => "PF_ERR_INVALID_ARGUMENT",
        PF_ERR_NOT_FOUND => "PF_ERR_NOT_FOUND",
        PF_ERR_UNSUPPORTED => "PF_ERR_UNSUPPORTED",
        PF_ERR_IO => "PF_ERR_IO",
        PF_ERR_PANIC => "PF_ERR_PANIC",
        PF_ERR_BUFFER_TOO_SMALL => "PF_ERR_BUFFER_TOO_SMALL",
        PF_ERR_INTERNAL => "PF_ERR_INTERNAL",
        _ => "PF_ERR_UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_abi_v1_values() {
        let expected = [
            (PF_OK, 0),
            (PF_ERR_INVALID_ARGUMENT, -1),
            (PF_ERR_NOT_FOUND, -2),
            (PF_ERR_UNSUPPORTED, -3),
            (PF_ERR_IO, -4),
            (PF_ERR_PANIC, -5),
            (PF_ERR_BUFFER_TOO_SMALL, -6),
            (PF_ERR_INTERNAL, -7),
        ];
        for (code, value) in expected {
            assert_eq!(code, value, "{}", status_name(code));
        }
    }

    #[test]
    fn names_are_distinct_and_unknown_codes_are_named_unknown() {
        let names: std::collections::HashSet<_> = (-7..=0).map(status_name).collect();
        assert_eq!(names.len(), 8);
        assert!(!names.contains("PF_ERR_UNKNOWN"));
        assert_eq!(status_name(-8), "PF_ERR_UNKNOWN");
        assert_eq!(status_name(1), "PF_ERR_UNKNOWN");
    }
}
