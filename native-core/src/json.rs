//! Minimal JSON writing: string escaping per RFC 8259, shared by the log
//! queue and the encoder probe report (the crate has no serde dependency).

use std::fmt::Write as _;

/// Appends `s` to `out` as a quoted JSON string. Quotes, backslashes and all
/// control characters (U+0000..U+001F) are escaped; everything else is
/// copied as UTF-8.
pub fn write_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a quoted JSON string.
pub fn string(s: &str) -> String {
    let mut out = String::new();
    write_string(&mut out, s);
    out
}

/// Appends `Some(s)` as a JSON string and `None` as `null`.
pub fn write_opt_string(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => write_string(out, s),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_quotes_backslashes_and_control_chars() {
        assert_eq!(string(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(string(r"C:\dir"), r#""C:\\dir""#);
        assert_eq!(string("a\nb\rc\td"), r#""a\nb\rc\td""#);
        assert_eq!(
            string("\u{0}\u{1}\u{1f}\u{8}\u{c}"),
            r#""\u0000\u0001\u001f\b\f""#
        );
        assert_eq!(string("ünï€😀"), "\"ünï€😀\"");
        assert_eq!(string(""), "\"\"");
    }

    #[test]
    fn escaped_output_has_no_raw_control_chars() {
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        let out = string(&all_controls);
        assert!(out.chars().all(|c| (c as u32) >= 0x20), "{out:?}");
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, all_controls);
    }

    #[test]
    fn optional_strings() {
        let mut out = String::new();
        write_opt_string(&mut out, None);
        out.push(',');
        write_opt_string(&mut out, Some("x\"y"));
        assert_eq!(out, r#"null,"x\"y""#);
    }

    proptest! {
        #[test]
        fn any_string_roundtrips_through_a_json_parser(s in any::<String>()) {
            let encoded = string(&s);
            let decoded: String = serde_json::from_str(&encoded).unwrap();
            prop_assert_eq!(decoded, s);
        }

        #[test]
        fn control_heavy_strings_roundtrip(s in "[\\x00-\\x1f\"\\\\a-z€]{0,64}") {
            let decoded: String = serde_json::from_str(&string(&s)).unwrap();
            prop_assert_eq!(decoded, s);
        }
    }
}
