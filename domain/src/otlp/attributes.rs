//! OpenTelemetry attribute values as JSON: `AnyValue` (OTLP `common/v1`) → `serde_json::Value`
//! with a nesting bound, and the lookups the mapping needs (typed reads, the flattened
//! indexed lists of OpenInference such as `retrieval.documents.0.document.id`).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde_json::{Map, Value};

/// Deepest nesting of arrays and key-value lists one attribute value may have; a deeper
/// one refuses its span. (Protobuf decoding stops a whole request at 100 nested messages,
/// about 48 levels of attribute values: such a request is answered 400.)
pub const MAX_ATTRIBUTE_DEPTH: usize = 32;

/// A span's (or a resource's, or an event's) attributes by key, as JSON values. A key
/// repeated in the list keeps its last value (OTLP leaves this undefined; collectors do the
/// same).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(pub BTreeMap<String, Value>);

impl Attributes {
    /// Converts `attributes`. Errors: a value nested deeper than [`MAX_ATTRIBUTE_DEPTH`],
    /// named by its key.
    pub fn of(attributes: &[KeyValue]) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for kv in attributes {
            let value = json_of(kv.value.as_ref(), 1).ok_or_else(|| {
                format!(
                    "attribute {:?} nests deeper than {MAX_ATTRIBUTE_DEPTH} levels",
                    kv.key
                )
            })?;
            map.insert(kv.key.clone(), value);
        }
        Ok(Attributes(map))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A string attribute (a number or a boolean as its text).
    pub fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A non-negative integer attribute (an integral double or a decimal string accepted).
    pub fn count(&self, key: &str) -> Option<u64> {
        count_of(self.0.get(key)?)
    }

    /// A number attribute (a decimal string accepted).
    pub fn number(&self, key: &str) -> Option<f64> {
        number_of(self.0.get(key)?)
    }

    /// The attributes whose key starts with `prefix`, with the prefix removed.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.0
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(move |(k, v)| (&k[prefix.len()..], v))
    }

    /// A flattened indexed list, as OpenInference writes one: for `prefix` =
    /// `retrieval.documents.`, the keys `retrieval.documents.<N>.<rest>` become item `N`'s
    /// `<rest>` → value, items in index order. A JSON array under the prefix's own key
    /// (without the dot) holding objects is read as the same list.
    pub fn indexed(&self, prefix: &str) -> Vec<BTreeMap<String, Value>> {
        let mut items: BTreeMap<u64, BTreeMap<String, Value>> = BTreeMap::new();
        for (rest, value) in self.with_prefix(prefix) {
            let Some((index, key)) = rest.split_once('.') else {
                continue;
            };
            let Ok(index) = index.parse::<u64>() else {
                continue;
            };
            items
                .entry(index)
                .or_default()
                .insert(key.to_string(), value.clone());
        }
        if items.is_empty()
            && let Some(Value::Array(list)) = self.0.get(prefix.trim_end_matches('.'))
        {
            return list
                .iter()
                .filter_map(|item| match item {
                    Value::Object(map) => Some(flatten(map)),
                    _ => None,
                })
                .collect();
        }
        items.into_values().collect()
    }

    /// Removes and returns every attribute whose key is `key` or starts with `key.`.
    pub fn take_tree(&mut self, key: &str) -> bool {
        let dotted = format!("{key}.");
        let before = self.0.len();
        self.0.retain(|k, _| k != key && !k.starts_with(&dotted));
        self.0.len() != before
    }

    /// The attributes as one JSON object.
    pub fn into_object(self) -> Map<String, Value> {
        self.0.into_iter().collect()
    }
}

/// An object's nested keys joined with dots (`{"document": {"id": 1}}` → `document.id`).
fn flatten(map: &Map<String, Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (key, value) in map {
        match value {
            Value::Object(inner) => {
                for (rest, v) in flatten(inner) {
                    out.insert(format!("{key}.{rest}"), v);
                }
            }
            other => {
                out.insert(key.clone(), other.clone());
            }
        }
    }
    out
}

