//! The manager's components, named after swarmkit's (ca, and more to come).
pub mod ca;
