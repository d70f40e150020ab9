//! A flow's filter sessions, one per stage of its route, run as one.
//!
//! Requests pass the stages in order and replies in reverse; what a stage
//! sends back to its sender (a 403, a DNS refusal) travels back through the
//! reply side of the stages before it, so each stage sees the exchange as a
//! proxy of its own would. Each stage reports its own flows.

use std::rc::Rc;

use porin_sdk::ConnectionMeta;
use porin_sdk::driver::{DriverError, Sink};

use super::Route;
use super::worker::{FlowReporter, WorkerContext};
use crate::filter::{DatagramSession, DatagramVerdict, FilterError, StreamSession, WorkerFilters};
use crate::flow::Verdict;

/// One stage's session, and the reporter of its flows.
struct Link<S> {
    session: S,
    reporter: FlowReporter,
}

/// Opens a session for every stage of `route`; when one cannot open (its
/// rule set is unavailable, its module failed), it is reported dropped and
/// the flow refused. A session that failed open says so right away.
fn open<S>(
    ctx: &Rc<WorkerContext>,
    route: &Route,
    tcp: bool,
    open_session: impl Fn(&mut WorkerFilters, &str, &ConnectionMeta) -> Result<S, FilterError>,
    take_records: fn(&mut S) -> Vec<Vec<u8>>,
) -> Option<Vec<Link<S>>> {
    route
        .stages
        .iter()
        .map(|stage| {
            let reporter = FlowReporter::new(ctx.clone(), route, stage, tcp);
            let opened = open_session(&mut ctx.filters.borrow_mut(), &stage.filter, &route.meta(stage));
            match opened {
                Ok(mut session) => {
                    reporter.records(take_records(&mut session));
                    Some(Link { session, reporter })
                }
                Err(err) => {
                    reporter.connection(Verdict::Dropped, Some(err.to_string()));
                    None
                }
            }
        })
        .collect()
}

/// A connection-level event, reported by every stage.
fn report<S>(links: &[Link<S>], verdict: Verdict, reason: Option<String>) {
    for link in links {
        link.reporter.connection(verdict, reason.clone());
    }
}

/// What leaves a stream chain in one call, per side.
#[derive(Default)]
pub(super) struct Outputs {
    pub(super) to_upstream: Vec<u8>,
    pub(super) to_client: Vec<u8>,
}

/// Bytes a stage sent towards a neighbour, not yet fed to it.
#[derive(Default)]
struct Inbox {
    data: Vec<u8>,
    /// The sending stage's side ended after these bytes.
    end: bool,
}

/// Where one stage's output goes: the next stage's request side or the
/// previous stage's reply side, or out of the chain at either end.
struct Onward<'a> {
    upstream: &'a mut Vec<u8>,
    client: &'a mut Vec<u8>,
}

impl Sink for Onward<'_> {
    fn send(&mut self, to_source: bool, data: &[u8]) {
        let target = if to_source { &mut *self.client } else { &mut *self.upstream };
        target.extend_from_slice(data);
    }
}

/// The stream sessions of one TCP connection, with the shape of one
/// [`StreamSession`].
pub(super) struct StreamChain {
    links: Vec<Link<StreamSession>>,
    /// Per stage: bytes for its request side, and for its reply side.
    inboxes: Vec<[Inbox; 2]>,
}

impl StreamChain {
    pub(super) fn open(ctx: &Rc<WorkerContext>, route: &Route) -> Option<StreamChain> {
        let links = open(ctx, route, true, WorkerFilters::open_stream, StreamSession::take_records)?;
        let inboxes = links.iter().map(|_| Default::default()).collect();
        Some(StreamChain { links, inboxes })
    }

    pub(super) fn connection(&self, verdict: Verdict, reason: Option<String>) {
        report(&self.links, verdict, reason);
    }

    /// Feeds bytes from the client (`reply == false`) or the upstream. An
    /// error (the first stage's to fail) means the connection must be
    /// closed; what the stages sent before it is in `out` all the same.
    pub(super) fn data(
        &mut self,
        reply: bool,
        data: &[u8],
        end: bool,
        out: &mut Outputs,
    ) -> Result<(), DriverError> {
        let entry = if reply { self.links.len() - 1 } else { 0 };
        let fed = self.feed(entry, reply, data, end, out);
        let forwarded = self.forward(out);
        fed.and(forwarded)
    }

    /// The upstream could not be reached: the last stage answers (HTTP:
    /// 503) and its answer goes back through the earlier stages.
    pub(super) fn upstream_failed(&mut self, out: &mut Outputs) {
        let last = self.links.len() - 1;
        let (link, mut onward) = self.link(last, out);
        link.session.upstream_failed(&mut onward);
        link.reporter.records(link.session.take_records());
        // The connection closes either way; stage errors are in their records.
        self.forward(out).ok();
    }

