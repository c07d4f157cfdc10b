//! The encoding helpers every metadata section shares (FORMAT.md §6, §7): postcard in and out of
//! a section body, naming the section on failure, and the narrowing of a model `u64` into a
//! class-width word, naming the field that does not fit.

use serde::{Deserialize, Serialize};

use super::SectionKind;
use crate::error::{FormatError, Result};

/// Narrows field `$f` of `$m` into the class word `C::Word`, or fails naming `$at.$f`.
macro_rules! narrow {
    ($m:expr, $at:expr, $f:ident) => {
        <C::Word as $crate::class::Word>::narrow($m.$f, || format!("{}.{}", $at, stringify!($f)))?
    };
}
pub(super) use narrow;

/// Encodes one postcard section body, naming the section on failure.
pub(super) fn postcard_enc<T: Serialize>(
    kind: SectionKind,
    v: &T,
) -> Result<(SectionKind, Vec<u8>)> {
    postcard::to_stdvec(v)
        .map(|b| (kind, b))
        .map_err(|e| FormatError::Invalid(format!("cannot encode section {kind}: {e}")))
}

/// Decodes one postcard section body, naming the section on failure. The body must be consumed
/// exactly: trailing bytes mean the writer and reader disagree on the layout.
pub fn postcard_dec<'a, T: Deserialize<'a>>(
    kind: SectionKind,
    offset: u64,
    body: &'a [u8],
) -> Result<T> {
    let (v, rest) = postcard::take_from_bytes(body).map_err(|e| FormatError::Decode {
        kind: kind.name(),
        offset,
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(FormatError::Decode {
            kind: kind.name(),
            offset,
            detail: format!("{} trailing bytes after the value", rest.len()),
        });
    }
    Ok(v)
}
