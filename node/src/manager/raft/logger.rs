//! raft-rs logs through slog; covey logs through tracing. This drain forwards one to the
//! other, key-values included (they carry the term and the peer).

use std::fmt::Write as _;

use slog::{Drain, Level, OwnedKVList, Record, KV};

struct TracingDrain;

struct Fields(String);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let msg = record.msg();
        let fields = fields.0;
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "covey::raft", "{msg}{fields}")
            }
            Level::Warning => tracing::warn!(target: "covey::raft", "{msg}{fields}"),
            // raft-rs reports every election at info; those are worth seeing.
            Level::Info => tracing::info!(target: "covey::raft", "{msg}{fields}"),
            Level::Debug => tracing::debug!(target: "covey::raft", "{msg}{fields}"),
            Level::Trace => tracing::trace!(target: "covey::raft", "{msg}{fields}"),
        }
        Ok(())
    }
}

pub fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!())
}
