//! The psnc-cr checkpoint image format.
pub mod model;
