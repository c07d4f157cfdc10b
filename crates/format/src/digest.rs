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
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    chunk_digests_on(data, chunk_size, threads)
}

/// Chunk digests of `data`, computed on up to `threads` threads (the caller's included).
pub fn chunk_digests_on(data: &[u8], chunk_size: usize, threads: usize) -> Vec<[u8; 32]> {
    let n = data.len().div_ceil(chunk_size);
    let mut out = vec![[0u8; 32]; n];
    let threads = threads.min(n.max(1));
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
/// Two ways in: [`ChunkHasher::update`] copies into the current chunk buffer (for small or
/// scattered writes), [`ChunkHasher::update_owned`] takes a whole buffer and hashes its chunks
/// where they are (the bulk path: no copy but a partial chunk at either end). Either way a job
/// goes to the hashing thread when it has room; when it is still busy (hashing is about as slow
/// as a tmpfs write), the caller hashes one chunk itself and offers the rest again, so the work
/// spreads over both threads at chunk granularity and neither idles. Buffers come back from the
/// hashing thread for reuse ([`ChunkHasher::buffer`]), so memory stays at a few buffers whatever
/// the stream length.
pub struct ChunkHasher {
    chunk_size: usize,
    buf: Vec<u8>,
    /// Index of the chunk being filled in `buf` (every chunk before it is handed out).
    next: usize,
    to_worker: Option<mpsc::SyncSender<Job>>,
    spare_chunks: mpsc::Receiver<Vec<u8>>,
    spare_buffers: mpsc::Receiver<Vec<u8>>,
    worker: Option<thread::JoinHandle<Vec<Indexed>>>,
    /// Digests of the chunks the caller hashed itself.
    local: Vec<Indexed>,
    /// An owned buffer the caller hashed itself, for the next [`ChunkHasher::buffer`].
    kept: Option<Vec<u8>>,
}

/// A chunk digest with the chunk's index: the two threads finish chunks out of order.
type Indexed = (usize, [u8; 32]);

/// Whole chunks `data[start..end]` (the last possibly short only at the end of the stream),
/// the first of them being chunk `first` of the stream.
struct Job {
    first: usize,
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// Whether `data` is a caller's buffer (recycled through `spare_buffers`) or a chunk copy.
    owned: bool,
}

impl Job {
    fn hash_into(&self, chunk_size: usize, out: &mut Vec<Indexed>) {
        let body = &self.data[self.start..self.end];
        for (i, c) in body.chunks(chunk_size).enumerate() {
            out.push((self.first + i, sha256(c)));
        }
    }
}

/// Jobs queued for the hashing thread beyond the one it works on.
const QUEUED_JOBS: usize = 2;

impl ChunkHasher {
    /// A hasher for chunks of `chunk_size` bytes.
    pub fn new(chunk_size: usize) -> Self {
        let (to_worker, from_writer) = mpsc::sync_channel::<Job>(QUEUED_JOBS);
        let (to_spare_chunks, spare_chunks) = mpsc::sync_channel::<Vec<u8>>(4);
        let (to_spare_buffers, spare_buffers) = mpsc::sync_channel::<Vec<u8>>(QUEUED_JOBS + 2);
        let worker = thread::spawn(move || {
            let mut digests = Vec::new();
            for job in from_writer {
                job.hash_into(chunk_size, &mut digests);
                // The writer may have finished and dropped the receiver, or have enough spares:
                // the buffer is freed then.
                if job.owned {
                    let _ = to_spare_buffers.try_send(job.data);
                } else {
                    let mut chunk = job.data;
                    chunk.clear();
                    let _ = to_spare_chunks.try_send(chunk);
                }
            }
            digests
        });
        ChunkHasher {
            chunk_size,
            buf: Vec::with_capacity(chunk_size),
            next: 0,
            to_worker: Some(to_worker),
            spare_chunks,
            spare_buffers,
            worker: Some(worker),
            local: Vec::new(),
            kept: None,
        }
    }

    /// Feeds bytes (copied).
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

    /// Feeds a whole buffer without copying its whole chunks: they are hashed in place, on the
    /// hashing thread or this one. The buffer comes back through [`ChunkHasher::buffer`].
    pub fn update_owned(&mut self, data: Vec<u8>) {
        let mut start = 0;
        if !self.buf.is_empty() {
            // Complete the pending chunk from the buffer's head.
            start = (self.chunk_size - self.buf.len()).min(data.len());
            self.update(&data[..start]);
        }
        let whole = (data.len() - start) / self.chunk_size * self.chunk_size;
        let end = start + whole;
        // The tail, shorter than a chunk, starts the next pending chunk.
        self.buf.extend_from_slice(&data[end..]);
        if whole == 0 {
            return;
        }
        let first = self.next;
        self.next += whole / self.chunk_size;
        self.dispatch(Job {
            first,
            data,
            start,
            end,
            owned: true,
        });
    }

    /// A buffer of `len` bytes for [`ChunkHasher::update_owned`]: one handed back by the
    /// hashing thread when there is one (its contents are stale), else a new one.
    pub fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut b = match self.kept.take() {
            Some(b) => b,
            None => self.spare_buffers.try_recv().unwrap_or_default(),
        };
        // Shrinks without touching the bytes; grows (a new buffer) with zeros.
        b.resize(len, 0);
        b
    }

    fn flush_chunk(&mut self) {
        let index = self.next;
        self.next += 1;
        let full = std::mem::take(&mut self.buf);
        let len = full.len();
        self.dispatch(Job {
            first: index,
            data: full,
            start: 0,
            end: len,
            owned: false,
        });
        if self.buf.capacity() == 0 {
            self.buf = self
                .spare_chunks
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(self.chunk_size));
        }
    }

    /// Hands a job to the hashing thread; while it is busy, hashes the job's first chunk here
    /// and offers the rest again.
    fn dispatch(&mut self, mut job: Job) {
        while let Some(tx) = &self.to_worker {
            job = match tx.try_send(job) {
                Ok(()) => return,
                Err(mpsc::TrySendError::Full(job)) => job,
                // The worker only exits when the channel closes, so this cannot happen while we
                // hold the sender; if it ever did, this thread hashes everything from now on.
                Err(mpsc::TrySendError::Disconnected(job)) => {
                    self.to_worker = None;
                    job
                }
            };
            let step = self.chunk_size.min(job.end - job.start);
            self.local
                .push((job.first, sha256(&job.data[job.start..job.start + step])));
            job.first += 1;
            job.start += step;
            if job.start == job.end {
                break;
            }
        }
        if job.start < job.end {
            job.hash_into(self.chunk_size, &mut self.local);
        }
        // Hashed here: keep the buffer for reuse.
        if job.owned {
            self.kept = Some(job.data);
        } else if self.buf.capacity() == 0 {
            let mut chunk = job.data;
            chunk.clear();
            self.buf = chunk;
        }
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
    fn owned_and_copied_updates_agree() {
        let data: Vec<u8> = (0..(40 * 4096 + 333))
            .map(|i| (i * 13 % 241) as u8)
            .collect();
        // Aligned buffers, unaligned ones, buffers shorter than a chunk, copies in between; many
        // pieces so the hashing thread is busy at times and the caller hashes chunks itself.
        let cuts = [
            0,
            8192,
            8192 + 100,
            4 * 4096,
            4 * 4096 + 5,
            9 * 4096,
            9 * 4096 + 4096,
            20 * 4096 + 7,
        ];
        let mut h = ChunkHasher::new(4096);
        let mut pos = 0;
        let mut i = 0;
        while pos < data.len() {
            let len = (cuts[i % cuts.len()] + 1).min(data.len() - pos);
            let piece = &data[pos..pos + len];
            if i % 3 == 2 {
                h.update(piece);
            } else {
                let mut b = h.buffer(len);
                b.copy_from_slice(piece);
                h.update_owned(b);
            }
            pos += len;
            i += 1;
        }
        assert_eq!(h.finish(), chunk_digests(&data, 4096));
        for n in [0, 1, 4096, 3 * 4096, 3 * 4096 + 1] {
            let mut h = ChunkHasher::new(4096);
            let mut b = h.buffer(n);
            b.copy_from_slice(&data[..n]);
            h.update_owned(b);
            assert_eq!(
                h.finish(),
                chunk_digests(&data[..n], 4096),
                "one owned buffer of {n}"
            );
        }
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        assert!(ChunkHasher::new(4096).finish().is_empty());
        assert_eq!(digest_of_chunks(&[]), sha256(b""));
    }
}
