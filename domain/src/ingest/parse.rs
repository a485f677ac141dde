//! Reading a JSON body of the API (an ingest record, an admin request): JSON syntax first
//! (400 `malformed_json`), then the record's schema (422 `validation_failed`, naming the
//! field's path), with a nesting bound checked before any parsing.

use serde::de::IgnoredAny;

use crate::{Error, Result};
use flowtrail_types::FlowRecord;

/// Deepest nesting of arrays and objects a flow record may have. The record's own structure
/// takes 6 levels (flow → steps → step → observations → observation → attributes); the rest
/// is for free-form values. serde_json would stop at 128 with a less helpful error.
pub const MAX_DEPTH: usize = 64;

/// What a single pass over a JSON text finds first (by byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Finding {
    /// Arrays and objects nest deeper than the limit at this offset.
    TooDeep(usize),
    /// The number at these bytes would not come back with the value it was sent with.
    Inexact(std::ops::Range<usize>),
}

/// One pass over the bytes, skipping strings (and their escapes): the first place where
/// arrays and objects nest deeper than `limit`, or, with `numbers`, the first number that
/// serde_json cannot keep exactly ([`exact_number`]). The text's syntax is not checked here.
fn scan(body: &[u8], limit: usize, numbers: bool) -> Option<Finding> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut offset = 0;
    while offset < body.len() {
        let byte = body[offset];
        offset += 1;
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(Finding::TooDeep(offset - 1));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' if numbers => {
                let start = offset - 1;
                while offset < body.len()
                    && matches!(body[offset], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    offset += 1;
                }
                if !exact_number(&body[start..offset]) {
                    return Some(Finding::Inexact(start..offset));
                }
            }
            _ => {}
        }
    }
    None
}

/// How deeply arrays and objects nest in a JSON text: the byte offset where `limit` is first
/// exceeded.
fn nesting_depth(body: &[u8], limit: usize) -> Option<usize> {
    match scan(body, limit, false) {
        Some(Finding::TooDeep(offset)) => Some(offset),
        _ => None,
    }
}

/// Whether the JSON number `token` comes back from storage with the value it was sent with.
/// serde_json keeps an integer in 64 bits (`-2^63 ..= 2^64 - 1`) and anything else as the
/// nearest double, written back in the shortest form that reads as that double: `1e2` comes
/// back as `100.0` (the same number), `123456789012345678901234567890` as
/// `1.2345678901234568e29` (another number). A number of at most 15 significant digits with
/// a decimal exponent within ±22 is always exact (one correctly rounded operation, and 15
/// digits survive a double: DBL_DIG, C11 §5.2.4.2.2); any other is parsed and written back
/// the way storage does, and the two compared as decimals. A token that is no number is
/// "exact": the syntax check names it.
fn exact_number(token: &[u8]) -> bool {
    let Some(decimal) = Decimal::of(token) else {
        return true;
    };
    let integer = !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if integer && decimal.digits.len() <= 18 {
        return true;
    }
    if !integer && decimal.digits.len() <= 15 && (-22..=22).contains(&decimal.exponent) {
        return true;
    }
    let Ok(text) = std::str::from_utf8(token) else {
        return true;
    };
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(number) => Decimal::of(number.to_string().as_bytes()) == Some(decimal),
        // Beyond a double's range (`1e400`).
        Err(_) => false,
    }
}

/// A JSON number as significant digits (no leading or trailing zeros) times a power of ten,
/// so that equal numbers compare equal whatever their spelling (`100`, `1e2`, `100.0`); zero
/// has no digits and no sign.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    /// `None` unless `token` is a JSON number (RFC 8259, section 6).
    fn of(token: &[u8]) -> Option<Decimal> {
        let (negative, rest) = match token.split_first()? {
            (b'-', rest) => (true, rest),
            _ => (false, token),
        };
        let mantissa_end = rest
            .iter()
            .position(|b| matches!(b, b'e' | b'E'))
            .unwrap_or(rest.len());
        let (mantissa, exponent) = rest.split_at(mantissa_end);
        let mut exponent: i64 = match exponent.split_first() {
            None => 0,
            Some((_, digits)) => {
                let text = std::str::from_utf8(digits).ok()?;
                // A huge exponent saturates: the number is then out of any double's range.
                text.parse::<i64>().unwrap_or(if text.starts_with('-') {
                    i64::MIN / 2
                } else {
                    i64::MAX / 2
                })
            }
        };
        let (whole, fraction) = match mantissa.iter().position(|b| *b == b'.') {
            Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
            None => (mantissa, &[][..]),
        };
        if whole.is_empty() || !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
            return None;
        }
        exponent = exponent.saturating_sub(fraction.len() as i64);
        let mut digits: Vec<u8> = whole
            .iter()
            .chain(fraction)
            .copied()
            .skip_while(|d| *d == b'0')
            .collect();
        while digits.last() == Some(&b'0') {
            digits.pop();
            exponent = exponent.saturating_add(1);
        }
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        Some(Decimal {
            negative,
            digits,
            exponent,
        })
    }
}

