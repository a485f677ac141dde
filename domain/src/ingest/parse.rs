//! Reading an ingest body: JSON syntax first (400 `malformed_json`), then the record's schema
//! (422 `validation_failed`, naming the field's path), with a nesting bound checked before
//! any parsing.

use serde_json::error::Category;

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

/// [`parse_flow`] for any record type of the ingest API.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    if let Some(offset) = nesting_depth(body, MAX_DEPTH) {
        return Err(Error::Validation {
            field: None,
            message: format!(
                "arrays and objects nest more than {MAX_DEPTH} levels deep (at byte {offset}); \
                 flatten the step inputs, outputs or attributes"
            ),
        });
    }
    // The fast path: plain serde. Only a body that fails is parsed again, with path tracking,
    // to name the offending field.
    if let Ok(flow) = serde_json::from_slice::<T>(body) {
        return Ok(flow);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let flow: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => Error::Validation {
                field: (path != ".").then_some(path),
                message: data_error_message(&inner),
            },
            _ => Error::Malformed {
                message: format!("the body is not valid JSON: {inner}"),
            },
        }
    })?;
    deserializer.end().map_err(|e| Error::Malformed {
        message: format!("the body is not valid JSON: {e}"),
    })?;
    Ok(flow)
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
    fn nesting_depth_ignores_brackets_inside_strings() {
        assert_eq!(nesting_depth(br#"{"a": [[1]]}"#, 3), None);
        assert_eq!(nesting_depth(br#"{"a": [[[1]]]}"#, 3), Some(8));
        assert_eq!(nesting_depth(br#"{"a": "[[[[[[\"[[[["}"#, 1), None);
        assert_eq!(nesting_depth(br#"[{}, {}, {}]"#, 2), None);
    }
}
