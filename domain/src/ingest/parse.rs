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

/// How deeply arrays and objects nest in a JSON text, and the byte offset where `limit` is
/// first exceeded. A single pass over the bytes that skips strings (and their escapes).
fn nesting_depth(body: &[u8], limit: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, &byte) in body.iter().enumerate() {
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
                    return Some(offset);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
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
    if let Some(offset) = nesting_depth(body, MAX_DEPTH) {
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
