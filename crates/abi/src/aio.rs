//! Native AIO (`io_setup`): the ring an AIO context maps into its process, and the `iocb` that
//! `io_submit` reads.
//!
//! An `aio_context_t` is the user address of its ring (`/[aio] (deleted)` in
//! `/proc/PID/maps`). The ring starts with [`AioRingHeader`] (32 bytes), followed by `nr` slots
//! of [`IO_EVENT_SIZE`]-byte `struct io_event`. The kernel appends completions at `tail`; the
//! process (or `io_getevents`) consumes them at `head`. Every field has the same size in both
//! modes, so the ring and the `iocb` are laid out alike for x86_64 and i386 tasks.
//!
//! The size of a ring is not what `io_setup` was asked for: the kernel (fs/aio.c,
//! `ioctx_alloc`/`aio_setup_ring`) takes `max(nr_events, 4 * possible CPUs)`, doubles it, adds
//! 2, and rounds the ring up to whole pages, which it then fills with slots.
//! [`io_setup_nr_events`] gives back an `nr_events` that grows into the same ring.

use crate::bytes::u32_at;

/// `AIO_RING_MAGIC`, the ring header's `magic`.
pub const AIO_RING_MAGIC: u32 = 0xa10a_10a1;
/// `AIO_RING_COMPAT_FEATURES`: the only compat feature bit the kernel sets.
pub const AIO_RING_COMPAT_FEATURES: u32 = 1;
/// `AIO_RING_INCOMPAT_FEATURES`: none.
pub const AIO_RING_INCOMPAT_FEATURES: u32 = 0;
/// Size of `struct aio_ring` without its slots (its `header_length`).
pub const AIO_RING_HEADER_SIZE: u32 = 32;
/// Size of one `struct io_event` (data, obj, res, res2: four 64-bit words).
pub const IO_EVENT_SIZE: u32 = 32;
/// Size of `struct iocb`.
pub const IOCB_SIZE: usize = 64;
/// `IOCB_CMD_PREAD`.
pub const IOCB_CMD_PREAD: u16 = 0;
/// `IOCB_CMD_PWRITE`.
pub const IOCB_CMD_PWRITE: u16 = 1;

/// The header of an AIO ring (`struct aio_ring` of fs/aio.c, without its slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AioRingHeader {
    /// The kernel's index of the context in its process's table (not the context id).
    pub id: u32,
    /// Number of event slots.
    pub nr: u32,
    /// Next slot to consume.
    pub head: u32,
    /// Next slot the kernel fills.
    pub tail: u32,
    /// [`AIO_RING_MAGIC`].
    pub magic: u32,
    /// [`AIO_RING_COMPAT_FEATURES`].
    pub compat_features: u32,
    /// [`AIO_RING_INCOMPAT_FEATURES`].
    pub incompat_features: u32,
    /// [`AIO_RING_HEADER_SIZE`].
    pub header_length: u32,
}

impl AioRingHeader {
    /// The header from the first 32 bytes of a ring.
    pub fn from_bytes(b: &[u8; 32]) -> AioRingHeader {
        AioRingHeader {
            id: u32_at(b, 0),
            nr: u32_at(b, 4),
            head: u32_at(b, 8),
            tail: u32_at(b, 12),
            magic: u32_at(b, 16),
            compat_features: u32_at(b, 20),
            incompat_features: u32_at(b, 24),
            header_length: u32_at(b, 28),
        }
    }

    /// Why this is not the header of a ring of `len` bytes as this kernel lays one out, if it
    /// is not: the first field that differs, with its value and the expected one.
    pub fn check(&self, len: u64) -> Result<(), String> {
        let want_nr = slots_in(len);
        let fields = [
            ("magic", self.magic, AIO_RING_MAGIC),
            (
                "compat_features",
                self.compat_features,
                AIO_RING_COMPAT_FEATURES,
            ),
            (
                "incompat_features",
                self.incompat_features,
                AIO_RING_INCOMPAT_FEATURES,
            ),
            ("header_length", self.header_length, AIO_RING_HEADER_SIZE),
            ("nr", self.nr, want_nr),
        ];
        for (name, got, want) in fields {
            if got != want {
                return Err(format!("its {name} is {got:#x}, not {want:#x}"));
            }
        }
        for (name, v) in [("head", self.head), ("tail", self.tail)] {
            if v >= self.nr {
                return Err(format!("its {name} {v} is not below nr {}", self.nr));
            }
        }
        Ok(())
    }

    /// Completed events waiting in the ring (from `head` to `tail`, wrapping at `nr`).
    pub fn pending(&self) -> u32 {
        if self.tail >= self.head {
            self.tail - self.head
        } else {
            self.nr - self.head + self.tail
        }
    }
}

/// The number of event slots of a ring of `len` bytes (the kernel's `ring->nr`).
pub fn slots_in(len: u64) -> u32 {
    (len.saturating_sub(u64::from(AIO_RING_HEADER_SIZE)) / u64::from(IO_EVENT_SIZE)) as u32
}