/// The path of the value at byte `at` of a JSON text, as serde_path_to_error writes it
/// (`steps[0].observations[2].attributes.n`). The text must be JSON.
fn path_at(body: &[u8], at: usize) -> String {
    enum Frame {
        Object(Option<String>),
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut offset = 0;
    let mut expecting_key = false;
    while offset < at.min(body.len()) {
        match body[offset] {
            b'{' => {
                stack.push(Frame::Object(None));
                expecting_key = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b']' | b'}' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(index)) => *index += 1,
                Some(Frame::Object(_)) => expecting_key = true,
                None => {}
            },
            b'"' => {
                let start = offset;
                offset += 1;
                while offset < body.len() && body[offset] != b'"' {
                    offset += if body[offset] == b'\\' { 2 } else { 1 };
                }
                if expecting_key {
                    let key =
                        serde_json::from_slice::<String>(&body[start..=offset.min(body.len() - 1)])
                            .unwrap_or_default();
                    if let Some(Frame::Object(current)) = stack.last_mut() {
                        *current = Some(key);
                    }
                    expecting_key = false;
                }
            }
            _ => {}
        }
        offset += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object(None) => {}
            Frame::Array(index) => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// Parses a flow record, telling malformed JSON from JSON that breaks the schema, with the
/// path of the offending field.
pub fn parse_flow(body: &[u8]) -> Result<FlowRecord> {
    parse_body(body)
}

/// [`parse_flow`] for any JSON body of the API: a body that is not JSON is
/// [`Error::Malformed`] wherever its first syntax error is, even after a schema error; only a
/// body that is JSON can be [`Error::Validation`], naming the field's path.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    let offset = match scan(body, MAX_DEPTH, true) {
        None => None,
        Some(Finding::TooDeep(offset)) => Some(offset),
        Some(Finding::Inexact(number)) => {
            // Only a JSON body can be refused for its content.
            check_syntax(body)?;
            let field = path_at(body, number.start);
            let token = &body[number.clone()];
            // A number may be a megabyte long: the message shows its start.
            let shown = if token.len() > 40 {
                format!("{}…", String::from_utf8_lossy(&token[..32]))
            } else {
                String::from_utf8_lossy(token).into_owned()
            };
            let prefix = if field.is_empty() {
                String::new()
            } else {
                format!("{field}: ")
            };
            return Err(Error::Validation {
                message: format!(
                    "{prefix}the number {shown} cannot be kept exactly (numbers are stored as \
                     64-bit integers or doubles); an id or a decimal that must keep its digits \
                     can be sent as a string"
                ),
                field: Some(field).filter(|f| !f.is_empty()),
            });
        }
    };
    if let Some(offset) = offset {
        // serde_json stops at its own depth limit, so the syntax of a body nested deeper than
        // that cannot be checked: such a body is refused for its depth alone.
        if nesting_depth(body, SERDE_JSON_DEPTH).is_none() {
            check_syntax(body)?;
        }
        return Err(Error::Validation {
            field: None,
            message: format!(
                "arrays and objects nest more than {MAX_DEPTH} levels deep (at byte {offset}); \
                 flatten the step inputs, outputs or attributes"
            ),
        });
    }
    // The fast path: plain serde. Only a body that fails is read again: first for its syntax
    // alone (a schema error may come before the syntax error), then with path tracking, to
    // name the offending field.
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        return Ok(value);
    }
    check_syntax(body)?;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // The body is JSON, so whatever the typed parse refuses (a wrong type, a missing field, a
    // string escape that is no character, a number out of range) is about its content.
    let error = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let path = error.path().to_string();
    let message = data_error_message(error.inner());
    Err(Error::Validation {
        field: field_of(&path, &message),
        message,
    })
}