/// A JSON value as a count: a non-negative integer, an integral double or a decimal string.
pub fn count_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= crate::ingest::MAX_COUNT as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON value as a number: a number or a decimal string.
pub fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A JSON value as text: a string as is, anything else as its JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `value` as JSON; `None` when it nests deeper than the bound at `depth`. A double that
/// JSON cannot hold (NaN, ±infinity) becomes its name as a string; bytes become lowercase
/// hex; an empty value becomes null.
fn json_of(value: Option<&AnyValue>, depth: usize) -> Option<Value> {
    use any_value::Value as V;
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        return Some(Value::Null);
    };
    Some(match value {
        V::StringValue(s) => Value::String(s.clone()),
        V::BoolValue(b) => Value::Bool(*b),
        V::IntValue(i) => Value::from(*i),
        V::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(d.to_string())),
        V::BytesValue(bytes) => Value::String(hex::encode(bytes)),
        V::StringValueStrindex(_) => Value::Null,
        V::ArrayValue(array) => {
            if depth >= MAX_ATTRIBUTE_DEPTH {
                return None;
            }
            Value::Array(
                array
                    .values
                    .iter()
                    .map(|v| json_of(Some(v), depth + 1))
                    .collect::<Option<Vec<_>>>()?,
            )
        }
        V::KvlistValue(list) => {
            if depth >= MAX_ATTRIBUTE_DEPTH {
                return None;
            }
            let mut map = Map::new();
            for kv in &list.values {
                map.insert(kv.key.clone(), json_of(kv.value.as_ref(), depth + 1)?);
            }
            Value::Object(map)
        }
    })
}

/// A text attribute that holds JSON (`input.value` with `input.mime_type` =
/// `application/json`, `gen_ai.input.messages`): parsed when it parses and storage keeps it
/// exactly (every number as sent, nesting within [`crate::ingest::MAX_DEPTH`]), else kept
/// as the text it is — never rounded.
pub fn parse_json_text(value: &Value) -> Value {
    match value {
        Value::String(s) if crate::ingest::is_kept_exactly(s.as_bytes()) => {
            serde_json::from_str(s).unwrap_or_else(|_| value.clone())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn values_become_json_and_indexed_lists_are_read_in_order() {
        use any_value::Value as V;
        let attributes = Attributes::of(&[
            kv(
                "retrieval.documents.1.document.id",
                V::StringValue("b".into()),
            ),
            kv(
                "retrieval.documents.0.document.id",
                V::StringValue("a".into()),
            ),
            kv("retrieval.documents.0.document.score", V::DoubleValue(0.5)),
            kv("n", V::IntValue(7)),
            kv("nan", V::DoubleValue(f64::NAN)),
            kv("raw", V::BytesValue(vec![0xab, 0x01])),
        ])
        .unwrap();
        let docs = attributes.indexed("retrieval.documents.");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["document.id"], "a");
        assert_eq!(docs[0]["document.score"], 0.5);
        assert_eq!(docs[1]["document.id"], "b");
        assert_eq!(attributes.count("n"), Some(7));
        assert_eq!(attributes.text("nan").as_deref(), Some("NaN"));
        assert_eq!(attributes.text("raw").as_deref(), Some("ab01"));
    }

    #[test]
    fn a_value_nested_past_the_bound_is_refused_naming_its_key() {
        let mut value = any_value::Value::IntValue(1);
        for _ in 0..MAX_ATTRIBUTE_DEPTH + 1 {
            value = any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(value) }],
            });
        }
        let error = Attributes::of(&[kv("deep", value)]).unwrap_err();
        assert!(error.contains("\"deep\""), "{error}");
        let shallow = any_value::Value::KvlistValue(KeyValueList {
            values: vec![kv("k", any_value::Value::BoolValue(true))],
        });
        let ok = Attributes::of(&[kv("shallow", shallow)]).unwrap();
        assert_eq!(ok.get("shallow").unwrap()["k"], true);
    }
}
