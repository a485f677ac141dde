//! What the unit tests share. Rules: nothing here reaches a server; a client made here
//! delivers nothing and breaks nothing.

use crate::{Client, Config};

/// A client whose server refuses connections, with one attempt per flow.
pub(crate) fn offline_client() -> Client {
    // Port 9 (discard) refuses connections: nothing is delivered, nothing breaks.
    let mut config = Config::new("http://127.0.0.1:9", "ftk_test");
    config.max_attempts = 1;
    Client::with_config(config).unwrap()
}
