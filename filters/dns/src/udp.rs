//! DNS over UDP: one message per datagram.

use porin_sdk::{ConnectionMeta, Datagram, DatagramFilter, Verdict};

use crate::rules::DnsRules;
use crate::session::{Answer, Decision, Session};

/// The datagram filter: one value per flow.
#[derive(Debug)]
pub struct DnsUdp {
    session: Session,
}

impl DatagramFilter for DnsUdp {
    type Rules = DnsRules;

    fn new(_meta: &ConnectionMeta) -> Self {
        DnsUdp { session: Session::default() }
    }

    fn on_datagram(&mut self, flow: &mut Datagram<'_, DnsRules>, reply: bool, data: &[u8]) -> Verdict {
        if reply {
            let (answer, record) = self.session.response(data);
            if let Some(record) = record {
                flow.record(record);
            }
            match answer {
                Answer::Forward => Verdict::Pass,
                Answer::Unmatched | Answer::Malformed(_) => Verdict::Drop,
            }
        } else {
            let (decision, record) = self.session.query(flow.rules(), data);
            flow.record(record);
            match decision {
                Decision::Forward => Verdict::Pass,
                Decision::Deny(answer) => Verdict::Reply(answer),
                Decision::Malformed(_) => Verdict::Drop,
            }
        }
    }
}
