//! Reading a JSON body of the API (an ingest record, an admin request): JSON syntax first
//! (400 `malformed_json`), then the record's schema (422 `validation_failed`, naming the
//! field's path), with a nesting bound checked before any parsing.

mod numbers;
mod scan;

use serde::de::IgnoredAny;

use crate::{Error, Result};
use flowtrail_types::FlowRecord;
use scan::{Finding, nesting_depth, path_at, scan};

/// Deepest nesting of arrays and objects a flow record may have. The record's own structure
/// takes 6 levels (flow → steps → step → observations → observation → attributes); the rest
/// is for free-form values. serde_json would stop at 128 with a less helpful error.
pub const MAX_DEPTH: usize = flowtrail_types::limits::MAX_DEPTH;

/// Whether a JSON text nests at most [`MAX_DEPTH`] deep and every number in it comes back
/// from storage with the value it was sent with (what [`parse_body`] refuses otherwise).
/// The text's syntax is not checked.
pub fn is_kept_exactly(text: &[u8]) -> bool {
    scan(text, MAX_DEPTH, true).is_none()
}

/// Parses a flow record, telling malformed JSON from JSON that breaks the schema, with the
/// path of the offending field.
pub fn parse_flow(body: &[u8]) -> Result<FlowRecord> {
    parse_body(body)
}

/// [`parse_flow`] for any JSON body of the API: a body that is not JSON is
/// [`Error::Malformed`] wherever its first syntax error is, even after a schema error; only a
/// body that is JSON can be [`Error::Validation`], naming the field's path.
///
/// Every body of the API is a JSON object: serde would read a struct from an array too
/// (`[null]` as `{"id": null}`), so a body that is JSON but not an object is refused
/// (`Validation`, no field) before it is read.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        check_syntax(body)?;
        return Err(Error::Validation {
            field: None,
            message: "the body is a JSON object ({…})".into(),
        });
    }
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
        // serde would read a struct from a JSON array of its fields: a body is an object.
        let (field, message) = invalid::<FlowRecord>(b"[1, 2]");
        assert_eq!(field, None);
        assert!(message.contains("JSON object"), "{message}");
        for body in [&b"null"[..], b" 7", br#""flow""#, b"[]"] {
            assert!(invalid::<FlowRecord>(body).1.contains("JSON object"));
        }
        malformed::<FlowRecord>(b"[1, 2");
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