/// The field an error is about: its path, and for a missing or repeated field (which serde
/// reports at the enclosing object) the field's own name under it (`id`, `steps[0].name`).
fn field_of(path: &str, message: &str) -> Option<String> {
    let named = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix)?.split('`').next());
    match (path, named) {
        (".", None) => None,
        (".", Some(name)) => Some(name.to_string()),
        (path, Some(name)) => Some(format!("{path}.{name}")),
        (path, None) => Some(path.to_string()),
    }
}

/// Depth at which serde_json stops parsing with "recursion limit exceeded".
const SERDE_JSON_DEPTH: usize = 127;

/// 400 `malformed_json` unless the whole body is one JSON text in UTF-8 (RFC 8259), without
/// building anything: [`IgnoredAny`] checks the grammar, `from_slice` the trailing characters.
fn check_syntax(body: &[u8]) -> Result<()> {
    if let Err(error) = serde_json::from_slice::<IgnoredAny>(body) {
        return Err(Error::Malformed {
            message: format!("the body is not valid JSON: {error}"),
        });
    }
    // serde_json skips over the bytes of ignored strings without decoding them.
    if let Err(error) = std::str::from_utf8(body) {
        return Err(Error::Malformed {
            message: format!(
                "the body is not valid JSON: it is not UTF-8 (at byte {})",
                error.valid_up_to()
            ),
        });
    }
    Ok(())
}

