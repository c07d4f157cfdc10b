//! psnc-imgtool library.
