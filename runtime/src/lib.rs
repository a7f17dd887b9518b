//! covey-runtime: OCI containers run in-process through youki's libcontainer.
//!
//! Not built yet: it is the next issue (the runtime). This crate exists so that the
//! workspace has its final shape; it exports nothing until it can run a container.
