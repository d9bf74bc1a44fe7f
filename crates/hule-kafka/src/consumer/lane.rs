//! The fetch loop's side of one partition: its worker's queue, bounded by records and by bytes, and the records
//! held beside it while it is full.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hule_consumer::Delivery;
use tokio::sync::mpsc;

use super::rebalance::PartState;

/// One partition's queue and the records held behind it.
pub(super) struct Lane {
    pub st: Arc<PartState>,
    tx: mpsc::Sender<Delivery>,
    /// The most bytes queued for the worker (one record more when the queue is empty).
    queue_bytes: usize,
    /// The offset after the last record accepted.
    next: i64,
    /// Received while the queue was full, in offset order.
    held: VecDeque<Delivery>,
    /// The fetch loop paused this partition (over the held budget).
    pub paused: bool,
    /// Bytes of `held`.
    held_bytes: usize,
}

/// What became of a record offered to the queue.
enum Queued {
    Yes,
    /// No room (records or bytes): the record, to hold.
    Full(Delivery),
    /// The worker has ended (revoked, stopping, or failed fatally): the record stays uncommitted.
    Ended,
}

/// What a record costs against the byte bounds: payload, key and 256 bytes of overhead.
pub(super) fn held_size(d: &Delivery) -> usize {
    d.payload.as_ref().map_or(0, Vec::len) + d.key.as_ref().map_or(0, Vec::len) + 256
}

impl Lane {
    pub fn new(st: Arc<PartState>, tx: mpsc::Sender<Delivery>, queue_bytes: usize) -> Self {
        Lane {
            st,
            tx,
            queue_bytes,
            next: -1,
            held: VecDeque::new(),
            paused: false,
            held_bytes: 0,
        }
    }

    /// Bytes of the records held beside the queue.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Whether records are held beside the queue.
    pub fn holds(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether the lane still feeds a running worker of a partition this consumer owns.
    pub fn live(&self) -> bool {
        !self.st.revoked.load(Ordering::SeqCst) && !self.tx.is_closed()
    }

    /// Queues `d` for the worker if both bounds allow, or gives it back.
    fn try_queue(&self, d: Delivery) -> Queued {
        let size = held_size(&d);
        let queued = self.st.queued_bytes.load(Ordering::SeqCst);
        if queued > 0 && queued + size > self.queue_bytes {
            return Queued::Full(d);
        }
        // Counted before the send, so the worker never subtracts what was not added.
        self.st.queued_bytes.fetch_add(size, Ordering::SeqCst);
        match self.tx.try_send(d) {
            Ok(()) => Queued::Yes,
            Err(e) => {
                self.st.queued_bytes.fetch_sub(size, Ordering::SeqCst);
                match e {
                    mpsc::error::TrySendError::Full(d) => Queued::Full(d),
                    mpsc::error::TrySendError::Closed(_) => Queued::Ended,
                }
            }
        }
    }

    /// Accepts a record in offset order, into the queue or held behind it; returns the bytes newly held.
    pub fn offer(&mut self, delivery: Delivery) -> usize {
        if delivery.offset < self.next {
            // Before a record already accepted (librdkafka refetching from its position after a resume): none is
            // queued twice.
            return 0;
        }
        self.next = delivery.offset + 1;
        let delivery = if self.held.is_empty() {
            match self.try_queue(delivery) {
                Queued::Yes | Queued::Ended => return 0,
                Queued::Full(d) => d,
            }
        } else {
            delivery
        };
        let size = held_size(&delivery);
        self.held.push_back(delivery);
        self.held_bytes += size;
        self.st.holding.store(true, Ordering::SeqCst);
        size
    }

    /// Moves held records into the queue as far as it has room; returns the bytes no longer held.
    fn refill_inner(&mut self) -> usize {
        let mut freed = 0;
        if !self.live() {
            // Revoked or ended: the held records go back uncommitted with the partition.
            freed = self.held.iter().map(held_size).sum();
            self.held.clear();
        }
        while let Some(d) = self.held.pop_front() {
            let size = held_size(&d);
            match self.try_queue(d) {
                Queued::Yes => freed += size,
                Queued::Full(d) => {
                    self.held.push_front(d);
                    return freed;
                }
                Queued::Ended => {
                    freed += size + self.held.iter().map(held_size).sum::<usize>();
                    self.held.clear();
                }
            }
        }
        self.st.holding.store(false, Ordering::SeqCst);
        freed
    }

    /// [`Lane::refill_inner`], keeping the lane's own count of held bytes.
    pub fn refill(&mut self) -> usize {
        let freed = self.refill_inner();
        self.held_bytes -= freed.min(self.held_bytes);
        freed
    }
}
