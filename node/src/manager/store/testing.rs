//! A small object for tests of the store and of Raft.

use serde::{Deserialize, Serialize};

use super::{Kind, Meta, Object};

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

impl Object for Thing {
    const KIND: Kind = Kind::Config;
    fn id(&self) -> &str {
        &self.id
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }
}
