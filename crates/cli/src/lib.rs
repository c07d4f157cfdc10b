//! What the three binaries (`psnc-capture`, `psnc-restore`, `psnc-imgtool`) share, so that they
//! behave and document themselves the same way: for now the exit statuses ([`exit`]); later also
//! progress reporting and JSON output.
//!
//! The libraries map their own error enums to an [`Exit`] (one exhaustive match each, next to the
//! enum); the binaries only print the error and return its status.

#![forbid(unsafe_code)]

pub mod exit;

pub use exit::{parse_args, Exit};