    /// Bytes the stages wait on to decide, in one direction.
    pub(super) fn buffered(&self, reply: bool) -> usize {
        self.links.iter().map(|link| link.session.buffered(reply)).sum()
    }

    /// Stage `index` and where its output goes. A single stage writes
    /// straight into `out`, as if there were no chain.
    fn link<'a>(
        &'a mut self,
        index: usize,
        out: &'a mut Outputs,
    ) -> (&'a mut Link<StreamSession>, Onward<'a>) {
        let (before, after) = self.inboxes.split_at_mut(index);
        let onward = Onward {
            upstream: after.get_mut(1).map_or(&mut out.to_upstream, |next| &mut next[0].data),
            client: before.last_mut().map_or(&mut out.to_client, |previous| &mut previous[1].data),
        };
        (&mut self.links[index], onward)
    }

    fn feed(
        &mut self,
        index: usize,
        reply: bool,
        data: &[u8],
        end: bool,
        out: &mut Outputs,
    ) -> Result<(), DriverError> {
        let (link, mut onward) = self.link(index, out);
        let result = link.session.data(reply, data, end, &mut onward);
        link.reporter.records(link.session.take_records());
        if end {
            // The side ends at the next stage too, after what this one passed.
            let next = if reply { index.checked_sub(1) } else { Some(index + 1) };
            if let Some(inbox) = next.and_then(|next| self.inboxes.get_mut(next)) {
                inbox[reply as usize].end = true;
            }
        }
        result
    }

    /// Feeds the stages what their neighbours sent them until everything
    /// has left the chain. Filters that keep answering each other (one
    /// injects whenever the other replies) are stopped after a bounded
    /// number of hand-overs, so they cannot hold the worker forever.
    fn forward(&mut self, out: &mut Outputs) -> Result<(), DriverError> {
        let mut result = Ok(());
        let mut budget = MAX_HANDOVERS * self.links.len();
        while let Some((index, side)) = self.next_inbox() {
            if budget == 0 {
                return Err(DriverError::Call("filters of the chain keep injecting into each other".into()));
            }
            budget -= 1;
            let Inbox { data, end } = std::mem::take(&mut self.inboxes[index][side]);
            let fed = self.feed(index, side == 1, &data, end, out);
            result = result.and(fed);
        }
        result
    }

    /// The first inbox with something to feed: (stage, side).
    fn next_inbox(&self) -> Option<(usize, usize)> {
        self.inboxes.iter().enumerate().find_map(|(index, sides)| {
            sides.iter().position(|inbox| !inbox.data.is_empty() || inbox.end).map(|side| (index, side))
        })
    }
}

/// Hand-overs between stages allowed per stage for one input chunk.
const MAX_HANDOVERS: usize = 64;

/// The datagram sessions of one UDP flow.
pub(super) struct DatagramChain {
    links: Vec<Link<DatagramSession>>,
}

impl DatagramChain {
    pub(super) fn open(ctx: &Rc<WorkerContext>, route: &Route) -> Option<DatagramChain> {
        Some(DatagramChain {
            links: open(ctx, route, false, WorkerFilters::open_datagram, DatagramSession::take_records)?,
        })
    }

    pub(super) fn connection(&self, verdict: Verdict, reason: Option<String>) {
        report(&self.links, verdict, reason);
    }

    /// Decides a datagram from the client: `Pass` sends it upstream,
    /// `Reply` sends the answer of a stage that the stages before it passed.
    pub(super) fn request(&mut self, data: &[u8]) -> DatagramVerdict {
        for index in 0..self.links.len() {
            match self.decide(index, false, data) {
                DatagramVerdict::Pass => {}
                DatagramVerdict::Drop => return DatagramVerdict::Drop,
                DatagramVerdict::Reply(answer) => {
                    // The answer goes to the client through the stages before this one.
                    let passed = self.pass_back(index, &answer);
                    return if passed { DatagramVerdict::Reply(answer) } else { DatagramVerdict::Drop };
                }
            }
        }
        DatagramVerdict::Pass
    }

    /// Decides a datagram from the upstream: true when every stage passes it
    /// on to the client.
    pub(super) fn reply(&mut self, data: &[u8]) -> bool {
        self.pass_back(self.links.len(), data)
    }

    /// True when the reply sides of the stages before `index` all pass `data`.
    fn pass_back(&mut self, index: usize, data: &[u8]) -> bool {
        (0..index).rev().all(|stage| self.decide(stage, true, data) == DatagramVerdict::Pass)
    }

    fn decide(&mut self, index: usize, reply: bool, data: &[u8]) -> DatagramVerdict {
        let link = &mut self.links[index];
        let verdict = link.session.datagram(reply, data);
        link.reporter.records(link.session.take_records());
        verdict
    }
}
