//! The stream operation semantics of ABI v1, implemented once and used by
//! both the host runtime and the native test harness.
//!
//! Bytes arriving in a direction first satisfy pending `PASS`/`DROP`
//! counts that ran past the buffer (so bodies never reach the filter), then
//! are buffered. The filter is called with everything buffered once it has
//! as many bytes as its last `MORE` asked for; its ops are applied in order.
//! A call that neither consumes bytes nor asks for more is a filter error.

use std::collections::VecDeque;

/// One operation returned by a stream filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Need at least this many more bytes (0 counts as 1).
    More(u64),
    /// Forward this many bytes; may exceed what is buffered.
    Pass(u64),
    /// Discard this many bytes; may exceed what is buffered.
    Drop(u64),
    /// Send bytes: in the current direction, or back to the sender (`reply`).
    Inject {
        /// Send back to the sender of the current data.
        reply: bool,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Close the connection.
    Error {
        /// Filter-defined code.
        code: i32,
        /// Why.
        reason: String,
    },
}

/// Receives the bytes the driver lets through.
pub trait Sink {
    /// Sends `data` towards the destination (`to_source == false`) or back
    /// towards the source.
    fn send(&mut self, to_source: bool, data: &[u8]);
}

/// Why a connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// The filter returned `ERROR`.
    Filter {
        /// The filter's code.
        code: i32,
        /// The filter's reason.
        reason: String,
    },
    /// The filter neither consumed bytes nor asked for more.
    NoProgress,
    /// The filter asked for more bytes than the buffer may hold.
    BufferLimit(usize),
    /// The call into the filter failed (trap, deadline, bad op).
    Call(String),
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverError::Filter { code, reason } => write!(f, "filter error {code}: {reason}"),
            DriverError::NoProgress => f.write_str("filter made no progress (no PASS, DROP or MORE)"),
            DriverError::BufferLimit(limit) => write!(f, "filter needs more than the {limit}-byte buffer"),
            DriverError::Call(reason) => write!(f, "filter call failed: {reason}"),
        }
    }
}

impl std::error::Error for DriverError {}

#[derive(Debug)]
enum Pending {
    Pass(u64),
    Drop(u64),
    Inject { reply: bool, data: Vec<u8> },
}

#[derive(Debug, Default)]
struct Half {
    buffer: Vec<u8>,
    pending: VecDeque<Pending>,
    /// Call the filter only once this many bytes are buffered.
    need: usize,
    ended: bool,
    end_delivered: bool,
}

/// Applies a filter's ops to one connection, both directions.
#[derive(Debug)]
pub struct Driver {
    halves: [Half; 2],
    max_buffer: usize,
}

impl Driver {
    /// A driver that buffers at most `max_buffer` bytes per direction.
    pub fn new(max_buffer: usize) -> Driver {
        Driver { halves: [Half::default(), Half::default()], max_buffer }
    }

    /// Bytes buffered in a direction, waiting for the filter.
    pub fn buffered(&self, reply: bool) -> usize {
        self.halves[reply as usize].buffer.len()
    }

    /// True when nothing is buffered or pending in a direction, so a
    /// half-close can be forwarded.
    pub fn is_drained(&self, reply: bool) -> bool {
        let half = &self.halves[reply as usize];
        half.buffer.is_empty() && half.pending.iter().all(|p| !matches!(p, Pending::Pass(_)))
    }

