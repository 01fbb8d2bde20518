//! I/O backends behind one trait: DPDK ports (in `tutti-dpdk`) in production and the
//! in-memory backend here for unit tests and benchmarks. The poll loop is generic over
//! [`PacketIo`], so the same loop runs on a NIC queue and in a test.

use std::collections::VecDeque;

/// The most packets one rx or tx burst moves.
pub const BURST: usize = 32;

/// One packet buffer (a DPDK mbuf, or a heap buffer in the memory backend). The data is a
/// single contiguous segment; `set_len` grows or shrinks it within the buffer's room.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable in place.
    fn data_mut(&mut self) -> &mut [u8];
    /// How long the data may become without moving it.
    fn capacity(&self) -> usize;
    /// Set the data length; returns false (and changes nothing) beyond `capacity()`.
    fn set_len(&mut self, len: usize) -> bool;
}

/// One rx/tx queue pair plus the pool its packets come from.
pub trait PacketIo {
    type Buf: PacketBuf;
    /// Append up to `max` received packets to `out`; returns how many were appended.
    fn rx_burst(&mut self, out: &mut Vec<Self::Buf>, max: usize) -> usize;
    /// Send packets from the front of `pkts`; the sent ones are removed and the ones the
    /// queue had no room for stay, in order. Returns how many were sent.
    fn tx_burst(&mut self, pkts: &mut Vec<Self::Buf>) -> usize;
    /// A fresh empty buffer from the pool, or `None` when the pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
    /// A copy of `buf` to send elsewhere. Its first `split` bytes are its own (what
    /// `data_mut` of the copy covers at least); the rest is `buf`'s data, shared where
    /// the backend can (DPDK: a header mbuf chained to a reference-counted clone, no
    /// payload copy), so neither packet's bytes after `split` may be written afterwards.
    /// `None` when the pool is exhausted.
    fn duplicate(&mut self, buf: &Self::Buf, split: usize) -> Option<Self::Buf>;
}

/// The sending end of a ring that hands packets to another core (single producer).
pub trait RingTx<B>: Send {
    /// Enqueue `b`, or give it back when the ring is full.
    fn push(&mut self, b: B) -> Result<(), B>;
}

/// The receiving end of a ring that hands packets to another core (single consumer).
pub trait RingRx<B>: Send {
    /// Dequeue the oldest packet, if any.
    fn pop(&mut self) -> Option<B>;
}

impl<B: Send> RingTx<B> for rtrb::Producer<B> {
    fn push(&mut self, b: B) -> Result<(), B> {
        rtrb::Producer::push(self, b).map_err(|rtrb::PushError::Full(b)| b)
    }
}

impl<B: Send> RingRx<B> for rtrb::Consumer<B> {
    fn pop(&mut self) -> Option<B> {
        rtrb::Consumer::pop(self).ok()
    }
}

/// A heap-backed packet buffer for the in-memory backend.
#[derive(Clone, Debug)]
pub struct MemBuf {
    bytes: Box<[u8]>,
    len: usize,
}

impl MemBuf {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        MemBuf {
            bytes: vec![0; capacity].into_boxed_slice(),
            len: 0,
        }
    }

    /// A buffer holding a copy of `data` (room at least `data.len()`).
    pub fn from_slice(data: &[u8], capacity: usize) -> Self {
        let mut b = MemBuf::with_capacity(capacity.max(data.len()));
        b.bytes[..data.len()].copy_from_slice(data);
        b.len = data.len();
        b
    }
}

