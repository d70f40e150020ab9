use super::*;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

#[test]
fn allocation_is_deterministic_and_starts_at_256() {
    let a = LabelSet::new(vec![Label::k8s("app", "a")]);
    let b = LabelSet::new(vec![Label::k8s("app", "b")]);
    let one = IdentityTable::build([b.clone(), a.clone(), a.clone()], []);
    let two = IdentityTable::build([a.clone(), b.clone()], []);
    assert_eq!(one.by_labels(&a), Some(NumericIdentity(256)));
    assert_eq!(one.by_labels(&b), Some(NumericIdentity(257)));
    assert_eq!(one.by_labels(&b), two.by_labels(&b));
    assert_eq!(one.len(), 8 + 2);
}

#[test]
fn reserved_identities_use_cilium_numbers() {
    let table = IdentityTable::build([], []);
    for (id, name) in [(1, "host"), (2, "world"), (3, "unmanaged"), (4, "health"), (5, "init")]
        .into_iter()
        .chain([(6, "remote-node"), (7, "kube-apiserver"), (8, "ingress")])
    {
        let identity = table.get(NumericIdentity(id)).expect("reserved identity");
        assert!(identity.labels.contains(&Label::reserved(name)), "{id} {name}");
    }
}

#[test]
fn cidr_identities_nest_and_resolve_longest_prefix() {
    let table = IdentityTable::build([], [net("10.0.0.0/8"), net("10.96.0.0/12"), net("10.0.0.0/8")]);
    let outer = table.outside_identity("10.1.2.3".parse().unwrap());
    let inner = table.outside_identity("10.96.0.1".parse().unwrap());
    assert_eq!(outer, NumericIdentity(FIRST_LOCAL_IDENTITY));
    assert_eq!(inner, NumericIdentity(FIRST_LOCAL_IDENTITY + 1));
    assert_eq!(table.outside_identity("192.0.2.1".parse().unwrap()), reserved::WORLD);
    let inner_labels = &table.get(inner).unwrap().labels;
    assert!(inner_labels.contains(&cidr_label(&net("10.0.0.0/8"))));
    assert!(inner_labels.contains(&cidr_label(&net("10.96.0.0/12"))));
    assert!(table.get(inner).unwrap().is_world());
}

#[test]
fn entities_select_their_identities() {
    let pod = LabelSet::new(vec![Label::k8s("app", "a")]);
    let table = IdentityTable::build([pod.clone()], [net("192.0.2.0/24")]);
    let selected =
        |entity: Entity| -> Vec<u32> { table.iter().filter(|i| entity.selects(i)).map(|i| i.id.0).collect() };
    assert_eq!(selected(Entity::World), [2, FIRST_LOCAL_IDENTITY]);
    assert_eq!(selected(Entity::Host), [1]);
    assert_eq!(selected(Entity::KubeApiserver), [7]);
    assert_eq!(selected(Entity::Cluster), [1, 3, 4, 5, 6, 7, 8, 256]);
    assert_eq!(selected(Entity::All).len(), table.len());
    assert!("galaxy".parse::<Entity>().unwrap_err().contains("expected one of"));
    for entity in Entity::ALL {
        assert_eq!(entity.name().parse::<Entity>(), Ok(entity));
    }
}
