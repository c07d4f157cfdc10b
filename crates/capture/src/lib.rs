//! psnc-capture library.
pub mod error;
pub mod files;
pub mod host;
pub mod memory;
pub mod procfs;
