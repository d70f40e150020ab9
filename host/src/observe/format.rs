//! How `porin observe` prints flows: `compact` (Hubble's one line per
//! flow), `table`, or `json` (the API's lines as they are).

use serde::Deserialize;

use crate::flow::{Flow, FlowEndpoint, FlowType, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Compact,
    Json,
    Table,
}

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Palette(bool);

impl Palette {
    pub fn new(enabled: bool) -> Palette {
        Palette(enabled)
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.0 { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn verdict(self, verdict: Verdict) -> String {
        let code = match verdict {
            Verdict::Forwarded => "32",
            Verdict::Dropped | Verdict::Error => "31",
            Verdict::Redirected => "33",
        };
        self.paint(code, verdict.as_str())
    }
}

/// One line of `/v1/flows`.
#[derive(Debug, Deserialize)]
pub struct Line {
    pub flow: Option<Flow>,
    pub lost_events: Option<LostEvents>,
}

#[derive(Debug, Deserialize)]
pub struct LostEvents {
    #[serde(default)]
    pub source: String,
    pub num_events_lost: u64,
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `Nov 29 12:01:02.123` (UTC).
fn time(flow: &Flow) -> String {
    let ((_, month, day), (hour, minute, second), nanos) = flow.time.civil();
    format!(
        "{} {day:2} {hour:02}:{minute:02}:{second:02}.{:03}",
        MONTHS[month as usize - 1],
        nanos / 1_000_000
    )
}

/// `backend/api:80 (ID:257)`, `198.51.100.10:80 (world)`.
fn endpoint(
    endpoint: &FlowEndpoint,
    address: std::net::IpAddr,
    port: Option<u16>,
    palette: Palette,
) -> String {
    let name = endpoint.pod().unwrap_or_else(|| address.to_string());
    let name = match port {
        Some(port) => format!("{name}:{port}"),
        None => name,
    };
    let reserved = endpoint.info.labels.iter().find_map(|l| l.strip_prefix("reserved:"));
    let identity = match reserved {
        Some(entity) if endpoint.info.pod_name.is_empty() => format!("({entity})"),
        _ => format!("(ID:{})", endpoint.identity),
    };
    format!("{} {identity}", palette.paint("36", &name))
}

/// Hubble's event type words: `http-request`, `to-proxy`, `policy-verdict:L3-L4 EGRESS`,
/// `Policy denied`.
fn event(flow: &Flow) -> String {
    if let Some(l7) = &flow.l7 {
        let l7 = l7.value();
        let protocol = l7
            .as_object()
            .and_then(|o| o.iter().find(|(_, v)| v.is_object()).map(|(k, _)| k.clone()))
            .unwrap_or_else(|| "l7".to_string());
        let kind = if l7["type"] == "RESPONSE" { "response" } else { "request" };
        return format!("{protocol}-{kind}");
    }
    let direction = match flow.traffic_direction {
        crate::flow::TrafficDirection::Ingress => "INGRESS",
        crate::flow::TrafficDirection::Egress => "EGRESS",
    };
    match (flow.flow_type(), flow.verdict, flow.drop_reason_desc.as_deref()) {
        (FlowType::L7, _, _) => "proxy".to_string(),
        (_, Verdict::Redirected, _) => "to-proxy".to_string(),
        (_, _, Some(_)) if flow.policy_revoked => format!("policy-revoked {direction}"),
        (_, Verdict::Dropped | Verdict::Error, Some(reason)) => {
            let words = reason.replace('_', " ").to_lowercase();
            let mut chars = words.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
        }
        _ => format!("policy-verdict:L3-L4 {direction}"),
    }
}

fn sides(flow: &Flow, palette: Palette) -> (String, String) {
    let ports = flow.l4.ports();
    (
        endpoint(&flow.source, flow.ip.source, ports.map(|p| p.source_port), palette),
        endpoint(&flow.destination, flow.ip.destination, ports.map(|p| p.destination_port), palette),
    )
}

/// `Nov 29 12:01:02.123: frontend/web:43210 (ID:256) -> backend/api:80
/// (ID:257) http-request FORWARDED (HTTP/1.1 GET http://api/)`
pub fn compact(flow: &Flow, palette: Palette) -> String {
    let (source, destination) = sides(flow, palette);
    let arrow = if flow.is_reply { "<-" } else { "->" };
    let (source, destination) = if flow.is_reply { (destination, source) } else { (source, destination) };
    format!(
        "{}: {source} {arrow} {destination} {} {} ({})",
        time(flow),
        event(flow),
        palette.verdict(flow.verdict),
        flow.summary()
    )
}

const TABLE_WIDTHS: [usize; 5] = [19, 40, 40, 28, 10];

pub fn table_header() -> String {
    table_row(["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"].map(str::to_string))
}

pub fn table(flow: &Flow, palette: Palette) -> String {
    let (source, destination) = sides(flow, Palette(false));
    let verdict = flow.verdict.as_str().to_string();
    let row = table_row([time(flow), source, destination, event(flow), verdict, flow.summary()]);
    // Colour after padding, so escape codes do not upset the widths.
    row.replacen(flow.verdict.as_str(), &palette.verdict(flow.verdict), 1)
}

fn table_row(cells: [String; 6]) -> String {
    let mut row = String::new();
    for (cell, width) in cells.iter().zip(TABLE_WIDTHS) {
        row.push_str(&format!("{cell:<width$}  "));
    }
    row.push_str(&cells[5]);
    row
}

/// How a lost-events line reads in compact and table output.
pub fn lost(lost: &LostEvents) -> String {
    format!("EVENTS LOST: {} {} flows", lost.source, lost.num_events_lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::tests::{http_flow, sample_flow};

    #[test]
    fn compact_lines_read_like_hubbles() {
        let plain = Palette::new(false);
        assert_eq!(
            compact(&http_flow("REQUEST", "GET", "http://api.backend.svc.cluster.local/", None), plain),
            "Nov 30 00:53:20.000: frontend/web:40000 (ID:256) -> backend/api:80 (ID:257) http-request FORWARDED \
             (HTTP/1.1 GET http://api.backend.svc.cluster.local/)"
        );
        let response = compact(&http_flow("RESPONSE", "GET", "http://api/", Some(200)), plain);
        assert!(response.contains("frontend/web:40000 (ID:256) <- backend/api:80 (ID:257)"), "{response}");
        assert!(
            response.ends_with("http-response FORWARDED (HTTP/1.1 200 2ms (GET http://api/))"),
            "{response}"
        );
        let drop = compact(&sample_flow(), plain);
        assert!(drop.ends_with("Policy denied DROPPED (TCP dropped (POLICY_DENIED))"), "{drop}");
    }

    #[test]
    fn world_endpoints_show_their_address_and_entity() {
        let mut flow = sample_flow();
        flow.destination.info = std::sync::Arc::new(crate::flow::EndpointInfo {
            labels: vec!["reserved:world".into()],
            ..Default::default()
        });
        flow.destination.identity = 2;
        flow.ip.destination = [198, 51, 100, 10].into();
        assert!(compact(&flow, Palette::new(false)).contains("-> 198.51.100.10:80 (world)"));
    }

    #[test]
    fn colours_only_when_asked() {
        let flow = sample_flow();
        assert!(!compact(&flow, Palette::new(false)).contains('\x1b'));
        let coloured = compact(&flow, Palette::new(true));
        assert!(coloured.contains("\x1b[31mDROPPED\x1b[0m"), "{coloured}");
        let row = table(&flow, Palette::new(true));
        assert!(row.contains("\x1b[31mDROPPED\x1b[0m"), "{row}");
        assert!(table_header().starts_with("TIMESTAMP"));
    }
}
