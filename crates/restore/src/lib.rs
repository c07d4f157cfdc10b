//! psnc-restore library.
