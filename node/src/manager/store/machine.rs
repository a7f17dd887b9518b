use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Action, Change, Error, Event, Kind, Object, Op, Proposal};
use crate::seal::Key;

const APPLIED: &[u8] = b"m/applied";
/// Bound on one snapshot, so that a hostile or broken one cannot exhaust memory.
pub const MAX_SNAPSHOT: usize = 64 << 20;

/// The store's tree in sled, where committed entries are applied, in order, on every
/// manager. Also holds Raft's membership (`r/` keys), so that one snapshot carries all
/// of a manager's applied state.
///
/// Every value is sealed at rest with the manager's own data encryption key (swarmkit's
/// raft DEK), its row's key authenticated with it so that rows cannot be swapped; only
/// the keys (kinds and random ids) and the applied index are in the clear.
#[derive(Clone)]
pub struct StateMachine {
    tree: sled::Tree,
    key: Arc<Key>,
    /// Applied transactions, to the store's watchers; the channel's bound is how far a
    /// watcher may fall behind before it must re-read.
    events: broadcast::Sender<Event>,
}

fn object_key(kind: Kind, id: &str) -> Vec<u8> {
    format!("o/{kind}/{id}").into_bytes()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotData {
    applied: u64,
    entries: Vec<(String, Value)>,
}

/// A raw row, its key and its value opened.
pub type RawRow = (Vec<u8>, Vec<u8>);

/// Raw writes outside the object tables (Raft's membership), sealed as they are applied.
#[derive(Default)]
pub struct RawBatch(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl RawBatch {
    pub fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        self.0.push((key.to_vec(), Some(value)));
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.0.push((key.to_vec(), None));
    }
}

impl StateMachine {
    /// The state in `db`, its rows sealed with `key`.
    pub fn open(db: &sled::Db, key: Arc<Key>) -> Result<Self, Error> {
        let (events, _) = broadcast::channel(1024);
        Ok(StateMachine {
            tree: db.open_tree("state")?,
            key,
            events,
        })
    }

    /// The key that seals rows at rest, for Raft's log beside them.
    pub fn key(&self) -> &Arc<Key> {
        &self.key
    }

    fn seal(&self, row: &[u8], plain: &[u8]) -> Result<Vec<u8>, Error> {
        self.key
            .seal_bytes(plain, row)
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    fn unseal(&self, row: &[u8], stored: &[u8]) -> Result<Vec<u8>, Error> {
        self.key.open_bytes(stored, row).map_err(|_| Error::Sealed {
            row: String::from_utf8_lossy(row).into_owned(),
        })
    }

    fn read_value(&self, row: &[u8], kind: Kind) -> Result<Option<Value>, Error> {
        match self.tree.get(row)? {
            Some(stored) => serde_json::from_slice(&self.unseal(row, &stored)?)
                .map(Some)
                .map_err(|source| Error::Corrupt { kind, source }),
            None => Ok(None),
        }
    }

    /// The index of the last entry applied.
    pub fn applied(&self) -> Result<u64, Error> {
        Ok(self
            .tree
            .get(APPLIED)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    pub fn watch(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn get<T: Object>(&self, id: &str) -> Result<Option<T>, Error> {
        let row = object_key(T::KIND, id);
        match self.tree.get(&row)? {
            Some(stored) => serde_json::from_slice(&self.unseal(&row, &stored)?)
                .map(Some)
                .map_err(|source| Error::Corrupt {
                    kind: T::KIND,
                    source,
                }),
            None => Ok(None),
        }
    }

    pub fn list<T: Object>(&self) -> Result<Vec<T>, Error> {
        let prefix = format!("o/{}/", T::KIND);
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (row, stored) = item?;
                serde_json::from_slice(&self.unseal(&row, &stored)?).map_err(|source| {
                    Error::Corrupt {
                        kind: T::KIND,
                        source,
                    }
                })
            })
            .collect()
    }

    /// A raw key outside the object tables (Raft's membership), opened.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.tree
            .get(key)?
            .map(|stored| self.unseal(key, &stored))
            .transpose()
    }

    pub fn scan_raw(&self, prefix: &[u8]) -> Result<Vec<RawRow>, Error> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (row, stored) = item?;
                Ok((row.to_vec(), self.unseal(&row, &stored)?))
            })
            .collect()
    }

    /// Applies one committed transaction at `index`. The outer error is the database
    /// failing; the inner one is the transaction refused (which changes nothing but the
    /// applied index, on every manager alike).
    pub fn apply(&self, index: u64, proposal: &Proposal) -> Result<Result<(), Error>, Error> {
        let mut batch = sled::Batch::default();
        let changes = match self.plan(index, proposal, &mut batch)? {
            Ok(changes) => changes,
            Err(refused) => {
                self.set_applied(index)?;
                return Ok(Err(refused));
            }
        };
        batch.insert(APPLIED, &index.to_be_bytes());
        self.tree.apply_batch(batch)?;
        // No receiver is not an error: nobody watches yet.
        let _ = self.events.send(Event {
            index,
            changes,
            reset: false,
        });
        Ok(Ok(()))
    }

    /// Checks every action against the state as the earlier ones in the transaction left
    /// it, and writes them into `batch`.
    fn plan(
        &self,
        index: u64,
        proposal: &Proposal,
        batch: &mut sled::Batch,
    ) -> Result<Result<Vec<Change>, Error>, Error> {
        let mut overlay: HashMap<Vec<u8>, Option<Value>> = HashMap::new();
        let mut changes = Vec::with_capacity(proposal.actions.len());
        for action in &proposal.actions {
            let (kind, id) = match action {
                Action::Create { kind, id, .. }
                | Action::Update { kind, id, .. }
                | Action::Delete { kind, id } => (*kind, id.as_str()),
            };
            let key = object_key(kind, id);
            let current = match overlay.get(&key) {
                Some(v) => v.clone(),
                None => self.read_value(&key, kind)?,
            };
            let id = id.to_string();
            let (op, value) = match (action, current) {
                (Action::Create { .. }, Some(_)) => return Ok(Err(Error::Exists { kind, id })),
                (Action::Create { value, .. }, None) => {
                    let mut value = value.clone();
                    set_meta(&mut value, index, Some(proposal.at), proposal.at);
                    (Op::Created, value)
                }
                (Action::Update { .. } | Action::Delete { .. }, None) => {
                    return Ok(Err(Error::NotFound { kind, id }))
                }
                (Action::Update { version, value, .. }, Some(old)) => {
                    let actual = old["meta"]["version"].as_u64().unwrap_or(0);
                    if actual != *version {
                        return Ok(Err(Error::OutOfSequence {
                            kind,
                            id,
                            expected: *version,
                            actual,
                        }));
                    }
                    let mut value = value.clone();
                    let created = old["meta"]["created_at"].as_u64();
                    set_meta(&mut value, index, created, proposal.at);
                    (Op::Updated, value)
                }
                (Action::Delete { .. }, Some(old)) => (Op::Deleted, old),
            };
            if op == Op::Deleted {
                batch.remove(key.clone());
                overlay.insert(key, None);
            } else {
                let plain = serde_json::to_vec(&value).map_err(Error::Codec)?;
                batch.insert(key.clone(), self.seal(&key, &plain)?);
                overlay.insert(key, Some(value.clone()));
            }
            changes.push(Change {
                kind,
                id,
                op,
                value,
            });
        }
        Ok(Ok(changes))
    }

    /// Records an entry that changes no object (an empty entry, a membership change
    /// written through [`StateMachine::apply_raw`]).
    pub fn set_applied(&self, index: u64) -> Result<(), Error> {
        self.tree.insert(APPLIED, &index.to_be_bytes())?;
        Ok(())
    }

    /// Writes raw keys together with the applied index, atomically.
    pub fn apply_raw(&self, index: u64, raw: RawBatch) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        for (row, value) in raw.0 {
            match value {
                Some(plain) => {
                    let sealed = self.seal(&row, &plain)?;
                    batch.insert(row, sealed);
                }
                None => batch.remove(row),
            }
        }
        batch.insert(APPLIED, &index.to_be_bytes());
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Everything applied, for a Raft snapshot.
    pub fn snapshot(&self) -> Result<(u64, Vec<u8>), Error> {
        let applied = self.applied()?;
        let mut entries = Vec::new();
        for item in self.tree.iter() {
            let (key, value) = item?;
            if key.as_ref() == APPLIED {
                continue;
            }
            let value =
                serde_json::from_slice(&self.unseal(&key, &value)?).map_err(Error::Codec)?;
            entries.push((String::from_utf8_lossy(&key).into_owned(), value));
        }
        let data = serde_json::to_vec(&SnapshotData { applied, entries }).map_err(Error::Codec)?;
        Ok((applied, data))
    }

    /// Replaces the whole state with a snapshot's, atomically. Its bytes come from a peer:
    /// checked for size and shape before anything is replaced.
    pub fn restore(&self, index: u64, data: &[u8]) -> Result<(), Error> {
        if data.len() > MAX_SNAPSHOT {
            return Err(Error::Unavailable(format!(
                "a snapshot of {} bytes is over the bound of {MAX_SNAPSHOT}",
                data.len()
            )));
        }
        let snapshot: SnapshotData = serde_json::from_slice(data).map_err(Error::Codec)?;
        let mut batch = sled::Batch::default();
        for key in self.tree.iter().keys() {
            batch.remove(key?);
        }
        for (key, value) in &snapshot.entries {
            if !(key.starts_with("o/") || key.starts_with("r/")) {
                return Err(Error::Unavailable(format!(
                    "a snapshot holds an unknown key {key:?}"
                )));
            }
            let plain = serde_json::to_vec(value).map_err(Error::Codec)?;
            batch.insert(key.as_bytes(), self.seal(key.as_bytes(), &plain)?);
        }
        batch.insert(APPLIED, &index.to_be_bytes());
        self.tree.apply_batch(batch)?;
        let _ = self.events.send(Event {
            index,
            changes: Vec::new(),
            reset: true,
        });
        Ok(())
    }
}