/// The `nr_events` argument of `io_setup` that makes a ring of `nr` slots again, on a host
/// with at most `(nr - 2) / 8` possible CPUs: the kernel turns `n` into `2n + 2` slots before
/// rounding up to pages, so `(nr - 2) / 2` rounds up to the same number of pages.
pub fn io_setup_nr_events(nr: u32) -> u32 {
    nr.saturating_sub(2) / 2
}

/// The length of the ring `io_setup(nr_events)` maps on a kernel with `possible_cpus` possible
/// CPUs (fs/aio.c: `ioctx_alloc`, `aio_setup_ring`).
pub fn ring_len_for(nr_events: u32, possible_cpus: u32) -> u64 {
    let slots = u64::from(nr_events.max(possible_cpus.saturating_mul(4))) * 2 + 2;
    (u64::from(AIO_RING_HEADER_SIZE) + slots * u64::from(IO_EVENT_SIZE)).div_ceil(4096) * 4096
}

/// A `struct iocb` (the same 64 bytes in both modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Iocb {
    /// Returned in the event's `data`.
    pub data: u64,
    /// `IOCB_CMD_*`.
    pub opcode: u16,
    /// The fd.
    pub fildes: u32,
    /// The buffer address.
    pub buf: u64,
    /// Bytes to transfer.
    pub nbytes: u64,
    /// File offset.
    pub offset: i64,
}

impl Iocb {
    /// The bytes `io_submit` reads.
    pub fn to_bytes(&self) -> [u8; IOCB_SIZE] {
        let mut b = [0u8; IOCB_SIZE];
        b[0..8].copy_from_slice(&self.data.to_ne_bytes());
        // aio_key (8..12) and aio_rw_flags (12..16) stay 0.
        b[16..18].copy_from_slice(&self.opcode.to_ne_bytes());
        b[20..24].copy_from_slice(&self.fildes.to_ne_bytes());
        b[24..32].copy_from_slice(&self.buf.to_ne_bytes());
        b[32..40].copy_from_slice(&self.nbytes.to_ne_bytes());
        b[40..48].copy_from_slice(&self.offset.to_ne_bytes());
        // aio_reserved2, aio_flags and aio_resfd stay 0.
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::u64_at;

    fn ring(nr: u32, head: u32, tail: u32) -> AioRingHeader {
        AioRingHeader {
            id: 0,
            nr,
            head,
            tail,
            magic: AIO_RING_MAGIC,
            compat_features: 1,
            incompat_features: 0,
            header_length: 32,
        }
    }

    #[test]
    fn header_round_trip_and_checks() {
        let mut b = [0u8; 32];
        for (i, v) in [3u32, 127, 2, 5, AIO_RING_MAGIC, 1, 0, 32]
            .iter()
            .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        let h = AioRingHeader::from_bytes(&b);
        assert_eq!(
            h,
            AioRingHeader {
                id: 3,
                ..ring(127, 2, 5)
            }
        );
        assert_eq!(h.check(4096), Ok(()));
        assert_eq!(h.pending(), 3);
        assert_eq!(ring(127, 120, 4).pending(), 11);
        assert_eq!(h.check(8192), Err("its nr is 0x7f, not 0xff".to_string()));
        assert_eq!(
            ring(127, 130, 5).check(4096),
            Err("its head 130 is not below nr 127".to_string())
        );
        assert_eq!(
            AioRingHeader {
                magic: 0,
                ..ring(127, 0, 0)
            }
            .check(4096),
            Err("its magic is 0x0, not 0xa10a10a1".to_string())
        );
    }

    #[test]
    fn nr_events_grows_back_into_the_same_ring() {
        // Two possible CPUs: at least 8 requests.
        let ring_len = |n: u32| ring_len_for(n, 2);
        assert_eq!(ring_len(1), 4096);
        assert_eq!(ring_len(1000), 16 * 4096);
        // 16 CPUs make even io_setup(1) a 2-page ring (130 slots), 64 CPUs a 5-page one.
        assert_eq!(ring_len_for(1, 16), 2 * 4096);
        assert_eq!(ring_len_for(1, 64), 5 * 4096);
        for n in [1u32, 8, 100, 128, 1000, 4096] {
            let len = ring_len(n);
            let nr = slots_in(len);
            assert_eq!(ring_len(io_setup_nr_events(nr)), len, "io_setup({n})");
        }
    }

    #[test]
    fn iocb_layout() {
        let b = Iocb {
            data: 7,
            opcode: IOCB_CMD_PWRITE,
            fildes: 9,
            buf: 0x1000,
            nbytes: 1,
            offset: 4,
        }
        .to_bytes();
        assert_eq!(u64_at(&b, 0), 7);
        assert_eq!(b[16], 1);
        assert_eq!(u32_at(&b, 20), 9);
        assert_eq!(u64_at(&b, 24), 0x1000);
        assert_eq!(u64_at(&b, 32), 1);
        assert_eq!(u64_at(&b, 40), 4);
    }
}
