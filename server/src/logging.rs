//! The binary's logs: plain text (default) or JSON lines (`--log-json`), on stderr, filtered by
//! `RUST_LOG` (default `info`).
//!
//! Rule: a logged value can never forge a log line or drive a terminal. Values carry what
//! users sent (pipeline and step names, tag keys, error texts); in plain text every field's
//! value has its control characters (CR, LF, ESC, …) escaped as `\r`, `\n`, `\u{1b}` — the
//! log-injection rule of the OWASP Logging Cheat Sheet (CWE-117). JSON lines are safe as they
//! are: JSON escapes every control character in a string (RFC 8259, section 7).

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// Installs the process's log subscriber: JSON lines when `json`, else plain text with
/// [`escaped_fields`]. ANSI colours only when stderr is a terminal.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout carries command output (an API key) only.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.fmt_fields(escaped_fields()).init();
    }
}

/// The plain-text field formatter: `message` as it is, other fields as `name=value`,
/// separated by spaces, every value with its control characters escaped.
pub fn escaped_fields() -> impl for<'writer> FormatFields<'writer> + Send + Sync + 'static {
    debug_fn(
        |writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
            if field.name() != "message" {
                write!(writer, "{}=", field.name())?;
            }
            write!(Escaping(writer), "{value:?}")
        },
    )
    .delimited(" ")
}

/// A writer that escapes control characters on their way through.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", other as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    const FORGED: &str = "p\r\n2026-12-02T00:00:00Z  INFO admin logged in\u{1b}[2J\u{7}";

    fn log_with(json: bool) -> String {
        let buffer = Buffer::default();
        let logs = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(buffer.clone());
        let emit = || {
            tracing::warn!(pipeline = %FORGED, step = ?FORGED, "flow {FORGED} failed");
        };
        if json {
            tracing::subscriber::with_default(logs.json().finish(), emit);
        } else {
            tracing::subscriber::with_default(logs.fmt_fields(escaped_fields()).finish(), emit);
        }
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_value_cannot_forge_a_plain_log_line_or_drive_a_terminal() {
        let logged = log_with(false);
        assert_eq!(logged.lines().count(), 1, "{logged}");
        assert!(logged.ends_with('\n'));
        let line = logged.trim_end_matches('\n');
        assert!(!line.contains(char::is_control), "{line:?}");
        assert!(line.contains(r"p\r\n2026-12-02T00:00:00Z  INFO admin logged in\u{1b}[2J\u{7}"));
        assert!(line.contains("pipeline=p\\r\\n"), "{line}");
    }

    #[test]
    fn a_value_cannot_forge_a_json_log_line() {
        let logged = log_with(true);
        assert_eq!(logged.lines().count(), 1, "{logged}");
        let event: serde_json::Value = serde_json::from_str(logged.trim_end()).unwrap();
        assert_eq!(event["fields"]["pipeline"], FORGED);
        assert!(!logged.trim_end().contains(char::is_control));
    }
}
