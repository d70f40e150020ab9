use super::*;

#[test]
fn peers_parse_as_pods_entities_or_addresses() {
    assert_eq!(
        "frontend/test".parse::<PeerQuery>(),
        Ok(PeerQuery::Pod { namespace: "frontend".into(), name: "test".into() })
    );
    assert_eq!("world".parse::<PeerQuery>(), Ok(PeerQuery::Entity(Entity::World)));
    assert_eq!("10.0.0.1".parse::<PeerQuery>(), Ok(PeerQuery::Ip("10.0.0.1".parse().unwrap())));
    assert!("cluster".parse::<PeerQuery>().unwrap_err().contains("group of identities"));
    for bad in ["nonsense", "a/b/c", "/x", "x/"] {
        assert!(bad.parse::<PeerQuery>().unwrap_err().contains("NAMESPACE/NAME"), "{bad}");
    }
}

#[test]
fn ad_hoc_pods_are_labelled_like_kubectl_run() {
    let mut workloads = Workloads::default();
    let query = Query {
        from: "frontend/test".parse().unwrap(),
        to: "world".parse().unwrap(),
        from_labels: BTreeMap::from([("role".to_string(), "debug".to_string())]),
        to_labels: BTreeMap::new(),
        port: 80,
        protocol: Protocol::Tcp,
        http: None,
    };
    query.add_pods(&mut workloads);
    let pod = workloads.endpoint("frontend", "test").unwrap();
    let labels: Vec<_> = pod.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(labels, ["role=debug", "run=test"]);
}
