use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn pod(namespace: &str, name: &str, identity: u32, app: &str) -> FlowEndpoint {
    FlowEndpoint {
        identity,
        info: Arc::new(EndpointInfo {
            namespace: namespace.into(),
            pod_name: name.into(),
            labels: vec![format!("k8s:app={app}"), format!("k8s:io.kubernetes.pod.namespace={namespace}")],
            workloads: vec![Workload { name: name.into(), kind: "Deployment".into() }],
        }),
    }
}

/// frontend/web:40000 -> backend/api:80 over TCP, dropped by policy.
pub(crate) fn sample_flow() -> Flow {
    Flow {
        time: Timestamp(1_796_000_000_000_000_000),
        uuid: Uuid::new(),
        verdict: Verdict::Dropped,
        drop_reason_desc: Some("POLICY_DENIED".into()),
        ip: Ip::new([10, 244, 0, 11].into(), [10, 244, 0, 12].into()),
        l4: L4::Tcp(Ports { source_port: 40000, destination_port: 80 }),
        source: pod("frontend", "web", 256, "web"),
        destination: pod("backend", "api", 257, "api"),
        node_name: "node-1".into(),
        l7: None,
        traffic_direction: TrafficDirection::Egress,
        is_reply: false,
        policy_revoked: false,
        proxy: None,
    }
}

/// The same pods, an HTTP request or response handled by the http filter.
pub(crate) fn http_flow(kind: &str, method: &str, url: &str, code: Option<u16>) -> Flow {
    let mut http = json!({"method": method, "url": url, "protocol": "HTTP/1.1"});
    if let Some(code) = code {
        http["code"] = code.into();
    }
    let l7 = json!({"type": kind, "latency_ns": 2_000_000, "http": http});
    let request = Flow {
        verdict: Verdict::Forwarded,
        drop_reason_desc: None,
        l7: L7::new(&l7),
        proxy: Some(ProxyInfo { filter: "http".into(), rule_set: 1 }),
        ..sample_flow()
    };
    match kind {
        // A reply's source is the side that sent it.
        "RESPONSE" => Flow {
            ip: Ip::new(request.ip.destination, request.ip.source),
            l4: request.l4.reversed(),
            source: request.destination.clone(),
            destination: request.source.clone(),
            is_reply: true,
            ..request
        },
        _ => request,
    }
}

#[test]
fn flows_serialize_with_hubbles_names() {
    let json = serde_json::to_value(sample_flow()).unwrap();
    assert_eq!(json["time"], "2026-11-30T00:53:20.000000000Z");
    assert_eq!(json["verdict"], "DROPPED");
    assert_eq!(json["drop_reason_desc"], "POLICY_DENIED");
    assert_eq!(
        json["IP"],
        json!({"source": "10.244.0.11", "destination": "10.244.0.12", "ipVersion": "IPv4"})
    );
    assert_eq!(json["l4"]["TCP"]["destination_port"], 80);
    assert_eq!(json["source"]["namespace"], "frontend");
    assert_eq!(json["source"]["pod_name"], "web");
    assert_eq!(json["source"]["identity"], 256);
    assert_eq!(json["source"]["workloads"][0], json!({"name": "web", "kind": "Deployment"}));
    assert_eq!(json["destination"]["labels"][0], "k8s:app=api");
    assert_eq!(json["Type"], "L3_L4");
    assert_eq!(json["event_type"]["type"], 1);
    assert_eq!(json["traffic_direction"], "EGRESS");
    assert_eq!(json["is_reply"], false);
    assert_eq!(json["Summary"], "TCP dropped (POLICY_DENIED)");
    assert!(json.get("l7").is_none() && json.get("proxy").is_none() && json.get("policy_revoked").is_none());

    let http = serde_json::to_value(http_flow("RESPONSE", "GET", "http://api/", Some(200))).unwrap();
    assert_eq!(http["Type"], "L7");
    assert_eq!(http["event_type"]["type"], 129);
    assert_eq!(http["l7"]["http"]["code"], 200);
    assert_eq!(http["l7"]["type"], "RESPONSE");
    assert_eq!(http["proxy"]["filter"], "http");
    assert_eq!(http["Summary"], "HTTP/1.1 200 2ms (GET http://api/)");
}

#[test]
fn flows_read_back_as_written() {
    for flow in [sample_flow(), http_flow("REQUEST", "POST", "http://api/x", None)] {
        let line = flow.to_json_line();
        let parsed: Value = serde_json::from_str(&line).unwrap();
        let back: Flow = serde_json::from_value(parsed["flow"].clone()).unwrap();
        assert_eq!(back, flow);
    }
}

#[test]
fn summaries_say_what_happened() {
    let summary = |f: &dyn Fn(&mut Flow)| {
        let mut flow = sample_flow();
        f(&mut flow);
        flow.summary()
    };
    assert_eq!(summary(&|f| f.policy_revoked = true), "TCP connection revoked by policy (POLICY_DENIED)");
    assert_eq!(
        summary(&|f| {
            f.verdict = Verdict::Redirected;
            f.drop_reason_desc = None;
        }),
        "TCP to proxy"
    );
    assert_eq!(
        summary(&|f| {
            f.verdict = Verdict::Forwarded;
            f.drop_reason_desc = None;
            f.l4 = L4::Icmpv4 { r#type: 8, code: 0 };
        }),
        "ICMPv4 EchoRequest new flow"
    );
    assert_eq!(
        summary(&|f| f.proxy = Some(ProxyInfo { filter: "dns".into(), rule_set: 2 })),
        "TCP via filter dns: POLICY_DENIED"
    );
    let dns = |kind: &str| {
        let l7 = json!({"type": kind, "dns": {"query": "google.com.", "qtypes": ["A"], "ips": ["1.2.3.4"], "ttl": 60}});
        Flow { l7: L7::new(&l7), ..sample_flow() }.summary()
    };
    assert_eq!(dns("REQUEST"), "DNS Query google.com. A");
    assert_eq!(dns("RESPONSE"), "DNS Answer \"1.2.3.4\" TTL: 60 (Query google.com. A)");
    let redis = json!({"type": "REQUEST", "redis": {"command": "GET"}});
    assert_eq!(Flow { l7: L7::new(&redis), ..sample_flow() }.summary(), "REDIS request command=GET");
}
