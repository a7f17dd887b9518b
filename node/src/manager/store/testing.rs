//! A small object for tests of the store and of Raft.

use serde::{Deserialize, Serialize};

use super::{object, Kind, Meta};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Thing {
    pub id: String,
    pub meta: Meta,
    pub n: u32,
}

impl Thing {
    pub fn new(id: &str, n: u32) -> Self {
        Thing {
            id: id.into(),
            meta: Meta::default(),
            n,
        }
    }
}

object!(Thing, Kind::Config);
