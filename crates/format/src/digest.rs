//! SHA-256 digests: whole sections, and chunked digests of big raw sections.
//!
//! A chunked section's digest is `SHA-256(d0 || d1 || ...)` where `di` is the SHA-256 of chunk
//! `i` (`1 << chunk_shift` bytes, the last one short). The chunks are independent, so a writer
//! hashes them on a second thread as well as its own while it keeps writing, and a verifier
//! hashes them on all cores.
//! The same chunk digests will serve incremental images and deduplication.

use std::sync::mpsc;
use std::thread;

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The section digest of a list of chunk digests.
pub fn digest_of_chunks(chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c);
    }
    h.finalize().into()
}

/// Chunk digests of `data`, computed on up to `available_parallelism` threads.
pub fn chunk_digests(data: &[u8], chunk_size: usize) -> Vec<[u8; 32]> {
    let n = data.len().div_ceil(chunk_size);
    let mut out = vec![[0u8; 32]; n];
    let threads = thread::available_parallelism().map_or(1, |n| n.get()).min(n.max(1));
    if threads <= 1 || n < 4 {
        for (d, c) in out.iter_mut().zip(data.chunks(chunk_size)) {
            *d = sha256(c);
        }
        return out;
    }
    let per = n.div_ceil(threads);
    thread::scope(|s| {
        for (outs, datas) in out.chunks_mut(per).zip(data.chunks(per * chunk_size)) {
            s.spawn(move || {
                for (d, c) in outs.iter_mut().zip(datas.chunks(chunk_size)) {
                    *d = sha256(c);
                }
            });
        }
    });
    out
}

/// Hashes a stream of bytes in fixed chunks, on a background thread and on the caller's.
///
/// `update` copies into the current chunk buffer. A full chunk goes to the hashing thread when it
/// has room; when it is still busy (hashing is slower than a tmpfs write), the caller hashes the
/// chunk itself instead of waiting, so the work spreads over both threads and neither idles.
/// Buffers come back from the hashing thread for reuse, so memory stays at a few chunks whatever
/// the stream length.
pub struct ChunkHasher {
    chunk_size: usize,
    buf: Vec<u8>,
    /// Index of the chunk being filled in `buf`.
    next: usize,
    to_worker: Option<mpsc::SyncSender<(usize, Vec<u8>)>>,
    spare: mpsc::Receiver<Vec<u8>>,
    worker: Option<thread::JoinHandle<Vec<Indexed>>>,
    /// Digests of the chunks the caller hashed itself.
    local: Vec<Indexed>,
}

/// A chunk digest with the chunk's index: the two threads finish chunks out of order.
type Indexed = (usize, [u8; 32]);

impl ChunkHasher {
    /// A hasher for chunks of `chunk_size` bytes.
    pub fn new(chunk_size: usize) -> Self {
        let (to_worker, from_writer) = mpsc::sync_channel::<(usize, Vec<u8>)>(2);
        let (to_spare, spare) = mpsc::sync_channel::<Vec<u8>>(4);
        let worker = thread::spawn(move || {
            let mut digests = Vec::new();
            for (index, mut chunk) in from_writer {
                digests.push((index, sha256(&chunk)));
                chunk.clear();
                // The writer may have finished and dropped the receiver; nothing to recycle then.
                let _ = to_spare.try_send(chunk);
            }
            digests
        });
        ChunkHasher {
            chunk_size,
            buf: Vec::with_capacity(chunk_size),
            next: 0,
            to_worker: Some(to_worker),
            spare,
            worker: Some(worker),
            local: Vec::new(),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (self.chunk_size - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == self.chunk_size {
                self.flush_chunk();
            }
        }
    }

    fn flush_chunk(&mut self) {
        let index = self.next;
        self.next += 1;
        let full = std::mem::take(&mut self.buf);
        let mut chunk = match &self.to_worker {
            Some(tx) => match tx.try_send((index, full)) {
                Ok(()) => {
                    self.buf = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(self.chunk_size));
                    return;
                }
                // Busy: hash it here rather than wait.
                Err(mpsc::TrySendError::Full((_, chunk))) => chunk,
                // The worker only exits when the channel closes, so this cannot happen while we
                // hold the sender; if it ever did, this thread hashes everything from now on.
                Err(mpsc::TrySendError::Disconnected((_, chunk))) => {
                    self.to_worker = None;
                    chunk
                }
            },
            None => full,
        };
        self.local.push((index, sha256(&chunk)));
        chunk.clear();
        self.buf = chunk;
    }

    /// Returns the digests of all chunks in order, the last one possibly short.
    pub fn finish(mut self) -> Vec<[u8; 32]> {
        if !self.buf.is_empty() {
            self.flush_chunk();
        }
        self.to_worker = None;
        let mut all = match self.worker.take().map(|w| w.join()) {
            Some(Ok(d)) => d,
            // A panic in sha256 is impossible short of memory corruption; re-raise it.
            Some(Err(p)) => std::panic::resume_unwind(p),
            None => Vec::new(),
        };
        all.append(&mut self.local);
        all.sort_unstable_by_key(|(i, _)| *i);
        debug_assert!(all.iter().enumerate().all(|(n, (i, _))| n == *i));
        all.into_iter().map(|(_, d)| d).collect()
    }
}

impl Drop for ChunkHasher {
    fn drop(&mut self) {
        self.to_worker = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_and_parallel_digests_agree() {
        let data: Vec<u8> = (0..(5 * 4096 + 77)).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = ChunkHasher::new(4096);
        for piece in data.chunks(1000) {
            h.update(piece);
        }
        let streamed = h.finish();
        assert_eq!(streamed.len(), 6);
        assert_eq!(streamed, chunk_digests(&data, 4096));
        assert_eq!(streamed[5], sha256(&data[5 * 4096..]));
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        assert!(ChunkHasher::new(4096).finish().is_empty());
        assert_eq!(digest_of_chunks(&[]), sha256(b""));
    }
}