impl PacketBuf for MemBuf {
    fn data(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
    fn capacity(&self) -> usize {
        self.bytes.len()
    }
    fn set_len(&mut self, len: usize) -> bool {
        if len > self.bytes.len() {
            return false;
        }
        self.len = len;
        true
    }
}

/// An in-memory queue pair: tests push frames into `rx` and read what the loop sent
/// from `tx`. Buffers come from a bounded pool, so pool exhaustion is testable too, and
/// [`MemoryIo::recycle`] returns them so benchmarks run without allocating.
#[derive(Debug)]
pub struct MemoryIo {
    /// Frames waiting to be received, oldest first.
    pub rx: VecDeque<MemBuf>,
    /// Frames the loop sent, oldest first.
    pub tx: VecDeque<MemBuf>,
    /// At most this many frames fit in `tx`; a full queue refuses a burst's tail, as a NIC
    /// queue does.
    pub tx_capacity: usize,
    pool: Vec<MemBuf>,
    buf_size: usize,
}

impl MemoryIo {
    /// A queue pair with a pool of `pool_size` buffers of `buf_size` bytes.
    pub fn new(pool_size: usize, buf_size: usize) -> Self {
        MemoryIo {
            rx: VecDeque::with_capacity(pool_size),
            tx: VecDeque::with_capacity(pool_size),
            tx_capacity: pool_size,
            pool: (0..pool_size)
                .map(|_| MemBuf::with_capacity(buf_size))
                .collect(),
            buf_size,
        }
    }

    /// Queue a frame for reception, copying `frame` into a pool buffer. Returns false when
    /// the pool is exhausted or the frame is larger than a buffer.
    pub fn inject(&mut self, frame: &[u8]) -> bool {
        if frame.len() > self.buf_size {
            return false;
        }
        match self.pool.pop() {
            Some(mut b) => {
                b.bytes[..frame.len()].copy_from_slice(frame);
                b.len = frame.len();
                self.rx.push_back(b);
                true
            }
            None => false,
        }
    }

    /// Give a buffer back to the pool (what a NIC does after transmitting it).
    pub fn recycle(&mut self, mut buf: MemBuf) {
        buf.len = 0;
        self.pool.push(buf);
    }

    /// Buffers currently free in the pool.
    pub fn pool_free(&self) -> usize {
        self.pool.len()
    }

    /// Put fresh buffers in the pool until it has `free`: a dropped [`MemBuf`] does not
    /// find its way back as a dropped mbuf does, so benchmarks whose loop drops packets
    /// top the pool up between bursts (this allocates).
    pub fn replenish(&mut self, free: usize) {
        while self.pool.len() < free {
            self.pool.push(MemBuf::with_capacity(self.buf_size));
        }
    }
}

impl PacketIo for MemoryIo {
    type Buf = MemBuf;

    fn rx_burst(&mut self, out: &mut Vec<MemBuf>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }

    fn tx_burst(&mut self, pkts: &mut Vec<MemBuf>) -> usize {
        let room = self.tx_capacity.saturating_sub(self.tx.len());
        let n = room.min(pkts.len());
        self.tx.extend(pkts.drain(..n));
        n
    }

    fn alloc(&mut self) -> Option<MemBuf> {
        self.pool.pop()
    }

    fn duplicate(&mut self, buf: &MemBuf, _split: usize) -> Option<MemBuf> {
        let mut b = self.pool.pop()?;
        let data = buf.data();
        match b.bytes.get_mut(..data.len()) {
            Some(dst) => dst.copy_from_slice(data),
            None => {
                self.pool.push(b);
                return None;
            }
        }
        b.len = data.len();
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membuf_len_is_bounded_by_capacity() {
        let mut b = MemBuf::with_capacity(4);
        assert!(b.set_len(4));
        assert!(!b.set_len(5));
        assert_eq!(b.data().len(), 4);
        b.data_mut()[0] = 7;
        assert_eq!(MemBuf::from_slice(&[1, 2], 1).data(), &[1, 2]);
    }

    #[test]
    fn memory_io_bounds_pool_and_tx_queue() {
        let mut io = MemoryIo::new(2, 64);
        assert!(io.inject(&[1; 10]));
        assert!(io.inject(&[2; 10]));
        assert!(!io.inject(&[3; 10]), "pool of two is exhausted");
        assert!(!io.inject(&[0; 65]), "larger than a buffer");
        let mut v = Vec::new();
        assert_eq!(io.rx_burst(&mut v, 1), 1);
        assert_eq!(v[0].data(), &[1; 10]);
        io.tx_capacity = 1;
        v.push(MemBuf::from_slice(&[9], 8));
        assert_eq!(io.tx_burst(&mut v), 1);
        assert_eq!(v.len(), 1, "the frame that did not fit stays queued");
        assert!(io.alloc().is_none());
        io.recycle(v.pop().unwrap());
        assert_eq!(io.pool_free(), 1);
    }
}
