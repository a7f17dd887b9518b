//! Raft's log, hard state and snapshot metadata in sled, beside the store's state.
//!
//! Keys of the `raft` tree: `e/<index, 8 bytes big-endian>` an entry (its term in the
//! clear, 8 bytes big-endian, then the entry sealed with the state machine's key, as its
//! rows are: entries carry the same objects), `hs` the hard state, `cs` the configuration (voters) as last applied, `snap` the metadata of the last
//! compaction point. Snapshot data is not kept: it is made from the state machine when a
//! follower needs it, since the state machine is exactly the applied state.

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::manager::store::{RawBatch, StateMachine};

#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    tree: sled::Tree,
    machine: StateMachine,
}

fn entry_key(index: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(b"e/");
    key[2..].copy_from_slice(&index.to_be_bytes());
    key
}

fn index_of(key: &[u8]) -> Option<u64> {
    key.get(2..10)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

/// An entry as kept at rest: its term, then the entry sealed for its row.
fn seal_entry(key: &crate::seal::Key, entry: &Entry) -> raft::Result<Vec<u8>> {
    let plain = entry.write_to_bytes().map_err(store_err)?;
    let sealed = key
        .seal_bytes(&plain, &entry_key(entry.index))
        .map_err(store_err)?;
    let mut out = Vec::with_capacity(8 + sealed.len());
    out.extend_from_slice(&entry.term.to_be_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn term_of(stored: &[u8]) -> raft::Result<u64> {
    stored
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| store_err(crate::manager::store::Error::Sealed { row: "e/".into() }))
}

fn open_entry(key: &crate::seal::Key, row: &[u8], stored: &[u8]) -> raft::Result<Entry> {
    let sealed = stored.get(8..).unwrap_or_default();
    let plain = key.open_bytes(sealed, row).map_err(|_| {
        store_err(crate::manager::store::Error::Sealed {
            row: format!("e/{}", index_of(row).unwrap_or_default()),
        })
    })?;
    Entry::parse_from_bytes(&plain).map_err(store_err)
}

fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl LogStore {
    pub fn open(db: &sled::Db, machine: StateMachine) -> Result<Self, sled::Error> {
        Ok(LogStore {
            db: db.clone(),
            tree: db.open_tree("raft")?,
            machine,
        })
    }

    /// True once this node has Raft state: it made or joined a cluster.
    pub fn is_initialized(&self) -> raft::Result<bool> {
        Ok(!self.conf_state()?.voters.is_empty() || self.last_index_inner()? > 0)
    }

    /// Makes a new cluster's first log: this node its only voter.
    pub fn bootstrap(&self, id: u64) -> raft::Result<()> {
        let cs = ConfState {
            voters: vec![id],
            ..Default::default()
        };
        let meta = SnapshotMetadata {
            conf_state: Some(cs.clone()).into(),
            ..Default::default()
        };
        self.put("snap", &meta)?;
        self.put("cs", &cs)?;
        self.sync()
    }

    fn put(&self, key: &str, msg: &impl protobuf::Message) -> raft::Result<()> {
        let bytes = msg.write_to_bytes().map_err(store_err)?;
        self.tree.insert(key, bytes).map_err(store_err)?;
        Ok(())
    }

    fn read<M: protobuf::Message>(&self, key: &str) -> raft::Result<M> {
        match self.tree.get(key).map_err(store_err)? {
            Some(bytes) => M::parse_from_bytes(&bytes).map_err(store_err),
            None => Ok(M::new()),
        }
    }

    pub fn hard_state(&self) -> raft::Result<HardState> {
        self.read("hs")
    }

    pub fn conf_state(&self) -> raft::Result<ConfState> {
        self.read("cs")
    }

    fn snapshot_meta(&self) -> raft::Result<SnapshotMetadata> {
        self.read("snap")
    }

    pub fn set_hard_state(&self, hs: &HardState) -> raft::Result<()> {
        self.put("hs", hs)
    }

    pub fn set_conf_state(&self, cs: &ConfState) -> raft::Result<()> {
        self.put("cs", cs)
    }

    pub fn set_commit(&self, commit: u64) -> raft::Result<()> {
        let mut hs = self.hard_state()?;
        hs.commit = commit;
        self.set_hard_state(&hs)
    }

    /// Appends entries, dropping any conflicting suffix that a new leader overwrote.
    pub fn append(&self, entries: &[Entry]) -> raft::Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for item in self.tree.range(entry_key(first.index)..entry_key(u64::MAX)) {
            let (key, _) = item.map_err(store_err)?;
            batch.remove(key);
        }
        for entry in entries {
            batch.insert(
                &entry_key(entry.index),
                seal_entry(self.machine.key(), entry)?,
            );
        }
        self.tree.apply_batch(batch).map_err(store_err)
    }

    /// A snapshot from the leader: the state machine takes its data, the log restarts
    /// after it.
    pub fn apply_snapshot(&self, snapshot: &Snapshot) -> raft::Result<()> {
        let meta = snapshot.get_metadata();
        if meta.index < self.first_index_inner()?.saturating_sub(1) {
            return Err(raft::Error::Store(StorageError::SnapshotOutOfDate));
        }
        self.machine
            .restore(meta.index, snapshot.get_data())
            .map_err(store_err)?;
        let mut batch = sled::Batch::default();
        for key in self.tree.scan_prefix("e/").keys() {
            batch.remove(key.map_err(store_err)?);
        }
        self.tree.apply_batch(batch).map_err(store_err)?;
        self.put("snap", meta)?;
        self.put("cs", meta.get_conf_state())?;
        let mut hs = self.hard_state()?;
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        self.set_hard_state(&hs)
    }

    /// Drops entries up to and including `index`, which must be applied.
    pub fn compact(&self, index: u64) -> raft::Result<()> {
        if index < self.first_index_inner()? || index > self.machine.applied().map_err(store_err)? {
            return Ok(());
        }
        let meta = SnapshotMetadata {
            index,
            term: raft::Storage::term(self, index)?,
            conf_state: Some(self.conf_state()?).into(),
            ..Default::default()
        };
        let mut batch = sled::Batch::default();
        for key in self.tree.range(entry_key(0)..=entry_key(index)).keys() {
            batch.remove(key.map_err(store_err)?);
        }
        self.tree.apply_batch(batch).map_err(store_err)?;
        self.put("snap", &meta)
    }

    /// Makes what was written durable: Raft must not send its votes and acknowledgements
    /// before. One `fsync` per batch of entries, not per entry.
    pub fn sync(&self) -> raft::Result<()> {
        self.db.flush().map(|_| ()).map_err(store_err)
    }

    fn first_index_inner(&self) -> raft::Result<u64> {
        Ok(self.snapshot_meta()?.index + 1)
    }

    fn last_index_inner(&self) -> raft::Result<u64> {
        match self.tree.scan_prefix("e/").keys().next_back() {
            Some(key) => index_of(&key.map_err(store_err)?)
                .ok_or_else(|| store_err(std::io::Error::other("a malformed log key"))),
            None => Ok(self.snapshot_meta()?.index),
        }
    }

    /// Entries still in the log, for deciding when to compact.
    pub fn log_len(&self) -> raft::Result<u64> {
        Ok(self.last_index_inner()? + 1 - self.first_index_inner()?)
    }

    /// After `swarm init --force-new-cluster`: this node becomes the only voter, keeping
    /// the applied state and the log up to what it applied.
    pub fn force_new_cluster(&self, id: u64) -> raft::Result<()> {
        let applied = self.machine.applied().map_err(store_err)?;
        // The other members are gone from Raft: forget their addresses too.
        let mut members = RawBatch::default();
        for (key, value) in self.machine.scan_raw(b"r/member/").map_err(store_err)? {
            let member: Option<super::Member> = serde_json::from_slice(&value).ok();
            if member.is_none_or(|m| m.raft_id != id) {
                members.remove(&key);
            }
        }
        self.machine
            .apply_raw(applied, members)
            .map_err(store_err)?;
        let term = raft::Storage::term(self, applied).unwrap_or(0);
        let cs = ConfState {
            voters: vec![id],
            ..Default::default()
        };
        let meta = SnapshotMetadata {
            index: applied,
            term,
            conf_state: Some(cs.clone()).into(),
            ..Default::default()
        };
        let mut batch = sled::Batch::default();
        for key in self.tree.scan_prefix("e/").keys() {
            batch.remove(key.map_err(store_err)?);
        }
        self.tree.apply_batch(batch).map_err(store_err)?;
        self.put("snap", &meta)?;
        self.put("cs", &cs)?;
        let mut hs = self.hard_state()?;
        hs.commit = applied;
        hs.term = hs.term.max(term);
        hs.vote = 0;
        self.set_hard_state(&hs)?;
        self.sync()
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let mut hs = self.hard_state()?;
        // After a crash, sled may have kept an apply whose commit index it lost: what was
        // applied was committed, and is in the log, so the commit index is at least that.
        let applied = self.machine.applied().map_err(store_err)?;
        if applied > hs.commit && applied <= self.last_index_inner()? {
            hs.commit = applied;
        }
        Ok(RaftState::new(hs, self.conf_state()?))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index_inner()? {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let max_size = max_size.into();
        let mut entries = Vec::new();
        let mut size = 0u64;
        for item in self.tree.range(entry_key(low)..entry_key(high)) {
            let (row, stored) = item.map_err(store_err)?;
            let entry = open_entry(self.machine.key(), &row, &stored)?;
            // Raft's size limit is on entries as sent, not as sealed here.
            size += u64::from(entry.compute_size());
            if !entries.is_empty() && max_size.is_some_and(|max| size > max) {
                break;
            }
            entries.push(entry);
        }
        if entries.len() as u64 != high - low && max_size.is_none() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let meta = self.snapshot_meta()?;
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < meta.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.tree.get(entry_key(idx)).map_err(store_err)? {
            Some(stored) => term_of(&stored),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.first_index_inner()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.last_index_inner()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let (applied, data) = self.machine.snapshot().map_err(store_err)?;
        if applied < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snapshot = Snapshot::default();
        snapshot.set_data(data.into());
        let meta = snapshot.mut_metadata();
        meta.index = applied;
        meta.term = self.term(applied)?;
        meta.set_conf_state(self.conf_state()?);
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn appends_truncate_conflicts_and_compaction_moves_the_first_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("sled");
        let machine = StateMachine::open(
            &db,
            std::sync::Arc::new(crate::seal::Key::generate().expect("key")),
        )
        .expect("machine");
        let log = LogStore::open(&db, machine.clone()).expect("log");
        log.bootstrap(7).expect("bootstrap");
        assert_eq!(
            log.initial_state().expect("state").conf_state.voters,
            vec![7]
        );
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .expect("append");
        log.append(&[entry(3, 2), entry(4, 2)]).expect("append");
        assert_eq!(log.last_index().expect("last"), 4);
        assert_eq!(log.term(3).expect("term"), 2);
        let all = log
            .entries(1, 5, None, GetEntriesContext::empty(false))
            .expect("entries");
        assert_eq!(
            all.iter().map(|e| e.term).collect::<Vec<_>>(),
            vec![1, 1, 2, 2]
        );

        machine.set_applied(3).expect("applied");
        log.compact(3).expect("compact");
        assert_eq!(log.first_index().expect("first"), 4);
        assert_eq!(log.term(3).expect("term of the compaction point"), 2);
        assert!(log
            .entries(2, 5, None, GetEntriesContext::empty(false))
            .is_err());
        let snap = log.snapshot(3, 0).expect("snapshot");
        assert_eq!(snap.get_metadata().index, 3);
        assert_eq!(snap.get_metadata().get_conf_state().voters, vec![7]);

        // A crash kept an apply but lost its commit index: the commit index catches up
        // with what was applied, never past the log.
        log.set_commit(2).expect("commit");
        machine.set_applied(4).expect("applied");
        assert_eq!(log.initial_state().expect("state").hard_state.commit, 4);
        machine.set_applied(9).expect("applied");
        assert_eq!(log.initial_state().expect("state").hard_state.commit, 2);
    }
}
