//! One pass over the bytes of a JSON text, without parsing it: how deep arrays and objects
//! nest, the first number that would not be kept exactly, and the field path at an offset.

use super::numbers::exact_number;

/// What a single pass over a JSON text finds first (by byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Finding {
    /// Arrays and objects nest deeper than the limit at this offset.
    TooDeep(usize),
    /// The number at these bytes would not come back with the value it was sent with.
    Inexact(std::ops::Range<usize>),
}

/// One pass over the bytes, skipping strings (and their escapes): the first place where
/// arrays and objects nest deeper than `limit`, or, with `numbers`, the first number that
/// serde_json cannot keep exactly ([`exact_number`]). The text's syntax is not checked here.
pub(super) fn scan(body: &[u8], limit: usize, numbers: bool) -> Option<Finding> {
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
pub(super) fn nesting_depth(body: &[u8], limit: usize) -> Option<usize> {
    match scan(body, limit, false) {
        Some(Finding::TooDeep(offset)) => Some(offset),
        _ => None,
    }
}

/// The path of the value at byte `at` of a JSON text, as serde_path_to_error writes it
/// (`steps[0].observations[2].attributes.n`). The text must be JSON.
pub(super) fn path_at(body: &[u8], at: usize) -> String {
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