/// serde's message without its "at line 1 column 40" suffix, which means nothing to a person
/// who sent a generated body; the field path says where instead.
fn data_error_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_repeated_field_is_named() {
        let field = |body: &str| match parse_body::<FlowRecord>(body.as_bytes()) {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field("{}").as_deref(), Some("id"));
        assert_eq!(
            field(r#"{"pipeline":"a","pipeline":"b"}"#).as_deref(),
            Some("pipeline")
        );
    }

    #[test]
    fn numbers_that_would_change_are_refused_with_their_field() {
        // Issue #14, item 3, and its kind: integers past 64 bits, more digits than a double
        // keeps, a double's range exceeded.
        for (body, field) in [
            (
                r#"{"steps": [{"observations": [{"attributes": {"n": 123456789012345678901234567890}}]}]}"#,
                "steps[0].observations[0].attributes.n",
            ),
            (
                r#"{"input": {"a": [1, 2, 18446744073709551616]}}"#,
                "input.a[2]",
            ),
            (r#"{"output": -9223372036854775809}"#, "output"),
            (
                r#"{"input": {"p": 0.1000000000000000055511151231257827}}"#,
                "input.p",
            ),
            (r#"{"input": {"big": 1e400}}"#, "input.big"),
            (
                r#"{"input": {"k\"e.y": 12345678901234567890123}}"#,
                "input.k\"e.y",
            ),
        ] {
            let (got, message) = invalid::<FlowRecord>(body.as_bytes());
            assert_eq!(got.as_deref(), Some(field), "{body}");
            assert!(message.contains("sent as a string"), "{message}");
        }
        // A syntax error later in the body is still malformed JSON.
        malformed::<FlowRecord>(br#"{"input": 123456789012345678901234567890, "#);
    }

    #[test]
    fn numbers_kept_exactly_pass_whatever_their_spelling() {
        for token in [
            "0",
            "-0",
            "18446744073709551615",
            "-9223372036854775808",
            "1e2",
            "100.0",
            "4.0",
            "9.99",
            "0.30000000000000004",
            "1.7976931348623157e308",
            "5e-324",
            "1E+21",
            "123456789.123456",
            "0.000001",
            "2.5e-7",
            "-1.5E-10",
        ] {
            assert!(exact_number(token.as_bytes()), "{token}");
        }
        for token in [
            "18446744073709551616",
            "1.00000000000000000001",
            "1e400",
            "12345678901234567890.5",
        ] {
            assert!(!exact_number(token.as_bytes()), "{token}");
        }
        assert_eq!(Decimal::of(b"1e2"), Decimal::of(b"100.0"));
        assert_eq!(Decimal::of(b"-0.0"), Decimal::of(b"0"));
        assert_ne!(Decimal::of(b"-1"), Decimal::of(b"1"));
    }

    #[test]
    fn every_double_in_its_shortest_form_is_kept_exactly() {
        // Without serde_json's `float_roundtrip` its parser is off by one unit in the last
        // place for some 17-digit doubles (`7.0 / 30.0` = 0.23333333333333334): such a
        // score was stored changed, and then refused. Doubles from their bit patterns.
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut checked = 0;
        while checked < 20_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let x = f64::from_bits(bits);
            if !x.is_finite() {
                continue;
            }
            let text = serde_json::to_string(&x).unwrap();
            assert!(exact_number(text.as_bytes()), "{text}");
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{text}");
            checked += 1;
        }
        for i in 0..30 {
            let text = serde_json::to_string(&(f64::from(i) / 30.0)).unwrap();
            assert!(exact_number(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn nesting_depth_ignores_brackets_inside_strings() {
        assert_eq!(nesting_depth(br#"{"a": [[1]]}"#, 3), None);
        assert_eq!(nesting_depth(br#"{"a": [[[1]]]}"#, 3), Some(8));
        assert_eq!(nesting_depth(br#"{"a": "[[[[[[\"[[[["}"#, 1), None);
        assert_eq!(nesting_depth(br#"[{}, {}, {}]"#, 2), None);
    }

    fn malformed<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> String {
        match parse_body::<T>(body) {
            Err(Error::Malformed { message }) => message,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }

    fn invalid<T: serde::de::DeserializeOwned + std::fmt::Debug>(
        body: &[u8],
    ) -> (Option<String>, String) {
        match parse_body::<T>(body) {
            Err(Error::Validation { field, message }) => (field, message),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn a_syntax_error_after_a_schema_error_is_malformed_json() {
        // Each is refused by the schema before serde reaches the syntax error.
        for body in [
            &b"[1,2"[..],
            br#"{"pipeline":"a"}garbage"#,
            br#"{"id": "x", "#,
            b"",
            br#"{"id": "x", "pipeline": "p"} {}"#,
        ] {
            let message = malformed::<FlowRecord>(body);
            assert!(
                message.starts_with("the body is not valid JSON: "),
                "{message}"
            );
            malformed::<flowtrail_types::StepsPush>(body);
        }
        assert!(malformed::<FlowRecord>(br#"{"pipeline":"a"}garbage"#).contains("trailing"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_malformed_json_even_inside_a_string() {
        malformed::<FlowRecord>(b"{\"id\": 1, \"pipeline\": \"\xff\"}");
    }

    #[test]
    fn a_body_that_is_json_gets_schema_errors_with_the_field_path() {
        // A struct may be a JSON array of its fields: the first is not a UUID.
        let (field, message) = invalid::<FlowRecord>(b"[1, 2]");
        assert_eq!(field.as_deref(), Some("[0]"));
        assert!(message.starts_with("invalid type"), "{message}");
        let (field, _) = invalid::<FlowRecord>(br#"{"id": "x"}"#);
        assert_eq!(field.as_deref(), Some("id"));
        // Syntactically JSON (any \u escape is), but no character.
        let (field, _) = invalid::<FlowRecord>(br#"{"pipeline": "\ud800"}"#);
        assert_eq!(field.as_deref(), Some("pipeline"));
    }

    #[test]
    fn too_deep_is_a_schema_error_unless_the_syntax_is_broken_first() {
        let deep = |levels: usize, tail: &str| {
            format!(
                "{{\"input\": {}1{}{tail}",
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        let (_, message) = invalid::<FlowRecord>(deep(100, "}").as_bytes());
        assert!(message.contains("64 levels"), "{message}");
        malformed::<FlowRecord>(deep(100, "").as_bytes());
        // Deeper than serde_json reads: refused for the depth alone.
        let (_, message) = invalid::<FlowRecord>(deep(10_000, "").as_bytes());
        assert!(message.contains("64 levels"), "{message}");
    }
}
