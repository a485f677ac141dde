//! Exports as Apache Parquet (through the `arrow` and `parquet` crates): one row group per
//! [`ROW_GROUP`] rows or about [`ROW_GROUP_BYTES`] bytes of rows, whichever comes first,
//! written out as soon as it is full, zstd-compressed. The schema of each
//! level is [`columns`]: times as `Timestamp(Millisecond, "UTC")`, counts as unsigned
//! integers, scores as `Float64`, objects and lists (tags, reasons, attributes, input,
//! output) as JSON text.

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow_array::builder::{
    Float64Builder, StringBuilder, TimestampMillisecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use axum::body::Bytes;
use flowtrail_domain::flows::export::{Level, Row};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;

/// Rows per row group.
pub const ROW_GROUP: usize = 8_192;

/// Bytes of rows (about, as JSON) a row group holds at most before it is written out, so that
/// rows with large attributes or inputs do not make a row group of 8,192 rows large in memory.
pub const ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// An object or a list, as JSON text.
    Json,
    U32,
    U64,
    F64,
    Time,
}

/// The columns of a level: name, kind, nullable.
fn columns(level: Level) -> &'static [(&'static str, Kind, bool)] {
    use Kind::*;
    match level {
        Level::Flows => &[
            ("id", Text, false),
            ("version", U32, false),
            ("pipeline", Text, false),
            ("status", Text, false),
            ("started_at", Time, false),
            ("ended_at", Time, true),
            ("tags", Json, false),
            ("error", Text, true),
            ("step_count", U32, false),
            ("ingested_at", Time, false),
            ("largest_elimination", Json, true),
            ("imported_at", Time, true),
        ],
        Level::Steps => &[
            ("flow_id", Text, false),
            ("seq", U32, false),
            ("parent_seq", U32, true),
            ("name", Text, false),
            ("kind", Text, false),
            ("status", Text, false),
            ("started_at", Time, true),
            ("ended_at", Time, true),
            ("candidates_in", U64, true),
            ("candidates_out", U64, true),
            ("reasons", Json, false),
            ("capture", Text, false),
            ("observation_count", U64, false),
            ("reasoning", Text, true),
            ("input", Json, true),
            ("output", Json, true),
            ("span_id", Text, true),
            ("parent_span_id", Text, true),
            ("boundaries", Json, true),
        ],
        Level::Observations => &[
            ("flow_id", Text, false),
            ("seq", U32, false),
            ("step", Text, false),
            ("candidate_id", Text, false),
            ("verdict", Text, false),
            ("score", F64, true),
            ("reasons", Json, true),
            ("attributes", Json, true),
        ],
    }
}

/// The Arrow schema of a level.
pub fn schema(level: Level) -> Arc<Schema> {
    let fields: Vec<Field> = columns(level)
        .iter()
        .map(|(name, kind, nullable)| {
            let data_type = match kind {
                Kind::Text | Kind::Json => DataType::Utf8,
                Kind::U32 => DataType::UInt32,
                Kind::U64 => DataType::UInt64,
                Kind::F64 => DataType::Float64,
                Kind::Time => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            };
            Field::new(*name, data_type, *nullable)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The bytes the writer has produced and not yet handed on.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A Parquet file written as rows arrive.
pub struct ParquetRows {
    level: Level,
    writer: ArrowWriter<Shared>,
    out: Shared,
    pending: Vec<Value>,
    pending_bytes: usize,
}

impl ParquetRows {
    pub fn new(level: Level) -> parquet::errors::Result<Self> {
        let out = Shared::default();
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .build();
        let writer = ArrowWriter::try_new(out.clone(), schema(level), Some(properties))?;
        Ok(ParquetRows {
            level,
            writer,
            out,
            pending: Vec::with_capacity(ROW_GROUP),
            pending_bytes: 0,
        })
    }

    /// Takes a row; the bytes of a finished row group, when one is.
    pub fn row(&mut self, row: &Row) -> parquet::errors::Result<Option<Bytes>> {
        let value = serde_json::to_value(row).unwrap_or(Value::Null);
        self.pending_bytes += approximate_size(&value);
        self.pending.push(value);
        if self.pending.len() < ROW_GROUP && self.pending_bytes < ROW_GROUP_BYTES {
            return Ok(None);
        }
        self.write_pending()?;
        Ok(Some(self.take()))
    }

    /// The rest of the file: the last row group and the footer.
    pub fn finish(mut self) -> parquet::errors::Result<Bytes> {
        if !self.pending.is_empty() {
            self.write_pending()?;
        }
        let out = self.out.clone();
        self.writer.close()?;
        Ok(take(&out))
    }

    fn write_pending(&mut self) -> parquet::errors::Result<()> {
        let rows = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let arrays: Vec<ArrayRef> = columns(self.level)
            .iter()
            .map(|(name, kind, _)| array(&rows, name, *kind))
            .collect();
        let batch = RecordBatch::try_new(schema(self.level), arrays)?;
        self.writer.write(&batch)?;
        self.writer.flush()
    }

    fn take(&self) -> Bytes {
        take(&self.out)
    }
}

/// About how many bytes `value` takes as JSON (strings and keys by length, other scalars as
/// 8): enough to bound a row group's memory without serializing each row twice.
fn approximate_size(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len() + 2,
        Value::Array(items) => items.iter().map(approximate_size).sum::<usize>() + 2,
        Value::Object(fields) => {
            fields
                .iter()
                .map(|(key, value)| key.len() + 3 + approximate_size(value))
                .sum::<usize>()
                + 2
        }
        _ => 8,
    }
}

/// The bytes written so far, leaving the buffer empty.
fn take(out: &Shared) -> Bytes {
    Bytes::from(
        out.0
            .lock()
            .map(|mut buffer| std::mem::take(&mut *buffer))
            .unwrap_or_default(),
    )
}

/// One column of `rows`.
fn array(rows: &[Value], name: &str, kind: Kind) -> ArrayRef {
    let values = rows
        .iter()
        .map(|row| row.get(name).filter(|v| !v.is_null()));
    match kind {
        Kind::Text | Kind::Json => {
            let mut builder = StringBuilder::new();
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(Value::String(s)) if kind == Kind::Text => builder.append_value(s),
                    Some(other) => builder.append_value(other.to_string()),
                }
            }
            Arc::new(builder.finish())
        }
        Kind::U32 => {
            let mut builder = UInt32Builder::new();
            for value in values {
                builder.append_option(value.and_then(Value::as_u64).map(|n| n as u32));
            }
            Arc::new(builder.finish())
        }
        Kind::U64 => {
            let mut builder = UInt64Builder::new();
            for value in values {
                builder.append_option(value.and_then(Value::as_u64));
            }
            Arc::new(builder.finish())
        }
        Kind::F64 => {
            let mut builder = Float64Builder::new();
            for value in values {
                builder.append_option(value.and_then(Value::as_f64));
            }
            Arc::new(builder.finish())
        }
        Kind::Time => {
            let mut builder = TimestampMillisecondBuilder::new().with_timezone("UTC");
            for value in values {
                let ms = value.and_then(Value::as_str).and_then(|text| {
                    time::OffsetDateTime::parse(
                        text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                    .map(|at| at.unix_timestamp_nanos().div_euclid(1_000_000) as i64)
                });
                builder.append_option(ms);
            }
            Arc::new(builder.finish())
        }
    }
}
