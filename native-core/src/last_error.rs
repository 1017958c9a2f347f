//! The per-thread "last error" message behind `pf_last_error`.
//!
//! Every failing export stores its message here for the calling thread; a
//! successful call leaves it untouched (like `errno`), so callers read it only
//! right after a failure.

use std::cell::RefCell;

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces this thread's last error message.
pub fn set(message: impl Into<String>) {
    let message = message.into();
    // try_with: a store during thread teardown is silently dropped.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(message));
}

/// This thread's last error message, if any.
pub fn get() -> Option<String> {
    LAST_ERROR
        .try_with(|slot| slot.borrow().clone())
        .ok()
        .flatten()
}

/// Forgets this thread's last error message.
pub fn clear() {
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = None);
}

/// The longest prefix of `s` that fits in `cap` bytes without splitting a
/// UTF-8 character.
pub fn truncate_at_char_boundary(s: &str, cap: usize) -> &str {
    if s.len() <= cap {
        return s;
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Copies this thread's last error into `buf` (UTF-8, no NUL, truncated at a
/// character boundary) and returns the full message length in bytes (0 when
/// there is none), so a caller can size its buffer with an empty `buf`.
pub fn copy_to(buf: &mut [u8]) -> usize {
    LAST_ERROR
        .try_with(|slot| match slot.borrow().as_deref() {
            Some(message) => {
                let part = truncate_at_char_boundary(message, buf.len());
                buf[..part.len()].copy_from_slice(part.as_bytes());
                message.len()
            }
            None => 0,
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear_roundtrip() {
        clear();
        assert_eq!(get(), None);
        set("boom");
        assert_eq!(get().as_deref(), Some("boom"));
        clear();
        assert_eq!(copy_to(&mut [0u8; 8]), 0);
    }

    #[test]
    fn last_error_is_per_thread() {
        set("main thread error");
        let other = std::thread::spawn(|| {
            let before = get();
            set("other thread error");
            (before, get())
        })
        .join()
        .unwrap();
        assert_eq!(other, (None, Some("other thread error".to_string())));
        assert_eq!(get().as_deref(), Some("main thread error"));
    }

    #[test]
    fn copy_truncates_at_char_boundary_and_reports_full_length() {
        // "h€llo": '€' is 3 bytes (positions 1..4).
        set("h€llo");
        let full = "h€llo".len();
        assert_eq!(full, 7);
        assert_eq!(copy_to(&mut []), full);

        let mut buf = [0u8; 3];
        assert_eq!(copy_to(&mut buf), full);
        assert_eq!(&buf[..1], b"h", "cap 3 must not cut into the euro sign");
        assert_eq!(
            buf[1..],
            [0, 0],
            "bytes past the copied prefix are untouched"
        );

        let mut buf = [0u8; 4];
        assert_eq!(copy_to(&mut buf), full);
        assert_eq!(std::str::from_utf8(&buf).unwrap(), "h€");

        let mut buf = [0u8; 16];
        assert_eq!(copy_to(&mut buf), full);
        assert_eq!(&buf[..full], "h€llo".as_bytes());
    }

    #[test]
    fn truncation_never_splits_a_char() {
        let s = "aé€😀z";
        for cap in 0..=s.len() + 1 {
            let part = truncate_at_char_boundary(s, cap);
            assert!(part.len() <= cap);
            assert!(s.starts_with(part));
            // Maximal: the next char would not have fit.
            if part.len() < s.len() {
                let next = s[part.len()..].chars().next().unwrap();
                assert!(part.len() + next.len_utf8() > cap);
            }
        }
    }
}
