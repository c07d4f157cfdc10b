//! psnc-capture library.