    /// Feeds bytes that arrived in one direction (`reply`: from the
    /// destination). `filter(reply, end_stream, buffered, ops)` fills `ops`.
    pub fn data<F, S>(
        &mut self,
        reply: bool,
        data: &[u8],
        end_stream: bool,
        filter: &mut F,
        sink: &mut S,
    ) -> Result<(), DriverError>
    where
        F: FnMut(bool, bool, &[u8], &mut Vec<Op>) -> Result<(), DriverError>,
        S: Sink,
    {
        let half = &mut self.halves[reply as usize];
        let rest = drain_pending(half, reply, data, sink);
        half.buffer.extend_from_slice(rest);
        half.ended |= end_stream;
        let mut ops = Vec::new();
        loop {
            let buffered = half.buffer.len();
            let deliver_end = half.ended && !half.end_delivered;
            if !half.pending.is_empty()
                || (buffered == 0 && !deliver_end)
                || (buffered < half.need && !half.ended)
            {
                break;
            }
            ops.clear();
            filter(reply, half.ended, &half.buffer, &mut ops)?;
            if half.ended {
                half.end_delivered = true;
            }
            let (consumed, more) = apply(half, reply, &ops, sink)?;
            half.buffer.drain(..consumed);
            let remaining = half.buffer.len();
            match more {
                Some(n) => {
                    half.need = remaining.saturating_add(n.max(1).min(usize::MAX as u64) as usize);
                    if half.need > self.max_buffer {
                        return Err(DriverError::BufferLimit(self.max_buffer));
                    }
                    break;
                }
                None if remaining > 0 && consumed == 0 && half.pending.is_empty() => {
                    return Err(DriverError::NoProgress);
                }
                None => half.need = 0,
            }
            if remaining == 0 {
                break;
            }
        }
        if half.buffer.len() > self.max_buffer {
            return Err(DriverError::BufferLimit(self.max_buffer));
        }
        Ok(())
    }
}

/// Lets pending PASS/DROP counts take what they are owed from new data.
fn drain_pending<'d, S: Sink>(half: &mut Half, reply: bool, mut data: &'d [u8], sink: &mut S) -> &'d [u8] {
    while let Some(front) = half.pending.front_mut() {
        match front {
            Pending::Pass(n) | Pending::Drop(n) => {
                if data.is_empty() {
                    break;
                }
                let take = (*n).min(data.len() as u64) as usize;
                if matches!(front, Pending::Pass(_)) {
                    sink.send(reply, &data[..take]);
                }
                data = &data[take..];
                let (Pending::Pass(n) | Pending::Drop(n)) = front else { unreachable!() };
                *n -= take as u64;
                if *n == 0 {
                    half.pending.pop_front();
                }
            }
            Pending::Inject { reply: to_source, data: bytes } => {
                sink.send(reply ^ *to_source, bytes);
                half.pending.pop_front();
            }
        }
    }
    data
}

/// Applies one call's ops; returns the bytes consumed from the buffer and
/// the last MORE request.
fn apply<S: Sink>(
    half: &mut Half,
    reply: bool,
    ops: &[Op],
    sink: &mut S,
) -> Result<(usize, Option<u64>), DriverError> {
    let mut consumed = 0usize;
    let mut more = None;
    for op in ops {
        match op {
            Op::Pass(n) | Op::Drop(n) => {
                let available = (half.buffer.len() - consumed) as u64;
                let take = if half.pending.is_empty() { (*n).min(available) as usize } else { 0 };
                if matches!(op, Op::Pass(_)) && take > 0 {
                    sink.send(reply, &half.buffer[consumed..consumed + take]);
                }
                consumed += take;
                let left = *n - take as u64;
                if left > 0 {
                    half.pending.push_back(match op {
                        Op::Pass(_) => Pending::Pass(left),
                        _ => Pending::Drop(left),
                    });
                }
            }
            Op::Inject { reply: to_source, data } => {
                if half.pending.is_empty() {
                    sink.send(reply ^ *to_source, data);
                } else {
                    half.pending.push_back(Pending::Inject { reply: *to_source, data: data.clone() });
                }
            }
            Op::More(n) => more = Some(*n),
            Op::Error { code, reason } => {
                return Err(DriverError::Filter { code: *code, reason: reason.clone() });
            }
        }
    }
    Ok((consumed, more))
}

#[cfg(test)]
mod tests;