fn set_meta(value: &mut Value, version: u64, created_at: Option<u64>, updated_at: u64) {
    if let Value::Object(map) = value {
        let created = created_at.unwrap_or(updated_at);
        map.insert(
            "meta".into(),
            serde_json::json!({"version": version, "created_at": created, "updated_at": updated_at}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::store::testing::Thing;

    fn machine() -> (tempfile::TempDir, StateMachine) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path().join("db")).expect("sled");
        let key = Arc::new(Key::generate().expect("key"));
        (dir, StateMachine::open(&db, key).expect("machine"))
    }

    fn thing(id: &str, n: u32) -> Thing {
        Thing::new(id, n)
    }

    fn proposal(actions: Vec<Action>) -> Proposal {
        Proposal {
            id: 1,
            at: 100,
            actions,
        }
    }

    #[test]
    fn versions_follow_indexes_and_stale_updates_are_refused() {
        let (_dir, m) = machine();
        let mut events = m.watch();
        let create = Action::create(&thing("a", 1)).expect("action");
        m.apply(5, &proposal(vec![create.clone()]))
            .expect("db")
            .expect("applied");
        let a: Thing = m.get("a").expect("get").expect("present");
        assert_eq!(a.meta.version, 5);
        assert_eq!(a.meta.created_at, 100);
        assert_eq!(events.try_recv().expect("event").changes[0].op, Op::Created);

        let again = m.apply(6, &proposal(vec![create])).expect("db");
        assert!(matches!(again, Err(Error::Exists { .. })));
        assert_eq!(m.applied().expect("applied"), 6);

        let mut newer = a.clone();
        newer.n = 2;
        m.apply(7, &proposal(vec![Action::update(&newer).expect("a")]))
            .expect("db")
            .expect("applied");
        // `a` still has version 5: an update from it must not overwrite version 7.
        let mut stale = a;
        stale.n = 3;
        let refused = m
            .apply(8, &proposal(vec![Action::update(&stale).expect("a")]))
            .expect("db");
        assert!(matches!(
            refused,
            Err(Error::OutOfSequence {
                expected: 5,
                actual: 7,
                ..
            })
        ));
        assert_eq!(m.get::<Thing>("a").expect("get").expect("present").n, 2);
    }

    #[test]
    fn a_refused_transaction_changes_nothing() {
        let (_dir, m) = machine();
        let actions = vec![
            Action::create(&thing("b", 1)).expect("a"),
            Action::delete::<Thing>("missing"),
        ];
        assert!(m.apply(3, &proposal(actions)).expect("db").is_err());
        assert!(m.get::<Thing>("b").expect("get").is_none());
    }

    #[test]
    fn snapshots_restore_everything_and_refuse_garbage() {
        let (_dir, m) = machine();
        m.apply(
            2,
            &proposal(vec![Action::create(&thing("c", 9)).expect("a")]),
        )
        .expect("db")
        .expect("applied");
        let (index, data) = m.snapshot().expect("snapshot");
        let (_dir2, other) = machine();
        other
            .apply(
                1,
                &proposal(vec![Action::create(&thing("gone", 1)).expect("a")]),
            )
            .expect("db")
            .expect("applied");
        other.restore(index, &data).expect("restore");
        assert_eq!(
            other.list::<Thing>().expect("list"),
            m.list::<Thing>().expect("list")
        );
        assert_eq!(other.applied().expect("applied"), 2);
        assert!(other.restore(3, b"{not json").is_err());
        assert!(other
            .restore(3, br#"{"applied":3,"entries":[["m/evil",1]]}"#)
            .is_err());
        assert_eq!(other.list::<Thing>().expect("list").len(), 1);
    }
}
